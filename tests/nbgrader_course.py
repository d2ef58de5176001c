"""Test helper: nbgrader's own documentation example course (ps1; students bitdiddle and hacker) in a temp folder.

It ships inside the installed nbgrader package (docs/source/user_guide), together with the grades nbgrader's
documentation lists for it (grades.csv): the drop-in tests compare against those, not against numbers typed here.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbgrader

USER_GUIDE = Path(nbgrader.__file__).parent / "docs" / "source" / "user_guide"
BIN = Path(sys.executable).parent

#: A hidden-test region added to ps1's first test cell by ``docs_course(..., hidden_tests=True)`` (ps1 has none).
HIDDEN_TEST_LINES = [
    "### BEGIN HIDDEN TESTS",
    "assert squares(12)[-1] == 144, 'squares(12) must end with 144: the range must include n itself'",
    "assert len(squares(20)) == 20, 'squares(n) must return exactly n numbers'",
    "### END HIDDEN TESTS",
]
HIDDEN_MESSAGES = [
    "squares(12) must end with 144: the range must include n itself",
    "squares(n) must return exactly n numbers",
]


def documented_scores() -> dict[str, float]:
    """student_id -> score, as nbgrader's documentation lists them (user_guide/grades.csv)."""
    with open(USER_GUIDE / "grades.csv") as fh:
        return {row["student_id"]: float(row["score"]) for row in csv.DictReader(fh)}


def env() -> dict[str, str]:
    """Environment for nbgrader / autograder subprocesses: the venv's bin first (nbgrader needs alembic)."""
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def docs_course(dest: Path, *, hidden_tests: bool = False) -> Path:
    """A fresh copy of the example course in ``dest`` with its own nbgrader_config.py; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(USER_GUIDE / "source" / "ps1", dest / "source" / "ps1")
    for student in ("bitdiddle", "hacker"):
        shutil.copytree(USER_GUIDE / "submitted" / student, dest / "submitted" / student)
    (dest / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'example_course'\n")
    if hidden_tests:
        path = dest / "source" / "ps1" / "problem1.ipynb"
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["metadata"].get("nbgrader", {}).get("grade_id") == "correct_squares":
                source = "".join(cell["source"]).rstrip("\n").split("\n")
                cell["source"] = "\n".join(source + HIDDEN_TEST_LINES)
        path.write_text(json.dumps(nb, indent=1))
    return dest


def nbgrader_cli(course: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run plain ``nbgrader ARGS`` in ``course`` (raises on a non-zero exit, with its output)."""
    proc = subprocess.run(
        [str(BIN / "nbgrader"), *args], cwd=course, env=env(), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def autograder_cli(course: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``python -m autograder ARGS`` in ``course`` and return the finished process (not checked)."""
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        cwd=course,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def gradebook_scores(course: Path, assignment: str = "ps1") -> dict[str, dict[str, float | None]]:
    """student_id -> {"<notebook>/<grade_id>": auto_score, ..., "total": submission score}, read from the gradebook."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for submission in gb.find_assignment(assignment).submissions:
            scores = {f"{nb.name}/{g.name}": g.auto_score for nb in submission.notebooks for g in nb.grades}
            scores["total"] = submission.score
            out[submission.student_id] = scores
    return out


#: ``squares`` of the third student, ``partial``: passes ps1's visible asserts, fails the hidden one.
PARTIAL_SQUARES = (
    "def squares(n):\n    if n < 1:\n        raise ValueError('n < 1')\n"
    "    return [i ** 2 for i in range(1, min(n, 11) + 1)]"
)


def generated_course(dest: Path) -> Path:
    """The example course in ``dest`` with a hidden-test region in ps1 and a third student, ``partial`` (hacker's
    work with :data:`PARTIAL_SQUARES`), ps1 generated; returns ``dest``."""
    course = docs_course(dest, hidden_tests=True)
    shutil.copytree(course / "submitted" / "hacker", course / "submitted" / "partial")
    path = course / "submitted" / "partial" / "ps1" / "problem1.ipynb"
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "squares":
            cell["source"] = PARTIAL_SQUARES
    path.write_text(json.dumps(nb))
    nbgrader_cli(course, "generate_assignment", "ps1")
    return course


def graded_course(generated: Path, dest: Path) -> tuple[Path, dict[str, dict]]:
    """A copy of ``generated`` in ``dest`` graded by ``python -m autograder grade ps1 --json``:
    (course folder, {student_id: JSON row})."""
    shutil.copytree(generated, dest)
    proc = autograder_cli(dest, "grade", "ps1", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dest, {row["student_id"]: row for row in json.loads(proc.stdout)}
