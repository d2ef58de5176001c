"""The grading statuses of an assignment: ``.autograder/<assignment>.status.json`` at the course root.

nbgrader's gradebook has no place for a submission's status (ok, timeout, kernel_died, ...; see
:data:`autograder.job.STATUSES`) and its reason: ``grade`` writes them here after every run and ``report`` reads
them. The file lives in the engine's own folder (:data:`autograder.course.ENGINE_DIR`), apart from every student's.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .course import Course
from .job import GradeResult

STATUS_FILE = "{assignment}.status.json"


def status_file(course: Course, assignment: str) -> Path:
    """Where the statuses of ``assignment`` are kept."""
    return course.engine_dir / STATUS_FILE.format(assignment=assignment)


def write_statuses(course: Course, assignment: str, results: list[GradeResult]) -> Path:
    """Merge ``results`` into ``.autograder/<assignment>.status.json`` (what ``report`` reads).

    Format: ``{"assignment": ..., "students": {student_id: {"status", "reason", "score", "max_score", "seconds",
    "graded_at", "notebooks": {name: {"status", "reason"}}}}}``. Grading a subset keeps the others' entries.
    """
    import fcntl

    path = status_file(course, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two graders may run at once on one course (e.g. by student, on a PostgreSQL gradebook): the merge is a
    # read-modify-write, so it holds an exclusive lock on a side file for its whole duration.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = {"assignment": assignment, "students": {}}
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except ValueError:
                pass
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        for r in results:
            data["students"][r.student_id] = {
                "status": r.status,
                "reason": r.reason,
                "score": r.score,
                "max_score": r.max_score,
                "seconds": round(r.seconds, 3),
                "graded_at": now,
                "notebooks": {nb.name: {"status": nb.status, "reason": nb.reason} for nb in r.notebooks},
            }
        data["students"] = dict(sorted(data["students"].items()))
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    return path


def read_statuses(course_or_root, assignment: str) -> dict[str, dict]:
    """student_id -> status entry, from the file :func:`write_statuses` wrote ({} when there is none)."""
    course = course_or_root if isinstance(course_or_root, Course) else Course.open(course_or_root)
    path = status_file(course, assignment)
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("students", {})
