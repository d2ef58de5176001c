"""Scores do not depend on the machine's load: a perfect submission that also prints millions of lines gets the
same score idle and with two CPU-bound processes competing (the kernel stops sending output past the budget, so
later tests do not wait behind millions of messages; the grader drops what comes past it unread)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from autograder.job import GradeJob, Limits
from autograder.unit import grade_job

from .submissions import NOTEBOOK, _submit, specs_from_source

pytestmark = [pytest.mark.sandbox, pytest.mark.full]  # two gradings of a 2-million-line flood: ~20-60 s

FLOOD = "for i in range(2_000_000):\n    print('line', i)"


def _grade() -> tuple[str, float, float]:
    job = GradeJob(
        "c",
        "reg",
        "flood",
        {f"{NOTEBOOK}.ipynb": _submit({}, before={"add": FLOOD})},
        specs_from_source(),
        {},
        Limits(cell_timeout=60, notebook_timeout=300),
        sandbox=True,
    )
    started = time.monotonic()
    result = grade_job(job)
    return result.status, result.score, time.monotonic() - started


def test_same_score_idle_and_under_load(grading_sandbox):
    idle = _grade()
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        loaded = _grade()
    finally:
        for proc in burners:
            proc.kill()
            proc.wait()
    assert idle[:2] == loaded[:2] == ("resource_limit", 4.0), (idle, loaded)
    # the flood costs the kernel its own printing time, not the grader's draining of millions of messages
    assert loaded[2] < 60, loaded
