"""Class report for one assignment: grades, item analysis and two charts.

    python -m autograder report ps1                  # -> build/report/ps1/
    python -m autograder report ps1 --out somewhere/

Writes, from the gradebook (scores, with manual grades where a grader gave them) and the status file that
``python -m autograder grade`` writes (``.autograder/<assignment>.status.json``):

``grades.csv``
    one row per student: ``student_id, status, attempts, <one column per question>..., total, max_score``.
    ``attempts`` is the student's graded attempts under the grading service (``used/limit``, or ``used`` when
    unlimited, and ``(+N refused)``; empty without ``python -m autograder watch``). A question is a
    graded cell (nbgrader ``grade_id``), named ``<notebook>/<grade_id>``. Students in the gradebook who submitted
    nothing have status ``missing`` and empty question cells. ``status`` is empty for a submission graded by plain
    ``nbgrader autograde`` (which records none).
``item_analysis.csv``
    one row per question: ``question, max_score, n, mean, difficulty, discrimination, point_biserial``.
    *difficulty* = mean score / max score (the classical p-value: 1.0 = everyone got it). *discrimination* = the
    corrected item-total correlation, Pearson's r between the question's score and the total of the *other*
    questions (``scipy.stats.pearsonr``); *point_biserial* is the same correlation for a question scored
    all-or-nothing (``scipy.stats.pointbiserialr``), empty otherwise. Both are empty when undefined (fewer than 3
    students, or a question or rest-total everybody scored the same). Only submitted work counts (``missing``
    excluded); questions still waiting for a manual grade count only the students who have a score.
``grades_histogram.png``
    the distribution of total grades (percent of the maximum).
``questions.png``
    a bar per question: its difficulty (mean score as a fraction of its points).
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

from .exceptions import AutograderError

HELP = "write the class report: grades CSV, item analysis CSV, grade histogram and per-question chart"


def add_arguments(parser) -> None:
    parser.add_argument("assignment", metavar="ASSIGNMENT", help="the assignment, e.g. ps1")
    parser.add_argument(
        "--out",
        metavar="FOLDER",
        default=None,
        help="output folder (default: build/report/ASSIGNMENT under the course directory)",
    )
    parser.add_argument(
        "--course-dir",
        metavar="PATH",
        default=None,
        help="the course directory (default: the nearest folder holding nbgrader_config.py)",
    )


def run(args) -> int:
    paths = write_report(args.assignment, root=args.course_dir, out=args.out)
    for path in paths.values():
        print(path, file=sys.stderr)
    return 0


def collect(course, assignment: str) -> tuple[list[str], dict[str, float], list[dict]]:
    """(questions, question -> max score, rows): one row per gradebook student with ``student_id``, ``status``,
    ``scores`` (question -> score or None), ``total`` and ``max_score``."""
    from nbgrader.api import Gradebook, MissingEntry

    from .statuses import read_statuses

    statuses = read_statuses(course, assignment)
    rows = []
    with Gradebook(course.db_url, course.course_id or None) as gb:
        try:
            definition = gb.find_assignment(assignment)
        except MissingEntry:
            raise AutograderError(f"the gradebook has no assignment {assignment!r}") from None
        questions, max_scores = [], {}
        for nb in definition.notebooks:
            for cell in nb.grade_cells:
                q = f"{nb.name}/{cell.name}"
                questions.append(q)
                max_scores[q] = float(cell.max_score)
            for cell in nb.task_cells:
                q = f"{nb.name}/{cell.name}"
                questions.append(q)
                max_scores[q] = float(cell.max_score)
        students = sorted({s.id for s in gb.students} | set(statuses))
        for student in students:
            entry = statuses.get(student, {})
            try:
                submission = gb.find_submission(assignment, student)
            except MissingEntry:
                submission = None
            scores: dict[str, float | None] = {q: None for q in questions}
            if submission is not None:
                for snb in submission.notebooks:
                    for grade in snb.grades:
                        pending = grade.manual_score is None and (grade.needs_manual_grade or grade.auto_score is None)
                        # a cell waiting for a human has no score yet (nbgrader would count it as 0)
                        scores[f"{snb.name}/{grade.name}"] = None if pending else float(grade.score)
            status = entry.get("status") or ("" if submission is not None else "missing")
            rows.append(
                {
                    "student_id": student,
                    "status": status,
                    "scores": scores,
                    "total": float(submission.score) if submission is not None else 0.0,
                    "max_score": float(definition.max_score),
                    "submitted": submission is not None and status != "missing",
                }
            )
    return questions, max_scores, rows


def item_analysis(questions: list[str], max_scores: dict[str, float], rows: list[dict]) -> list[dict]:
    """Difficulty and discrimination per question (see the module docstring) over the submitted rows."""
    import numpy as np
    from scipy import stats

    submitted = [r for r in rows if r["submitted"]]
    out = []
    for q in questions:
        have = [r for r in submitted if r["scores"][q] is not None]
        item = np.array([r["scores"][q] for r in have], dtype=float)
        rest = np.array([sum(v or 0.0 for k, v in r["scores"].items() if k != q) for r in have], dtype=float)
        maximum = max_scores[q]
        mean = float(item.mean()) if len(item) else math.nan
        difficulty = mean / maximum if maximum and len(item) else math.nan
        discrimination = point_biserial = math.nan
        if len(item) >= 3 and np.ptp(item) > 0 and np.ptp(rest) > 0:
            discrimination = float(stats.pearsonr(item, rest).statistic)
            if set(np.unique(item)) <= {0.0, maximum}:
                point_biserial = float(stats.pointbiserialr(item == maximum, rest).statistic)
        out.append(
            {
                "question": q,
                "max_score": maximum,
                "n": len(item),
                "mean": mean,
                "difficulty": difficulty,
                "discrimination": discrimination,
                "point_biserial": point_biserial,
            }
        )
    return out


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_report(assignment: str, *, root=None, out=None) -> dict[str, Path]:
    """Write the four report files; return {"grades", "items", "histogram", "questions"} -> path."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display (headless CI, instructor servers)
    import matplotlib.pyplot as plt

    from .course import Course
    from .gradebook import check_gradebook

    course = Course.open(root)
    check_gradebook(course, assignment)
    questions, max_scores, rows = collect(course, assignment)
    if not rows:
        raise AutograderError(
            f"no students for {assignment!r} in the gradebook: grade it first "
            f"(`python -m autograder grade {assignment}`)"
        )
    from .attempts import attempts_column

    attempts = attempts_column(course.root, assignment)
    folder = Path(out) if out else Path(course.coursedir.root) / "build" / "report" / assignment
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "grades": folder / "grades.csv",
        "items": folder / "item_analysis.csv",
        "histogram": folder / "grades_histogram.png",
        "questions": folder / "questions.png",
    }

    with open(paths["grades"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_id", "status", "attempts", *questions, "total", "max_score"])
        for r in rows:
            writer.writerow(
                [
                    r["student_id"],
                    r["status"],
                    attempts.get(r["student_id"], ""),
                    *(_fmt(r["scores"][q]) for q in questions),
                    _fmt(r["total"]) if r["submitted"] else "",
                    _fmt(r["max_score"]),
                ]
            )

    items = item_analysis(questions, max_scores, rows)
    with open(paths["items"], "w", newline="") as fh:
        fields = ["question", "max_score", "n", "mean", "difficulty", "discrimination", "point_biserial"]
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for item in items:
            writer.writerow({k: _fmt(item[k]) for k in fields})

    submitted = [r for r in rows if r["submitted"]]
    percents = [100.0 * r["total"] / r["max_score"] for r in submitted if r["max_score"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(percents, bins=[i * 10 for i in range(11)], color="#4C72B0", edgecolor="white")
    ax.set(
        title=f"{assignment}: grades of {len(percents)} submission(s)",
        xlabel="grade (% of max)",
        ylabel="students",
        xlim=(0, 100),
    )
    fig.tight_layout()
    fig.savefig(paths["histogram"], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(items) + 2), 4.5))
    values = [0.0 if math.isnan(i["difficulty"]) else i["difficulty"] for i in items]
    ax.bar(range(len(items)), values, color="#55A868")
    ax.set_xticks(range(len(items)), [i["question"] for i in items], rotation=60, ha="right", fontsize=8)
    ax.set(title=f"{assignment}: mean score per question (difficulty)", ylabel="mean score / max", ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(paths["questions"], dpi=100)
    plt.close(fig)
    return paths
