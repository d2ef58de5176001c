"""Ports on the local machine: is one free, and which one is.

Servers the course starts listen on 127.0.0.1 only; a lesson's port is a parameter, and a test always takes a
free one.
"""

from __future__ import annotations

import socket

DEFAULT_HOST = "127.0.0.1"


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
