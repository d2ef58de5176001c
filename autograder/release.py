"""Generate the student version of an assignment and release it to the exchange, through nbgrader's Python API.

    python -m autograder release practice_questions              # generate release/ + copy it to the exchange
    python -m autograder release fix_the_pipeline --no-exchange  # only generate release/fix_the_pipeline
    python -m autograder release practice_questions --force      # re-release over an earlier release

The same as ``nbgrader generate_assignment ASSIGNMENT --force`` followed by ``nbgrader release_assignment
ASSIGNMENT`` run from the course directory, with the course's nbgrader_config.py (so fix-the-pipeline answer cells
are released holding the broken code to repair, see autograder/stubs.py). The exchange is the course-local folder
set in nbgrader_config.py (``exchange/``), where students' ``nbgrader fetch_assignment`` finds it.

Exit code 0 when the assignment was generated (and released); 2 with a one-line reason otherwise (unknown
assignment, not a course directory, nbgrader reported a failure: its log follows the message).
"""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "generate the student version of an assignment and release it to the exchange"


def add_arguments(parser) -> None:
    parser.add_argument("assignment", metavar="ASSIGNMENT", help="a folder of source/, e.g. practice_questions")
    parser.add_argument(
        "--no-exchange",
        action="store_true",
        help="only generate release/ASSIGNMENT (nbgrader generate_assignment); do not release it",
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite an earlier release of this assignment in the exchange"
    )
    parser.add_argument(
        "--course-dir",
        metavar="PATH",
        default=None,
        help="the course directory (default: the nearest folder holding nbgrader_config.py)",
    )


def release(assignment: str, root=None, *, exchange: bool = True, force: bool = False, log=None) -> dict:
    """Generate (and release) ``assignment`` of the course at ``root``; return a summary dict.

    Raises :class:`~autograder.exceptions.UnknownAssignmentError` / :class:`CourseDirectoryError` for instructor
    mistakes and :class:`~autograder.exceptions.NbgraderStepError` (with nbgrader's log) when nbgrader fails.
    """
    from . import course
    from .exceptions import NbgraderStepError

    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    root = course.find_course_root(root)
    course.check_assignment(root, assignment)
    api = course.make_api(root, ExchangeReleaseAssignment={"force": force})
    outbound = Path(api.exchange_root) / api.course_id / "outbound" / assignment
    if exchange and not force and outbound.exists():
        # nbgrader would only notice after regenerating; say it before doing any work.
        raise NbgraderStepError(
            f"{assignment} is already released to {outbound}: add --force to overwrite it "
            "(students who fetched it keep their copy)"
        )

    say(f"[1/{2 if exchange else 1}] nbgrader generate_assignment {assignment} ...")
    _check(api.generate_assignment(assignment, force=True, create=True), "generate_assignment", assignment)
    released = course.notebook_paths(root, "release", assignment)
    summary = {
        "assignment": assignment,
        "release": str(root / "release" / assignment),
        "notebooks": [p.name for p in released],
        **_points(api, assignment),
        "exchange": None,
    }
    if exchange:
        say(f"[2/2] nbgrader release_assignment {assignment} -> {api.exchange_root} ...")
        if api.exchange_missing:
            Path(api.exchange_root).mkdir(parents=True, exist_ok=True)
        _check(
            api.release_assignment(assignment),
            "release_assignment",
            assignment,
            hint="" if force else " (already released? add --force to overwrite)",
        )
        summary["exchange"] = str(outbound)
    if not released:
        raise NbgraderStepError(f"nbgrader generated no notebook for {assignment!r} in {summary['release']}")
    return summary


def _check(result: dict, step: str, assignment: str, hint: str = "") -> None:
    from .exceptions import NbgraderStepError

    if not result or not result.get("success"):
        error = ((result or {}).get("error") or "").strip()
        log = ((result or {}).get("log") or "").strip()
        # nbgrader returns a formatted traceback: its last line says what went wrong, the rest is noise here.
        reason = error.splitlines()[-1] if error else "\n".join(log.splitlines()[-20:]) or "no log"
        raise NbgraderStepError(f"nbgrader {step} {assignment} failed{hint}: {reason}")


def _points(api, assignment: str) -> dict:
    """Autograded cells and points of the assignment, as nbgrader recorded them in the gradebook."""
    with api.gradebook as gb:
        record = gb.find_assignment(assignment)
        cells = [c for nb in record.notebooks for c in nb.grade_cells]
        return {"autograded_cells": sum(c.cell_type == "code" for c in cells), "points": record.max_score}


def run(args) -> int:
    summary = release(args.assignment, args.course_dir, exchange=not args.no_exchange, force=args.force)
    where = summary["exchange"] or summary["release"]
    print(
        f"{summary['assignment']}: {len(summary['notebooks'])} notebook(s), {summary['autograded_cells']} "
        f"autograded cells, {summary['points']:g} points -> {where}"
    )
    return 0
