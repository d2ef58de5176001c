"""Run a submission's Jupyter kernel in a bubblewrap sandbox with resource limits.

What the sandboxed kernel gets (everything else of the machine is invisible to it):

* read-only: ``/usr`` (with the usual ``/bin``, ``/lib*`` symlinks), a few ``/etc`` files fonts and time zones
  need, the Python installation (``sys.base_prefix``) and the virtual environment (``sys.prefix``), and the
  student-side package ``mlops_helpers`` (the lessons import it). NOT the course directory: no ``source/``,
  ``release/``, ``gradebook.db``, other students' folders, nor the instructor's home (only the Python install
  under it when Python lives there, e.g. pyenv).
* read-write: one private scratch folder (bound at the same path inside, so the ``ipc`` sockets named in the
  connection file are the same files on both sides) holding the notebook's working directory and ``$HOME``.
* fresh ``/tmp`` (tmpfs), ``/proc``, ``/dev``; new network namespace (no interface but a down loopback: any
  connection, even to 127.0.0.1, fails), new PID/IPC/UTS namespaces, a new session (no TIOCSTI on our tty), and
  ``--die-with-parent`` (killing the grader kills the sandbox).
* it runs as an unprivileged uid (``setpriv`` inside the sandbox, all capabilities dropped): as root the kernel
  would ignore RLIMIT_NPROC, and a uid per grading process keeps concurrent submissions from sharing the count.
* rlimits set with ``prlimit`` before bubblewrap starts: RLIMIT_AS (memory; a bomb gets MemoryError),
  RLIMIT_NPROC (processes *and threads* of that uid: a fork bomb gets EAGAIN), RLIMIT_FSIZE (no disk bomb),
  RLIMIT_CORE 0. Wall time per cell and per notebook and the output size are enforced by the client
  (``autograder.unit``), which never waits on or buffers more than the limits allow.

The kernel talks to the grader over ZeroMQ ``ipc`` sockets in the scratch folder: the only channel out.
Without bubblewrap, :func:`check_sandbox` raises :class:`SandboxUnavailableError` with a clear message, and
callers must refuse to grade unless the instructor explicitly passed ``--no-sandbox``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Integer, default

from .exceptions import SandboxUnavailableError

#: /etc entries a Python kernel may read (fonts for matplotlib, time zone, mime types); all optional.
ETC_FILES = ("/etc/fonts", "/etc/localtime", "/etc/mime.types", "/etc/ssl/certs", "/etc/matplotlibrc")
#: First uid used for sandboxed kernels; a grading process uses SANDBOX_UID_BASE + (pid % SANDBOX_UID_SPAN).
SANDBOX_UID_BASE = 200_000
SANDBOX_UID_SPAN = 50_000
#: Largest file the kernel may write (RLIMIT_FSIZE), bytes.
MAX_FILE_BYTES = 256 * 1024 * 1024


def check_sandbox() -> str:
    """Return the path of ``bwrap`` if a working sandbox can be started here, else raise SandboxUnavailableError.

    Checks that bubblewrap, prlimit and setpriv exist and that ``bwrap`` can actually create the namespaces
    (it cannot, e.g., inside some containers). The grading CLI calls this before grading with the sandbox on.
    """
    missing = [tool for tool in ("bwrap", "prlimit", "setpriv") if shutil.which(tool) is None]
    if missing:
        raise SandboxUnavailableError(
            f"cannot sandbox student code: {', '.join(missing)} not found. Install the Debian packages "
            "`bubblewrap` and `util-linux` (apt-get install bubblewrap util-linux), or pass --no-sandbox to run "
            "student code unsandboxed as your own user (only for code you trust)."
        )
    bwrap = shutil.which("bwrap")
    probe = subprocess.run(
        [
            bwrap,
            "--unshare-net",
            "--unshare-pid",
            "--die-with-parent",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "/bin/true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        raise SandboxUnavailableError(
            f"bubblewrap is installed but cannot create a sandbox here ({probe.stderr.strip() or probe.returncode}). "
            "Grading needs user/network/PID namespaces (run as root or enable unprivileged user namespaces), "
            "or pass --no-sandbox to run student code unsandboxed (only for code you trust)."
        )
    return bwrap


_CHECKED: str | None = None


def check_sandbox_cached() -> str:
    """:func:`check_sandbox`, probed once per process (grading workers call it for every job)."""
    global _CHECKED
    if _CHECKED is None:
        _CHECKED = check_sandbox()
    return _CHECKED


def sandbox_uid() -> int:
    """The unprivileged uid this grading process runs kernels as (distinct per concurrent worker process)."""
    return SANDBOX_UID_BASE + os.getpid() % SANDBOX_UID_SPAN


def _package_dir(module: str) -> Path | None:
    """Folder of an importable top-level package (e.g. an editable install outside site-packages), or None."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def rlimit_args(memory_mb: int, max_processes: int | None) -> list[str]:
    """``prlimit`` options for the kernel's limits (max_processes None: leave RLIMIT_NPROC alone)."""
    args = ["prlimit", f"--as={memory_mb * 1024 * 1024}", f"--fsize={MAX_FILE_BYTES}", "--core=0"]
    if max_processes is not None:
        args.append(f"--nproc={max_processes}")
    return args + ["--"]


def bwrap_args(scratch: Path, workdir: Path, uid: int, extra_ro: tuple[Path, ...] = ()) -> list[str]:
    """The bubblewrap command line (up to and including ``setpriv``) for a kernel confined to ``scratch``."""
    scratch, workdir = Path(scratch).resolve(), Path(workdir).resolve()
    ro = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), *extra_ro]
    helpers = _package_dir("mlops_helpers")
    if helpers is not None:
        ro.append(helpers)
    args = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/bin",
        "/bin",
        "--symlink",
        "usr/sbin",
        "/sbin",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # /tmp first: binds of anything under /tmp (the scratch usually is) must come after it.
        "--tmpfs",
        "/tmp",
    ]
    for etc in ETC_FILES:
        if os.path.exists(etc):
            args += ["--ro-bind", etc, etc]
    made: set[Path] = {Path("/"), Path("/usr"), Path("/tmp")}
    for path in [*ro, scratch]:
        # bwrap would create missing parents with mode 0700 (untraversable for the kernel's uid): make them 0755.
        for parent in reversed(path.parents):
            if parent not in made and not any(parent.is_relative_to(p) for p in (Path("/usr"),)):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
    for path in ro:
        if str(path).startswith("/usr/"):
            continue  # already visible through /usr
        args += ["--ro-bind", str(path), str(path)]
    args += [
        "--bind",
        str(scratch),
        str(scratch),
        "--chdir",
        str(workdir),
        "--clearenv",
        "--setenv",
        "PATH",
        f"{Path(sys.prefix).resolve() / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    ]
    for key, value in kernel_environment(scratch, workdir).items():
        args += ["--setenv", key, value]
    args += [
        "--",
        shutil.which("setpriv") or "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--bounding-set=-all",
        "--inh-caps=-all",
        "--no-new-privs",
    ]
    return args


def sandboxed_command(kernel_cmd: list[str]) -> list[str]:
    """The kernel command with the interpreter named by its real folder, as the sandbox binds it.

    The sandbox binds the venv and the Python installation at their resolved paths; a venv reached through a
    link (``.venv`` -> elsewhere, or a course folder that is itself a link) would otherwise name an interpreter
    the sandbox cannot see ("Kernel died before replying to kernel_info" for every submission). Only the venv
    folder is resolved, not ``bin/python`` itself (a link to the base interpreter: following it would lose the venv).
    """
    if not kernel_cmd:
        return kernel_cmd
    exe = Path(kernel_cmd[0])
    for prefix in {Path(sys.prefix), Path(sys.prefix).absolute()}:
        try:
            rel = exe.relative_to(prefix)
        except ValueError:
            continue
        return [str(Path(sys.prefix).resolve() / rel), *kernel_cmd[1:]]
    return kernel_cmd


def mount_scratch(scratch: Path, size_mb: int) -> bool:
    """Mount a tmpfs of ``size_mb`` on the (empty) scratch folder, so that everything a submission writes there has
    a total size limit (RLIMIT_FSIZE bounds one file only; a thousand of them would fill the grader's disk). Its
    pages count against the writing kernel's memory cgroup. Needs root (as the sandbox's uid switch does); False,
    and nothing mounted, where it cannot be done: the folder then stays on disk with the per-file limit alone."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    proc = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={int(size_mb)}m,mode=0700,nosuid,nodev",
            "autograder-scratch",
            str(scratch),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.returncode == 0


def unmount_scratch(scratch: Path) -> None:
    """Undo :func:`mount_scratch` (lazily: a process still holding a file there cannot keep the grader waiting)."""
    subprocess.run(["umount", "-l", str(scratch)], capture_output=True, text=True, timeout=30)


def kernel_environment(scratch: Path, workdir: Path) -> dict[str, str]:
    """The variables every grading kernel gets, sandboxed or not (unsandboxed kernels get them over the grader's
    own environment): a clean home in the scratch folder (nothing read from or written to the instructor's
    ``~/.ipython`` or ``~/.config/matplotlib``), one BLAS thread (threads count against RLIMIT_NPROC and the grader
    already runs one kernel per core), a tracking store in the working folder, and nbgrader's
    ``NBGRADER_EXECUTION=autograde`` (its FAQ documents it for tests that behave differently when graded)."""
    home = Path(scratch) / "home"
    return {
        "HOME": str(home),
        "IPYTHONDIR": str(home / ".ipython"),
        "MPLCONFIGDIR": str(home / ".matplotlib"),
        "MPLBACKEND": "agg",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{Path(workdir) / 'mlflow.db'}",
        "NBGRADER_EXECUTION": "autograde",
    }


def prepare_scratch(scratch: Path, uid: int | None) -> None:
    """Create the scratch layout (work/, home/; each kernel's socket folder is made when it starts) and give it to
    the sandbox uid."""
    for sub in ("", "work", "home"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    if uid is not None:
        for root, _dirs, files in os.walk(scratch):
            os.chown(root, uid, uid)
            for name in files:
                os.chown(os.path.join(root, name), uid, uid)
        os.chmod(scratch, 0o700)


class LimitedKernelClient(AsyncKernelClient):
    """A kernel client that never receives a message larger than ``max_message_bytes``.

    The output budget (``Limits.max_output_bytes``) is counted message by message, after each message has been
    received whole: one ``print('x' * 500_000_000)`` would still land in the grader's memory. ZeroMQ can refuse it
    earlier: with ``ZMQ_MAXMSGSIZE`` set, libzmq reads a frame's size header and drops the connection to a peer that
    announces more, without allocating the body. The option is a default of this client's own context, so every
    channel the client opens (iopub, shell, stdin) has it. A monitor on the iopub socket records such
    disconnections, so the grader can say why an output is missing (:meth:`dropped_connections`) and reconnect
    (:meth:`reopen_iopub`).
    """

    max_message_bytes = Integer(0, help="largest message accepted from the kernel; 0: no limit")
    _iopub_monitor = None

    @default("context")
    def _limited_context(self) -> zmq.asyncio.Context:
        self._created_context = True
        context = zmq.asyncio.Context()
        if self.max_message_bytes > 0:
            context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        return context

    def connect_iopub(self, identity: bytes | None = None):
        sock = super().connect_iopub(identity=identity)
        self._close_monitor()
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        # polled through a plain (not asyncio) shadow: only ever without waiting; the owner is kept to close it
        self._iopub_monitor = (sock, monitor, zmq.Socket.shadow(monitor.underlying))
        return sock

    def _close_monitor(self) -> None:
        if self._iopub_monitor is not None:
            sock, monitor, _ = self._iopub_monitor
            self._iopub_monitor = None
            if not sock.closed:
                sock.disable_monitor()
            monitor.close(linger=0)

    def stop_channels(self) -> None:
        self._close_monitor()
        super().stop_channels()

    def dropped_connections(self) -> int:
        """How many times the iopub connection was dropped since the last call (an oversized message each time)."""
        count = 0
        monitor = self._iopub_monitor[2] if self._iopub_monitor else None
        while monitor is not None and monitor.poll(0):
            monitor.recv_multipart(zmq.NOBLOCK)
            count += 1
        return count

    async def reopen_iopub(self, timeout: float = 30) -> None:
        """A new iopub connection after a refused message.

        libzmq treats an oversized message as a protocol error and closes that session for good (no automatic
        reconnect, unlike a lost connection): without this, every later output -- the test cells' included -- would
        be lost. ``wait_for_ready`` returns once a kernel_info round trip was also seen on the new iopub socket,
        so the next cell's first messages are not lost to the subscription still settling.
        """
        self.iopub_channel.stop()
        self._iopub_channel = None
        self.iopub_channel.start()
        await self._async_wait_for_ready(timeout=timeout)


class SandboxedKernelManager(AsyncKernelManager):
    """A jupyter_client kernel manager whose kernel starts inside :func:`bwrap_args`'s sandbox.

    jupyter_client's documented extension point for launching differently is ``_async_launch_kernel``: we wrap
    the kernel command (``python -m ipykernel_launcher -f <connection file>``) with prlimit + bwrap + setpriv.
    Use ``transport="ipc"`` and an ``ip`` (socket path prefix) inside the scratch folder: the network namespace
    has no usable TCP. With ``sandbox=False`` only the memory/file rlimits are applied (RLIMIT_NPROC is not
    enforced for root, so it is not pretended).
    """

    def __init__(
        self,
        *,
        scratch: Path,
        workdir: Path,
        memory_mb: int,
        max_processes: int,
        sandbox: bool = True,
        max_message_bytes: int = 0,
        log_path: Path | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.scratch, self.workdir = Path(scratch), Path(workdir)
        # the kernel's own stdout/stderr: a new file the grader creates outside the folder student code can write
        self.log_path = Path(log_path) if log_path is not None else self.scratch.parent / "kernel.log"
        self.memory_mb, self.max_processes, self.use_sandbox = memory_mb, max_processes, sandbox
        self.max_message_bytes = max_message_bytes
        self.uid = sandbox_uid() if sandbox else None
        self.client_factory = LimitedKernelClient
        self.cgroup = None  # autograder.cgroups.KernelCgroup of the running kernel, when the machine allows one
        self.oom_killed = False

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        """jupyter_client's cleanup, then the kernel's cgroup is read (did it run out of memory?) and removed."""
        await super()._async_cleanup_resources(restart=restart)
        if self.cgroup is not None:
            self.oom_killed = self.oom_killed or self.cgroup.oom_killed()
            self.cgroup.remove()
            self.cgroup = None

    cleanup_resources = _async_cleanup_resources

    def client(self, **kwargs) -> LimitedKernelClient:
        """jupyter_client's client, refusing messages over ``max_message_bytes`` (see LimitedKernelClient)."""
        kwargs.setdefault("max_message_bytes", self.max_message_bytes)
        return super().client(**kwargs)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        # No shared input history file: the kernel keeps history in memory only (nothing left in the scratch).
        if not any(arg.startswith("--HistoryManager.hist_file") for arg in kernel_cmd):
            kernel_cmd = [*kernel_cmd, "--HistoryManager.hist_file=:memory:"]
        if self.use_sandbox:
            if self.uid is not None:
                os.chown(self.connection_file, self.uid, self.uid)
            from .cgroups import KernelCgroup

            self.cgroup = KernelCgroup.create(self.memory_mb, self.max_processes)
            kernel_cmd = [
                *(self.cgroup.join_prefix() if self.cgroup else []),
                *rlimit_args(self.memory_mb, self.max_processes),
                *bwrap_args(self.scratch, self.workdir, self.uid),
                *sandboxed_command(kernel_cmd),
            ]
            kw.pop("cwd", None)
        else:
            kernel_cmd = [*rlimit_args(self.memory_mb, None), *kernel_cmd]
            kw["cwd"] = str(self.workdir)
            # the same variables as in the sandbox (and the sandbox's cost measured by the benchmark is its own)
            kw["env"] = {**(kw.get("env") or os.environ), **kernel_environment(self.scratch, self.workdir)}
        # The kernel's own stdout/stderr (start-up messages, C-level crashes) go to a log, not to the grader's
        # terminal; RLIMIT_FSIZE bounds it. Opened without following a link, and only if it does not exist yet.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with open(fd, "ab") as log:
            kw["stdout"] = kw["stderr"] = log
            return await super()._async_launch_kernel(kernel_cmd, **kw)


def main(argv: list[str] | None = None) -> int:
    """``python -m autograder.sandbox --check``: exit 0 when a sandbox can run here, 1 (reason on stderr) when not."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m autograder.sandbox", description="Check that student code can be sandboxed on this machine."
    )
    parser.add_argument(
        "--check",
        action="store_true",
        required=True,
        help="exit 0 if bubblewrap can start a sandbox here, else print why on stderr and exit 1",
    )
    parser.parse_args(argv)
    try:
        check_sandbox()
    except SandboxUnavailableError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
