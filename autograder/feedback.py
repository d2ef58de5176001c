"""Per-student HTML feedback that shows every test's result, score and message, never a hidden test's source.

    python -m autograder feedback ps1                     # every graded student -> feedback/<student>/ps1/*.html
    python -m autograder feedback ps1 --student hacker

This is ``nbgrader generate_feedback`` (its converter, its HTML template, its ``GetGrades`` preprocessor: the
scores and comments come from the gradebook) with one more preprocessor, :class:`HideHiddenTests`. nbgrader's
feedback shows the hidden tests it ran: the restored test cell's source, and tracebacks that quote the failing
line. Here, after grading:

* the source of every autograder-test cell is the instructor's (from the gradebook) with the hidden-test regions
  removed, as in the released notebook;
* a test cell's error output keeps its exception name and message (the assertion message: the misconception and
  the hint) but loses the traceback, which quotes source lines;
* any remaining output line that contains a line of hidden-test source (e.g. printed by the student's code through
  ``inspect``) is replaced by ``[hidden test]``;
* once a test cell with hidden tests has run, student code could have read them (from the kernel's history or
  source cache) and print them encoded (base64, reversed, split across lines), which no scrubbing can recognise:
  the printed and displayed outputs of that cell and of every later cell are not shown (a note says so); errors
  keep their name and message. Check cells (``mlops_helpers.checks``, the course's own assignments) do not count:
  their hidden checks never enter the student's kernel, so their outputs and the later cells' are shown.

Run ``python -m autograder grade`` (or ``nbgrader autograde``) first.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

from .exceptions import AutograderError

HELP = "write per-student HTML feedback (test results and messages, hidden tests removed)"

#: Hidden-test lines shorter than this (after stripping) are too generic to scrub from outputs (``)``, ``pass``);
#: they are still removed from the cell sources, where regions are cut out whole.
MIN_SCRUB_CHARS = 8
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def add_arguments(parser) -> None:
    parser.add_argument("assignment", metavar="ASSIGNMENT", help="the assignment, e.g. ps1")
    parser.add_argument(
        "--student",
        action="append",
        dest="students",
        metavar="ID",
        help="only this student (repeatable); default: every student graded in autograded/",
    )
    parser.add_argument(
        "--course-dir",
        metavar="PATH",
        default=None,
        help="the course directory (default: the nearest folder holding nbgrader_config.py)",
    )


def run(args) -> int:
    failed: list[str] = []
    written = generate_feedback(args.assignment, root=args.course_dir, students=args.students, failures=failed)
    for path in written:
        print(path, file=sys.stderr)
    print(
        f"wrote {len(written)} feedback file(s)" + (f"; {len(failed)} student(s) failed, see above" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


def _preprocessor_class():
    """Build the preprocessor class lazily: nbgrader/nbconvert imports are slow and ``--help`` must stay fast."""
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import NbGraderPreprocessor

    from .checks import parse_check_cell
    from .regions import Delimiters, hidden_regions

    class HideHiddenTests(NbGraderPreprocessor):
        """Remove hidden-test source from a graded notebook before it is rendered as feedback.

        Hidden regions are taken from the gradebook's copy of each test cell (the instructor's source), not from
        the submission, so an edited test cell cannot make them reappear. See the module docstring.
        """

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            # the course's hidden-test delimiters (ClearHiddenTests' settings), as nbgrader released the notebook
            self.delimiters = Delimiters.from_config(self.config)

        def preprocess(self, nb, resources):
            info = resources["nbgrader"]
            self.after_hidden = False  # a test cell with hidden tests has run (cells are visited in order)
            self.clean_source: dict[str, str] = {}
            self.check_cells: set[str] = set()  # hidden checks judged outside the kernel: nothing to leak
            self.hidden_lines: set[str] = set()
            with Gradebook(info["db_url"]) as gb:
                notebook = gb.find_notebook(info["notebook"], info["assignment"])
                for cell in notebook.source_cells:
                    clean, hidden = hidden_regions(cell.source or "", self.delimiters)
                    if hidden:
                        self.clean_source[cell.name] = clean
                        if parse_check_cell(cell.source or "", self.delimiters) is not None:
                            self.check_cells.add(cell.name)
                        self.hidden_lines.update(h.strip() for h in hidden if len(h.strip()) >= MIN_SCRUB_CHARS)
            return super().preprocess(nb, resources)

        def _scrub(self, text: str) -> str:
            if not self.hidden_lines:
                return text
            lines = text.split("\n")
            for i, line in enumerate(lines):
                plain = _ANSI.sub("", line)
                if any(h in plain for h in self.hidden_lines):
                    lines[i] = "[hidden test]"
            return "\n".join(lines)

        def preprocess_cell(self, cell, resources, index):
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            has_hidden = grade_id in self.clean_source
            if has_hidden:
                cell.source = self.clean_source[grade_id]
            else:
                cell.source, hidden = hidden_regions(cell.source, self.delimiters)
                has_hidden = bool(hidden)
            if has_hidden and cell.get("cell_type") == "code" and grade_id not in self.check_cells:
                self.after_hidden = True
            if self.after_hidden and cell.get("outputs"):
                kept = [o for o in cell.outputs if o.get("output_type") == "error"]
                if len(kept) < len(cell.outputs):
                    from nbformat.v4 import new_output

                    kept.insert(
                        0,
                        new_output(
                            "stream",
                            name="stdout",
                            text=("[output not shown in the feedback: it was produced after hidden tests ran]\n"),
                        ),
                    )
                cell.outputs = kept
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    if has_hidden:
                        # The traceback quotes the failing (maybe hidden) line: keep only "Name: message".
                        output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
                    output["evalue"] = self._scrub(output.get("evalue", ""))
                    output["traceback"] = [self._scrub(t) for t in output.get("traceback", [])]
                elif output.get("output_type") == "stream":
                    output["text"] = self._scrub(output.get("text", ""))
                for mime, value in list(output.get("data", {}).items()):
                    if isinstance(value, str) and mime.startswith("text/"):
                        output["data"][mime] = self._scrub(value)
            return cell, resources

    return HideHiddenTests


def _preamble_class():
    """A preprocessor putting the student's summary (attempt, score that counts, what each answer means) on top."""
    from nbformat.v4 import new_markdown_cell
    from nbgrader.preprocessors import NbGraderPreprocessor
    from traitlets import Unicode

    class FeedbackPreamble(NbGraderPreprocessor):
        """Insert ``text`` (markdown) as the first cell of the feedback notebook; nothing when it is empty."""

        text = Unicode("").tag(config=True)

        def preprocess(self, nb, resources):
            if self.text:
                nb.cells.insert(0, new_markdown_cell(self.text))
            return nb, resources

    return FeedbackPreamble


def feedback_config(config, preamble: str = ""):
    """The course config with :class:`HideHiddenTests` (and the summary ``preamble``, markdown) inserted in
    ``GenerateFeedback.preprocessors``."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades
    from traitlets.config import Config

    config = Config(config)  # a copy
    config.merge(
        Config(
            {
                "GenerateFeedback": {
                    "preprocessors": [GetGrades, _preprocessor_class(), _preamble_class(), CSSHTMLHeaderPreprocessor]
                },
                "FeedbackPreamble": {"text": preamble},
                "HTMLExporter": {"template_name": "feedback"},
            }
        )
    )
    return config


def generate_feedback(
    assignment: str, *, root=None, students=None, preambles: dict | None = None, failures: list[str] | None = None
) -> list[Path]:
    """Write the feedback HTML of every graded student of ``assignment`` (or of ``students``); return the files.

    A student whose feedback cannot be made is reported on stderr and appended to ``failures``; the others carry
    on (AutograderError only when none could be written).

    Each page starts with the student's summary (:func:`attempt_summary`; ``preambles`` maps a student to the
    markdown to use instead)."""
    from nbgrader.converters import GenerateFeedback
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory

    from .course import Course
    from .gradebook import check_gradebook

    course = Course.open(root)
    check_gradebook(course, assignment)
    autograded = Path(course.coursedir.root) / course.coursedir.autograded_directory
    graded = sorted(p.name for p in autograded.glob("*") if (p / assignment).is_dir())
    if students:
        unknown = [s for s in students if s not in graded]
        if unknown:
            raise AutograderError(
                f"no graded submission of {assignment!r} for: {', '.join(unknown)} "
                f"(run `python -m autograder grade {assignment}` first)"
            )
        graded = [s for s in graded if s in students]
    if not graded:
        raise AutograderError(
            f"no graded submission of {assignment!r} in {autograded}: "
            f"run `python -m autograder grade {assignment}` first"
        )
    written, failed = [], failures if failures is not None else []
    for student in graded:
        # one student's odd submission (a truncated notebook, an unusual id) never stops the others' feedback
        try:
            if preambles is not None and student in preambles:
                preamble = preambles[student]
            else:
                preamble = attempt_summary(course, assignment, student)
            config = feedback_config(course.config, preamble)
            coursedir = CourseDirectory(config=config)
            coursedir.assignment_id = assignment
            coursedir.student_id = student
            app = GenerateFeedback(coursedir=coursedir, config=config)
            app.force = True
            app.start()
            out = Path(coursedir.format_path(coursedir.feedback_directory, student, assignment))
            written.extend(sorted(out.glob("*.html")))
        except (NbGraderException, Exception) as exc:  # noqa: BLE001 - reported per student
            failed.append(f"{student!r}: {type(exc).__name__}: {str(exc)[:300]}")
            print(f"feedback for {student!r} failed: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
    if failed and not written:
        raise AutograderError(f"no feedback could be written: {'; '.join(failed)}")
    return written


# ----------------------------------------------------------------------------------------------- the summary
#: What a grading status means, in the student's words (shown on top of their feedback).
STATUS_WORDS = {
    "refused": "This attempt was not graded.",
    "timeout": "Your notebook ran out of time: a cell ran longer than allowed (an infinite loop?). The cells "
    "before it were graded.",
    "kernel_died": "The Python kernel running your notebook died (too much memory, or a crash).",
    "resource_limit": "Your notebook went over a limit (memory, processes or output).",
    "invalid_notebook": "Your submission is not a notebook that can be read (was the .ipynb file edited by hand "
    "or truncated?).",
    "missing": "The notebook was missing from your submission.",
    "error": "The grader failed on your submission (the grading service logged it for your instructor); it did not "
    "use up an attempt.",
}


def attempt_summary(course, assignment: str, student: str, *, attempt=None, ledger=None, policy=None) -> str:
    """The markdown shown on top of a student's feedback: the attempt number, the attempts left and the score that
    counts (from the attempts ledger, when the grading service graded the work), then what every answer means.

    Practice questions: for a wrong answer the misconception that option stands for and the hint, for a right one a
    line on why it is right; the step-by-step solutions only once no attempt is left or after the due date.
    Exercises: every check's points, and for a failed one its message (never its source). Messages come from the
    graded notebook, scrubbed of hidden-test lines and HTML-escaped (they may quote what the student's code did).
    """
    from .attempts import Ledger, load_policy, past_due, standing

    ledger = ledger if ledger is not None else Ledger(course.root)
    policy = policy if policy is not None else load_policy(course.root)
    if attempt is None:
        graded = [a for a in ledger.of(assignment, student) if a.graded]
        attempt = graded[-1] if graded else None
    s = standing(ledger, policy, assignment, student)
    lines = []
    if attempt is not None:
        lines.append(f"## Your attempt {attempt.number}" + (" (late)" if attempt.late else ""))
        if attempt.state == "refused":
            lines.append(f"**This attempt was not graded.** {html.escape(attempt.reason)}")
        elif attempt.score is not None:
            lines.append(f"**This attempt: {attempt.score:g} / {attempt.max_score:g}** (status: {attempt.status})")
        if attempt.state != "refused" and attempt.status in STATUS_WORDS:
            lines.append(STATUS_WORDS[attempt.status] + (f" *{html.escape(attempt.reason)}*" if attempt.reason else ""))
        left = s.describe_left() + ("" if s.limit is None else f" of {s.limit}")
        lines.append(f"Attempts left: **{left}**.")
        if s.counted is not None:
            lines.append(
                f"Score that counts ({s.counting} of your graded attempts): **{s.score:g} / "
                f"{s.counted.max_score:g}** (attempt {s.counted.number})."
            )
    details = [] if attempt is not None and attempt.state == "refused" else _details(course, assignment, student)
    lines += details
    from .questions import ASSIGNMENT as PRACTICE
    from .questions import load_bank

    if assignment == PRACTICE:
        if s.left == 0 or past_due(course, assignment):
            lines.append("## Step-by-step solutions")
            for q in load_bank():
                steps = "\n".join(f"{i}. {step}" for i, step in enumerate(q.solution, 1))
                lines.append(f"**Question {q.number}**\n\n{steps}")
        else:
            lines.append(
                "*The step-by-step solutions are shown here once you have no attempt left, or after the due date.*"
            )
    return "\n\n".join(lines)


def _details(course, assignment: str, student: str) -> list[str]:
    """One line per graded cell of the student's graded submission ([] when there is none)."""
    import nbformat
    from nbgrader.api import Gradebook, MissingEntry

    from .questions import ASSIGNMENT as PRACTICE
    from .questions import load_bank
    from .regions import Delimiters, hidden_regions

    delimiters = Delimiters.from_config(course.config)
    autograded = Path(course.coursedir.root) / course.coursedir.autograded_directory / student / assignment
    out = []
    with Gradebook(course.db_url, course.course_id or None) as gb:
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            return []
        for snb in submission.notebooks:
            grades = {g.name: (g.score, g.max_score) for g in snb.grades}
            hidden: set[str] = set()
            for cell in gb.find_notebook(snb.name, assignment).source_cells:
                _, lines = hidden_regions(cell.source or "", delimiters)
                hidden.update(h.strip() for h in lines if len(h.strip()) >= MIN_SCRUB_CHARS)
            path = autograded / f"{snb.name}.ipynb"
            try:
                nb = nbformat.read(str(path), as_version=4)
            except Exception:  # noqa: BLE001 - not executed / unreadable: scores only
                nb = nbformat.v4.new_notebook()
            cells = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
            if assignment == PRACTICE:
                out.append("### Your answers")
                for q in load_bank():
                    score, maximum = grades.get(f"{q.id}_check", (0.0, q.points))
                    letter = _answer_letter(cells.get(f"{q.id}_answer"), q.id)
                    if score is not None and maximum and score >= maximum:
                        out.append(
                            f"- ✅ **Question {q.number}** ({maximum:g}/{maximum:g}): {letter or 'your answer'}"
                            f" is right. {q.why}"
                        )
                    elif letter in q.misconceptions:
                        out.append(
                            f"- ❌ **Question {q.number}** (0/{maximum:g}): you answered {letter}. "
                            f"*Misconception:* {q.misconceptions[letter]} *Hint:* {q.hint}"
                        )
                    else:
                        out.append(
                            f"- ❌ **Question {q.number}** (0/{maximum:g}): no answer (set `{q.id}` to one "
                            f'letter, "A" to "D"). *Hint:* {q.hint}'
                        )
                continue
            out.append(f"### Checks of {html.escape(snb.name)}")
            for name, (score, maximum) in grades.items():
                cell = cells.get(name)
                if cell is None or cell.get("cell_type") != "code":
                    continue
                score = score or 0.0
                if maximum and score >= maximum:
                    out.append(f"- ✅ `{name}`: {score:g}/{maximum:g}")
                    continue
                message = ""
                for output in cell.get("outputs", []):
                    if output.get("output_type") == "error":
                        text = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
                        text = "\n".join(
                            "[hidden test]" if any(h in line for h in hidden) else line
                            for line in _ANSI.sub("", text).split("\n")
                        )
                        message = " ".join(text.split())[:400]
                why = f" — {html.escape(message)}" if message else " — no error message (see the cell below)"
                out.append(f"- ❌ `{name}`: {score:g}/{maximum:g}{why}")
    return out


def _answer_letter(cell, variable: str) -> str | None:
    """The letter a practice answer cell assigns to ``variable`` (``q3 = "C"``), or None (read, never run)."""
    import ast

    if cell is None:
        return None
    try:
        tree = ast.parse(cell.get("source", ""))
    except SyntaxError:
        return None
    letter = None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == variable for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            letter = node.value.value.strip().upper()
    return letter if letter in ("A", "B", "C", "D") else None
