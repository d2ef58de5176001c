"""The practice-questions bank: validate ``question_bank.yaml`` and generate the nbgrader source notebook from it.

``python -m autograder.questions`` checks the bank and writes ``source/practice_questions/practice_questions.ipynb``;
``--check`` only reports whether the committed notebook is what the bank generates (exit 1 if not).

Every question becomes three cells: a read-only markdown cell with the question and its options, an autograded
answer cell where the student sets ``qN`` to one letter, and a test cell whose visible part checks only the format
and whose hidden part checks correctness, failing with the misconception the chosen option stands for and the hint
(so the feedback explains every lost point). The solution steps and the one-line ``why`` of each right answer are
NOT in the notebook: they stay in the bank, and ``autograder.feedback.attempt_summary`` releases them on schedule
(the why with a right answer; the steps once a student has no attempt left, or after the due date).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .exceptions import QuestionBankError
from .regions import DEFAULT

HERE = Path(__file__).resolve().parent
BANK = HERE / "question_bank.yaml"
ROOT = HERE.parent
NOTEBOOK = ROOT / "source" / "practice_questions" / "practice_questions.ipynb"
#: the nbgrader assignment generated from the bank
ASSIGNMENT = NOTEBOOK.parent.name

LETTERS = ("A", "B", "C", "D")
DIFFICULTIES = ("easy", "medium", "hard")
# The course's topics; the bank must cover every one of REQUIRED_TOPICS (the topics the lessons teach).
REQUIRED_TOPICS = ("tracking", "reproducibility", "versions", "serving", "monitoring", "automation")
TOPICS = ("mlops", *REQUIRED_TOPICS)
TOPIC_TITLES = {
    "mlops": "MLOps",
    "tracking": "experiment tracking",
    "reproducibility": "reproducible runs",
    "versions": "model versions and aliases",
    "serving": "serving",
    "monitoring": "monitoring",
    "automation": "automation",
}
QUESTION_COUNT = 10
MIN_PER_DIFFICULTY = 3
FIELDS = (
    "id",
    "origin",
    "topic",
    "difficulty",
    "question",
    "options",
    "answer",
    "misconceptions",
    "hint",
    "why",
    "solution",
)
# An iris column name written in code (`...`): "sepal_length", "petal width (cm)", "Sepal-Width"...
COLUMN_NAME = re.compile(r"(?i)\b(?:sepal|petal)[\s_-]*(?:length|width)\w*(?:\s*\(cm\))?")


def length_cue_limit(question_count: int) -> int:
    """How many questions may have the keyed option as their strictly longest option.

    A test-wise student who always picks the longest option must not beat a guesser: with four options a guess is
    right in a quarter of the questions, so the keyed option may be the strictly longest in at most
    ceil(questions / 4) of them (3 of 10). Ties for the longest do not count: they give no cue.
    """
    return math.ceil(question_count / len(LETTERS))


def course_column_names() -> tuple[str, ...]:
    """The input columns of the course's iris model (its signature): the names mlops_helpers.data gives iris."""
    from mlops_helpers.data import FEATURE_NAMES

    return tuple(FEATURE_NAMES)


@dataclass(frozen=True)
class Question:
    id: str
    origin: str
    topic: str
    difficulty: str
    question: str
    options: dict[str, str]
    answer: str
    misconceptions: dict[str, str]
    hint: str
    why: str
    solution: tuple[str, ...]
    points: int

    @property
    def number(self) -> int:
        return int(self.id[1:])


def load_bank(path: str | Path = BANK) -> list[Question]:
    """Read and validate the bank; a :class:`QuestionBankError` names the first question and rule broken."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise QuestionBankError(f"cannot read the question bank {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise QuestionBankError(f"{path}: expected a mapping with a 'questions' list")
    points = data.get("points") or {}
    if set(points) != set(DIFFICULTIES) or not all(isinstance(p, int) and p > 0 for p in points.values()):
        raise QuestionBankError(f"{path}: 'points' must give a positive integer for each of {DIFFICULTIES}")
    questions = [_question(raw, i, points) for i, raw in enumerate(data["questions"], 1)]
    validate_bank(questions)
    return questions


def _question(raw, position: int, points: dict) -> Question:
    where = f"question #{position}"
    if not isinstance(raw, dict):
        raise QuestionBankError(f"{where}: expected a mapping")
    where = f"question {raw.get('id', '#' + str(position))}"
    missing = [f for f in FIELDS if raw.get(f) in (None, "", [], {})]
    unknown = sorted(set(raw) - set(FIELDS))
    if missing or unknown:
        raise QuestionBankError(f"{where}: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}")
    if raw["id"] != f"q{position}":
        raise QuestionBankError(f"{where}: ids run q1, q2, ... in order; expected q{position}")
    if raw["difficulty"] not in DIFFICULTIES:
        raise QuestionBankError(f"{where}: difficulty must be one of {DIFFICULTIES}, not {raw['difficulty']!r}")
    if raw["topic"] not in TOPICS:
        raise QuestionBankError(f"{where}: topic must be one of {TOPICS}, not {raw['topic']!r}")
    if raw["origin"] not in ("seed", "new"):
        raise QuestionBankError(f"{where}: origin must be 'seed' or 'new'")
    options = {str(k): str(v).strip() for k, v in raw["options"].items()}
    if tuple(options) != LETTERS or not all(options.values()):
        raise QuestionBankError(f"{where}: options must be exactly {LETTERS}, in order, none empty")
    if not isinstance(raw["answer"], str) or raw["answer"] not in LETTERS:
        raise QuestionBankError(
            f"{where}: the answer must be one letter of {LETTERS} (exactly one keyed option), not {raw['answer']!r}"
        )
    if len(set(options.values())) != len(options):
        raise QuestionBankError(f"{where}: two options have the same text, so there is not exactly one keyed option")
    wrong = [letter for letter in LETTERS if letter != raw["answer"]]
    misconceptions = {str(k): str(v).strip() for k, v in raw["misconceptions"].items()}
    if sorted(misconceptions) != wrong or not all(misconceptions.values()):
        raise QuestionBankError(
            f"{where}: give one misconception for every wrong option {wrong} and none for the answer "
            f"{raw['answer']}; got {sorted(misconceptions)}"
        )
    columns = course_column_names()
    for part, text in [
        ("question", str(raw["question"])),
        *((f"option {k}", v) for k, v in options.items()),
        *((f"solution step {i}", str(step)) for i, step in enumerate(raw["solution"], 1)),
    ]:
        for code in re.findall(r"`([^`]+)`", text):
            wrong = [m.group(0) for m in COLUMN_NAME.finditer(code) if m.group(0) not in columns]
            if wrong:
                raise QuestionBankError(
                    f"{where}: {part} names the column(s) {wrong}, which the course's model does not have; "
                    f"its signature's columns are {list(columns)}"
                )
    if len(set(misconceptions.values())) != len(misconceptions):
        raise QuestionBankError(f"{where}: two options share a misconception text; feedback could not tell them apart")
    solution = raw["solution"]
    if not isinstance(solution, list) or len(solution) < 2 or not all(isinstance(s, str) and s for s in solution):
        raise QuestionBankError(f"{where}: solution must be a list of at least two steps")
    return Question(
        id=raw["id"],
        origin=raw["origin"],
        topic=raw["topic"],
        difficulty=raw["difficulty"],
        question=str(raw["question"]).strip(),
        options=options,
        answer=raw["answer"],
        misconceptions=misconceptions,
        hint=str(raw["hint"]).strip(),
        why=str(raw["why"]).strip(),
        solution=tuple(solution),
        points=points[raw["difficulty"]],
    )


def validate_bank(questions: list[Question]) -> None:
    """The whole-bank rules: ten questions, >= 3 per difficulty, the seed's five, every topic, distinct questions,
    and no answer-length cue (:func:`length_cue_limit`)."""
    if len(questions) != QUESTION_COUNT:
        raise QuestionBankError(f"the bank must hold exactly {QUESTION_COUNT} questions, not {len(questions)}")
    for level in DIFFICULTIES:
        count = sum(q.difficulty == level for q in questions)
        if count < MIN_PER_DIFFICULTY:
            raise QuestionBankError(f"only {count} {level} question(s); at least {MIN_PER_DIFFICULTY} are needed")
    seed = sum(q.origin == "seed" for q in questions)
    if seed != 5:
        raise QuestionBankError(f"the bank must keep the seed lesson's five questions, it has {seed}")
    uncovered = sorted(set(REQUIRED_TOPICS) - {q.topic for q in questions})
    if uncovered:
        raise QuestionBankError(f"no question covers: {', '.join(uncovered)}")
    if len({q.question for q in questions}) != len(questions):
        raise QuestionBankError("two questions have the same text")
    cued = [q.id for q in questions if _keyed_option_is_strictly_longest(q)]
    limit = length_cue_limit(len(questions))
    if len(cued) > limit:
        raise QuestionBankError(
            f"the keyed option is the strictly longest option in {len(cued)} questions ({', '.join(cued)}); at most "
            f"{limit} are allowed, or 'pick the longest' beats guessing: lengthen a distractor or shorten the key"
        )


def _keyed_option_is_strictly_longest(q: Question) -> bool:
    keyed = len(q.options[q.answer])
    return all(len(text) < keyed for letter, text in q.options.items() if letter != q.answer)


# ----- notebook generation -----------------------------------------------------------------------------------


def _nbgrader(grade_id: str, *, grade=False, solution=False, locked=False, points=None) -> dict:
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def _question_markdown(q: Question) -> str:
    plural = "point" if q.points == 1 else "points"
    lines = [
        f"### Question {q.number} · {q.difficulty} · {q.points} {plural}",
        f"*Topic: {TOPIC_TITLES[q.topic]}*",
        "",
        q.question,
        "",
    ]
    lines += [f"- **{letter}.** {text}" for letter, text in q.options.items()]
    lines += ["", f'Answer in the next cell: `{q.id} = "A"`, `"B"`, `"C"` or `"D"`.']
    return "\n".join(lines)


def _answer_source(q: Question) -> str:
    return "\n".join(
        [
            f"### {DEFAULT.begin_solution}",
            f"{q.id} = {q.answer!r}",
            f"### {DEFAULT.end_solution}",
            f"### {DEFAULT.begin_stub}",
            f'# {q.id} = ...  # replace ... with "A", "B", "C" or "D"',
            f"### {DEFAULT.end_stub}",
        ]
    )


def _literal(text: str, indent: int, width: int = 100) -> str:
    """``text`` as a Python string literal whose lines fit the course's line length: one ``repr`` when it is short,
    else adjacent literals in parentheses, one per line (Python joins them back into exactly ``text``)."""
    if len(text) <= width:
        return repr(text)
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line + " ")
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    if "".join(lines) != text:  # leading, trailing or repeated spaces: kept exactly, on one line
        return repr(text)
    pad = " " * indent
    return "(\n" + "".join(f"{pad}{part!r}\n" for part in lines) + " " * (indent - 4) + ")"


def _test_source(q: Question) -> str:
    """The question's test cell: a visible format check, and a hidden check cell (``mlops_helpers.checks``): under
    the course's grader neither the key nor the misconceptions (whose letters would give the key away by
    elimination) enter the student's kernel; the grader judges the letter the kernel reports."""
    explain = "\n".join(
        f"        {letter!r}: {_literal('Misconception: ' + text + ' Hint: ' + q.hint, indent=12)},"
        for letter, text in q.misconceptions.items()
    )
    return "\n".join(
        [
            "from mlops_helpers.checks import check",
            "",
            "# Checks only the format of your answer; correctness is checked when your work is graded.",
            f"assert {q.id} in {LETTERS!r}, (",
            f'    f"Set {q.id} to one of the letters \\"A\\", \\"B\\", \\"C\\" or \\"D\\" (with quotes), '
            f'not {{{q.id}!r}}.")',
            f"### {DEFAULT.begin_test}",
            f"check({q.id!r}, equals={q.answer!r}, message={f'Question {q.number}: not the best answer.'!r},",
            "      explain={",
            explain,
            "      })",
            f"### {DEFAULT.end_test}",
        ]
    )


INTRO = """# Practice questions: why MLOps bridges ML research and production

Ten questions across easy, medium and hard, on tracking, reproducible runs, model versions, serving, monitoring and
automation. The first five are the seed lesson's practice questions.

**How to answer.** Each question is followed by an answer cell: replace `...` by one capital letter in quotes, e.g.
`q1 = "B"`, and run the cell. The cell after it checks only the *format* of your answer (it passes for any of
`"A"`–`"D"`); whether the answer is right is checked when your work is graded, and the feedback then explains every
point you lost: which misconception the option you chose stands for, and a hint.

**Before you submit:** *Kernel → Restart Kernel and Run All Cells*, then press **Validate** in the notebook toolbar
(or run `nbgrader validate practice_questions.ipynb`).

Points: easy 1, medium 2, hard 3."""

OUTRO = """## Done

Restart and run all cells, press **Validate**, then submit (`nbgrader submit practice_questions --course mlops-bridge`,
or the Assignments tab). The lessons in `notebooks/` show each idea running for real: tracking
(`01_experiment_tracking`), reproducible runs (`02_reproducible_runs`) and the rest."""


def build_notebook(questions: list[Question]):
    """The practice-questions source notebook (instructor version), with stable cell ids."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [new_markdown_cell(INTRO, id="intro")]
    for q in questions:
        cells.append(
            new_markdown_cell(
                _question_markdown(q), id=f"{q.id}-question", metadata=_nbgrader(f"{q.id}_question", locked=True)
            )
        )
        cells.append(
            new_code_cell(_answer_source(q), id=f"{q.id}-answer", metadata=_nbgrader(f"{q.id}_answer", solution=True))
        )
        cells.append(
            new_code_cell(
                _test_source(q),
                id=f"{q.id}-check",
                metadata=_nbgrader(f"{q.id}_check", grade=True, locked=True, points=q.points),
            )
        )
    cells.append(new_markdown_cell(OUTRO, id="outro"))
    nb = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.validate(nb)
    return nb


def render(questions: list[Question]) -> str:
    import nbformat

    return nbformat.writes(build_notebook(questions)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.questions",
        description="Validate the practice-questions bank (autograder/question_bank.yaml) and generate the nbgrader "
        "source notebook from it. Edit the bank, then run this; never edit the generated notebook by hand.",
    )
    parser.add_argument("--bank", type=Path, default=BANK, help="the question bank (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=NOTEBOOK, help="the notebook to write (default: %(default)s)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if --output differs from what the bank generates"
    )
    args = parser.parse_args(argv)
    try:
        questions = load_bank(args.bank)
    except QuestionBankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = render(questions)
    total = sum(q.points for q in questions)
    summary = ", ".join(f"{sum(q.difficulty == d for q in questions)} {d}" for d in DIFFICULTIES)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current is None or json.loads(current) != json.loads(text):
            print(f"{args.output} is out of date: run python -m autograder.questions", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date ({len(questions)} questions: {summary}; {total} points)")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(questions)} questions: {summary}; {total} points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
