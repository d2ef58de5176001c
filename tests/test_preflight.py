"""Before grading anything, the grader starts one kernel exactly as for a submission: a machine or setting on which
none can start is one instructor error (exit 2) saying why, never the status ``error`` for every student. And the
sandbox works when the course's venv is reached through a link (it used to kill every kernel at start)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nbgrader_course import autograder_cli, env

pytestmark = pytest.mark.sandbox


@pytest.fixture
def course(generated_docs_course, tmp_path):
    dest = tmp_path / "course"
    shutil.copytree(generated_docs_course, dest)
    return dest


def test_a_venv_reached_through_a_link_grades(course, tmp_path, grading_sandbox):
    venv = Path(sys.prefix)
    link = tmp_path / "linked-venv"
    os.symlink(venv, link)
    python = link / "bin" / Path(sys.executable).name
    proc = subprocess.run(
        [str(python), "-m", "autograder", "grade", "ps1", "--json", "--student", "hacker"],
        cwd=course,
        env={**env(), "PATH": f"{link / 'bin'}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(proc.stdout)
    assert (row["status"], row["score"]) == ("ok", 3.0), row


def test_no_kernel_can_start_is_one_error_before_grading(course, tmp_path, grading_sandbox):
    """A bubblewrap that passes the grader's check but cannot start a kernel: exit 2 with bubblewrap's own words,
    and nothing graded or recorded."""
    real = shutil.which("bwrap")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "bwrap"
    fake.write_text(
        f'#!/bin/sh\ncase "$*" in *" /bin/true") exec {real} "$@";; esac\n'
        'echo "bwrap: Creating new namespace failed: simulated for this test" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", "ps1", "--json"],
        cwd=course,
        env={**env(), "PATH": f"{bindir}{os.pathsep}{env()['PATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "no grading kernel can start here in the sandbox" in proc.stderr
    assert "simulated for this test" in proc.stderr
    assert proc.stdout == ""
    assert not (course / "autograded").exists()


@pytest.mark.full  # ~50 s: kernels probed at several memory limits (make test's 10-minute budget)
def test_memory_too_small_names_the_smallest_that_works(course):
    proc = autograder_cli(course, "grade", "ps1", "--memory", "200")
    assert proc.returncode == 2, proc.stderr[-2000:]
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("error: --memory 200 is too small for a Python kernel to start here")
    smallest = int(message.split("works is about ")[1].split(" MB")[0])
    assert 200 < smallest <= 2048
    assert not (course / "autograded").exists()


def test_a_successful_preflight_is_remembered_for_the_same_setup(tmp_path, monkeypatch, grading_sandbox):
    """The grading service and a series of grade runs pay the kernel start once: a success is cached per course for
    the same interpreter, sandbox tools and limits, and any change of those probes again."""
    from autograder import preflight, unit
    from autograder.job import Limits

    calls = []
    monkeypatch.setattr(unit, "probe_kernel", lambda memory_mb, sandbox: calls.append((memory_mb, sandbox)))
    preflight.preflight(Limits(), True, cache_dir=tmp_path)
    preflight.preflight(Limits(), True, cache_dir=tmp_path)
    assert calls == [(2048, True)]
    preflight.preflight(Limits(memory_mb=1536), True, cache_dir=tmp_path)  # other limits: probed again
    assert calls == [(2048, True), (1536, True)]
    monkeypatch.setattr(preflight, "PREFLIGHT_VALID_SECONDS", 0)  # expired: probed again
    preflight.preflight(Limits(memory_mb=1536), True, cache_dir=tmp_path)
    assert len(calls) == 3
