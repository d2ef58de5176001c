"""What the lessons' prose states about scikit-learn and MLflow, run: each test names the lesson and the claim.

(Claims about drift statistics are tested in tests/test_monitoring.py, about the gate in tests/test_gates.py, and
what each lesson prints in tests/test_lessons_*.py.)
"""

import inspect
import warnings

import mlflow.sklearn
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix
from threadpoolctl import threadpool_limits

from mlops_helpers.data import FEATURE_NAMES, TARGET, split_iris, split_iris_validation, with_labels


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Tiny fits: BLAS threads only fight each other (and a busy machine) for them, making each fit 10-50x slower."""
    with threadpool_limits(1):
        yield


def test_00_unseeded_scores_move_and_mostly_stay_between_092_and_1():
    scores = []
    for seed in range(25):  # split_iris(None) is what the lesson runs; seeds stand for its draws here
        X_train, X_test, y_train, y_test = split_iris(random_state=seed)
        scores.append(LogisticRegression(max_iter=200).fit(X_train, y_train).score(X_test, y_test))
    scores = np.array(scores)
    assert len(set(scores.round(6))) > 1  # "the score moves from run to run"
    assert np.mean((scores >= 0.92) & (scores <= 1.0)) >= 0.8  # "often between 0.92 and 1.00"


def test_01_the_seeds_second_positional_argument_is_artifact_path():
    assert list(inspect.signature(mlflow.sklearn.log_model).parameters)[:2] == ["sk_model", "artifact_path"]


def test_01_every_mistake_of_the_sweep_is_between_versicolor_and_virginica_and_smaller_C_makes_more():
    split = split_iris_validation(42)
    mistakes = {}
    for C in (0.01, 0.1, 1.0):  # lesson 01's C_values
        model = LogisticRegression(max_iter=200, C=C, random_state=42).fit(split.X_train, split.y_train)
        matrix = confusion_matrix(split.y_val, model.predict(split.X_val))
        off_diagonal = matrix - np.diag(np.diag(matrix))
        assert off_diagonal[0].sum() == off_diagonal[:, 0].sum() == 0  # setosa: never confused
        mistakes[C] = int(off_diagonal.sum())
    assert mistakes[0.01] > mistakes[1.0] and mistakes[0.01] == max(mistakes.values())
    assert round(1 - mistakes[0.01] / len(split.y_val), 2) == 0.89  # "Accuracy 0.89" of the worst run


def test_06_the_millimetre_model_warns_is_accurate_on_millimetres_and_guesses_on_centimetres():
    split = split_iris_validation(42)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = LogisticRegression(max_iter=200, random_state=42).fit(split.X_train * 10, split.y_train)
    assert any(issubclass(w.category, ConvergenceWarning) for w in caught)  # "scikit-learn prints a ConvergenceWarning"
    assert model.score(split.X_val * 10, split.y_val) > 0.9  # "even accurate - on millimetres"
    on_cm = model.score(split.X_val, split.y_val)
    assert 0.25 < on_cm < 0.4  # "no better than guessing (... it gets two in three wrong)"


def test_with_labels_puts_features_and_species_side_by_side_without_changing_them():
    split = split_iris(42)
    frame = with_labels(split.X_train, split.y_train)
    assert list(frame.columns) == [*FEATURE_NAMES, TARGET]
    assert frame.index.equals(split.X_train.index) and (frame[TARGET] == split.y_train).all()
    assert list(split.X_train.columns) == FEATURE_NAMES  # the features' frame is untouched
