"""Test helper: students' answers to the ``practice_questions`` assignment, built from its source notebook.

The right answers and the points are read from ``source/practice_questions`` (never typed here), so the expected
scores follow the assignment when it changes. Used by the PostgreSQL gradebook test and the Validate browser test.
"""

from __future__ import annotations

from pathlib import Path

ASSIGNMENT = "practice_questions"


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def source_answers(root: Path) -> tuple[dict[str, str], dict[str, float]]:
    """(answer cell grade_id -> solution code, autograded check cell grade_id -> points) of the source notebook."""
    import nbformat

    (source,) = (Path(root) / "source" / ASSIGNMENT).glob("*.ipynb")
    answers, points = {}, {}
    for cell in nbformat.read(str(source), as_version=4).cells:
        meta = _meta(cell)
        if meta.get("solution"):
            lines, in_stub = [], False
            for line in cell.source.split("\n"):
                in_stub = in_stub or "BEGIN STUB" in line
                if not in_stub and "SOLUTION" not in line:
                    lines.append(line)
                in_stub = in_stub and "END STUB" not in line
            answers[meta["grade_id"]] = "\n".join(lines).strip()
        elif meta.get("grade") and cell.cell_type == "code":
            points[meta["grade_id"]] = float(meta["points"])
    return answers, points


def wrong_answer(solution: str) -> str:
    """``q3 = 'C'`` -> ``q3 = 'D'``: a well-formed answer (it passes the visible format check) that is wrong."""
    name, letter = solution.split("=")
    letter = letter.strip().strip("'\"")
    return f"{name.strip()} = {'ABCD'['ABCD'.index(letter) + 1 - 4]!r}"


def answered(root: Path, right: set[str], *, wrong_for_the_rest: bool = True):
    """The released notebook with the answer cells in ``right`` solved and the others answered wrongly
    (or left as released when ``wrong_for_the_rest`` is False)."""
    import nbformat

    answers, _ = source_answers(root)
    (release,) = (Path(root) / "release" / ASSIGNMENT).glob("*.ipynb")
    nb = nbformat.read(str(release), as_version=4)
    for cell in nb.cells:
        grade_id = _meta(cell).get("grade_id", "")
        if grade_id in answers:
            if grade_id in right:
                cell.source = answers[grade_id]
            elif wrong_for_the_rest:
                cell.source = wrong_answer(answers[grade_id])
    return nb


def write(nb, path: Path) -> Path:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
