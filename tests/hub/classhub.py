"""Helpers of the class-hub tests: the hub as a process, a user's REST calls, kernels and MLflow requests."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROXY = ROOT / "deploy" / "node_modules" / ".bin" / "configurable-http-proxy"
CLASS_SIZE = int(os.environ.get("MLOPS_HUB_CLASS_SIZE", "30"))
# How many of the class run lesson 01 at the same moment: 30 students at once need about 30 x 0.72 GB, more than
# this 24 GB machine has beside the hub; every server stays up while its turn comes (docs/deploy.md).
LESSON_CONCURRENCY = int(os.environ.get("MLOPS_HUB_LESSON_CONCURRENCY", "10"))
COURSE = "mlops-bridge"
# the small class's settings (tests/hub/test_hub_settings.py): a memory limit above lesson 01's 0.72 GB peak, and a
# short idle timeout
SMALL_CLASS_MEMORY_MB = 1536
SMALL_CLASS_IDLE = 60
BUILD = ROOT / "build" / "hub"  # logs, screenshots and figures of the hub tests (ignored by git)
if str(ROOT) not in sys.path:  # deploy/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def at_once(fn, items) -> None:
    """``fn(item)`` for every item, each in a thread of its own, all started before any is waited for (a class
    acting at the same moment)."""
    threads = [threading.Thread(target=fn, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def wait_until(check, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # a server still starting refuses connections
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")


class Hub:
    def __init__(
        self, state: Path, prefix: str, ports: dict[str, int], users: dict[str, str], extra_env: dict | None = None
    ):
        self.state, self.prefix, self.ports, self.users = state, prefix, ports, users
        self.extra_env = dict(extra_env or {})
        self.url = f"http://127.0.0.1:{ports['hub']}"
        self.mlflow = f"http://127.0.0.1:{ports['mlflow']}"
        self.admin_token = secrets.token_hex(24)
        self.proc: subprocess.Popen | None = None
        self.log = state / "hub.log"
        self._tokens: dict[str, str] = {}

    # -- accounts
    def credentials(self) -> dict:
        return json.loads((self.state / "credentials.json").read_text())

    def password(self, user: str) -> str:
        return self.credentials()["users"][user]["password"]

    def mlflow_auth(self, user: str) -> tuple[str, str]:
        return user, self.credentials()["users"][user]["mlflow_password"]

    @property
    def instructor(self) -> str:
        return self.users["instructor"]

    @property
    def students(self) -> list[str]:
        return [name for role, name in self.users.items() if role != "instructor"]

    def home(self, user: str) -> Path:
        return Path(pwd.getpwnam(user).pw_dir)

    def uid(self, user: str) -> int:
        return pwd.getpwnam(user).pw_uid

    def as_user(self, user: str, *cmd: str, timeout: float = 120, env: dict | None = None):
        """``cmd`` run as ``user`` (their uid, gid and groups, nothing of root's environment)."""
        from deploy.hub import as_user

        return as_user(user, *cmd, timeout=timeout, env=env)

    # -- the hub
    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "MLOPS_HUB_STATE": str(self.state),
                "MLOPS_HUB_PORT": str(self.ports["hub"]),
                "MLOPS_HUB_API_PORT": str(self.ports["hub_api"]),
                "MLOPS_PROXY_API_PORT": str(self.ports["proxy_api"]),
                "MLOPS_MLFLOW_PORT": str(self.ports["mlflow"]),
                "MLOPS_FORMGRADER_PORT": str(self.ports["formgrader"]),
                "MLOPS_HUB_ADMIN_TOKEN": self.admin_token,
                "MLOPS_GRADING_WORKERS": "2",
                "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
                **self.extra_env,
            }
        )
        return env

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "jupyterhub"), "-f", str(ROOT / "deploy" / "jupyterhub_config.py")],
                cwd=self.state / "hub",
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: self._alive() and requests.get(f"{self.url}/hub/api", timeout=5).ok, 180, "the hub")
        wait_until(
            lambda: self._alive() and requests.get(f"{self.mlflow}/health", timeout=5).ok,
            240,
            "the class's MLflow server",
        )

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the hub exited ({self.proc.returncode}):\n{self.log.read_text()[-4000:]}")
        return True

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    # -- REST
    def token(self, user: str) -> str:
        """The user's own API token, asked for with their password (as a script of theirs would)."""
        if user not in self._tokens:
            r = requests.post(
                f"{self.url}/hub/api/users/{user}/tokens",
                timeout=60,
                json={"auth": {"username": user, "password": self.password(user)}, "note": "test"},
            )
            assert r.status_code == 201, (r.status_code, r.text)
            self._tokens[user] = r.json()["token"]
        return self._tokens[user]

    def api(self, user: str, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.token(user)}", **kwargs.pop("headers", {})}
        return requests.request(
            method, f"{self.url}{path}", headers=headers, timeout=kwargs.pop("timeout", 120), **kwargs
        )

    def spawn(self, user: str, timeout: float = 300) -> float:
        """Start the user's server through the REST API with their token; seconds until it is ready."""
        start = time.monotonic()
        r = self.api(user, "POST", f"/hub/api/users/{user}/server")
        assert r.status_code in (201, 202), (r.status_code, r.text)

        def ready():
            model = self.api(user, "GET", f"/hub/api/users/{user}").json()
            return model["servers"].get("", {}).get("ready")

        wait_until(ready, timeout, f"{user}'s server")
        return time.monotonic() - start

    def stop_server(self, user: str) -> None:
        r = self.api(user, "DELETE", f"/hub/api/users/{user}/server")
        assert r.status_code in (202, 204), (r.status_code, r.text)
        wait_until(
            lambda: not self.api(user, "GET", f"/hub/api/users/{user}").json()["servers"],
            120,
            f"{user}'s server to stop",
        )

    def server_processes(self, user: str) -> list[psutil.Process]:
        uid = self.uid(user)
        found = []
        for proc in psutil.process_iter(["uids", "cmdline"]):
            try:
                if proc.info["uids"] and proc.info["uids"].real == uid:
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def memory_mb(self, user: str) -> float:
        total = 0
        for proc in self.server_processes(user):
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20

    def cpu_seconds(self, user: str) -> float:
        """CPU time used by the user's processes, their reaped children (finished kernels) included."""
        total = 0.0
        for proc in self.server_processes(user):
            try:
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        return total

    def services_memory_mb(self) -> float:
        """Resident memory of the hub, its proxy and its services (everything it started as root)."""
        hub = psutil.Process(self.proc.pid)
        total = 0
        for proc in [hub, *hub.children(recursive=True)]:
            try:
                if proc.uids().real == 0:
                    total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20

    def run_code(self, user: str, code: str, timeout: float = 900) -> dict:
        """Run ``code`` in a new kernel of the user's server; returns {status, stdout, stderr, error}."""
        return self.run_cells(user, [code], timeout=timeout)[-1]

    def run_notebook(self, user: str, path: str, timeout: float = 1500) -> list[dict]:
        """What Run All Cells does in JupyterLab: a session for the notebook at ``path`` (its kernel starts in the
        notebook's folder), then every code cell in order in that kernel, stopping at the first error."""
        model = self.api(user, "GET", f"/user/{user}/api/contents/{path}")
        assert model.status_code == 200, model.text
        cells = [
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in model.json()["content"]["cells"]
            if c["cell_type"] == "code"
        ]
        return self.run_cells(user, cells, path=path, timeout=timeout)

    def run_cells(self, user: str, cells: list[str], path: str | None = None, timeout: float = 900) -> list[dict]:
        """Run ``cells`` one after the other in one new kernel of the user's server (REST and the kernel's websocket,
        through the hub's proxy, with the user's token); one {status, stdout, stderr, error} per cell run, status
        ``died`` when the kernel died running it. The kernel (and its session) is shut down after."""
        if path:
            session = self.api(
                user,
                "POST",
                f"/user/{user}/api/sessions",
                json={"path": path, "type": "notebook", "name": path, "kernel": {"name": "python3"}},
            )
            assert session.status_code == 201, (session.status_code, session.text)
            kernel_id, session_id = session.json()["kernel"]["id"], session.json()["id"]
        else:
            kernel = self.api(user, "POST", f"/user/{user}/api/kernels", json={"name": "python3"})
            assert kernel.status_code == 201, (kernel.status_code, kernel.text)
            kernel_id, session_id = kernel.json()["id"], None
        try:
            # In a thread of its own, with a fresh event loop: the thread that calls this may hold one already (a sync
            # Playwright of tests/browser lives in the main thread for the whole session, and asyncio.run refuses
            # to start inside a running loop).
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-kernel") as pool:
                coroutine = asyncio.wait_for(self._execute(user, kernel_id, cells), timeout)
                return pool.submit(asyncio.run, coroutine).result()
        finally:
            if session_id:
                self.api(user, "DELETE", f"/user/{user}/api/sessions/{session_id}")
            self.api(user, "DELETE", f"/user/{user}/api/kernels/{kernel_id}")

    async def _execute(self, user: str, kernel_id: str, cells: list[str]) -> list[dict]:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = f"ws://127.0.0.1:{self.ports['hub']}/user/{user}/api/kernels/{kernel_id}/channels"
        # tornado's default 20 s to connect is too short for a class starting kernels at once on 2 cores
        request = HTTPRequest(
            url, headers={"Authorization": f"token {self.token(user)}"}, connect_timeout=600, request_timeout=600
        )
        ws = await websocket_connect(request, max_message_size=64 * 2**20)
        session = uuid.uuid4().hex
        results = []
        try:
            for code in cells:
                results.append(await self._execute_one(ws, user, session, code))
                if results[-1]["status"] != "ok":
                    break
        finally:
            ws.close()
        return results

    @staticmethod
    async def _execute_one(ws, user: str, session: str, code: str) -> dict:
        msg_id = uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": user,
                        "session": session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    },
                    "parent_header": {},
                    "metadata": {},
                    "buffers": [],
                    "channel": "shell",
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": True,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        out = {"status": None, "stdout": "", "stderr": "", "error": None}
        idle = False
        while out["status"] is None or not idle:
            raw = await ws.read_message()
            if raw is None:
                raise AssertionError(f"the kernel's websocket closed: {out}")
            if isinstance(raw, bytes):  # binary frames (buffers): not ours
                continue
            msg = json.loads(raw)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] in ("restarting", "dead"):
                # the server says the kernel died (its own status message, with no parent): no reply will come
                out["status"] = "died"
                return out
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind == "error":
                out["error"] = f"{content['ename']}: {content['evalue']}"
            elif kind == "execute_reply":
                out["status"] = content["status"]
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        return out

    def mlflow_call(self, user: str | None, method: str, endpoint: str, **kwargs) -> requests.Response:
        auth = self.mlflow_auth(user) if user else None
        return requests.request(method, f"{self.mlflow}/api/2.0/mlflow/{endpoint}", auth=auth, timeout=60, **kwargs)


def save_answers(hub: Hub, user: str, assignment: str = "practice_questions", right: set[str] | None = None) -> None:
    """As ``user``, through their server's contents API (as JupyterLab saves a notebook): answer the fetched
    ``assignment`` -- every question right (the instructor's solutions, read as root from the course directory), or
    only those in ``right`` (answer cell ids; the others get a wrong letter)."""
    import nbformat

    from practice_answers import source_answers, wrong_answer

    path = f"{assignment}/{assignment}.ipynb"
    model = hub.api(user, "GET", f"/user/{user}/api/contents/{path}")
    assert model.status_code == 200, model.text
    answers, _ = source_answers(hub.home(hub.instructor) / COURSE)
    nb = nbformat.from_dict(model.json()["content"])
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            good = right is None or grade_id in right
            cell.source = answers[grade_id] if good else wrong_answer(answers[grade_id])
    saved = hub.api(
        user,
        "PUT",
        f"/user/{user}/api/contents/{path}",
        json={"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(nb))},
    )
    assert saved.status_code == 200, saved.text


def submit_answers(hub: Hub, user: str, assignment: str = "practice_questions", right: set[str] | None = None) -> None:
    """As ``user``, through their server: fetch ``assignment``, answer it (:func:`save_answers`), submit."""
    fetched = hub.api(
        user, "POST", f"/user/{user}/assignments/fetch", data={"course_id": COURSE, "assignment_id": assignment}
    )
    assert fetched.status_code == 200 and fetched.json()["success"], fetched.text
    save_answers(hub, user, assignment, right)
    submitted = hub.api(
        user, "POST", f"/user/{user}/assignments/submit", data={"course_id": COURSE, "assignment_id": assignment}
    )
    assert submitted.status_code == 200 and submitted.json()["success"], submitted.text
