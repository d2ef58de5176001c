"""A memory and process cgroup for one sandboxed kernel, where the machine lets the grader make one.

RLIMIT_AS (``prlimit``) bounds a kernel's address space but not memory-backed files: a submission filling the
sandbox's ``/tmp`` (a tmpfs) or a ``memfd`` would take the grading machine's memory, file after file. A memory
cgroup counts those pages too (Linux charges tmpfs and memfd pages to the cgroup of the process that writes them).
The kernel's process joins its cgroup before it starts (a small ``sh`` prefix writes its pid into ``cgroup.procs``
and ``exec``s the sandbox), so everything it spawns is counted.

Supported: cgroup v1 with the ``memory`` (and ``pids``) controllers mounted under ``/sys/fs/cgroup/<controller>``,
and cgroup v2 (``/sys/fs/cgroup/cgroup.controllers``) with ``memory`` and ``pids`` delegated to the grader's cgroup.
The new cgroups are children of the grader's own (read from ``/proc/self/cgroup``), so any limit on the grader still
applies. Fallback: where neither can be written (not root, no delegation), :meth:`KernelCgroup.create` returns None
and kernels run with the rlimits alone -- memory-backed files are then bounded only by RLIMIT_FSIZE per file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own_paths() -> dict[str, str]:
    """controller (or "" for v2) -> the grader's cgroup path, from /proc/self/cgroup."""
    paths = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    except OSError:
        pass
    return paths


class KernelCgroup:
    """The cgroup folders of one kernel (one per controller on v1, one on v2)."""

    def __init__(self, folders: list[Path], procs: list[Path], events: Path | None):
        self.folders, self.procs, self.events = folders, procs, events

    @classmethod
    def create(cls, memory_mb: int, max_processes: int, prefix: str = "autograder") -> "KernelCgroup | None":
        """A new cgroup limited to ``memory_mb`` (memory-backed files included) and ``max_processes``, or None.
        ``prefix`` starts its name (``<prefix>-<random>``), to tell whose it is."""
        name = f"{prefix}-{secrets.token_hex(6)}"
        own = _own_paths()
        made: list[Path] = []
        try:
            if (ROOT / "cgroup.controllers").is_file():  # v2
                folder = ROOT / own.get("", "/").lstrip("/") / name
                folder.mkdir()
                made.append(folder)
                (folder / "memory.max").write_text(str(memory_mb * 1024 * 1024))
                (folder / "memory.swap.max").write_text("0") if (folder / "memory.swap.max").exists() else None
                (folder / "pids.max").write_text(str(max_processes))
                return cls(made, [folder / "cgroup.procs"], folder / "memory.events")
            memory = ROOT / "memory" / own.get("memory", "/").lstrip("/") / name
            memory.mkdir()
            made.append(memory)
            (memory / "memory.limit_in_bytes").write_text(str(memory_mb * 1024 * 1024))
            if (memory / "memory.memsw.limit_in_bytes").exists():
                (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_mb * 1024 * 1024))
            procs = [memory / "cgroup.procs"]
            pids_root = ROOT / "pids"
            if pids_root.is_dir():
                pids = pids_root / own.get("pids", "/").lstrip("/") / name
                pids.mkdir()
                made.append(pids)
                (pids / "pids.max").write_text(str(max_processes))
                procs.append(pids / "cgroup.procs")
            return cls(made, procs, memory / "memory.oom_control")
        except OSError:
            cls(made, [], None).remove()
            return None

    def add(self, pid: int) -> None:
        """Move the running process ``pid`` into this cgroup (the processes it starts afterwards follow it)."""
        for procs in self.procs:
            procs.write_text(str(int(pid)))

    def kill(self) -> int:
        """SIGKILL every process still in this cgroup (e.g. what a stopped server left running in a session of its
        own); returns how many were signalled."""
        import signal

        pids = set()
        for procs in self.procs:
            try:
                pids.update(int(pid) for pid in procs.read_text().split())
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def join_prefix(self) -> list[str]:
        """A command prefix that moves the process into this cgroup, then runs the rest of the command."""
        writes = "; ".join(f"echo $$ > '{p}' || exit 111" for p in self.procs)
        return ["/bin/sh", "-c", f'{writes}; exec "$@"', "sh"]

    def oom_killed(self) -> bool:
        """Whether the kernel ran out of this cgroup's memory (a process was killed for it)."""
        try:
            for line in self.events.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key in ("oom_kill", "under_oom") and value.strip() not in ("", "0"):
                    return True
        except (OSError, AttributeError):
            pass
        return False

    def remove(self) -> None:
        """Remove the folders (their processes must be gone: the kernel's shutdown kills the sandbox)."""
        for folder in self.folders:
            for _ in range(50):
                try:
                    os.rmdir(folder)
                    break
                except FileNotFoundError:
                    break
                except OSError:  # still has a process for a moment after the kill
                    import time

                    time.sleep(0.1)
