"""Test helper: find the server processes a test session started and left running (used by ``conftest.py``)."""

from __future__ import annotations

import os

import psutil

#: Command-line fragments of the server processes the course starts (the CLIs and the web servers they spawn).
SERVER_PATTERNS = ("mlflow models serve", "mlflow ui", "mlflow server", "uvicorn", "gunicorn")


def server_processes(env: dict[str, str] | None = None, patterns=SERVER_PATTERNS) -> list[tuple[int, str]]:
    """(pid, command line) of live server processes, optionally only those whose environment holds ``env``.

    ``conftest.py`` tags its session with an environment variable that every child inherits (papermill kernels,
    the mlflow CLIs, their uvicorn workers), so it finds the servers *its* tests started — even the orphans
    re-parented to init — and never another user's.
    """
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
