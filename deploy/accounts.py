"""The class's accounts, from a roster: Linux users (hub login, their own JupyterLab) and MLflow users.

    sudo .venv/bin/python -m deploy.accounts create --roster deploy/roster.csv   # idempotent; prints the passwords
    sudo .venv/bin/python -m deploy.accounts show                                # the passwords again
    sudo .venv/bin/python -m deploy.accounts remove                              # every account it made, and undo

Run as root (it calls useradd, chpasswd, chown); it refuses otherwise. ``--state`` (default /srv/mlops-bridge, or
``MLOPS_HUB_STATE``) holds what the class shares: the hub's database, the MLflow store and its account database, the
nbgrader exchange, and ``credentials.json`` (root only, mode 600) with every password this command generated.

For each roster line (``username,role,first_name,last_name``; role ``student`` or ``instructor``):
- a Linux user with a home of mode 700 (no one else reads it) and a generated password (PAM checks it at the hub's
  login page); instructors are in the group ``mlops-staff``;
- an MLflow user of the class's tracking server (basic-auth app) with another generated password, which the hub puts
  in that user's server environment only (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``);
- a student gets the lessons in ``~/lessons`` (with the course files they use beside them); an instructor gets
  the course directory ``~/mlops-bridge`` (a copy of ``nbgrader_config.py`` and ``source/`` set to the shared
  exchange), where the gradebook will live.

The students' servers run the repository's virtualenv, so its interpreter must be reachable by them: this command
opens the folders on the way (``o+x``, traverse only, never listing) and closes everything of the checkout students
must not read (``source/`` with its solutions and hidden tests, the answer key in ``autograder/``, ``tests/``,
``.git``, generated state) to the owner and ``mlops-staff``. ``remove`` restores every mode and group changed; with
several classes on one machine (one ledger, /var/lib/mlops-bridge), the last one removed does.
"""

from __future__ import annotations

import argparse
import csv
import grp
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STATE = Path(os.environ.get("MLOPS_HUB_STATE", "/srv/mlops-bridge"))
STAFF_GROUP = "mlops-staff"
COURSE_ID = "mlops-bridge"
MLFLOW_ADMIN = "mlflow-admin"
# What of the checkout the students' servers need (the virtualenv, the package the lessons import, the lessons,
# the class's Jupyter configuration); everything else is closed to them.
PUBLIC_ENTRIES = {".venv", "mlops_helpers", "notebooks", "deploy"}
USERNAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")


class AccountsError(Exception):
    """A roster, state or permission problem, stated for the person running the command."""


@dataclass(frozen=True)
class Member:
    username: str
    role: str  # "student" or "instructor"
    first_name: str = ""
    last_name: str = ""


def require_root() -> None:
    if os.geteuid() != 0:
        raise AccountsError(
            "this creates Linux users (useradd, chpasswd) and must run as root: "
            "sudo .venv/bin/python -m deploy.accounts ... "
            "(without root, one person runs the course with `make lab`; see docs/deploy.md)"
        )


def read_roster(path: str | os.PathLike) -> list[Member]:
    members, seen = [], set()
    with open(path, newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            name, role = (row.get("username") or "").strip(), (row.get("role") or "student").strip()
            if not USERNAME.match(name):
                raise AccountsError(
                    f"{path}:{line}: username {name!r} is not a valid Linux user name "
                    "(lower-case letters, digits, - and _, starting with a letter)"
                )
            if role not in ("student", "instructor"):
                raise AccountsError(f"{path}:{line}: role {role!r} is neither 'student' nor 'instructor'")
            if name in seen:
                raise AccountsError(f"{path}:{line}: {name} appears twice")
            seen.add(name)
            members.append(
                Member(name, role, (row.get("first_name") or "").strip(), (row.get("last_name") or "").strip())
            )
    if not any(m.role == "instructor" for m in members):
        raise AccountsError(f"{path}: the roster names no instructor")
    return members


class ClassState:
    """The folders of the class's shared state under one root."""

    def __init__(self, root: str | os.PathLike = DEFAULT_STATE):
        self.root = Path(root).resolve()
        self.hub = self.root / "hub"
        self.mlflow = self.root / "mlflow"
        self.exchange = self.root / "exchange"
        self.credentials_file = self.root / "credentials.json"

    @property
    def auth_db(self) -> Path:
        return self.mlflow / "basic_auth.db"

    @property
    def auth_config(self) -> Path:
        return self.mlflow / "basic_auth.ini"

    def make_folders(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        for private in (self.hub, self.mlflow):
            private.mkdir(exist_ok=True)
            os.chmod(private, 0o700)
        # nbgrader's documented exchange: writable by everyone, sticky (no one removes another's files)
        self.exchange.mkdir(exist_ok=True)
        os.chmod(self.exchange, 0o1777)

    def credentials(self) -> dict:
        if not self.credentials_file.exists():
            return {"users": {}, "mlflow_admin": None}
        return json.loads(self.credentials_file.read_text())

    def save_credentials(self, data: dict) -> None:
        tmp = self.credentials_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, self.credentials_file)

    def home(self, username: str) -> Path:
        return Path(pwd.getpwnam(username).pw_dir)

    def course_dir(self, instructor: str) -> Path:
        return self.home(instructor) / COURSE_ID


def _run(*cmd: str, input: str | None = None) -> None:
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AccountsError(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {proc.stderr.strip()}")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _chown_tree(path: Path, username: str) -> None:
    entry = pwd.getpwnam(username)
    for folder, dirs, files in os.walk(path):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid)


# What the lessons use from the course folder around them (one level up from the notebooks): lesson 02 runs the
# MLflow Project (MLproject, python_env.yaml), lesson 06 runs the model gate's CI test with pytest and shows the
# course's CI workflow.
LESSON_FILES = ("MLproject", "python_env.yaml", "tests/test_model_gate.py", ".github/workflows/test.yml")


def _give_lessons(home: Path, username: str) -> None:
    """The lessons in ~/lessons, and beside them the course files they use (the checkout is closed to students)."""
    lessons = home / "lessons"
    if lessons.exists():
        return
    lessons.mkdir()
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        shutil.copy2(notebook, lessons / notebook.name)
    for name in LESSON_FILES:
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, home / name)
    _chown_tree(home, username)


def _give_course(home: Path, username: str, state: ClassState) -> None:
    course = home / COURSE_ID
    if course.exists():
        return
    from autograder.course import copy_course

    copy_course(REPO, course)
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write(
            "\n# --- the class on one machine (written by python -m deploy.accounts) ---------------------------\n"
            "# The class's shared exchange instead of the course-local one.\n"
            f"c.Exchange.root = {str(state.exchange)!r}\n"
        )
    _chown_tree(course, username)
    os.chmod(course, 0o750)


def _mlflow_store(state: ClassState):
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(f"sqlite:///{state.auth_db}")
    return store


def _write_auth_config(state: ClassState, admin_password: str) -> None:
    text = (
        "[mlflow]\n"
        "# Everyone reads the class's runs and models; only their creator (MANAGE) and the admin change them.\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{state.auth_db}\n"
        f"admin_username = {MLFLOW_ADMIN}\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "# Each request's password is checked with PBKDF2, much of the server's CPU when a class logs models\n"
        "# at once: a successful check is remembered for a minute (a changed password takes that long to apply).\n"
        "auth_cache_ttl_seconds = 60\n"
    )
    fd = os.open(state.auth_config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def create(roster: list[Member], state: ClassState, log=print) -> dict:
    """Create (or complete) every account of ``roster``; returns the credentials record."""
    require_root()
    state.make_folders()
    data = state.credentials()
    with _Ledger() as ledger:  # the instructors' group, shared by every class on the machine
        if str(state.root) not in ledger["holders"]:
            ledger["holders"].append(str(state.root))
        _ensure_staff_group(ledger)
    if not data.get("mlflow_admin"):
        data["mlflow_admin"] = {"username": MLFLOW_ADMIN, "password": secrets.token_urlsafe(18)}
    if not data.get("mlflow_secret_key"):  # the basic-auth app's CSRF key (MLFLOW_FLASK_SERVER_SECRET_KEY)
        data["mlflow_secret_key"] = secrets.token_hex(32)
    _write_auth_config(state, data["mlflow_admin"]["password"])
    store = _mlflow_store(state)
    if not store.has_user(MLFLOW_ADMIN):
        store.create_user(MLFLOW_ADMIN, data["mlflow_admin"]["password"], is_admin=True)
    state.save_credentials(data)
    for member in roster:
        record = data["users"].get(member.username)
        if record is None:
            if _user_exists(member.username):
                raise AccountsError(
                    f"the Linux user {member.username!r} exists and was not made by this command "
                    f"(not in {state.credentials_file}): choose another name in the roster"
                )
            record = {
                "role": member.role,
                "password": secrets.token_urlsafe(12),
                "mlflow_password": secrets.token_urlsafe(18),
            }
            comment = f"{member.first_name} {member.last_name}".strip() or member.username
            _run("useradd", "--create-home", "--shell", "/bin/bash", "--comment", comment, member.username)
            data["users"][member.username] = record
            state.save_credentials(data)  # recorded as soon as it exists: remove() finds it even after a failure
            _run("chpasswd", input=f"{member.username}:{record['password']}\n")
            log(f"created {member.role} {member.username}")
        home = state.home(member.username)
        os.chmod(home, 0o700)
        if member.role == "instructor":
            _run("usermod", "--append", "--groups", STAFF_GROUP, member.username)
            _give_course(home, member.username, state)
        else:
            _give_lessons(home, member.username)
        if not store.has_user(member.username):
            store.create_user(member.username, record["mlflow_password"])
    open_repository(state, log=log)
    return data


def remove(state: ClassState, log=print) -> list[str]:
    """Remove every Linux user this command created (with their homes) and restore the checkout's permissions.
    The hub (and so every server of theirs) must be stopped first."""
    require_root()
    data = state.credentials()
    removed = []
    for username in list(data["users"]):
        if _user_exists(username):
            _run("userdel", "--remove", username)
        removed.append(username)
        del data["users"][username]
        state.save_credentials(data)
        log(f"removed {username}")
    restore_repository(state, log=log)
    return removed


# --- the checkout: the students' servers run its virtualenv, and must read nothing else of it ------------------


def _interpreter_prefix() -> Path:
    """The real installation the virtualenv's python links to (e.g. a pyenv folder under /root)."""
    return Path(os.path.realpath(sys.executable)).parents[1]


# One ledger for the machine: several classes (or a test run beside a live class) may open the same folders; a
# folder's original mode and group are restored, and the staff group removed, only when the last of them is removed.
LEDGER = Path(os.environ.get("MLOPS_PERMISSIONS_LEDGER", "/var/lib/mlops-bridge/permissions.json"))


class _Ledger:
    """``LEDGER`` under an exclusive lock: {"holders": [state roots], "paths": {path: {mode, gid}},
    "staff_group_created": bool}. Holders whose state folder is gone (a class removed by hand) are dropped."""

    def __enter__(self) -> dict:
        import fcntl

        LEDGER.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(LEDGER.parent, os.O_RDONLY)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.data = (
            json.loads(LEDGER.read_text())
            if LEDGER.exists()
            else {"holders": [], "paths": {}, "staff_group_created": False}
        )
        self.data["holders"] = [h for h in self.data["holders"] if (Path(h) / "credentials.json").exists()]
        return self.data

    def __exit__(self, *exc) -> None:
        try:
            if self.data["holders"] or self.data["paths"] or self.data["staff_group_created"]:
                LEDGER.write_text(json.dumps(self.data, indent=1))
            else:
                LEDGER.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
        if not LEDGER.exists():
            try:
                LEDGER.parent.rmdir()
            except OSError:
                pass


def _ensure_staff_group(ledger: dict) -> None:
    if not _group_exists(STAFF_GROUP):
        _run("groupadd", STAFF_GROUP)
        ledger["staff_group_created"] = True


def open_repository(state: ClassState, repo: Path = REPO, log=print) -> list[str]:
    """Let other users run the virtualenv and import ``mlops_helpers``; close the rest of the checkout to them.
    Every folder's original mode and group go to the machine's ledger for :func:`restore_repository`."""
    said = []
    with _Ledger() as ledger:
        if str(state.root) not in ledger["holders"]:
            ledger["holders"].append(str(state.root))
        _ensure_staff_group(ledger)

        def change(path: Path, mode: int, gid: int | None = None) -> None:
            st = os.stat(path)
            ledger["paths"].setdefault(str(path), {"mode": stat.S_IMODE(st.st_mode), "gid": st.st_gid})
            if gid is not None and st.st_gid != gid:
                os.chown(path, -1, gid)
            if stat.S_IMODE(st.st_mode) != mode:
                os.chmod(path, mode)
                said.append(f"{path}: mode {stat.S_IMODE(st.st_mode):o} -> {mode:o}")

        # traverse (never list) every folder on the way to the interpreter and the checkout
        for target in (_interpreter_prefix(), repo):
            for folder in [*reversed(target.parents), target]:
                mode = stat.S_IMODE(os.stat(folder).st_mode)
                if not mode & 0o001:
                    change(folder, mode | 0o001)
        # the checkout itself: others may enter it (to reach .venv and mlops_helpers), not list it
        change(repo, (stat.S_IMODE(os.stat(repo).st_mode) & ~0o007) | 0o001)
        staff = grp.getgrnam(STAFF_GROUP).gr_gid
        for entry in sorted(repo.iterdir()):
            if entry.name in PUBLIC_ENTRIES or entry.is_symlink():
                continue
            mode = stat.S_IMODE(os.stat(entry).st_mode)
            # staff (instructors) keep read access: their formgrader imports autograder, their course copies source/
            change(entry, (mode & ~0o007) | ((mode & 0o700) >> 3 & 0o050), gid=staff)
    for line in said:
        log(line)
    return said


def restore_repository(state: ClassState, log=print) -> None:
    """This class no longer needs the opened folders; the last class to go restores them and removes the group."""
    with _Ledger() as ledger:
        if str(state.root) in ledger["holders"]:
            ledger["holders"].remove(str(state.root))
        if ledger["holders"]:
            log(f"the checkout stays open for {len(ledger['holders'])} other class(es) on this machine")
            return
        for path, original in reversed(list(ledger["paths"].items())):
            if os.path.exists(path):
                os.chown(path, -1, original["gid"])
                os.chmod(path, original["mode"])
        ledger["paths"] = {}
        if ledger["staff_group_created"] and _group_exists(STAFF_GROUP):
            _run("groupdel", STAFF_GROUP)
        ledger["staff_group_created"] = False
    log("restored the checkout's permissions")


def show(state: ClassState, out=sys.stdout) -> None:
    data = state.credentials()
    out.write("username,role,hub_password,mlflow_password\n")
    for name, record in data["users"].items():
        out.write(f"{name},{record['role']},{record['password']},{record['mlflow_password']}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.accounts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=("create", "show", "remove"))
    parser.add_argument("--roster", default=str(REPO / "deploy" / "roster.csv"), help="CSV: username,role,...")
    parser.add_argument("--state", default=str(DEFAULT_STATE), help="the class's shared state (%(default)s)")
    args = parser.parse_args(argv)
    state = ClassState(args.state)
    try:
        if args.action == "create":
            create(read_roster(args.roster), state)
            show(state)
        elif args.action == "show":
            require_root()
            show(state)
        else:
            remove(state)
    except AccountsError as exc:
        print(f"deploy.accounts: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
