"""``make hub``: the class on one machine. Creates the roster's accounts, releases the assignments, runs JupyterHub.

    sudo make hub                                    # roster deploy/roster.csv, state /srv/mlops-bridge, port 8000
    sudo make hub HUB_ROSTER=my.csv HUB_PORT=8100
    sudo .venv/bin/python -m deploy.hub --prepare-only   # accounts and releases, no hub (then: jupyterhub -f ...)

Needs root (real Linux accounts, each JupyterLab started as its user). Without root it stops and says so: one person
then runs the course with ``make lab`` (docs/deploy.md, "Without root").
"""

from __future__ import annotations

import argparse
import os
import pwd
import subprocess
import sys

from deploy.accounts import COURSE_ID, REPO, AccountsError, ClassState, create, read_roster, require_root

BIN = REPO / ".venv" / "bin"
PROXY = REPO / "deploy" / "node_modules" / ".bin" / "configurable-http-proxy"
CONFIG = REPO / "deploy" / "jupyterhub_config.py"


def as_user(
    username: str, *cmd: str, cwd: str | os.PathLike | None = None, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``cmd`` as ``username`` (its uid, gid and groups; its HOME), with the virtualenv first on PATH."""
    entry = pwd.getpwnam(username)
    environment = {
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": entry.pw_dir,
        "USER": username,
        "LANG": "C.UTF-8",
        **(env or {}),
    }
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={entry.pw_uid}",
            f"--regid={entry.pw_gid}",
            "--init-groups",
            "--reset-env",
            "--",
            "env",
            *(f"{k}={v}" for k, v in environment.items()),
            *cmd,
        ],
        cwd=cwd or entry.pw_dir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def release_assignments(state: ClassState, instructor: str, log=print) -> list[str]:
    """Release every assignment of the instructor's course directory not yet in the exchange (as the instructor,
    so that the gradebook and the exchange's outbound and inbound folders are theirs)."""
    course = state.course_dir(instructor)
    released = []
    for source in sorted(p for p in (course / "source").iterdir() if p.is_dir()):
        if (state.exchange / COURSE_ID / "outbound" / source.name).is_dir():
            continue
        proc = as_user(
            instructor,
            str(BIN / "python"),
            "-m",
            "autograder",
            "release",
            source.name,
            "--course-dir",
            str(course),
            cwd=course,
        )
        if proc.returncode != 0:
            raise AccountsError(f"releasing {source.name} as {instructor} failed:\n{proc.stderr[-2000:]}")
        released.append(source.name)
        log(f"released {source.name}")
    return released


def hub_environment(state: ClassState, port: int, **ports: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MLOPS_HUB_STATE": str(state.root),
            "MLOPS_HUB_PORT": str(port),
            "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        }
    )
    for key, value in ports.items():
        env[f"MLOPS_{key.upper()}"] = str(value)
    return env


def prepare(roster_path: str, state: ClassState, log=print) -> str:
    """Accounts and releases; returns the instructor's name."""
    require_root()
    if not os.access(PROXY, os.X_OK):
        raise AccountsError(f"{PROXY} is missing: run `make hub-deps` (npm ci in deploy/)")
    roster = read_roster(roster_path)
    create(roster, state, log=log)
    instructor = next(m.username for m in roster if m.role == "instructor")
    release_assignments(state, instructor, log=log)
    return instructor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.hub", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--roster", default=str(REPO / "deploy" / "roster.csv"))
    parser.add_argument("--state", default=os.environ.get("MLOPS_HUB_STATE", "/srv/mlops-bridge"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("MLOPS_HUB_PORT", "8000")))
    parser.add_argument(
        "--mem-limit",
        default=os.environ.get("MLOPS_HUB_MEM_LIMIT", "2G"),
        help="memory of each user's server and its kernels, e.g. 2G or 1536M (a cgroup per server; a kernel over it "
        "is killed, nothing else; default %(default)s: lesson 01 peaks at 0.72 GB)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=int,
        default=int(os.environ.get("MLOPS_HUB_IDLE_TIMEOUT", "3600")),
        help="seconds after which a server nobody uses is stopped (its files stay; 0: never; default %(default)s)",
    )
    parser.add_argument("--prepare-only", action="store_true", help="create accounts and release; do not start")
    args = parser.parse_args(argv)
    state = ClassState(args.state)
    try:
        prepare(args.roster, state)
    except AccountsError as exc:
        print(f"make hub: {exc}", file=sys.stderr)
        return 2
    if args.prepare_only:
        return 0
    env = hub_environment(state, args.port)
    env.update({"MLOPS_HUB_MEM_LIMIT": args.mem_limit, "MLOPS_HUB_IDLE_TIMEOUT": str(args.idle_timeout)})
    mlflow_port = env.get("MLOPS_MLFLOW_PORT", "5050")
    print(
        f"\nThe class hub: log in at http://127.0.0.1:{args.port}/ with a roster name and its password\n"
        f"  (passwords: sudo .venv/bin/python -m deploy.accounts show --state {state.root})\n"
        f"  formgrader (instructors): http://127.0.0.1:{args.port}/services/{COURSE_ID}/\n"
        f"  the class's MLflow: http://127.0.0.1:{mlflow_port}/ (each user's MLflow password in the same list)\n"
        f"  each server: at most {args.mem_limit} of memory; stopped after "
        f"{f'{args.idle_timeout} s unused' if args.idle_timeout else 'never (no idle timeout)'}\n"
        f"  stop with Ctrl-C (stops every server and service)\n",
        flush=True,
    )
    os.chdir(state.hub)
    os.execve(str(BIN / "jupyterhub"), [str(BIN / "jupyterhub"), "-f", str(CONFIG)], env)


if __name__ == "__main__":
    sys.exit(main())
