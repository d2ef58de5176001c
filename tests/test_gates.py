import dataclasses

import numpy as np
import pytest
from mlflow.models import infer_signature

from mlops_helpers import gates, tracking
from mlops_helpers.data import split_iris, split_iris_validation


@pytest.fixture(scope="module")
def split():
    return split_iris(42)


def test_clean_training_data_passes(split):
    check = gates.validate_data(split.X_train, split.y_train)
    assert check.passed and "112 rows" in check.detail


def test_data_in_millimetres_missing_values_and_bad_labels_fail(split):
    mm = split.X_train * 10
    assert not gates.validate_data(mm).passed
    assert "outside 0.0-10.0 cm" in gates.validate_data(mm).detail
    holes = split.X_train.copy()
    holes.iloc[0, 0] = np.nan
    assert "1 missing values" in gates.validate_data(holes).detail
    assert "unknown labels [7]" in gates.validate_data(split.X_train, np.r_[split.y_train.to_numpy()[:-1], 7]).detail
    assert "missing columns ['petal_width']" in gates.validate_data(split.X_train.drop(columns="petal_width")).detail


def test_accuracy_and_champion_comparison():
    assert gates.accuracy_at_least(0.95, 0.9).passed
    assert not gates.accuracy_at_least(0.89, 0.9).passed
    assert gates.not_worse_than_champion(0.97, None).passed
    assert not gates.not_worse_than_champion(0.95, 0.97).passed
    assert gates.not_worse_than_champion(0.96, 0.97, tolerance=0.02).passed


def test_a_one_flower_tolerance_lets_exactly_one_more_wrong_flower_through():
    one = gates.flowers(1, 28)
    assert one == pytest.approx(0.0357, abs=1e-4)
    assert gates.not_worse_than_champion(26 / 28, 27 / 28, tolerance=one).passed  # one more wrong flower passes
    assert not gates.not_worse_than_champion(25 / 28, 27 / 28, tolerance=one).passed  # two do not
    assert not gates.not_worse_than_champion(26 / 28, 27 / 28).passed  # tolerance 0: one flower blocks
    assert gates.accuracy_at_least(0.7 + 0.2, 0.9).passed  # 0.8999999999999999: rounding, not a worse model
    assert "tolerance 0.036" in gates.not_worse_than_champion(26 / 28, 27 / 28, tolerance=one).detail


def test_signature_must_stay_the_same(split):
    sig = infer_signature(split.X_train, split.y_train.to_numpy())
    assert gates.signature_unchanged(sig, sig).passed
    narrower = infer_signature(split.X_train.drop(columns="sepal_width"), split.y_train.to_numpy())
    assert not gates.signature_unchanged(narrower, sig).passed
    assert not gates.signature_unchanged(None, sig).passed
    assert not gates.signature_unchanged(None, None).passed


def test_report_passes_only_when_every_check_passed():
    assert not gates.GateReport("x").passed
    ok, bad = gates.Check("a", True, ""), gates.Check("b", False, "why")
    assert gates.GateReport("x", [ok]).passed
    report = gates.GateReport("x", [ok, bad])
    assert not report.passed and report.failed == ["b"] and "BLOCK (b)" in str(report)


def test_bad_candidate_is_blocked_before_any_server_starts(tracking_uri):
    tracking.setup_experiment(tracking_uri, "gates")
    split = split_iris_validation(42)
    champion = tracking.train_and_log(split)
    shuffled = split.y_train.sample(frac=1.0, random_state=0).set_axis(split.y_train.index)
    corrupted = dataclasses.replace(split, y_train=shuffled)
    candidate = tracking.train_and_log(corrupted)
    report = gates.evaluate_candidate(
        candidate.model_uri,
        corrupted.X_train,
        corrupted.y_train,
        split.X_val,
        split.y_val,
        champion_uri=champion.model_uri,
        min_accuracy=0.9,
    )
    assert not report.passed
    assert report.failed == ["holdout accuracy", "not worse than champion", "endpoint smoke test"]
    assert "not run" in report.checks[-1].detail


@pytest.mark.full  # starts a real model server (lesson 06's test covers the same path in make test)
def test_good_candidate_passes_every_gate_including_a_real_endpoint(tracking_uri, port):
    tracking.setup_experiment(tracking_uri, "gates")
    split = split_iris_validation(42)
    champion = tracking.train_and_log(split)
    candidate = tracking.train_and_log(split, C=0.5)  # one validation flower worse than the champion
    report = gates.evaluate_candidate(
        candidate.model_uri,
        split.X_train,
        split.y_train,
        split.X_val,
        split.y_val,
        champion_uri=champion.model_uri,
        min_accuracy=0.9,
        tolerance=gates.flowers(1, len(split.y_val)),
        port=port,
        tracking_uri=tracking_uri,
    )
    assert report.passed, str(report)
    assert "0.929 vs champion 0.964 (tolerance 0.036)" in str(report)
    assert [c.name for c in report.checks][-1] == "endpoint smoke test"
    assert "answers match the model" in report.checks[-1].detail
