"""The grader's client of one grading kernel: runs a notebook's cells one by one under the job's limits.

:class:`GradingClient` is nbclient's ``NotebookClient`` with what grading adds: a per-notebook deadline, an output
budget, the in-kernel guard (``autograder/kernel_guard.py``) installed first, and test cells run hardened, each
judged by its reply and a secret token (never by what student code prints), with check cells' hidden checks judged
outside the kernel. When the notebook stops (a cell's or the notebook's time is up, the kernel died) the cells
after it are not executed and their tests fail, saying why: :meth:`GradingClient.stop` is the one place for that.
The step that uses it is :class:`autograder.unit.ExecuteNotebook`; this module is imported only there, as nbclient
and jupyter_client cost seconds to import.
"""

from __future__ import annotations

import ast
import atexit
import json
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output

from .checks import observation_request, parse_check_cell
from .job import KERNEL_STARTUP_SECONDS
from .rewrite import RewriteError, builtin_names_used, harden_test_source
from .unit import demote_result, guard_install_code, guard_module_name, is_autograder_test, max_message_bytes

if TYPE_CHECKING:
    from .unit import Context


class GradingClient(NotebookClient):
    """nbclient's NotebookClient with a per-notebook deadline, an output budget and guarded test cells.

    Cells run one by one (``async_execute_cell``) so that we decide what happens after a timeout or a dead
    kernel: execution stops there and the cells already executed keep their results (a loop that catches
    KeyboardInterrupt therefore costs only the tests after it). We never interrupt: the kernel is killed.
    """

    def __init__(self, nb, ctx: Context, km, workdir: Path, **kw):
        super().__init__(
            nb,
            km=km,
            allow_errors=True,
            interrupt_on_timeout=False,
            startup_timeout=KERNEL_STARTUP_SECONDS,
            timeout=int(ctx.limits.cell_timeout),
            kernel_name="python3",
            iopub_timeout=10,
            raise_on_iopub_timeout=False,
            record_timing=False,
            resources={"metadata": {"path": str(workdir)}},
            **kw,
        )
        self.ctx = ctx
        self.output_bytes = 0
        self.truncated = False
        self.token: str | None = None  # the running test cell's token (see run_test_cell)
        self.token_seen = False
        self.guard_module = guard_module_name()
        # msg_id of each test cell's execute_request -> its grade_id, and those already answered: a second
        # reply to one request can only be forged (student code holds the kernel's signing key)
        self.requests: dict[str, str | None] = {}  # request msg_id -> the test it belongs to (None: none)
        self.answered: set[str] = set()
        self.current_test: str | None = None
        self.stop_reason: str | None = None  # why the notebook stopped (the cells after it are not executed)

    # -- output budget ----------------------------------------------------------------------------------
    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        if self.token is not None:
            # the grader's own messages of a test cell pass whatever the budget: the token, then the cell's
            # final value (nbgrader's partial credit), which comes after it
            if msg["msg_type"] == "stream" and self.token in str(content.get("text", "")):
                self.token_seen = True
                return super().output(outs, msg, display_id, cell_index)
            if self.token_seen and msg["msg_type"] == "execute_result" and len(str(content.get("data", ""))) < 10_000:
                return super().output(outs, msg, display_id, cell_index)
        if self.truncated and msg["msg_type"] != "error":
            return None  # over the budget already: dropped unread (an error's traceback is still kept)
        # the whole message counts (metadata and transient fields too: they are kept in the notebook as well)
        try:
            size = len(json.dumps(content, default=str))
        except (TypeError, ValueError, RecursionError):
            size = self.ctx.limits.max_output_bytes + 1
        if self.output_bytes + size > self.ctx.limits.max_output_bytes:
            if not self.truncated:
                self.truncated = True
                outs.append(
                    new_output(
                        "stream",
                        name="stdout",
                        text=(
                            f"\n... output truncated by the grader: more than {self.ctx.limits.max_output_bytes} "
                            "bytes of output in this notebook ...\n"
                        ),
                    )
                )
            if msg["msg_type"] != "error":
                return None
            content["traceback"] = content.get("traceback", [])[-5:]
        self.output_bytes += size
        return super().output(outs, msg, display_id, cell_index)

    # -- raw requests outside the notebook's cells ---------------------------------------------------
    async def silent(self, code: str, timeout: float, user_expressions: dict | None = None) -> dict:
        """Run grader code in the kernel without history or outputs; return the execute_reply content."""
        from jupyter_core.utils import ensure_async

        msg_id = self.kc.execute(
            code, silent=True, store_history=False, allow_stdin=False, user_expressions=user_expressions or {}
        )
        self.requests[msg_id] = self.current_test
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CellTimeoutError("grader request timed out")
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=min(remaining, 1.0)))
            except Exception:  # noqa: BLE001 - queue.Empty: check the kernel is alive and keep waiting
                if not await ensure_async(self.km.is_alive()):
                    raise DeadKernelError("Kernel died") from None
                continue
            parent = msg["parent_header"].get("msg_id")
            if parent in self.answered:
                self.tampered(parent)
                continue
            if parent in self.requests:
                self.answered.add(parent)
            if parent == msg_id:
                return msg["content"]

    def tampered(self, msg_id: str) -> None:
        """A second reply to one request: forged by student code (it holds the kernel's signing key, and a
        forged "ok" followed by the real error is how a failing test would be made to pass). The test that
        request belonged to fails."""
        grade_id = self.requests.get(msg_id)
        note = "the kernel answered one of the grader's requests twice: a forged reply"
        if grade_id is not None:
            self.ctx.verdicts[grade_id] = (False, note)
            if f"forged reply in test {grade_id}" not in self.ctx.notes:
                self.ctx.notes.append(f"forged reply in test {grade_id}")

    async def run(self):
        limits, ctx = self.ctx.limits, self.ctx
        started = time.monotonic()
        try:
            await self._run_cells(started)
        finally:
            # we own the kernel manager we passed in: shut the kernel down here, and drop nbclient's atexit
            # hook (it would assert on the manager we already released).
            atexit.unregister(self._cleanup_kernel)
        if self.truncated:
            ctx.worsen("resource_limit", f"output truncated at {limits.max_output_bytes} bytes")

    async def _run_cells(self, started):
        limits, ctx = self.ctx.limits, self.ctx
        async with self.async_setup_kernel(cleanup_kc=True):
            reply = await self.silent(
                guard_install_code(self.guard_module, limits.max_output_bytes), timeout=KERNEL_STARTUP_SECONDS
            )
            if reply.get("status") != "ok":
                raise RuntimeError(f"grader guard failed to install: {reply.get('ename')}: {reply.get('evalue')}")
            for index, cell in enumerate(self.nb.cells):
                if cell.cell_type != "code":
                    continue
                grade_id = cell.metadata["nbgrader"]["grade_id"] if is_autograder_test(cell) else None
                remaining = limits.notebook_timeout - (time.monotonic() - started)
                if self.stop_reason is None and remaining <= 0:
                    self.stop("timeout", f"the notebook ran out of its {limits.notebook_timeout:g} s")
                if self.stop_reason is not None:
                    if grade_id is not None:
                        ctx.verdicts[grade_id] = (False, f"not executed: {self.stop_reason}")
                    continue
                self.timeout = max(1, int(min(limits.cell_timeout, remaining)))
                try:
                    if grade_id is not None:
                        await self.run_test_cell(cell, index, grade_id)
                    else:
                        await self.async_execute_cell(cell, index, store_history=True)
                except CellTimeoutError:
                    self.stop(
                        "timeout",
                        f"cell {index} ran longer than {self.timeout} s"
                        + (" (notebook time limit)" if self.timeout < limits.cell_timeout else ""),
                        cell,
                        "TimeoutError",
                        grade_id,
                    )
                except DeadKernelError:
                    self.stop("kernel_died", f"the kernel died in cell {index}", cell, "DeadKernelError", grade_id)
                if self.stop_reason is None and self.kc is not None and self.kc.dropped_connections():
                    ctx.worsen(
                        "resource_limit",
                        f"cell {index} sent an output message over "
                        f"{max_message_bytes(limits)} bytes; the grader refused it",
                    )
                    cell.outputs.append(
                        new_output(
                            "stream",
                            name="stdout",
                            text=(
                                f"\n... output refused by the grader: a single output message of more than "
                                f"{max_message_bytes(limits)} bytes; what this cell printed after it is lost ...\n"
                            ),
                        )
                    )
                    await self.kc.reopen_iopub(timeout=30)
                for out in cell.get("outputs", []):
                    if out.get("output_type") == "error" and out.get("ename") in ("MemoryError",):
                        ctx.worsen("resource_limit", f"memory limit ({limits.memory_mb} MB) hit in cell {index}")
                    if out.get("output_type") == "error" and "Resource temporarily unavailable" in str(
                        out.get("evalue", "")
                    ):
                        ctx.worsen("resource_limit", f"process limit ({limits.max_processes}) hit in cell {index}")

    def stop(self, status: str, reason: str, cell=None, ename: str | None = None, grade_id: str | None = None) -> None:
        """Stop the notebook here: its status worsens to ``status`` with ``reason``; the cell it stopped in (if any)
        shows the reason as an ``ename`` error, and fails when it is a test; every later test fails unexecuted."""
        self.stop_reason = reason
        self.ctx.worsen(status, reason)
        if cell is not None and ename is not None:
            cell.outputs.append(new_output("error", ename=ename, evalue=reason, traceback=[f"{ename}: {reason}"]))
        if grade_id is not None:
            self.ctx.verdicts[grade_id] = (False, reason)

    async def run_test_cell(self, cell, index, grade_id):
        """Guard, run the hardened source, judge by reply status + token, undo the guard's stash."""
        guard_name = f"_grader_{secrets.token_hex(6)}"
        token = f"autograder-ok-{secrets.token_hex(16)}"
        self.current_test = grade_id
        prelude = (
            f"__import__('sys').modules[{self.guard_module!r}].GUARD.before_test("
            f"{guard_name!r}, {builtin_names_used(cell.source)!r})"
        )
        reply = await self.silent(prelude, timeout=self.timeout)
        if reply.get("status") != "ok":
            message = f"{reply.get('ename')}: {reply.get('evalue')}"
            cell.outputs = [
                new_output(
                    "error",
                    ename=str(reply.get("ename")),
                    evalue=str(reply.get("evalue")),
                    traceback=[f"The grader could not run this test: {message}"],
                )
            ]
            self.ctx.verdicts[grade_id] = (False, message)
            return
        original = cell.source
        check_cell = parse_check_cell(original, self.ctx.delimiters)
        try:
            cell.source = harden_test_source(check_cell.visible_source if check_cell else original, guard_name, token)
        except RewriteError as exc:  # the grader's fault, not the student's: say so, never a silent 0
            self.ctx.worsen("error", f"test cell {grade_id}: {exc}")
            self.ctx.verdicts[grade_id] = (False, str(exc))
            cell.outputs = [
                new_output("error", ename="AutograderError", evalue=str(exc), traceback=[f"AutograderError: {exc}"])
            ]
            await self.silent(
                f"__import__('sys').modules[{self.guard_module!r}].GUARD.after_test({guard_name!r})", timeout=30
            )
            return
        captured = {}

        def keep_reply(cell, cell_index, execute_reply):
            captured["reply"] = execute_reply
            parent = execute_reply.get("parent_header", {}).get("msg_id")
            if parent:
                self.requests[parent] = grade_id
                self.answered.add(parent)

        self.on_cell_executed = keep_reply
        self.token, self.token_seen = token, False
        try:
            # stored in the history as nbgrader does: IPython's "quiet" rule (a final ';') then reads
            # this cell, not the student's previous one
            await self.async_execute_cell(cell, index, store_history=True)
        finally:
            cell.source = original
            self.on_cell_executed = None
            self.token = None
        reply = (captured.get("reply") or {}).get("content", {})
        seen = False
        for out in cell.outputs:
            if out.get("output_type") == "stream" and token in out.get("text", ""):
                seen = True
                out["text"] = out["text"].replace(token + "\n", "").replace(token, "")
            elif out.get("output_type") == "execute_result" and not seen:
                # a result shown before the token was emitted by code the test called (a displayhook call),
                # not the cell's final value: kept as a display, never read as partial credit
                demote_result(out)
        cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and not o.get("text"))]
        if reply.get("status") == "ok" and seen:
            self.ctx.verdicts[grade_id] = (True, "")
        elif reply.get("status") == "ok":
            self.ctx.verdicts[grade_id] = (False, "the test did not run to its end (its errors were swallowed)")
        else:
            self.ctx.verdicts[grade_id] = (False, f"{reply.get('ename')}: {reply.get('evalue')}")
        if check_cell is not None:
            await self.run_checks(cell, grade_id, check_cell)
        try:
            await self.silent(
                f"__import__('sys').modules[{self.guard_module!r}].GUARD.after_test({guard_name!r})", timeout=30
            )
        except CellTimeoutError:
            # the kernel is still busy after the test "finished": its reply was not the real one
            self.ctx.verdicts[grade_id] = (False, "the kernel kept running after the test's reply")
            raise

    async def run_checks(self, cell, grade_id, check_cell):
        """Judge a check cell's hidden checks outside the kernel: only each check's expression goes in, only
        its value comes out (JSON text, bounded), the expected values never leave the grader."""
        failures = []
        for check in check_cell.checks:
            reply = await self.silent(
                "", timeout=self.timeout, user_expressions={"observed": observation_request(check.expression)}
            )
            result = (reply.get("user_expressions") or {}).get("observed") or {}
            observed = "null"
            if result.get("status") == "ok":
                try:
                    observed = ast.literal_eval(result.get("data", {}).get("text/plain", "None")) or "null"
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    observed = "null"
                if not isinstance(observed, str):
                    observed = "null"
            passed, message = check.judge(observed)
            if not passed:
                failures.append(message)
        for message in failures:
            cell.outputs.append(
                new_output("error", ename="AssertionError", evalue=message, traceback=[f"AssertionError: {message}"])
            )
        if failures:
            before = self.ctx.verdicts.get(grade_id, (True, ""))
            self.ctx.verdicts[grade_id] = (
                False,
                "; ".join(([before[1]] if not before[0] and before[1] else []) + failures),
            )
