"""Lessons 05 (monitoring) and 06 (automation) executed headless, their outcomes checked in the tracking store."""

import re

import pytest
from mlflow import MlflowClient

from mlops_helpers import monitoring as m
from mlops_helpers.data import split_iris


def _expected_first_alert(drift_start, n_batches, random_state):
    """The alert batch computed independently of the notebook, with the same helpers and parameters."""
    from sklearn.linear_model import LogisticRegression

    split = split_iris(random_state)
    model = LogisticRegression(max_iter=200, random_state=random_state).fit(split.X_train, split.y_train)
    batches = m.simulate_traffic(n_batches, 100, drift_start=drift_start, random_state=random_state)
    return m.first_alert([m.monitor_batch(model, split.X_train, b.X, b.index) for b in batches])


def test_lesson_05_alerts_at_the_onset_logs_every_step_and_recovers(run_lesson, tracking_uri):
    n_batches, drift_start = 16, 6
    result = run_lesson("05_monitoring.ipynb", tracking_uri=tracking_uri, experiment_name="t05",
                        n_batches=n_batches, drift_start=drift_start, random_state=3)
    text = result.outputs_text()

    printed = int(re.search(r"first alert at batch (\d+)", text).group(1))
    assert printed == drift_start == _expected_first_alert(drift_start, n_batches, 3)
    alert_batches = [int(b) for b in re.findall(r"batch\s+(\d+) ALERT", text)]
    assert alert_batches and min(alert_batches) == drift_start          # nothing before the onset
    retrained = int(re.search(r"batch\s+(\d+) RETRAINED", text).group(1))
    assert "recovered: True" in text

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("t05")
    [run] = client.search_runs([experiment.experiment_id], "attributes.run_name = 'monitoring'")
    assert [p.step for p in client.get_metric_history(run.info.run_id, "psi_petal_length")] == list(range(n_batches))
    accuracy = {p.step: p.value for p in client.get_metric_history(run.info.run_id, "accuracy")}
    assert sorted(accuracy) == list(range(n_batches - 1))               # label_delay=1: the last batch waits
    assert all(accuracy[s] >= 0.85 for s in range(drift_start))
    assert min(accuracy[s] for s in range(drift_start, retrained + 1)) < 0.85
    assert all(accuracy[s] >= 0.85 for s in accuracy if s > retrained)
    drift_alert = {p.step: p.value for p in client.get_metric_history(run.info.run_id, "drift_alert")}
    assert min(s for s, v in drift_alert.items() if v) == drift_start


def test_lesson_06_blocks_bad_candidates_promotes_and_serves_the_good_one(run_lesson, tracking_uri, port):
    result = run_lesson("06_automation.ipynb", tracking_uri=tracking_uri, experiment_name="t06", port=port)
    text = result.outputs_text()
    client = MlflowClient(tracking_uri)
    versions = {int(mv.version): mv for mv in client.search_model_versions("name='iris-classifier'")}
    assert sorted(versions) == [1, 2, 3, 4]            # champion made on the spot + three candidates
    decisions = dict(re.findall(r"version (\d+): gate for \S+: (PROMOTE|BLOCK)", text))
    assert decisions == {"2": "BLOCK", "3": "BLOCK", "4": "PROMOTE"}
    assert {v: versions[v].tags.get("gate") for v in (2, 3, 4)} == {2: "blocked", 3: "blocked", 4: "passed"}
    assert int(client.get_model_version_by_alias("iris-classifier", "champion").version) == 4
    assert "FAIL  holdout accuracy" in text and "FAIL  data validation" in text
    assert "PASS  endpoint smoke test: 5 rows via POST /invocations: answers match the model" in text
    assert "5 passed" in text and "CI gate: passed" in text
