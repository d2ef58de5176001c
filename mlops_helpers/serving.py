"""Real MLflow servers for the lessons: ``mlflow models serve`` and ``mlflow ui``, started, awaited, stopped.

The seed's commands, run for real::

    with ModelServer("models:/iris-classifier@champion", port=5001) as server:   # mlflow models serve ...
        server.predict(X_test)                                                   # POST /invocations

    with MlflowUI("sqlite:///mlflow.db", port=5002) as ui:                       # mlflow ui ...
        print(ui.url)

What the helpers add is plumbing a lesson should not have to show, and that a test must be able to trust:

- the port is checked *before* launching (:class:`PortInUseError` names it and suggests a free one);
- the model URI is checked with MLflow *before* launching (:class:`ModelNotFoundError`, in well under a second,
  instead of a server that dies ~10 s later);
- readiness is awaited by polling ``/ping`` (or the UI's root page) with a timeout, never a fixed sleep; a process
  that dies meanwhile raises :class:`ServerDiedError` with the tail of its log;
- a rejected payload raises :class:`BadPayloadError` with the server's own message and the accepted formats;
- the server runs in its own process group (``start_new_session=True``) and the *whole group* is stopped — the
  ``mlflow`` CLI and the uvicorn worker it spawns — on ``with`` exit, on an exception inside the block, on
  :meth:`stop`, when the object is garbage-collected, and at interpreter exit (a ``weakref.finalize`` hook).
  Only a SIGKILL of the Python process itself can skip that (nothing can run then).

Importing this module is cheap (no mlflow, no pandas): ``tests/conftest.py`` uses :func:`server_processes`.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests

from .exceptions import (
    ACCEPTED_PAYLOAD_FORMATS,
    BadPayloadError,
    ModelNotFoundError,
    PortInUseError,
    ServerDiedError,
    ServerNotRunningError,
    ServerTimeoutError,
    ServingError,
)

DEFAULT_HOST = "127.0.0.1"
#: Command-line fragments of the server processes the course starts (the CLIs and the web servers they spawn).
SERVER_PATTERNS = ("mlflow models serve", "mlflow ui", "mlflow server", "uvicorn", "gunicorn")


# --------------------------------------------------------------------------------------------- ports


def port_is_free(port: int, host: str = DEFAULT_HOST) -> bool:
    """True when nothing listens on (host, port).

    ``SO_REUSEADDR`` as uvicorn sets it, so a port in TIME_WAIT after a previous server counts as free
    (uvicorn will be able to bind it), while a port somebody listens on does not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError:
            return False
    return True


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ processes


def mlflow_command() -> list[str]:
    """The ``mlflow`` CLI of this interpreter's environment (the venv's script, else ``python -m mlflow``)."""
    script = Path(sys.executable).with_name("mlflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]


def _child_env(tracking_uri: str | None) -> dict:
    env = dict(os.environ)
    # `mlflow models serve --env-manager local` runs `exec uvicorn ...` through bash: uvicorn must be found on
    # PATH, and it must be this environment's (a notebook kernel's PATH does not always include the venv).
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    import psutil  # pinned in requirements.lock (via distributed and ipython)

    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _terminate_group(process: subprocess.Popen, log_file, remove_log: str | None, grace: float = 10.0) -> None:
    """SIGTERM the whole process group, give it ``grace`` seconds, then SIGKILL whatever is left.

    Module-level (not a method) so that the ``weakref.finalize`` hook holding it keeps no reference to the server
    object. The group id is the leader's pid (``start_new_session=True``); it stays valid after the leader has
    exited as long as a member (uvicorn) lives, which is exactly the case to cover.
    """
    pgid = process.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + grace
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_members(pgid) or process.poll() is None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()
    if log_file is not None:
        log_file.close()
    if remove_log:
        Path(remove_log).unlink(missing_ok=True)


def _clean_log_lines(text: str) -> list[str]:
    # tqdm progress bars ("Downloading artifacts: 14%...") rewrite one line with carriage returns: keep the last.
    return [line.rsplit("\r", 1)[-1] for line in text.splitlines() if line.strip("\r ")]


class _ServerProcess:
    """One real server process: launch, await readiness, log, stop the whole process group."""

    kind = "server"

    def __init__(self, *, host: str, port: int | None, startup_timeout: float, log_path, tracking_uri: str | None):
        self.host = host
        self._port_given = port is not None
        self.port = int(port) if port is not None else free_port(host)
        self.startup_timeout = float(startup_timeout)
        self.tracking_uri = tracking_uri
        self._log_given = log_path is not None
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self.ready_seconds: float | None = None
        self._finalizer = None
        self._cell_hook = None
        self._last_tail = ""
        self._stopped_because = "it was stopped"
        self._session = requests.Session()

    # subclasses
    def command(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_before_launch(self) -> None:
        if not port_is_free(self.port, self.host):
            raise PortInUseError(self.host, self.port, suggestion=free_port(self.host))

    def _is_ready(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    # public
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def command_line(self) -> str:
        """The exact shell command that was (or will be) run, for the lesson to print."""
        return shlex.join(["mlflow", *self.command()[len(mlflow_command()):]])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pgid(self) -> int | None:
        """Process group of the server (the CLI and the workers it spawned); None before :meth:`start`."""
        return self.process.pid if self.process is not None else None

    def start(self) -> "_ServerProcess":
        """Check the port (and the model), launch the CLI, wait until it answers. Returns ``self``."""
        if self.process is not None:
            raise ServingError(f"this {self.kind} was already started (pid {self.process.pid}); make a new one")
        self._check_before_launch()
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"mlflow-{self.kind.replace(' ', '-')}-{self.port}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        log_file = open(self.log_path, "wb")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=_child_env(self.tracking_uri),
            start_new_session=True,  # its own process group: stop() kills the CLI *and* the uvicorn it spawns
        )
        # Runs on stop(), on garbage collection and at interpreter exit (finalize registers with atexit).
        self._finalizer = weakref.finalize(
            self, _terminate_group, self.process, log_file, None if self._log_given else str(self.log_path)
        )
        try:
            self.wait_ready()
        except BaseException:  # includes KeyboardInterrupt: a student pressing Stop must not leave a server behind
            tail = self.log_tail()
            self.stop()
            self._last_tail = tail
            raise
        self.ready_seconds = time.perf_counter() - started
        return self

    def wait_ready(self) -> None:
        """Poll the readiness URL until it answers, the process dies, or ``startup_timeout`` runs out.

        The pause between polls grows from 0.1 s to 1 s: quick when the server is quick, light on a loaded machine.
        """
        deadline = time.monotonic() + self.startup_timeout
        pause = 0.1
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServerDiedError(
                    f"`{self.command_line}` exited with code {code} before it was ready", self.log_tail(), self.log_path
                )
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                raise ServerTimeoutError(
                    f"`{self.command_line}` did not answer at {self.url} within {self.startup_timeout:.0f} s "
                    f"(the machine may be busy: pass a larger startup_timeout)",
                    self.log_tail(),
                    self.log_path,
                )
            time.sleep(pause)
            pause = min(pause * 1.5, 1.0)

    def stop(self) -> None:
        """Stop the whole process group (idempotent)."""
        if self._finalizer is not None:
            self._finalizer()
        self._session.close()
        self._unregister_cell_hook()

    def stop_when_a_cell_fails(self) -> "_ServerProcess":
        """In a notebook, stop this server as soon as any cell raises (an IPython ``post_run_cell`` hook).

        A lesson starts its server in one cell and uses it in the next ones: a ``with`` block cannot span
        cells, so this is what guarantees that a failing cell leaves no server running. Outside IPython it
        does nothing. Returns ``self``.
        """
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython ships with the course
            return self
        shell = get_ipython()
        if shell is None or self._cell_hook is not None:
            return self
        ref = weakref.ref(self)  # the hook must not keep the server alive

        def after_cell(result):
            server = ref()
            if server is None or not server.running:
                return
            if result.error_in_exec is not None or result.error_before_exec is not None:
                print(
                    f"A cell failed: stopping the {server.kind} at {server.url} so that it is not left running. "
                    f"Fix the cell, then re-run the cell that starts the server.",
                    file=sys.stderr,
                )
                server.stop()
                server._stopped_because = "it was stopped because a cell failed"

        shell.events.register("post_run_cell", after_cell)
        self._cell_hook = (shell, after_cell)
        return self

    def _unregister_cell_hook(self) -> None:
        if self._cell_hook is not None:
            shell, hook = self._cell_hook
            self._cell_hook = None
            try:
                shell.events.unregister("post_run_cell", hook)
            except ValueError:
                pass

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the process wrote (progress bars collapsed)."""
        text = self.log_text()
        if not text and self._last_tail:
            return self._last_tail
        return "\n".join(_clean_log_lines(text)[-lines:])

    def _get(self, path: str, timeout: float = 2.0) -> requests.Response | None:
        try:
            return self._session.get(self.url + path, timeout=timeout)
        except requests.RequestException:
            return None

    def __enter__(self):
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else ("stopped" if self.process else "not started")
        return f"<{type(self).__name__} {self.url} {state}>"


# ---------------------------------------------------------------------------------------- model server


def check_model_uri(model_uri: str, tracking_uri: str | None = None) -> None:
    """Raise :class:`ModelNotFoundError` unless ``model_uri`` names a model MLflow can load.

    Fetches only the model's ``MLmodel`` file through the MLflow client (``runs:/``, ``models:/name/version``,
    ``models:/name@alias``, ``models:/<model id>``, local paths), in a fraction of a second.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from .tracking import resolve_tracking_uri

    uri = str(model_uri)
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        local = Path(urlparse(uri).path if scheme else uri)
        if not (local / "MLmodel").is_file():
            raise ModelNotFoundError(f"no MLflow model at {uri}: {local / 'MLmodel'} does not exist")
        return
    store = resolve_tracking_uri(tracking_uri)
    # Explicit URIs only: this runs in the caller's process (a lesson kernel, the test process), whose global
    # tracking/registry URIs -- and the MLFLOW_*_URI variables MLflow exports with them -- must not change.
    with tempfile.TemporaryDirectory() as tmp:
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{uri.rstrip('/')}/MLmodel", dst_path=tmp, tracking_uri=store, registry_uri=store
            )
            return
        except MlflowException as exc:
            error = exc
    # models:/<model id> names a logged model (MLflow 3), which download_artifacts takes for a registered name.
    name = uri.removeprefix("models:/").rstrip("/")
    if uri.startswith("models:/") and name.startswith("m-") and "/" not in name and "@" not in name:
        try:
            mlflow.MlflowClient(tracking_uri=store).get_logged_model(name)
            return
        except MlflowException:
            pass
    raise ModelNotFoundError(
        f"no model at {uri} in the tracking store {store}: {error.message} "
        f"(check the run id, the registered model's name, version or alias, and the tracking URI)"
    ) from error


class ModelServer(_ServerProcess):
    """``mlflow models serve -m URI -h 127.0.0.1 -p PORT --env-manager local``, as a context manager.

    ``port=None`` takes a free port. ``tracking_uri`` (default: the usual resolution, see
    :func:`mlops_helpers.tracking.resolve_tracking_uri`) is where ``runs:/`` and ``models:/`` URIs are looked up.
    """

    kind = "model server"

    def __init__(
        self,
        model_uri: str,
        *,
        port: int | None = None,
        host: str = DEFAULT_HOST,
        tracking_uri: str | None = None,
        env_manager: str = "local",
        workers: int = 1,
        startup_timeout: float = 180.0,
        request_timeout: float = 60.0,
        check_model: bool = True,
        log_path: str | Path | None = None,
    ):
        from .tracking import resolve_tracking_uri

        super().__init__(
            host=host,
            port=port,
            startup_timeout=startup_timeout,
            log_path=log_path,
            tracking_uri=resolve_tracking_uri(tracking_uri),
        )
        self.model_uri = str(model_uri)
        self.env_manager = env_manager
        self.workers = int(workers)
        self.request_timeout = float(request_timeout)
        self.check_model = check_model

    def command(self) -> list[str]:
        return [
            *mlflow_command(), "models", "serve",
            "-m", self.model_uri,
            "-h", self.host,
            "-p", str(self.port),
            "--env-manager", self.env_manager,
            "-w", str(self.workers),
        ]  # fmt: skip

    def _check_before_launch(self) -> None:
        super()._check_before_launch()
        if self.check_model:
            check_model_uri(self.model_uri, self.tracking_uri)

    def _is_ready(self) -> bool:
        answer = self._get("/ping")
        return answer is not None and answer.status_code == 200

    @property
    def invocations_url(self) -> str:
        return self.url + "/invocations"

    def ping(self) -> bool:
        """True when the server answers ``GET /ping`` with 200."""
        return self._is_ready()

    def invoke(self, payload, *, content_type: str = "application/json") -> requests.Response:
        """POST ``payload`` to ``/invocations`` and return the raw HTTP response, whatever its status.

        ``payload`` is a dict (sent as JSON) or a str/bytes body (sent as is, e.g. CSV with ``text/csv``).
        """
        if self.process is None:
            raise ServerNotRunningError(f"the {self.kind} at {self.url} was never started: call start(), or use `with`")
        if not self.running:
            if self._finalizer is not None and self._finalizer.alive:  # nobody stopped it: it died
                reason = f"it exited with code {self.process.returncode}; last lines of its log:\n{self.log_tail()}"
            else:
                reason = self._stopped_because
            raise ServerNotRunningError(f"the {self.kind} at {self.url} is not running ({reason}): start a new one")
        try:
            if isinstance(payload, (str, bytes)):
                return self._session.post(
                    self.invocations_url, data=payload, headers={"Content-Type": content_type},
                    timeout=self.request_timeout,
                )  # fmt: skip
            return self._session.post(self.invocations_url, json=payload, timeout=self.request_timeout)
        except requests.RequestException as exc:
            raise ServerNotRunningError(
                f"no answer from {self.invocations_url} ({type(exc).__name__}: {exc})\n{self.log_tail()}"
            ) from exc

    def predict(self, data):
        """Predictions for ``data`` as a numpy array.

        ``data``: a pandas DataFrame (sent as ``dataframe_split``), a list of row dicts (``dataframe_records``),
        or a ready payload dict with one of the keys ``dataframe_split``, ``dataframe_records``, ``instances``,
        ``inputs``. A 4xx answer raises :class:`BadPayloadError` carrying the server's message.
        """
        import numpy as np

        payload = to_payload(data)
        answer = self.invoke(payload)
        if 400 <= answer.status_code < 500:
            raise BadPayloadError(answer.status_code, server_message(answer), url=self.invocations_url)
        if answer.status_code != 200:
            raise ServingError(
                f"HTTP {answer.status_code} from {self.invocations_url}: {server_message(answer)}\n{self.log_tail()}"
            )
        return np.asarray(answer.json()["predictions"])


def to_payload(data) -> dict:
    """The JSON payload for ``data`` (see :meth:`ModelServer.predict`); unknown types raise :class:`BadPayloadError`."""
    if isinstance(data, dict):
        return data
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a DataFrame, without importing pandas
        return {"dataframe_split": {"columns": [str(c) for c in data.columns], "data": data.values.tolist()}}
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        return {"dataframe_records": data}
    raise BadPayloadError(
        "not sent",
        f"cannot build a payload from a {type(data).__name__}; pass a DataFrame, a list of row dicts, or a payload dict",
    )


def server_message(answer: requests.Response) -> str:
    """The scoring server's explanation of an error answer (its JSON ``message``, else the body)."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text.strip()[:2000]
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return str(body)[:2000]


# ------------------------------------------------------------------------------------------- MLflow UI


class MlflowUI(_ServerProcess):
    """``mlflow ui --backend-store-uri URI --host 127.0.0.1 --port PORT``, as a context manager.

    Ready when its root page answers 200 with content (15-45 s on a loaded machine, minutes when it is very busy). It is also a tracking
    server: its REST API (``/api/2.0/mlflow/...``) answers on the same port.
    """

    kind = "MLflow UI"

    def __init__(
        self,
        backend_store_uri: str | None = None,
        *,
        port: int | None = None,
        host: str = DEFAULT_HOST,
        workers: int = 1,
        startup_timeout: float = 300.0,
        log_path: str | Path | None = None,
    ):
        from .tracking import resolve_tracking_uri

        super().__init__(host=host, port=port, startup_timeout=startup_timeout, log_path=log_path, tracking_uri=None)
        self.backend_store_uri = resolve_tracking_uri(backend_store_uri)
        # `mlflow ui` defaults to 4 uvicorn workers under a supervisor that kills a worker which is slow to start:
        # on a busy 2-core machine all four were killed and the UI never answered. One student needs one worker.
        self.workers = int(workers)

    def command(self) -> list[str]:
        return [
            *mlflow_command(), "ui",
            "--backend-store-uri", self.backend_store_uri,
            "--host", self.host,
            "--port", str(self.port),
            "--workers", str(self.workers),
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        answer = self._get("/", timeout=5.0)
        return answer is not None and answer.status_code == 200 and bool(answer.content)


# ----------------------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class LatencyReport:
    """Latencies of ``n`` sequential requests, in milliseconds."""

    latencies_ms: tuple[float, ...]
    seconds: float

    @property
    def n(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, q: float) -> float:
        import numpy as np

        return float(np.percentile(self.latencies_ms, q))

    @property
    def p50_ms(self) -> float:
        return self.percentile(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile(99)

    @property
    def requests_per_second(self) -> float:
        return self.n / self.seconds if self.seconds else float("inf")

    def __str__(self) -> str:
        return (
            f"{self.n} requests: p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"{self.requests_per_second:.0f} requests/s"
        )


def measure_latency(call, n_requests: int = 300, *, warmup: int = 5, progress: bool = True) -> LatencyReport:
    """Time ``n_requests`` sequential calls of ``call()`` (after ``warmup`` untimed ones), with a progress bar."""
    from tqdm.auto import tqdm

    if n_requests < 1:
        raise ValueError(f"n_requests must be at least 1, not {n_requests}")
    for _ in range(warmup):
        call()
    latencies = []
    started = time.perf_counter()
    for _ in tqdm(range(n_requests), desc="requests", unit="req", disable=not progress, file=sys.stderr):
        t0 = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - t0) * 1000.0)
    return LatencyReport(tuple(latencies), time.perf_counter() - started)


# ------------------------------------------------------------------------------------- leftover check


def server_processes(env: dict[str, str] | None = None, patterns=SERVER_PATTERNS) -> list[tuple[int, str]]:
    """(pid, command line) of live server processes, optionally only those whose environment holds ``env``.

    ``tests/conftest.py`` tags its session with an environment variable that every child inherits (papermill
    kernels, the mlflow CLIs, their uvicorn workers), so it finds the servers *its* tests started — even the
    orphans re-parented to init — and never another user's.
    """
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.info["cmdline"] or [])
            if not any(p in cmdline.replace("-m mlflow", "mlflow") for p in patterns):
                continue
            if env:
                environ = proc.environ()
                if any(environ.get(k) != v for k, v in env.items()):
                    continue
            found.append((proc.pid, cmdline))
        except psutil.Error:
            continue
    return found


ACCEPTED_FORMATS = ACCEPTED_PAYLOAD_FORMATS
