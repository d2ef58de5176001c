"""Grade every submission of an assignment: sandboxed, in parallel (local processes or Dask), a status for each.

    python -m autograder grade ps1                       # all students, as many workers as cores, sandboxed
    python -m autograder grade ps1 --student bitdiddle   # one student (repeat --student for more)
    python -m autograder grade ps1 --json                # a JSON list on stdout: student_id, status, score, ...
    python -m autograder grade ps1 --scheduler tcp://10.0.0.5:8786   # the same work on a Dask cluster

Run it from an nbgrader course directory (the folder holding nbgrader_config.py) after the assignment was generated
(``nbgrader generate_assignment`` or ``python -m autograder release``) and submissions collected into
``submitted/<student>/<assignment>/``. It does what ``nbgrader autograde`` does, with the same scores on honest
submissions, and writes the same places: ``autograded/<student>/<assignment>/`` and the gradebook (so
``nbgrader export``, ``nbgrader generate_feedback`` and formgrader keep working). Differences:

* Student code never runs in this process: each submission is a self-contained job (``autograder.job.GradeJob``)
  graded by ``autograder.unit.grade_job`` in a bubblewrap sandbox with time, memory, process and output limits,
  on ``--workers`` local processes or on a Dask cluster. Only this process reads the gradebook and writes it.
* Every submission gets a status (ok, timeout, kernel_died, invalid_notebook, resource_limit, missing, error) with
  a short reason; one bad submission never stops the batch. Statuses are also written to
  ``.autograder/<assignment>.status.json`` at the course root (read by ``report``): nbgrader's gradebook has no
  place for them. The engine's own files live there, apart from every student's folder.
* Submissions are always re-graded (nbgrader's ``--force``); a student in the gradebook with no submission is
  reported ``missing`` (and nothing is written for them).
* A notebook that could not be executed at all (invalid, or a grader error) gets 0 points *flagged for manual
  grading* in the gradebook, so formgrader shows it to a human instead of a silent 0.0.

Exit code: 0 when every submission got a status (even bad ones); 2 for instructor-side problems (no course
directory or gradebook, unknown assignment or student, bubblewrap missing without --no-sandbox, unreachable
scheduler).
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .exceptions import AutograderError, GradebookError, UnknownAssignmentError
from .job import STATUSES, GradeJob, GradeResult, Limits, NotebookResult

HELP = "grade every submission of an assignment (sandboxed, parallel, a status for each)"

STATUS_FILE = "{assignment}.status.json"
#: The engine's own files (statuses, their lock) at the course root: never under ``autograded/``, where a student
#: id equal to a file name would collide with it.
ENGINE_DIR = ".autograder"


# ----------------------------------------------------------------------------------------------- CLI protocol
def add_arguments(parser) -> None:
    defaults = Limits()
    parser.add_argument("assignment", metavar="ASSIGNMENT", help="the assignment to grade, e.g. ps1")
    parser.add_argument("--student", action="append", dest="students", metavar="ID",
                        help="grade only this student (repeatable); default: every student in the gradebook "
                             "or in submitted/")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local worker processes grading in parallel (default: the machine's cores)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the jobs on a Dask distributed cluster, e.g. tcp://127.0.0.1:8786 "
                            "(workers need this package installed, not the course directory)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run student code WITHOUT the bubblewrap sandbox (only when bubblewrap is not "
                             "available and you trust the submissions); required to grade without bubblewrap")
    parser.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS",
                        help="wall time one cell may run (default: nbgrader's Execute.timeout, or "
                             "ExecutePreprocessor.timeout, from nbgrader_config.py; without either, "
                             f"{defaults.cell_timeout:g})")
    parser.add_argument("--timeout", type=float, default=defaults.notebook_timeout, metavar="SECONDS",
                        help="wall time one notebook may run (default: %(default)s)")
    parser.add_argument("--memory", type=int, default=defaults.memory_mb, metavar="MB",
                        help="memory (address space) of one kernel (default: %(default)s)")
    parser.add_argument("--max-processes", type=int, default=defaults.max_processes, metavar="N",
                        help="processes one kernel may have (default: %(default)s)")
    parser.add_argument("--max-output", type=int, default=defaults.max_output_bytes, metavar="BYTES",
                        help="output kept per notebook, beyond it outputs are truncated (default: %(default)s)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list on stdout: one object per student with student_id, status, score, "
                             "max_score, reason (progress and per-student lines always go to stderr)")
    parser.add_argument("--course-dir", metavar="PATH", default=None,
                        help="the course directory (default: the nearest folder holding nbgrader_config.py)")
    nbgrader = parser.add_argument_group(
        "nbgrader's options", "accepted as `nbgrader autograde` accepts them; any other nbgrader setting can be given "
        "as --Section.trait=value (e.g. --CourseDirectory.student_id_exclude=bar,baz, --Execute.timeout=30, "
        "--Autograde.create_student=False, --Autograde.permissions=644), over nbgrader_config.py")
    nbgrader.add_argument("--force", "-f", action="store_true",
                          help="accepted for nbgrader's scripts; it changes nothing: every submission is always "
                               "regraded from submitted/")
    nbgrader.add_argument("--notebook", metavar="PATTERN", default=None,
                          help="grade only the notebooks whose name (without .ipynb) matches this glob; the other "
                               "notebooks' files and grades are left as they are")
    nbgrader.add_argument("--no-execute", action="store_true",
                          help="do not run the notebooks: score the outputs saved in the submissions (nbgrader's "
                               "caveat holds: a student who saved fake outputs gets their points)")
    nbgrader.add_argument("--db", metavar="URL", default=None,
                          help="the gradebook's database URL (= --CourseDirectory.db_url)")


#: ``python -m autograder`` passes ``--Section.trait=value`` arguments to this verb (as ``args.config_overrides``).
ACCEPTS_CONFIG_OVERRIDES = True


def run(args) -> int:
    for name, value in (("--workers", args.workers), ("--memory", args.memory), ("--max-processes",
                        args.max_processes), ("--max-output", args.max_output)):
        if value is not None and value < 1:
            raise AutograderError(f"{name} must be at least 1 (got {value})")
    if (args.cell_timeout is not None and args.cell_timeout <= 0) or args.timeout <= 0:
        raise AutograderError("--cell-timeout and --timeout must be positive")
    overrides = list(getattr(args, "config_overrides", None) or [])
    if args.db:
        overrides.append(f"--CourseDirectory.db_url={args.db}")
    if args.no_execute:
        print("--no-execute: nothing is run; scores come from the outputs saved in the submissions",
              file=sys.stderr)
    results = grade_assignment(args.assignment, root=args.course_dir, students=args.students,
                               workers=args.workers, scheduler=args.scheduler,
                               limits=dict(cell_timeout=args.cell_timeout, notebook_timeout=args.timeout,
                                           memory_mb=args.memory, max_processes=args.max_processes,
                                           max_output_bytes=args.max_output),
                               sandbox=not args.no_sandbox, config_overrides=overrides, notebook=args.notebook,
                               execute=not args.no_execute)
    if args.json:
        json.dump([r.to_dict() for r in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    print("graded {} submission(s): {}".format(
        len(results), ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none"), file=sys.stderr)
    # nbgrader's exit code when a submission could not be graded at all because of the course's settings
    # (a student not in the gradebook with Autograde.create_student = False): 1
    return 1 if any(r.status == "error" and r.reason.startswith(NOT_CREATED) for r in results) else 0


# ----------------------------------------------------------------------------------------------- Python API
@dataclass
class Course:
    """What the grading process knows about the course: its root, nbgrader config, CourseDirectory and gradebook."""

    root: Path
    config: object
    coursedir: object
    db_url: str = field(init=False)

    def __post_init__(self):
        self.db_url = self.coursedir.db_url

    @classmethod
    def open(cls, root: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> "Course":
        """The course at ``root`` with its nbgrader_config.py, then ``overrides`` (``--Section.trait=value``)."""
        from nbgrader.coursedir import CourseDirectory

        from .course import ensure_venv_on_path, find_course_root, load_config

        ensure_venv_on_path()  # nbgrader's gradebook code needs alembic on PATH
        root = find_course_root(root)
        config = load_config(root)
        config.merge(parse_config_overrides(overrides))
        if "AutogradeApp" in config:  # nbgrader's AutogradeApp moves these to Autograde (its _load_config)
            config.Autograde.merge(config.AutogradeApp)
            del config["AutogradeApp"]
        return cls(root=root, config=config, coursedir=CourseDirectory(config=config))

    def autograde_settings(self) -> "AutogradeSettings":
        """The nbgrader settings the grader honours, read through nbgrader's own configurables (so that a value
        given as text on the command line is converted exactly as nbgrader converts it)."""
        from nbgrader.converters import Autograde
        from nbgrader.preprocessors import Execute

        converter = Autograde(coursedir=self.coursedir, config=self.config)
        exclude = {s.strip() for s in (self.coursedir.student_id_exclude or "").split(",") if s.strip()}
        return AutogradeSettings(
            create_student=bool(converter.create_student), permissions=int(str(converter.permissions), 8),
            groupshared=bool(self.coursedir.groupshared), student_id_exclude=exclude,
            exclude_overwriting={k: list(v) for k, v in converter.exclude_overwriting.items()},
            cell_timeout=Execute(config=self.config).timeout)

    def path(self, folder: str, student: str | None, assignment: str) -> Path:
        return Path(self.coursedir.format_path(folder, student or ".", assignment))

    @property
    def course_id(self) -> str:
        return self.coursedir.course_id or ""

    def status_file(self, assignment: str) -> Path:
        return Path(self.coursedir.root) / ENGINE_DIR / STATUS_FILE.format(assignment=assignment)


@dataclass(frozen=True)
class AutogradeSettings:
    """What of nbgrader's configuration the grader honours, as nbgrader reads it.

    create_student: ``Autograde.create_student`` (False: a student missing from the gradebook is not graded).
    permissions: ``Autograde.permissions`` (``AutogradeApp.permissions``), as a mode: 0o444, or 0o664 when
    ``CourseDirectory.groupshared``; groupshared also makes the autograded folders group-writable and setgid.
    student_id_exclude: ``CourseDirectory.student_id_exclude`` (comma-separated ids never graded).
    exclude_overwriting: ``Autograde.exclude_overwriting`` (the student's own version of these files is kept).
    cell_timeout: ``Execute.timeout`` / ``ExecutePreprocessor.timeout`` (None: no per-cell limit).
    """

    create_student: bool = True
    permissions: int = 0o444
    groupshared: bool = False
    student_id_exclude: frozenset | set = frozenset()
    exclude_overwriting: dict = field(default_factory=dict)
    cell_timeout: float | None = None


def parse_config_overrides(arguments: Iterable[str]):
    """nbgrader-style ``--Section.trait=value`` (or ``--Section.trait value``) arguments -> a traitlets Config.

    Values stay text until nbgrader's configurables read them (traitlets' DeferredConfigString): a Bool, an Integer
    or a Unicode trait converts it as it does on nbgrader's own command line.
    """
    import re

    from traitlets.config import Config
    from traitlets.config.loader import DeferredConfigString

    config = Config()
    items = list(arguments)
    i = 0
    while i < len(items):
        match = re.fullmatch(r"--([A-Za-z_]\w*)\.([A-Za-z_]\w*)(?:=(.*))?", items[i], flags=re.S)
        if not match:
            raise AutograderError(f"unrecognized argument {items[i]!r} (nbgrader settings are given as "
                                  "--Section.trait=value, e.g. --Execute.timeout=30)")
        section, trait, value = match.groups()
        if value is None:
            if i + 1 >= len(items):
                raise AutograderError(f"{items[i]} needs a value: {items[i]}=VALUE")
            value = items[i + 1]
            i += 1
        config[section][trait] = DeferredConfigString(value)
        i += 1
    return config


#: The reason given to a student graded not at all because ``Autograde.create_student`` is False.
NOT_CREATED = "not in the gradebook"


def check_gradebook(course: Course, assignment: str) -> None:
    """A clear instructor-side error unless the gradebook exists and holds the assignment's notebooks."""
    from nbgrader.api import Gradebook, MissingEntry

    url = course.db_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise GradebookError(f"no gradebook at {url[len('sqlite:///'):]}: generate the assignment first "
                             f"(`python -m autograder release {assignment}` or "
                             f"`nbgrader generate_assignment {assignment}`)")
    with Gradebook(url, course.course_id or None) as gb:
        try:
            nbs = gb.find_assignment(assignment).notebooks
        except MissingEntry:
            known = ", ".join(a.name for a in gb.assignments) or "none"
            raise UnknownAssignmentError(f"the gradebook has no assignment {assignment!r} (known: {known}); "
                                         f"generate it first: `nbgrader generate_assignment {assignment}`") from None
        if not nbs:
            raise GradebookError(f"assignment {assignment!r} has no notebooks in the gradebook: run "
                                 f"`nbgrader generate_assignment {assignment}` first")


def find_students(course: Course, assignment: str, only: Iterable[str] | None = None,
                  exclude: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """(students with a submission folder, students in the gradebook without one), sorted.

    Students come from the gradebook *and* from ``submitted/*/<assignment>/`` (nbgrader creates unknown students
    at autograde time; so do we). ``only`` restricts both lists; naming a student found in neither is an error.
    ``exclude`` (``CourseDirectory.student_id_exclude``) are left out of both.
    """
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id or None) as gb:
        known = {s.id for s in gb.students} - set(exclude)
    submitted_root = Path(course.coursedir.root) / course.coursedir.submitted_directory
    with_folder = {p.name for p in submitted_root.glob("*") if (p / assignment).is_dir()}
    with_folder -= set(exclude)
    if only:
        only = list(dict.fromkeys(only))
        unknown = [s for s in only if s not in known and s not in with_folder]
        if unknown:
            raise AutograderError(f"no such student for {assignment!r}: {', '.join(unknown)} "
                                  "(neither in the gradebook nor in submitted/)")
        known &= set(only)
        with_folder &= set(only)
    return sorted(with_folder), sorted(known - with_folder)


def linked_submission(course: Course, assignment: str, student: str) -> str | None:
    """Why ``submitted/<student>/<assignment>`` cannot be graded when a level of it is not a real folder (a link
    would make the grader read the instructor's files or a classmate's work), else None."""
    submitted_root = Path(course.coursedir.root) / course.coursedir.submitted_directory
    for path in (submitted_root / student, submitted_root / student / assignment):
        if path.is_symlink() or not path.is_dir():
            return (f"{path.relative_to(course.root)} is a link, not a folder: not graded, nothing read through it "
                    "(submissions are folders, as `nbgrader collect` makes them)")
    return None


class TimestampError(AutograderError):
    """A submission's timestamp.txt holds something that is not a date."""


def submission_timestamp(folder: Path):
    """The submission time in ``folder/timestamp.txt`` (nbgrader's ``get_existing_timestamp``), None when there is
    no such file or it is empty; :class:`TimestampError` naming the file when it is not a date. A link is not
    followed and at most 1 kB is read (the file comes from the student's side of the exchange)."""
    from nbgrader.utils import parse_utc

    path = Path(folder) / "timestamp.txt"
    if path.is_symlink() or not path.is_file():
        return None
    with open(path, "rb") as fh:
        text = fh.read(1024).decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        return parse_utc(text)
    except (ValueError, OverflowError):
        raise TimestampError(f"{path.name} of this submission is not a date ({text[:40]!r}): not graded; fix or "
                             "remove it (nbgrader refuses it too)") from None


def _ignored(course: Course, relpath: str) -> bool:
    ignore = list(course.coursedir.ignore) + [".ipynb_checkpoints", "__pycache__"]
    return any(fnmatch.fnmatch(part, pattern) for part in relpath.split("/") for pattern in ignore)


def _read_capped(path: Path, cap: int) -> bytes | None:
    """The bytes of the regular file ``path`` (never through a link), or None when it holds more than ``cap``: read
    in chunks, so a huge file is never read whole."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        import stat

        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        chunks, size = [], 0
        while chunk := fh.read(min(1 << 20, cap + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                return None
    return b"".join(chunks)


def _read_tree(folder: Path, course: Course, budget: list[int] | None = None,
               skipped: list[str] | None = None) -> dict[str, bytes]:
    """Regular files under ``folder`` (relative POSIX path -> bytes). Symlinks are skipped: a submission could
    otherwise smuggle in a link to ``gradebook.db`` or ``source/`` and have the grader read it for the sandbox.
    ``budget`` (a one-item list, bytes left): files that do not fit are left out and named in ``skipped``."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink() or not path.is_file() or _ignored(course, rel):
                continue
            if budget is None:
                files[rel] = path.read_bytes()
                continue
            if rel.endswith(".ipynb") or rel == "timestamp.txt":
                continue  # read on their own (notebooks, capped) or not at all
            data = _read_capped(path, budget[0])
            if data is None:
                if skipped is not None:
                    skipped.append(rel)
                continue
            budget[0] -= len(data)
            files[rel] = data
    return files


def build_job(course: Course, assignment: str, student: str, specs, limits: Limits, sandbox: bool,
              execute: bool = True, exclude_overwriting: dict | None = None) -> GradeJob:
    """The self-contained job for one student's submission (read in the grading process only).

    Like ``nbgrader autograde``: the spec'd notebooks come from ``submitted/<student>/<assignment>/``; other files
    are the student's, overwritten by the instructor's versions of every non-notebook file of
    ``source/<assignment>/`` (data files, images) unless ``Autograde.exclude_overwriting`` keeps the student's.
    """
    from .job import MAX_FILES_BYTES, MAX_NOTEBOOK_BYTES

    folder = course.path(course.coursedir.submitted_directory, student, assignment)
    names = {spec.filename for spec in specs}
    notebooks: dict[str, bytes | None] = {}
    too_large = []
    for name in sorted(names):
        path = folder / name
        notebooks[name] = None
        if path.is_file() and not path.is_symlink():
            notebooks[name] = _read_capped(path, MAX_NOTEBOOK_BYTES)
            if notebooks[name] is None:
                too_large.append(name)
    skipped: list[str] = []
    files = _read_tree(folder, course, budget=[MAX_FILES_BYTES], skipped=skipped)
    notes = (f"files left out (over {MAX_FILES_BYTES // 2**20} MB in all): {', '.join(skipped[:5])}"
             f"{' ...' if len(skipped) > 5 else ''}",) if skipped else ()
    source = course.path(course.coursedir.source_directory, None, assignment)
    keep = set((exclude_overwriting or {}).get(assignment, []))
    if source.is_dir():
        files.update({rel: data for rel, data in _read_tree(source, course).items()
                      if not rel.endswith(".ipynb") and rel not in keep})
    return GradeJob(course_id=course.course_id, assignment=assignment, student_id=student, notebooks=notebooks,
                    specs=tuple(specs), files=files, limits=limits, sandbox=sandbox, execute=execute,
                    too_large=tuple(too_large), notes=notes)


def error_result_for(student: str, specs, reason: str) -> GradeResult:
    """A status ``error`` for a student who could not be graded at all (nothing is recorded for them)."""
    return GradeResult(student_id=student, status="error", reason=reason[:500], notebooks=[], seconds=0.0,
                       score=0.0, max_score=float(sum(spec.max_score for spec in specs)))


#: A successful preflight is trusted again for this long, for the same interpreter, sandbox and limits (the grading
#: service and a series of ``grade`` runs do not pay one kernel start each time).
PREFLIGHT_VALID_SECONDS = 15 * 60


def _preflight_key(limits: Limits, sandbox: bool) -> str:
    import shutil

    from . import kernel_guard

    parts = [os.path.realpath(sys.executable), os.path.realpath(sys.prefix), str(limits.memory_mb),
             str(limits.max_processes), str(sandbox), kernel_guard.__file__,
             str(os.stat(kernel_guard.__file__).st_mtime_ns)]
    for tool in ("bwrap", "prlimit", "setpriv") if sandbox else ():
        path = shutil.which(tool)
        parts.append(f"{path}:{os.stat(path).st_mtime_ns if path else ''}")
    return "|".join(parts)


def preflight(limits: Limits, sandbox: bool, cache_dir: Path | None = None) -> None:
    """Start one grading kernel, exactly as for a submission, before grading anything (about 2 s).

    When none can start (bubblewrap refusing, a broken kernelspec or venv, a ``--memory`` too small), this is one
    instructor-side error (exit 2) saying why, instead of the status ``error`` for every submission. For a memory
    limit in which no kernel starts, the message names the smallest value that works. A success is remembered in
    ``cache_dir/preflight.json`` for :data:`PREFLIGHT_VALID_SECONDS` (same interpreter, sandbox tools and limits).
    """
    from .unit import probe_kernel

    key = _preflight_key(limits, sandbox)
    cache = Path(cache_dir) / "preflight.json" if cache_dir is not None else None
    try:
        if cache is not None and cache.is_file() and not cache.is_symlink():
            known = json.loads(cache.read_text())
            if time.time() - known.get(key, 0) < PREFLIGHT_VALID_SECONDS:
                return
    except (OSError, ValueError, AttributeError):
        pass
    why = probe_kernel(limits.memory_mb, sandbox)
    if why is None:
        if cache is not None:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps({key: time.time()}))
                os.replace(tmp, cache)
            except OSError:
                pass
        return
    if limits.memory_mb < Limits().memory_mb:
        check_memory_limit(limits.memory_mb)  # raises, naming the smallest that works, when memory is the cause
    raise AutograderError(f"no grading kernel can start here{' in the sandbox' if sandbox else ''}, so no "
                          f"submission was graded: {why}")


def check_memory_limit(memory_mb: int) -> None:
    """Refuse (instructor error) a ``--memory`` in which a kernel cannot even start, naming the smallest that works.

    Near that threshold a kernel fails in varied ways (dies at start, or a thread that could not get its stack
    leaves it unanswering), so the search is coarse and asks for two starts in a row: the first of 512, 768, 1024,
    ... MB above ``memory_mb`` where a kernel starts twice is named.
    """
    from .unit import kernel_starts

    if memory_mb >= Limits().memory_mb or kernel_starts(memory_mb):
        return
    default = Limits().memory_mb
    works = next((m for m in range(512, default + 1, 256) if m > memory_mb and kernel_starts(m) and kernel_starts(m)),
                 default)
    raise AutograderError(f"--memory {memory_mb} is too small for a Python kernel to start here; the smallest "
                          f"value that works is about {works} MB (give a margin for the students' code)")


def error_result(job: GradeJob, reason: str, seconds: float = 0.0) -> GradeResult:
    """A status ``error`` for a job the engine (not the student) failed on."""
    max_score = float(sum(spec.max_score for spec in job.specs))
    return GradeResult(student_id=job.student_id, status="error", reason=reason[:500], notebooks=[],
                       seconds=seconds, score=0.0, max_score=max_score)


def missing_result(student: str, specs, reason: str = "no submission") -> GradeResult:
    """Nothing to grade for ``student`` (no submission folder, or one holding none of the notebooks)."""
    notebooks = [NotebookResult(name=s.name, status="missing", reason="not submitted", graded=None,
                                scores={c.grade_id: (0.0, c.points or 0.0) for c in s.cells
                                        if c.kind in ("autograder-test", "manual-answer", "task")})
                 for s in specs]
    return GradeResult(student_id=student, status="missing", reason=reason, notebooks=notebooks,
                       seconds=0.0, score=0.0, max_score=float(sum(s.max_score for s in specs)))


def record(course: Course, job: GradeJob, result: GradeResult, settings: AutogradeSettings | None = None,
           partial: bool = False) -> None:
    """Write one result the way ``nbgrader autograde`` does: autograded files, submission, grades, late penalty.

    Grades are saved by nbgrader's own ``SaveAutoGrades`` and ``AssignLatePenalties`` preprocessors run on the
    graded notebook, in this process: the scores, "needs manual grade" flags and "No response." comments are
    exactly nbgrader's. Student code never runs here (those preprocessors only read cell metadata and outputs).
    ``partial`` (``--notebook``): the job holds some of the notebooks; the others' autograded files are kept.
    Files are given nbgrader's permissions (``settings``).
    """
    import shutil

    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

    assignment, student = job.assignment, job.student_id
    if result.notebooks and not any(nb.recorded for nb in result.notebooks):
        return  # no notebook could be run at all (e.g. a kernel of another language): nothing written, as nbgrader
    submitted = course.path(course.coursedir.submitted_directory, student, assignment)
    timestamp = submission_timestamp(submitted)
    with Gradebook(course.db_url, course.course_id or None) as gb, warnings.catch_warnings():
        # nbgrader's update_or_create_submission trips SQLAlchemy autoflush warnings ("not in session"); they are
        # nbgrader's own (plain autograde prints them too) and harmless.
        warnings.simplefilter("ignore", category=Warning)
        gb.update_or_create_student(student)
        if timestamp:
            gb.update_or_create_submission(assignment, student, timestamp=timestamp)
        else:
            gb.update_or_create_submission(assignment, student)

    settings = settings or AutogradeSettings()
    dest = course.path(course.coursedir.autograded_directory, student, assignment)
    if dest.exists() and not partial:
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    # the submission's files (with the instructor's versions), then what the notebooks wrote while graded
    for rel, data in {**job.files, **{k: v for k, v in result.files.items() if not _ignored(course, k)}}.items():
        target = (dest / rel).resolve()
        if dest.resolve() not in target.parents:  # a relative path must stay inside the student's folder
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()  # nbgrader's permissions may have made the old copy read-only
        target.write_bytes(data)
    if (submitted / "timestamp.txt").is_file() and not (submitted / "timestamp.txt").is_symlink():
        shutil.copyfile(submitted / "timestamp.txt", dest / "timestamp.txt")

    by_name = {nb.name: nb for nb in result.notebooks}
    for spec in job.specs:
        nbres = by_name.get(spec.name)
        resources = {"nbgrader": {"notebook": spec.name, "assignment": assignment, "student": student,
                                  "db_url": course.db_url}}
        if nbres is not None and nbres.graded is not None:
            if (dest / spec.filename).exists():
                (dest / spec.filename).unlink()
            (dest / spec.filename).write_bytes(nbres.graded)
            nb = nbformat.reads(nbres.graded.decode("utf-8"), as_version=nbformat.NO_CONVERT)
            nb, resources = SaveAutoGrades(config=course.config).preprocess(nb, resources)
            AssignLatePenalties(config=course.config).preprocess(nb, resources)
        else:
            # Nothing executed: 0 points. nbgrader's own rule for a missing notebook is 0 without review; anything
            # else (unreadable notebook, grader error) is flagged for manual grading so a human sees it.
            missing = nbres is not None and nbres.status == "missing"
            with Gradebook(course.db_url, course.course_id or None) as gb:
                notebook = gb.find_submission_notebook(spec.name, assignment, student)
                for grade in notebook.grades:
                    grade.auto_score = 0
                    grade.needs_manual_grade = not missing
                gb.db.commit()
    set_permissions(course, dest, settings)


def set_permissions(course: Course, dest: Path, settings: AutogradeSettings) -> None:
    """nbgrader's ``BaseConverter.set_permissions``: every file of ``dest`` gets ``settings.permissions``; with
    ``groupshared``, folders (and the autograded root) get group rwx and setgid added."""
    for dirpath, _, filenames in os.walk(dest, followlinks=False):
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                os.chmod(path, settings.permissions)
        if settings.groupshared:
            _add_group_share(Path(dirpath))
    if settings.groupshared:
        _add_group_share(Path(course.coursedir.root) / course.coursedir.autograded_directory)
        _add_group_share(dest.parent)


def _add_group_share(folder: Path) -> None:
    mode = folder.stat().st_mode
    if mode & 0o2770 != 0o2770:
        try:
            os.chmod(folder, (mode | 0o2770) & 0o2777)
        except PermissionError:
            print(f"warning: could not make {folder} group-shared", file=sys.stderr)


def write_statuses(course: Course, assignment: str, results: list[GradeResult]) -> Path:
    """Merge ``results`` into ``.autograder/<assignment>.status.json`` (what ``report`` reads).

    Format: ``{"assignment": ..., "students": {student_id: {"status", "reason", "score", "max_score", "seconds",
    "graded_at", "notebooks": {name: {"status", "reason"}}}}}``. Grading a subset keeps the others' entries.
    """
    import fcntl

    path = course.status_file(assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two graders may run at once on one course (e.g. by student, on a PostgreSQL gradebook): the merge is a
    # read-modify-write, so it holds an exclusive lock on a side file for its whole duration.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = {"assignment": assignment, "students": {}}
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except ValueError:
                pass
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        for r in results:
            data["students"][r.student_id] = {
                "status": r.status, "reason": r.reason, "score": r.score, "max_score": r.max_score,
                "seconds": round(r.seconds, 3), "graded_at": now,
                "notebooks": {nb.name: {"status": nb.status, "reason": nb.reason} for nb in r.notebooks}}
        data["students"] = dict(sorted(data["students"].items()))
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    return path


def read_statuses(course_or_root, assignment: str) -> dict[str, dict]:
    """student_id -> status entry, from the file :func:`write_statuses` wrote ({} when there is none)."""
    course = course_or_root if isinstance(course_or_root, Course) else Course.open(course_or_root)
    path = course.status_file(assignment)
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("students", {})


def _default_grade_fn() -> Callable[[GradeJob], GradeResult]:
    from .unit import grade_job

    return grade_job


def resolve_limits(limits: Limits | dict | None, settings: AutogradeSettings) -> Limits:
    """The job's limits: those given, else nbgrader's ``Execute.timeout`` as the per-cell limit (None there means
    no per-cell limit: a cell may then use the whole notebook's time), else :class:`Limits`' defaults."""
    if isinstance(limits, Limits):
        return limits
    given = {k: v for k, v in (limits or {}).items() if v is not None}
    if "cell_timeout" not in given:
        timeout = settings.cell_timeout
        notebook_timeout = given.get("notebook_timeout", Limits().notebook_timeout)
        given["cell_timeout"] = float(notebook_timeout if timeout is None or timeout <= 0 else timeout)
    return Limits(**given)


def grade_assignment(assignment: str, *, root=None, students=None, workers: int | None = None,
                     scheduler=None, limits: Limits | dict | None = None, sandbox: bool = True,
                     grade_fn: Callable[[GradeJob], GradeResult] | None = None,
                     progress: bool = True, config_overrides: Iterable[str] = (), notebook: str | None = None,
                     execute: bool = True) -> list[GradeResult]:
    """Grade ``assignment`` in the course at ``root`` and record everything; return one result per student.

    ``scheduler`` (an address or a Dask cluster object) selects the Dask engine, else ``workers`` local processes.
    ``grade_fn`` is the unit of work (default ``autograder.unit.grade_job``); it must be importable by the workers.
    ``limits``: a :class:`Limits`, or a dict of some of its fields (the others from nbgrader's configuration and
    the defaults, see :func:`resolve_limits`). ``config_overrides``: nbgrader-style ``--Section.trait=value``.
    ``notebook``: a glob; only the assignment's notebooks whose name matches are graded. ``execute=False``:
    nbgrader's ``--no-execute``.
    Raises :class:`~autograder.exceptions.AutograderError` only for instructor-side problems, before grading.
    """
    from tqdm import tqdm

    from .engines import get_engine
    from .job import specs_from_gradebook

    course = Course.open(root, config_overrides)
    settings = course.autograde_settings()
    limits = resolve_limits(limits, settings)
    if sandbox and execute:
        _require_sandbox()
    check_gradebook(course, assignment)
    specs = specs_from_gradebook(course.db_url, assignment)
    if notebook is not None:
        specs = tuple(s for s in specs if fnmatch.fnmatch(s.name, notebook))
        if not specs:
            raise AutograderError(f"no notebook of {assignment!r} matches --notebook {notebook!r}")
    if execute:
        preflight(limits, sandbox, cache_dir=Path(course.coursedir.root) / ENGINE_DIR)
    submitted, missing = find_students(course, assignment, students, settings.student_id_exclude)
    grade_fn = grade_fn or _default_grade_fn()

    results = [missing_result(s, specs) for s in missing]
    if not settings.create_student:
        from nbgrader.api import Gradebook

        with Gradebook(course.db_url, course.course_id or None) as gb:
            known = {s.id for s in gb.students}
        for student in [s for s in submitted if s not in known]:
            submitted.remove(student)
            results.append(error_result_for(student, specs, f"{NOT_CREATED} and Autograde.create_student is "
                                            "False: not graded (add the student, or allow creating students)"))
    jobs = []
    for student in submitted:
        why = linked_submission(course, assignment, student)
        if why:
            results.append(missing_result(student, specs, why))
            continue
        try:
            submission_timestamp(course.path(course.coursedir.submitted_directory, student, assignment))
        except TimestampError as exc:
            results.append(error_result_for(student, specs, str(exc)))
            continue
        job = build_job(course, assignment, student, specs, limits, sandbox, execute, settings.exclude_overwriting)
        if all(raw is None for raw in job.notebooks.values()) and not job.too_large:
            folder = course.path(course.coursedir.submitted_directory, student, assignment)
            # as nbgrader: nothing recorded, no autograded folder
            results.append(missing_result(student, specs, f"submitted nothing: {folder} holds none of the "
                                          f"notebooks ({', '.join(s.filename for s in specs)})"))
            continue
        jobs.append(job)
    if scheduler:
        # the longest one job can take under the limits (each notebook: its time limit plus kernel start-up and
        # shutdown): past that without any result, the cluster is stuck, and the jobs still out become errors
        job_timeout = max(1, len(specs)) * (limits.notebook_timeout + 120)
        engine = get_engine("dask", scheduler=scheduler, job_timeout=job_timeout)
    else:
        engine = get_engine("local", workers=workers)
    bar = tqdm(total=len(jobs), desc=f"grading {assignment}", unit="submission", file=sys.stderr,
               disable=not progress or not jobs)
    for r in results:
        bar.write(f"{r.student_id}: {r.status} ({r.reason})", file=sys.stderr)
    with engine:
        for outcome in engine.map(grade_fn, jobs):
            job = outcome.job
            result = outcome.result
            if outcome.error is not None or not isinstance(result, GradeResult):
                why = outcome.error if outcome.error is not None else f"grader returned {type(result).__name__}"
                result = error_result(job, f"grader failed: {type(why).__name__}: {why}"
                                      if isinstance(why, BaseException) else str(why))
            partial = notebook is not None
            try:
                record(course, job, result, settings, partial)
            except Exception as exc:  # noqa: BLE001 - one unrecordable result must not stop the batch
                result = error_result(job, f"could not record the result: {type(exc).__name__}: {exc}",
                                      result.seconds)
                try:
                    record(course, job, result, settings, partial)
                except Exception:  # noqa: BLE001 - the status file below still says error
                    pass
            results.append(result)
            bar.update(1)
            bar.write(f"{result.student_id}: {result.status} {result.score:g}/{result.max_score:g}"
                      f" ({result.seconds:.1f} s){' - ' + result.reason if result.reason else ''}",
                      file=sys.stderr)
    bar.close()
    results.sort(key=lambda r: r.student_id)
    write_statuses(course, assignment, results)
    return results


def _require_sandbox() -> None:
    """Refuse to grade sandboxed when bubblewrap cannot run (its message says what to do)."""
    from . import sandbox

    sandbox.check_sandbox()
