"""Shared fixtures: a temporary tracking store, free ports, lesson execution, no orphan processes."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

# Child processes (papermill kernels, mlflow CLIs, nbgrader) must find the venv's tools.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
# Never let a test write to a developer's real store by accident. The one exception: tests/test_model_gate.py run
# on purpose against a registered model (MODEL_URI set) reads that model from the store the caller names.
if "MODEL_URI" not in os.environ:
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch) -> str:
    """A fresh, empty sqlite tracking store in a temporary folder; MLflow's globals reset afterwards."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    yield uri
    from mlflow_state import reset_mlflow_globals

    reset_mlflow_globals()


@pytest.fixture
def run_lesson(tmp_path):
    """Execute ``notebooks/<name>`` through papermill (as ``make course`` does) and return the result.

    The executed copy goes to the test's temporary folder; parameters are injected by papermill.
    """
    from mlops_helpers.notebooks import execute

    def run(name: str, **parameters):
        return execute(NOTEBOOKS / name, tmp_path / "out" / name, parameters)

    return run


SESSION_MARKER_VARIABLE = "MLOPS_BRIDGE_TEST_SESSION"


@pytest.fixture(scope="session", autouse=True)
def no_server_left_running():
    """Fail the session if a server started during it (``mlflow models serve``, ``mlflow ui``, ``mlflow server``,
    uvicorn, gunicorn) is still alive at the end, and kill it.

    The session exports a marker variable that every child inherits (papermill kernels, mlflow CLIs and the uvicorn
    they spawn), so even orphans re-parented to init are found, and other users' servers never are.
    """
    import signal
    import time

    from mlops_helpers.serving import server_processes

    marker = {SESSION_MARKER_VARIABLE: f"{os.getpid()}-{time.time_ns()}"}
    os.environ.update(marker)
    yield
    deadline = time.monotonic() + 15  # a kernel shutting down may still be stopping its server
    while (left := server_processes(env=marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        listing = "\n".join(f"  pid {pid}: {cmd}" for pid, cmd in left)
        pytest.fail(f"{len(left)} server process(es) started by the tests were still running (now killed):\n{listing}")
