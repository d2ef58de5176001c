"""Execute lesson notebooks headless with papermill: the engine behind ``make course`` and the tests.

``python -m mlops_helpers.notebooks notebooks/ --out build/`` runs every lesson in teaching order with
a progress bar and exits non-zero, naming the notebook and the failing cell, when a cell fails.
Besides errors, a cell that prints an MLflow deprecation warning fails the run, unless the cell is
tagged ``deprecated-on-purpose`` (lesson 01 runs the seed's example as written to show the warning).

Kernels run quiet (:class:`LessonKernelManager`): the run shows one progress bar, one line per lesson and real
problems. The kernel's ZeroMQ channels are CurveZMQ-encrypted (ipykernel otherwise warns on every start that it runs
over TCP without encryption); MLflow's own "Downloading artifacts" progress bars stay out of the stored outputs
(``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false``); and the kernel's own stdout and stderr go to
``<executed notebook>.kernel.log``, not to the terminal: ipykernel copies there everything a cell's subprocesses
print (``mlflow run``, servers), which the notebook's outputs already hold.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
from jupyter_client.manager import AsyncKernelManager
from traitlets import Unicode, default
from traitlets.config import Config

from .exceptions import DeprecatedApiError, NotebookExecutionError

ALLOWED_DEPRECATION_TAG = "deprecated-on-purpose"
#: Variables every lesson kernel started here gets on top of the caller's environment.
LESSON_KERNEL_ENV = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
DEPRECATION_MARKERS = ("is deprecated", "DeprecationWarning", "FutureWarning")


@dataclass(frozen=True)
class Executed:
    """One executed notebook: where it was written, how long it took, the notebook node itself."""

    source: Path
    output: Path
    seconds: float
    notebook: object  # nbformat.NotebookNode

    def outputs_text(self, *, tag: str | None = None) -> str:
        """All text the notebook printed (streams and plain-text results), optionally of tagged cells only."""
        return "\n".join(cell_text(c) for c in self.notebook.cells if tag is None or tag in cell_tags(c))


class LessonKernelManager(AsyncKernelManager):
    """papermill's kernel manager, quiet: CurveZMQ-encrypted channels when pyzmq and the kernelspec support them
    (ipykernel's kernelspec declares it), :data:`LESSON_KERNEL_ENV` in the kernel's environment, and the kernel's
    stdout and stderr appended to ``kernel_log`` when set (at every launch, restarts included)."""

    kernel_log = Unicode(
        "", config=True, help="file the kernel's own stdout and stderr are appended to (empty: the caller's terminal)"
    )

    @default("transport_encryption")
    def _transport_encryption_default(self) -> str:
        return "auto" if zmq.has("curve") else "disabled"

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        kw["env"] = {**(kw.get("env") or os.environ), **LESSON_KERNEL_ENV}
        if not self.kernel_log:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        with open(self.kernel_log, "ab") as log:  # the kernel process keeps its own descriptor
            kw["stdout"] = kw["stderr"] = log
            return await super()._async_launch_kernel(kernel_cmd, **kw)


def cell_tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def cell_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out and "text/plain" in out["data"]:
            parts.append(out["data"]["text/plain"])
    return "".join(parts)


def deprecation_offences(notebook) -> list[tuple[int, str]]:
    """(cell index, offending line) for every deprecation warning printed by a cell not allowed to."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.get("cell_type") != "code" or ALLOWED_DEPRECATION_TAG in cell_tags(cell):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                for line in out.get("text", "").splitlines():
                    if any(marker in line for marker in DEPRECATION_MARKERS):
                        found.append((index, line.strip()))
    return found


def execute(
    source: str | Path,
    output: str | Path,
    parameters: dict | None = None,
    *,
    cwd: str | Path | None = None,  # default: the notebook's folder, as in JupyterLab
    timeout: int = 600,
    check_deprecations: bool = True,
) -> Executed:
    """Run one notebook through papermill; raise :class:`NotebookExecutionError` naming the failing cell."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source, output = Path(source), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    kernel_log = kernel_log_path(output).absolute()  # papermill runs from the notebook's folder (cwd)
    kernel_log.unlink(missing_ok=True)
    started = time.perf_counter()
    try:
        notebook = papermill.execute_notebook(
            str(source),
            str(output),
            parameters=parameters or {},
            cwd=str(cwd or source.parent),
            kernel_name="python3",
            kernel_manager_class=LessonKernelManager,
            config=Config({"LessonKernelManager": {"kernel_log": str(kernel_log)}}),
            progress_bar=False,
            execution_timeout=timeout,
        )
    except PapermillExecutionError as exc:
        # papermill counts the injected-parameters cell; report the index in the executed copy.
        raise NotebookExecutionError(source, exc.cell_index, exc.exec_count, exc.ename, exc.evalue, output) from exc
    except Exception as exc:  # unreadable notebook, missing kernel, timeout, a kernel that died...
        detail = f"{exc} (kernel's own output: {kernel_log})" if kernel_log.exists() else exc
        raise NotebookExecutionError(source, None, None, type(exc).__name__, detail, output) from exc
    if check_deprecations:
        offences = deprecation_offences(notebook)
        if offences:
            index, line = offences[0]
            raise DeprecatedApiError(
                f"{source}: cell {index} printed a deprecation warning ({line!r}); use the current MLflow API, "
                f"or tag the cell {ALLOWED_DEPRECATION_TAG!r} if showing the warning is the point"
            )
    return Executed(source, output, time.perf_counter() - started, notebook)


def kernel_log_path(output: str | Path) -> Path:
    """Where the kernel that executes into ``output`` writes its own stdout and stderr."""
    output = Path(output)
    return output.with_name(f"{output.stem}.kernel.log")


def lesson_notebooks(folder: str | Path) -> list[Path]:
    """Lesson notebooks in teaching order (their names start with a number)."""
    return sorted(p for p in Path(folder).glob("*.ipynb") if not p.name.startswith("."))


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(
        prog="python -m mlops_helpers.notebooks",
        description="Execute lesson notebooks headless with papermill, in teaching order, into an output folder. "
        "Exits 1 naming the notebook and cell at the first failure.",
    )
    parser.add_argument(
        "folder", nargs="?", default="notebooks", help="folder of lesson notebooks (default: notebooks)"
    )
    parser.add_argument("--out", default="build/notebooks", help="where executed copies go (default: build/notebooks)")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="parameter passed to every notebook, e.g. -p tracking_uri sqlite:///build/mlflow.db",
    )
    parser.add_argument("--only", action="append", default=[], help="run only notebooks whose name contains this")
    parser.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds (default: 600)")
    args = parser.parse_args(argv)

    notebooks = [p for p in lesson_notebooks(args.folder) if not args.only or any(o in p.name for o in args.only)]
    if not notebooks:
        parser.error(f"no notebooks found in {args.folder}")
    parameters = dict(args.parameter)
    out = Path(args.out)
    times = {}
    with tqdm(notebooks, unit="notebook", file=sys.stderr) as bar:
        for path in bar:
            bar.set_description(path.stem)
            try:
                result = execute(path, out / path.name, parameters, timeout=args.timeout)
            except (NotebookExecutionError, DeprecatedApiError) as exc:
                bar.close()
                print(f"FAILED: {exc}", file=sys.stderr)
                return 1
            times[path.name] = result.seconds
    for name, seconds in times.items():
        print(f"{seconds:7.1f} s  {name}")
    print(f"{len(times)} notebooks executed into {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
