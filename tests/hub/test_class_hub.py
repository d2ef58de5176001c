"""The class on one machine, tested as its people use it: students and an instructor with real Linux accounts behind
the JupyterHub of ``deploy/``, nbgrader's shared exchange, grading on submit, and one MLflow server for everyone.

Order matters within the module (one hub for all): student *a* submits first, then the isolation tests look at
what *a* left behind as student *b*; the class of ``CLASS_SIZE`` runs last.
"""

from __future__ import annotations

import json
import os
import re
import stat
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from classhub import BIN, CLASS_SIZE, COURSE, LESSON_CONCURRENCY, ROOT, at_once, submit_answers, wait_until

from practice_answers import source_answers

ASSIGNMENT = "practice_questions"


def _page_text(source: str) -> str:
    text = re.sub(r"(?s)<(script|style)\b.*?</\1>", "", source)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\s+", " ", text)


# --- set-up as an instructor runs it --------------------------------------------------------------------------


def test_accounts_need_root_and_say_so(class_hub):
    """The accounts command run by a student (any non-root user) refuses, naming the reason and the fallback."""
    # (as a script: the checkout's root is closed to listing, so ``-m deploy.accounts`` finds no package there)
    proc = class_hub.as_user(
        class_hub.users["b"],
        str(BIN / "python"),
        str(ROOT / "deploy" / "accounts.py"),
        "create",
        "--roster",
        str(ROOT / "deploy" / "roster.csv"),
        "--state",
        "/tmp/not-made",
    )
    assert proc.returncode == 2, proc.stderr
    assert "must run as root" in proc.stderr and "make lab" in proc.stderr
    assert not os.path.exists("/tmp/not-made")


def test_prepare_made_private_homes_the_exchange_and_released_the_assignments(class_hub):
    hub = class_hub
    for user in [hub.instructor, *hub.students]:
        st = os.stat(hub.home(user))
        assert st.st_uid == hub.uid(user) and stat.S_IMODE(st.st_mode) == 0o700, user
    assert stat.S_IMODE(os.stat(hub.state / "exchange").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(hub.state / "credentials.json").st_mode) == 0o600
    for assignment in ("practice_questions", "fix_the_pipeline"):
        outbound = hub.state / "exchange" / COURSE / "outbound" / assignment
        assert outbound.is_dir() and outbound.stat().st_uid == hub.uid(hub.instructor)
    course = hub.home(hub.instructor) / COURSE
    assert (course / "gradebook.db").stat().st_uid == hub.uid(hub.instructor)
    home = hub.home(hub.users["a"])
    assert sorted(p.name for p in (home / "lessons").glob("*.ipynb")) == sorted(
        p.name for p in (ROOT / "notebooks").glob("*.ipynb")
    )
    # what lessons 02 and 06 use from the folder around the lessons: the MLflow Project, the model gate's test, the
    # CI workflow
    for name in ("MLproject", "python_env.yaml", "tests/test_model_gate.py", ".github/workflows/test.yml"):
        assert (home / name).read_bytes() == (ROOT / name).read_bytes(), name
        assert (home / name).stat().st_uid == hub.uid(hub.users["a"])


# --- (b) a student through the hub's REST API -----------------------------------------------------------------


def test_a_student_spawns_fetches_submits_and_gets_graded_feedback_in_seconds(class_hub):
    hub, a = class_hub, class_hub.users["a"]
    seconds = hub.spawn(a)
    print(f"\n{a}'s server ready {seconds:.1f} s after the spawn request")
    servers = [p for p in hub.server_processes(a) if "jupyterhub-singleuser" in " ".join(p.cmdline())]
    assert servers, "no jupyterhub-singleuser process runs as the student"
    assert all(p.uids().real == p.uids().effective == hub.uid(a) for p in servers)
    env = servers[0].environ()
    assert env["MLFLOW_TRACKING_URI"] == hub.mlflow and env["MLFLOW_TRACKING_USERNAME"] == a
    assert env["JUPYTERHUB_USER"] == a

    listed = hub.api(a, "GET", f"/user/{a}/assignments", params={"course_id": COURSE})
    assert listed.status_code == 200
    assert {x["assignment_id"] for x in listed.json()["value"]} >= {"practice_questions", "fix_the_pipeline"}
    submitted_at = time.monotonic()
    submit_answers(hub, a)  # fetch, answer every question right, save, submit: all through a's server
    path = f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
    assert (hub.home(a) / path).stat().st_uid == hub.uid(a)  # the working copy is the student's
    _, points = source_answers(hub.home(hub.instructor) / COURSE)

    def feedback_pages():
        r = hub.api(
            a, "POST", f"/user/{a}/assignments/fetch_feedback", data={"course_id": COURSE, "assignment_id": ASSIGNMENT}
        )
        assert r.status_code == 200
        return sorted((hub.home(a) / ASSIGNMENT / "feedback").glob("*/*.html"))

    pages = wait_until(feedback_pages, 300, "the grading service's feedback", interval=2)
    latency = time.monotonic() - submitted_at
    print(f"fetch, answer, submit -> feedback fetched: {latency:.1f} s")
    text = _page_text(pages[-1].read_text())
    total = sum(points.values())
    assert f"This attempt: {total:g} / {total:g}" in text, text[:2000]
    assert pages[-1].stat().st_uid == hub.uid(a)  # fetched by the student's own server, as the student
    # the gradebook (the instructor's) holds the score that counts, written by the grading service
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{hub.home(hub.instructor) / COURSE / 'gradebook.db'}") as gb:
        assert gb.find_submission(ASSIGNMENT, a).score == total


# --- (a) isolation, as student b's own processes --------------------------------------------------------------


def test_a_student_cannot_read_another_students_work_or_the_course(class_hub):
    hub, a, b = class_hub, class_hub.users["a"], class_hub.users["b"]
    instructor_course = hub.home(hub.instructor) / COURSE
    inbound = hub.state / "exchange" / COURSE / "inbound"
    submissions = sorted(p for p in inbound.iterdir() if p.name.startswith(f"{a}+"))
    assert submissions, "student a has no submission in the exchange (the submit test runs first)"
    targets = {
        "a's home": f"ls {hub.home(a)}",
        "a's working copy": f"cat {hub.home(a)}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
        "a's lessons": f"cat {hub.home(a)}/lessons/01_experiment_tracking.ipynb",
        "the exchange's inbound listing": f"ls {inbound}",
        # nbgrader names a submission <student>+<assignment>+<time>+<random>: b cannot list inbound/ to learn it
        # (the files inside are world-readable by nbgrader's design, for an instructor who is not root)
        "a's submission": f"cat {inbound}/{a}+{ASSIGNMENT}+*/{ASSIGNMENT}.ipynb",
        "the instructor's course directory": f"ls {instructor_course}",
        "the course's source (instructor)": f"cat {instructor_course}/source/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
        "the gradebook": f"cat {instructor_course}/gradebook.db",
        "the checkout's source/": f"cat {ROOT}/source/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
        "the checkout's answer key": f"cat {ROOT}/autograder/question_bank.yaml",
        "the checkout's tests": f"ls {ROOT}/tests",
        "the checkout's history": f"ls {ROOT}/.git",
        "the class's credentials": f"cat {hub.state}/credentials.json",
        "the MLflow store": f"ls {hub.state}/mlflow",
        "a's server environment": "cat " + " ".join(f"/proc/{p.pid}/environ" for p in hub.server_processes(a)[:3])
        if hub.server_processes(a)
        else "false",
    }
    for what, command in targets.items():
        proc = hub.as_user(b, "sh", "-c", command)
        assert proc.returncode != 0, f"student b could read {what}: {proc.stdout[:300]}"
        assert "Permission denied" in proc.stderr or "No such file" in proc.stderr, (what, proc.stderr)
    # what b needs still works: the virtualenv, the course package, the released assignments
    proc = hub.as_user(b, str(BIN / "python"), "-c", "import mlops_helpers.tracking, mlflow; print('ok')")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    proc = hub.as_user(b, "ls", str(hub.state / "exchange" / COURSE / "outbound" / ASSIGNMENT))
    assert proc.returncode == 0 and f"{ASSIGNMENT}.ipynb" in proc.stdout


def test_a_student_cannot_use_another_students_server(class_hub):
    hub, a, b = class_hub, class_hub.users["a"], class_hub.users["b"]
    assert hub.api(a, "GET", f"/hub/api/users/{a}").json()["servers"], "a's server should be running"
    # through the hub, with b's own token
    for path in (f"/user/{a}/api/contents", f"/user/{a}/api/kernels"):
        r = hub.api(b, "GET", path, allow_redirects=False)
        assert r.status_code in (302, 403, 404), (path, r.status_code)
        assert r.status_code != 200
    # the hub answers 404 for a user b may not see (it does not even confirm that a exists)
    r = hub.api(b, "POST", f"/hub/api/users/{a}/server")
    assert r.status_code in (403, 404), r.status_code
    r = hub.api(b, "POST", f"/hub/api/users/{a}/tokens", json={"note": "steal"})
    assert r.status_code in (403, 404), r.status_code
    # straight to a's server port, bypassing the proxy
    port = hub.api(a, "GET", f"/hub/api/users/{a}").json()["servers"][""]["url"]
    routes = [p for p in hub.server_processes(a) if "jupyterhub-singleuser" in " ".join(p.cmdline())]
    listening = {c.laddr.port for p in routes for c in p.net_connections(kind="tcp") if c.status == "LISTEN"}
    assert listening, port
    import requests

    for server_port in listening:
        r = requests.get(
            f"http://127.0.0.1:{server_port}/user/{a}/api/contents",
            headers={"Authorization": f"token {hub.token(b)}"},
            timeout=30,
            allow_redirects=False,
        )
        assert r.status_code in (302, 403), r.status_code


def test_a_student_cannot_change_another_students_runs_models_or_aliases(class_hub):
    """MLflow's basic-auth app: everyone reads the class's runs; only their creator changes them (HTTP 403)."""
    hub, a, b = class_hub, class_hub.users["a"], class_hub.users["b"]
    assert hub.mlflow_call(None, "GET", "experiments/search", params={"max_results": 5}).status_code == 401
    exp = hub.mlflow_call(a, "POST", "experiments/create", json={"name": f"{a}-isolation"})
    assert exp.status_code == 200, exp.text
    experiment_id = exp.json()["experiment_id"]
    run = hub.mlflow_call(a, "POST", "runs/create", json={"experiment_id": experiment_id})
    assert run.status_code == 200, run.text
    run_id = run.json()["run"]["info"]["run_id"]
    model = f"{a}-iris-classifier-isolation"
    assert hub.mlflow_call(a, "POST", "registered-models/create", json={"name": model}).status_code == 200
    version = hub.mlflow_call(
        a, "POST", "model-versions/create", json={"name": model, "source": f"runs:/{run_id}/model", "run_id": run_id}
    )
    assert version.status_code == 200, version.text
    alias = {"name": model, "alias": "champion", "version": version.json()["model_version"]["version"]}
    assert hub.mlflow_call(a, "POST", "registered-models/alias", json=alias).status_code == 200

    # b reads them ...
    assert hub.mlflow_call(b, "GET", "runs/get", params={"run_id": run_id}).status_code == 200
    assert (
        hub.mlflow_call(b, "GET", "registered-models/alias", params={"name": model, "alias": "champion"}).status_code
        == 200
    )
    # ... and cannot change any of them
    forbidden = [
        ("POST", "runs/delete", {"run_id": run_id}),
        ("POST", "runs/log-metric", {"run_id": run_id, "key": "accuracy", "value": 1.0, "timestamp": 0}),
        ("POST", "registered-models/alias", {**alias, "version": alias["version"]}),
        ("DELETE", "registered-models/alias", {"name": model, "alias": "champion"}),
        ("DELETE", "registered-models/delete", {"name": model}),
        ("POST", "experiments/delete", {"experiment_id": experiment_id}),
    ]
    for method, endpoint, body in forbidden:
        r = hub.mlflow_call(b, method, endpoint, json=body)
        assert r.status_code == 403, (endpoint, r.status_code, r.text[:200])
    # and a's things are untouched
    got = hub.mlflow_call(a, "GET", "runs/get", params={"run_id": run_id}).json()["run"]
    assert got["info"]["lifecycle_stage"] == "active" and not got["data"].get("metrics")
    # b creates their own and may change that
    own = hub.mlflow_call(b, "POST", "experiments/create", json={"name": f"{b}-isolation"})
    assert own.status_code == 200
    assert (
        hub.mlflow_call(
            b, "POST", "experiments/delete", json={"experiment_id": own.json()["experiment_id"]}
        ).status_code
        == 200
    )


# --- (d) two students run lessons 02-06 at the same time: the lessons that start servers on the course's fixed
# ports (04's model server 5001, 03's UI 5002, 06's smoke test 5003) get each student's own ports on a shared
# machine, and the names they register (03's iris-classifier, 05's iris-monitored) are each student's own ----------

LESSONS = sorted(p.name for p in (ROOT / "notebooks").glob("0[2-6]_*.ipynb"))


@pytest.mark.timeout(3600)
def test_two_students_run_lessons_02_to_06_at_the_same_time(class_hub):
    from mlops_helpers.ports import class_port

    hub, pair = class_hub, [class_hub.users["a"], class_hub.users["b"]]
    for user in pair:
        if not hub.api(user, "GET", f"/hub/api/users/{user}").json()["servers"]:
            hub.spawn(user, timeout=600)
    results: dict[str, dict[str, list[dict]]] = {user: {} for user in pair}
    errors: list[str] = []

    def lessons(user):
        try:
            for name in LESSONS:
                started = time.monotonic()
                results[user][name] = hub.run_notebook(user, f"lessons/{name}", timeout=1500)
                print(f"\n{user} {name}: {time.monotonic() - started:.0f} s", flush=True)
                if results[user][name][-1]["status"] != "ok":
                    return
        except Exception as exc:  # reported below, with the other student's failures
            errors.append(f"{user}: {exc!r}")

    at_once(lessons, pair)
    assert not errors, errors
    for user in pair:
        uid = hub.uid(user)
        own = {plan: class_port(plan, uid=uid, environ={"JUPYTERHUB_USER": user}) for plan in (5001, 5002, 5003)}
        assert len(set(own.values())) == 3 and not set(own.values()) & {5001, 5002, 5003}
        for name in LESSONS:
            cells = results[user].get(name)
            assert cells, (user, name, "not run")
            failed = [c for c in cells if c["status"] != "ok"]
            assert not failed, (user, name, failed[0]["error"], failed[0]["stderr"][-3000:])
        printed = {name: "".join(c["stdout"] for c in cells) for name, cells in results[user].items()}
        # the servers ran on the student's own ports, and the lessons said so
        assert f"your own ports are port = {own[5001]} (not 5001)" in printed["04_serving.ipynb"], user
        assert f"at http://127.0.0.1:{own[5001]}" in printed["04_serving.ipynb"], user
        assert f"port = {own[5003]} (not 5003)" in printed["06_automation.ipynb"], user
        # lesson 03's UI on a shared server is that server (nothing started on a port), reading the student's model
        assert f"the tracking server {hub.mlflow} serves the UI itself" in printed["03_model_versions.ipynb"], user
        assert "the UI's server sees these aliases:" in printed["03_model_versions.ipynb"], user
        # what the lessons registered is the student's own, with its aliases
        for model in (f"{user}-iris-classifier", f"{user}-iris-monitored"):
            got = hub.mlflow_call(user, "GET", "registered-models/get", params={"name": model})
            assert got.status_code == 200, (model, got.text[:300])
            assert any(a["alias"] == "champion" for a in got.json()["registered_model"].get("aliases", [])), model
    # nobody registered the lessons' plain names on the shared server
    for model in ("iris-classifier", "iris-monitored"):
        assert hub.mlflow_call(pair[0], "GET", "registered-models/get", params={"name": model}).status_code == 404


# --- (e) a class: CLASS_SIZE students spawned at once, each running lesson 01 (every code cell, in order, in a
# kernel of their own server, as Run All Cells does; at most LESSON_CONCURRENCY at a moment) against the shared
# tracking server, then all submitting the practice questions at once to the grading service ---------------------

LESSON = "lessons/01_experiment_tracking.ipynb"


@pytest.mark.timeout(3600)  # a class of 30 took 9 min here; a slower CI machine must not hit the 20-min default
def test_a_class_runs_lesson_01_and_is_graded_on_submit(class_hub):
    hub = class_hub
    students = [name for role, name in hub.users.items() if role.startswith("s")]
    assert len(students) == CLASS_SIZE
    lesson = nbformat.read(str(ROOT / "notebooks" / Path(LESSON).name), as_version=4)
    expected_cells = sum(c.cell_type == "code" for c in lesson.cells)

    spawn_seconds: dict[str, float] = {}
    errors: list[str] = []

    def spawn(user):
        try:
            spawn_seconds[user] = hub.spawn(user, timeout=900)
        except Exception as exc:  # reported below, with every other failure
            errors.append(f"{user}: spawn: {exc}")

    at_once(spawn, students)
    assert not errors, errors
    time.sleep(5)
    idle_mb = {u: hub.memory_mb(u) for u in students}
    cpu_before = {u: hub.cpu_seconds(u) for u in students}

    peaks = dict.fromkeys(students, 0.0)
    results: dict[str, dict] = {}
    done = threading.Event()
    turns = threading.Semaphore(LESSON_CONCURRENCY)
    machine_peak_mb = [0.0]

    def sample():
        import psutil

        while not done.is_set():
            for u in students:
                peaks[u] = max(peaks[u], hub.memory_mb(u))
            machine_peak_mb[0] = max(machine_peak_mb[0], psutil.virtual_memory().used / 2**20)
            done.wait(1.0)

    def lesson(user):
        with turns:
            try:
                results[user] = hub.run_notebook(user, LESSON, timeout=1500)
            except Exception as exc:
                errors.append(f"{user}: lesson 01: {exc}")

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    at_once(lesson, students)
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    assert not errors, errors
    cpu = [hub.cpu_seconds(u) - cpu_before[u] for u in students]

    for user in students:
        cells = results[user]
        failed = [c for c in cells if c["status"] != "ok"]
        assert not failed, (user, failed[0]["error"], failed[0]["stderr"][-2000:])
        assert len(cells) == expected_cells
        printed = "".join(c["stdout"] for c in cells)
        assert f"your own names are experiment_name = '{user}-01-experiment-tracking'" in printed, user
        # the runs are in the student's own experiment, read back with the student's credentials
        found = hub.mlflow_call(
            user, "GET", "experiments/get-by-name", params={"experiment_name": f"{user}-01-experiment-tracking"}
        )
        assert found.status_code == 200, (user, found.text)
        runs = hub.mlflow_call(
            user, "POST", "runs/search", json={"experiment_ids": [found.json()["experiment"]["experiment_id"]]}
        ).json()
        assert len(runs.get("runs", [])) >= 3, (user, runs)  # the seed's run and the C sweep at least
    # nobody logged into the lesson's plain experiment name on the shared server
    plain = hub.mlflow_call(
        students[0], "GET", "experiments/get-by-name", params={"experiment_name": "01-experiment-tracking"}
    )
    assert plain.status_code == 404

    # the whole class submits the practice questions at once, student i answering the first i % 11 right
    _, points = source_answers(hub.home(hub.instructor) / COURSE)
    total = sum(points.values())
    expected: dict[str, float] = {}
    right: dict[str, set[str]] = {}
    for i, user in enumerate(students):
        questions = [f"q{n}" for n in range(1, 11)][: i % 11]
        right[user] = {f"{q}_answer" for q in questions}
        expected[user] = sum(points[f"{q}_check"] for q in questions)

    def submit(user):
        try:
            submit_answers(hub, user, right=right[user])
        except Exception as exc:
            errors.append(f"{user}: submit: {exc!r}")

    submitted_at = time.monotonic()
    at_once(submit, students)
    assert not errors, errors
    served: dict[str, float] = {}

    def all_feedback():
        for user in students:
            if user in served:
                continue
            r = hub.api(
                user,
                "POST",
                f"/user/{user}/assignments/fetch_feedback",
                data={"course_id": COURSE, "assignment_id": ASSIGNMENT},
            )
            if r.status_code == 200 and list((hub.home(user) / ASSIGNMENT / "feedback").glob("*/*.html")):
                served[user] = time.monotonic() - submitted_at
        return len(served) == len(students)

    wait_until(all_feedback, 900, f"feedback for all {len(students)} students", interval=3)
    for user in students:
        (page,) = sorted((hub.home(user) / ASSIGNMENT / "feedback").glob("*/*.html"))  # one attempt, one page
        text = _page_text(page.read_text())
        assert f"This attempt: {expected[user]:g} / {total:g}" in text, (user, text[:1500])
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{hub.home(hub.instructor) / COURSE / 'gradebook.db'}") as gb:
        for user in students:
            assert gb.find_submission(ASSIGNMENT, user).score == expected[user], user
    # nothing lost, nothing graded twice: one graded attempt per student in the service's ledger, feedback released
    ledger = json.loads((hub.home(hub.instructor) / COURSE / ".autograder" / "attempts.json").read_text())
    for user in students:
        mine = [a for a in ledger["attempts"] if a["student"] == user and a["assignment"] == ASSIGNMENT]
        assert len(mine) == 1, (user, mine)
        assert (mine[0]["state"], mine[0]["status"], mine[0]["feedback"]) == ("graded", "ok", "released"), mine
        assert mine[0]["score"] == expected[user], mine

    spawns = sorted(spawn_seconds.values())
    latencies = sorted(served.values())

    def p95(values):
        return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]

    figures = {
        "students": CLASS_SIZE,
        "spawn_s_p50": statistics.median(spawns),
        "spawn_s_p95": p95(spawns),
        "idle_server_mb_mean": statistics.mean(idle_mb.values()),
        "lesson01_peak_mb_mean": statistics.mean(peaks.values()),
        "lesson01_peak_mb_max": max(peaks.values()),
        "lesson01_at_once": min(LESSON_CONCURRENCY, CLASS_SIZE),
        "lesson01_wall_s_whole_class": wall,
        "lesson01_cpu_s_per_student": statistics.mean(cpu),
        "machine_used_mb_peak": machine_peak_mb[0],
        "hub_and_services_mb": hub.services_memory_mb(),
        "submit_to_feedback_s_p50": statistics.median(latencies),
        "submit_to_feedback_s_p95": p95(latencies),
        "submit_to_feedback_s_last": latencies[-1],
    }
    print("\nclass figures:", json.dumps({k: round(v, 1) for k, v in figures.items()}))
    out = ROOT / "build" / "hub"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"class_{CLASS_SIZE}.json").write_text(json.dumps(figures, indent=1))


def test_servers_stop_through_the_api(class_hub):
    hub = class_hub
    for user in [class_hub.users["a"]] + [n for r, n in hub.users.items() if r.startswith("s")]:
        if hub.api(user, "GET", f"/hub/api/users/{user}").json()["servers"]:
            hub.stop_server(user)
        assert not [p for p in hub.server_processes(user) if "jupyterhub-singleuser" in " ".join(p.cmdline())]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", __file__, "-s"]))
