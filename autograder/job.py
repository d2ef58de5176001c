"""The unit of grading work: one student's submission in, graded notebooks and a status out.

This module is the contract between the grading *unit* (``autograder.unit.grade_job``, which executes one
submission in a sandbox) and the *engines* around it (local processes, Dask workers, the ``grade`` CLI, the
gradebook writer). Everything here is a plain, picklable dataclass: a :class:`GradeJob` can travel to a Dask
worker on another machine, be graded there without any access to the course directory or the gradebook, and
come back as a :class:`GradeResult`. Only the grading process (the engine) ever writes the gradebook.

Typical use by an engine::

    specs = specs_from_gradebook("sqlite:///gradebook.db", "ps1")      # once per assignment
    job = GradeJob(course_id="course101", assignment="ps1", student_id="bitdiddle",
                   notebooks={"problem1.ipynb": raw_bytes_or_None, ...}, specs=specs,
                   files={"data.csv": b"..."}, limits=Limits())
    result = grade_job(job)            # from autograder.unit; never raises for student-caused problems
    for nb in result.notebooks:        # nb.graded: executed notebook JSON ready for nbgrader's SaveAutoGrades
        ...
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .regions import DEFAULT, Delimiters

#: Every possible status, from best to worst; a submission's status is the worst of its notebooks' statuses.
#: ``ok``: executed to the end (tests may still have failed: that is a score, not a status).
#: ``timeout``: a cell or the whole notebook ran out of wall time (points earned before it are kept).
#: ``kernel_died``: the kernel process ended during execution (``os._exit``, segfault, killed...).
#: ``invalid_notebook``: the submitted file is not a readable notebook (bad JSON, bad nbformat).
#: ``resource_limit``: the kernel hit the memory / process / output limit.
#: ``missing``: the notebook was not submitted.
#: ``error``: the grader itself failed on this submission (a bug or an environment problem, not the student's).
STATUSES = ("ok", "timeout", "kernel_died", "invalid_notebook", "resource_limit", "missing", "error")

#: Ordering used to combine notebook statuses into the submission's status (higher is worse).
#: ``error`` is worst: an instructor must look at it. ``missing`` ranks below the statuses that involved execution.
STATUS_SEVERITY = {
    "ok": 0,
    "missing": 1,
    "invalid_notebook": 2,
    "timeout": 3,
    "resource_limit": 4,
    "kernel_died": 5,
    "error": 6,
}

#: Files a submission's notebooks write while graded are kept up to this many bytes in all (larger ones are dropped
#: with a note): ``autograded/`` keeps a notebook's data products, not a disk bomb.
MAX_KEPT_BYTES = 20 * 1024 * 1024
MAX_KEPT_FILES = 1000
#: What the grading process reads of one submission: a notebook over MAX_NOTEBOOK_BYTES is invalid (never read
#: whole), and its other files are read up to MAX_FILES_BYTES in all (the rest is left out, with a note), so that a
#: class's jobs held by the engine stay bounded.
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
MAX_FILES_BYTES = 50 * 1024 * 1024

#: The kinds of nbgrader cell a :class:`CellSpec` can describe (nbgrader's "Create Assignment" cell types).
CELL_KINDS = ("autograder-test", "autograded-answer", "manual-answer", "task", "readonly")
#: The kinds that carry points: nbgrader scores a cell when ``nbgrader.utils.is_grade(cell)`` (autograder tests and
#: manually graded answers) or ``is_task(cell)`` holds. :attr:`CellSpec.scored` is the one test of it for specs.
SCORED_KINDS = ("autograder-test", "manual-answer", "task")


def worst_status(statuses) -> str:
    """The worst of ``statuses`` by :data:`STATUS_SEVERITY` ("ok" when empty)."""
    return max(statuses, key=STATUS_SEVERITY.__getitem__, default="ok")


#: Seconds a grading kernel is given to start and take the grader's guard, on top of the notebook's time limit: the
#: grading client waits this long for it, and an engine waiting for a whole job allows it for each notebook.
KERNEL_STARTUP_SECONDS = 120


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission's kernel. Defaults suit this course; the CLI flags map onto them.

    cell_timeout: seconds one cell may run (nbclient's ``timeout``). notebook_timeout: seconds the whole notebook may
    run. memory_mb: address-space limit of the kernel (RLIMIT_AS). max_processes: processes the kernel's user may
    have (RLIMIT_NPROC, enforced because the sandboxed kernel runs as an unprivileged uid). max_output_bytes: total
    size of the outputs kept per notebook; beyond it outputs are truncated (the grader never holds more).
    """

    cell_timeout: float = 60.0
    notebook_timeout: float = 600.0
    memory_mb: int = 2048
    max_processes: int = 256
    max_output_bytes: int = 1_000_000


@dataclass(frozen=True)
class CellSpec:
    """One nbgrader cell as the gradebook stores it (SourceCell + GradeCell/SolutionCell/TaskCell).

    grade_id: nbgrader's cell id. cell_type: "code" or "markdown". source: the instructor's source (for test cells,
    *with* the hidden tests: it is what gets executed). locked: nbgrader's locked flag (locked cells are restored from
    ``source``). checksum: nbgrader's checksum of the source cell. points: max score of graded cells (autograder tests,
    manual answers, tasks), None otherwise. kind: one of :data:`CELL_KINDS`.
    """

    grade_id: str
    cell_type: str
    source: str
    locked: bool
    checksum: str | None
    points: float | None
    kind: str

    @property
    def is_grade(self) -> bool:
        """nbgrader's ``grade`` flag (``utils.is_grade``): an autograder test or a manually graded answer."""
        return self.kind in ("autograder-test", "manual-answer")

    @property
    def is_solution(self) -> bool:
        """nbgrader's ``solution`` flag (``utils.is_solution``): an answer cell."""
        return self.kind in ("autograded-answer", "manual-answer")

    @property
    def scored(self) -> bool:
        """Whether the cell carries points (nbgrader's ``is_grade`` or ``is_task``; see :data:`SCORED_KINDS`)."""
        return self.kind in SCORED_KINDS


@dataclass(frozen=True)
class NotebookSpec:
    """One notebook of the assignment: its name without ``.ipynb`` and its nbgrader cells in the instructor's order."""

    name: str
    cells: tuple[CellSpec, ...]
    #: the source notebook's kernelspec as nbgrader's gradebook stores it (JSON text), None when it has none
    kernelspec: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.name}.ipynb"

    @property
    def max_score(self) -> float:
        return float(sum(c.points or 0.0 for c in self.cells if c.scored))


@dataclass(frozen=True)
class GradeJob:
    """Everything needed to grade one student's submission, and nothing else (no paths into the course directory).

    notebooks: file name (``"problem1.ipynb"``) -> raw submitted bytes, or None when the student did not submit it.
    Every spec'd notebook should have an entry (a notebook absent from the dict is treated as missing).
    files: other submitted files (relative POSIX path -> bytes), copied next to the notebooks in the scratch folder.
    sandbox: False runs the kernel unsandboxed (the CLI's ``--no-sandbox``); use ``autograder.sandbox.check_sandbox()``
    before building jobs with sandbox=True to refuse clearly when bubblewrap is unavailable.
    execute: False scores the outputs saved in the submission without running anything (nbgrader's ``--no-execute``).
    """

    course_id: str
    assignment: str
    student_id: str
    notebooks: dict[str, bytes | None]
    specs: tuple[NotebookSpec, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    sandbox: bool = True
    execute: bool = True
    #: notebooks of the submission over MAX_NOTEBOOK_BYTES (not read; graded invalid_notebook)
    too_large: tuple[str, ...] = ()
    #: what the grading process left out of the submission (files over MAX_FILES_BYTES), for the reason
    notes: tuple[str, ...] = ()
    #: the course's hidden-test and solution delimiters (the grader never sees the course's configuration)
    delimiters: Delimiters = DEFAULT


@dataclass
class NotebookResult:
    """The outcome for one notebook.

    graded: the executed notebook (nbformat v4 JSON bytes) with outputs, test cells restored from the spec and
    nbgrader metadata intact, ready for nbgrader's ``SaveAutoGrades`` / ``GenerateFeedback``; None if none could be
    produced (missing / invalid notebook). scores: grade_id -> (score, max_score) for every graded cell of the spec,
    computed with ``nbgrader.utils.determine_grade``; score is None for manually graded cells that the student
    answered (they need a human), 0 for unanswered ones (nbgrader's rule). recorded: False when nothing may be
    written for this notebook (its kernel cannot be run here: nbgrader writes nothing then either).
    """

    name: str
    status: str
    reason: str
    graded: bytes | None
    scores: dict[str, tuple[float | None, float]]
    recorded: bool = True

    @property
    def score(self) -> float:
        return float(sum(s or 0.0 for s, _ in self.scores.values()))

    @property
    def max_score(self) -> float:
        return float(sum(m for _, m in self.scores.values()))


@dataclass
class GradeResult:
    """The outcome for one submission: the worst notebook status, a short reason, the per-notebook results.

    score / max_score: sums over the notebooks (max_score from the specs, so missing notebooks still count).
    seconds: wall time spent grading this submission (including kernel start-up).
    files: files the notebooks created or changed in their working folder while graded (relative POSIX path ->
    bytes), kept in ``autograded/`` as nbgrader keeps them, within :data:`MAX_KEPT_BYTES`.
    """

    student_id: str
    status: str
    reason: str
    notebooks: list[NotebookResult]
    seconds: float
    score: float
    max_score: float
    files: dict[str, bytes] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON shape of ``grade --json``: student_id, status, score, max_score, reason."""
        return {
            "student_id": self.student_id,
            "status": self.status,
            "score": self.score,
            "max_score": self.max_score,
            "reason": self.reason,
        }


def _kind(is_grade: bool, is_solution: bool, is_task: bool) -> str:
    """The :data:`CELL_KINDS` of a cell with nbgrader's grade, solution and task flags (the inverse of
    :attr:`CellSpec.is_grade` and :attr:`CellSpec.is_solution`)."""
    if is_task:
        return "task"
    if is_grade and is_solution:
        return "manual-answer"
    if is_grade:
        return "autograder-test"
    if is_solution:
        return "autograded-answer"
    return "readonly"


def specs_from_gradebook(db_url: str, assignment: str) -> tuple[NotebookSpec, ...]:
    """Build the :class:`NotebookSpec` of every notebook of ``assignment`` from an nbgrader gradebook.

    ``db_url`` is an SQLAlchemy URL such as ``"sqlite:///gradebook.db"`` (the one ``nbgrader generate_assignment``
    filled). Cells come in the order ``nbgrader generate_assignment`` saved them (the source notebook's order): the
    same order nbgrader's own ``OverwriteCells.add_missing_cells`` relies on. Read-only use of the gradebook.
    Call it once per assignment in the grading process and put the result in every GradeJob.
    """
    from nbgrader.api import Gradebook

    specs = []
    with Gradebook(db_url) as gb:
        for nb in gb.find_assignment(assignment).notebooks:
            graded = {c.name: c for c in nb.grade_cells}
            solutions = {c.name for c in nb.solution_cells}
            tasks = {c.name: c for c in nb.task_cells}
            cells = []
            for sc in nb.source_cells:
                points = (
                    graded[sc.name].max_score
                    if sc.name in graded
                    else (tasks[sc.name].max_score if sc.name in tasks else None)
                )
                cells.append(
                    CellSpec(
                        grade_id=sc.name,
                        cell_type=sc.cell_type,
                        source=sc.source or "",
                        locked=bool(sc.locked),
                        checksum=sc.checksum,
                        points=None if points is None else float(points),
                        kind=_kind(sc.name in graded, sc.name in solutions, sc.name in tasks),
                    )
                )
            specs.append(NotebookSpec(name=nb.name, cells=tuple(cells), kernelspec=nb.kernelspec))
    return tuple(specs)
