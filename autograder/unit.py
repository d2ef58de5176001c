"""Grade ONE submission: :func:`grade_job` takes a :class:`~autograder.job.GradeJob`, returns a GradeResult.

The steps are small classes with one job each, composed like nbgrader's converters compose its preprocessors
(``nbgrader/converters/autograde.py``): read -> clear outputs -> repair ids -> restore cells -> execute
(sandboxed, limited, hardened tests) -> limit output -> score. Every student-caused problem becomes a status
with a short reason; only a bug of the grader itself ends as ``error``. Nothing here touches the gradebook or
the course directory: the job carries the assignment's cell specs and the submitted bytes.
"""

from __future__ import annotations

import asyncio
import json
import queue
import secrets
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .job import (
    MAX_KEPT_BYTES,
    MAX_KEPT_FILES,
    MAX_NOTEBOOK_BYTES,
    GradeJob,
    GradeResult,
    Limits,
    NotebookResult,
    NotebookSpec,
    worst_status,
)
from .regions import DEFAULT, Delimiters, without_hidden_tests
from .rewrite import builtin_names_used, harden_test_source  # noqa: F401 - part of this module's API (__all__)


def guard_module_name() -> str:
    """A new random name for the guard's module in one kernel (no fixed name student code could look up)."""
    return f"_{secrets.token_hex(8)}"


MISSING_CELL_NOTE = "This cell (id:{grade_id}) was missing from the submission. It was added back by the grader.\n\n"


class StepFailed(Exception):
    """A step found a student-caused problem that ends this notebook's grading with ``status``.

    ``recorded=False``: nothing is to be written for the notebook (see NotebookResult.recorded).
    """

    def __init__(self, status: str, reason: str, recorded: bool = True):
        super().__init__(reason)
        self.status, self.reason, self.recorded = status, reason, recorded


@dataclass
class Context:
    """What the steps share for one notebook: its spec, the limits, notes for the reason, per-test verdicts, and
    the course's region delimiters (:mod:`autograder.regions`)."""

    spec: NotebookSpec
    limits: Limits
    notes: list[str] = field(default_factory=list)
    status: str = "ok"
    verdicts: dict[str, tuple[bool, str]] = field(default_factory=dict)  # test grade_id -> (passed, message)
    delimiters: Delimiters = DEFAULT

    def worsen(self, status: str, note: str) -> None:
        self.status = worst_status([self.status, status])
        self.notes.append(note)


# ---------------------------------------------------------------------------------------------------------------
# Steps before execution
# ---------------------------------------------------------------------------------------------------------------
class ReadNotebook:
    """Bytes -> nbformat v4 notebook; unreadable JSON or a non-notebook is ``invalid_notebook``, never an exception."""

    def __call__(self, raw: bytes, ctx: Context):
        import nbformat

        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StepFailed("invalid_notebook", f"not valid JSON: {exc}") from None
        except RecursionError:
            raise StepFailed("invalid_notebook", "JSON nested too deeply to be a notebook") from None
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list) or "nbformat" not in data:
            raise StepFailed("invalid_notebook", "JSON but not a notebook (no 'cells' list / 'nbformat')")
        try:
            # nbformat.reads logs (not raises) schema problems; RepairCellIds + validate() below decide.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                nb = nbformat.reads(json.dumps(data), as_version=4)
            if any("cell id" in str(w.message) for w in caught):  # nbformat repaired duplicated cell ids itself
                ctx.notes.append("duplicated notebook cell ids repaired")
            return nb
        except Exception as exc:  # noqa: BLE001 - any reader failure is the file's fault
            raise StepFailed("invalid_notebook", f"unreadable notebook: {str(exc)[:200]}") from None


class CheckNbgraderMetadata:
    """nbgrader's cell metadata, where present, has nbgrader's types (a dict; ``grade_id`` a string; the flags
    booleans; ``points`` a number): anything else is ``invalid_notebook`` naming the cell, before any nbgrader
    preprocessor trips over it (a list where a dict belongs made the grader fail with ``error``)."""

    FLAGS = ("grade", "solution", "locked", "task")

    def __call__(self, nb, ctx: Context):
        for index, cell in enumerate(nb.cells):
            if not isinstance(cell.get("metadata"), dict):
                raise StepFailed("invalid_notebook", f"cell {index}: its metadata is not an object")
            meta = cell.metadata.get("nbgrader")
            if meta is None:
                continue
            problem = None
            if not isinstance(meta, dict):
                problem = f"nbgrader metadata is a {type(meta).__name__}, not an object"
            elif "grade_id" in meta and not isinstance(meta["grade_id"], str):
                problem = f"grade_id is a {type(meta['grade_id']).__name__}, not a string"
            elif any(f in meta and not isinstance(meta[f], bool) for f in self.FLAGS):
                problem = "a flag (grade, solution, locked, task) is not true/false"
            elif "points" in meta and (
                isinstance(meta["points"], bool) or not isinstance(meta["points"], (int, float, str))
            ):
                problem = f"points is a {type(meta['points']).__name__}, not a number"
            elif isinstance(meta.get("points"), str):
                try:
                    float(meta["points"])
                except ValueError:
                    problem = f"points is {meta['points'][:20]!r}, not a number"
            if problem:
                raise StepFailed("invalid_notebook", f"cell {index}: {problem}")
        return nb


class CheckKernel:
    """nbgrader's ``OverwriteKernelspec`` (the source notebook's kernelspec wins over the submitted one), then refuse
    a kernel this grader cannot honour: it runs Python kernels only, so a notebook of another language (an R or
    Julia course) is the status ``error`` naming the kernel, never a silent run of its cells in Python."""

    def __call__(self, nb, ctx: Context):
        kernelspec = None
        if ctx.spec.kernelspec:
            try:
                kernelspec = json.loads(ctx.spec.kernelspec)
            except ValueError:
                kernelspec = None
        if isinstance(kernelspec, dict) and kernelspec:
            nb.metadata["kernelspec"] = kernelspec
        else:
            kernelspec = nb.metadata.get("kernelspec")
        if not isinstance(kernelspec, dict) or not kernelspec:
            return nb  # no kernelspec anywhere: nbgrader runs the default (Python) kernel too
        name, language = str(kernelspec.get("name", "")), str(kernelspec.get("language", ""))
        if language.lower() == "python" or name.lower().startswith("python"):
            return nb
        raise StepFailed(
            "error",
            f"kernel {name!r} (language {language or 'unknown'}) cannot be run here: this "
            "grader runs Python kernels only",
            recorded=False,
        )


class ClearOutputs:
    """Drop the student's outputs and execution counts: only the grader's execution counts (nbgrader's ClearOutput)."""

    def __call__(self, nb, ctx: Context):
        from nbgrader.preprocessors import ClearOutput

        nb, _ = ClearOutput().preprocess(nb, {})
        return nb


class RepairCellIds:
    """Duplicated ids never stop anything (in nbgrader, one duplicated grade_id aborts the whole batch).

    Duplicated nbgrader ``grade_id``: nbgrader's own ``DeduplicateIds`` (keeps the last cell with the id, strips the
    nbgrader metadata of earlier copies). Duplicated or missing nbformat cell ``id``: new random ids (nbformat's
    ``validate(repair_duplicate_cell_ids=...)`` is deprecated, and we want to record what was repaired).
    """

    def __call__(self, nb, ctx: Context):
        from nbformat.corpus.words import generate_corpus_id
        from nbgrader.preprocessors import DeduplicateIds

        seen_grade_ids, dup = set(), set()
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid is not None:
                (dup if gid in seen_grade_ids else seen_grade_ids).add(gid)
        if dup:
            nb, _ = DeduplicateIds().preprocess(nb, {})
            ctx.notes.append(f"duplicated cell id(s) {', '.join(sorted(dup))} repaired")
        seen = set()
        for cell in nb.cells:
            if nb.get("nbformat_minor", 0) < 5:  # cell ids exist from nbformat 4.5 on
                cell.pop("id", None)
                continue
            if not isinstance(cell.get("id"), str) or cell["id"] in seen:
                cell["id"] = generate_corpus_id()
            seen.add(cell["id"])
        import nbformat

        try:
            nbformat.validate(nb)
        except nbformat.ValidationError as exc:
            raise StepFailed(
                "invalid_notebook", f"invalid notebook structure: {str(exc).splitlines()[0][:200]}"
            ) from None
        return nb


def is_autograder_test(cell) -> bool:
    """Whether a notebook cell is an autograder test: a graded code cell that is not an answer (nbgrader's
    ``utils.is_grade`` and not ``utils.is_solution``)."""
    from nbgrader.utils import is_grade, is_solution

    return cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)


def _set_cell_type(cell, cell_type: str) -> None:
    """nbgrader's OverwriteCells.update_cell_type, without the gradebook."""
    if cell.cell_type == cell_type:
        return
    cell.cell_type = cell_type
    if cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)
    cell.pop("attachments", None)


class RestoreCells:
    """Make every nbgrader cell match the instructor's spec: nbgrader's ``OverwriteCells`` + ``add_missing_cells``.

    nbgrader's preprocessor cannot be reused as is: it opens the gradebook (``resources['nbgrader']['db_url']``),
    which the unit must not touch (it may run on another machine). The rules, from the spec instead:
    * a cell whose grade_id the spec does not know loses its nbgrader metadata (a student cannot invent points);
    * each known cell gets back the spec's cell type, flags, points and checksum ("retyped" cells are undone);
    * locked cells and autograder-test cells get the spec's source back (edited tests are undone; the spec holds
      the hidden tests, which the student never saw);
    * missing spec cells (deleted tests, locked cells, answers) are re-added after the previous spec cell present,
      with a note, as nbgrader's add_missing_cells does (without it, a deleted test cell scores nothing).
    """

    def __call__(self, nb, ctx: Context):
        import nbformat

        specs = {c.grade_id: c for c in ctx.spec.cells}
        present: dict[str, int] = {}
        edited, retyped = [], []
        for index, cell in enumerate(nb.cells):
            meta = cell.metadata.get("nbgrader")
            if not meta or "grade_id" not in meta:
                if meta is not None:
                    del cell.metadata["nbgrader"]
                continue
            spec = specs.get(meta["grade_id"])
            if spec is None:
                del cell.metadata["nbgrader"]
                continue
            if cell.cell_type != spec.cell_type:
                retyped.append(spec.grade_id)
                _set_cell_type(cell, spec.cell_type)
            if (spec.locked or spec.kind == "autograder-test") and cell.source != spec.source:
                if cell.source.strip() != without_hidden_tests(spec.source, ctx.delimiters).strip():
                    edited.append(spec.grade_id)  # (the released version lacks the hidden tests: not an edit)
                cell.source = spec.source
            cell.metadata["nbgrader"] = self.metadata(spec)
            present[spec.grade_id] = index
        missing = [c for c in ctx.spec.cells if c.grade_id not in present]
        for spec in missing:
            # insert after the nearest earlier spec cell that is in the notebook (spec order = instructor order)
            order = [c.grade_id for c in ctx.spec.cells]
            before = [g for g in order[: order.index(spec.grade_id)] if g in present]
            position = present[before[-1]] + 1 if before else 0
            note = MISSING_CELL_NOTE.format(grade_id=spec.grade_id)
            if spec.cell_type == "code":
                cell = nbformat.v4.new_code_cell("# " + note.replace("\n\n", "\n") + spec.source)
            else:
                cell = nbformat.v4.new_markdown_cell(note + spec.source)
            cell.metadata["nbgrader"] = self.metadata(spec)
            if not spec.is_solution:
                cell.metadata.update({"deletable": False, "editable": False})
            nb.cells.insert(position, cell)
            present = {k: (v + 1 if v >= position else v) for k, v in present.items()}
            present[spec.grade_id] = position
        if edited:
            ctx.notes.append(f"edited locked/test cell(s) restored: {', '.join(edited)}")
        if retyped:
            ctx.notes.append(f"retyped cell(s) restored: {', '.join(retyped)}")
        if missing:
            ctx.notes.append(f"missing cell(s) re-added: {', '.join(c.grade_id for c in missing)}")
        return nb

    @staticmethod
    def metadata(spec) -> dict:
        meta = {
            "grade_id": spec.grade_id,
            "grade": spec.is_grade,
            "solution": spec.is_solution,
            "locked": spec.locked,
            "schema_version": 3,
        }
        if spec.kind == "task":
            meta["task"] = True
        if spec.points is not None and spec.scored:
            meta["points"] = spec.points
        if spec.checksum is not None:
            meta["checksum"] = spec.checksum
        return meta


# ---------------------------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------------------------
def _guard_source() -> str:
    return (Path(__file__).with_name("kernel_guard.py")).read_text()


def guard_install_code(module: str, output_budget: int | None = None) -> str:
    """The grader's first request to a kernel: install the guard (autograder/kernel_guard.py) as the module
    ``module`` (a random name: :func:`guard_module_name`).

    ``output_budget``: the kernel stops sending printed output a little past it (see kernel_guard._CappedStream).
    """
    cap = None if output_budget is None else output_budget + 64 * 1024
    return (
        f"import sys as _s, types as _t\n_m = _t.ModuleType({module!r})\n"
        f"exec(compile({_guard_source()!r}, '<autograder-guard>', 'exec'), _m.__dict__)\n"
        f"_m.GUARD = _m.Guard(get_ipython(), {cap!r})\n_s.modules[{module!r}] = _m\ndel _s, _t, _m\n"
    )


def probe_kernel(memory_mb: int, sandbox: bool, timeout: float = 20) -> str | None:
    """Start one grading kernel as the grader starts one (sandboxed or not, under ``memory_mb``) and install the
    guard in it; None when that works, else why (with the end of the kernel's own output).

    The grader does this before grading anything, so that a machine or a setting on which no kernel can start
    (bubblewrap refusing, a broken kernelspec, a ``--memory`` too small) is one clear error instead of the status
    ``error`` for every submission.
    """
    from .sandbox import SandboxedKernelManager, prepare_scratch, sandbox_uid

    root = Path(tempfile.mkdtemp(prefix="autograder-probe-"))
    scratch, log = root / "sandbox", root / "kernel.log"

    async def probe() -> str | None:
        prepare_scratch(scratch, sandbox_uid() if sandbox else None)
        ipc = scratch / "ipc"
        ipc.mkdir(mode=0o700)
        if sandbox:
            import os

            os.chown(ipc, sandbox_uid(), sandbox_uid())
        km = SandboxedKernelManager(
            scratch=scratch,
            workdir=scratch / "work",
            memory_mb=memory_mb,
            max_processes=Limits().max_processes,
            sandbox=sandbox,
            log_path=log,
            kernel_name="python3",
            transport="ipc",
            ip=str(ipc / "k"),
            connection_file=str(ipc / "kernel.json"),
        )
        try:
            await km.start_kernel()
        except Exception as exc:  # noqa: BLE001 - reported, with the reason
            return f"the kernel could not be launched: {type(exc).__name__}: {exc}"
        kc = km.client()
        kc.start_channels()
        try:
            await kc._async_wait_for_ready(timeout=timeout)
            # judged by the shell reply alone, as the grader's own requests are (iopub plays no part here)
            msg_id = kc.execute(
                guard_install_code(guard_module_name()), silent=True, store_history=False, allow_stdin=False
            )
            deadline = time.monotonic() + timeout
            while True:
                msg = await kc._async_get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
                if msg["parent_header"].get("msg_id") == msg_id:
                    break
            content = msg["content"]
            if content["status"] != "ok":
                return f"the grader's guard failed in the kernel: {content.get('ename')}: {content.get('evalue')}"
            return None
        except (RuntimeError, TimeoutError) as exc:
            return f"{exc}"
        except queue.Empty:
            return f"the kernel did not answer within {timeout:g} s"
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    try:
        why = _run_async(probe())
        if why and log.is_file():
            tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-3:]
            if tail:
                why += " -- the kernel said: " + " | ".join(line.strip()[:200] for line in tail)
        return why
    finally:
        shutil.rmtree(root, ignore_errors=True)


def kernel_starts(memory_mb: int) -> bool:
    """Whether a grading kernel starts under ``memory_mb`` (unsandboxed: the sandbox changes nothing to the memory
    a kernel needs; a generous wait, as a busy machine may take long to start one)."""
    return probe_kernel(memory_mb, sandbox=False, timeout=45) is None


def max_message_bytes(limits: Limits) -> int:
    """Largest single message taken from a kernel: the notebook's output budget, JSON-escaped, plus headers.

    A bigger message could not be kept anyway (it is over the budget); refusing it at the socket keeps a student's
    ``print('x' * 10**9)`` out of the grader's memory (see ``sandbox.LimitedKernelClient``).
    """
    return 2 * limits.max_output_bytes + 1_000_000


class ExecuteNotebook:
    """Execute in a fresh kernel (sandboxed unless the job says otherwise) with the job's limits."""

    def __init__(self, scratch: Path, sandbox: bool, logdir: Path | None = None):
        # logdir: where the kernel's own output goes; the grader's, never inside ``scratch`` (student code can
        # write there, and a file the grader opens there could be a link planted by an earlier notebook)
        self.scratch, self.sandbox = scratch, sandbox
        self.logdir = logdir or scratch.parent

    def __call__(self, nb, ctx: Context):
        import os

        from .kernel_client import GradingClient
        from .sandbox import SandboxedKernelManager, sandbox_uid

        workdir = self.scratch / "work"
        # a fresh socket folder for each notebook, made by the grader just before its kernel starts: nothing an
        # earlier notebook's code planted can be in it when the grader writes the connection file there
        ipc = self.scratch / f"ipc-{secrets.token_hex(8)}"
        ipc.mkdir(mode=0o700)
        if self.sandbox:
            os.chown(ipc, sandbox_uid(), sandbox_uid())
        km = SandboxedKernelManager(
            scratch=self.scratch,
            workdir=workdir,
            memory_mb=ctx.limits.memory_mb,
            log_path=self.logdir / f"kernel-{secrets.token_hex(4)}.log",
            max_processes=ctx.limits.max_processes,
            sandbox=self.sandbox,
            max_message_bytes=max_message_bytes(ctx.limits),
            kernel_name="python3",
            transport="ipc",
            ip=str(ipc / f"k{secrets.token_hex(4)}"),
            connection_file=str(ipc / f"kernel-{secrets.token_hex(4)}.json"),
        )
        client = GradingClient(nb, ctx, km, workdir)
        try:
            _run_async(client.run())
        finally:
            if km.cgroup is not None:  # normally removed at the kernel's shutdown
                km.oom_killed = km.oom_killed or km.cgroup.oom_killed()
                km.cgroup.remove()
        if km.oom_killed:
            ctx.worsen(
                "resource_limit",
                f"memory limit ({ctx.limits.memory_mb} MB, files kept in memory included) "
                "reached: the kernel was stopped",
            )
        return nb


def _run_async(coro):
    """asyncio.run, also from a thread that already has a running loop (e.g. inside Jupyter or Dask)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ---------------------------------------------------------------------------------------------------------------
# After execution
# ---------------------------------------------------------------------------------------------------------------
class LimitOutput:
    """nbgrader's LimitOutput (lines per cell, traceback length) on top of the byte budget enforced while running."""

    def __call__(self, nb, ctx: Context):
        from nbgrader.preprocessors import LimitOutput as NbgraderLimitOutput

        nb, _ = NbgraderLimitOutput().preprocess(nb, {})
        return nb


class ScoreCells:
    """Make each test cell's outputs say what the grader decided, then score with nbgrader's determine_grade.

    nbgrader scores a test cell 0 if it has an error output OR any stderr output, else full (or partial credit
    from its result). We judge by the guarded verdict instead, then make the outputs agree so that nbgrader's
    SaveAutoGrades on the graded notebook gives the same numbers: passing cells have their stderr (warnings)
    shown as stdout, failing cells without an error output (swallowed exception, not executed) get one.
    """

    def __init__(self, by_outputs: bool = False):
        # by_outputs: nbgrader's own rule on the outputs as they are (``--no-execute``: nothing ran, no verdicts)
        self.by_outputs = by_outputs

    def __call__(self, nb, ctx: Context):
        from nbformat.v4 import new_output
        from nbgrader.utils import determine_grade, is_grade, is_task

        scores = {}
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            gid = meta.get("grade_id")
            if gid is None:
                continue
            if is_task(cell):
                scores[gid] = (None, float(meta.get("points", 0.0)))
                continue
            if not is_grade(cell):
                continue
            if is_autograder_test(cell) and not self.by_outputs:
                passed, message = ctx.verdicts.get(gid, (False, "not executed"))
                if not passed:
                    for out in cell.outputs:  # a failed test scores 0: no result in it may read as partial credit
                        if out.get("output_type") == "execute_result":
                            demote_result(out)
                if passed:
                    for out in cell.outputs:
                        if out.get("output_type") == "stream" and out.get("name") == "stderr":
                            out["name"] = "stdout"
                elif not any(o.get("output_type") == "error" for o in cell.outputs):
                    cell.outputs.append(
                        new_output(
                            "error",
                            ename="AutograderFailure",
                            evalue=message,
                            traceback=[f"AutograderFailure: {message}"],
                        )
                    )
            score, max_score = determine_grade(cell)
            scores[gid] = (None if score is None else float(score), float(max_score))
        return scores


def demote_result(output) -> None:
    """An ``execute_result`` output turned into a ``display_data`` (same content; nbgrader reads no score from it)."""
    output["output_type"] = "display_data"
    output.pop("execution_count", None)
    output.setdefault("metadata", {})


def _zero_scores(spec: NotebookSpec) -> dict[str, tuple[float | None, float]]:
    return {c.grade_id: (0.0, float(c.points or 0.0)) for c in spec.cells if c.scored}


def _safe_relative(path: str) -> PurePosixPath | None:
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return None
    return p


def grade_notebook(
    raw: bytes | None,
    spec: NotebookSpec,
    limits: Limits,
    scratch: Path,
    sandbox: bool,
    execute: bool = True,
    logdir: Path | None = None,
    delimiters: Delimiters = DEFAULT,
) -> NotebookResult:
    """Run the steps for one notebook; every student-caused failure becomes a status (never an exception).

    ``execute=False`` is nbgrader's ``--no-execute``: the submitted outputs are kept and scored as they are.
    ``delimiters``: the course's (the job's), to recognise the hidden tests of its test cells.
    """
    import nbformat

    if raw is None:
        return NotebookResult(spec.name, "missing", f"{spec.filename} was not submitted", None, _zero_scores(spec))
    ctx = Context(spec=spec, limits=limits, delimiters=delimiters)
    if execute:
        steps = (
            CheckNbgraderMetadata(),
            CheckKernel(),
            ClearOutputs(),
            RepairCellIds(),
            RestoreCells(),
            ExecuteNotebook(scratch, sandbox, logdir),
            LimitOutput(),
        )
    else:
        steps = (CheckNbgraderMetadata(), RepairCellIds(), RestoreCells(), LimitOutput())
    try:
        nb = ReadNotebook()(raw, ctx)
        for step in steps:
            nb = step(nb, ctx)
        scores = ScoreCells(by_outputs=not execute)(nb, ctx)
    except StepFailed as failed:
        return NotebookResult(
            spec.name, failed.status, failed.reason, None, _zero_scores(spec), recorded=failed.recorded
        )
    # scores for spec cells the notebook lost anyway (cannot happen after RestoreCells, but be total)
    for gid, value in _zero_scores(spec).items():
        scores.setdefault(gid, value)
    reason = "; ".join(ctx.notes) if ctx.notes else "graded"
    return NotebookResult(spec.name, ctx.status, reason, nbformat.writes(nb).encode("utf-8"), scores)


def grade_job(job: GradeJob) -> GradeResult:
    """Grade one submission. Never raises for student-caused problems: each outcome is a status with a reason.

    A bug or environment failure of the grader itself (including "sandbox requested but unavailable") gives the
    status ``error`` for the notebooks concerned, so one submission never stops a batch.
    """
    started = time.monotonic()
    results: list[NotebookResult] = []
    # root: the grader's own folder (mode 0700, never visible in the sandbox; the kernels' logs go here);
    # scratch: the one folder bound read-write into the sandbox (the notebooks' working folder, home, sockets)
    root = Path(tempfile.mkdtemp(prefix="autograder-"))
    scratch = root / "sandbox"
    mounted = False
    try:
        setup_error = None
        try:
            if job.sandbox:
                from .sandbox import check_sandbox_cached

                check_sandbox_cached()
            from .sandbox import mount_scratch, prepare_scratch, sandbox_uid

            scratch.mkdir()
            if job.sandbox:
                mounted = mount_scratch(scratch, scratch_megabytes(job.limits))
            (scratch / "work").mkdir(parents=True)
            for rel, data in job.files.items():
                safe = _safe_relative(rel)
                if safe is None:
                    continue  # an absolute or escaping path is not copied (the notebook sees the rest)
                target = scratch / "work" / safe
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            prepare_scratch(scratch, sandbox_uid() if job.sandbox else None)
        except Exception as exc:  # noqa: BLE001 - reported as the status "error"
            setup_error = f"grader setup failed: {type(exc).__name__}: {exc}"
        for spec in job.specs:
            if setup_error:
                results.append(NotebookResult(spec.name, "error", setup_error, None, _zero_scores(spec)))
                continue
            if spec.filename in job.too_large:
                results.append(
                    NotebookResult(
                        spec.name,
                        "invalid_notebook",
                        f"{spec.filename} is over {MAX_NOTEBOOK_BYTES // 2**20} MB: not read",
                        None,
                        _zero_scores(spec),
                    )
                )
                continue
            try:
                results.append(
                    grade_notebook(
                        job.notebooks.get(spec.filename),
                        spec,
                        job.limits,
                        scratch,
                        job.sandbox,
                        job.execute,
                        logdir=root,
                        delimiters=job.delimiters,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - a grader bug must not stop the batch
                results.append(
                    NotebookResult(
                        spec.name, "error", f"grader error: {type(exc).__name__}: {exc}"[:300], None, _zero_scores(spec)
                    )
                )
        written, dropped = ({}, []) if setup_error else written_files(scratch / "work", job.files)
    finally:
        if mounted:
            from .sandbox import unmount_scratch

            unmount_scratch(scratch)
        shutil.rmtree(root, ignore_errors=True)
    status = worst_status(r.status for r in results)
    reasons = [f"{r.name}: {r.reason}" for r in results if r.status != "ok" or r.reason != "graded"]
    reasons += list(job.notes)
    if dropped:
        reasons.append(
            f"files written while graded and not kept (over {MAX_KEPT_BYTES // 2**20} MB or "
            f"{MAX_KEPT_FILES} files): {', '.join(dropped[:5])}{' ...' if len(dropped) > 5 else ''}"
        )
    return GradeResult(
        student_id=job.student_id,
        status=status,
        reason="; ".join(reasons) or "graded",
        notebooks=results,
        seconds=time.monotonic() - started,
        score=sum(r.score for r in results),
        max_score=sum(r.max_score for r in results),
        files=written,
    )


def scratch_megabytes(limits: Limits) -> int:
    """Size of a submission's scratch folder (a tmpfs, where the grader may mount one): half the kernel's memory,
    so that filling it ends with "No space left on device" before the memory cgroup stops the kernel."""
    return max(64, limits.memory_mb // 2)


def written_files(workdir: Path, given: dict[str, bytes]) -> tuple[dict[str, bytes], list[str]]:
    """(files created or changed in ``workdir`` while graded, paths not kept because of the limits).

    nbgrader autogrades in the ``autograded/`` folder itself, so what a notebook writes stays there; we grade in a
    scratch folder and copy it back. The folder was writable by student code: links are never followed (a link
    or a FIFO is skipped, each file is opened with O_NOFOLLOW and checked to be a regular file), and at most
    :data:`~autograder.job.MAX_KEPT_BYTES` in :data:`~autograder.job.MAX_KEPT_FILES` files are read.
    """
    import os
    import stat

    kept: dict[str, bytes] = {}
    dropped: list[str] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(workdir, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = PurePosixPath(Path(path).relative_to(workdir).as_posix())
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue  # a link (ELOOP) or a file that vanished
            with os.fdopen(fd, "rb") as fh:
                info = os.fstat(fh.fileno())
                if not stat.S_ISREG(info.st_mode):
                    continue
                if total + info.st_size > MAX_KEPT_BYTES or len(kept) >= MAX_KEPT_FILES:
                    dropped.append(str(rel))
                    continue
                data = fh.read(MAX_KEPT_BYTES - total + 1)
            if len(data) + total > MAX_KEPT_BYTES:
                dropped.append(str(rel))  # grew while being read
                continue
            if given.get(str(rel)) == data:
                continue  # a file of the submission (or the instructor's), unchanged
            kept[str(rel)] = data
            total += len(data)
    return kept, dropped


__all__ = [
    "grade_job",
    "grade_notebook",
    "written_files",
    "harden_test_source",
    "builtin_names_used",
    "ReadNotebook",
    "CheckKernel",
    "CheckNbgraderMetadata",
    "ClearOutputs",
    "RepairCellIds",
    "RestoreCells",
    "ExecuteNotebook",
    "LimitOutput",
    "ScoreCells",
    "StepFailed",
    "Context",
]
