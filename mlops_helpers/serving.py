"""Real MLflow servers for the lessons: ``mlflow models serve`` and ``mlflow ui``, started, awaited, stopped.

The seed's commands, run for real::

    with ModelServer("models:/iris-classifier@champion", port=5001) as server:   # mlflow models serve ...
        server.predict(X_test)                                                   # POST /invocations

    with MlflowUI("sqlite:///mlflow.db", port=5002) as ui:                       # mlflow ui ...
        print(ui.url)

What the helpers add is plumbing a lesson should not have to show, and that a test must be able to trust:

- the port is checked *before* launching (:class:`PortInUseError` names it and suggests a free one);
- the model URI is checked with MLflow *before* launching (:class:`ModelNotFoundError`, in well under a second,
  instead of a server that dies seconds later);
- readiness is awaited by polling ``/ping`` (or the UI's root page) with a timeout, never a fixed sleep; a process
  that dies meanwhile raises :class:`ServerDiedError` with the tail of its log;
- a rejected payload raises :class:`BadPayloadError` with the server's own message and the accepted formats;
- the server runs in its own process group (``start_new_session=True``) and the *whole group* is stopped — the
  ``mlflow`` CLI and the uvicorn worker it spawns — on ``with`` exit, on an exception inside the block, on
  :meth:`stop`, when the object is garbage-collected, and at interpreter exit (a ``weakref.finalize`` hook).
  Only a SIGKILL of the Python process itself can skip that (nothing can run then).

This module owns the servers' lifecycle; the plumbing it uses has a module per concern: :mod:`.ports`,
:mod:`.processes` (the CLI, its environment, stopping a process group), :mod:`.models` (the model URI check),
:mod:`.cell_hooks` (stop on a failed notebook cell), :mod:`.payloads` and :mod:`.latency`. Their public names
are importable from here too, as the lessons do.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

import requests

from .cell_hooks import stop_when_a_cell_fails
from .exceptions import (
    BadPayloadError,
    PortInUseError,
    ServerDiedError,
    ServerNotRunningError,
    ServerTimeoutError,
    ServingError,
)
from .latency import LatencyReport, measure_latency
from .models import check_model_uri
from .payloads import ACCEPTED_FORMATS, server_message, to_payload
from .ports import DEFAULT_HOST, free_port, port_is_free
from .processes import child_env, group_members, mlflow_command, terminate_group

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_HOST",
    "LatencyReport",
    "MlflowUI",
    "ModelServer",
    "check_model_uri",
    "free_port",
    "group_members",
    "measure_latency",
    "mlflow_command",
    "port_is_free",
    "server_message",
    "to_payload",
]


def _stop_process(process: subprocess.Popen, log_file, remove_log: str | None) -> None:
    """Stop the server's whole process group, then close (and remove, if it was a temporary file) its log.

    Module-level (not a method) so that the ``weakref.finalize`` hook holding it keeps no reference to the server
    object.
    """
    terminate_group(process)
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
        return shlex.join(["mlflow", *self.command()[len(mlflow_command()) :]])

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
            env=child_env(self.tracking_uri),
            start_new_session=True,  # its own process group: stop() kills the CLI *and* the uvicorn it spawns
        )
        # Runs on stop(), on garbage collection and at interpreter exit (finalize registers with atexit).
        self._finalizer = weakref.finalize(
            self, _stop_process, self.process, log_file, None if self._log_given else str(self.log_path)
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

    def stop(self, reason: str | None = None) -> None:
        """Stop the whole process group (idempotent). ``reason`` is what a later call is told about why."""
        if self._finalizer is not None:
            self._finalizer()
        self._session.close()
        if self._cell_hook is not None:
            unregister, self._cell_hook = self._cell_hook, None
            unregister()
        if reason:
            self._stopped_because = reason

    def stop_when_a_cell_fails(self) -> "_ServerProcess":
        """In a notebook, stop this server as soon as any cell raises (see :mod:`mlops_helpers.cell_hooks`).

        A lesson starts its server in one cell and uses it in the next ones: a ``with`` block cannot span
        cells, so this is what guarantees that a failing cell leaves no server running. Outside IPython it
        does nothing. Returns ``self``.
        """
        if self._cell_hook is None:
            self._cell_hook = stop_when_a_cell_fails(self)
        return self

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


# ------------------------------------------------------------------------------------------- MLflow UI


class MlflowUI(_ServerProcess):
    """``mlflow ui --backend-store-uri URI --host 127.0.0.1 --port PORT``, as a context manager.

    Ready when its root page answers 200 with content (slow on a loaded machine: hence the long
    ``startup_timeout``). It is also a tracking server: its REST API (``/api/2.0/mlflow/...``) answers on the
    same port.

    When the store is itself a tracking server (``http(s)://``, e.g. a class's shared server), that server already
    serves the UI, and ``mlflow ui --backend-store-uri http://...`` could not read it: nothing is started, the
    server is checked to answer, and :attr:`url` is its address.
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

    @property
    def serves_itself(self) -> bool:
        """True when the store is a tracking server, whose own UI is used (nothing is started)."""
        return self.backend_store_uri.startswith(("http://", "https://"))

    @property
    def url(self) -> str:
        return self.backend_store_uri.rstrip("/") if self.serves_itself else super().url

    @property
    def command_line(self) -> str:
        if self.serves_itself:
            return f"nothing: the tracking server {self.url} serves the UI itself"
        return super().command_line

    def start(self) -> "MlflowUI":
        if not self.serves_itself:
            return super().start()
        from .tracking import check_server

        started = time.perf_counter()
        check_server(self.backend_store_uri)
        self.ready_seconds = time.perf_counter() - started
        return self

    def __enter__(self):
        return self.start() if self.serves_itself else super().__enter__()

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
