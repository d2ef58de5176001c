"""Grade on submit on a Dask cluster: ``python -m autograder watch --scheduler ADDRESS`` with a real ``dask
scheduler`` and a real ``dask worker`` started from the command line, as an instructor would start them.

The students run the real nbgrader commands (tests/watch_course.py); the attempts are graded on the cluster's worker,
not in the service's own process pool, and the feedback is the same as with local workers.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time

import pytest

from autograder.questions import load_bank
from watch_course import BIN, Service, Student, env, kill_session, make_course

ASSIGNMENT = "practice_questions"
BANK = load_bank()
RIGHT = {f"{q.id}_answer": f"{q.id} = {q.answer!r}" for q in BANK}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """``dask scheduler`` and one ``dask worker`` (one process, one thread) on 127.0.0.1, each in its own session."""

    def __init__(self, tmp):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.log = tmp / "dask.log"
        self.fh = open(self.log, "ab")
        dask = str(BIN / "dask")
        host, port = self.address.removeprefix("tcp://").split(":")
        self.procs = [
            subprocess.Popen(
                [dask, "scheduler", "--host", host, "--port", port, "--no-dashboard"],
                env=env(),
                stdout=self.fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ]
        self._wait(r"Scheduler at:")
        self.procs.append(
            subprocess.Popen(
                [
                    dask,
                    "worker",
                    self.address,
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--name",
                    "grader-1",
                ],
                env=env(),
                stdout=self.fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        self._wait(r"Registered to:")

    def _wait(self, pattern: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.log.read_text(errors="replace")):
            assert all(p.poll() is None for p in self.procs), self.log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, f"no {pattern!r}:\n{self.log.read_text(errors='replace')[-3000:]}"
            time.sleep(0.2)

    def executed(self) -> dict[str, int]:
        """Tasks each worker has run, read from the workers themselves."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            counts = client.run(lambda dask_worker: dask_worker.state.executed_count)
            names = client.run(lambda dask_worker: dask_worker.name)
        return {names[addr]: n for addr, n in counts.items()}

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(30)
            finally:
                kill_session(proc.pid)
        self.fh.close()


@pytest.mark.full  # a scheduler, a worker and two graded attempts: about a minute
@pytest.mark.sandbox
def test_watch_grades_each_attempt_on_the_dask_worker(tmp_path):
    course = make_course(tmp_path)
    alice, bob = Student(course, "alice", tmp_path), Student(course, "bob", tmp_path)
    q = BANK[0]
    wrong_letter = next(letter for letter in "ABCD" if letter != q.answer)
    for student in (alice, bob):
        student.fetch(ASSIGNMENT)
    alice.answer(ASSIGNMENT, RIGHT)
    bob.answer(ASSIGNMENT, {**RIGHT, f"{q.id}_answer": f"{q.id} = {wrong_letter!r}"})
    total = sum(x.points for x in BANK)

    cluster = Cluster(tmp_path)
    try:
        assert cluster.executed() == {"grader-1": 0}
        service = Service(course, "--poll", "0.2", "--scheduler", cluster.address)
        try:
            service.wait_for("watching")
            alice.submit(ASSIGNMENT)
            bob.submit(ASSIGNMENT)
            alice.wait_feedback(ASSIGNMENT, 1)
            bob.wait_feedback(ASSIGNMENT, 1)
            pages = {s.name: max(s.fetch_feedback(ASSIGNMENT).items())[1] for s in (alice, bob)}
        finally:
            assert service.stop() == 0
        # Both attempts ran on the cluster's one worker (one task each), none in the service's process.
        assert cluster.executed() == {"grader-1": 2}
    finally:
        cluster.stop()
    assert f"This attempt: {total} / {total}" in pages["alice"]
    assert f"This attempt: {total - q.points} / {total}" in pages["bob"]
    assert f"Question {q.number} (0/{q.points})" in pages["bob"]
    log = service.text()
    assert re.search(rf"alice {ASSIGNMENT} attempt 1: ok {total}/{total}", log), log[-2000:]
    assert re.search(rf"bob {ASSIGNMENT} attempt 1: ok {total - q.points}/{total}", log), log[-2000:]


@pytest.mark.full  # the Dask client tries to connect for its whole 30 s timeout
def test_watch_with_an_unreachable_scheduler_says_so_at_start(tmp_path):
    """No cluster at the address: the service says so when it starts, naming the address, and exits non-zero
    (not one error per attempt later)."""
    course = make_course(tmp_path)
    address = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.run(
        [str(BIN / "python"), "-m", "autograder", "watch", "--once", "--no-sandbox", "--scheduler", address],
        cwd=course,
        env=env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode != 0
    assert "cannot reach the Dask scheduler" in proc.stderr and address in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
