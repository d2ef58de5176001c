"""mlops_helpers.train, the MLproject's entry point, called in-process (the real `mlflow run` is in test_mlproject)."""

import argparse

import mlflow
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from mlops_helpers import tracking, train
from mlops_helpers.data import split_iris


def expected_accuracy(max_iter, C, random_state):
    split = split_iris(random_state)
    model = LogisticRegression(max_iter=max_iter, C=C, random_state=random_state).fit(split.X_train, split.y_train)
    return model.score(split.X_test, split.y_test)


@pytest.mark.parametrize("text, value", [("1", 1), ("200", 200)])
def test_positive_int_accepts_whole_numbers(text, value):
    assert train.positive_int(text) == value


@pytest.mark.parametrize("text", ["0", "-5", "2.5", "ten", ""])
def test_positive_int_refuses_the_rest(text):
    with pytest.raises(argparse.ArgumentTypeError, match="whole number greater than 0"):
        train.positive_int(text)


def test_random_state_may_be_zero_but_not_negative():
    assert train.non_negative_int("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match="0 or greater"):
        train.non_negative_int("-1")


@pytest.mark.parametrize("text, value, kind", [("1", 1, int), ("0.5", 0.5, float), ("1e-2", 0.01, float)])
def test_positive_number_keeps_ints_as_ints(text, value, kind):
    parsed = train.positive_number(text)
    assert parsed == value and type(parsed) is kind


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "abc"])
def test_positive_number_refuses_the_rest(text):
    with pytest.raises(argparse.ArgumentTypeError, match="greater than 0"):
        train.positive_number(text)


def test_bad_value_is_refused_before_anything_is_logged(tracking_uri, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--max-iter", "ten"])
    assert exit_info.value.code == 2
    assert "argument --max-iter: must be a whole number greater than 0, got 'ten'" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()  # the store was never even opened


def test_standalone_run_logs_params_accuracy_and_model(tracking_uri, capsys):
    args = ["--max-iter", "100", "--C", "0.5", "--random-state", "7", "--experiment-name", "unit-train-cli"]
    assert train.main(args) == 0
    printed = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    run = MlflowClient().get_run(printed["run_id"])
    assert MlflowClient().get_experiment(run.info.experiment_id).name == "unit-train-cli"
    assert run.info.status == "FINISHED"
    params = {k: run.data.params[k] for k in ("max_iter", "C", "random_state")}
    assert params == {"max_iter": "100", "C": "0.5", "random_state": "7"}
    assert run.data.metrics["accuracy"] == pytest.approx(expected_accuracy(100, 0.5, 7))
    assert run.data.tags["entry_point"] == "mlops_helpers.train"
    assert printed["tracking_uri"] == tracking_uri
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    X_test, y_test = split_iris(7).X_test, split_iris(7).y_test
    assert (model.predict(X_test) == y_test).mean() == pytest.approx(run.data.metrics["accuracy"])


def _project_run(params):
    """A run as `mlflow run` leaves it for its command: created, params recorded as the -P text, still running."""
    experiment = tracking.setup_experiment(None, "unit-train-project")
    client = MlflowClient()
    run = client.create_run(experiment.experiment_id)
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    return run.info.run_id


def test_under_mlflow_run_it_logs_into_the_projects_run(tracking_uri, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    run_id = _project_run({"max_iter": "300", "C": "1", "random_state": "42"})
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    assert train.main(["--max-iter", "300", "--C", "1", "--random-state", "42"]) == 0
    assert f"run_id={run_id}" in capsys.readouterr().out
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["C"] == "1"  # the text typed, not rewritten as 1.0
    assert run.data.metrics["accuracy"] == pytest.approx(expected_accuracy(300, 1.0, 42))


def test_parameter_recorded_in_another_spelling_is_refused_before_training(tracking_uri, monkeypatch):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    run_id = _project_run({"max_iter": "200", "C": "1e-2", "random_state": "42"})
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    with pytest.raises(SystemExit, match=r"-P C=1e-2 is read as 0\.01.*Write it as -P C=0\.01"):
        train.main(["--max-iter", "200", "--C", "1e-2", "--random-state", "42"])
    assert "accuracy" not in MlflowClient().get_run(run_id).data.metrics  # nothing trained, nothing half-logged
