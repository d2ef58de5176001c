"""The class on one machine, for real: ``python -m deploy.hub --prepare-only`` (Linux accounts, releases) and the
JupyterHub of ``deploy/jupyterhub_config.py`` with its services, on free ports of 127.0.0.1, as root.

* ``running_class`` (a context manager) prepares and serves a class; ``class_hub`` (package: one hub for the
  modules that use it) is a roster of one instructor, students ``a`` and ``b`` and ``CLASS_SIZE`` more
  (``MLOPS_HUB_CLASS_SIZE``, default 30), under unique throwaway user names, state in a fresh folder of /tmp;
  ``small_class`` (module) is a class of one student with PostgreSQL, a memory limit and idle culling set. At
  teardown the hub is stopped (it stops every server and service), any process still owned by one of the
  throwaway users is killed by its pid and reported, the accounts are removed (``deploy.accounts remove``, which
  also restores the checkout's permissions) and the state folder deleted -- also when a test failed.
* :class:`Hub` helpers: a user's own token (their password through the hub's REST API), spawning, calls to their
  server, code run in a kernel of their server, commands run as a user (``setpriv``), MLflow REST calls.

Every test here is ``full`` (``make test-full``); they need root, ``setpriv`` and ``npm``-installed proxy.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest
from classhub import BIN, CLASS_SIZE, PROXY, ROOT, SMALL_CLASS_IDLE, SMALL_CLASS_MEMORY_MB, Hub, free_port


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.full)


def _processes_of(uids: set[int]) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.info["uids"] and proc.info["uids"].real in uids:
                found.append(proc)
        except psutil.Error:
            continue
    return found


@contextlib.contextmanager
def running_class(roles: list[str], extra_env: dict[str, str] | None = None):
    """A class with one throwaway account per role (``instructor`` the instructor, every other role a student),
    prepared by ``deploy.hub --prepare-only`` and served by the hub of ``deploy/`` (its environment plus
    ``extra_env``); yields the :class:`Hub`. Everything is undone afterwards, also when a test failed."""
    if os.geteuid() != 0:
        pytest.skip("the class hub creates Linux users and spawns servers as them: run as root (CI does)")
    if not os.access(PROXY, os.X_OK):
        pytest.fail(f"{PROXY} is missing: run `make hub-deps` (make test-full does)")
    if not shutil.which("setpriv") or not shutil.which("useradd"):
        pytest.fail("setpriv and useradd are needed (apt-get install util-linux passwd)")
    prefix = "h" + secrets.token_hex(3)
    users = {role: f"{prefix}{'t' if role == 'instructor' else role}" for role in roles}
    state = Path(tempfile.mkdtemp(prefix="mlops-hub-", dir="/tmp"))
    os.chmod(state, 0o755)
    roster = state / "roster.csv"
    roster.write_text(
        "username,role,first_name,last_name\n"
        + "".join(
            f"{name},{'instructor' if role == 'instructor' else 'student'},{role},Test\n"
            for role, name in users.items()
        )
    )
    ports = {k: free_port() for k in ("hub", "hub_api", "proxy_api", "mlflow", "formgrader")}
    hub = Hub(state, prefix, ports, users, extra_env=extra_env)
    created = False
    try:
        proc = subprocess.run(
            [str(BIN / "python"), "-m", "deploy.hub", "--prepare-only", "--roster", str(roster), "--state", str(state)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            env=hub.environment(),
        )
        created = True
        assert proc.returncode == 0, proc.stdout + proc.stderr
        hub.prepare_output = proc.stdout + proc.stderr
        hub.start()
        yield hub
    finally:
        hub.stop()
        uids = set()
        for name in users.values():
            try:
                uids.add(pwd.getpwnam(name).pw_uid)
            except KeyError:
                pass
        # a stopped server's kernels exit a moment after it: give them 30 s, then kill and report what is left
        _, leftovers = psutil.wait_procs(_processes_of(uids), timeout=30)
        for proc in leftovers:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(leftovers, timeout=30)
        if created:
            subprocess.run(
                [str(BIN / "python"), "-m", "deploy.accounts", "remove", "--state", str(state)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
        log = hub.log if hub.log.exists() else None
        if log is not None:
            keep = ROOT / "build" / "hub"
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, keep / f"hub-{prefix}.log")
        shutil.rmtree(state, ignore_errors=True)
        assert not leftovers, f"processes left running by the hub's users: {[p.pid for p in leftovers]}"


@pytest.fixture(scope="package")
def class_hub():
    with running_class(["instructor", "a", "b", *(f"s{i:02d}" for i in range(CLASS_SIZE))]) as hub:
        yield hub


@pytest.fixture(scope="package")
def chromium():
    """Debian's chromium driven by Playwright (no browser download), in a thread of its own: tests/browser's
    session-wide Playwright may still run in the main thread, and a second sync Playwright there does not start.
    Yields ``run(fn, *args)``, which calls ``fn(browser, *args)`` in that thread and returns its result (or raises)."""
    from concurrent.futures import ThreadPoolExecutor

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed (`apt-get install chromium`; .ci/run does)")
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-chromium")
    state = {}

    def start():
        from playwright.sync_api import sync_playwright

        from chromium_flags import CHROMIUM_ARGS

        state["playwright"] = sync_playwright().start()
        state["browser"] = state["playwright"].chromium.launch(
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
        )

    def stop():
        if "browser" in state:
            state["browser"].close()
        if "playwright" in state:
            state["playwright"].stop()

    try:
        pool.submit(start).result(timeout=300)
        yield lambda fn, *args: pool.submit(fn, state["browser"], *args).result()
    finally:
        pool.submit(stop).result(timeout=300)
        pool.shutdown()


@pytest.fixture(scope="module")
def small_class():
    """A class of one instructor and one student, set up as an instructor of a bigger class would: the MLflow
    service keeps its runs in PostgreSQL (``MLOPS_MLFLOW_BACKEND``, a throwaway cluster on a free port), each
    server may use at most ``SMALL_CLASS_MEMORY`` (``MLOPS_HUB_MEM_LIMIT``), and a server idle for
    ``SMALL_CLASS_IDLE`` seconds is stopped (``MLOPS_HUB_IDLE_TIMEOUT``; activity reported every 10 s instead of
    300). Yields ``(hub, cluster)``."""
    from pg import PostgresCluster, PostgresUnavailable

    try:
        cluster = PostgresCluster()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL is needed for this test ({exc}); .ci/run installs it")
    with cluster:
        settings = {
            "MLOPS_MLFLOW_BACKEND": cluster.create_database("class_mlflow"),
            "MLOPS_HUB_MEM_LIMIT": f"{SMALL_CLASS_MEMORY_MB}M",
            "MLOPS_HUB_IDLE_TIMEOUT": str(SMALL_CLASS_IDLE),
            "MLOPS_HUB_ACTIVITY_INTERVAL": "10",
        }
        with running_class(["instructor", "p"], settings) as hub:
            yield hub, cluster
