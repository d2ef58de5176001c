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
  ``.autograder/<assignment>.status.json`` at the course root (``autograder.statuses``, read by ``report``):
  nbgrader's gradebook has no place for them. The engine's own files live there, apart from every student's folder.
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
import sys
from typing import Callable, Iterable

from .course import AutogradeSettings, Course
from .exceptions import AutograderError, TimestampError
from .gradebook import check_gradebook, record
from .job import KERNEL_STARTUP_SECONDS, STATUSES, GradeJob, GradeResult, Limits, NotebookResult
from .preflight import preflight
from .statuses import write_statuses
from .submissions import build_job, find_students, linked_submission, submission_timestamp

HELP = "grade every submission of an assignment (sandboxed, parallel, a status for each)"


# ----------------------------------------------------------------------------------------------- CLI protocol
def add_arguments(parser) -> None:
    defaults = Limits()
    parser.add_argument("assignment", metavar="ASSIGNMENT", help="the assignment to grade, e.g. ps1")
    parser.add_argument(
        "--student",
        action="append",
        dest="students",
        metavar="ID",
        help="grade only this student (repeatable); default: every student in the gradebook or in submitted/",
    )
    from .engines import add_engine_arguments

    add_engine_arguments(parser)
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run student code WITHOUT the bubblewrap sandbox (only when bubblewrap is not "
        "available and you trust the submissions); required to grade without bubblewrap",
    )
    parser.add_argument(
        "--cell-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wall time one cell may run (default: nbgrader's Execute.timeout, or "
        "ExecutePreprocessor.timeout, from nbgrader_config.py; without either, "
        f"{defaults.cell_timeout:g})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=defaults.notebook_timeout,
        metavar="SECONDS",
        help="wall time one notebook may run (default: %(default)s)",
    )
    parser.add_argument(
        "--memory",
        type=int,
        default=defaults.memory_mb,
        metavar="MB",
        help="memory (address space) of one kernel (default: %(default)s)",
    )
    parser.add_argument(
        "--max-processes",
        type=int,
        default=defaults.max_processes,
        metavar="N",
        help="processes one kernel may have (default: %(default)s)",
    )
    parser.add_argument(
        "--max-output",
        type=int,
        default=defaults.max_output_bytes,
        metavar="BYTES",
        help="output kept per notebook, beyond it outputs are truncated (default: %(default)s)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list on stdout: one object per student with student_id, status, score, "
        "max_score, reason (progress and per-student lines always go to stderr)",
    )
    parser.add_argument(
        "--course-dir",
        metavar="PATH",
        default=None,
        help="the course directory (default: the nearest folder holding nbgrader_config.py)",
    )
    nbgrader = parser.add_argument_group(
        "nbgrader's options",
        "accepted as `nbgrader autograde` accepts them; any other nbgrader setting can be given "
        "as --Section.trait=value (e.g. --CourseDirectory.student_id_exclude=bar,baz, --Execute.timeout=30, "
        "--Autograde.create_student=False, --Autograde.permissions=644), over nbgrader_config.py",
    )
    nbgrader.add_argument(
        "--force",
        "-f",
        action="store_true",
        help="accepted for nbgrader's scripts; it changes nothing: every submission is always regraded from submitted/",
    )
    nbgrader.add_argument(
        "--notebook",
        metavar="PATTERN",
        default=None,
        help="grade only the notebooks whose name (without .ipynb) matches this glob; the other "
        "notebooks' files and grades are left as they are",
    )
    nbgrader.add_argument(
        "--no-execute",
        action="store_true",
        help="do not run the notebooks: score the outputs saved in the submissions (nbgrader's "
        "caveat holds: a student who saved fake outputs gets their points)",
    )
    nbgrader.add_argument(
        "--db", metavar="URL", default=None, help="the gradebook's database URL (= --CourseDirectory.db_url)"
    )


#: ``python -m autograder`` passes ``--Section.trait=value`` arguments to this verb (as ``args.config_overrides``).
ACCEPTS_CONFIG_OVERRIDES = True


def run(args) -> int:
    for name, value in (
        ("--workers", args.workers),
        ("--memory", args.memory),
        ("--max-processes", args.max_processes),
        ("--max-output", args.max_output),
    ):
        if value is not None and value < 1:
            raise AutograderError(f"{name} must be at least 1 (got {value})")
    if (args.cell_timeout is not None and args.cell_timeout <= 0) or args.timeout <= 0:
        raise AutograderError("--cell-timeout and --timeout must be positive")
    overrides = list(getattr(args, "config_overrides", None) or [])
    if args.db:
        overrides.append(f"--CourseDirectory.db_url={args.db}")
    if args.no_execute:
        print("--no-execute: nothing is run; scores come from the outputs saved in the submissions", file=sys.stderr)
    results = grade_assignment(
        args.assignment,
        root=args.course_dir,
        students=args.students,
        workers=args.workers,
        scheduler=args.scheduler,
        limits=dict(
            cell_timeout=args.cell_timeout,
            notebook_timeout=args.timeout,
            memory_mb=args.memory,
            max_processes=args.max_processes,
            max_output_bytes=args.max_output,
        ),
        sandbox=not args.no_sandbox,
        config_overrides=overrides,
        notebook=args.notebook,
        execute=not args.no_execute,
    )
    if args.json:
        json.dump([r.to_dict() for r in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    print(
        "graded {} submission(s): {}".format(
            len(results), ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none"
        ),
        file=sys.stderr,
    )
    # nbgrader's exit code when a submission could not be graded at all because of the course's settings
    # (a student not in the gradebook with Autograde.create_student = False): 1
    return 1 if any(r.status == "error" and r.reason.startswith(NOT_CREATED) for r in results) else 0


# ----------------------------------------------------------------------------------------------- Python API
#: The reason given to a student graded not at all because ``Autograde.create_student`` is False.
NOT_CREATED = "not in the gradebook"


def error_result_for(student: str, specs, reason: str) -> GradeResult:
    """A status ``error`` for a student who could not be graded at all (nothing is recorded for them)."""
    return GradeResult(
        student_id=student,
        status="error",
        reason=reason[:500],
        notebooks=[],
        seconds=0.0,
        score=0.0,
        max_score=float(sum(spec.max_score for spec in specs)),
    )


def error_result(job: GradeJob, reason: str, seconds: float = 0.0) -> GradeResult:
    """A status ``error`` for a job the engine (not the student) failed on."""
    max_score = float(sum(spec.max_score for spec in job.specs))
    return GradeResult(
        student_id=job.student_id,
        status="error",
        reason=reason[:500],
        notebooks=[],
        seconds=seconds,
        score=0.0,
        max_score=max_score,
    )


def missing_result(student: str, specs, reason: str = "no submission") -> GradeResult:
    """Nothing to grade for ``student`` (no submission folder, or one holding none of the notebooks)."""
    notebooks = [
        NotebookResult(
            name=s.name,
            status="missing",
            reason="not submitted",
            graded=None,
            scores={c.grade_id: (0.0, c.points or 0.0) for c in s.cells if c.scored},
        )
        for s in specs
    ]
    return GradeResult(
        student_id=student,
        status="missing",
        reason=reason,
        notebooks=notebooks,
        seconds=0.0,
        score=0.0,
        max_score=float(sum(s.max_score for s in specs)),
    )


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


def grade_assignment(
    assignment: str,
    *,
    root=None,
    students=None,
    workers: int | None = None,
    scheduler=None,
    limits: Limits | dict | None = None,
    sandbox: bool = True,
    grade_fn: Callable[[GradeJob], GradeResult] | None = None,
    progress: bool = True,
    config_overrides: Iterable[str] = (),
    notebook: str | None = None,
    execute: bool = True,
) -> list[GradeResult]:
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
        preflight(limits, sandbox, cache_dir=course.engine_dir)
    submitted, missing = find_students(course, assignment, students, settings.student_id_exclude)
    grade_fn = grade_fn or _default_grade_fn()

    results = [missing_result(s, specs) for s in missing]
    if not settings.create_student:
        from nbgrader.api import Gradebook

        with Gradebook(course.db_url, course.course_id or None) as gb:
            known = {s.id for s in gb.students}
        for student in [s for s in submitted if s not in known]:
            submitted.remove(student)
            results.append(
                error_result_for(
                    student,
                    specs,
                    f"{NOT_CREATED} and Autograde.create_student is "
                    "False: not graded (add the student, or allow creating students)",
                )
            )
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
        job = build_job(
            course,
            assignment,
            student,
            specs,
            limits,
            sandbox,
            execute,
            settings.exclude_overwriting,
            settings.delimiters,
        )
        if all(raw is None for raw in job.notebooks.values()) and not job.too_large:
            folder = course.path(course.coursedir.submitted_directory, student, assignment)
            # as nbgrader: nothing recorded, no autograded folder
            results.append(
                missing_result(
                    student,
                    specs,
                    f"submitted nothing: {folder} holds none of the notebooks ({', '.join(s.filename for s in specs)})",
                )
            )
            continue
        jobs.append(job)
    if scheduler:
        # the longest one job can take under the limits (each notebook: its time limit plus kernel start-up and
        # shutdown): past that without any result, the cluster is stuck, and the jobs still out become errors
        job_timeout = max(1, len(specs)) * (limits.notebook_timeout + KERNEL_STARTUP_SECONDS)
        engine = get_engine("dask", scheduler=scheduler, job_timeout=job_timeout)
    else:
        engine = get_engine("local", workers=workers)
    bar = tqdm(
        total=len(jobs),
        desc=f"grading {assignment}",
        unit="submission",
        file=sys.stderr,
        disable=not progress or not jobs,
    )
    for r in results:
        bar.write(f"{r.student_id}: {r.status} ({r.reason})", file=sys.stderr)
    with engine:
        for outcome in engine.map(grade_fn, jobs):
            job = outcome.job
            result = outcome.result
            if outcome.error is not None or not isinstance(result, GradeResult):
                why = outcome.error if outcome.error is not None else f"grader returned {type(result).__name__}"
                result = error_result(
                    job, f"grader failed: {type(why).__name__}: {why}" if isinstance(why, BaseException) else str(why)
                )
            partial = notebook is not None
            try:
                record(course, job, result, settings, partial)
            except Exception as exc:  # noqa: BLE001 - one unrecordable result must not stop the batch
                result = error_result(job, f"could not record the result: {type(exc).__name__}: {exc}", result.seconds)
                try:
                    record(course, job, result, settings, partial)
                except Exception:  # noqa: BLE001 - the status file below still says error
                    pass
            results.append(result)
            bar.update(1)
            bar.write(
                f"{result.student_id}: {result.status} {result.score:g}/{result.max_score:g}"
                f" ({result.seconds:.1f} s){' - ' + result.reason if result.reason else ''}",
                file=sys.stderr,
            )
    bar.close()
    results.sort(key=lambda r: r.student_id)
    write_statuses(course, assignment, results)
    return results


def _require_sandbox() -> None:
    """Refuse to grade sandboxed when bubblewrap cannot run (its message says what to do)."""
    from . import sandbox

    sandbox.check_sandbox()
