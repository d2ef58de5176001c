"""Automated quality gates: the checks a candidate model must pass before it may replace the champion.

Lesson 06 runs them and moves the ``champion`` alias itself (``MlflowClient().set_registered_model_alias``)
only when :attr:`GateReport.passed`; ``tests/test_model_gate.py`` runs the same checks under pytest, as CI would.

Each check is a small function returning a :class:`Check` (name, passed, detail); :func:`evaluate_candidate`
composes them in order and skips the expensive endpoint smoke test when a cheap check already failed.

The holdout a gate scores on is **validation** data (:func:`mlops_helpers.data.split_iris_validation`): a gate
decides, and decisions are made on validation rows; the test rows stay for the final check of the champion.
On a few dozen flowers accuracy moves in steps of one flower (1/28 = 3.6 points on iris's 28 validation flowers),
so a tolerance is given in flowers (:func:`flowers`), never 0 by reflex.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .data import FEATURE_NAMES

#: Plausible iris measurements, in centimetres (the largest iris flower part is ~8 cm).
FEATURE_RANGE_CM = (0.0, 10.0)
CLASSES = (0, 1, 2)
#: Accuracies are ratios of small counts (26/28 vs 27/28 - 1/28): compare them with this slack for rounding.
EPSILON = 1e-9


def flowers(n: int, out_of: int) -> float:
    """``n`` flowers out of ``out_of`` as an accuracy difference: the resolution of an accuracy on ``out_of`` rows."""
    return n / out_of


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.detail}"


@dataclass
class GateReport:
    """The checks run on one candidate, in order."""

    candidate: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True only when at least one check ran and every check passed."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def __str__(self) -> str:
        verdict = "PROMOTE" if self.passed else f"BLOCK ({', '.join(self.failed)})"
        return "\n".join([f"gate for {self.candidate}: {verdict}", *(f"  {c}" for c in self.checks)])


def validate_data(X: pd.DataFrame, y=None) -> Check:
    """Training data sanity: the expected columns, no missing values, centimetres in a plausible range, known labels."""
    problems = []
    missing = [c for c in FEATURE_NAMES if c not in X.columns]
    if missing:
        problems.append(f"missing columns {missing}")
    else:
        values = X[FEATURE_NAMES]
        if values.isna().any().any():
            problems.append(f"{int(values.isna().sum().sum())} missing values")
        low, high = FEATURE_RANGE_CM
        outside = ((values < low) | (values > high)).sum()
        for column, count in outside[outside > 0].items():
            problems.append(f"{count} values of {column} outside {low}-{high} cm (max {values[column].max():.1f})")
    if y is not None:
        unknown = sorted(set(np.unique(np.asarray(y)).tolist()) - set(CLASSES))
        if unknown:
            problems.append(f"unknown labels {unknown}")
    return Check("data validation", not problems, "; ".join(problems) or f"{len(X)} rows, schema and ranges ok")


def accuracy_at_least(accuracy: float, threshold: float) -> Check:
    return Check("holdout accuracy", accuracy >= threshold - EPSILON, f"{accuracy:.3f} (needs >= {threshold:.3f})")


def not_worse_than_champion(accuracy: float, champion_accuracy: float | None, tolerance: float = 0.0) -> Check:
    if champion_accuracy is None:
        return Check("not worse than champion", True, "no champion yet")
    ok = accuracy >= champion_accuracy - tolerance - EPSILON
    return Check(
        "not worse than champion", ok, f"{accuracy:.3f} vs champion {champion_accuracy:.3f} (tolerance {tolerance:.3f})"
    )


def signature_unchanged(candidate_signature, champion_signature) -> Check:
    """The serving contract: apps send the champion's inputs; the candidate must accept exactly those."""
    if champion_signature is None:
        return Check(
            "signature unchanged",
            candidate_signature is not None,
            "no champion yet" if candidate_signature is not None else "candidate has no signature",
        )
    same = candidate_signature is not None and candidate_signature.to_dict() == champion_signature.to_dict()
    candidate_inputs = candidate_signature.inputs if candidate_signature else None
    detail = (
        "same inputs and outputs" if same else (f"candidate {candidate_inputs} != champion {champion_signature.inputs}")
    )
    return Check("signature unchanged", same, detail)


def endpoint_smoke_test(
    model_uri: str, X_sample: pd.DataFrame, expected, *, port: int | None = None, tracking_uri: str | None = None
) -> Check:
    """Serve the candidate for real (``mlflow models serve``), POST a sample, compare with the expected predictions."""
    from .exceptions import ServingError
    from .serving import ModelServer

    try:
        with ModelServer(model_uri, port=port, tracking_uri=tracking_uri) as server:
            predictions = server.predict(X_sample)
    except ServingError as exc:
        return Check("endpoint smoke test", False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    same = np.array_equal(np.asarray(predictions), np.asarray(expected))
    return Check(
        "endpoint smoke test",
        same,
        f"{len(X_sample)} rows via POST /invocations: "
        + ("answers match the model" if same else f"served {list(predictions)} != {list(expected)}"),
    )


def evaluate_candidate(
    model_uri: str,
    X_train: pd.DataFrame,
    y_train,
    X_holdout: pd.DataFrame,
    y_holdout,
    *,
    champion_uri: str | None = None,
    min_accuracy: float = 0.9,
    tolerance: float = 0.0,
    smoke_test: bool = True,
    port: int | None = None,
    tracking_uri: str | None = None,
) -> GateReport:
    """Run every gate on the logged candidate at ``model_uri`` (its training data, a holdout, the champion).

    ``X_holdout, y_holdout`` are validation rows: neither the candidate nor the champion was fitted on them, and
    they are not the test rows (those are kept for the final check).
    """
    import mlflow

    report = GateReport(model_uri)
    report.checks.append(validate_data(X_train, y_train))
    candidate = mlflow.pyfunc.load_model(model_uri)
    predictions = np.asarray(candidate.predict(X_holdout))
    accuracy = float(np.mean(predictions == np.asarray(y_holdout)))
    report.checks.append(accuracy_at_least(accuracy, min_accuracy))
    champion_accuracy = champion_signature = None
    if champion_uri is not None:
        champion = mlflow.pyfunc.load_model(champion_uri)
        champion_accuracy = float(np.mean(np.asarray(champion.predict(X_holdout)) == np.asarray(y_holdout)))
        champion_signature = champion.metadata.signature
    report.checks.append(not_worse_than_champion(accuracy, champion_accuracy, tolerance))
    report.checks.append(signature_unchanged(candidate.metadata.signature, champion_signature))
    if smoke_test:
        if report.passed:
            sample = X_holdout.head(5)
            report.checks.append(
                endpoint_smoke_test(model_uri, sample, predictions[:5], port=port, tracking_uri=tracking_uri)
            )
        else:
            report.checks.append(Check("endpoint smoke test", False, "not run: an earlier check failed"))
    return report
