"""Grading speed: plain ``nbgrader autograde`` vs ``python -m autograder grade`` (sandboxed), side by side.

    python -m benchmarks grading [--submissions 24] [--workers CORES]

Builds nbgrader's documentation example course (ps1, two notebooks) in a temporary folder with N benign
submissions (copies of bitdiddle's and hacker's work with varied answers), then, in one run:

1. ``nbgrader autograde ps1`` (serial, unsandboxed) on one copy;
2. ``python -m autograder grade ps1`` (sandboxed, ``--workers`` processes) on another copy;
3. ``python -m autograder grade ps1 --no-sandbox`` on a third copy (for the sandbox's cost);
4. the floor: each autograded notebook executed by bare nbclient, one after the other, divided by the cores.

Prints speed-up = (1) / (2) (goal >= 1.8 on 2 cores), ratio to the floor = (2) / (4) (goal <= 1.25) and the
sandbox's cost per submission (mean per-job seconds, sandboxed minus unsandboxed). Scores must agree between the
three graders, else the run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbgrader

USER_GUIDE = Path(nbgrader.__file__).parent / "docs" / "source" / "user_guide"
BIN = Path(sys.executable).parent

# Answer variants for ps1's `squares` cell (right, off by one, no input check, ...): scores differ per student.
SQUARES = [
    "def squares(n):\n    if n < 1:\n        raise ValueError('n must be >= 1')\n"
    "    return [i ** 2 for i in range(1, n + 1)]",
    "def squares(n):\n    return [i ** 2 for i in range(1, n + 1)]",
    "def squares(n):\n    if n < 1:\n        raise ValueError()\n    return [i * i for i in range(n)]",
    "def squares(n):\n    if n < 1:\n        raise ValueError()\n    out = []\n    for i in range(1, n + 1):\n"
    "        out.append(i * i)\n    return out",
]


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(cmd, cwd) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def build_course(folder: Path, n: int, seed: int = 0) -> Path:
    """The example course with ``n`` generated submissions and ps1 generated (gradebook filled)."""
    rng = random.Random(seed)
    shutil.copytree(USER_GUIDE / "source" / "ps1", folder / "source" / "ps1")
    (folder / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'bench'\n")
    for i in range(n):
        base = USER_GUIDE / "submitted" / ("bitdiddle", "hacker")[i % 2] / "ps1"
        dest = folder / "submitted" / f"student{i:02d}" / "ps1"
        shutil.copytree(base, dest)
        path = dest / "problem1.ipynb"
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["metadata"].get("nbgrader", {}).get("grade_id") == "squares":
                cell["source"] = rng.choice(SQUARES)
        path.write_text(json.dumps(nb))
    _run([BIN / "nbgrader", "generate_assignment", "ps1"], folder)
    return folder


def _scores(course: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.student_id: s.score for s in gb.find_assignment("ps1").submissions}


def bare_execution_seconds(course: Path) -> float:
    """Sum of the times bare nbclient takes to execute every autograded notebook (kernel start included)."""
    import nbformat
    from nbclient import NotebookClient

    total = 0.0
    for path in sorted((course / "autograded").glob("*/ps1/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        start = time.perf_counter()
        # the kernel's own stderr (ipykernel's "running over TCP" warning) would flood the benchmark's output
        NotebookClient(
            nb,
            timeout=120,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(path.parent)}},
        ).execute(stderr=subprocess.DEVNULL)
        total += time.perf_counter() - start
    return total


def _job_seconds(course: Path) -> list[float]:
    data = json.loads((course / ".autograder" / "ps1.status.json").read_text())
    return [entry["seconds"] for entry in data["students"].values()]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks grading", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submissions", type=int, default=24)
    parser.add_argument("--workers", type=int, default=None, help="default: the machine's cores")
    args = parser.parse_args(argv)
    from autograder.engines import default_workers

    cores = args.workers or default_workers()
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = Path(tmp)
        print(f"building {args.submissions} submissions of nbgrader's example ps1 ...", flush=True)
        base = build_course(tmp / "base", args.submissions)
        copies = {name: shutil.copytree(base, tmp / name) for name in ("plain", "engine", "nosandbox")}

        t_nbgrader = _run([BIN / "nbgrader", "autograde", "ps1"], copies["plain"])
        print(f"nbgrader autograde:            {t_nbgrader:7.1f} s", flush=True)
        t_engine = _run([sys.executable, "-m", "autograder", "grade", "ps1", "--workers", str(cores)], copies["engine"])
        print(f"autograder grade (sandboxed):  {t_engine:7.1f} s  ({cores} workers)", flush=True)
        t_nosandbox = _run(
            [sys.executable, "-m", "autograder", "grade", "ps1", "--workers", str(cores), "--no-sandbox"],
            copies["nosandbox"],
        )
        print(f"autograder grade --no-sandbox: {t_nosandbox:7.1f} s", flush=True)
        bare = bare_execution_seconds(copies["engine"])
        floor = bare / cores
        print(f"bare nbclient execution:       {bare:7.1f} s  -> floor {floor:.1f} s on {cores} cores", flush=True)

        plain, ours, unsandboxed = (_scores(copies[k]) for k in ("plain", "engine", "nosandbox"))
        if not (plain == ours == unsandboxed):
            diff = {
                s: (plain.get(s), ours.get(s), unsandboxed.get(s))
                for s in plain
                if not plain.get(s) == ours.get(s) == unsandboxed.get(s)
            }
            print(f"SCORES DIFFER (nbgrader, sandboxed, unsandboxed): {diff}", file=sys.stderr)
            return 1
        sandboxed_job, plain_job = _job_seconds(copies["engine"]), _job_seconds(copies["nosandbox"])
        cost = sum(sandboxed_job) / len(sandboxed_job) - sum(plain_job) / len(plain_job)

        speedup, to_floor = t_nbgrader / t_engine, t_engine / floor
        print(f"scores identical for {len(ours)} submissions (nbgrader, sandboxed, unsandboxed)")
        print(
            f"speed-up vs nbgrader autograde: {speedup:.2f}x  (goal >= 1.8x on 2 cores: "
            f"{'met' if speedup >= 1.8 else 'NOT met'})"
        )
        print(
            f"ratio to the floor:             {to_floor:.2f}x  (goal <= 1.25x: "
            f"{'met' if to_floor <= 1.25 else 'NOT met'})"
        )
        meaning = "; negative: the sandbox costs nothing measurable" if cost < 0 else ""
        mean_sandboxed, mean_plain = sum(sandboxed_job) / len(sandboxed_job), sum(plain_job) / len(plain_job)
        print(
            f"sandbox cost per submission:    {cost:+.2f} s  (mean job {mean_sandboxed:.2f} s"
            f" sandboxed vs {mean_plain:.2f} s{meaning})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
