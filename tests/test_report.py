"""The class report: grades CSV, item analysis (difficulty, discrimination) and two PNG charts.

A gradebook is filled through nbgrader's API with scores chosen here (no notebook is executed), so every figure
of the report can be recomputed independently with numpy and compared.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from autograder.job import GradeResult

# student -> (q_easy of 1, q_hard of 2, q_flat of 1); a question everybody scored the same has no discrimination
SCORES = {
    "s01": (1, 2, 1),
    "s02": (1, 2, 1),
    "s03": (1, 1.5, 1),
    "s04": (1, 1, 1),
    "s05": (1, 0.5, 1),
    "s06": (0, 1, 1),
    "s07": (1, 0, 1),
    "s08": (0, 0, 1),
    "s09": (0, 0.5, 1),
    "s10": (1, 2, 1),
}
QUESTIONS = ("nb1/q_easy", "nb1/q_hard", "nb2/q_flat")
MAX = {"nb1/q_easy": 1.0, "nb1/q_hard": 2.0, "nb2/q_flat": 1.0}


@pytest.fixture
def course(tmp_path):
    from nbgrader.api import Gradebook

    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'rep'\n")
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}", "rep") as gb:
        gb.add_assignment("hw")
        for question in QUESTIONS:
            nb, cell = question.split("/")
            if nb not in [n.name for n in gb.find_assignment("hw").notebooks]:
                gb.add_notebook(nb, "hw")
            gb.add_grade_cell(cell, nb, "hw", max_score=MAX[question], cell_type="code")
        for student in [*SCORES, "ghost"]:
            gb.add_student(student)
        for student, values in SCORES.items():
            gb.add_submission("hw", student)
            for question, value in zip(QUESTIONS, values, strict=True):
                nb, cell = question.split("/")
                grade = gb.find_grade(cell, nb, "hw", student)
                grade.auto_score, grade.needs_manual_grade = value, False
        gb.db.commit()
    from autograder.course import Course
    from autograder.statuses import write_statuses

    statuses = [
        GradeResult(s, "timeout" if s == "s08" else "ok", "", [], 1.0, float(sum(v)), 4.0) for s, v in SCORES.items()
    ] + [GradeResult("ghost", "missing", "no submission", [], 0.0, 0.0, 4.0)]
    write_statuses(Course.open(tmp_path), "hw", statuses)
    return tmp_path


def _read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_report_files_and_figures(course):
    from autograder.report import write_report

    paths = write_report("hw", root=course)
    assert paths["grades"] == course / "build" / "report" / "hw" / "grades.csv"

    grades = {row["student_id"]: row for row in _read(paths["grades"])}
    assert list(_read(paths["grades"])[0]) == ["student_id", "status", "attempts", *QUESTIONS, "total", "max_score"]
    for student, values in SCORES.items():
        row = grades[student]
        assert [float(row[q]) for q in QUESTIONS] == list(values)
        assert float(row["total"]) == sum(values) and float(row["max_score"]) == 4.0
    assert grades["s08"]["status"] == "timeout" and grades["s01"]["status"] == "ok"
    assert grades["ghost"]["status"] == "missing" and grades["ghost"]["total"] == ""
    assert all(grades["ghost"][q] == "" for q in QUESTIONS)

    items = {row["question"]: row for row in _read(paths["items"])}
    matrix = np.array(list(SCORES.values()), dtype=float)  # ghost (missing) is not part of the analysis
    totals = matrix.sum(axis=1)
    for j, question in enumerate(QUESTIONS):
        item = items[question]
        assert int(item["n"]) == len(SCORES)
        assert float(item["difficulty"]) == pytest.approx(matrix[:, j].mean() / MAX[question], abs=1e-3)
        if np.ptp(matrix[:, j]) == 0:
            assert item["discrimination"] == "" and item["point_biserial"] == ""
            continue
        expected = np.corrcoef(matrix[:, j], totals - matrix[:, j])[0, 1]  # corrected item-total correlation
        assert float(item["discrimination"]) == pytest.approx(expected, abs=1e-3)
    assert float(items["nb1/q_easy"]["point_biserial"]) == pytest.approx(
        float(items["nb1/q_easy"]["discrimination"]), abs=1e-3
    )  # 0/1 item: point-biserial = Pearson
    assert items["nb1/q_hard"]["point_biserial"] == ""  # partial credit: not dichotomous
    assert float(items["nb1/q_hard"]["discrimination"]) > 0.3  # the strong students got the hard one

    import matplotlib.image

    for key in ("histogram", "questions"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = matplotlib.image.imread(paths[key]).shape
        assert height >= 300 and width >= 500


def test_report_cli(course, capsys):
    from autograder.cli import main

    assert main(["report", "hw", "--out", str(course / "out"), "--course-dir", str(course)]) == 0
    assert sorted(p.name for p in (course / "out").iterdir()) == [
        "grades.csv",
        "grades_histogram.png",
        "item_analysis.csv",
        "questions.png",
    ]
    capsys.readouterr()
    assert main(["report", "nope", "--course-dir", str(course)]) == 2
    assert "no assignment 'nope'" in capsys.readouterr().err


def _write_one(args):
    course_dir, student = args
    from autograder.course import Course
    from autograder.statuses import write_statuses

    opened = Course.open(course_dir)
    for i in range(200):
        write_statuses(opened, "hw", [GradeResult(f"{student}-{i}", "ok", "", [], 1.0, 1.0, 4.0)])


def test_concurrent_graders_do_not_lose_each_others_statuses(course):
    """Graders run by student at the same time merge into one status file; none may overwrite another's entry."""
    import json
    from multiprocessing import get_context

    new = [f"late{i}" for i in range(4)]
    with get_context("spawn").Pool(4) as pool:
        pool.map(_write_one, [(str(course), s) for s in new])
    students = json.loads((course / ".autograder" / "hw.status.json").read_text())["students"]
    assert {f"{s}-{i}" for s in new for i in range(200)} <= set(students) and "ghost" in students
    assert students["s08"]["status"] == "timeout"
