"""Per-student HTML feedback that shows every test's result, score and message, never a hidden test's source.

    python -m autograder feedback ps1                     # every graded student -> feedback/<student>/ps1/*.html
    python -m autograder feedback ps1 --student hacker

This is ``nbgrader generate_feedback`` (its converter, its HTML template, its ``GetGrades`` preprocessor: the
scores and comments come from the gradebook) with one more preprocessor, :class:`HideHiddenTests`. nbgrader's
feedback shows the hidden tests it ran (nbgrader issues #917 and #1363): the restored test cell's source, and
tracebacks that quote the failing line. Here, after grading:

* the source of every autograder-test cell is the instructor's (from the gradebook) with the hidden-test regions
  removed, as in the released notebook;
* a test cell's error output keeps its exception name and message (the assertion message: the misconception and
  the hint) but loses the traceback, which quotes source lines;
* any remaining output line that contains a line of hidden-test source (e.g. printed by the student's code through
  ``inspect``) is replaced by ``[hidden test]``.

Run ``python -m autograder grade`` (or ``nbgrader autograde``) first.
"""

from __future__ import annotations

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
    parser.add_argument("--student", action="append", dest="students", metavar="ID",
                        help="only this student (repeatable); default: every student graded in autograded/")
    parser.add_argument("--course-dir", metavar="PATH", default=None,
                        help="the course directory (default: the nearest folder holding nbgrader_config.py)")


def run(args) -> int:
    written = generate_feedback(args.assignment, root=args.course_dir, students=args.students)
    for path in written:
        print(path, file=sys.stderr)
    print(f"wrote {len(written)} feedback file(s)", file=sys.stderr)
    return 0


def hidden_regions(source: str, begin: str = "BEGIN HIDDEN TESTS", end: str = "END HIDDEN TESTS") -> tuple[str, list[str]]:
    """``source`` without its hidden-test regions, and the lines that were inside them (delimiters included)."""
    kept, hidden, inside = [], [], False
    for line in source.split("\n"):
        if begin in line:
            inside = True
            hidden.append(line)
        elif end in line and inside:
            inside = False
            hidden.append(line)
        elif inside:
            hidden.append(line)
        else:
            kept.append(line)
    return "\n".join(kept), hidden


def _preprocessor_class():
    """Build the preprocessor class lazily: nbgrader/nbconvert imports are slow and ``--help`` must stay fast."""
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import NbGraderPreprocessor
    from traitlets import Unicode

    class HideHiddenTests(NbGraderPreprocessor):
        """Remove hidden-test source from a graded notebook before it is rendered as feedback.

        Hidden regions are taken from the gradebook's copy of each test cell (the instructor's source), not from
        the submission, so an edited test cell cannot make them reappear. See the module docstring.
        """

        begin_test_delimeter = Unicode("BEGIN HIDDEN TESTS").tag(config=True)  # nbgrader's spelling and default
        end_test_delimeter = Unicode("END HIDDEN TESTS").tag(config=True)

        def preprocess(self, nb, resources):
            info = resources["nbgrader"]
            self.clean_source: dict[str, str] = {}
            self.hidden_lines: set[str] = set()
            with Gradebook(info["db_url"]) as gb:
                notebook = gb.find_notebook(info["notebook"], info["assignment"])
                for cell in notebook.source_cells:
                    clean, hidden = hidden_regions(cell.source or "", self.begin_test_delimeter,
                                                   self.end_test_delimeter)
                    if hidden:
                        self.clean_source[cell.name] = clean
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
                cell.source, hidden = hidden_regions(cell.source, self.begin_test_delimeter, self.end_test_delimeter)
                has_hidden = bool(hidden)
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


def feedback_config(config):
    """The course config with :class:`HideHiddenTests` inserted in ``GenerateFeedback.preprocessors``."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades
    from traitlets.config import Config

    config = Config(config)  # a copy
    config.merge(Config({"GenerateFeedback": {
        "preprocessors": [GetGrades, _preprocessor_class(), CSSHTMLHeaderPreprocessor]},
        "HTMLExporter": {"template_name": "feedback"}}))
    return config


def generate_feedback(assignment: str, *, root=None, students=None) -> list[Path]:
    """Write the feedback HTML of every graded student of ``assignment`` (or of ``students``); return the files."""
    from nbgrader.converters import GenerateFeedback
    from nbgrader.converters.base import NbGraderException
    from nbgrader.coursedir import CourseDirectory

    from .grade import Course, check_gradebook

    course = Course.open(root)
    check_gradebook(course, assignment)
    autograded = Path(course.coursedir.root) / course.coursedir.autograded_directory
    graded = sorted(p.name for p in autograded.glob("*") if (p / assignment).is_dir())
    if students:
        unknown = [s for s in students if s not in graded]
        if unknown:
            raise AutograderError(f"no graded submission of {assignment!r} for: {', '.join(unknown)} "
                                  f"(run `python -m autograder grade {assignment}` first)")
        graded = [s for s in graded if s in students]
    if not graded:
        raise AutograderError(f"no graded submission of {assignment!r} in {autograded}: "
                              f"run `python -m autograder grade {assignment}` first")
    config = feedback_config(course.config)
    written = []
    for student in graded:
        coursedir = CourseDirectory(config=config)
        coursedir.assignment_id = assignment
        coursedir.student_id = student
        app = GenerateFeedback(coursedir=coursedir, config=config)
        app.force = True
        try:
            app.start()
        except NbGraderException as exc:
            raise AutograderError(f"feedback for {student} failed: {exc}") from exc
        out = Path(coursedir.format_path(coursedir.feedback_directory, student, assignment))
        written.extend(sorted(out.glob("*.html")))
    return written
