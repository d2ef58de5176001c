"""The README's commands, run for real with the plain `nbgrader` CLI in a copy of the course (full run only).

Instructor releases, a student fetches, answers, validates and submits, the instructor collects, autogrades,
writes feedback and exports grades: one machine, the course-local exchange of nbgrader_config.py.
"""

from __future__ import annotations

import csv
import getpass
import html
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import course
from autograder.questions import load_bank

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.full
def test_release_fetch_validate_submit_collect_grade_feedback_export(tmp_path):
    root = course.copy_course(ROOT, tmp_path / "course")
    course.ensure_venv_on_path()
    nbgrader = str(Path(sys.executable).parent / "nbgrader")
    cache = f"--Exchange.cache={tmp_path / 'cache'}"  # keep the student's submission cache out of $HOME

    def run(*args):
        result = subprocess.run([nbgrader, *args], cwd=root, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"nbgrader {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        return result.stdout + result.stderr

    # instructor
    run("generate_assignment", "practice_questions")
    run("release_assignment", "practice_questions")
    # student
    run("fetch_assignment", "practice_questions", cache)
    work = root / "assignments" / "practice_questions" / "practice_questions.ipynb"
    nb = nbformat.read(str(work), as_version=4)
    answers = {q.id: q.answer for q in load_bank()}
    answers["q10"] = "A"  # one wrong answer: 3 points lost (a hard question)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if grade_id.endswith("_answer"):
            qid = grade_id.split("_")[0]
            cell.source = f"{qid} = {answers[qid]!r}"
    nbformat.write(nb, str(work))
    assert "Success! Your notebook passes all the tests." in run("validate", str(work))  # visible tests only
    run("submit", "practice_questions", cache)
    # instructor
    run("collect", "practice_questions")
    student = getpass.getuser()
    assert (root / "submitted" / student / "practice_questions" / "practice_questions.ipynb").is_file()
    run("autograde", "practice_questions")
    run("generate_feedback", "practice_questions")
    (page,) = (root / "feedback" / student / "practice_questions").glob("*.html")
    text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
    assert "Misconception: Treating 'it ran' as 'it works'" in text  # why q10 lost its 3 points
    run("export")
    (row,) = list(csv.DictReader((root / "grades.csv").open()))
    assert (row["student_id"], float(row["score"]), float(row["max_score"])) == (student, 16.0, 19.0)
