"""Class scale on PostgreSQL: a shared ``mlflow server`` the lessons log to, and the nbgrader gradebook.

A throwaway PostgreSQL cluster (tests/pg.py) is started on a free port for this module and removed afterwards.

1. A real ``mlflow server --backend-store-uri postgresql://... --artifacts-destination <dir>``: lessons 01 (runs,
   metrics, models) and 03 (registered model, aliases) executed by papermill with ``tracking_uri`` pointing at it,
   everything read back through ``MlflowClient`` -- and found in PostgreSQL's tables and the artifact folder, not in
   a stray ``mlflow.db``. A second server on the same database (how a class scales it out) sees the same runs.
2. The gradebook on PostgreSQL (``c.CourseDirectory.db_url``) with the parallel grader: two ``python -m autograder
   grade ... --workers 2`` commands running at the same time on one gradebook (two TAs, or two grading hosts:
   the concurrent writers for which nbgrader advises a server database over sqlite), scores read from PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import practice_answers
from pg import PostgresCluster, TrackingServer, pg_bindir

pytestmark = [pytest.mark.full, pytest.mark.postgres, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def postgres():
    pg_bindir()  # a clear error naming the package when PostgreSQL is not installed
    with PostgresCluster() as cluster:
        pid = cluster.postmaster_pid()
        yield cluster
    assert not _alive(pid), "the PostgreSQL server outlived its fixture"
    assert not cluster.base.exists(), "the cluster's folder was not removed"


def _alive(pid) -> bool:
    import psutil

    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def tracking_server(postgres, tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("artifact-store")
    url = postgres.create_database("mlflow")
    with TrackingServer(url, artifacts) as server:
        yield server
    assert not server.running


@pytest.fixture
def client_of(monkeypatch):
    """``client_of(url)``: an MlflowClient on ``url``, with MLflow's global tracking/registry URI pointing there too
    (``mlflow.pyfunc.load_model("models:/...")`` reads the globals); reset afterwards."""
    import mlflow
    from mlflow import MlflowClient

    def make(url: str) -> MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        mlflow.set_tracking_uri(url)
        mlflow.set_registry_uri(url)
        return MlflowClient(url, url)

    yield make
    from mlflow_state import reset_mlflow_globals

    reset_mlflow_globals()


# --------------------------------------------------------------------------------------------- 1. tracking server
def test_lessons_log_to_a_shared_tracking_server_on_postgres(postgres, tracking_server, tmp_path, client_of):
    from mlflow.entities import ViewType
    from sklearn.linear_model import LogisticRegression

    from mlops_helpers.data import split_iris_validation
    from mlops_helpers.notebooks import execute

    url = tracking_server.url
    work = tmp_path / "student"  # the lessons' working folder: a sqlite fallback would appear here
    work.mkdir()
    sweep = [0.01, 0.1, 1.0]
    execute(
        NOTEBOOKS / "01_experiment_tracking.ipynb",
        tmp_path / "out" / "01.ipynb",
        {"tracking_uri": url, "experiment_name": "class-01", "C_values": sweep},
        cwd=work,
    )
    execute(
        NOTEBOOKS / "03_model_versions.ipynb",
        tmp_path / "out" / "03.ipynb",
        {"tracking_uri": url, "experiment_name": "class-03", "start_ui": False},
        cwd=work,
    )
    assert not list(work.rglob("mlflow.db")) and not (work / "mlruns").exists(), (
        "a lesson wrote a local store instead of the server"
    )

    client = client_of(url)
    # Runs and metrics of lesson 01, read back through the server.
    experiment = client.get_experiment_by_name("class-01")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=100)
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    swept = {float(r.data.params["C"]): r for r in runs if r.data.tags.get("sweep") == "C"}
    assert sorted(swept) == sweep
    split = split_iris_validation(42)
    for C, run in swept.items():
        # The metric the server stored is the model's real validation accuracy (recomputed here, not typed in):
        # the sweep chooses C on validation rows and never logs a test score for a candidate.
        expected = (
            LogisticRegression(C=C, max_iter=int(run.data.params["max_iter"]), random_state=42)
            .fit(split.X_train, split.y_train)
            .score(split.X_val, split.y_val)
        )
        assert run.data.metrics["val_accuracy"] == pytest.approx(expected)
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.value for m in history] == [pytest.approx(expected)]
    # Only the chosen run got the final check on the test rows, once.
    checked = [r for r in swept.values() if "test_accuracy" in r.data.metrics]
    assert len(checked) == 1, [r.data.metrics for r in swept.values()]

    # The registered model and aliases of lesson 03; the champion loads through the server and predicts.
    import mlflow

    champion = client.get_model_version_by_alias("iris-classifier", "champion")
    challenger = client.get_model_version_by_alias("iris-classifier", "challenger")
    assert champion.version != challenger.version
    assert {v.version for v in client.search_model_versions("name='iris-classifier'")} >= {
        champion.version,
        challenger.version,
    }
    model = mlflow.pyfunc.load_model("models:/iris-classifier@champion")
    assert (model.predict(split.X_test) == split.y_test).mean() >= 0.9
    assert (
        client.get_run(challenger.run_id).data.metrics["val_accuracy"]
        < (model.predict(split.X_val) == split.y_val).mean()
    )

    # It really is PostgreSQL and the artifact destination that hold it all.
    finished = postgres.query(
        "mlflow",
        "SELECT count(*) FROM runs r JOIN experiments e "
        "ON r.experiment_id = e.experiment_id WHERE e.name = %s "
        "AND r.status = 'FINISHED'",
        ("class-01",),
    )[0][0]
    assert finished == len(runs)
    stored_versions = postgres.query(
        "mlflow", "SELECT count(*) FROM model_versions WHERE name = %s", ("iris-classifier",)
    )[0][0]
    assert stored_versions >= 2
    mlmodels = list(Path(tracking_server.artifacts_destination).rglob("MLmodel"))
    assert len(mlmodels) >= len(runs), "the models were not proxied into --artifacts-destination"

    # A second server on the same database (scaling out) serves the same runs: the server holds no state.
    with TrackingServer(tracking_server.backend_store_uri, tracking_server.artifacts_destination) as second:
        other = client_of(second.url)
        again = other.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=100)
        assert {r.info.run_id for r in again} == {r.info.run_id for r in runs}
        assert other.get_model_version_by_alias("iris-classifier", "champion").version == champion.version
    assert not second.running


def test_a_lesson_pointed_at_a_stopped_server_fails_at_once_naming_it(tmp_path):
    """A student with a wrong tracking_uri gets the lesson's clear message in the first cell that uses it,
    not minutes of retries (nothing listens on the port: it was just free)."""
    from mlops_helpers.exceptions import NotebookExecutionError
    from mlops_helpers.notebooks import execute
    from mlops_helpers.serving import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NotebookExecutionError) as failure:
        execute(
            NOTEBOOKS / "01_experiment_tracking.ipynb",
            tmp_path / "out.ipynb",
            {"tracking_uri": url},
            cwd=tmp_path,
            timeout=300,
        )
    assert failure.value.ename == "TrackingError"
    assert url in str(failure.value.evalue)


# --------------------------------------------------------------------------------------------- 2. gradebook
ASSIGNMENT = practice_answers.ASSIGNMENT


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


@pytest.mark.sandbox  # the graders run sandboxed
def test_gradebook_on_postgres_with_concurrent_parallel_graders(postgres, tmp_path):
    from nbgrader.api import Gradebook

    from autograder.course import copy_course

    root = copy_course(ROOT, tmp_path / "course")
    db_url = postgres.create_database("gradebook")
    with open(root / "nbgrader_config.py", "a") as fh:
        fh.write(
            f"\n# class scale: the gradebook on PostgreSQL (docs/deploy.md)\nc.CourseDirectory.db_url = {db_url!r}\n"
        )
    released = subprocess.run(
        [sys.executable, "-m", "autograder", "release", ASSIGNMENT, "--no-exchange"],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert released.returncode == 0, released.stderr[-3000:]
    assert not (root / "gradebook.db").exists(), "nbgrader ignored db_url and made a sqlite gradebook"

    answers, points = practice_answers.source_answers(root)
    check_of = {a: a.replace("_answer", "_check") for a in answers}
    assert set(check_of.values()) == set(points), "every answer cell should have its check cell"
    half = set(sorted(answers)[: len(answers) // 2])
    plans = {  # student -> answer cells answered right (the others wrong)
        "ada": set(answers),
        "bob": half,
        "cy": set(answers) - half,
        "dee": set(),
    }
    for student, right in plans.items():
        nb = practice_answers.answered(root, right)
        practice_answers.write(nb, root / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    expected = {s: sum(points[check_of[a]] for a in right) for s, right in plans.items()}
    assert len(set(expected.values())) == len(expected), "the plans should give distinguishable scores"

    # Two graders at once on the same PostgreSQL gradebook, each with two local workers.
    groups = [["ada", "cy"], ["bob", "dee"]]
    graders = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "autograder",
                "grade",
                ASSIGNMENT,
                "--workers",
                "2",
                "--json",
                *[arg for s in group for arg in ("--student", s)],
            ],
            cwd=root,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for group in groups
    ]
    outputs = []
    try:
        for grader in graders:
            out, err = grader.communicate(timeout=1500)
            outputs.append((grader.returncode, out, err))
    finally:
        for grader in graders:
            if grader.poll() is None:
                grader.kill()
                grader.wait()
    reported = {}
    for code, out, err in outputs:
        assert code == 0, err[-3000:]
        for entry in json.loads(out):
            reported[entry["student_id"]] = entry
    assert {s: r["status"] for s, r in reported.items()} == dict.fromkeys(plans, "ok")
    assert {s: r["score"] for s, r in reported.items()} == pytest.approx(expected)

    # The scores nbgrader's gradebook API reads from PostgreSQL, and the same rows seen with plain SQL.
    with Gradebook(db_url) as gb:
        stored = {sub.student_id: sub.score for sub in gb.find_assignment(ASSIGNMENT).submissions}
        assert gb.find_assignment(ASSIGNMENT).max_score == sum(points.values())
    assert stored == pytest.approx(expected)
    rows = postgres.query("gradebook", "SELECT count(*) FROM submitted_assignment")[0][0]
    assert rows == len(plans)
    assert not (root / "gradebook.db").exists()
