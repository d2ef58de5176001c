"""Small plumbing for lessons 00–02: paths, commands and log parsing, kept out of the lesson cells.

The lessons still make the MLflow calls they teach themselves (``mlflow.start_run``, ``mlflow.search_runs``,
``mlflow run``...); these helpers only answer questions like "where is the repository root?" or "which
run ID did that command print?".
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from . import ports
from .exceptions import ProjectError
from .tracking import absolute_tracking_uri

#: The line ``mlflow run`` prints when the project's command exited 0 (the seed lesson's expected output).
SUCCEEDED = re.compile(r"=== Run \(ID '(?P<run_id>[0-9a-f]+)'\) succeeded ===")
# the course's port plan (mlops_helpers.ports): UI 5002, lesson 04's model server 5001, lesson 06's smoke test 5003
UI_PORT = ports.UI_PORT


def find_project_root(start: str | Path | None = None) -> Path:
    """The folder holding ``MLproject``: ``start`` (default: the working directory) or one of its parents.

    A lesson runs in ``notebooks/``, so this finds the repository root one level up. When the notebook
    was copied elsewhere, the installed course package's own repository is used instead.
    """
    start = Path(start or Path.cwd()).resolve()
    candidates = [start, *start.parents, Path(__file__).resolve().parents[1]]
    for folder in candidates:
        if (folder / "MLproject").is_file():
            return folder
    raise ProjectError(f"no MLproject file in {start} or its parents: run this lesson from the course repository")


def ui_command(tracking_uri: str, port: int = UI_PORT) -> str:
    """The exact ``mlflow ui`` command that shows ``tracking_uri``'s runs, on its own port, runnable from anywhere
    (on a machine shared by a JupyterHub class, the student's own port: :func:`mlops_helpers.ports.class_port`)."""
    uri = absolute_tracking_uri(tracking_uri)
    return f"mlflow ui --backend-store-uri {shlex.quote(uri)} --port {ports.class_port(port)}"


def ui_instructions(tracking_uri: str, port: int = UI_PORT, page: str = "") -> str:
    """What to do to see ``tracking_uri``'s runs in the MLflow UI: for a local store, the ``mlflow ui`` command to
    start in a terminal and the page to open; for a tracking server (``http(s)://``), which serves the UI itself,
    only its address (an ``mlflow ui --backend-store-uri http://...`` would not read a server's runs). ``page`` is
    a part of the UI to open, e.g. ``"#/models/iris-classifier"``."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"your store is a tracking server, which serves the UI itself: open {tracking_uri.rstrip('/')}/{page}"
    return f"{ui_command(tracking_uri, port)}\nthen open http://127.0.0.1:{ports.class_port(port)}/{page}"


def put_kernel_python_on_path() -> str:
    """Put this kernel's Python folder first on ``PATH``; return that folder.

    Commands the lessons start (``mlflow run``, and the MLproject's ``python -m mlops_helpers.train``) are
    found on ``PATH``. A kernel started from the course's ``.venv`` does not always have ``.venv/bin`` there
    (e.g. ``.venv/bin/python -m mlops_helpers.notebooks``), and another ``python`` would lack MLflow.
    """
    folder = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts[0] != folder:
        os.environ["PATH"] = os.pathsep.join([folder, *[p for p in parts if p and p != folder]])
    return folder


def command_environment() -> dict[str, str]:
    """The environment for an ``mlflow`` command a lesson starts: this kernel's, without ``MLFLOW_EXPERIMENT_ID``.

    ``MLFLOW_TRACKING_URI`` is kept, so the command uses the lesson's store. ``MLFLOW_EXPERIMENT_ID`` is
    dropped: ``mlflow.set_experiment`` exports it, and ``mlflow run --experiment-name NAME`` refuses to start
    when it is also set ("Specify only one of 'experiment-name' or 'experiment-id' options").
    """
    return {key: value for key, value in os.environ.items() if key != "MLFLOW_EXPERIMENT_ID"}


def succeeded_run_id(log: str) -> str:
    """The run ID in ``mlflow run``'s "=== Run (ID '...') succeeded ===" line; :class:`ProjectError` if absent."""
    match = SUCCEEDED.search(log or "")
    if not match:
        tail = "\n".join((log or "").strip().splitlines()[-5:])
        raise ProjectError(f"`mlflow run` did not report a succeeded run; its last lines were:\n{tail}")
    return match.group("run_id")
