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

from nbgrader_course import autograder_cli

pytestmark = pytest.mark.sandbox


def test_linked_submission_folders_are_not_graded(generated_docs_course, tmp_path, grading_sandbox):
    course = tmp_path / "course"
    shutil.copytree(generated_docs_course, course)
    submitted = course / "submitted"
    shutil.rmtree(submitted / "hacker" / "ps1")
    os.symlink(course / "source" / "ps1", submitted / "hacker" / "ps1")  # the instructor's solution
    shutil.rmtree(submitted / "partial")
    os.symlink(submitted / "bitdiddle", submitted / "partial")  # a classmate's work
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


def test_oversized_files_and_engine_file_names(generated_docs_course, tmp_path, grading_sandbox):
    """A notebook over the size cap is invalid (never read whole); extra files beyond the per-submission budget are
    left out with a note; students whose ids look like the engine's files are graded like anyone, and the statuses
    of everyone are kept (the engine's files live in .autograder/, apart from the students' folders)."""
    from autograder.job import MAX_FILES_BYTES, MAX_NOTEBOOK_BYTES
    from autograder.statuses import read_statuses

    course = tmp_path / "course"
    shutil.copytree(generated_docs_course, course)
    submitted = course / "submitted"
    notebook = submitted / "partial" / "ps1" / "problem1.ipynb"
    notebook.write_bytes(notebook.read_bytes()[:-2] + b" " * (MAX_NOTEBOOK_BYTES + 10) + b"}\n")
    (submitted / "hacker" / "ps1" / "big.bin").write_bytes(b"\0" * (MAX_FILES_BYTES + 1))
    (submitted / "hacker" / "ps1" / "small.txt").write_text("kept")
    for name in ("ps1.status.json", "ps1.status.lock"):
        shutil.copytree(submitted / "bitdiddle", submitted / name)
    proc = autograder_cli(course, "grade", "ps1", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["student_id"]: r for r in json.loads(proc.stdout)}
    assert rows["partial"]["status"] == "invalid_notebook" and "is over 20 MB: not read" in rows["partial"]["reason"]
    assert rows["hacker"]["score"] == 3.0 and "files left out (over 50 MB in all): big.bin" in rows["hacker"]["reason"]
    assert (course / "autograded" / "hacker" / "ps1" / "small.txt").read_text() == "kept"
    assert not (course / "autograded" / "hacker" / "ps1" / "big.bin").exists()
    for name in ("ps1.status.json", "ps1.status.lock", "bitdiddle"):
        assert (rows[name]["status"], rows[name]["score"]) == ("ok", 1.5)
    assert set(read_statuses(course, "ps1")) == set(rows)
