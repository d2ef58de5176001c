"""The suite's rule for tests that need the grading sandbox (tests/conftest.py), run in a child pytest.

On a machine without bubblewrap a ``@pytest.mark.sandbox`` test, or a test using the ``grading_sandbox`` fixture, is
skipped with a reason naming the packages to install; under CI (``CI=true``) it is an error instead; and under CI a
sandbox test skipped by any other means still fails, so no sandbox test can silently stop running there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

CHILD_TESTS = """
import pytest

@pytest.mark.sandbox
def test_marked():
    pass

def test_fixture(grading_sandbox):
    pass

@pytest.mark.sandbox
@pytest.mark.skip(reason="turned off by hand")
def test_marked_skipped_by_hand():
    pass

@pytest.mark.sandbox
def test_marked_skips_itself():
    pytest.skip("skipped from inside")

def test_plain():
    pass
"""


def run_child(tmp_path: Path, *, ci: bool, hide_bwrap: bool) -> subprocess.CompletedProcess:
    """pytest on CHILD_TESTS with tests/conftest.py as a plugin; PATH without bwrap when ``hide_bwrap``."""
    folder = tmp_path / ("ci" if ci else "dev")
    folder.mkdir()
    (folder / "test_child.py").write_text(CHILD_TESTS)
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    sandbox: needs the grading sandbox\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(TESTS)
    if hide_bwrap:  # only the venv's python: no bwrap, prlimit or setpriv, as on a machine without them
        bindir = tmp_path / "bin"
        bindir.mkdir(exist_ok=True)
        if not (bindir / "python").exists():
            os.symlink(sys.executable, bindir / "python")
        env["PATH"] = str(bindir)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "conftest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rsfE",
            "--strict-markers",
            "test_child.py",
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def closing(proc: subprocess.CompletedProcess) -> str:
    """pytest's closing counts, e.g. ``1 passed, 4 skipped``."""
    return proc.stdout.strip().splitlines()[-1].rsplit(" in ", 1)[0]


def summary(proc: subprocess.CompletedProcess, word: str) -> list[str]:
    """The short-summary lines starting with ``word`` (SKIPPED, ERROR, FAILED)."""
    return [line for line in proc.stdout.splitlines() if line.startswith(word + " ")]


NEEDS = (
    "needs the grading sandbox (apt-get install bubblewrap util-linux): cannot sandbox student code: bwrap, "
    "prlimit, setpriv not found"
)


def test_without_bwrap_sandbox_tests_are_skipped_naming_the_packages(tmp_path):
    proc = run_child(tmp_path, ci=False, hide_bwrap=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert closing(proc) == "1 passed, 4 skipped", proc.stdout
    skipped = summary(proc, "SKIPPED")
    # marked, fixture, and the marked test that would skip itself: the sandbox's reason; the hand-skipped one: its own
    assert sorted(line.split(": ", 1)[0] for line in skipped if line.endswith(NEEDS)) == [
        "SKIPPED [1] test_child.py:16",
        "SKIPPED [1] test_child.py:4",
        "SKIPPED [1] test_child.py:8",
    ], proc.stdout
    assert "SKIPPED [1] test_child.py:11: turned off by hand" in skipped


def test_without_bwrap_under_ci_sandbox_tests_are_errors(tmp_path):
    proc = run_child(tmp_path, ci=True, hide_bwrap=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert closing(proc) == "1 passed, 4 errors", proc.stdout
    assert sorted(line.split(" - ")[0] for line in summary(proc, "ERROR") if line.endswith(f"CI=true: {NEEDS}")) == [
        f"ERROR test_child.py::{name}"
        for name in ("test_fixture", "test_marked", "test_marked_skipped_by_hand", "test_marked_skips_itself")
    ], proc.stdout


@pytest.mark.sandbox
def test_under_ci_a_sandbox_test_skipped_by_other_means_fails(tmp_path):
    proc = run_child(tmp_path, ci=True, hide_bwrap=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert closing(proc) == "1 failed, 3 passed, 1 error", proc.stdout
    assert summary(proc, "ERROR") == [
        "ERROR test_child.py::test_marked_skipped_by_hand - CI=true: a sandbox test "
        "may not be skipped (Skipped: turned off by hand)"
    ]
    assert summary(proc, "FAILED") == [
        "FAILED test_child.py::test_marked_skips_itself - CI=true: a sandbox test "
        "may not be skipped (Skipped: skipped from inside)"
    ]
