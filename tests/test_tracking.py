import mlflow
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from mlops_helpers import tracking
from mlops_helpers.exceptions import TrackingError


def test_explicit_uri_wins_then_environment_then_sqlite(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////srv/from-env.db")
    assert tracking.resolve_tracking_uri("sqlite:////srv/explicit.db") == "sqlite:////srv/explicit.db"
    assert tracking.resolve_tracking_uri(None) == "sqlite:////srv/from-env.db"
    assert tracking.resolve_tracking_uri("http://127.0.0.1:5005") == "http://127.0.0.1:5005"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir("/tmp")
    assert tracking.resolve_tracking_uri("") == "sqlite:////tmp/mlflow.db"  # made absolute for child processes


def test_setup_experiment_creates_it_and_exports_the_uri(tracking_uri, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    experiment = tracking.setup_experiment(tracking_uri, "unit-setup")
    assert experiment.name == "unit-setup"
    assert mlflow.get_tracking_uri() == tracking_uri
    import os

    assert os.environ["MLFLOW_TRACKING_URI"] == tracking_uri


def test_missing_tracking_server_is_a_clear_error(port):
    with pytest.raises(TrackingError, match=f"no MLflow tracking server answers at http://127.0.0.1:{port}"):
        tracking.setup_experiment(f"http://127.0.0.1:{port}", "x")


def test_unusable_store_is_a_clear_error(tmp_path):
    (tmp_path / "not-a-db").write_text("this is not sqlite")
    with pytest.raises(TrackingError, match="cannot use experiment"):
        tracking.setup_experiment(f"sqlite:///{tmp_path}/not-a-db", "x")


def test_pip_requirements_pin_the_installed_libraries():
    from importlib.metadata import version

    reqs = tracking.pip_requirements()
    assert f"scikit-learn=={version('scikit-learn')}" in reqs
    assert f"mlflow=={version('mlflow')}" in reqs
    assert all("==" in r for r in reqs)


def test_train_and_log_records_params_metric_and_a_loadable_model(tracking_uri):
    tracking.setup_experiment(tracking_uri, "unit-train")
    result = tracking.train_and_log(max_iter=200, random_state=42, tags={"lesson": "unit"})
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["max_iter"] == "200"
    assert run.data.metrics["accuracy"] == pytest.approx(result.accuracy)
    assert result.accuracy == 1.0  # the seed's split and model: every test flower right
    assert run.data.tags["lesson"] == "unit"
    model = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    assert [c.name for c in model.metadata.get_input_schema().inputs] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    from mlops_helpers.data import split_iris

    X_test = split_iris(42).X_test
    assert (model.predict(X_test) == result.model.predict(X_test)).all()


def test_train_and_log_on_a_validation_split_scores_validation_rows_and_never_the_test_rows(tracking_uri):
    from mlops_helpers.data import split_iris_validation

    tracking.setup_experiment(tracking_uri, "unit-train-val")
    split = split_iris_validation(42)
    result = tracking.train_and_log(split, C=0.01)
    metrics = MlflowClient().get_run(result.run_id).data.metrics
    assert result.metric == "val_accuracy" and set(metrics) == {"val_accuracy"}  # no test metric logged
    assert metrics["val_accuracy"] == pytest.approx(25 / 28) == pytest.approx(result.accuracy)
    assert result.model.n_features_in_ == 4 and len(result.model.coef_) == 3
    refit = LogisticRegression(C=0.01, max_iter=200, random_state=42).fit(split.X_train, split.y_train)
    assert (refit.predict(split.X_test) == result.model.predict(split.X_test)).all()  # fitted on the 84 rows


def test_artifacts_go_beside_the_sqlite_database_not_into_the_working_directory(tmp_path, monkeypatch):
    store, elsewhere = tmp_path / "store", tmp_path / "cwd"
    store.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    experiment = tracking.setup_experiment(f"sqlite:///{store / 'mlflow.db'}", "artifacts-here")
    assert experiment.artifact_location == (store / "mlruns").as_uri()
    tracking.train_and_log()
    assert list((store / "mlruns").rglob("MLmodel"))
    assert not (elsewhere / "mlruns").exists()
    assert tracking.artifact_location("http://127.0.0.1:5000") is None


# --- a class sharing one tracking server: each student's own names --------------------------------------------


def test_names_are_a_students_own_only_on_a_shared_server_under_jupyterhub():
    hub = {"JUPYTERHUB_USER": "ada"}
    assert tracking.student_prefix("http://127.0.0.1:5050", hub) == "ada"
    assert tracking.student_prefix("https://mlflow.example.edu", hub) == "ada"
    assert tracking.student_prefix("sqlite:////home/ada/mlflow.db", hub) is None  # a file is hers alone
    assert tracking.student_prefix("http://127.0.0.1:5050", {}) is None  # not under JupyterHub
    assert tracking.class_name("01-experiment-tracking", "ada") == "ada-01-experiment-tracking"
    assert tracking.class_name("ada-iris-classifier", "ada") == "ada-iris-classifier"  # never twice
    assert tracking.class_name("iris-classifier", None) == "iris-classifier"
    # another student's name that merely starts like hers is still prefixed
    assert tracking.class_name("adam-iris", "ada") == "ada-adam-iris"


def test_a_notebooks_experiment_and_model_names_become_the_students_own():
    namespace = {"experiment_name": "mlops-bridge-versions", "model_name": "iris-classifier", "port": 5001}
    changed = tracking.personalise_notebook_names("ada", namespace)
    assert changed == {"experiment_name": "ada-mlops-bridge-versions", "model_name": "ada-iris-classifier"}
    assert namespace == {
        "experiment_name": "ada-mlops-bridge-versions",
        "model_name": "ada-iris-classifier",
        "port": 5001,
    }
    assert tracking.personalise_notebook_names("ada", namespace) == {}  # idempotent: a cell run twice
    assert tracking.personalise_notebook_names(None, namespace) == {}
    assert tracking.personalise_notebook_names("ada") == {}  # outside a notebook: nothing to rename


@pytest.mark.full
def test_setup_experiment_on_a_shared_server_creates_the_students_experiment(monkeypatch, capsys):
    """A real tracking server stands in for the class's: the experiment gets the user's prefix."""
    import socket
    import subprocess
    import sys
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                f"sqlite:///{tmp}/m.db",
                "--artifacts-destination",
                f"{tmp}/a",
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            uri = f"http://127.0.0.1:{port}"
            deadline = time.time() + 120
            while time.time() < deadline:
                try:
                    if requests.get(f"{uri}/health", timeout=2).ok:
                        break
                except requests.RequestException:
                    time.sleep(0.5)
            monkeypatch.setenv("JUPYTERHUB_USER", "ada")
            monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
            experiment = tracking.setup_experiment(None, "01-experiment-tracking")
            assert experiment.name == "ada-01-experiment-tracking"
            assert "ada-01-experiment-tracking" in capsys.readouterr().out
            assert MlflowClient(uri).get_experiment_by_name("01-experiment-tracking") is None
        finally:
            import os
            import signal

            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
