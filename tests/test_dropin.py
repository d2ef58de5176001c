"""Drop-in for any nbgrader course: on nbgrader's own documentation example (ps1; bitdiddle, hacker) the grade verb
gives the scores nbgrader's documentation lists and the very same gradebook as plain ``nbgrader autograde``; then
``nbgrader export`` and formgrader's API work on what it wrote. Also the same grading on a Dask LocalCluster."""

from __future__ import annotations

import csv
import shutil

import pytest

from nbgrader_course import documented_scores, gradebook_scores, nbgrader_cli

pytestmark = pytest.mark.sandbox  # every test here compares a sandboxed grading run


@pytest.fixture(scope="module")
def generated(generated_docs_course):
    return generated_docs_course


def _copy(generated, tmp_path_factory, name):
    dest = tmp_path_factory.mktemp(name) / "course"
    shutil.copytree(generated, dest)
    return dest


@pytest.fixture(scope="module")
def by_nbgrader(generated, tmp_path_factory):
    course = _copy(generated, tmp_path_factory, "plain")
    nbgrader_cli(course, "autograde", "ps1")
    return course


@pytest.fixture(scope="module")
def by_engine(graded_docs_course):
    return graded_docs_course


def test_scores_are_the_documented_ones(by_engine):
    course, rows = by_engine
    documented = documented_scores()  # {"bitdiddle": 1.5, "hacker": 3.0}
    assert {s: rows[s]["score"] for s in documented} == documented
    assert {r["status"] for r in rows.values()} == {"ok"}


def test_gradebook_equals_plain_nbgrader_autograde(by_engine, by_nbgrader):
    from nbgrader.api import Gradebook

    ours, theirs = gradebook_scores(by_engine[0]), gradebook_scores(by_nbgrader)
    assert ours == theirs  # every grade cell's auto score and each submission's total
    assert {s: ours[s]["total"] for s in documented_scores()} == documented_scores()

    def flags(course):
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            return {
                (s.student_id, nb.name, g.name): (g.needs_manual_grade, str(s.timestamp))
                for s in gb.find_assignment("ps1").submissions
                for nb in s.notebooks
                for g in nb.grades
            }

    assert flags(by_engine[0]) == flags(by_nbgrader)  # same "needs manual grade" flags, same timestamps


def test_nbgrader_export_and_formgrader_work_on_the_result(by_engine):
    course, _ = by_engine
    nbgrader_cli(course, "export")
    with open(course / "grades.csv") as fh:
        exported = {row["student_id"]: float(row["score"]) for row in csv.DictReader(fh)}
    assert {s: exported[s] for s in documented_scores()} == documented_scores()

    # formgrader's pages are built from NbGraderAPI: it must see both submissions as autograded
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from autograder.course import load_config

    config = load_config(course)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    subs = {s["student"]: s for s in api.get_submissions("ps1")}
    assert {s: (subs[s]["autograded"], subs[s]["score"]) for s in documented_scores()} == {
        s: (True, score) for s, score in documented_scores().items()
    }


@pytest.mark.full
def test_dask_local_cluster_grades_the_same(generated, by_nbgrader, tmp_path_factory):
    from distributed import LocalCluster

    from autograder.grade import grade_assignment

    course = _copy(generated, tmp_path_factory, "dask")
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    ) as cluster:
        results = grade_assignment("ps1", root=course, scheduler=cluster, sandbox=True, progress=False)
    assert {r.student_id: (r.status, r.score) for r in results if r.student_id in documented_scores()} == {
        s: ("ok", score) for s, score in documented_scores().items()
    }
    assert gradebook_scores(course) == gradebook_scores(by_nbgrader)
