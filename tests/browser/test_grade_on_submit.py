"""Grade on submit, as a student sees it in JupyterLab: the Assignments tab's Fetch, Submit and Fetch Feedback
buttons, with ``python -m autograder watch`` running on the course, and the feedback page opened in the browser.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

import practice_answers
from autograder.course import copy_course
from watch_course import Service

ROOT = Path(__file__).resolve().parents[2]

ASSIGNMENT = practice_answers.ASSIGNMENT


@pytest.fixture(scope="module")
def course(tmp_path_factory, grading_sandbox):
    """A course copy with practice_questions released to its own exchange; the student's nbgrader cache is kept in
    the copy (never in the real home)."""
    from autograder.release import release

    root = copy_course(ROOT, tmp_path_factory.mktemp("submit") / "mlops-bridge")
    with open(root / "nbgrader_config.py", "a") as fh:
        fh.write(f"\nc.Exchange.cache = {str(root / 'cache')!r}\n")
    release(ASSIGNMENT, root, log=lambda message: None)
    return root


def test_submit_then_fetch_feedback_from_the_assignments_tab(page, course, jupyter_lab_factory):
    lab = jupyter_lab_factory(course)
    service = Service(course, "--poll", "0.2")
    try:
        service.wait_for("watching")
        page.goto(lab.lab_url())
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Nbgrader$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Assignment List$")).click()
        page.get_by_role("button", name="Fetch").first.click()
        work = course / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        deadline = time.monotonic() + 120
        while not work.exists():
            assert time.monotonic() < deadline, "Fetch did not bring the assignment"
            time.sleep(0.2)
        # the student's answers (all right but q10), written as JupyterLab would save them
        answers, points = practice_answers.source_answers(course)
        right = set(answers) - {"q10_answer"}
        practice_answers.write(practice_answers.answered(course, right), work)
        page.get_by_role("button", name="Submit").first.click()
        feedback = page.get_by_role("button", name="Fetch Feedback")
        feedback.first.wait_for()
        service.wait_for(r"attempt 1: ok 16/19", timeout=300)
        feedback.first.click()
        link = page.get_by_text("(view feedback)")
        link.first.wait_for()
        (html,) = (course / "assignments" / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html")
        relative = html.relative_to(course).as_posix()
        page.goto(f"{lab.url}/files/{relative}?token={lab.token}")
        body = page.locator("body")
        body.get_by_text(re.compile(r"This attempt: 16 / 19")).first.wait_for()
        text = body.inner_text()
        assert "Score that counts" in text and "Misconception:" in text
    finally:
        assert service.stop() == 0
