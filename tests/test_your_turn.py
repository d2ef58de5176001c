"""The lessons' "your turn" exercises, both ways.

Fast: each check of :mod:`mlops_helpers.your_turn` called with what a cell ships (a placeholder: the hint), a
correct answer (the pass) and plausible wrong answers (the hint naming *that* mistake, never the answer); every
lesson has your-turn cells, each followed by its check cell, and every one has a solution here. The two checks
that read a tracking store are ``full``: creating the store (MLflow's schema migrations) alone takes seconds.

Slow (``full``): each lesson executed under papermill with the solutions below written into its your-turn cells,
every check cell printing its pass. (That the shipped lessons run top to bottom and print the hint is asserted by
the lesson tests, tests/test_lessons_*.py, which execute them as shipped.)
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from mlflow import MlflowClient

from mlops_helpers import monitoring, your_turn
from mlops_helpers.data import split_iris, split_iris_validation
from mlops_helpers.notebooks import execute
from your_turn_cells import PASS_MARK, check_outputs, your_turn_cells

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LESSONS = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))

# The solutions, by lesson and your-turn cell id. Kept here, never in the notebooks.
SOLUTIONS = {
    "00_why_mlops.ipynb": {
        "nb00-yt-1": '''
def data_validation(state):
    """Stop the pipeline with a ValueError when a training measurement is missing; otherwise do nothing."""
    if state["split"].X_train.isna().any().any():
        raise ValueError("a training measurement is missing")
'''
    },
    "01_experiment_tracking.ipynb": {
        "nb01-yt-4": """
with mlflow.start_run(run_name="my-run") as my_run:
    mine = LogisticRegression(C=0.5, max_iter=max_iter).fit(split.X_train, split.y_train)
    mlflow.log_param("C", 0.5)
    mlflow.log_metric("val_accuracy", mine.score(split.X_val, split.y_val))
my_run_id = my_run.info.run_id
""",
        "nb01-yt-1": """
good_runs = mlflow.search_runs(
    experiment_names=[experiment_name],
    filter_string="tags.sweep = 'C' and metrics.val_accuracy >= 0.9",
    order_by=["metrics.val_accuracy DESC"],
)
""",
    },
    "02_reproducible_runs.ipynb": {
        "nb02-yt-1": """
my_command = ["mlflow", "run", ".", "--env-manager", "local", "--experiment-name", experiment_name,
              "-P", "max_iter=500"]
"""
    },
    "03_model_versions.ipynb": {
        "03-yt-1": """
client.set_registered_model_alias(model_name, "previous", challenger.version)
"""
    },
    "04_serving.ipynb": {
        "04-yt-1": """
response = requests.post(f"{server.url}/invocations", json={"inputs": X_test.head(3).to_dict(orient="list")},
                         timeout=30)
"""
    },
    "05_monitoring.ipynb": {
        "05-yt-2": """
r = np.clip(np.histogram(reference.petal_length, edges)[0] / len(reference), 1e-4, None)
c = np.clip(np.histogram(last_petal_length, edges)[0] / len(last_petal_length), 1e-4, None)
psi_value = float(np.sum((c - r) * np.log(c / r)))
"""
    },
    "06_automation.ipynb": {
        "06-yt-1": '''
def not_worse(accuracy, champion_accuracy, tolerance):
    """True when the candidate's accuracy is at most `tolerance` below the champion's, else False."""
    return accuracy >= champion_accuracy - tolerance - 1e-9
'''
    },
}


def said(capsys) -> str:
    return capsys.readouterr().out.strip()


def assert_hint(result: bool, out: str, *fragments: str) -> None:
    """The check said "not yet" (and returned False), naming the mistake."""
    assert result is False and out.startswith(your_turn.NOT_YET), out
    for fragment in fragments:
        assert fragment in out, out


def assert_pass(result: bool, out: str) -> None:
    assert result is True and out.startswith(your_turn.PASSED), out


# ---------------------------------------------------------------- the notebooks hold exercises, not answers


def test_every_lesson_has_your_turn_cells_each_with_its_check_and_a_solution_here():
    assert len(LESSONS) == 7
    for name in LESSONS:
        cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
        exercises = your_turn_cells(cells)
        assert exercises, f"{name}: no cell tagged your-turn"
        assert sorted(c["id"] for c in exercises) == sorted(SOLUTIONS[name]), name
        for cell in exercises:
            source = "".join(cell["source"])
            assert "..." in source and "# your code here" in source, f"{name} {cell['id']}: no placeholder"
            following = cells[cells.index(cell) + 1]
            assert "your-turn-check" in following["metadata"].get("tags", []), f"{name}: no check after {cell['id']}"
            assert re.search(r"your_turn\.check_\w+\(", "".join(following["source"])), name


def test_placeholders_are_recognised_and_real_code_is_not():
    def body_only(state):
        """docstring"""
        ...

    def one_line(a, b, t):
        return a >= b - t

    assert your_turn.is_placeholder(...) and your_turn.is_placeholder(body_only)
    assert not your_turn.is_placeholder(one_line) and not your_turn.is_placeholder(0)


def test_a_check_answers_whatever_it_is_given(capsys):
    class Hostile:
        def __float__(self):
            raise RuntimeError("touched")

    assert_hint(your_turn.check_psi(Hostile(), 0.5), said(capsys), "could not make sense", "RuntimeError: touched")


# ---------------------------------------------------------------- 00: a data-validation step


def test_data_validation_check(capsys):
    split = split_iris_validation(42)

    def shipped(state): ...

    def solution(state):
        if state["split"].X_train.isna().any().any():
            raise ValueError("missing")

    def checks_the_wrong_rows(state):
        if state["split"].X_test.isna().any().any():
            raise ValueError("missing")

    def wrong_exception(state):
        assert not state["split"].X_train.isna().any().any()

    def stops_everything(state):
        raise ValueError("no")

    assert_hint(your_turn.check_data_validation(shipped, split), said(capsys), "write the body")
    assert_pass(your_turn.check_data_validation(solution, split), said(capsys))
    assert_hint(your_turn.check_data_validation(checks_the_wrong_rows, split), said(capsys), "let through", "X_train")
    assert_hint(
        your_turn.check_data_validation(wrong_exception, split),
        said(capsys),
        "raised AssertionError",
        "raise ValueError",
    )
    assert_hint(your_turn.check_data_validation(stops_everything, split), said(capsys), "stopped the clean")
    assert not split.X_train.isna().any().any()  # the check broke a copy, not the lesson's rows


# ---------------------------------------------------------------- 01: a query with mlflow.search_runs


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite store with lesson 01's kinds of runs (no models: only what the queries read) and a registered model
    with two versions and a champion: the registry lesson 03's check reads."""
    from mlflow_state import reset_mlflow_globals

    uri = f"sqlite:///{tmp_path_factory.mktemp('yt') / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("yt01")
    for name, tags, accuracy in [
        ("seed", {}, None),
        ("mlflow3-way", {"lesson": "01"}, None),
        ("C=0.01", {"sweep": "C"}, 0.85),
        ("C=0.1", {"sweep": "C"}, 0.9),
        ("C=1.0", {"sweep": "C"}, 0.95),
    ]:
        with mlflow.start_run(run_name=name):
            mlflow.set_tags(tags)
            mlflow.log_metric("val_accuracy" if accuracy else "accuracy", accuracy or 1.0)
    mlflow.set_experiment("elsewhere")
    with mlflow.start_run(run_name="other"):
        mlflow.set_tag("sweep", "C")
        mlflow.log_metric("val_accuracy", 0.99)
    client = MlflowClient()
    client.create_registered_model("yt-model")
    for _ in range(2):
        client.create_model_version("yt-model", source=str(tmp_path_factory.mktemp("model")), run_id=None)
    client.set_registered_model_alias("yt-model", "champion", "1")
    yield uri
    reset_mlflow_globals()


@pytest.mark.full  # the store's creation (MLflow's schema migrations) takes 3-5 s
def test_sweep_query_check(store, capsys):
    mlflow.set_tracking_uri(store)

    def query(filter_string, order="metrics.val_accuracy DESC", experiments=("yt01",)):
        return mlflow.search_runs(experiment_names=list(experiments), filter_string=filter_string, order_by=[order])

    check = your_turn.check_sweep_query
    right = "tags.sweep = 'C' and metrics.val_accuracy >= 0.9"
    assert_hint(check(..., "yt01", 0.9), said(capsys), "mlflow.search_runs")
    assert_pass(check(query(right), "yt01", 0.9), said(capsys))
    assert_hint(check(query("attributes.status = 'FINISHED'"), "yt01", 0.9), said(capsys), "not part of the sweep")
    assert_hint(check(query("tags.sweep = 'C'"), "yt01", 0.9), said(capsys), "below 0.9", "metrics.val_accuracy")
    assert_hint(
        check(query("tags.sweep = 'C' and metrics.val_accuracy > 0.9"), "yt01", 0.9),
        said(capsys),
        "1 sweep run(s)",
        ">= or >",
    )
    assert_hint(check(query(right, order="metrics.val_accuracy ASC"), "yt01", 0.9), said(capsys), "wrong order")
    assert_hint(check(query(right, experiments=("yt01", "elsewhere")), "yt01", 0.9), said(capsys), "another experiment")
    assert_hint(
        check(mlflow.search_runs(experiment_names=["yt01"], filter_string=right, output_format="list"), "yt01", 0.9),
        said(capsys),
        "a list",
    )


@pytest.mark.full  # the store's creation (MLflow's schema migrations) takes 3-5 s
def test_logged_run_check(store, capsys):
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(store)
    split = split_iris_validation(42)
    model = LogisticRegression(C=0.5, max_iter=200).fit(split.X_train, split.y_train)

    def run(params, metrics, experiment="yt01", end=True):
        mlflow.set_experiment(experiment)
        started = mlflow.start_run(run_name="my-run")
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        if end:
            mlflow.end_run()
        return started.info.run_id

    def check(run_id):
        return your_turn.check_logged_run(run_id, "yt01", split, C=0.5, max_iter=200)

    val, test, train = (
        model.score(X, y)
        for X, y in ((split.X_val, split.y_val), (split.X_test, split.y_test), (split.X_train, split.y_train))
    )
    assert len({val, test, train}) == 3  # else the slips below could not be told apart
    assert_hint(check(...), said(capsys), "start a run")
    assert_pass(check(run({"C": 0.5}, {"val_accuracy": val})), said(capsys))
    assert_hint(check(mlflow.last_active_run()), said(capsys), "a string")
    assert_hint(check("0" * 32), said(capsys), "no run with the ID")
    assert_hint(check(run({"C": 0.5}, {"val_accuracy": val}, experiment="elsewhere")), said(capsys), "'elsewhere'")
    assert_hint(check(run({}, {"val_accuracy": val})), said(capsys), "no parameter C")
    assert_hint(check(run({"C": 1.0}, {"val_accuracy": val})), said(capsys), "another value")
    assert_hint(check(run({"C": 0.5}, {"accuracy": val})), said(capsys), "no metric val_accuracy", "accuracy")
    assert_hint(check(run({"C": 0.5}, {"val_accuracy": test})), said(capsys), "test rows")
    assert_hint(check(run({"C": 0.5}, {"val_accuracy": train})), said(capsys), "fitted on")
    assert_hint(check(run({"C": 0.5}, {"val_accuracy": 0.5})), said(capsys), "check the rows and the settings")
    running = run({"C": 0.5}, {"val_accuracy": val}, end=False)
    try:
        assert_hint(check(running), said(capsys), "RUNNING")
    finally:
        mlflow.end_run()


# ---------------------------------------------------------------- 02: the `mlflow run` command


def test_project_command_check(capsys):
    check = your_turn.check_project_command
    right = ["mlflow", "run", ".", "--env-manager", "local", "--experiment-name", "e", "-P", "max_iter=500"]
    assert_hint(check(..., "e", 500), said(capsys), "list of strings")
    assert_pass(check(right, "e", 500), said(capsys))
    assert_pass(
        check(["mlflow", "run", ".", "-P", "max_iter=500", "--experiment-name=e", "--env-manager=local"], "e", 500),
        said(capsys),
    )
    assert_hint(check(" ".join(right), "e", 500), said(capsys), "list of strings")
    assert_hint(check(["python", *right[1:]], "e", 500), said(capsys), "starts with")
    assert_hint(check([w for w in right if w != "."], "e", 500), said(capsys), "which project")
    assert_hint(check(right[:3] + right[5:], "e", 500), said(capsys), "--env-manager")
    assert_hint(check([*right[:6], "other", *right[7:]], "e", 500), said(capsys), "--experiment-name")
    assert_hint(check([*right[:-2], "--max_iter", "500"], "e", 500), said(capsys), "as a project parameter")
    assert_hint(check([*right[:-1], "max_iter=300"], "e", 500), said(capsys), "another value")
    assert_hint(check([*right[:-2], "-P", "max_iter", "500"], "e", 500), said(capsys), "name=value")


# ---------------------------------------------------------------- 03: an alias moved with the client


@pytest.mark.full  # the store's creation (MLflow's schema migrations) takes 3-5 s
def test_alias_check(store, capsys):
    mlflow.set_tracking_uri(store)
    client = MlflowClient()
    why = "the challenger's version"
    assert_hint(
        your_turn.check_alias("yt-model", "previous", "2", why=why),
        said(capsys),
        "no version",
        "takes the model's name, the alias and a version",
    )
    client.set_registered_model_alias("yt-model", "previous", "1")  # the champion's version: the wrong one
    assert_hint(
        your_turn.check_alias("yt-model", "previous", "2", why=why), out_wrong := said(capsys), "current champion", why
    )
    assert "version 2" not in out_wrong  # the hint names the mistake, not the answer
    client.set_registered_model_alias("yt-model", "previous", "2")
    assert_pass(your_turn.check_alias("yt-model", "previous", "2", why=why), said(capsys))
    assert_hint(your_turn.check_alias("no-such-model", "previous", "2", why=why), said(capsys), "no model")


# ---------------------------------------------------------------- 04: a request to the running server


def response(payload, status=200, predictions=(0, 1, 2), url="http://127.0.0.1:5001/invocations"):
    """A requests.Response as requests.post(url, json=payload) returns it, from a server answering ``predictions``
    (the real server is called by the lesson test: here only the check's judgement is under test)."""
    answer = requests.Response()
    answer.status_code = status
    body = (
        {"predictions": list(predictions)}
        if status == 200
        else {"error_code": "BAD_REQUEST", "message": "The input must be a JSON dictionary"}
    )
    answer._content = json.dumps(body).encode()
    answer.request = requests.Request("POST", url, json=payload).prepare()
    answer.url = url
    return answer


def test_invocation_check(capsys):
    X = split_iris(42).X_test.head(3)
    check = your_turn.check_invocation
    expected = [1, 0, 2]
    right = {"inputs": X.to_dict(orient="list")}
    assert_hint(check(..., expected, key="inputs", n_flowers=3), said(capsys), "requests.post")
    assert_pass(check(response(right, predictions=expected), expected, key="inputs", n_flowers=3), said(capsys))
    assert_hint(
        check(response(right, predictions=expected).json(), expected, key="inputs", n_flowers=3),
        said(capsys),
        "a Response",
    )
    assert_hint(
        check(response(right, url="http://127.0.0.1:5001/ping"), expected, key="inputs", n_flowers=3),
        said(capsys),
        "/invocations endpoint",
    )
    assert_hint(
        check(
            response({"columns": list(X.columns), "data": X.values.tolist()}, status=400),
            expected,
            key="inputs",
            n_flowers=3,
        ),
        said(capsys),
        "HTTP 400",
        "JSON dictionary",
    )
    assert_hint(
        check(
            response({"dataframe_split": X.to_dict(orient="split")}, predictions=expected),
            expected,
            key="inputs",
            n_flowers=3,
        ),
        said(capsys),
        "'dataframe_split' format",
        "'inputs'",
    )
    assert_hint(
        check(response(right, predictions=[1, 0]), expected, key="inputs", n_flowers=3), said(capsys), "2 flower(s)"
    )
    assert_hint(
        check(response(right, predictions=[2, 2, 2]), expected, key="inputs", n_flowers=3),
        said(capsys),
        "other flowers",
    )
    crashed = response(right, status=500)
    crashed._content = b"Internal Server Error"  # not JSON: the check still answers
    assert_hint(check(crashed, expected, key="inputs", n_flowers=3), said(capsys), "HTTP 500", "Internal Server Error")
    odd = response(right)
    odd._content = b'{"result": 1}'
    assert_hint(check(odd, expected, key="inputs", n_flowers=3), said(capsys), "no list of predictions")


# ---------------------------------------------------------------- 05: PSI by hand


def test_psi_check(capsys):
    rng = np.random.default_rng(0)
    reference, first, last = rng.normal(4, 1, 84), rng.normal(4, 1, 100), rng.normal(5.5, 1, 100)
    expected, other = monitoring.psi(reference, last), monitoring.psi(reference, first)
    edges = np.quantile(reference, np.linspace(0, 1, 11))
    edges[0], edges[-1] = -np.inf, np.inf

    def shares(values, floor=1e-4):
        return np.clip(np.histogram(values, edges)[0] / len(values), floor, None)

    r, c = shares(reference), shares(last)
    check = your_turn.check_psi
    assert_hint(check(..., expected, other_batch=other), said(capsys), "replace ...")
    assert_pass(check(float(np.sum((c - r) * np.log(c / r))), expected, other_batch=other), said(capsys))
    assert_pass(check(np.sum((r - c) * np.log(r / c)), expected, other_batch=other), said(capsys))  # symmetric
    with np.errstate(divide="ignore", invalid="ignore"):
        r0, c0 = shares(reference, 0), shares(last, 0)
        unfloored = float(np.sum((c0 - r0) * np.log(c0 / r0)))
    if math.isfinite(unfloored):  # the data must make the mistake visible for this case to mean anything
        pytest.fail("the example data has no empty bin: choose data whose last batch leaves a bin empty")
    assert_hint(check(unfloored, expected, other_batch=other), said(capsys), "empty bin", "1e-4")
    assert_hint(check(float(np.sum((c - r) * np.log(r / c))), expected, other_batch=other), said(capsys), "negative")
    counts_r, counts_c = r * len(reference), c * len(last)
    assert_hint(
        check(float(np.sum((counts_c - counts_r) * np.log(counts_c / counts_r))), expected, other_batch=other),
        said(capsys),
        "far too large",
        "shares",
    )
    assert_hint(check(other, expected, other_batch=other), said(capsys), "another batch")
    assert_hint(check([expected], expected, other_batch=other), said(capsys), "one number")
    assert_hint(check(expected * 0.8, expected, other_batch=other), out := said(capsys), "deciles")
    assert f"{expected:.3f}" not in out and repr(expected) not in out  # the hint never prints the answer


# ---------------------------------------------------------------- 06: a gate check


def test_gate_check(capsys):
    def shipped(accuracy, champion_accuracy, tolerance):
        """docstring"""
        ...

    check = your_turn.check_gate_check
    assert_hint(check(shipped), said(capsys), "write the body")
    assert_pass(check(lambda a, c, t: a >= c - t - 1e-9), said(capsys))
    assert_pass(check(lambda a, c, t: round(a - c + t, 9) >= 0), said(capsys))
    assert_hint(check(lambda a, c, t: a >= c - t), said(capsys), "exactly one tolerance below", "slack")
    assert_hint(check(lambda a, c, t: a > c - t), said(capsys), "exactly one tolerance below")
    assert_hint(check(lambda a, c, t: a >= c), said(capsys), "exactly one tolerance below")
    assert_hint(check(lambda a, c, t: True), said(capsys), "two flowers worse")
    assert_hint(check(lambda a, c, t: a - c + t), said(capsys), "True or False")
    assert_hint(check(lambda a, c: a >= c), said(capsys), "raised TypeError")
    assert_hint(check(0.5), said(capsys), "should be a function")


# ---------------------------------------------------------------- the lessons, executed with the solutions in


def solved_copy(name: str, folder: Path) -> Path:
    """A copy of lesson ``name`` with its your-turn cells replaced by the solutions above."""
    notebook = json.loads((NOTEBOOKS / name).read_text())
    for cell in your_turn_cells(notebook["cells"]):
        cell["source"] = SOLUTIONS[name][cell["id"]].strip("\n")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(notebook))
    return folder / name


# knobs that keep the solved runs short; the lesson tests run the lessons' full defaults
QUICK = {
    "03_model_versions.ipynb": {"start_ui": False},
    "04_serving.ipynb": {"n_requests": 20},
    "05_monitoring.ipynb": {"n_batches": 16, "drift_start": 6},
    "06_automation.ipynb": {"run_ci_tests": False},
}


@pytest.mark.full
@pytest.mark.parametrize("name", LESSONS)
def test_solved_lesson_passes_every_check(name, tracking_uri, tmp_path):
    from conftest import free_port

    parameters = {"tracking_uri": tracking_uri, "experiment_name": f"yt-{name[:2]}", **QUICK.get(name, {})}
    if name[:2] in ("04", "05", "06"):
        parameters["port"] = free_port()
    # run from notebooks/, as make course and JupyterLab do (lesson 06 finds the repository from there)
    done = execute(solved_copy(name, tmp_path / "solved"), tmp_path / "out" / name, parameters, cwd=NOTEBOOKS)
    outputs = check_outputs(done.notebook)
    assert outputs and all(out.startswith(PASS_MARK) for out in outputs), outputs
    if name.startswith("00"):  # the pipeline ran again, with the student's step before training
        assert "Running data_validation step\nRunning model_training step" in done.outputs_text()
    if name.startswith("03"):
        assert str(MlflowClient(tracking_uri).get_registered_model("iris-classifier").aliases["previous"]) == "2"
