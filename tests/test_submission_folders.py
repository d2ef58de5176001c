"""Submission folders are folders: a link anywhere below ``submitted/`` is never followed by the grader.

A student who can write to the exchange could make ``submitted/<them>/<assignment>`` a link to ``source/<assignment>``
(the instructor's solutions) or to a classmate's folder; graded, that would score the solution or the classmate's
work. Such a submission gets the status ``missing`` with a reason naming the link, and nothing is recorded for it.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from nbgrader_course import autograder_cli, generated_docs_course  # noqa: F401 (fixture)

pytestmark = pytest.mark.sandbox


def test_linked_submission_folders_are_not_graded(generated_docs_course, tmp_path, grading_sandbox):
    course = tmp_path / "course"
    shutil.copytree(generated_docs_course, course)
    submitted = course / "submitted"
    shutil.rmtree(submitted / "hacker" / "ps1")
    os.symlink(course / "source" / "ps1", submitted / "hacker" / "ps1")          # the instructor's solution
    shutil.rmtree(submitted / "partial")
    os.symlink(submitted / "bitdiddle", submitted / "partial")                    # a classmate's work
    proc = autograder_cli(course, "grade", "ps1", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["student_id"]: r for r in json.loads(proc.stdout)}
    assert rows["bitdiddle"]["status"] == "ok" and rows["bitdiddle"]["score"] == 1.5
    for student, link in (("hacker", "submitted/hacker/ps1"), ("partial", "submitted/partial")):
        assert (rows[student]["status"], rows[student]["score"]) == ("missing", 0.0)
        assert f"{link} is a link, not a folder" in rows[student]["reason"]
        assert not (course / "autograded" / student).exists()
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert {s.student_id for s in gb.find_assignment("ps1").submissions} == {"bitdiddle"}
