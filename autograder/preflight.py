"""Preflight: start one grading kernel, exactly as for a submission, before grading anything.

A kernel that cannot start (bubblewrap refusing, a broken kernelspec or venv, a ``--memory`` too small) is then one
instructor-side error saying why, instead of the status ``error`` for every submission.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .exceptions import AutograderError
from .job import Limits

#: A successful preflight is trusted again for this long, for the same interpreter, sandbox and limits (the grading
#: service and a series of ``grade`` runs do not pay one kernel start each time).
PREFLIGHT_VALID_SECONDS = 15 * 60


def _preflight_key(limits: Limits, sandbox: bool) -> str:
    import shutil

    from . import kernel_guard

    parts = [
        os.path.realpath(sys.executable),
        os.path.realpath(sys.prefix),
        str(limits.memory_mb),
        str(limits.max_processes),
        str(sandbox),
        kernel_guard.__file__,
        str(os.stat(kernel_guard.__file__).st_mtime_ns),
    ]
    for tool in ("bwrap", "prlimit", "setpriv") if sandbox else ():
        path = shutil.which(tool)
        parts.append(f"{path}:{os.stat(path).st_mtime_ns if path else ''}")
    return "|".join(parts)


def preflight(limits: Limits, sandbox: bool, cache_dir: Path | None = None) -> None:
    """Start one grading kernel, exactly as for a submission, before grading anything (one kernel start).

    When none can start (bubblewrap refusing, a broken kernelspec or venv, a ``--memory`` too small), this is one
    instructor-side error (exit 2) saying why, instead of the status ``error`` for every submission. For a memory
    limit in which no kernel starts, the message names the smallest value that works. A success is remembered in
    ``cache_dir/preflight.json`` for :data:`PREFLIGHT_VALID_SECONDS` (same interpreter, sandbox tools and limits).
    """
    from .unit import probe_kernel

    key = _preflight_key(limits, sandbox)
    cache = Path(cache_dir) / "preflight.json" if cache_dir is not None else None
    try:
        if cache is not None and cache.is_file() and not cache.is_symlink():
            known = json.loads(cache.read_text())
            if time.time() - known.get(key, 0) < PREFLIGHT_VALID_SECONDS:
                return
    except (OSError, ValueError, AttributeError):
        pass
    why = probe_kernel(limits.memory_mb, sandbox)
    if why is None:
        if cache is not None:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps({key: time.time()}))
                os.replace(tmp, cache)
            except OSError:
                pass
        return
    if limits.memory_mb < Limits().memory_mb:
        check_memory_limit(limits.memory_mb)  # raises, naming the smallest that works, when memory is the cause
    raise AutograderError(
        f"no grading kernel can start here{' in the sandbox' if sandbox else ''}, so no submission was graded: {why}"
    )


def check_memory_limit(memory_mb: int) -> None:
    """Refuse (instructor error) a ``--memory`` in which a kernel cannot even start, naming the smallest that works.

    Near that threshold a kernel fails in varied ways (dies at start, or a thread that could not get its stack
    leaves it unanswering), so the search is coarse and asks for two starts in a row: the first of 512, 768, 1024,
    ... MB above ``memory_mb`` where a kernel starts twice is named.
    """
    from .unit import kernel_starts

    if memory_mb >= Limits().memory_mb or kernel_starts(memory_mb):
        return
    default = Limits().memory_mb
    works = next(
        (m for m in range(512, default + 1, 256) if m > memory_mb and kernel_starts(m) and kernel_starts(m)), default
    )
    raise AutograderError(
        f"--memory {memory_mb} is too small for a Python kernel to start here; the smallest "
        f"value that works is about {works} MB (give a margin for the students' code)"
    )
