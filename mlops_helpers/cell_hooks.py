"""In a notebook, stop a server as soon as a cell fails (an IPython ``post_run_cell`` hook).

A lesson starts its server in one cell and uses it in the next ones: a ``with`` block cannot span cells, so this
hook is what guarantees that a failing cell leaves no server running.
"""

from __future__ import annotations

import sys
import weakref
from typing import Callable


def stop_when_a_cell_fails(server) -> Callable[[], None] | None:
    """Register a hook that stops ``server`` (its ``stop(reason)``) after any cell that raises.

    Returns the function that unregisters the hook, or None outside IPython. The hook holds the server through a
    weak reference: it never keeps a server alive.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the course
        return None
    shell = get_ipython()
    if shell is None:
        return None
    ref = weakref.ref(server)

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
            server.stop(reason="it was stopped because a cell failed")

    shell.events.register("post_run_cell", after_cell)

    def unregister() -> None:
        try:
            shell.events.unregister("post_run_cell", after_cell)
        except ValueError:
            pass

    return unregister
