"""Shared fixtures: a temporary tracking store, free ports, lesson execution, no orphan processes; and the rule for
tests that need the grading sandbox.

Tests that grade in the bubblewrap sandbox carry ``@pytest.mark.sandbox`` (fixtures that grade sandboxed request
:func:`grading_sandbox` instead: marks do not apply to fixtures). Where the sandbox cannot run (no ``bubblewrap``,
e.g. a student's laptop or macOS) they are skipped with a reason naming the packages to install; under CI
(``CI=true``, as ``.ci/run`` exports) they fail instead, so no sandbox test can silently stop running.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

# Child processes (papermill kernels, mlflow CLIs, nbgrader) must find the venv's tools.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
# One BLAS/OpenMP thread in the tests and every process they start (kernels, mlflow CLIs): the course's fits are
# tiny, and on a busy 2-core machine a thread pool per process made an iris fit 10-50 times slower. Set before numpy
# is first imported (here, before any test module). The grader sets the same in its kernels itself.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
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

    from leftover_servers import server_processes

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


SANDBOX_PACKAGES = "apt-get install bubblewrap util-linux"


def in_ci() -> bool:
    """True when the suite runs under CI (``CI=true``, set by ``.ci/run`` and by most CI services)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@functools.cache
def sandbox_problem() -> str | None:
    """Why the grading sandbox cannot run on this machine (``check_sandbox``'s first sentence), or None if it can."""
    from autograder.exceptions import SandboxUnavailableError
    from autograder.sandbox import check_sandbox

    try:
        check_sandbox()
    except SandboxUnavailableError as exc:
        return str(exc).split(". ")[0]
    return None


def sandbox_reason(problem: str) -> str:
    return f"needs the grading sandbox ({SANDBOX_PACKAGES}): {problem}"


def require_sandbox() -> None:
    """Skip the calling test (fail it under CI) when the grading sandbox cannot run here."""
    problem = sandbox_problem()
    if problem is None:
        return
    if in_ci():
        pytest.fail(f"CI=true: {sandbox_reason(problem)}", pytrace=False)
    pytest.skip(sandbox_reason(problem))


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: probe only when a sandbox test is still selected
def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if item.get_closest_marker("sandbox")]
    if not marked or (problem := sandbox_problem()) is None or in_ci():
        return  # under CI, pytest_runtest_setup below fails them instead
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=sandbox_reason(problem)))


@pytest.hookimpl(tryfirst=True)  # before any fixture of the test is set up
def pytest_runtest_setup(item):
    if item.get_closest_marker("sandbox") and in_ci():
        require_sandbox()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI a sandbox test is never skipped, whatever skipped it (a skip mark, skipif, pytest.skip): a failure."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and item.get_closest_marker("sandbox") and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: a sandbox test may not be skipped ({reason})"


@pytest.fixture(scope="session")
def grading_sandbox() -> None:
    """For fixtures that grade sandboxed: the same rule as ``@pytest.mark.sandbox`` (skip here, fail under CI)."""
    require_sandbox()


# ------------------------------------------------------------------ nbgrader's documentation example course


@pytest.fixture(scope="session")
def generated_docs_course(tmp_path_factory) -> Path:
    """nbgrader's documentation example course with a hidden-test region in ps1 and a third student, ``partial``
    (hacker's work with a ``squares`` that passes the visible asserts and fails the hidden one), ps1 generated
    (:func:`nbgrader_course.generated_course`). Shared by the drop-in, feedback, preflight and submission-folder
    tests, which copy it before changing anything: bitdiddle and hacker still score what nbgrader's documentation
    lists."""
    from nbgrader_course import generated_course

    return generated_course(tmp_path_factory.mktemp("docs") / "course")


@pytest.fixture(scope="session")
def graded_docs_course(generated_docs_course, tmp_path_factory, grading_sandbox):
    """A copy of :func:`generated_docs_course` graded by ``python -m autograder grade ps1 --json`` (sandboxed):
    (course folder, {student_id: JSON row})."""
    from nbgrader_course import graded_course

    return graded_course(generated_docs_course, tmp_path_factory.mktemp("engine") / "course")
