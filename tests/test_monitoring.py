import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_helpers import monitoring as m
from mlops_helpers.data import FEATURE_NAMES, split_iris_validation

SPLIT = split_iris_validation(42)
POOL = (SPLIT.X_test, SPLIT.y_test)  # traffic is drawn from held-out rows only


def traffic(*args, **kwargs):
    return m.simulate_traffic(*POOL, *args, **kwargs)


@pytest.fixture(scope="module")
def model_and_reference():
    model = LogisticRegression(max_iter=200).fit(SPLIT.X_train, SPLIT.y_train)
    return model, m.measured(SPLIT.X_train, random_state=0)  # the same noise model as the traffic


def test_psi_equals_a_hand_computed_value():
    reference = np.arange(100)  # quartile bins: [-inf,24.75) [24.75,49.5) [49.5,74.25) [74.25,inf)
    current = np.array([10] * 10 + [30] * 20 + [60] * 30 + [90] * 40)
    ref = [0.25, 0.25, 0.25, 0.25]
    cur = [0.10, 0.20, 0.30, 0.40]
    by_hand = sum((c - r) * math.log(c / r) for c, r in zip(cur, ref, strict=True))
    assert m.psi(reference, current, bins=4) == pytest.approx(by_hand)  # 0.2282...
    assert m.psi(reference, reference, bins=4) == 0.0


def test_psi_floors_empty_bins_instead_of_dividing_by_zero():
    value = m.psi(np.arange(100), np.full(50, 1000.0), bins=4)
    assert math.isfinite(value) and value > 5


def test_traffic_draws_only_pool_rows_and_never_a_training_row():
    batches = traffic(12, 100, drift_start=6, random_state=5)
    drawn = set(np.concatenate([b.source for b in batches]).tolist())
    assert drawn <= set(SPLIT.X_test.index)
    assert not drawn & set(SPLIT.X_train.index) and not drawn & set(SPLIT.X_val.index)
    for b in batches:  # each traffic flower keeps the species of the pool row it was drawn from
        assert (b.y.to_numpy() == SPLIT.y_test.loc[b.source].to_numpy()).all()
    healthy = batches[0]  # noise only: within a few standard deviations of the source flower
    gap = (healthy.X.to_numpy() - SPLIT.X_test.loc[healthy.source].to_numpy()) / m.measurement_scale().to_numpy()
    assert 0.05 < gap.std() < 0.15 and np.abs(gap).max() < 0.6


def test_reference_and_traffic_share_the_noise_model():
    a = m.measured(SPLIT.X_test, noise=0.1, random_state=1) - SPLIT.X_test
    healthy = traffic(30, 100, drift_start=99, random_state=1)
    b = pd.concat([h.X - SPLIT.X_test.loc[h.source].to_numpy() for h in healthy])
    relative_a = (a / m.measurement_scale()).to_numpy().std(axis=0)
    relative_b = (b / m.measurement_scale()).to_numpy().std(axis=0)
    np.testing.assert_allclose(relative_a, 0.1, rtol=0.35)
    np.testing.assert_allclose(relative_b, 0.1, rtol=0.1)
    assert m.measured(SPLIT.X_test, noise=0.0).equals(SPLIT.X_test.astype(float))


def test_the_virginica_share_under_label_shift_is_not_the_label_shift():
    base = float((SPLIT.y_test == 2).mean())
    batches = traffic(40, 100, drift_start=20, label_shift=0.5, random_state=2)
    healthy, drifted = m.class_share(batches[:20]), m.class_share(batches[20:])
    assert healthy == pytest.approx(base, abs=0.03)
    assert drifted == pytest.approx(0.5 + 0.5 * base, abs=0.03) and drifted > 0.6
    assert m.class_share(batches[20:21]) == float((batches[20].y == 2).mean())


def test_traffic_is_reproducible_and_drift_starts_where_asked():
    a = traffic(6, 50, drift_start=3, random_state=7)
    b = traffic(6, 50, drift_start=3, random_state=7)
    pd.testing.assert_frame_equal(a[4].X, b[4].X)
    assert [batch.drifted for batch in a] == [False, False, False, True, True, True]
    assert a[5].X["petal_length"].mean() > a[0].X["petal_length"].mean() + 0.5


def _monitor(model, reference, batches):
    reports = []
    for b in batches:
        reports.append(m.monitor_batch(model, reference, b.X, b.index))
        reports[-1].add_labels(b.y)
    return reports


def test_healthy_traffic_raises_few_false_alarms_and_keeps_its_accuracy(model_and_reference):
    """Each batch is a test at alpha = 0.01: over many healthy batches a few false alarms are expected, not none."""
    model, reference = model_and_reference
    reports = []
    for seed in range(10):
        reports += _monitor(model, reference, traffic(50, 100, drift_start=99, random_state=seed))
    false_alarms = sum(bool(r.alerts) for r in reports)
    assert 0 < false_alarms <= 0.02 * len(reports)  # 500 healthy batches: "about one in a hundred" (lesson 05)
    assert min(r.accuracy for r in reports) >= m.Thresholds().min_accuracy
    assert not m.retrain_due(_monitor(model, reference, traffic(20, 100, drift_start=99, random_state=1)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alert_at_the_drift_onset_under_a_strong_shift(model_and_reference, seed):
    model, reference = model_and_reference
    batches = traffic(16, 100, drift_start=8, drift_strength=1.0, random_state=seed)
    reports = [m.monitor_batch(model, reference, b.X, b.index) for b in batches]
    assert m.first_alert(reports) == 8  # drift alone: no labels needed
    drifted = {d.feature for d in reports[10].drift if d.drifted}
    assert {"petal_length", "petal_width"} <= drifted
    assert reports[-1].add_labels(batches[-1].y) < reports[0].add_labels(batches[0].y) - 0.1
    assert any(a.startswith("accuracy") for a in reports[-1].alerts)


def test_report_metrics_are_flat_and_loggable(model_and_reference):
    model, reference = model_and_reference
    batch = traffic(1, 80, drift_start=0, random_state=3)[0]
    report = m.monitor_batch(model, reference, batch.X, batch.index)
    assert report.accuracy is None
    metrics = report.drift_metrics()
    assert set(metrics) >= {"drift_alert", "n_drifted_features", "pred_share_virginica"}
    assert {f"psi_{f}" for f in FEATURE_NAMES} <= set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    assert sum(v for k, v in metrics.items() if k.startswith("pred_share_")) == pytest.approx(1.0)


def test_retrain_is_due_once_enough_labelled_batches_follow_the_alert(model_and_reference):
    model, reference = model_and_reference
    batches = traffic(12, 100, drift_start=5, random_state=0)
    reports = [m.monitor_batch(model, reference, b.X, b.index) for b in batches]
    for b in batches[:7]:
        reports[b.index].add_labels(b.y)  # labels of batches 0..6 have arrived
    assert not m.retrain_due(reports, window=3)  # alert at 5: only 5 and 6 labelled since
    reports[7].add_labels(batches[7].y)
    assert m.retrain_due(reports, window=3)


def test_recent_data_takes_the_last_window():
    batches = traffic(6, 10, drift_start=3, random_state=0)
    X, y = m.recent_data(batches, upto=4, window=2)
    assert y.tolist() == batches[3].y.tolist() + batches[4].y.tolist()
    assert len(X) == 20 and len(y) == 20
    pd.testing.assert_frame_equal(X.iloc[:10], batches[3].X.reset_index(drop=True))


def test_plot_history_marks_onset(model_and_reference):
    import matplotlib

    matplotlib.use("Agg")
    model, reference = model_and_reference
    reports = _monitor(model, reference, traffic(6, 50, drift_start=3, random_state=0))
    fig = m.plot_history(reports, drift_start=3, retrained_at=4)
    assert len(fig.axes) == 3
    assert any(line.get_label() == "drift onset" for line in fig.axes[0].get_lines())


def test_drifted_measurement_moves_only_the_petals_by_the_drift_strength():
    noise_free = m.drifted(SPLIT.X_val, drift_strength=1.0, noise=0.0)
    shift = noise_free - SPLIT.X_val
    scale = m.measurement_scale()
    assert (shift[["sepal_length", "sepal_width"]] == 0).all().all()
    np.testing.assert_allclose(shift["petal_length"], scale["petal_length"])
    np.testing.assert_allclose(shift["petal_width"], scale["petal_width"])
    assert m.drifted(SPLIT.X_val, 0.0, noise=0.0).equals(SPLIT.X_val.astype(float))


def test_psi_alone_would_cry_wolf_on_healthy_batches_the_ks_test_does_not(model_and_reference):
    """What lesson 05 says: on 100-row batches PSI is noisy, so an alert needs a significant KS test too."""
    _, reference = model_and_reference
    drift = [m.feature_drift(reference, b.X) for b in traffic(100, 100, drift_start=999, random_state=1)]
    psi_alone = np.mean([max(d.psi for d in batch) > m.Thresholds().psi for batch in drift])
    both = np.mean([any(d.drifted for d in batch) for batch in drift])
    assert psi_alone > 0.5 and both <= 0.05
