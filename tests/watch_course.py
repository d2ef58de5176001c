"""Test helper for the grading service: a temporary course, students with their own homes, the service as a process.

Every student is a folder of their own (their ``HOME`` and their ``CourseDirectory.root``, holding an
``nbgrader_config.py`` with their student id and the course's exchange) and runs the real ``nbgrader fetch_assignment
/ submit / fetch_feedback`` commands there. The service is ``python -m autograder watch`` started as a real
subprocess in its own session (so that it and its grading processes can be stopped as one group).
"""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from autograder import course as course_mod

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def env(home: Path | None = None) -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    if home is not None:
        e["HOME"] = str(home)
    return e


def make_course(tmp: Path, assignments=("practice_questions",), policy: str = "", config: str = "") -> Path:
    """A copy of the course in ``tmp/course`` with ``assignments`` released to its own exchange. ``policy`` and
    ``config`` are lines appended to its nbgrader_config.py."""
    from autograder.release import release

    root = course_mod.copy_course(ROOT, tmp / "course")
    with open(root / "nbgrader_config.py", "a") as fh:
        fh.write("\n" + policy + "\n" + config + "\n")
    course_mod.ensure_venv_on_path()
    for assignment in assignments:
        release(assignment, root, log=lambda message: None)
    return root


class Student:
    def __init__(self, root: Path, name: str, tmp: Path):
        self.name, self.course = name, root
        self.home = tmp / "homes" / name
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "nbgrader_config.py").write_text(
            "c = get_config()\n"
            "c.CourseDirectory.course_id = 'mlops-bridge'\n"
            f"c.CourseDirectory.student_id = {name!r}\n"
            f"c.CourseDirectory.root = {str(self.home)!r}\n"
            f"c.Exchange.root = {str(root / 'exchange')!r}\n"
            f"c.Exchange.assignment_dir = {str(self.home)!r}\n"
        )

    def nbgrader(self, *args: str) -> str:
        proc = subprocess.run(
            [str(BIN / "nbgrader"), *args],
            cwd=self.home,
            env=env(self.home),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, f"{self.name}: nbgrader {' '.join(args)}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
        return proc.stdout + proc.stderr

    def fetch(self, assignment: str) -> Path:
        self.nbgrader("fetch_assignment", assignment)
        (notebook,) = (self.home / assignment).glob("*.ipynb")
        return notebook

    def answer(self, assignment: str, sources: dict[str, str]) -> None:
        """Replace the source of the cells whose grade_id is in ``sources`` in the student's working copy."""
        (path,) = (self.home / assignment).glob("*.ipynb")
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in sources:
                cell.source = sources[grade_id]
        nbformat.write(nb, str(path))

    def submit(self, assignment: str) -> float:
        """``nbgrader submit``; the time it returned (time.monotonic())."""
        self.nbgrader("submit", assignment)
        return time.monotonic()

    def fetch_feedback(self, assignment: str) -> dict[str, str]:
        """``nbgrader fetch_feedback``: {timestamp folder: text of its (only) feedback page}, tags stripped."""
        self.nbgrader("fetch_feedback", assignment)
        pages = {}
        for page in sorted((self.home / assignment / "feedback").glob("*/*.html")):
            pages[page.parent.name] = page_text(page.read_text())
        return pages

    def feedback_count(self, assignment: str) -> int:
        """How many released feedback pages the exchange holds for this student's submissions (no nbgrader call):
        a cheap way to wait before running fetch_feedback."""
        from nbgrader.utils import notebook_hash

        cache = self.home / ".local" / "share" / "jupyter" / "nbgrader_cache" / "mlops-bridge"
        outbound = self.course / "exchange" / "mlops-bridge" / "feedback"
        count = 0
        for submission in cache.glob(f"*+{assignment}+*"):
            secret = (submission / "submission_secret.txt").read_text()
            for nb in submission.glob("*.ipynb"):
                count += (outbound / f"{notebook_hash(secret=secret, notebook_id=nb.stem)}.html").exists()
        return count

    def wait_feedback(self, assignment: str, count: int, timeout: float = 180) -> float:
        deadline = time.monotonic() + timeout
        while self.feedback_count(assignment) < count:
            assert time.monotonic() < deadline, f"{self.name}: no feedback {count} for {assignment} in {timeout} s"
            time.sleep(0.2)
        return time.monotonic()


def page_text(source: str) -> str:
    text = re.sub(r"(?s)<(script|style)\b.*?</\1>", "", source)
    text = re.sub(r"</?(code|strong|em|b|i)\b[^>]*>", "", text)  # inline: no word boundary
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(html.unescape(text).split())


class Service:
    """``python -m autograder watch ARGS`` in ``root``, stderr captured to a file; stopped (and its whole session
    killed) by :meth:`stop`."""

    def __init__(self, root: Path, *args: str, log: Path | None = None):
        self.log = log or root / "watch.log"
        self.fh = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autograder", "watch", *args],
            cwd=root,
            env=env(),
            stdout=self.fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text()):
            assert self.proc.poll() is None or re.search(pattern, self.text()), (
                f"the service exited ({self.proc.returncode}):\n{self.text()[-3000:]}"
            )
            assert time.monotonic() < deadline, f"no {pattern!r} in the service's log:\n{self.text()[-3000:]}"
            time.sleep(0.1)

    def signal(self, signum) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM, wait; then kill whatever is left of its session (grading processes, sandboxes)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        finally:
            kill_session(self.proc.pid)
            self.fh.close()
        return rc

    def kill(self) -> None:
        """SIGKILL the service alone (its grading processes die with it or are reaped by :func:`kill_session`)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def kill_session(sid: int) -> None:
    """SIGKILL every process left in the session ``sid`` (started by :class:`Service`), and wait until none is."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = [int(p) for p in os.listdir("/proc") if p.isdigit() and _session(int(p)) == sid]
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def _session(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[3]) if len(fields) > 3 else None  # state ppid pgrp session
