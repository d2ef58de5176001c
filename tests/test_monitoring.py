import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_helpers import monitoring as m
from mlops_helpers.data import FEATURE_NAMES, split_iris


@pytest.fixture(scope="module")
def model_and_reference():
    split = split_iris(42)
    return LogisticRegression(max_iter=200).fit(split.X_train, split.y_train), split.X_train


def test_psi_equals_a_hand_computed_value():
    reference = np.arange(100)              # quartile bins: [-inf,24.75) [24.75,49.5) [49.5,74.25) [74.25,inf)
    current = np.array([10] * 10 + [30] * 20 + [60] * 30 + [90] * 40)
    ref = [0.25, 0.25, 0.25, 0.25]
    cur = [0.10, 0.20, 0.30, 0.40]
    by_hand = sum((c - r) * math.log(c / r) for c, r in zip(cur, ref))
    assert m.psi(reference, current, bins=4) == pytest.approx(by_hand)   # 0.2282...
    assert m.psi(reference, reference, bins=4) == 0.0


def test_psi_floors_empty_bins_instead_of_dividing_by_zero():
    value = m.psi(np.arange(100), np.full(50, 1000.0), bins=4)
    assert math.isfinite(value) and value > 5


def test_traffic_is_reproducible_and_drift_starts_where_asked():
    a = m.simulate_traffic(6, 50, drift_start=3, random_state=7)
    b = m.simulate_traffic(6, 50, drift_start=3, random_state=7)
    pd.testing.assert_frame_equal(a[4].X, b[4].X)
    assert [batch.drifted for batch in a] == [False, False, False, True, True, True]
    assert a[5].X["petal_length"].mean() > a[0].X["petal_length"].mean() + 0.5


def _monitor(model, reference, batches):
    reports = []
    for b in batches:
        reports.append(m.monitor_batch(model, reference, b.X, b.index))
        reports[-1].add_labels(b.y)
    return reports


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_alert_without_drift(model_and_reference, seed):
    model, reference = model_and_reference
    reports = _monitor(model, reference, m.simulate_traffic(20, 100, drift_start=99, random_state=seed))
    assert m.first_alert(reports) is None
    assert min(r.accuracy for r in reports) >= m.Thresholds().min_accuracy
    assert not m.retrain_due(reports)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alert_at_the_drift_onset_under_a_strong_shift(model_and_reference, seed):
    model, reference = model_and_reference
    batches = m.simulate_traffic(16, 100, drift_start=8, drift_strength=1.0, random_state=seed)
    reports = [m.monitor_batch(model, reference, b.X, b.index) for b in batches]
    assert m.first_alert(reports) == 8  # drift alone: no labels needed
    drifted = {d.feature for d in reports[10].drift if d.drifted}
    assert {"petal_length", "petal_width"} <= drifted
    assert reports[-1].add_labels(batches[-1].y) < reports[0].add_labels(batches[0].y) - 0.1
    assert any(a.startswith("accuracy") for a in reports[-1].alerts)


def test_report_metrics_are_flat_and_loggable(model_and_reference):
    model, reference = model_and_reference
    batch = m.simulate_traffic(1, 80, drift_start=0, random_state=3)[0]
    report = m.monitor_batch(model, reference, batch.X, batch.index)
    assert report.accuracy is None
    metrics = report.drift_metrics()
    assert set(metrics) >= {"drift_alert", "n_drifted_features", "pred_share_virginica"}
    assert {f"psi_{f}" for f in FEATURE_NAMES} <= set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    assert sum(v for k, v in metrics.items() if k.startswith("pred_share_")) == pytest.approx(1.0)


def test_retrain_is_due_once_enough_labelled_batches_follow_the_alert(model_and_reference):
    model, reference = model_and_reference
    batches = m.simulate_traffic(12, 100, drift_start=5, random_state=0)
    reports = [m.monitor_batch(model, reference, b.X, b.index) for b in batches]
    for b in batches[:7]:
        reports[b.index].add_labels(b.y)       # labels of batches 0..6 have arrived
    assert not m.retrain_due(reports, window=3)  # alert at 5: only 5 and 6 labelled since
    reports[7].add_labels(batches[7].y)
    assert m.retrain_due(reports, window=3)


def test_recent_data_takes_the_last_window():
    batches = m.simulate_traffic(6, 10, drift_start=3, random_state=0)
    X, y = m.recent_data(batches, upto=4, window=2)
    assert len(X) == 20 and len(y) == 20
    pd.testing.assert_frame_equal(X.iloc[:10], batches[3].X.reset_index(drop=True))


def test_plot_history_marks_onset(model_and_reference):
    import matplotlib

    matplotlib.use("Agg")
    model, reference = model_and_reference
    reports = _monitor(model, reference, m.simulate_traffic(6, 50, drift_start=3, random_state=0))
    fig = m.plot_history(reports, drift_start=3, retrained_at=4)
    assert len(fig.axes) == 3
    assert any(line.get_label() == "drift onset" for line in fig.axes[0].get_lines())
