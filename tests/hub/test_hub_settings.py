"""A class set up as an instructor of a bigger class would (``small_class``): the tracking server on PostgreSQL
(``MLOPS_MLFLOW_BACKEND``), a memory limit per student server (``MLOPS_HUB_MEM_LIMIT``, deploy/spawner.py) and idle
servers stopped (``MLOPS_HUB_IDLE_TIMEOUT``, jupyterhub-idle-culler). In order: the lesson, the limit, the culling."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import psutil
from classhub import ROOT, SMALL_CLASS_IDLE, SMALL_CLASS_MEMORY_MB, wait_until

LESSON = "lessons/01_experiment_tracking.ipynb"


def test_the_class_tracking_server_keeps_a_students_runs_in_postgresql(small_class):
    hub, cluster = small_class
    student = hub.users["p"]
    # the hub's MLflow service uses the database it was given, not the default sqlite file
    assert not (hub.state / "mlflow" / "mlflow.db").exists()
    hub.spawn(student, timeout=600)
    cells = hub.run_notebook(student, LESSON, timeout=1500)
    failed = [c for c in cells if c["status"] != "ok"]
    assert not failed, (failed[0]["error"], failed[0]["stderr"][-2000:])
    lesson = nbformat.read(str(ROOT / "notebooks" / "01_experiment_tracking.ipynb"), as_version=4)
    assert len(cells) == sum(c.cell_type == "code" for c in lesson.cells)

    experiment = f"{student}-01-experiment-tracking"
    rows = cluster.query(
        "class_mlflow",
        "SELECT count(*) FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id WHERE e.name = %s",
        (experiment,),
    )
    assert rows[0][0] >= 3, rows  # the seed's run and the C sweep at least, in PostgreSQL
    metrics = cluster.query(
        "class_mlflow",
        "SELECT count(*) FROM metrics m JOIN runs r ON m.run_uuid = r.run_uuid "
        "JOIN experiments e ON r.experiment_id = e.experiment_id WHERE e.name = %s AND m.key = 'val_accuracy'",
        (experiment,),
    )
    assert metrics[0][0] >= 3, metrics
    # the same runs through the server's REST API, with the student's account; none without one
    found = hub.mlflow_call(student, "GET", "experiments/get-by-name", params={"experiment_name": experiment})
    assert found.status_code == 200, found.text
    anonymous = hub.mlflow_call(None, "GET", "experiments/get-by-name", params={"experiment_name": experiment})
    assert anonymous.status_code == 401


def _memory_cgroup(pid: int) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") or controllers == "":
            v1 = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            return v1 if v1.is_dir() else Path("/sys/fs/cgroup") / path.lstrip("/")
    raise AssertionError(f"no memory cgroup for pid {pid}")


def _limit_bytes(cgroup: Path) -> int:
    for name in ("memory.limit_in_bytes", "memory.max"):
        if (cgroup / name).exists():
            return int((cgroup / name).read_text())
    raise AssertionError(f"no memory limit file in {cgroup}")


def test_a_notebook_over_the_memory_limit_loses_its_kernel_not_the_class(small_class):
    hub, _ = small_class
    student = hub.users["p"]
    if not hub.api(student, "GET", f"/hub/api/users/{student}").json()["servers"]:
        hub.spawn(student, timeout=600)
    (server,) = [p for p in hub.server_processes(student) if "jupyterhub-singleuser" in " ".join(p.cmdline())]
    cgroup = _memory_cgroup(server.pid)
    assert cgroup.name.startswith(f"hub-{student}-"), cgroup
    assert _limit_bytes(cgroup) == SMALL_CLASS_MEMORY_MB * 2**20
    # a kernel the server starts is in the same cgroup; allocating twice the limit kills it, and only it
    result = hub.run_code(
        student,
        "import os\nprint(open(f'/proc/{os.getpid()}/cgroup').read())\nblocks = []\n"
        f"for _ in range({2 * SMALL_CLASS_MEMORY_MB // 64}):\n    blocks.append(b'x' * 64 * 2**20)\n",
        timeout=300,
    )
    assert result["status"] == "died", result
    assert server.is_running(), "the student's server died with its kernel"
    ok = hub.run_code(student, "print(sum(range(10)))", timeout=300)
    assert (ok["status"], ok["stdout"].strip()) == ("ok", "45"), ok
    assert hub.mlflow_call(student, "GET", "experiments/search", params={"max_results": 1}).status_code == 200


def test_an_idle_server_is_stopped_and_its_cgroup_removed(small_class):
    hub, _ = small_class
    student = hub.users["p"]
    assert hub.api(student, "GET", f"/hub/api/users/{student}").json()["servers"], "the server should still run"
    (server,) = [p for p in hub.server_processes(student) if "jupyterhub-singleuser" in " ".join(p.cmdline())]
    cgroup = _memory_cgroup(server.pid)
    # a process the student left running in a session of its own (as a lesson's model server is) goes with the server
    left = hub.run_code(
        student,
        "import subprocess\nprint(subprocess.Popen(['sleep', '3600'], start_new_session=True).pid)",
        timeout=300,
    )
    assert left["status"] == "ok", left
    orphan = int(left["stdout"].split()[-1])
    assert psutil.pid_exists(orphan)
    idle_from = time.monotonic()
    wait_until(
        lambda: not hub.api(student, "GET", f"/hub/api/users/{student}").json()["servers"],
        SMALL_CLASS_IDLE * 5,
        "the idle culler to stop the server",
        interval=5,
    )
    stopped_after = time.monotonic() - idle_from
    print(f"\nidle server stopped {stopped_after:.0f} s after its last use (timeout {SMALL_CLASS_IDLE} s)")
    assert f"Culling server {student} " in hub.log_text()  # jupyterhub-idle-culler's own line, not a crash
    wait_until(lambda: not cgroup.exists(), 60, f"{cgroup} to be removed")
    assert not psutil.pid_exists(orphan) or psutil.Process(orphan).status() == psutil.STATUS_ZOMBIE
    # the student logs in again and gets a new server, their files kept
    hub.spawn(student, timeout=600)
    assert (hub.home(student) / "lessons" / "01_experiment_tracking.ipynb").exists()
    hub.stop_server(student)
