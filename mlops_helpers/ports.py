"""Ports on the local machine: is one free, which one is, and which one is a student's own on a shared machine.

Servers the course starts listen on 127.0.0.1 only; a lesson's port is a parameter, and a test always takes a
free one. The course's plan (never 5000, which macOS AirPlay holds): lesson 04's model server on 5001, the MLflow
UI on 5002, lesson 06's smoke test on 5003.

On a machine shared by a JupyterHub class, every student's JupyterLab is a process of that one machine (JupyterHub's
LocalProcessSpawner, The Littlest JupyterHub), so two students running lesson 04 at once would both ask for 5001.
There the plan's ports become each student's own (:func:`class_port`): a block of ten ports per Linux user, derived
from the uid, so a student always gets the same ports and no two students of the class share one.
"""

from __future__ import annotations

import os
import socket

DEFAULT_HOST = "127.0.0.1"

MODEL_SERVER_PORT = 5001
UI_PORT = 5002
SMOKE_TEST_PORT = 5003
#: Ports of the course's plan (5001-5009): the ones :func:`class_port` moves on a shared machine.
COURSE_PORTS = range(5001, 5010)
#: Start of the students' blocks on a shared machine: user ``uid`` gets ``20000 + (uid % 1000) * 10 + 1...9``,
#: 20001-29999, below Linux's ephemeral range (32768-60999) so that no client connection takes one first.
CLASS_PORT_BASE = 20000
#: The notebook variables that hold a lesson's ports (see :func:`personalise_notebook_ports`).
NOTEBOOK_PORT_VARIABLES = ("port", "ui_port")


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


def on_shared_machine(environ=None) -> bool:
    """True when this process is a JupyterHub user's server (``JUPYTERHUB_USER`` is set): other students' servers
    may run on the same machine."""
    environ = os.environ if environ is None else environ
    return bool((environ.get("JUPYTERHUB_USER") or "").strip())


def class_port(port: int, *, uid: int | None = None, environ=None) -> int:
    """``port`` made this student's own on a machine shared by a JupyterHub class; unchanged elsewhere.

    Only ports of the course's plan (:data:`COURSE_PORTS`) move, to ``CLASS_PORT_BASE + (uid % 1000) * 10 + (port
    - 5000)``; any other port (a free port a test injected, a port the student chose) is kept. Idempotent. Users whose
    uids differ by a multiple of 1000 would share a block: a class's accounts, made one after the other, never do.
    """
    port = int(port)
    if port not in COURSE_PORTS or not on_shared_machine(environ):
        return port
    uid = os.getuid() if uid is None else int(uid)
    return CLASS_PORT_BASE + (uid % 1000) * 10 + (port - 5000)


def personalise_notebook_ports(namespace: dict | None = None, environ=None) -> dict[str, tuple[int, int]]:
    """On a shared machine, change the notebook's port variables (``port``, ``ui_port``) to the student's own ports
    (:func:`class_port`), so every later cell uses them. ``namespace`` defaults to the running notebook's; outside a
    notebook nothing changes. Returns ``{variable: (course's port, own port)}`` for what changed."""
    if not on_shared_machine(environ):
        return {}
    changed = rebind_notebook_variables(
        NOTEBOOK_PORT_VARIABLES,
        lambda value: (
            class_port(value, environ=environ) if isinstance(value, int) and not isinstance(value, bool) else value
        ),
        namespace,
    )
    return {variable: (old, new) for variable, (old, new) in changed.items()}


def rebind_notebook_variables(variables, transform, namespace: dict | None = None) -> dict[str, tuple]:
    """Set each of ``variables`` in the notebook's namespace (default: the running notebook's; nothing outside a
    notebook) to ``transform(value)``; returns ``{variable: (old, new)}`` for those that changed."""
    namespace = notebook_namespace() if namespace is None else namespace
    if namespace is None:
        return {}
    changed = {}
    for variable in variables:
        if variable in namespace:
            old = namespace[variable]
            new = transform(old)
            if new != old:
                namespace[variable] = new
                changed[variable] = (old, new)
    return changed


def notebook_namespace() -> dict | None:
    """The running notebook's namespace (IPython's ``user_ns``), or ``None`` outside a notebook."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the course
        return None
    shell = get_ipython()
    return None if shell is None else shell.user_ns
