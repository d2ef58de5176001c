"""Child processes of the servers the course starts: the ``mlflow`` CLI to run, its environment, its process group.

A server is launched with ``start_new_session=True``: the CLI leads a process group of its own, which also holds
the web server it spawns (uvicorn). :func:`terminate_group` stops the whole group, so nothing is left listening.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil


def mlflow_command() -> list[str]:
    """The ``mlflow`` CLI of this interpreter's environment (the venv's script, else ``python -m mlflow``)."""
    script = Path(sys.executable).with_name("mlflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]


def child_env(tracking_uri: str | None) -> dict:
    """The environment of a server process: this one's, with this environment's scripts first on PATH."""
    env = dict(os.environ)
    # `mlflow models serve --env-manager local` runs `exec uvicorn ...` through bash: uvicorn must be found on
    # PATH, and it must be this environment's (a notebook kernel's PATH does not always include the venv).
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


def _group_processes(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of process group ``pgid`` (one scan of the process table)."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes of process group ``pgid``."""
    return [proc.pid for proc in _group_processes(pgid)]


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def terminate_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group that ``process`` leads, give it ``grace`` seconds, then SIGKILL whatever is left.

    The group id is the leader's pid (``start_new_session=True``); it stays valid after the leader has exited as
    long as a member (uvicorn) lives, which is exactly the case to cover. The members are found once, before the
    signal, and awaited with :func:`psutil.wait_procs`; the leader is awaited through ``process`` so that its exit
    code stays known.
    """
    pgid = process.pid
    deadline = time.monotonic() + grace
    others = [proc for proc in _group_processes(pgid) if proc.pid != pgid]
    _signal_group(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    psutil.wait_procs(others, timeout=max(0.0, deadline - time.monotonic()))
    # One more look at the group: it also finds a worker forked while the first look was being taken.
    left = [proc for proc in _group_processes(pgid) if proc.pid != pgid]
    if left or process.poll() is None:
        _signal_group(pgid, signal.SIGKILL)
        process.wait()
        psutil.wait_procs(left, timeout=grace)
