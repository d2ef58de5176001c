"""Lessons 03 (model versions) and 04 (serving) executed headless by papermill, their outcomes asserted.

Each lesson runs in a temporary sqlite store with free ports: on its own in an empty store, and after the state
earlier lessons leave (created here with ``tracking.train_and_log``, as lesson 01 would). Each execution costs
1-3 minutes on this machine (a model server or the MLflow UI is started for real), so all are ``full``.
"""

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from mlops_helpers import tracking
from mlops_helpers.data import split_iris_validation
from mlops_helpers.exceptions import NotebookExecutionError
from mlops_helpers.notebooks import cell_text, execute
from mlops_helpers.serving import free_port, port_is_free
from your_turn_cells import assert_shipped_hints

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")

pytestmark = pytest.mark.full


@pytest.fixture
def lesson(tracking_uri, tmp_path):
    """Run a lesson against the test's store, in its temporary folder (so artifacts land there too)."""

    def run(name, **parameters):
        parameters = {"tracking_uri": tracking_uri, **parameters}
        return execute(NOTEBOOKS / name, tmp_path / "out" / name, parameters, cwd=tmp_path)

    return run


def lesson_01_state(tracking_uri):
    """What lesson 01 leaves: a small sweep of iris models scored on validation rows (C=1.0 is the best), and a
    model scored on the test rows only (the "MLflow 3 way" run), which must never be chosen."""
    tracking.setup_experiment(tracking_uri, "lesson-01-like")
    split = split_iris_validation(42)
    sweep = {C: tracking.train_and_log(split, C=C, run_name=f"C={C}") for C in (0.01, 1.0, 0.05)}
    tracking.train_and_log(C=5.0, run_name="mlflow3-way")
    return sweep


def aliases(client, name):
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


def test_03_on_its_own_in_an_empty_store(lesson, tracking_uri):
    result = lesson("03_model_versions.ipynb", model_name="iris-03", start_ui=False)
    text = result.outputs_text()
    assert "No logged iris model in this tracking store" in text

    client = MlflowClient(tracking_uri)
    versions = {str(v.version): v for v in client.search_model_versions("name='iris-03'")}
    assert sorted(versions) == ["1", "2"]
    assert aliases(client, "iris-03") == {"champion": "1", "challenger": "2"}  # rolled back to version 1
    baseline = client.get_run(versions["1"].run_id)
    challenger = client.get_run(versions["2"].run_id)
    # every choice on the 28 validation flowers: no run of the lesson logged a test score
    assert baseline.data.tags["created_by"] == "mlops_helpers.registry"
    assert baseline.data.metrics == {"val_accuracy": pytest.approx(27 / 28)}
    assert challenger.data.params["C"] == "0.01"
    assert challenger.data.metrics == {"val_accuracy": pytest.approx(25 / 28)}
    assert "0.893 vs champion 0.964" in client.get_model_version("iris-03", "2").tags["validation"]
    assert all(v.current_stage in (None, "None") for v in versions.values())  # aliases, never stages

    assert "@champion is now version 2: validation accuracy 0.893" in text  # the bad promotion...
    assert "@champion is back on version 1: validation accuracy 0.964" in text  # ...and the rollback
    assert "does not replace the champion" in text
    split = split_iris_validation(42)  # the final check, once, on the test rows
    final = mlflow.pyfunc.load_model("models:/iris-03/1").predict(split.X_test)
    assert f"@champion (version 1): test accuracy {(final == split.y_test).mean():.3f} on 38 flowers" in text
    assert_shipped_hints(result.notebook)


def test_03_after_lesson_01_registers_the_tracked_model_and_shows_it_in_the_ui(lesson, tracking_uri):
    sweep = lesson_01_state(tracking_uri)
    ui_port = free_port()
    result = lesson("03_model_versions.ipynb", model_name="iris-03", ui_port=ui_port)
    text = result.outputs_text()
    best = sweep[1.0]
    assert f"Found the tracked iris model {best.model_uri} (run {best.run_id}, validation accuracy 0.964)" in text
    model_id = best.model_uri.removeprefix("models:/")
    assert model_id.startswith("m-") and f"logged model {model_id}: name 'model', logged by run {best.run_id}" in text

    client = MlflowClient(tracking_uri)
    assert str(client.get_model_version_by_alias("iris-03", "champion").run_id) == best.run_id
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == 5  # 4 + the challenger
    assert f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port {ui_port}" in text
    assert "the UI's server sees these aliases: {'challenger': '2', 'champion': '1'}" in text
    assert "UI stopped." in text and port_is_free(ui_port)


def check_alias_demo(text, tracking_uri, champion="1", challenger="2"):
    """The promotion while the server runs: computed here from the two registered versions, independently."""
    import pandas as pd

    from mlops_helpers.data import TARGET_NAMES, split_iris

    mlflow.set_tracking_uri(tracking_uri)
    split = split_iris(42)
    flowers = pd.concat([split.X_train, split.X_test])
    old, new = (mlflow.pyfunc.load_model(f"models:/iris-04/{v}").predict(flowers) for v in (champion, challenger))
    first = int((old != new).argmax())
    assert old[first] != new[first]
    old, new = TARGET_NAMES[old[first]], TARGET_NAMES[new[first]]
    assert f"the server says {old}: it serves version {champion}" in text
    assert f"load_model('models:/iris-04@champion') now says {new}: version {challenger}" in text
    assert f"the running server still says {old}: version {champion}" in text  # the alias moved, the server did not
    assert f"the server now says {new}: version {challenger}" in text  # after the restart
    assert f"the running server still says {new}: version {challenger} until it is restarted" in text  # rollback
    assert aliases(MlflowClient(tracking_uri), "iris-04") == {"champion": champion, "challenger": challenger}


def check_04_outputs(text, port, version):
    assert f"serving models:/iris-04@champion = version {version}" in text
    assert f"mlflow models serve -m models:/iris-04@champion -h 127.0.0.1 -p {port} --env-manager local" in text
    assert "GET /ping -> 200" in text
    assert "the server agrees with the model on the sample" in text
    assert "38 test flowers: server == model everywhere; accuracy 1.000" in text
    for name in (*FORMATS, "CSV"):
        assert any(line.startswith(name) and "HTTP 200" in line for line in text.splitlines()), name
    # the server's message lists a set of field names, whose order (and so where textwrap breaks lines) varies
    assert "HTTP 400 BAD_REQUEST" in text and "scoring protocol has changed" in " ".join(text.split())
    assert "['setosa', 'virginica']" in text
    assert "40 requests: p50" in text
    assert "running: False" in text and "connection refused - the server is gone" in text


def test_04_on_its_own_in_an_empty_store(lesson, tracking_uri):
    port = free_port()
    result = lesson("04_serving.ipynb", model_name="iris-04", port=port, n_requests=40)
    text = result.outputs_text()
    assert "No logged iris model in this tracking store" in text
    assert "There was no iris-04@champion in this store" in text
    check_04_outputs(text, port, version=1)
    assert port_is_free(port)
    assert "There was no iris-04@challenger in this store" in text
    check_alias_demo(text, tracking_uri)
    plots = [o for c in result.notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(plots) == 1  # the latency histogram
    assert_shipped_hints(result.notebook)


def test_04_after_03_in_the_same_store_serves_the_champion(lesson, tracking_uri):
    lesson_01_state(tracking_uri)
    lesson("03_model_versions.ipynb", model_name="iris-04", start_ui=False)
    port = free_port()
    text = lesson("04_serving.ipynb", model_name="iris-04", port=port, n_requests=40).outputs_text()
    assert "registered earlier, lesson 03" in text and "No logged iris model" not in text
    check_04_outputs(text, port, version=1)
    check_alias_demo(text, tracking_uri)
    assert "models:/iris-04@challenger is version 2 (registered earlier, lesson 03)" in text
    client = MlflowClient(tracking_uri)
    assert len(client.search_model_versions("name='iris-04'")) == 2  # lesson 04 registered nothing new


def test_04_stops_its_server_when_a_cell_fails(lesson, tracking_uri, tmp_path):
    port = free_port()
    with pytest.raises(NotebookExecutionError, match="ValueError: n_requests must be at least 1") as info:
        lesson("04_serving.ipynb", model_name="iris-04", port=port, n_requests=0)
    import nbformat

    partial = nbformat.read(info.value.output, as_version=4)
    text = "\n".join(cell_text(c) for c in partial.cells)
    assert "ready after" in text  # the server had started...
    assert f"A cell failed: stopping the model server at http://127.0.0.1:{port}" in text  # ...the hook stopped it
    assert port_is_free(port)
