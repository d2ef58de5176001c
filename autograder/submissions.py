"""Submissions, read by the grading process: who submitted, what, when, and the self-contained job for each.

Only the grading process reads ``submitted/`` and ``source/``; what a sandboxed grader needs of them travels in the
job (:class:`autograder.job.GradeJob`). A submission is untrusted: links are never followed, sizes are capped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .course import Course
from .exceptions import AutograderError, TimestampError
from .job import GradeJob, Limits
from .regions import DEFAULT, Delimiters


def find_students(
    course: Course, assignment: str, only: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """(students with a submission folder, students in the gradebook without one), sorted.

    Students come from the gradebook *and* from ``submitted/*/<assignment>/`` (nbgrader creates unknown students
    at autograde time; so do we). ``only`` restricts both lists; naming a student found in neither is an error.
    ``exclude`` (``CourseDirectory.student_id_exclude``) are left out of both.
    """
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id or None) as gb:
        known = {s.id for s in gb.students} - set(exclude)
    submitted_root = Path(course.coursedir.root) / course.coursedir.submitted_directory
    with_folder = {p.name for p in submitted_root.glob("*") if (p / assignment).is_dir()}
    with_folder -= set(exclude)
    if only:
        only = list(dict.fromkeys(only))
        unknown = [s for s in only if s not in known and s not in with_folder]
        if unknown:
            raise AutograderError(
                f"no such student for {assignment!r}: {', '.join(unknown)} (neither in the gradebook nor in submitted/)"
            )
        known &= set(only)
        with_folder &= set(only)
    return sorted(with_folder), sorted(known - with_folder)


def linked_submission(course: Course, assignment: str, student: str) -> str | None:
    """Why ``submitted/<student>/<assignment>`` cannot be graded when a level of it is not a real folder (a link
    would make the grader read the instructor's files or a classmate's work), else None."""
    submitted_root = Path(course.coursedir.root) / course.coursedir.submitted_directory
    for path in (submitted_root / student, submitted_root / student / assignment):
        if path.is_symlink() or not path.is_dir():
            return (
                f"{path.relative_to(course.root)} is a link, not a folder: not graded, nothing read through it "
                "(submissions are folders, as `nbgrader collect` makes them)"
            )
    return None


def submission_timestamp(folder: Path):
    """The submission time in ``folder/timestamp.txt`` (nbgrader's ``get_existing_timestamp``), None when there is
    no such file or it is empty; :class:`TimestampError` naming the file when it is not a date. A link is not
    followed and at most 1 kB is read (the file comes from the student's side of the exchange)."""
    from nbgrader.utils import parse_utc

    path = Path(folder) / "timestamp.txt"
    if path.is_symlink() or not path.is_file():
        return None
    with open(path, "rb") as fh:
        text = fh.read(1024).decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        return parse_utc(text)
    except (ValueError, OverflowError):
        raise TimestampError(
            f"{path.name} of this submission is not a date ({text[:40]!r}): not graded; fix or "
            "remove it (nbgrader refuses it too)"
        ) from None


def _read_capped(path: Path, cap: int) -> bytes | None:
    """The bytes of the regular file ``path`` (never through a link), or None when it holds more than ``cap``: read
    in chunks, so a huge file is never read whole."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        import stat

        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        chunks, size = [], 0
        while chunk := fh.read(min(1 << 20, cap + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                return None
    return b"".join(chunks)


def _read_tree(
    folder: Path, course: Course, budget: list[int] | None = None, skipped: list[str] | None = None
) -> dict[str, bytes]:
    """Regular files under ``folder`` (relative POSIX path -> bytes). Symlinks are skipped: a submission could
    otherwise smuggle in a link to ``gradebook.db`` or ``source/`` and have the grader read it for the sandbox.
    ``budget`` (a one-item list, bytes left): files that do not fit are left out and named in ``skipped``."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink() or not path.is_file() or course.is_ignored(rel):
                continue
            if budget is None:
                files[rel] = path.read_bytes()
                continue
            if rel.endswith(".ipynb") or rel == "timestamp.txt":
                continue  # read on their own (notebooks, capped) or not at all
            data = _read_capped(path, budget[0])
            if data is None:
                if skipped is not None:
                    skipped.append(rel)
                continue
            budget[0] -= len(data)
            files[rel] = data
    return files


def build_job(
    course: Course,
    assignment: str,
    student: str,
    specs,
    limits: Limits,
    sandbox: bool,
    execute: bool = True,
    exclude_overwriting: dict | None = None,
    delimiters: Delimiters = DEFAULT,
) -> GradeJob:
    """The self-contained job for one student's submission (read in the grading process only).

    Like ``nbgrader autograde``: the spec'd notebooks come from ``submitted/<student>/<assignment>/``; other files
    are the student's, overwritten by the instructor's versions of every non-notebook file of
    ``source/<assignment>/`` (data files, images) unless ``Autograde.exclude_overwriting`` keeps the student's.
    """
    from .job import MAX_FILES_BYTES, MAX_NOTEBOOK_BYTES

    folder = course.path(course.coursedir.submitted_directory, student, assignment)
    names = {spec.filename for spec in specs}
    notebooks: dict[str, bytes | None] = {}
    too_large = []
    for name in sorted(names):
        path = folder / name
        notebooks[name] = None
        if path.is_file() and not path.is_symlink():
            notebooks[name] = _read_capped(path, MAX_NOTEBOOK_BYTES)
            if notebooks[name] is None:
                too_large.append(name)
    skipped: list[str] = []
    files = _read_tree(folder, course, budget=[MAX_FILES_BYTES], skipped=skipped)
    notes = (
        (
            f"files left out (over {MAX_FILES_BYTES // 2**20} MB in all): {', '.join(skipped[:5])}"
            f"{' ...' if len(skipped) > 5 else ''}",
        )
        if skipped
        else ()
    )
    source = course.path(course.coursedir.source_directory, None, assignment)
    keep = set((exclude_overwriting or {}).get(assignment, []))
    if source.is_dir():
        files.update(
            {
                rel: data
                for rel, data in _read_tree(source, course).items()
                if not rel.endswith(".ipynb") and rel not in keep
            }
        )
    return GradeJob(
        course_id=course.course_id,
        assignment=assignment,
        student_id=student,
        notebooks=notebooks,
        specs=tuple(specs),
        files=files,
        limits=limits,
        sandbox=sandbox,
        execute=execute,
        too_large=tuple(too_large),
        notes=notes,
        delimiters=delimiters,
    )
