"""nbgrader's own autograde test suite (``nbgrader/tests/apps/test_nbgrader_autograde.py``, nbgrader 0.9.6), ported
to this project's grading engine: one test per nbgrader test, with the same name, in the same order.

Each test sets the course up as nbgrader's test does (gradebook entries, source notebook, ``generate_assignment``),
using nbgrader's Python API in this process, then runs ``python -m autograder grade`` (its ``main()`` here; the
grading happens in worker processes, sandboxed) where nbgrader's test runs ``nbgrader autograde``, and checks what
nbgrader's test checks: files in ``autograded/``, scores, "needs manual grade" flags, comments, timestamps and late
penalties in the gradebook, permissions. Where this engine differs from nbgrader on purpose, the test asserts this
engine's documented behaviour and its docstring says so: an instructor error (unknown assignment) exits 2, not 1;
every submission is always regraded (nbgrader skips an already graded one unless ``--force`` or a newer timestamp);
one bad submission is a status (``--json``), never a crash of the batch, and the exit code is 0 whenever every
submission got one (nbgrader exits 1 when any submission fails; ``Autograde.create_student=False`` exits 1 here too);
a notebook missing from a submission is status ``missing`` naming it; a kernel other than Python is status ``error``
naming it. The two tests nbgrader always skips run here: test_many_students (marked ``full`` and ``postgres``: 50
sandboxed submissions on a PostgreSQL gradebook limited to 5 connections, slow) and
test_infinite_loop_with_output (the kernel's memory limit stops it in seconds).

The fixture notebooks are nbgrader's own, copied in ``tests/nbgrader_files/`` with nbgrader's licence.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.sandbox

FILES = Path(__file__).resolve().parent / "nbgrader_files"
DUEDATE = "2015-02-02 14:58:23.948203 America/Los_Angeles"


class Course:
    """One test's nbgrader course directory (``nbgrader_config.py`` at its root), set up the way nbgrader's tests
    set theirs up, and graded with this project's CLI."""

    def __init__(self, root: Path, db: str | None, capsys, empty_gradebook: Path):
        self.root = root
        self.db = db  # None: the course's default gradebook.db, as nbgrader's tests that pass no --db
        self.capsys = capsys
        root.mkdir(parents=True)
        (root / "nbgrader_config.py").write_text("c = get_config()\n")
        if self.db_url.startswith("sqlite:///"):
            # a copy of an empty gradebook nbgrader created (its alembic migrations cost seconds a gradebook)
            shutil.copy(empty_gradebook, self.db_url[len("sqlite:///") :])

    # ------------------------------------------------------------------ set-up (nbgrader's API, in this process)
    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.root / 'gradebook.db'}"

    def config(self, line: str) -> None:
        """Append a line to nbgrader_config.py (nbgrader's tests: ``open("nbgrader_config.py", "a")``)."""
        with open(self.root / "nbgrader_config.py", "a") as fh:
            fh.write(line.rstrip("\n") + "\n")

    def gradebook(self):
        from nbgrader.api import Gradebook

        return Gradebook(self.db_url)

    def add(self, assignment: str = "ps1", students=("foo", "bar"), duedate: str | None = DUEDATE) -> None:
        """``nbgrader db assignment add ps1 --duedate ...`` and ``nbgrader db student add ...``."""
        with self.gradebook() as gb:
            if duedate is None:
                gb.update_or_create_assignment(assignment)
            else:
                gb.update_or_create_assignment(assignment, duedate=duedate)
            for student in students:
                gb.update_or_create_student(student)

    def generate(self, assignment: str = "ps1") -> None:
        """``nbgrader generate_assignment ps1 [--db URL]`` through nbgrader's NbGraderAPI."""
        from autograder.course import make_api

        overrides = {"CourseDirectory": {"db_url": self.db}} if self.db else {}
        result = make_api(self.root, **overrides).generate_assignment(assignment)
        assert result["success"], result.get("error") or result.get("log")

    def copy(self, fixture: str, rel: str) -> Path:
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.unlink()
        shutil.copy(FILES / fixture if not os.path.isabs(fixture) else fixture, dest)
        return dest

    def make_file(self, rel: str, contents: str = "") -> Path:
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.unlink()
        dest.write_text(contents)
        return dest

    def empty_notebook(self, rel: str, kernel: str | None = None) -> Path:
        """nbgrader's BaseTestApp._empty_notebook: a notebook without cells, with a kernelspec of ``kernel``."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        if kernel is not None:
            nb.metadata.kernelspec = {"display_name": "kernel", "language": kernel, "name": kernel}
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.unlink()
        with open(dest, "w", encoding="utf-8") as fh:
            nbformat.write(nb, fh, 4)
        return dest

    def path(self, rel: str) -> Path:
        return self.root / rel

    def text(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def permissions(self, rel: str) -> str:
        """nbgrader's BaseTestApp._get_permissions: '444', or four digits when setgid is set."""
        mode = os.stat(self.root / rel).st_mode
        return oct(mode)[-4:] if mode & stat.S_ISGID else oct(mode)[-3:]

    # ------------------------------------------------------------------ grading (our CLI)
    def grade(self, *args: str, assignment: str = "ps1", retcode: int = 0) -> dict[str, dict]:
        """``python -m autograder grade ASSIGNMENT --json ARGS`` through the CLI's ``main()`` in this process (student
        code runs in the engine's worker processes, sandboxed). Asserts the exit code; returns the ``--json`` rows
        by student (empty when the CLI refused before grading). ``--db URL`` is passed when the test has a ``db``."""
        from autograder.cli import main

        self.capsys.readouterr()
        argv = ["grade", assignment, "--course-dir", str(self.root), "--json", *args]
        if self.db:
            argv += ["--db", self.db]
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse refusing an argument: keep its message for the assertion below
            code = exc.code
        captured = self.capsys.readouterr()
        self.stderr = captured.err
        assert code == retcode, f"exit code {code} (expected {retcode}):\n{captured.err[-3000:]}"
        return {row["student_id"]: row for row in json.loads(captured.out)} if captured.out.strip() else {}


@pytest.fixture
def db(tmp_path) -> str:
    """nbgrader's ``db`` fixture: a gradebook outside the course directory, passed with --db."""
    (tmp_path / "dbdir").mkdir()
    return f"sqlite:///{tmp_path / 'dbdir' / 'nbgrader_test.db'}"


@pytest.fixture(scope="session")
def empty_gradebook(tmp_path_factory) -> Path:
    """An empty gradebook as nbgrader creates it (schema migrated), copied by every test."""
    from nbgrader.api import Gradebook

    path = tmp_path_factory.mktemp("gradebook") / "empty.db"
    with Gradebook(f"sqlite:///{path}"):
        pass
    return path


@pytest.fixture
def course(tmp_path, capsys, monkeypatch, request, empty_gradebook) -> Course:
    """The course directory, also the working directory (nbgrader's ``temp_cwd`` + ``course_dir``); the gradebook is
    the ``db`` fixture when the test asks for it, else the course's default ``gradebook.db``."""
    db_url = request.getfixturevalue("db") if "db" in request.fixturenames else None
    root = tmp_path / "course"
    c = Course(root, db_url, capsys, empty_gradebook)
    monkeypatch.chdir(root)
    return c


def validate(path: Path) -> str:
    """What ``nbgrader validate PATH`` prints, from nbgrader's Validator in this process (the CLI exits 0 even when
    validation fails, so its exit code says nothing)."""
    from nbgrader.validator import Validator

    buf = io.StringIO()
    validator = Validator()
    validator.stream = buf
    validator.validate_and_print(str(path))
    return buf.getvalue()


def read_nb(path: Path):
    import nbformat

    with open(path, encoding="utf-8") as fh:
        return nbformat.read(fh, as_version=nbformat.current_nbformat)


# =====================================================================================================================
# the tests, in nbgrader's order
# =====================================================================================================================
def test_help(capsys):
    """nbgrader: ``autograde --help-all`` displays without error. Here: ``grade --help`` exits 0 and lists the
    nbgrader flags the grade verb accepts (--student, --force/-f, --notebook, --no-execute, --db, --Section.trait)."""
    from autograder.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["grade", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--student", "--force", "--notebook", "--no-execute", "--db", "--json", "--Section.trait=value"):
        assert flag in text, flag
    assert re.search(r"(^|[\s\[])-f[\s,\]]", text), "-f"


def test_missing_student(course, db):
    """nbgrader: with ``--Autograde.create_student=False`` a submission from a student missing from the gradebook
    fails autograde (exit 1); by default the student is created and graded. Here: that student gets status
    ``error`` with a reason saying they are not in the gradebook, nothing is written for them, the others are still
    reported (exit 1); by default they are created and graded (exit 0)."""
    course.add()
    course.copy("submitted-changed.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("submitted-changed.ipynb", "submitted/baz/ps1/p1.ipynb")

    rows = course.grade("--Autograde.create_student=False", retcode=1)
    assert rows["baz"]["status"] == "error" and "gradebook" in rows["baz"]["reason"], rows
    assert {rows[s]["status"] for s in ("foo", "bar")} == {"missing"}, rows  # in the gradebook, submitted nothing
    assert not course.path("autograded/baz").exists()
    with course.gradebook() as gb:
        assert "baz" not in {s.id for s in gb.students}

    rows = course.grade()
    assert rows["baz"]["status"] == "ok", rows
    assert course.path("autograded/baz/ps1/p1.ipynb").is_file()
    with course.gradebook() as gb:
        assert gb.find_submission_notebook("p1", "ps1", "baz").max_score == 7


def test_missing_assignment(course, db):
    """nbgrader: autograding an assignment that is not in the gradebook fails (exit 1). Here: it is an instructor
    error, exit 2 (our documented exit code for instructor mistakes), naming the assignment, and nothing is graded."""
    course.add()
    course.copy("submitted-changed.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("submitted-changed.ipynb", "submitted/ps2/foo/p1.ipynb")

    assert course.grade(assignment="ps2", retcode=2) == {}
    assert "ps2" in course.stderr
    assert not course.path("autograded").exists() or not any(course.path("autograded").rglob("*.ipynb"))


def test_grade(course, db):
    """nbgrader: files are graded: autograded notebooks written (no timestamp.txt when none was submitted);
    scores, max scores, "needs manual grade" flags and the "No response." comments of unanswered written answers
    in the gradebook."""
    course.add()
    course.copy("submitted-unchanged.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("submitted-unchanged.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.copy("submitted-changed.ipynb", "submitted/bar/ps1/p1.ipynb")
    rows = course.grade()
    assert {s: r["status"] for s, r in rows.items()} == {"foo": "ok", "bar": "ok"}, rows

    for student in ("foo", "bar"):
        assert course.path(f"autograded/{student}/ps1/p1.ipynb").is_file()
        assert not course.path(f"autograded/{student}/ps1/timestamp.txt").exists()

    with course.gradebook() as gb:
        notebook = gb.find_submission_notebook("p1", "ps1", "foo")
        assert notebook.score == 1
        assert notebook.max_score == 7
        assert notebook.needs_manual_grade is False
        for grade_id in ("set_a", "baz", "quux"):
            assert gb.find_comment(grade_id, "p1", "ps1", "foo").comment == "No response."

        notebook = gb.find_submission_notebook("p1", "ps1", "bar")
        assert notebook.score == 2
        assert notebook.max_score == 7
        assert notebook.needs_manual_grade is True
        for grade_id in ("set_a", "baz", "quux"):
            assert gb.find_comment(grade_id, "p1", "ps1", "bar").comment is None


def _autotest(course, source: str, unchanged: str, changed: str, max_score: float, changed_score: float) -> None:
    course.add()
    course.copy(source, "source/ps1/p1.ipynb")
    course.copy("autotests.yml", "autotests.yml")
    course.generate()
    course.copy(unchanged, "submitted/foo/ps1/p1.ipynb")
    course.copy(changed, "submitted/bar/ps1/p1.ipynb")
    rows = course.grade()
    assert {s: r["status"] for s, r in rows.items()} == {"foo": "ok", "bar": "ok"}, rows

    for student in ("foo", "bar"):
        assert course.path(f"autograded/{student}/ps1/p1.ipynb").is_file()
        assert not course.path(f"autograded/{student}/ps1/timestamp.txt").exists()
    with course.gradebook() as gb:
        notebook = gb.find_submission_notebook("p1", "ps1", "foo")
        assert (notebook.score, notebook.max_score, notebook.needs_manual_grade) == (0, max_score, False)
        notebook = gb.find_submission_notebook("p1", "ps1", "bar")
        assert (notebook.score, notebook.max_score, notebook.needs_manual_grade) == (changed_score, max_score, False)


def test_grade_autotest(course, db):
    """nbgrader: a notebook whose test cells are ``### AUTOTEST`` lines (expanded from autotests.yml at
    generate_assignment) is graded: the unchanged release scores 0/1, the answered one 1/1, none flagged."""
    _autotest(course, "autotest-simple.ipynb", "autotest-simple-unchanged.ipynb", "autotest-simple-changed.ipynb", 1, 1)


def test_grade_hashed_autotest(course, db):
    """nbgrader: hashed autotests (``### HASHED AUTOTEST``: the expected value only as a salted hash) are graded:
    0/1 unchanged, 1/1 answered."""
    _autotest(course, "autotest-hashed.ipynb", "autotest-hashed-unchanged.ipynb", "autotest-hashed-changed.ipynb", 1, 1)


def test_grade_complex_autotest(course, db):
    """nbgrader: several autotest cells with complex expressions are graded: 0/4 unchanged, 3/4 answered."""
    _autotest(course, "autotest-multi.ipynb", "autotest-multi-unchanged.ipynb", "autotest-multi-changed.ipynb", 4, 3)


def test_showtraceback_exploit(course, db):
    """nbgrader: a student cannot replace IPython's ``showtraceback`` to hide the errors of later test cells and get
    their points (the exploit used to hang execution, hence ``Execute.timeout = None`` in the config): the two
    cheat attempts score what their answers are worth (1/7) and are flagged for manual grading."""
    course.add(students=("foo", "bar", "spam", "eggs"))
    course.copy("submitted-unchanged.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.config("c.Execute.timeout = None")
    course.copy("submitted-unchanged.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.copy("submitted-changed.ipynb", "submitted/bar/ps1/p1.ipynb")
    course.copy("submitted-cheat-attempt.ipynb", "submitted/spam/ps1/p1.ipynb")
    course.copy("submitted-cheat-attempt-alternative.ipynb", "submitted/eggs/ps1/p1.ipynb")
    rows = course.grade()
    assert {s: r["status"] for s, r in rows.items()} == dict.fromkeys(("bar", "eggs", "foo", "spam"), "ok"), rows

    for student in ("foo", "bar", "spam", "eggs"):
        assert course.path(f"autograded/{student}/ps1/p1.ipynb").is_file()
        assert not course.path(f"autograded/{student}/ps1/timestamp.txt").exists()
    with course.gradebook() as gb:
        expected = {"foo": (1, False), "bar": (2, True), "spam": (1, True), "eggs": (1, True)}
        for student, (score, flagged) in expected.items():
            notebook = gb.find_submission_notebook("p1", "ps1", student)
            assert (notebook.score, notebook.max_score, notebook.needs_manual_grade) == (score, 7, flagged), student


def test_student_id_exclude(course, db):
    """nbgrader: ``--CourseDirectory.student_id_exclude=bar,baz`` grades only the other students: nothing written
    for the excluded ones, no submission of theirs in the gradebook."""
    from nbgrader.api import MissingEntry

    course.add()
    course.copy("submitted-unchanged.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("submitted-unchanged.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.copy("submitted-changed.ipynb", "submitted/bar/ps1/p1.ipynb")
    course.copy("submitted-changed.ipynb", "submitted/baz/ps1/p1.ipynb")
    rows = course.grade("--CourseDirectory.student_id_exclude=bar,baz")
    assert rows["foo"]["status"] == "ok" and "bar" not in rows and "baz" not in rows, rows

    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert not course.path("autograded/bar/ps1/p1.ipynb").exists()
    assert not course.path("autograded/baz/ps1/p1.ipynb").exists()
    with course.gradebook() as gb:
        assert gb.find_submission_notebook("p1", "ps1", "foo").score == 1
        with pytest.raises(MissingEntry):
            gb.find_submission_notebook("p1", "ps1", "bar")
        with pytest.raises(MissingEntry):
            gb.find_submission_notebook("p1", "ps1", "baz")


def test_grade_timestamp(course, db):
    """nbgrader: a submitted timestamp.txt is read in (copied to autograded/; total_seconds_late against the due
    date) and grading again works."""
    course.add()
    course.copy("submitted-unchanged.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("submitted-unchanged.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.make_file("submitted/foo/ps1/timestamp.txt", "2015-02-02 15:58:23.948203 America/Los_Angeles")
    course.copy("submitted-changed.ipynb", "submitted/bar/ps1/p1.ipynb")
    course.make_file("submitted/bar/ps1/timestamp.txt", "2015-02-01 14:58:23.948203 America/Los_Angeles")
    course.grade()

    for student in ("foo", "bar"):
        assert course.path(f"autograded/{student}/ps1/p1.ipynb").is_file()
        assert course.path(f"autograded/{student}/ps1/timestamp.txt").is_file()
    with course.gradebook() as gb:
        assert gb.find_submission("ps1", "foo").total_seconds_late == 3600
        assert gb.find_submission("ps1", "bar").total_seconds_late == 0

    rows = course.grade()  # a second run works too
    assert {s: r["status"] for s, r in rows.items()} == {"foo": "ok", "bar": "ok"}, rows
    with course.gradebook() as gb:
        assert gb.find_submission("ps1", "foo").total_seconds_late == 3600


def test_grade_empty_timestamp(course, db):
    """nbgrader: an empty timestamp.txt means "not late"; an unparseable one makes autograde fail (exit 1). Here the
    unparseable one is that submission's ``error`` status with a reason naming the timestamp, the other submission
    is still graded, and the exit code is 0 (our documented rule: 0 whenever every submission got a status)."""
    course.add()
    course.copy("submitted-unchanged.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("submitted-unchanged.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.make_file("submitted/foo/ps1/timestamp.txt", "")
    rows = course.grade()
    assert rows["foo"]["status"] == "ok", rows

    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert course.path("autograded/foo/ps1/timestamp.txt").is_file()
    with course.gradebook() as gb:
        assert gb.find_submission("ps1", "foo").total_seconds_late == 0

    course.copy("submitted-changed.ipynb", "submitted/bar/ps1/p1.ipynb")
    course.make_file("submitted/bar/ps1/timestamp.txt", "But I want to be a timestamp string :(")
    rows = course.grade()
    assert rows["bar"]["status"] == "error" and "timestamp" in rows["bar"]["reason"].lower(), rows
    assert rows["foo"]["status"] == "ok", rows
    with course.gradebook() as gb:
        assert gb.find_submission_notebook("p1", "ps1", "foo").score == 1


def _late_course(course, foo_time: str, bar_time: str) -> None:
    course.add()
    course.copy("submitted-unchanged.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("submitted-unchanged.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.make_file("submitted/foo/ps1/timestamp.txt", foo_time)
    course.copy("submitted-changed.ipynb", "submitted/bar/ps1/p1.ipynb")
    course.make_file("submitted/bar/ps1/timestamp.txt", bar_time)


def _submitted_notebook(gb, student):
    submission = gb.find_submission("ps1", student)
    return submission, submission.notebooks[0]


def test_late_submission_penalty_none(course, db):
    """nbgrader: the default late penalty method ("none") records lateness but no penalty."""
    _late_course(course, DUEDATE, "2015-02-02 15:58:23.948203 America/Los_Angeles")  # on time / 1 h late
    course.grade()

    for student in ("foo", "bar"):
        assert course.path(f"autograded/{student}/ps1/p1.ipynb").is_file()
        assert course.path(f"autograded/{student}/ps1/timestamp.txt").is_file()
    with course.gradebook() as gb:
        submission, nb = _submitted_notebook(gb, "foo")
        assert (nb.score, submission.total_seconds_late, nb.late_submission_penalty) == (1, 0, None)
        submission, nb = _submitted_notebook(gb, "bar")
        assert (nb.score, submission.total_seconds_late, nb.late_submission_penalty) == (2, 3600, None)


def test_late_submission_penalty_zero(course, db):
    """nbgrader: ``LateSubmissionPlugin.penalty_method = 'zero'`` makes the whole score the penalty of a late
    submission, and the penalty goes away when the regraded submission's timestamp is no longer late."""
    course.config("c.LateSubmissionPlugin.penalty_method = 'zero'")
    _late_course(course, DUEDATE, "2015-02-02 15:58:23.948203 America/Los_Angeles")
    course.grade()

    for student in ("foo", "bar"):
        assert course.path(f"autograded/{student}/ps1/timestamp.txt").is_file()
    with course.gradebook() as gb:
        submission, nb = _submitted_notebook(gb, "foo")
        assert (nb.score, submission.total_seconds_late, nb.late_submission_penalty) == (1, 0, None)
        submission, nb = _submitted_notebook(gb, "bar")
        assert (nb.score, submission.total_seconds_late, nb.late_submission_penalty) == (2, 3600, 2)

    course.make_file("submitted/bar/ps1/timestamp.txt", DUEDATE)
    course.grade("--force", "--student", "bar")  # (nbgrader's test regrades both; only bar's changed)
    with course.gradebook() as gb:
        submission, nb = _submitted_notebook(gb, "bar")
        assert (nb.score, submission.total_seconds_late, nb.late_submission_penalty) == (2, 0, None)


LATE_PLUGIN = """
from nbgrader.plugins import BasePlugin


class Blarg(BasePlugin):
    def late_submission_penalty(self, student_id, score, total_seconds_late):
        # lose 1 mark per hour late
        return int(total_seconds_late / 3600)
"""


def test_late_submission_penalty_plugin(course, db, monkeypatch, request):
    """nbgrader: ``AssignLatePenalties.plugin_class`` names a plugin module in the working directory; its penalty
    (1 point per hour late, capped at the score) is recorded. ``python -m`` puts the working directory on sys.path
    (nbgrader's apps add it themselves); in this process the test does the same."""
    course.make_file("late_plugin.py", LATE_PLUGIN)
    monkeypatch.syspath_prepend(str(course.root))
    monkeypatch.delitem(sys.modules, "late_plugin", raising=False)
    request.addfinalizer(lambda: sys.modules.pop("late_plugin", None))  # the grading process imports it
    course.config("c.AssignLatePenalties.plugin_class = 'late_plugin.Blarg'")
    _late_course(
        course,
        "2015-02-02 18:58:23.948203 America/Los_Angeles",  # 4 h late
        "2015-02-02 15:58:23.948203 America/Los_Angeles",
    )  # 1 h late
    course.grade()

    with course.gradebook() as gb:
        submission, nb = _submitted_notebook(gb, "foo")
        assert (nb.score, submission.total_seconds_late, nb.late_submission_penalty) == (1, 4 * 3600, 1)
        submission, nb = _submitted_notebook(gb, "bar")
        assert (nb.score, submission.total_seconds_late, nb.late_submission_penalty) == (2, 3600, 1)


def _force_course(course) -> None:
    course.add()
    course.copy("submitted-unchanged.ipynb", "source/ps1/p1.ipynb")
    course.make_file("source/ps1/foo.txt", "foo")
    course.make_file("source/ps1/data/bar.txt", "bar")
    course.generate()
    course.copy("submitted-unchanged.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.make_file("submitted/foo/ps1/foo.txt", "foo")
    course.make_file("submitted/foo/ps1/data/bar.txt", "bar")
    course.make_file("submitted/foo/ps1/blah.pyc", "asdf")


def _check_force(course, flag: str, *, without_flag_first: bool) -> None:
    _force_course(course)
    if without_flag_first:
        course.grade()
    else:
        course.grade(flag)
    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert course.path("autograded/foo/ps1/foo.txt").is_file()
    assert course.path("autograded/foo/ps1/data/bar.txt").is_file()
    assert not course.path("autograded/foo/ps1/blah.pyc").exists()  # CourseDirectory.ignore

    if without_flag_first:
        # nbgrader skips an already autograded submission without the flag; this engine always regrades
        course.path("autograded/foo/ps1/foo.txt").unlink()
        course.grade()
        assert course.path("autograded/foo/ps1/foo.txt").is_file()

        # with the flag: regraded, the supplementary files rewritten
        course.path("autograded/foo/ps1/foo.txt").unlink()
        rows = course.grade(flag)
        assert rows["foo"]["status"] == "ok" and rows["foo"]["score"] == 1, rows
        assert course.path("autograded/foo/ps1/foo.txt").is_file()

    course.path("source/ps1/foo.txt").unlink()
    course.path("submitted/foo/ps1/foo.txt").unlink()
    course.grade(flag)
    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert not course.path("autograded/foo/ps1/foo.txt").exists()
    assert course.path("autograded/foo/ps1/data/bar.txt").is_file()
    assert not course.path("autograded/foo/ps1/blah.pyc").exists()


@pytest.mark.full  # several gradings of one course (make test's budget); CI runs it in test-full
def test_force(course, db):
    """nbgrader: ``--force`` regrades an autograded submission and rewrites its supplementary files (source's
    version wins; a file gone from source and submission is gone from autograded/; ignored files like *.pyc are
    never copied). Our documented difference: without ``--force`` the submission is regraded too (nbgrader skips
    it), so the file removed from autograded/ comes back either way."""
    _check_force(course, "--force", without_flag_first=True)


@pytest.mark.full  # several gradings of one course (make test's budget); CI runs it in test-full
def test_force_f(course, db):
    """nbgrader: ``-f`` is ``--force``: graded with ``-f``, then regraded with ``-f`` after a supplementary file
    was removed from source/ and the submission (gone from autograded/ too; data/bar.txt kept; *.pyc never). The
    runs without the flag that nbgrader's test repeats from test_force are test_force's here (they do not involve
    ``-f``; each run costs seconds)."""
    _check_force(course, "-f", without_flag_first=False)


@pytest.mark.full  # several gradings of one course (make test's budget); CI runs it in test-full
def test_filter_notebook(course, db):
    """nbgrader: ``--notebook p1`` grades only that notebook (and still writes the supplementary files; ignored
    files never). Our documented difference: every run regrades, so a run after the notebook was removed from
    autograded/ writes it again with or without ``--notebook`` (nbgrader skips an already graded submission)."""
    _force_course(course)
    course.grade("--notebook", "p1")
    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert course.path("autograded/foo/ps1/foo.txt").is_file()
    assert course.path("autograded/foo/ps1/data/bar.txt").is_file()
    assert not course.path("autograded/foo/ps1/blah.pyc").exists()

    # removing the notebook: graded again
    course.path("autograded/foo/ps1/p1.ipynb").unlink()
    course.path("autograded/foo/ps1/foo.txt").unlink()
    rows = course.grade("--notebook", "p1")
    assert rows["foo"]["status"] == "ok" and rows["foo"]["score"] == 1, rows
    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert course.path("autograded/foo/ps1/foo.txt").is_file()
    assert course.path("autograded/foo/ps1/data/bar.txt").is_file()
    assert not course.path("autograded/foo/ps1/blah.pyc").exists()

    # without --notebook, after removing the notebook: regraded here (nbgrader would do nothing)
    course.path("autograded/foo/ps1/p1.ipynb").unlink()
    course.grade()
    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert course.path("autograded/foo/ps1/data/bar.txt").is_file()
    assert not course.path("autograded/foo/ps1/blah.pyc").exists()
    with course.gradebook() as gb:
        assert gb.find_submission_notebook("p1", "ps1", "foo").score == 1


def _overwrite_files(course, folder: str) -> None:
    """nbgrader's two overwrite tests, in ``folder`` of the assignment ("" or "subdir/")."""
    course.add()
    course.config('c.Autograde.exclude_overwriting = {"ps1": ["%s"]}' % os.path.join(folder, "helper.py"))
    course.copy("submitted-unchanged.ipynb", "source/ps1/p1.ipynb")
    course.make_file(f"source/ps1/{folder}data.csv", "some,data\n")
    course.make_file(f"source/ps1/{folder}helper.py", "print('hello!')\n")
    course.generate()
    course.copy("submitted-unchanged.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.make_file("submitted/foo/ps1/timestamp.txt", "2015-02-02 15:58:23.948203 America/Los_Angeles")
    course.make_file(f"submitted/foo/ps1/{folder}data.csv", "some,other,data\n")
    course.make_file(f"submitted/foo/ps1/{folder}helper.py", "print('this is different!')\n")
    course.grade()

    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert course.text("autograded/foo/ps1/timestamp.txt") == "2015-02-02 15:58:23.948203 America/Los_Angeles"
    assert course.text(f"autograded/foo/ps1/{folder}data.csv") == "some,data\n"
    assert course.text(f"autograded/foo/ps1/{folder}helper.py") == "print('this is different!')\n"


def test_grade_overwrite_files(course, db):
    """nbgrader: the instructor's supplementary files of source/ overwrite the student's (data.csv), except those
    listed in ``Autograde.exclude_overwriting`` (helper.py); timestamp.txt is the student's."""
    _overwrite_files(course, "")


def test_grade_overwrite_files_subdirs(course, db):
    """nbgrader: the same in a subfolder (``exclude_overwriting`` names subdir/helper.py)."""
    _overwrite_files(course, "subdir/")


def test_side_effects(course, db):
    """nbgrader: a file the notebook writes while it is graded is kept in autograded/ (copied back out of the
    sandbox here), never written into submitted/."""
    course.add()
    course.copy("side-effects.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("side-effects.ipynb", "submitted/foo/ps1/p1.ipynb")
    rows = course.grade()
    assert rows["foo"]["status"] == "ok", rows

    assert course.text("autograded/foo/ps1/side-effect.txt") == "a side effect"
    assert not course.path("submitted/foo/ps1/side-effect.txt").exists()


def test_skip_extra_notebooks(course, db):
    """nbgrader: a notebook that is not part of the assignment ("p1 copy.ipynb") is not graded nor copied; the
    assignment's p1.ipynb is."""
    course.add()
    course.copy("submitted-unchanged.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("submitted-unchanged.ipynb", "submitted/foo/ps1/p1 copy.ipynb")
    course.copy("submitted-changed.ipynb", "submitted/foo/ps1/p1.ipynb")
    rows = course.grade()
    assert rows["foo"]["status"] == "ok" and rows["foo"]["score"] == 2, rows

    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert not course.path("autograded/foo/ps1/p1 copy.ipynb").exists()


@pytest.mark.parametrize("groupshared", [False, True])
def test_permissions(course, groupshared):
    """nbgrader: autograded files are read-only (444); with ``CourseDirectory.groupshared = True`` they are
    group-writable (664) and the student's autograded folder is setgid and group-writable (2775)."""
    course.add(duedate=None)
    if groupshared:
        course.config("c.CourseDirectory.groupshared = True")
    course.empty_notebook("source/ps1/foo.ipynb")
    course.make_file("source/ps1/foo.txt", "foo")
    course.generate()
    course.empty_notebook("submitted/foo/ps1/foo.ipynb")
    rows = course.grade()
    assert rows["foo"]["status"] == "ok", rows

    perms = "664" if groupshared else "444"
    assert course.path("autograded/foo/ps1/foo.ipynb").is_file()
    assert course.path("autograded/foo/ps1/foo.txt").is_file()
    if groupshared:  # without it nbgrader makes no promise about folders
        assert course.permissions("autograded/foo/ps1") == "2775"
    assert course.permissions("autograded/foo/ps1/foo.ipynb") == perms
    assert course.permissions("autograded/foo/ps1/foo.txt") == perms


def test_custom_permissions(course):
    """nbgrader: ``--AutogradeApp.permissions=644`` sets the autograded files' permissions."""
    course.add()
    course.empty_notebook("source/ps1/foo.ipynb")
    course.make_file("source/ps1/foo.txt", "foo")
    course.generate()
    course.empty_notebook("submitted/foo/ps1/foo.ipynb")
    rows = course.grade("--AutogradeApp.permissions=644")
    assert rows["foo"]["status"] == "ok", rows

    assert course.permissions("autograded/foo/ps1/foo.ipynb") == "644"
    assert course.permissions("autograded/foo/ps1/foo.txt") == "644"


CLEAR_METADATA = (
    "--ClearMetadataPreprocessor.enabled=True",
    "--ClearMetadataPreprocessor.clear_notebook_metadata=False",
    "--ClearMetadataPreprocessor.preserve_cell_metadata_mask=[('nbgrader')]",
)


@pytest.mark.full  # several gradings of one course (make test's budget); CI runs it in test-full
def test_force_single_notebook(course):
    """nbgrader: ``--notebook p1 --force`` regrades p1 only: p2's autograded file is left as it was. (The
    ClearMetadataPreprocessor overrides, which nbgrader's test passes so that two gradings of one notebook are
    byte-identical, are accepted.)"""
    course.add()
    course.copy("test.ipynb", "source/ps1/p1.ipynb")
    course.copy("test.ipynb", "source/ps1/p2.ipynb")
    course.generate()
    course.copy("test.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.copy("test.ipynb", "submitted/foo/ps1/p2.ipynb")
    rows = course.grade(*CLEAR_METADATA)
    assert rows["foo"]["status"] == "ok", rows

    p1 = course.text("autograded/foo/ps1/p1.ipynb")
    p2 = course.text("autograded/foo/ps1/p2.ipynb")
    assert p1 == p2

    course.empty_notebook("submitted/foo/ps1/p1.ipynb")
    course.empty_notebook("submitted/foo/ps1/p2.ipynb")
    course.grade("--notebook", "p1", "--force")
    assert p1 != course.text("autograded/foo/ps1/p1.ipynb")
    assert p2 == course.text("autograded/foo/ps1/p2.ipynb")


@pytest.mark.full  # several gradings of one course (make test's budget); CI runs it in test-full
def test_update_newer(course):
    """nbgrader: a submission with a newer timestamp is regraded (autograded notebook and timestamp.txt replaced).
    Here every submission is regraded (documented), so the same holds."""
    course.add()
    course.copy("test.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("test.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.make_file("submitted/foo/ps1/timestamp.txt", "2015-02-02 15:58:23.948203 America/Los_Angeles")
    course.grade()
    assert course.text("autograded/foo/ps1/timestamp.txt") == "2015-02-02 15:58:23.948203 America/Los_Angeles"
    p = course.text("autograded/foo/ps1/p1.ipynb")

    course.empty_notebook("submitted/foo/ps1/p1.ipynb")
    course.make_file("submitted/foo/ps1/timestamp.txt", "2015-02-02 16:58:23.948203 America/Los_Angeles")
    course.grade()
    assert course.text("autograded/foo/ps1/timestamp.txt") == "2015-02-02 16:58:23.948203 America/Los_Angeles"
    assert p != course.text("autograded/foo/ps1/p1.ipynb")
    with course.gradebook() as gb:
        assert gb.find_submission("ps1", "foo").total_seconds_late == 2 * 3600


@pytest.mark.full  # several gradings of one course (make test's budget); CI runs it in test-full
def test_update_newer_single_notebook(course):
    """nbgrader: with a newer timestamp, ``--notebook p1`` regrades p1 only (p2's autograded file unchanged) and
    takes the new timestamp.txt. Here every submission is regraded (documented), so the same holds."""
    course.add()
    course.copy("test.ipynb", "source/ps1/p1.ipynb")
    course.copy("test.ipynb", "source/ps1/p2.ipynb")
    course.generate()
    course.copy("test.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.copy("test.ipynb", "submitted/foo/ps1/p2.ipynb")
    course.make_file("submitted/foo/ps1/timestamp.txt", "2015-02-02 15:58:23.948203 America/Los_Angeles")
    course.grade(*CLEAR_METADATA)
    assert course.text("autograded/foo/ps1/timestamp.txt") == "2015-02-02 15:58:23.948203 America/Los_Angeles"
    p1 = course.text("autograded/foo/ps1/p1.ipynb")
    p2 = course.text("autograded/foo/ps1/p2.ipynb")
    assert p1 == p2

    course.empty_notebook("submitted/foo/ps1/p1.ipynb")
    course.empty_notebook("submitted/foo/ps1/p2.ipynb")
    course.make_file("submitted/foo/ps1/timestamp.txt", "2015-02-02 16:58:23.948203 America/Los_Angeles")
    course.grade("--notebook", "p1")
    assert course.text("autograded/foo/ps1/timestamp.txt") == "2015-02-02 16:58:23.948203 America/Los_Angeles"
    assert p1 != course.text("autograded/foo/ps1/p1.ipynb")
    assert p2 == course.text("autograded/foo/ps1/p2.ipynb")


def test_hidden_tests_single_notebook(course, db):
    """nbgrader: hidden tests are absent from the release, put back for grading (present in the autograded
    notebook, which then fails validation on 2 cells), and a solution that passes the visible tests but fails the
    hidden ones scores 1.5."""
    course.add()
    course.config('c.ClearSolutions.code_stub = dict(python="# YOUR CODE HERE")')
    course.copy("test-hidden-tests.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    assert "BEGIN HIDDEN TESTS" not in course.text("release/ps1/p1.ipynb")
    course.copy(str(course.path("release/ps1/p1.ipynb")), "submitted/foo/ps1/p1.ipynb")
    assert validate(course.path("submitted/foo/ps1/p1.ipynb")).strip() == "Success! Your notebook passes all the tests."

    rows = course.grade()
    assert rows["foo"]["status"] == "ok", rows
    assert "BEGIN HIDDEN TESTS" in course.text("autograded/foo/ps1/p1.ipynb")
    assert validate(course.path("autograded/foo/ps1/p1.ipynb")).splitlines()[0] == (
        "VALIDATION FAILED ON 2 CELL(S)! If you submit your assignment as it is, you WILL NOT"
    )
    with course.gradebook() as gb:
        assert gb.find_submission("ps1", "foo").notebooks[0].score == 1.5


@pytest.mark.full  # several gradings of one course (make test's budget); CI runs it in test-full
def test_hidden_tests_autotest(course, db):
    """nbgrader: hidden autotests: a wrong answer that passes the visible checks validates but fails the hidden
    tests (score 0), a right one passes both (score 1), the untouched release fails (score 0); the autograded
    notebooks hold the hidden tests and validate accordingly."""
    course.add(students=("foo", "bar", "baz"))
    course.config('c.ClearSolutions.code_stub = dict(python="# YOUR CODE HERE")')
    course.copy("autotest-hidden.ipynb", "source/ps1/p1.ipynb")
    course.copy("autotests.yml", "autotests.yml")
    course.generate()
    course.copy("autotest-hidden-unchanged.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.copy("autotest-hidden-changed-wrong.ipynb", "submitted/bar/ps1/p1.ipynb")
    course.copy("autotest-hidden-changed-right.ipynb", "submitted/baz/ps1/p1.ipynb")
    failed_one = "VALIDATION FAILED ON 1 CELL(S)! If you submit your assignment as it is, you WILL NOT"
    success = "Success! Your notebook passes all the tests."
    assert validate(course.path("submitted/foo/ps1/p1.ipynb")).splitlines()[0] == failed_one
    assert validate(course.path("submitted/bar/ps1/p1.ipynb")).strip() == success
    assert validate(course.path("submitted/baz/ps1/p1.ipynb")).strip() == success

    rows = course.grade()
    assert {s: r["status"] for s, r in rows.items()} == dict.fromkeys(("bar", "baz", "foo"), "ok"), rows
    for student in ("foo", "bar", "baz"):
        assert "BEGIN HIDDEN TESTS" in course.text(f"autograded/{student}/ps1/p1.ipynb")
    assert validate(course.path("autograded/foo/ps1/p1.ipynb")).splitlines()[0] == failed_one
    assert validate(course.path("autograded/bar/ps1/p1.ipynb")).splitlines()[0] == failed_one
    assert validate(course.path("autograded/baz/ps1/p1.ipynb")).strip() == success
    with course.gradebook() as gb:
        scores = {s: gb.find_submission("ps1", s).notebooks[0].score for s in ("foo", "bar", "baz")}
    assert scores == {"foo": 0, "bar": 0, "baz": 1}


def test_handle_failure(course):
    """nbgrader: a student whose notebook carries nbgrader cells the assignment does not have (test.ipynb submitted
    as an empty p2) makes autograde fail for that student (exit 1, no autograded folder); the others are graded.
    Our behaviour differs: such cells lose their nbgrader metadata (a student cannot add graded cells) and the
    submission is graded like any other: status ok, 0 of the assignment's 0 points, no grade for the foreign cells;
    the empty one too (exit 0)."""
    course.add()
    course.empty_notebook("source/ps1/p1.ipynb")
    course.empty_notebook("source/ps1/p2.ipynb")
    course.generate()
    course.empty_notebook("submitted/bar/ps1/p1.ipynb")
    course.copy("test.ipynb", "submitted/bar/ps1/p2.ipynb")
    course.empty_notebook("submitted/foo/ps1/p1.ipynb")
    course.empty_notebook("submitted/foo/ps1/p2.ipynb")
    rows = course.grade()
    assert {s: (r["status"], r["score"], r["max_score"]) for s, r in rows.items()} == {
        "bar": ("ok", 0, 0),
        "foo": ("ok", 0, 0),
    }, rows

    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    graded = read_nb(course.path("autograded/bar/ps1/p2.ipynb"))
    assert not any("nbgrader" in cell.metadata for cell in graded.cells)
    with course.gradebook() as gb:  # recorded like any submission (nbgrader records nothing for bar)
        submission = gb.find_submission("ps1", "bar")
        assert sorted(nb.name for nb in submission.notebooks) == ["p1", "p2"]
        assert (submission.score, submission.max_score) == (0, 0)


def test_handle_failure_single_notebook(course):
    """nbgrader: ``--notebook "p*"`` (a glob) selects both notebooks; the submission with foreign nbgrader cells
    fails in nbgrader (exit 1, no notebook written). Our behaviour differs as in test_handle_failure: both
    notebooks matched by the glob are graded, status ok."""
    course.add()
    course.empty_notebook("source/ps1/p1.ipynb")
    course.empty_notebook("source/ps1/p2.ipynb")
    course.generate()
    course.empty_notebook("submitted/foo/ps1/p1.ipynb")
    course.copy("test.ipynb", "submitted/foo/ps1/p2.ipynb")
    rows = course.grade("--notebook", "p*")
    assert rows["foo"]["status"] == "ok", rows

    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert course.path("autograded/foo/ps1/p2.ipynb").is_file()


def test_missing_source_kernelspec(course):
    """nbgrader: a source notebook without a kernelspec grades a submission with the Python kernel; a submission
    with a kernel that does not exist ("blarg") fails (exit 1, nothing written). Here the latter is status
    ``error`` with a reason naming the kernel, not a silent run in Python, nothing written for it, and the exit
    code is 0 (our documented rule: 0 whenever every submission got a status; nbgrader: 1)."""
    course.add()
    course.config("c.ClearSolutions.code_stub = {'python': '## Answer', 'blah': '## Answer'}")
    course.empty_notebook("source/ps1/p1.ipynb")
    course.generate()

    course.empty_notebook("submitted/foo/ps1/p1.ipynb", kernel="python")
    rows = course.grade()
    assert rows["foo"]["status"] == "ok", rows
    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()

    course.empty_notebook("submitted/bar/ps1/p1.ipynb", kernel="blarg")
    rows = course.grade()
    assert rows["bar"]["status"] == "error" and "blarg" in rows["bar"]["reason"], rows
    assert rows["foo"]["status"] == "ok", rows
    # nothing at all: formgrader (NbGraderAPI.get_autograded_students) counts a student with a folder as autograded
    assert not course.path("autograded/bar/ps1").exists()


def test_incorrect_source_kernelspec(course):
    """nbgrader: the source notebook's kernelspec wins over the submission's; a source kernel that does not exist
    ("blah") makes autograde fail (exit 1, nothing written). Here: status ``error`` naming the kernel, nothing
    written, exit code 0 (our documented rule: 0 whenever every submission got a status; nbgrader: 1)."""
    course.add()
    course.config("c.ClearSolutions.code_stub = {'python': '## Answer', 'blah': '## Answer'}")
    course.empty_notebook("source/ps1/p1.ipynb", kernel="blah")
    course.generate()
    course.empty_notebook("submitted/foo/ps1/p1.ipynb", kernel="python")
    rows = course.grade()
    assert rows["foo"]["status"] == "error" and "blah" in rows["foo"]["reason"], rows
    assert not course.path("autograded/foo/ps1").exists()


def test_incorrect_submitted_kernelspec(course, db):
    """nbgrader: a submission with a wrong kernelspec ("blah") is graded with the source notebook's kernel
    (Python): autograded notebook written, with the source's kernelspec."""
    course.add()
    course.empty_notebook("source/ps1/p1.ipynb", kernel="python")
    course.generate()
    course.empty_notebook("submitted/foo/ps1/p1.ipynb", kernel="blah")
    rows = course.grade()
    assert rows["foo"]["status"] == "ok", rows
    assert read_nb(course.path("autograded/foo/ps1/p1.ipynb")).metadata.kernelspec.name == "python"


def test_no_execute(course):
    """nbgrader: autograde replaces the submitted outputs with its own; ``--force --no-execute`` keeps the
    submitted outputs exactly (nothing runs) and still records grades from them."""
    course.add()
    course.copy("test.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("test-with-output.ipynb", "submitted/foo/ps1/p1.ipynb")
    orig = read_nb(FILES / "test-with-output.ipynb")

    course.grade()
    new = read_nb(course.path("autograded/foo/ps1/p1.ipynb"))
    assert any(
        ("outputs" in o and o.outputs != n.outputs) or ("outputs" not in o and "outputs" in n)
        for o, n in zip(orig.cells, new.cells, strict=True)
    )

    rows = course.grade("--force", "--no-execute")
    assert rows["foo"]["status"] == "ok", rows
    new = read_nb(course.path("autograded/foo/ps1/p1.ipynb"))
    assert len(new.cells) == len(orig.cells)
    for o, n in zip(orig.cells, new.cells, strict=True):
        if "outputs" in o:
            assert o.outputs == n.outputs
        else:
            assert "outputs" not in n
    # the grades are the ones nbgrader's own rule gives the submitted outputs
    from nbgrader.utils import determine_grade, is_grade

    expected = sum(determine_grade(cell)[0] or 0 for cell in orig.cells if is_grade(cell))
    with course.gradebook() as gb:
        notebook = gb.find_submission_notebook("p1", "ps1", "foo")
        assert (notebook.score, notebook.max_score) == (expected, 6)


@pytest.mark.full
@pytest.mark.postgres
def test_many_students(tmp_path, capsys, monkeypatch, empty_gradebook):
    """nbgrader (skipped there: too slow, and it needs a PostgreSQL configured by hand with max_connections set low,
    e.g. 5): 50 students autograded on a PostgreSQL gradebook. Here on a throwaway cluster whose gradebook role may
    hold at most 5 connections at once: all 50 submissions get status ok and the same score, each with its
    autograded notebook and its gradebook submission (the grader never holds more gradebook connections than
    that). Marked ``full`` (and ``postgres``): slow."""
    import psycopg2

    from pg import PostgresCluster

    with PostgresCluster() as pg:
        admin = pg.connect()
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("CREATE ROLE grader LOGIN CONNECTION LIMIT 5")
            cur.execute("CREATE DATABASE gradebook OWNER grader")
        admin.close()
        # the limit holds: a sixth connection of the role is refused
        held = [psycopg2.connect(host="127.0.0.1", port=pg.port, user="grader", dbname="gradebook") for _ in range(5)]
        with pytest.raises(psycopg2.OperationalError, match="too many connections"):
            psycopg2.connect(host="127.0.0.1", port=pg.port, user="grader", dbname="gradebook")
        for conn in held:
            conn.close()

        course = Course(
            tmp_path / "course", f"postgresql+psycopg2://grader@127.0.0.1:{pg.port}/gradebook", capsys, empty_gradebook
        )
        monkeypatch.chdir(course.root)
        students = [f"student{i:03d}" for i in range(50)]
        course.add(students=students)
        course.copy("submitted-unchanged.ipynb", "source/ps1/p1.ipynb")
        course.generate()
        for student in students:
            course.copy("submitted-changed.ipynb", f"submitted/{student}/ps1/p1.ipynb")
        rows = course.grade()
        assert {s: (r["status"], r["score"]) for s, r in rows.items()} == dict.fromkeys(students, ("ok", 2)), rows
        assert all(course.path(f"autograded/{s}/ps1/p1.ipynb").is_file() for s in students)
        with course.gradebook() as gb:
            scores = {s.student_id: s.score for s in gb.find_assignment("ps1").submissions}
        assert scores == dict.fromkeys(students, 2)


def test_infinite_loop(course, db):
    """nbgrader: with ``Execute.timeout = 1`` in nbgrader_config.py an infinite loop is stopped and the notebook is
    still written (exit 0). Here: status ``timeout``, the autograded notebook written, and the configured 1 s is
    the per-cell timeout (not the engine's default)."""
    course.add()
    course.config("c.Execute.timeout = 1")
    course.copy("infinite-loop.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("infinite-loop.ipynb", "submitted/foo/ps1/p1.ipynb")
    started = time.monotonic()
    rows = course.grade("--timeout", "25")  # a notebook limit: ignoring the 1 s fails after 25 s, not 60
    elapsed = time.monotonic() - started
    assert rows["foo"]["status"] == "timeout", rows
    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert elapsed < 20, f"{elapsed:.0f} s: the configured 1 s cell timeout was not used"


def test_infinite_loop_with_output(course, db):
    """nbgrader (skipped there: too slow, eats a LOT of memory): a loop growing a list forever makes autograde fail
    (exit 1). Here the kernel's memory limit stops it: status ``resource_limit`` naming the memory limit, the graded
    notebook written and the submission recorded, and the batch goes on (exit 0)."""
    course.add()
    course.copy("infinite-loop-with-output.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("infinite-loop-with-output.ipynb", "submitted/foo/ps1/p1.ipynb")
    rows = course.grade("--memory", "768", "--cell-timeout", "60")
    assert rows["foo"]["status"] == "resource_limit" and "memory" in rows["foo"]["reason"], rows
    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    with course.gradebook() as gb:
        assert gb.find_submission("ps1", "foo").score == 0


def test_missing_files(course, db):
    """nbgrader: a student whose submission folder holds no notebook gets nothing in autograded/ (exit 0); the
    other is graded. Here that student is status ``missing`` with a reason naming the notebook."""
    course.add()
    course.empty_notebook("source/ps1/p1.ipynb")
    course.generate()
    course.empty_notebook("submitted/foo/ps1/p1.ipynb")
    course.path("submitted/bar/ps1").mkdir(parents=True)
    rows = course.grade()
    assert rows["foo"]["status"] == "ok", rows
    assert rows["bar"]["status"] == "missing" and "p1" in rows["bar"]["reason"], rows

    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert not course.path("autograded/bar").exists()


def test_grade_missing_notebook(course, db):
    """nbgrader: a notebook missing from a submission scores 0 without being flagged for manual grading, and
    nothing is written for it; the submitted one is graded. Here the submission's status is ``missing`` with a
    reason naming the missing notebook (p2)."""
    course.add()
    course.copy("submitted-unchanged.ipynb", "source/ps1/p1.ipynb")
    course.copy("submitted-unchanged.ipynb", "source/ps1/p2.ipynb")
    course.generate()
    course.copy("submitted-changed.ipynb", "submitted/foo/ps1/p1.ipynb")
    rows = course.grade()
    assert rows["foo"]["status"] == "missing" and "p2" in rows["foo"]["reason"], rows

    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    assert not course.path("autograded/foo/ps1/p2.ipynb").exists()
    with course.gradebook() as gb:
        nb1, nb2 = gb.find_submission("ps1", "foo").notebooks
        assert (nb1.name, nb1.score) == ("p1", 2)
        assert (nb2.name, nb2.score, nb2.needs_manual_grade) == ("p2", 0, False)


def test_grade_with_validating_envvar(course, db):
    """nbgrader: ``NBGRADER_EXECUTION`` is set in the kernel while autograding, so a test that fails when it is set
    scores 0."""
    course.add(students=("foo",))
    course.copy("validating-environment-variable.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("validating-environment-variable.ipynb", "submitted/foo/ps1/p1.ipynb")
    rows = course.grade()
    assert rows["foo"]["status"] == "ok", rows

    assert course.path("autograded/foo/ps1/p1.ipynb").is_file()
    with course.gradebook() as gb:
        (nb1,) = gb.find_submission("ps1", "foo").notebooks
        assert (nb1.score, nb1.max_score) == (0, 1)


def test_autograde_timeout(course, db):
    """nbgrader: ``--Execute.timeout=2`` on the command line is the per-cell timeout: a cell sleeping 5 s passes with
    the default timeout (score 1) and fails with 2 s (score 0)."""
    course.add()
    course.copy("timeout.ipynb", "source/ps1/p1.ipynb")
    course.generate()
    course.copy("timeout.ipynb", "submitted/foo/ps1/p1.ipynb")
    course.copy("timeout.ipynb", "submitted/bar/ps1/p1.ipynb")
    rows = course.grade("--student", "foo")
    assert rows["foo"]["status"] == "ok", rows
    rows = course.grade("--student", "bar", "--Execute.timeout=2")
    assert rows["bar"]["status"] == "timeout", rows

    with course.gradebook() as gb:
        assert gb.find_submission_notebook("p1", "ps1", "foo").score == 1
        assert gb.find_submission_notebook("p1", "ps1", "bar").score == 0
