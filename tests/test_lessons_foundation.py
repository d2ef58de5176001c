"""Lessons 00–02 executed headless (papermill, temporary store), asserting what they produced; lessons.py helpers."""

import json
import os
import re
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from mlops_helpers import lessons, tracking
from mlops_helpers.data import FEATURE_NAMES, split_iris, split_iris_validation, with_labels
from mlops_helpers.exceptions import ProjectError
from your_turn_cells import assert_shipped_hints

ROOT = Path(__file__).resolve().parents[1]


def expected_accuracy(max_iter=200, C=1.0, random_state=42):
    split = split_iris(random_state)
    model = LogisticRegression(max_iter=max_iter, C=C, random_state=random_state).fit(split.X_train, split.y_train)
    return model.score(split.X_test, split.y_test)


def runs_of(experiment_name, tracking_uri):
    mlflow.set_tracking_uri(tracking_uri)  # explicit: an earlier test may have set MLflow's global URI
    client = MlflowClient()
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None, f"the lesson did not create experiment {experiment_name!r}"
    return client.search_runs([experiment.experiment_id])


# ---------------------------------------------------------------- lessons.py


def test_project_root_is_found_from_the_notebooks_folder_and_from_elsewhere(tmp_path):
    assert lessons.find_project_root(ROOT / "notebooks") == ROOT
    assert lessons.find_project_root(tmp_path) == ROOT  # falls back to the installed course's repository


def test_project_root_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(lessons, "__file__", str(tmp_path / "pkg" / "lessons.py"))
    with pytest.raises(ProjectError, match="no MLproject file"):
        lessons.find_project_root(tmp_path)


def test_relative_sqlite_uri_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking.absolute_tracking_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    for unchanged in (f"sqlite:///{tmp_path}/x.db", "http://127.0.0.1:5001", "sqlite:///:memory:"):
        assert tracking.absolute_tracking_uri(unchanged) == unchanged


def test_ui_command_names_the_absolute_store_and_its_own_port(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert lessons.ui_command("sqlite:///mlflow.db") == (
        f"mlflow ui --backend-store-uri sqlite:///{tmp_path.resolve()}/mlflow.db --port 5002"
    )
    assert (
        lessons.ui_command("sqlite:////a b/m.db", port=5050)
        == "mlflow ui --backend-store-uri 'sqlite:////a b/m.db' --port 5050"
    )


def test_ui_instructions_start_mlflow_ui_for_a_file_store_and_point_at_a_tracking_server():
    from mlops_helpers import lessons

    local = lessons.ui_instructions("sqlite:////data/m.db", port=5050)
    assert local.splitlines() == [
        "mlflow ui --backend-store-uri sqlite:////data/m.db --port 5050",
        "then open http://127.0.0.1:5050/",
    ]
    server = lessons.ui_instructions("http://127.0.0.1:5555")
    assert "mlflow ui" not in server and server.endswith("open http://127.0.0.1:5555/")
    page = lessons.ui_instructions("http://127.0.0.1:5555/", page="#/models/m")
    assert page.endswith("open http://127.0.0.1:5555/#/models/m")


def test_kernel_python_goes_first_on_path_once(monkeypatch):
    folder = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", os.pathsep.join(["/usr/bin", folder, "/bin"]))
    assert lessons.put_kernel_python_on_path() == folder
    lessons.put_kernel_python_on_path()
    assert os.environ["PATH"].split(os.pathsep) == [folder, "/usr/bin", "/bin"]


def test_command_environment_drops_only_the_experiment_id(monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "7")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////x/m.db")
    env = lessons.command_environment()
    assert "MLFLOW_EXPERIMENT_ID" not in env and env["MLFLOW_TRACKING_URI"] == "sqlite:////x/m.db"
    assert os.environ["MLFLOW_EXPERIMENT_ID"] == "7"  # the kernel's own environment is untouched


def test_run_id_is_read_from_the_seeds_expected_output_line():
    log = "2024/06/01 12:00:00 INFO mlflow.projects: === Run (ID '123abc') succeeded ===\n"
    assert lessons.succeeded_run_id(log) == "123abc"
    with pytest.raises(ProjectError, match="(?s)did not report a succeeded run.*Run \\(ID '9f'\\) failed"):
        lessons.succeeded_run_id("INFO starting\nERROR mlflow.cli: === Run (ID '9f') failed ===")


# ---------------------------------------------------------------- the lessons, executed


def test_lesson_00_shows_the_pipeline_and_a_reproducible_tracked_run(run_lesson, tracking_uri):
    done = run_lesson("00_why_mlops.ipynb", tracking_uri=tracking_uri, experiment_name="t00")
    text = done.outputs_text()
    seed_loop = "Running data_preprocessing step\nRunning model_training step\nRunning model_deployment step"
    assert seed_loop in text  # practice question 3, answer C
    assert "Running model_evaluation step" in text and ">= 0.9: ready to deploy" in text
    three = split_iris_validation(42)  # the gate decides on the validation rows
    gated = LogisticRegression(max_iter=200).fit(three.X_train, three.y_train).score(three.X_val, three.y_val)
    assert f"  validation accuracy {gated:.3f}\n" in text
    assert "SyntaxError on line 2: expected ':'" in text  # practice question 4, answer D
    assert "ConnectionError: the app gets no prediction" in text
    runs = runs_of("t00", tracking_uri)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert [r.data.metrics["accuracy"] for r in runs] == [expected_accuracy()] * 2  # tracked and reproducible
    assert f"runs:/{runs[-1].info.run_id}/model -p 5001 --env-manager local" in text  # lesson 04's port
    assert_shipped_hints(done.notebook)  # the placeholder left in: the check answers with a hint, the lesson goes on


def test_lesson_01_logs_the_seed_run_the_mlflow3_run_and_the_sweep(run_lesson, tracking_uri):
    C_values = [0.01, 0.1]
    done = run_lesson(
        "01_experiment_tracking.ipynb",
        tracking_uri=tracking_uri,
        experiment_name="t01",
        C_values=C_values,
        max_iter=200,
    )
    text = done.outputs_text()
    runs = runs_of("t01", tracking_uri)
    assert len(runs) == 2 + len(C_values)  # the seed's run, the MLflow 3 run, one run per C

    seed_runs = [r for r in runs if not r.data.params]  # the seed's example logs no parameters
    assert len(seed_runs) == 1 and seed_runs[0].data.metrics["accuracy"] == expected_accuracy()
    tagged = [c for c in done.notebook.cells if "deprecated-on-purpose" in c.metadata.get("tags", [])]
    seed_cell_err = "".join(o.get("text", "") for c in tagged for o in c.outputs if o.get("name") == "stderr")
    assert "`artifact_path` is deprecated" in seed_cell_err  # shown on purpose, in the tagged cell only

    (mlflow3,) = [r for r in runs if r.data.tags.get("mlflow.runName") == "mlflow3-way"]
    assert mlflow3.data.params == {"max_iter": "200", "C": "1.0", "random_state": "42"}
    assert mlflow3.data.tags["lesson"] == "01"
    # the data, the MLflow 3 way: which rows trained the model and which scored it, by name, context and digest
    datasets = {
        (d.dataset.name, {t.key: t.value for t in d.tags}["mlflow.data.context"]): d.dataset
        for d in mlflow3.inputs.dataset_inputs
    }
    assert sorted(datasets) == [("iris-test", "testing"), ("iris-train", "training")]
    seed = split_iris(42)
    for (_, context), rows in (
        (("iris-train", "training"), (seed.X_train, seed.y_train)),
        (("iris-test", "testing"), (seed.X_test, seed.y_test)),
    ):
        dataset = datasets[(f"iris-{'train' if context == 'training' else 'test'}", context)]
        assert dataset.digest == mlflow.data.from_pandas(with_labels(*rows)).digest  # the same rows, exactly
        assert json.loads(dataset.profile)["num_rows"] == len(rows[1])
        assert [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]] == [*FEATURE_NAMES, "species"]
    [logging_cell] = [c for c in done.notebook.cells if c.get("id") == "nb01-07"]
    assert not [o for o in logging_cell.outputs if o.get("name") == "stderr"]  # no warning printed with it

    sweep = [r for r in runs if r.data.tags.get("sweep") == "C"]
    by_C = {float(r.data.params["C"]): r for r in sweep}
    assert sorted(by_C) == C_values
    three = split_iris_validation(42)
    for C, run in by_C.items():  # each scored on the 28 validation flowers, fitted on the 84 training rows
        assert run.data.params["max_iter"] == "200"
        fitted = LogisticRegression(max_iter=200, C=C, random_state=42).fit(three.X_train, three.y_train)
        assert run.data.metrics["val_accuracy"] == pytest.approx(fitted.score(three.X_val, three.y_val))
        assert "accuracy" not in run.data.metrics

    best = max(sweep, key=lambda r: r.data.metrics["val_accuracy"])
    assert best.data.metrics["val_accuracy"] > min(r.data.metrics["val_accuracy"] for r in sweep)  # a real choice
    assert f"best run: {best.info.run_id}  C={best.data.params['C']}  validation accuracy=" in text
    # the final check: the chosen run alone gets a test score, the one its model really has
    model = mlflow.pyfunc.load_model(f"runs:/{best.info.run_id}/model")
    test_accuracy = float((model.predict(three.X_test) == three.y_test).mean())
    assert best.data.metrics["test_accuracy"] == pytest.approx(test_accuracy)
    assert [r for r in sweep if "test_accuracy" in r.data.metrics] == [best]
    assert f"final check of C={best.data.params['C']}: test accuracy {test_accuracy:.3f} on 38 flowers" in text
    assert "confusion_matrix.png" in [a.path for a in MlflowClient().list_artifacts(best.info.run_id)]
    assert any("image/png" in o.get("data", {}) for c in done.notebook.cells for o in c.get("outputs", []))

    assert f"mlflow ui --backend-store-uri {tracking_uri} --port 5002" in text
    assert "then open http://127.0.0.1:5002" in text
    assert_shipped_hints(done.notebook)


@pytest.mark.full
def test_lesson_02_runs_the_project_twice_with_the_same_result(run_lesson, tracking_uri):
    done = run_lesson(
        "02_reproducible_runs.ipynb", tracking_uri=tracking_uri, experiment_name="t02", max_iter=250, random_state=42
    )
    text = done.outputs_text()
    runs = runs_of("t02", tracking_uri)
    assert len(runs) == 2  # one from `mlflow run .`, one from mlflow.projects.run
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["max_iter"] == "250" and run.data.params["random_state"] == "42"
        assert run.data.tags["mlflow.project.entryPoint"] == "main"
        assert run.data.metrics["accuracy"] == pytest.approx(expected_accuracy(max_iter=250))
    assert runs[0].data.metrics["accuracy"] == runs[1].data.metrics["accuracy"]
    assert "$ mlflow run . --env-manager local --experiment-name t02 -P max_iter=250 -P random_state=42" in text
    assert "same coefficients: True" in text
    for run in runs:
        assert f"run ID:   {run.info.run_id}" in text or f"run ID: {run.info.run_id}" in text
    assert_shipped_hints(done.notebook)


# ---------------------------------------------------------------- one port plan, one MLflow UI path


def _parameters(name):
    import ast
    import json

    cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
    [cell] = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    return {
        t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
    }


def _prose(path):
    import json

    if path.suffix != ".ipynb":
        return path.read_text()
    return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])


def test_one_port_plan_in_lessons_helpers_and_docs():
    from mlops_helpers import ports

    assert _parameters("04_serving.ipynb")["port"] == ports.MODEL_SERVER_PORT == 5001  # the model server
    assert _parameters("03_model_versions.ipynb")["ui_port"] == lessons.UI_PORT == ports.UI_PORT == 5002  # the UI
    smoke = ports.SMOKE_TEST_PORT
    assert _parameters("05_monitoring.ipynb")["port"] == _parameters("06_automation.ipynb")["port"] == smoke == 5003
    # on a shared machine each of them moves (ports.class_port); none is outside the plan's range
    assert {5001, 5002, 5003} <= set(ports.COURSE_PORTS)
    texts = {
        p.name: _prose(p)
        for p in [
            ROOT / "README.md",
            ROOT / "docs" / "troubleshooting.md",
            *sorted((ROOT / "notebooks").glob("*.ipynb")),
        ]
    }
    for name, text in texts.items():
        assert not re.search(r"mlflow ui[^\n`]*--port 500[13-9]", text), name  # 5000 only as the seed's problem
        assert not re.search(r"mlflow models serve[^\n`]*-p 500[2-9]", text), name
        assert not re.search(r"UI on 5001|5001 for the UI", text), name


def test_one_mlflow_ui_path_in_lessons_and_docs():
    within_a_paragraph = r"(?:(?!\n\n).)*?"
    path = re.compile(
        rf"\*\*Model training\*\*{within_a_paragraph}→ \*\*Experiments\*\* →"
        rf"{within_a_paragraph}→ \*\*Runs\*\*",
        re.S,
    )
    for name in (
        "README.md",
        "docs/troubleshooting.md",
        "notebooks/01_experiment_tracking.ipynb",
        "notebooks/03_model_versions.ipynb",
    ):
        text = _prose(ROOT / name)
        assert path.search(text), name
        assert "Training runs" not in text, name
