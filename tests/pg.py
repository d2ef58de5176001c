"""Test helper: a throwaway PostgreSQL cluster and a real ``mlflow server`` on it (class-scale set-up).

    with PostgresCluster() as pg:                       # initdb + pg_ctl start on a free port, removed afterwards
        url = pg.create_database("mlflow")              # postgresql+psycopg2://postgres@127.0.0.1:PORT/mlflow
        with TrackingServer(url, artifacts) as server:  # mlflow server --backend-store-uri URL --artifacts-destination
            ...  server.url  ...

Debian's PostgreSQL 15 binaries (``/usr/lib/postgresql/15/bin``; the version is found, not assumed). PostgreSQL
refuses to run as root: as root the binaries run as the ``postgres`` user (``runuser``) in a data folder it owns;
as anybody else they run as that user. The cluster listens only on 127.0.0.1 (and a socket in its own folder),
trusts local connections (it lives for one test module and holds nothing of value) and runs without fsync.

Why our own helper instead of a pytest plugin (pytest-postgresql, testing.postgresql): neither is a dependency,
and both assume they may run ``initdb`` as the current user, which PostgreSQL refuses for root (how CI runs).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from mlops_helpers.serving import MlflowUI, free_port, mlflow_command

PG_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (or the postgres account needed as root) are not installed."""


def pg_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_ctl``."""
    found = sorted(
        (Path(p) for p in glob.glob(PG_GLOB) if (Path(p) / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: `apt-get install postgresql` (.ci/run does)"
        )
    return found[-1]


class PostgresCluster:
    """A fresh PostgreSQL cluster in a temporary folder, on a free port of 127.0.0.1; ``stop()`` removes it."""

    def __init__(self, port: int | None = None, start_timeout: float = 120.0):
        self.bindir = pg_bindir()
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                self._owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresUnavailable(
                    "running as root needs the `postgres` account (created by Debian's postgresql package)"
                ) from None
        # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, the postgres user could not reach it.
        self.base = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log = self.base / "postgres.log"
        self.started = False

    # ------------------------------------------------------------------------------------------ processes
    def _run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.base)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{self.log_tail()}"
            )
        return proc

    def log_tail(self, lines: int = 20) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> "PostgresCluster":
        self.socket_dir.mkdir()
        self.log.touch()
        if self.as_root:
            for path in (self.base, self.socket_dir, self.log):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        # trust: local-only throwaway cluster; --no-sync and fsync=off: nothing here must survive a crash.
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.socket_dir} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off "
            f"-c full_page_writes=off -c max_connections=100"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(int(self.start_timeout)),
            "start",
            timeout=self.start_timeout + 30,
        )
        self.started = True
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL of the postmaster if needed) and delete the folder."""
        try:
            if self.started:
                try:
                    self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop", timeout=90)
                except Exception:  # noqa: BLE001 - fall back to killing the postmaster named in its pid file
                    self._kill_postmaster()
                self.started = False
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        import signal

        pidfile = self.data / "postmaster.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)

    def postmaster_pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        return int(pidfile.read_text().split()[0]) if pidfile.exists() else None

    def __enter__(self) -> "PostgresCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------ databases
    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL MLflow and nbgrader take (TCP on 127.0.0.1).

        The driver is named: SQLAlchemy 2.1 made ``postgresql://`` mean psycopg 3, and the course installs
        psycopg2-binary (``postgresql://`` alone fails with "No module named 'psycopg'").
        """
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=database)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name``; returns its URL."""
        from psycopg2 import sql

        conn = self.connect()
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()
        return self.url(name)

    def query(self, database: str, statement: str, params=()) -> list[tuple]:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall()
        finally:
            conn.close()


class TrackingServer(MlflowUI):
    """``mlflow server --backend-store-uri URL --artifacts-destination DIR --host 127.0.0.1 --port PORT``.

    The class-scale tracking server of docs/deploy.md: runs and registry in PostgreSQL, artifacts proxied by the
    server (``--serve-artifacts`` is the default) into a local folder standing in for the object store. The
    process plumbing (free port, readiness polling, process-group stop) is :class:`~mlops_helpers.serving.MlflowUI`'s.
    """

    kind = "MLflow tracking server"

    def __init__(self, backend_store_uri: str, artifacts_destination: str | os.PathLike, **kwargs):
        kwargs.setdefault("startup_timeout", 300.0)  # the first start creates ~40 tables in PostgreSQL
        super().__init__(backend_store_uri, **kwargs)
        self.artifacts_destination = str(artifacts_destination)

    def command(self) -> list[str]:
        return [
            *mlflow_command(), "server",
            "--backend-store-uri", self.backend_store_uri,
            "--artifacts-destination", self.artifacts_destination,
            "--host", self.host,
            "--port", str(self.port),
            "--workers", "2",
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        answer = self._get("/health", timeout=5.0)
        return answer is not None and answer.status_code == 200
