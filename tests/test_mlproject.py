"""The seed's `mlflow run .` at the repository root, for real: a subprocess, offline (--env-manager local)."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from mlops_helpers.data import split_iris

ROOT = Path(__file__).resolve().parents[1]


def mlflow_run(tracking_uri, experiment_name, *params):
    """`mlflow run . --env-manager local --experiment-name NAME -P ...` in the repository root; the tracking store
    reaches it only through MLFLOW_TRACKING_URI, as in a terminal."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "run",
        ".",
        "--env-manager",
        "local",
        "--experiment-name",
        experiment_name,
    ]
    for param in params:
        command += ["-P", param]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture
def experiment(tracking_uri, tmp_path):
    """An experiment whose artifacts go to the test's folder (created by `mlflow run`, they would go to ./mlruns)."""
    mlflow.set_tracking_uri(tracking_uri)
    name = "mlproject-test"
    MlflowClient().create_experiment(name, artifact_location=(tmp_path / "artifacts").as_uri())
    return name


def test_project_files_declare_the_entry_point_and_environment():
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    assert project["python_env"] == "python_env.yaml"
    main = project["entry_points"]["main"]
    assert set(main["parameters"]) == {"max_iter", "C", "random_state"}
    assert all("default" in p for p in main["parameters"].values())  # `mlflow run .` works with no -P
    assert main["command"].startswith("python -m mlops_helpers.train ")
    env = yaml.safe_load((ROOT / "python_env.yaml").read_text())
    assert env["python"] == "3.11"
    locked = dict(
        line.split(";")[0].strip().split("==")  # "name==version ; marker"
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    )
    for requirement in env["dependencies"]:
        name, pinned = requirement.split("==")
        assert locked[name] == pinned, f"python_env.yaml pins {requirement}, requirements.lock has {locked[name]}"


@pytest.mark.full  # a real `mlflow run`, slow: make test keeps its budget, CI runs it
def test_mlflow_run_at_the_root_logs_a_finished_run_with_the_params(tracking_uri, experiment):
    done = mlflow_run(tracking_uri, experiment, "max_iter=150", "C=0.5")
    assert done.returncode == 0, done.stderr
    assert "succeeded ===" in done.stderr
    runs = MlflowClient().search_runs([MlflowClient().get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert {k: run.data.params[k] for k in ("max_iter", "C", "random_state")} == {
        "max_iter": "150",
        "C": "0.5",
        "random_state": "42",  # -P values as typed, the default for the rest
    }
    split = split_iris(42)
    expected = LogisticRegression(max_iter=150, C=0.5, random_state=42).fit(split.X_train, split.y_train)
    assert run.data.metrics["accuracy"] == pytest.approx(expected.score(split.X_test, split.y_test))
    assert run.data.tags["mlflow.project.entryPoint"] == "main"
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert (model.predict(split.X_test) == expected.predict(split.X_test)).all()


@pytest.mark.full  # another `mlflow run`; the same refusal is tested in-process in test_train.py
def test_bad_parameter_fails_with_the_entry_points_message(tracking_uri, experiment):
    done = mlflow_run(tracking_uri, experiment, "max_iter=ten")
    assert done.returncode != 0
    assert (
        "mlops_helpers.train: error: argument --max-iter: must be a whole number greater than 0, got 'ten'"
        in done.stderr
    )
    (run,) = MlflowClient().search_runs([MlflowClient().get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FAILED"
    assert "accuracy" not in run.data.metrics  # refused before training: nothing half-logged
