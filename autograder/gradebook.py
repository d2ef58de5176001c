"""The gradebook, seen from the grading process: check it is there, and record results the way nbgrader does.

Only the grading process reads and writes the gradebook; student code never runs here. Grades are saved by
nbgrader's own preprocessors (``SaveAutoGrades``, ``AssignLatePenalties``) on the graded notebooks, so scores,
"needs manual grade" flags and comments are exactly ``nbgrader autograde``'s.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path

from .course import AutogradeSettings, Course
from .exceptions import GradebookError, UnknownAssignmentError
from .job import GradeJob, GradeResult
from .submissions import submission_timestamp

SQLITE = "sqlite:///"

_engines: dict[tuple, object] = {}
_engines_lock = threading.Lock()


def share_engines() -> None:
    """Make every nbgrader ``Gradebook`` of this process reuse one SQLAlchemy engine per database URL.

    nbgrader's ``Gradebook`` creates a new engine each time it is opened, and recording one result opens three (the
    submission, ``SaveAutoGrades``, ``AssignLatePenalties``). SQLAlchemy caches compiled statements per engine, so
    every result compiled all of its queries again: about 0.2 s of the grading process's CPU per submission,
    taken from the kernels on a 2-core machine. nbgrader offers no way to pass an engine in, hence this wrapper of
    ``nbgrader.api.create_engine`` (idempotent, thread-safe). ``Gradebook.close()`` still disposes the engine's
    connection pool each time, so no connection outlives its gradebook; only the compiled-statement cache is kept.
    """
    import nbgrader.api

    if getattr(nbgrader.api.create_engine, "_autograder_shared", False):
        return
    create = nbgrader.api.create_engine

    def shared_create_engine(url, *args, **kwargs):
        key = (str(url), args, tuple(sorted(kwargs.items())))
        with _engines_lock:
            if key not in _engines:
                _engines[key] = create(url, *args, **kwargs)
            return _engines[key]

    shared_create_engine._autograder_shared = True
    nbgrader.api.create_engine = shared_create_engine


def require_gradebook(course: Course, hint: str) -> None:
    """A clear instructor-side error when the course's gradebook is an sqlite file that does not exist (opening it
    would silently create an empty one). ``hint`` says what to run first."""
    url = course.db_url
    if url.startswith(SQLITE) and not Path(url[len(SQLITE) :]).is_file():
        raise GradebookError(f"no gradebook at {url[len(SQLITE) :]}: {hint}")


def check_gradebook(course: Course, assignment: str) -> None:
    """A clear instructor-side error unless the gradebook exists and holds the assignment's notebooks."""
    from nbgrader.api import Gradebook, MissingEntry

    require_gradebook(
        course,
        f"generate the assignment first (`python -m autograder release {assignment}` or "
        f"`nbgrader generate_assignment {assignment}`)",
    )
    with Gradebook(course.db_url, course.course_id or None) as gb:
        try:
            nbs = gb.find_assignment(assignment).notebooks
        except MissingEntry:
            known = ", ".join(a.name for a in gb.assignments) or "none"
            raise UnknownAssignmentError(
                f"the gradebook has no assignment {assignment!r} (known: {known}); "
                f"generate it first: `nbgrader generate_assignment {assignment}`"
            ) from None
        if not nbs:
            raise GradebookError(
                f"assignment {assignment!r} has no notebooks in the gradebook: run "
                f"`nbgrader generate_assignment {assignment}` first"
            )


def record(
    course: Course, job: GradeJob, result: GradeResult, settings: AutogradeSettings | None = None, partial: bool = False
) -> None:
    """Write one result the way ``nbgrader autograde`` does: autograded files, submission, grades, late penalty.

    Grades are saved by nbgrader's own ``SaveAutoGrades`` and ``AssignLatePenalties`` preprocessors run on the
    graded notebook, in this process: the scores, "needs manual grade" flags and "No response." comments are
    exactly nbgrader's. Student code never runs here (those preprocessors only read cell metadata and outputs).
    ``partial`` (``--notebook``): the job holds some of the notebooks; the others' autograded files are kept.
    Files are given nbgrader's permissions (``settings``).
    """
    import shutil

    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

    share_engines()
    assignment, student = job.assignment, job.student_id
    if result.notebooks and not any(nb.recorded for nb in result.notebooks):
        return  # no notebook could be run at all (e.g. a kernel of another language): nothing written, as nbgrader
    submitted = course.path(course.coursedir.submitted_directory, student, assignment)
    timestamp = submission_timestamp(submitted)
    with Gradebook(course.db_url, course.course_id or None) as gb, warnings.catch_warnings():
        # nbgrader's update_or_create_submission trips SQLAlchemy autoflush warnings ("not in session"); they are
        # nbgrader's own (plain autograde prints them too) and harmless.
        warnings.simplefilter("ignore", category=Warning)
        gb.update_or_create_student(student)
        if timestamp:
            gb.update_or_create_submission(assignment, student, timestamp=timestamp)
        else:
            gb.update_or_create_submission(assignment, student)

    settings = settings or AutogradeSettings()
    dest = course.path(course.coursedir.autograded_directory, student, assignment)
    if dest.exists() and not partial:
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    # the submission's files (with the instructor's versions), then what the notebooks wrote while graded
    for rel, data in {**job.files, **{k: v for k, v in result.files.items() if not course.is_ignored(k)}}.items():
        target = (dest / rel).resolve()
        if dest.resolve() not in target.parents:  # a relative path must stay inside the student's folder
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()  # nbgrader's permissions may have made the old copy read-only
        target.write_bytes(data)
    if (submitted / "timestamp.txt").is_file() and not (submitted / "timestamp.txt").is_symlink():
        shutil.copyfile(submitted / "timestamp.txt", dest / "timestamp.txt")

    by_name = {nb.name: nb for nb in result.notebooks}
    for spec in job.specs:
        nbres = by_name.get(spec.name)
        resources = {
            "nbgrader": {"notebook": spec.name, "assignment": assignment, "student": student, "db_url": course.db_url}
        }
        if nbres is not None and nbres.graded is not None:
            if (dest / spec.filename).exists():
                (dest / spec.filename).unlink()
            (dest / spec.filename).write_bytes(nbres.graded)
            nb = nbformat.reads(nbres.graded.decode("utf-8"), as_version=nbformat.NO_CONVERT)
            nb, resources = SaveAutoGrades(config=course.config).preprocess(nb, resources)
            AssignLatePenalties(config=course.config).preprocess(nb, resources)
        else:
            # Nothing executed: 0 points. nbgrader's own rule for a missing notebook is 0 without review; anything
            # else (unreadable notebook, grader error) is flagged for manual grading so a human sees it.
            missing = nbres is not None and nbres.status == "missing"
            with Gradebook(course.db_url, course.course_id or None) as gb:
                notebook = gb.find_submission_notebook(spec.name, assignment, student)
                for grade in notebook.grades:
                    grade.auto_score = 0
                    grade.needs_manual_grade = not missing
                gb.db.commit()
    set_permissions(course, dest, settings)


def set_permissions(course: Course, dest: Path, settings: AutogradeSettings) -> None:
    """nbgrader's ``BaseConverter.set_permissions``: every file of ``dest`` gets ``settings.permissions``; with
    ``groupshared``, folders (and the autograded root) get group rwx and setgid added."""
    for dirpath, _, filenames in os.walk(dest, followlinks=False):
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                os.chmod(path, settings.permissions)
        if settings.groupshared:
            _add_group_share(Path(dirpath))
    if settings.groupshared:
        _add_group_share(Path(course.coursedir.root) / course.coursedir.autograded_directory)
        _add_group_share(dest.parent)


def _add_group_share(folder: Path) -> None:
    mode = folder.stat().st_mode
    if mode & 0o2770 != 0o2770:
        try:
            os.chmod(folder, (mode | 0o2770) & 0o2777)
        except PermissionError:
            print(f"warning: could not make {folder} group-shared", file=sys.stderr)
