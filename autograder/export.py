"""Export the gradebook's grades to CSV, with nbgrader's own exporter (the file ``nbgrader export`` writes).

    python -m autograder export                                  # grades.csv: every assignment and student
    python -m autograder export --to build/ps.csv --assignment practice_questions
    python -m autograder export --student alice --student bob

One row per (assignment, student): assignment, duedate, timestamp, student_id, last_name, first_name, email,
raw_score, late_submission_penalty, score, max_score (nbgrader's CsvExportPlugin). Run it after grading
(``python -m autograder grade ...`` or ``nbgrader autograde ...``). Item analysis per question is the job of
``python -m autograder report``.

Exit code 0 when the CSV was written; 2 when there is no gradebook yet or an assignment / student is unknown.
"""

from __future__ import annotations

import csv
from pathlib import Path

HELP = "export grades from the gradebook to a CSV file (nbgrader's exporter)"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--to",
        metavar="CSV",
        default="grades.csv",
        help="the CSV file to write, relative to the course directory (default: %(default)s)",
    )
    parser.add_argument(
        "--assignment",
        action="append",
        default=[],
        metavar="NAME",
        help="export only this assignment (repeatable; default: all)",
    )
    parser.add_argument(
        "--student",
        action="append",
        default=[],
        metavar="ID",
        help="export only this student (repeatable; default: all)",
    )
    parser.add_argument(
        "--course-dir",
        metavar="PATH",
        default=None,
        help="the course directory (default: the nearest folder holding nbgrader_config.py)",
    )


def export(root=None, to="grades.csv", assignments=(), students=()) -> Path:
    """Write the grades CSV of the course at ``root``; return its path."""
    from nbgrader.plugins import CsvExportPlugin

    from .course import Course
    from .exceptions import UnknownAssignmentError
    from .gradebook import require_gradebook

    course = Course.open(root)
    require_gradebook(course, "release and grade an assignment first")
    root, api = course.root, course.api()

    with api.gradebook as gb:
        known_assignments = {a.name for a in gb.assignments}
        known_students = {s.id for s in gb.students}
        for name in assignments:
            if name not in known_assignments:
                known = ", ".join(sorted(known_assignments)) or "none"
                raise UnknownAssignmentError(f"no assignment {name!r} in the gradebook; it has: {known}")
        unknown = sorted(set(students) - known_students)
        if unknown:
            raise UnknownAssignmentError(f"no student {', '.join(unknown)} in the gradebook")
        dest = Path(to) if Path(to).is_absolute() else root / to
        dest.parent.mkdir(parents=True, exist_ok=True)
        CsvExportPlugin(to=str(dest), assignment=list(assignments), student=list(students)).export(gb)
    return dest


def run(args) -> int:
    dest = export(args.course_dir, args.to, args.assignment, args.student)
    with dest.open(newline="") as f:
        rows = sum(1 for _ in csv.DictReader(f))
    print(f"wrote {dest} ({rows} row(s): one per assignment and student)")
    return 0
