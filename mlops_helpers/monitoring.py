"""Monitoring a served model over time: simulated production traffic, drift statistics, alerts.

The maths lives here so that lesson 05 can show the loop that matters: predict a batch, compute the
statistics, ``mlflow.log_metrics(..., step=batch)``, raise alerts, retrain.

Traffic is made of held-out flowers only (never a row the model was fitted on), measured again with a little
noise; the reference (the training rows) gets the same noise model (:func:`measured`), so that healthy traffic
and the reference differ only by sampling.

Drift is measured per feature against the reference in two ways:

- the two-sample Kolmogorov–Smirnov test (:func:`scipy.stats.ks_2samp`): *is* the distribution different?
  Its p-value is compared with ``alpha / n_features`` (Bonferroni), because four features tested every
  batch would otherwise raise false alarms on perfectly healthy traffic;
- the population stability index (PSI): *how much* did it move? Conventional reading: < 0.1 stable,
  0.1–0.25 moderate, > 0.25 large.

A drift alert needs both (significant *and* large). On 100-row batches PSI alone would cry wolf (most healthy
batches exceed 0.25 on some feature); the KS test keeps false alarms near ``alpha``.
No library computes PSI the way it is usually defined for monitoring (quantile bins of the reference,
a floor for empty bins), so it is written out below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .data import FEATURE_NAMES, TARGET, load_iris_frame

PSI_EPSILON = 1e-4  # floor for an empty bin's share, so that log(0) never happens
DRIFTING_FEATURES = ("petal_length", "petal_width")  # what the simulated re-calibrated device reads too high


def psi(reference, current, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``.

    Bins are the reference's quantiles (so each holds ~1/bins of the reference); the outer edges are
    open so values outside the reference's range still count. PSI = sum((c - r) * ln(c / r)).
    """
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    ref_share = np.histogram(reference, edges)[0] / len(reference)
    cur_share = np.histogram(current, edges)[0] / len(current)
    ref_share = np.clip(ref_share, PSI_EPSILON, None)
    cur_share = np.clip(cur_share, PSI_EPSILON, None)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    ks_statistic: float
    p_value: float
    psi: float
    drifted: bool


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    alpha: float = 0.01,
    psi_threshold: float = 0.25,
    features=FEATURE_NAMES,
) -> list[FeatureDrift]:
    """KS test and PSI per feature; ``drifted`` when p < alpha / n_features and PSI > psi_threshold."""
    corrected = alpha / len(features)
    result = []
    for name in features:
        ks = stats.ks_2samp(reference[name], current[name])
        value = psi(reference[name], current[name])
        result.append(
            FeatureDrift(
                name,
                float(ks.statistic),
                float(ks.pvalue),
                value,
                bool(ks.pvalue < corrected and value > psi_threshold),
            )
        )
    return result


def measurement_scale() -> pd.Series:
    """Per-feature standard deviation of iris's measurements: the unit of the noise and of the drift below.

    A fixed physical scale (no labels, the same for every sample), so that the reference and the traffic get
    exactly the same noise model.
    """
    return load_iris_frame()[FEATURE_NAMES].std()


def measured(X: pd.DataFrame, noise: float = 0.1, random_state=42) -> pd.DataFrame:
    """``X`` as a new measurement would read it: Gaussian noise of ``noise`` standard deviations per feature.

    Traffic is made of held-out flowers measured again; give the reference the same noise (``measured(X_train)``)
    so that monitoring compares like with like: otherwise the noise alone is a difference between the two.
    """
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    scale = measurement_scale()[FEATURE_NAMES].to_numpy()
    values = X[FEATURE_NAMES].astype(float)
    return values + rng.normal(0, noise, values.shape) * scale


def drifted(X: pd.DataFrame, drift_strength: float = 1.0, noise: float = 0.1, random_state=42) -> pd.DataFrame:
    """``X`` measured again (:func:`measured`) by the drifted device: petal measurements ``drift_strength``
    standard deviations too high. With ``drift_strength=0`` it is a healthy measurement."""
    X = measured(X, noise, random_state)
    scale = measurement_scale()
    for name in DRIFTING_FEATURES:
        X[name] += drift_strength * scale[name]
    return X


@dataclass(frozen=True)
class Batch:
    """One batch of simulated production traffic. ``y`` is the truth, which arrives late.

    ``source`` holds the iris row (index label) each traffic flower was drawn from.
    """

    index: int
    X: pd.DataFrame
    y: pd.Series
    drifted: bool
    source: np.ndarray


def simulate_traffic(
    X_pool: pd.DataFrame,
    y_pool,
    n_batches: int = 20,
    batch_size: int = 100,
    *,
    drift_start: int = 10,
    drift_strength: float = 1.0,
    label_shift: float = 0.5,
    noise: float = 0.1,
    random_state: int = 42,
) -> list[Batch]:
    """Production traffic drawn from the flowers ``X_pool, y_pool`` only, healthy until ``drift_start``.

    Give it rows the model was not fitted on (held-out rows): traffic made of training rows would measure
    accuracy on data the model has already seen. Every batch draws pool flowers with replacement and measures
    them again (:func:`measured`, ``noise`` standard deviations). From ``drift_start`` on:

    - feature drift: the petal measurements read ``drift_strength`` standard deviations too high
      (think of a re-calibrated measuring device);
    - label shift: a fraction ``label_shift`` of each batch is replaced by virginica flowers of the pool (a new
      supplier). The rest keeps the pool's own mix, which has virginica too, so the virginica share of a drifted
      batch is about ``label_shift + (1 - label_shift) * pool share``, not ``label_shift``.

    The true species are kept, so the model's accuracy really drops.
    """
    rng = np.random.default_rng(random_state)
    pool = X_pool[FEATURE_NAMES].assign(**{TARGET: np.asarray(y_pool).astype(int)})
    virginica = pool[pool[TARGET] == 2]
    if label_shift > 0 and virginica.empty:
        raise ValueError("label_shift needs virginica flowers in the pool")
    batches = []
    for b in range(n_batches):
        picked = pool.index[rng.integers(0, len(pool), batch_size)].to_numpy().copy()
        is_drifted = b >= drift_start
        if is_drifted and label_shift > 0:
            n_shift = int(round(label_shift * batch_size))
            picked[:n_shift] = virginica.index[rng.integers(0, len(virginica), n_shift)]
        rows = pool.loc[picked].reset_index(drop=True)
        X = drifted(rows, drift_strength if is_drifted else 0.0, noise, rng)
        batches.append(Batch(b, X, rows[TARGET].astype(int), is_drifted, picked))
    return batches


def class_share(batches: list[Batch], label: int = 2) -> float:
    """Share of the flowers of ``batches`` whose true species is ``label`` (2: virginica)."""
    return float(np.mean(np.concatenate([np.asarray(b.y) == label for b in batches])))


@dataclass(frozen=True)
class Thresholds:
    """When a statistic becomes an alert."""

    alpha: float = 0.01  # KS significance, Bonferroni-corrected over the features
    psi: float = 0.25  # PSI above this is a large shift
    min_accuracy: float = 0.85  # accuracy below this (once labels arrive) is an alert


@dataclass
class BatchReport:
    """What monitoring knows about one batch, and the alerts it raised.

    Drift and the prediction distribution are known as soon as the batch is predicted; accuracy only
    once its labels arrive (:meth:`add_labels`), usually a few batches later.
    """

    index: int
    predictions: np.ndarray
    prediction_share: dict[str, float]
    drift: list[FeatureDrift]
    alerts: list[str] = field(default_factory=list)
    accuracy: float | None = None

    def add_labels(self, y_true, thresholds: Thresholds = Thresholds()) -> float:
        """The late labels arrived: compute accuracy, alert if it is below the threshold; returns it."""
        self.accuracy = float(np.mean(self.predictions == np.asarray(y_true).astype(int)))
        if self.accuracy < thresholds.min_accuracy:
            self.alerts.append(f"accuracy {self.accuracy:.2f} < {thresholds.min_accuracy}")
        return self.accuracy

    def drift_metrics(self) -> dict[str, float]:
        """Metrics known at prediction time, flat, for ``mlflow.log_metrics(..., step=report.index)``."""
        out = {
            "n_drifted_features": float(sum(d.drifted for d in self.drift)),
            "drift_alert": float(any(d.drifted for d in self.drift)),
        }
        out.update({f"pred_share_{k}": v for k, v in self.prediction_share.items()})
        for d in self.drift:
            out[f"psi_{d.feature}"] = d.psi
            out[f"ks_pvalue_{d.feature}"] = d.p_value
        return out


def monitor_batch(
    model,
    reference: pd.DataFrame,
    X: pd.DataFrame,
    index: int,
    thresholds: Thresholds = Thresholds(),
    class_names=("setosa", "versicolor", "virginica"),
) -> BatchReport:
    """Predict one batch; turn feature drift into alerts. Accuracy waits for :meth:`BatchReport.add_labels`."""
    predictions = np.asarray(model.predict(X)).astype(int)
    share = {name: float(np.mean(predictions == i)) for i, name in enumerate(class_names)}
    drift = feature_drift(reference, X, alpha=thresholds.alpha, psi_threshold=thresholds.psi)
    alerts = [f"drift in {d.feature} (KS p={d.p_value:.1e}, PSI={d.psi:.2f})" for d in drift if d.drifted]
    return BatchReport(index, predictions, share, drift, alerts)


def first_alert(reports: list[BatchReport]) -> int | None:
    """Index of the first batch that raised an alert, or None."""
    return next((r.index for r in reports if r.alerts), None)


def retrain_due(reports: list[BatchReport], window: int = 3) -> bool:
    """Retrain once an alert was raised and ``window`` labelled batches since then can be learnt from."""
    alert = first_alert(reports)
    labelled = [r for r in reports if r.accuracy is not None and alert is not None and r.index >= alert]
    return len(labelled) >= window


def recent_data(batches: list[Batch], upto: int, window: int = 3) -> tuple[pd.DataFrame, pd.Series]:
    """The last ``window`` labelled batches up to and including ``upto``: what a retrain learns from."""
    chosen = [b for b in batches if upto - window < b.index <= upto]
    return pd.concat([b.X for b in chosen], ignore_index=True), pd.concat([b.y for b in chosen], ignore_index=True)


def plot_history(reports: list[BatchReport], drift_start: int | None = None, retrained_at: int | None = None):
    """Accuracy, PSI per feature and prediction shares over the batches; drift onset and retraining marked."""
    import matplotlib.pyplot as plt

    steps = [r.index for r in reports]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    labelled = [r for r in reports if r.accuracy is not None]
    axes[0].plot([r.index for r in labelled], [r.accuracy for r in labelled], marker="o")
    axes[0].set_ylabel("accuracy")
    for name in FEATURE_NAMES:
        axes[1].plot(steps, [next(d.psi for d in r.drift if d.feature == name) for r in reports], label=name)
    axes[1].set_ylabel("PSI")
    axes[1].legend(fontsize=8)
    for name in reports[0].prediction_share:
        axes[2].plot(steps, [r.prediction_share[name] for r in reports], label=name)
    axes[2].set_ylabel("share of predictions")
    axes[2].set_xlabel("batch")
    axes[2].legend(fontsize=8)
    for ax in axes:
        for r in reports:
            if r.alerts:
                ax.axvspan(r.index - 0.5, r.index + 0.5, color="red", alpha=0.08)
        if drift_start is not None:
            ax.axvline(drift_start - 0.5, color="red", linestyle="--", label="drift onset")
        if retrained_at is not None:
            ax.axvline(retrained_at + 0.5, color="green", linestyle=":", label="retrained")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
