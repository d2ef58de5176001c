"""Example submissions for ``make course``: a throwaway course copy with a solution, a blank and a partial submission.

    python -m autograder.examples copy build/course                     # fresh copy of nbgrader_config.py + source/
    python -m autograder.examples submit ASSIGNMENT --course-dir build/course   # after `autograder release`

``submit`` writes ``submitted/example_{solution,blank,partial}/ASSIGNMENT/`` from the course's own notebooks, so
nothing but source/ is committed: *blank* is the released notebook as a student downloads it; *solution* is the
released notebook with every autograded answer cell holding the instructor's solution (solution regions only: the
solution delimiter lines, ``### BEGIN/END SOLUTION`` or the course's own, and any fix-the-pipeline stub region are
stripped, as a student's answer would be); *partial* takes the solution for the first half of the answer cells and
leaves the rest as released.
It never touches the real course directory's gradebook or submitted/ (refuses a destination equal to its root).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .course import load_config
from .exceptions import AutograderError
from .regions import Delimiters, solution_only

STUDENTS = ("example_solution", "example_blank", "example_partial")


def _text(source) -> str:
    return source if isinstance(source, str) else "".join(source)


def submit(assignment: str, course_dir: str | Path) -> list[Path]:
    """Write the three example submissions of ``assignment`` (it must have been released into ``course_dir``)."""
    course_dir = Path(course_dir).resolve()
    release = course_dir / "release" / assignment
    notebooks = sorted(release.glob("*.ipynb"))
    if not notebooks:
        raise AutograderError(
            f"{release} has no notebooks: run `python -m autograder release {assignment} "
            f"--course-dir {course_dir}` first"
        )
    delimiters = Delimiters.from_config(load_config(course_dir))
    written = []
    for path in notebooks:
        released = json.loads(path.read_text())
        source = json.loads((course_dir / "source" / assignment / path.name).read_text())
        solutions = {
            c["metadata"]["nbgrader"]["grade_id"]: solution_only(_text(c["source"]), delimiters)
            for c in source["cells"]
            if c["metadata"].get("nbgrader", {}).get("solution") and c["cell_type"] == "code"
        }
        answer_ids = [
            c["metadata"]["nbgrader"]["grade_id"]
            for c in released["cells"]
            if c["metadata"].get("nbgrader", {}).get("grade_id") in solutions
        ]
        half = set(answer_ids[: (len(answer_ids) + 1) // 2])
        for student, chosen in zip(STUDENTS, (set(answer_ids), set(), half), strict=True):
            nb = json.loads(json.dumps(released))
            for cell in nb["cells"]:
                grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
                if grade_id in chosen:
                    cell["source"] = solutions[grade_id]
            dest = course_dir / "submitted" / student / assignment / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(json.dumps(nb, indent=1))
            (dest.parent / "timestamp.txt").write_text("2026-01-01 12:00:00.000000 UTC")
            written.append(dest)
    return written


def copy(dest: str | Path) -> Path:
    """A fresh copy of the course (nbgrader_config.py and source/) at ``dest`` (removed first if present)."""
    from .course import copy_course, find_course_root

    root, dest = find_course_root(), Path(dest).resolve()
    if dest == root:
        raise AutograderError("refusing to rebuild the course directory itself: give a folder such as build/course")
    if dest.exists():
        shutil.rmtree(dest)
    return copy_course(root, dest)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.examples", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_copy = sub.add_parser("copy", help="fresh copy of the course (config + source/) into DEST")
    p_copy.add_argument("dest")
    p_submit = sub.add_parser("submit", help="write the example submissions of ASSIGNMENT into a course copy")
    p_submit.add_argument("assignment")
    p_submit.add_argument("--course-dir", required=True)
    sub.add_parser("list", help="print the course's assignments, one a line")
    args = parser.parse_args(argv)
    try:
        if args.command == "copy":
            print(copy(args.dest), file=sys.stderr)
        elif args.command == "submit":
            for path in submit(args.assignment, args.course_dir):
                print(path, file=sys.stderr)
        else:
            from .course import find_course_root, source_assignments

            print("\n".join(source_assignments(find_course_root())))
    except AutograderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
