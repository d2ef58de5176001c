"""Lessons 05 (monitoring) and 06 (automation) executed headless, their outcomes checked in the tracking store."""

import re

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from mlops_helpers import monitoring as m
from mlops_helpers.data import split_iris_validation
from your_turn_cells import assert_shipped_hints


def _expected_traffic(n_batches, drift_start, random_state):
    """The lesson's traffic and first alert, computed independently with the same helpers and parameters."""
    from sklearn.linear_model import LogisticRegression

    split = split_iris_validation(random_state)
    model = LogisticRegression(max_iter=200, random_state=random_state).fit(split.X_train, split.y_train)
    batches = m.simulate_traffic(
        split.X_test, split.y_test, n_batches, 100, drift_start=drift_start, random_state=random_state
    )
    reference = m.measured(split.X_train, 0.1, random_state)
    return split, batches, m.first_alert([m.monitor_batch(model, reference, b.X, b.index) for b in batches])


def test_lesson_05_monitors_held_out_traffic_alerts_at_the_onset_and_gates_the_retrained_model(
    run_lesson, tracking_uri, port
):
    n_batches, drift_start = 16, 6
    result = run_lesson(
        "05_monitoring.ipynb",
        tracking_uri=tracking_uri,
        experiment_name="t05",
        n_batches=n_batches,
        drift_start=drift_start,
        random_state=42,
        port=port,
    )
    text = result.outputs_text()
    split, batches, expected_alert = _expected_traffic(n_batches, drift_start, 42)

    # traffic: held-out rows only, and the virginica share printed is the one the traffic really has
    drawn = set(np.concatenate([b.source for b in batches]).tolist())
    assert drawn <= set(split.X_test.index) and not drawn & set(split.X_train.index)
    assert f"traffic drawn from {len(drawn)} held-out flowers; training rows among them: 0" in text
    healthy, shifted = m.class_share(batches[:drift_start]), m.class_share(batches[drift_start:])
    assert f"virginica share: {healthy:.2f} before the drift, {shifted:.2f} after" in text
    assert shifted > 0.6  # not "half": label_shift 0.5 plus the virginica among the rest

    printed = int(re.search(r"first alert at batch (\d+)", text).group(1))
    assert printed == drift_start == expected_alert
    alert_batches = [int(b) for b in re.findall(r"batch\s+(\d+) ALERT", text)]
    assert alert_batches and min(alert_batches) == drift_start  # nothing before the onset
    retrained = int(re.search(r"batch\s+(\d+) RETRAINED", text).group(1))

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("t05")
    [run] = client.search_runs([experiment.experiment_id], "attributes.run_name = 'monitoring'")
    assert [p.step for p in client.get_metric_history(run.info.run_id, "psi_petal_length")] == list(range(n_batches))
    accuracy = {p.step: p.value for p in client.get_metric_history(run.info.run_id, "accuracy")}
    assert sorted(accuracy) == list(range(n_batches - 1))  # label_delay=1: the last batch waits
    assert all(accuracy[s] >= 0.85 for s in range(drift_start))
    assert min(accuracy[s] for s in range(drift_start, retrained + 1)) < 0.85
    drift_alert = {p.step: p.value for p in client.get_metric_history(run.info.run_id, "drift_alert")}
    assert min(s for s, v in drift_alert.items() if v) == drift_start

    # the honest recovery check: drifted validation flowers, which neither model learnt from
    X_check = m.drifted(split.X_val, 1.0, 0.1, 42)
    versions = {int(v.version): v for v in client.search_model_versions("name='iris-monitored'")}
    assert sorted(versions) == [1, 2]
    old = mlflow.pyfunc.load_model("models:/iris-monitored/1")
    new = mlflow.pyfunc.load_model("models:/iris-monitored/2")
    old_accuracy = float(np.mean(old.predict(X_check) == split.y_val))
    new_accuracy = float(np.mean(new.predict(X_check) == split.y_val))
    assert f"production model {old_accuracy:.3f}, retrained model {new_accuracy:.3f}" in text
    assert new_accuracy >= 0.9 > old_accuracy and "recovered: True" in text

    # closing the loop: logged, registered, gated (lesson 06's gate), promoted
    [retrain_run] = client.search_runs([experiment.experiment_id], "attributes.run_name = 'retrained'")
    assert versions[2].run_id == retrain_run.info.run_id
    assert retrain_run.data.metrics["val_accuracy"] == pytest.approx(new_accuracy)
    assert "version 2: gate for models:/iris-monitored/2: PROMOTE" in text
    for check in (
        "data validation",
        "holdout accuracy",
        "not worse than champion",
        "signature unchanged",
        "endpoint smoke test",
    ):
        assert f"PASS  {check}" in text
    assert versions[2].tags["gate"] == "passed"
    assert int(client.get_model_version_by_alias("iris-monitored", "champion").version) == 2
    assert_shipped_hints(result.notebook)


@pytest.mark.full  # ~30 s: the whole lesson with a real model server (make test's 10-minute budget)
def test_lesson_06_blocks_bad_candidates_promotes_and_serves_the_good_one(run_lesson, tracking_uri, port):
    result = run_lesson("06_automation.ipynb", tracking_uri=tracking_uri, experiment_name="t06", port=port)
    text = result.outputs_text()
    client = MlflowClient(tracking_uri)
    versions = {int(mv.version): mv for mv in client.search_model_versions("name='iris-classifier'")}
    assert sorted(versions) == [1, 2, 3, 4]  # champion made on the spot + three candidates
    decisions = dict(re.findall(r"version (\d+): gate for \S+: (PROMOTE|BLOCK)", text))
    assert decisions == {"2": "BLOCK", "3": "BLOCK", "4": "PROMOTE"}
    assert {v: versions[v].tags.get("gate") for v in (2, 3, 4)} == {2: "blocked", 3: "blocked", 4: "passed"}
    assert int(client.get_model_version_by_alias("iris-classifier", "champion").version) == 4
    assert "FAIL  holdout accuracy" in text and "FAIL  data validation" in text
    assert "PASS  endpoint smoke test: 5 rows via POST /invocations: answers match the model" in text
    assert "5 passed" in text and "CI gate: passed" in text

    # decisions on the 28 validation flowers, with a one-flower tolerance; the test rows only for the final check
    split = split_iris_validation(42)
    champion, good = (mlflow.pyfunc.load_model(f"models:/iris-classifier/{v}") for v in (1, 4))
    wrong = {
        name: int((m.predict(split.X_val) != split.y_val).sum()) for name, m in (("champion", champion), ("good", good))
    }
    assert wrong == {"champion": 1, "good": 2}  # one flower worse: within the tolerance, so promoted
    assert f"PASS  not worse than champion: {26 / 28:.3f} vs champion {27 / 28:.3f} (tolerance {1 / 28:.3f})" in text
    assert "28 validation flowers: one flower = 0.036 of accuracy; tolerance 0.036 (1 flower)" in text
    test_accuracy = float(np.mean(good.predict(split.X_test) == split.y_test))
    assert f"models:/iris-classifier@champion (version 4): test accuracy {test_accuracy:.3f} on 38 flowers" in text
    assert client.get_run(versions[4].run_id).data.metrics.keys() == {"val_accuracy"}  # no test score to choose by
    assert_shipped_hints(result.notebook)
    assert "name: tests" in text and "make ${{ matrix.target }}" in text  # the course's CI workflow, shown
