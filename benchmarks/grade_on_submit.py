"""Submit-to-feedback latency: the grading service (``python -m autograder watch``) vs the manual path, side by side.

    python -m benchmarks grade_on_submit [--alone 5] [--burst 20] [--workers CORES]

In a temporary copy of the course with ``practice_questions`` released, students submit with nbgrader's own exchange
(``ExchangeSubmit``, in this process: the same files as ``nbgrader submit`` without 4 s of CLI start-up per student,
which on 2 cores would otherwise compete with the grading being measured). Latency = from the submit returning to the
student's feedback page being fetchable (released in the exchange under that submission's secret).

1. one submission alone, ``--alone`` times in a row, to a running service: p50 and p95;
2. ``--burst`` submissions landing at once (different students) to a running service: p50, p95 and the last one;
3. the manual path on the same burst: ``nbgrader collect``, ``python -m autograder grade``, ``python -m autograder
   feedback`` and ``nbgrader release_feedback`` run once after all submissions landed (every student waits for the
   whole run), and plain ``nbgrader autograde`` of the same submissions (the issue's yardstick: the service should
   serve the burst within twice its time).

Goals on 2 cores: one submission's feedback p50 <= 5 s; the burst all served within 2x plain ``nbgrader autograde``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ASSIGNMENT = "practice_questions"
COURSE_ID = "mlops-bridge"


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def build_course(folder: Path) -> Path:
    from autograder import course
    from autograder.release import release

    root = course.copy_course(ROOT, folder)
    course.ensure_venv_on_path()
    release(ASSIGNMENT, root, log=lambda message: None)
    return root


def submit(root: Path, student: str, home: Path) -> tuple[Path, float]:
    """Submit the released notebook (some answers right) as ``student``: (their cache entry, monotonic time)."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange.default import ExchangeSubmit
    from traitlets.config import Config

    work = home / ASSIGNMENT
    if not work.exists():
        shutil.copytree(root / "release" / ASSIGNMENT, work)
    config = Config(
        {
            "CourseDirectory": {
                "course_id": COURSE_ID,
                "student_id": student,
                "root": str(home),
                "assignment_id": ASSIGNMENT,
            },
            "Exchange": {"root": str(root / "exchange"), "assignment_dir": str(home), "cache": str(home / "cache")},
        }
    )
    coursedir = CourseDirectory(config=config)
    app = ExchangeSubmit(coursedir=coursedir, authenticator=Authenticator(config=config), config=config)
    before = set((home / "cache" / COURSE_ID).glob("*")) if (home / "cache" / COURSE_ID).exists() else set()
    app.start()
    done = time.monotonic()
    (entry,) = set((home / "cache" / COURSE_ID).glob("*")) - before
    return entry, done


def feedback_path(root: Path, entry: Path) -> Path:
    from nbgrader.utils import notebook_hash

    secret = (entry / "submission_secret.txt").read_text()
    return root / "exchange" / COURSE_ID / "feedback" / f"{notebook_hash(secret=secret, notebook_id=ASSIGNMENT)}.html"


def wait_all(root: Path, pending: dict[Path, float], timeout: float = 900) -> list[float]:
    """Latencies of the submissions in ``pending`` (cache entry -> submit time) as their feedback appears."""
    latencies, deadline = [], time.monotonic() + timeout
    pending = dict(pending)
    while pending:
        for entry, submitted in list(pending.items()):
            if feedback_path(root, entry).exists():
                latencies.append(time.monotonic() - submitted)
                del pending[entry]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} submission(s) got no feedback in {timeout} s")
        time.sleep(0.05)
    return latencies


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def start_service(root: Path, workers: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "autograder", "watch", "--poll", "0.2", "--workers", str(workers)],
        cwd=root,
        env=_env(),
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while b"watch: watching" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the service did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc


def stop_service(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(300)


def _run(cmd, cwd) -> float:
    start = time.perf_counter()
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks grade_on_submit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--alone", type=int, default=5, help="single submissions measured one after the other")
    parser.add_argument("--burst", type=int, default=20, help="submissions landing at once")
    parser.add_argument("--workers", type=int, default=None, help="default: the machine's cores")
    args = parser.parse_args(argv)
    from autograder.engines import default_workers

    workers = args.workers or default_workers()
    with tempfile.TemporaryDirectory(prefix="bench-submit-") as tmp:
        tmp = Path(tmp)
        print(f"releasing {ASSIGNMENT} in a course copy ...", flush=True)
        root = build_course(tmp / "course")
        homes = tmp / "homes"

        service = start_service(root, workers, tmp / "watch.log")
        try:
            alone = []
            for i in range(args.alone):
                entry, submitted = submit(root, f"alone{i:02d}", homes / f"alone{i:02d}")
                alone += wait_all(root, {entry: submitted})
            print(
                f"one alone ({args.alone}x):       p50 {p(alone, 0.5):5.1f} s   p95 {p(alone, 0.95):5.1f} s   "
                f"(goal p50 <= 5 s: {'met' if p(alone, 0.5) <= 5 else 'NOT met'})",
                flush=True,
            )
            burst = {}
            for i in range(args.burst):
                entry, submitted = submit(root, f"burst{i:02d}", homes / f"burst{i:02d}")
                burst[entry] = submitted
            service_burst = wait_all(root, burst)
        finally:
            stop_service(service)
        print(
            f"{args.burst} at once (service):  p50 {p(service_burst, 0.5):5.1f} s   p95 "
            f"{p(service_burst, 0.95):5.1f} s   all served in {max(service_burst):5.1f} s",
            flush=True,
        )

        # the manual path on a copy holding the same burst's submissions (and no service)
        manual = tmp / "manual"
        shutil.copytree(
            root, manual, ignore=shutil.ignore_patterns(".autograder", "feedback", "autograded", "submitted")
        )
        inbound = manual / "exchange" / COURSE_ID / "inbound"
        for entry in inbound.iterdir():
            if not entry.name.startswith("burst"):
                shutil.rmtree(entry)
        config = f"--Exchange.root={manual / 'exchange'}"
        steps = {
            "nbgrader collect": [BIN / "nbgrader", "collect", ASSIGNMENT, config],
            "autograder grade": [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, "--workers", str(workers)],
            "autograder feedback": [sys.executable, "-m", "autograder", "feedback", ASSIGNMENT],
            "nbgrader release_feedback": [BIN / "nbgrader", "release_feedback", ASSIGNMENT, config],
        }
        times = {name: _run(cmd, manual) for name, cmd in steps.items()}
        manual_total = sum(times.values())
        plain = tmp / "plain"
        shutil.copytree(manual, plain, ignore=shutil.ignore_patterns("autograded", "feedback"))
        t_autograde = _run([BIN / "nbgrader", "autograde", ASSIGNMENT], plain)
        print(
            f"{args.burst} at once (manual):   every student waits {manual_total:5.1f} s  ("
            + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
            + ")",
            flush=True,
        )
        print(
            f"plain nbgrader autograde of the {args.burst}: {t_autograde:5.1f} s; the service served all in "
            f"{max(service_burst):.1f} s = {max(service_burst) / t_autograde:.2f}x (goal <= 2x: "
            f"{'met' if max(service_burst) <= 2 * t_autograde else 'NOT met'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
