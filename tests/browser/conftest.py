"""Browser tests: Playwright for Python driving Debian's chromium (no browser download), and a real JupyterLab.

* ``browser`` (session): headless chromium launched from ``shutil.which("chromium")`` with the flags that make it
  run as root in a container and stay off the network (no sync, no component updates, no QUIC).
* ``page`` (per test): a fresh context and page, generous timeouts (the machine is shared and slow: wait for
  content, never for "load"). When the test fails, a screenshot and the page's text go to ``build/browser/``.
* :class:`JupyterLab`: ``jupyter lab --no-browser --ip 127.0.0.1 --port FREE --ServerApp.token=...`` in a folder,
  with the venv's bin first on PATH and throwaway Jupyter config/runtime/workspace folders (a developer's own
  settings or a stale workspace must not change what the test sees). Stopped through its own API (which shuts
  its kernels down), then its process group; any process still carrying the server's tag is killed and reported.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from chromium_flags import CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "browser"
BIN = Path(sys.executable).parent

#: Playwright's default per-action wait; a React page or a kernel can take this long on a loaded 2-core machine.
ACTION_TIMEOUT_MS = 120_000
TAG = "MLOPS_BRIDGE_BROWSER_TEST"  # environment variable marking every process a test server starts


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.full)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so that the ``page`` fixture knows at teardown if the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


# ------------------------------------------------------------------------------------------------ chromium
@pytest.fixture(scope="session")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "Debian's chromium is not installed (`apt-get install chromium`; .ci/run does): "
            "the browser tests need it and download no browser"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])[:120]


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = _safe_name(request.node.nodeid)
        try:
            tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True, timeout=30_000)
            (SCREENSHOTS / f"{name}.txt").write_text(f"{tab.url}\n\n{tab.inner_text('body', timeout=30_000)}")
            print(f"screenshot of the failing page: {SCREENSHOTS / name}.png", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - a failed screenshot must not hide the test's own failure
            print(f"could not save a screenshot: {exc}", file=sys.stderr)
    context.close()


# ------------------------------------------------------------------------------------------------ JupyterLab
def tagged_processes(value: str) -> list:
    """Live processes whose environment holds ``TAG=value`` (the server and every kernel it started)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if (
                proc.pid != os.getpid()
                and proc.info["status"] != psutil.STATUS_ZOMBIE
                and proc.environ().get(TAG) == value
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


class JupyterLab:
    """A real JupyterLab server on 127.0.0.1 serving ``folder`` (also its working directory: nbgrader's Validate
    handler reads ``nbgrader_config.py`` from the server's working directory)."""

    def __init__(self, folder: Path, port: int, startup_timeout: float = 240.0):
        self.folder = Path(folder)
        self.port = port
        self.token = secrets.token_hex(16)
        self.tag = secrets.token_hex(8)
        self.startup_timeout = startup_timeout
        self.state = self.folder.parent / f".jupyter-{self.port}"
        self.log_path = self.state / "server.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lab_url(self, path: str = "") -> str:
        """The page opening ``path``; ``reset`` drops the tabs a previous test left open (the saved workspace)."""
        page = f"/lab/tree/{path}" if path else "/lab"
        return f"{self.url}{page}?reset&token={self.token}"

    def start(self) -> "JupyterLab":
        for sub in ("config", "data", "runtime", "workspaces"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            {
                "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "JUPYTER_CONFIG_DIR": str(self.state / "config"),
                "JUPYTER_DATA_DIR": str(self.state / "data"),
                "JUPYTER_RUNTIME_DIR": str(self.state / "runtime"),
                "JUPYTERLAB_WORKSPACES_DIR": str(self.state / "workspaces"),
                "PYTHONUNBUFFERED": "1",
                TAG: self.tag,
            }
        )
        env.pop("MLFLOW_TRACKING_URI", None)  # the lessons must use their own default, as a student's would
        command = [
            str(BIN / "jupyter"),
            "lab",
            "--no-browser",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--port-retries",
            "0",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={self.folder}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabServerApp.workspaces_dir=" + str(self.state / "workspaces"),
        ]
        if os.geteuid() == 0:  # CI runs as root; Jupyter refuses that unless told
            command.append("--allow-root")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            command,
            cwd=self.folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/api/status", params={"token": self.token}, timeout=5).ok:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"jupyter lab did not answer within {self.startup_timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(1)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> list[str]:
        """Shut the server and its kernels down; returns the command lines of processes that had to be killed."""
        if self.process is None:
            return []
        try:  # the server's own shutdown stops its kernels (they run in their own sessions, not its group)
            requests.post(f"{self.url}/api/shutdown", params={"token": self.token}, timeout=30)
            self.process.wait(timeout=60)
        except (requests.RequestException, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        self.log.close()
        leftovers = []
        for proc in tagged_processes(self.tag):
            try:
                leftovers.append(" ".join(proc.cmdline()))
                proc.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass
        return leftovers

    def __enter__(self) -> "JupyterLab":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


@pytest.fixture(scope="module")
def jupyter_lab_factory():
    """``start(folder) -> JupyterLab``; every server started is stopped at the module's end, and a process it left
    behind fails the test run."""
    from mlops_helpers.serving import free_port

    started: list[JupyterLab] = []

    def start(folder: Path) -> JupyterLab:
        lab = JupyterLab(folder, free_port())
        started.append(lab)
        return lab.start()

    yield start
    leftovers = [left for lab in started for left in lab.stop()]
    assert not leftovers, f"processes left running after JupyterLab stopped: {leftovers}"
