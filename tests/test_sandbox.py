"""The sandbox policy itself, with plain Python processes in bwrap (fast), plus one real sandboxed kernel."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest

from autograder import sandbox


@pytest.fixture
def run_sandboxed(tmp_path, grading_sandbox):
    """Run Python code inside exactly the sandbox a kernel gets; return the CompletedProcess."""
    uid = sandbox.sandbox_uid()
    scratch = tmp_path / "scratch"
    sandbox.prepare_scratch(scratch, uid)

    def run(code: str, memory_mb: int = 512, max_processes: int = 32, timeout: float = 60):
        cmd = [
            *sandbox.rlimit_args(memory_mb, max_processes),
            *sandbox.bwrap_args(scratch, scratch / "work", uid),
            sys.executable,
            "-c",
            textwrap.dedent(code),
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.mark.sandbox
def test_check_sandbox_finds_bwrap():
    assert sandbox.check_sandbox().endswith("bwrap")


def test_check_sandbox_refuses_clearly_without_bwrap(monkeypatch):
    from autograder.exceptions import SandboxUnavailableError

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailableError, match="--no-sandbox"):
        sandbox.check_sandbox()


def test_check_entry_point_without_bwrap_exits_1_naming_the_packages(monkeypatch, capsys):
    """``python -m autograder.sandbox --check`` (make course and .ci/run ask it): 1 and the reason, on stderr only."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert sandbox.main(["--check"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "bwrap" in err and "apt-get install bubblewrap util-linux" in err


@pytest.mark.sandbox
def test_check_entry_point_with_a_working_sandbox_exits_0_quietly(capsys):
    assert sandbox.main(["--check"]) == 0
    assert capsys.readouterr() == ("", "")


@pytest.mark.sandbox
def test_no_network_even_to_localhost(run_sandboxed):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    proc = run_sandboxed(f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=3); print("CONNECTED")
        except OSError as exc:
            print("refused", exc.errno)
    """)
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert "refused" in proc.stdout and "CONNECTED" not in proc.stdout, proc.stderr


@pytest.mark.sandbox
def test_sees_only_the_binds(run_sandboxed, tmp_path):
    secret = tmp_path / "gradebook.db"
    secret.write_text("secret")
    proc = run_sandboxed(f"""
        import os
        for p in [{str(secret)!r}, "/work/main/source", "/work/main/gradebook.db", "/root/.bash_history",
                  "/home", "/etc/shadow"]:
            print(p, os.path.exists(p))
        print("uid", os.getuid())
        open("written.txt", "w").write("ok")   # the working directory is writable
    """)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.rsplit(" ", 1) for line in proc.stdout.splitlines())
    assert lines.pop("uid") == str(sandbox.sandbox_uid())
    assert set(lines.values()) == {"False"}, lines


@pytest.mark.sandbox
def test_memory_limit(run_sandboxed):
    proc = run_sandboxed(
        """
        try:
            blob = bytearray(2 * 1024 ** 3)
            print("ALLOCATED")
        except MemoryError:
            print("MemoryError")
    """,
        memory_mb=512,
    )
    assert proc.stdout.strip() == "MemoryError", proc.stderr


@pytest.mark.sandbox
def test_process_flood_is_bounded(run_sandboxed):
    proc = run_sandboxed(
        """
        import os, time
        n = 0
        try:
            while n < 1000:
                if os.fork() == 0:
                    time.sleep(30); os._exit(0)
                n += 1
        except OSError:
            pass
        print(n, flush=True)
        os._exit(0)
    """,
        max_processes=20,
    )
    assert int(proc.stdout.strip()) < 20, proc.stderr


@pytest.mark.sandbox
def test_sandboxed_kernel_runs_and_leaves_nothing(tmp_path):
    """A real kernel through SandboxedKernelManager over ipc: answers, is confined, and is gone afterwards."""
    import asyncio
    import os

    from jupyter_client.manager import AsyncKernelManager  # noqa: F401 - imported for its side effects

    uid = sandbox.sandbox_uid()
    scratch = tmp_path / "s"
    sandbox.prepare_scratch(scratch, uid)
    (scratch / "ipc").mkdir()
    os.chown(scratch / "ipc", uid, uid)

    async def main():
        ipc = scratch / "ipc"
        km = sandbox.SandboxedKernelManager(
            scratch=scratch,
            workdir=scratch / "work",
            memory_mb=1024,
            max_processes=64,
            kernel_name="python3",
            transport="ipc",
            ip=str(ipc / "k"),
            connection_file=str(ipc / "c.json"),
        )
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=120)
            reply = await kc.execute_interactive(
                "import os; print(os.getuid(), os.path.exists('/work/main/source'))",
                timeout=60,
                output_hook=lambda msg: outputs.append(msg),
            )
            pid = km.provisioner.process.pid
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
        return reply, pid

    outputs = []
    reply, pid = asyncio.run(main())
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    assert reply["content"]["status"] == "ok"
    assert text.split() == [str(uid), "False"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.sandbox
def test_links_planted_by_one_notebook_never_redirect_the_grader(tmp_path, grading_sandbox):
    """A submission of two notebooks: the first one's code (running as the sandbox uid, in the scratch folder)
    plants links where the grader writes (its kernel log, the next kernel's socket folder and connection file,
    the files kept from the working folder) pointing outside the sandbox. The grader, running as root, must not
    create or change anything there, and the second notebook is still graded."""
    import json
    import os

    from autograder.job import CellSpec, GradeJob, Limits, NotebookSpec
    from autograder.unit import grade_job

    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(outside, 0o777)  # writable by anyone: only a write by the grader (root) through a link could land here
    victim = outside / "victim.txt"
    victim.write_text("untouched")
    os.chmod(victim, 0o644)
    plant = f"""
import os, pathlib
scratch = pathlib.Path(os.getcwd()).parent
targets = {{"kernel.log": {str(outside / "log")!r}, "ipc": {str(outside / "ipc")!r},
           "work/victim.txt": {str(victim)!r}, "work/link_dir": {str(outside)!r}}}
for name, target in targets.items():
    path = scratch / name
    if path.exists() or path.is_symlink():
        path.unlink() if not path.is_dir() else None
    os.symlink(target, path)
for i in range(200):  # guesses at per-kernel names, in case the grader reuses any
    for name in (f"ipc-{{i}}", f"kernel-{{i}}.log"):
        try:
            os.symlink({str(outside / "guess")!r} + str(i), scratch / name)
        except OSError:
            pass
print("planted", sorted(p.name for p in scratch.iterdir()))
"""

    def notebook(name, source):
        cells = [
            {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None},
            {
                "cell_type": "code",
                "source": "assert 1 + 1 == 2",
                "metadata": {
                    "nbgrader": {
                        "grade_id": f"{name}_test",
                        "grade": True,
                        "solution": False,
                        "locked": True,
                        "points": 1,
                        "schema_version": 3,
                    }
                },
                "outputs": [],
                "execution_count": None,
            },
        ]
        return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 4}).encode()

    specs = tuple(
        NotebookSpec(
            name=n, cells=(CellSpec(f"{n}_test", "code", "assert 1 + 1 == 2", True, None, 1.0, "autograder-test"),)
        )
        for n in ("p1", "p2")
    )
    job = GradeJob(
        "c",
        "a",
        "mallory",
        {"p1.ipynb": notebook("p1", plant), "p2.ipynb": notebook("p2", "x = 1")},
        specs,
        {},
        Limits(cell_timeout=60),
        sandbox=True,
    )
    result = grade_job(job)
    assert [(nb.name, nb.status, nb.score) for nb in result.notebooks] == [("p1", "ok", 1.0), ("p2", "ok", 1.0)], (
        result.reason
    )
    assert "planted" in result.notebooks[0].graded.decode()
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert victim.read_text() == "untouched"
    assert "victim.txt" not in result.files and not any(k.startswith("link_dir") for k in result.files)
