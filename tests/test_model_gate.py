"""Model tests: the quality gate of lesson 06 as a CI pipeline runs it, under pytest. Students: read me.

Against a registered model in your tracking store (what a CI job does before it moves the ``champion`` alias):

    MLFLOW_TRACKING_URI=sqlite:///notebooks/mlflow.db MODEL_URI=models:/iris-classifier@challenger \\
        .venv/bin/pytest tests/test_model_gate.py

Without ``MODEL_URI`` the tests train and log a model in a temporary store first: that is how the course's
own test suite runs them. Each test is one gate; a failing test blocks the promotion.
"""

import os

import mlflow
import numpy as np
import pytest

from mlops_helpers import gates, tracking
from mlops_helpers.data import FEATURE_NAMES, split_iris_validation

MIN_ACCURACY = float(os.environ.get("MIN_ACCURACY", "0.9"))


@pytest.fixture(scope="module")
def split():
    """Train / validation / test rows: the gate decides on validation rows, never on the test rows."""
    return split_iris_validation(42)


@pytest.fixture(scope="module")
def model(split, tmp_path_factory):
    """The model under test: ``MODEL_URI`` from the environment, or one trained now in a temporary store."""
    uri = os.environ.get("MODEL_URI")
    if not uri:
        store = tmp_path_factory.mktemp("gate")
        tracking.setup_experiment(f"sqlite:///{store / 'mlflow.db'}", "model-gate")
        uri = tracking.train_and_log(split).model_uri
    return mlflow.pyfunc.load_model(uri)


def test_training_data_is_valid(split):
    check = gates.validate_data(split.X_train, split.y_train)
    assert check.passed, check.detail


def test_holdout_accuracy_reaches_the_bar(model, split):
    accuracy = float(np.mean(model.predict(split.X_val) == split.y_val.to_numpy()))
    check = gates.accuracy_at_least(accuracy, MIN_ACCURACY)
    assert check.passed, check.detail


def test_signature_is_the_serving_contract(model):
    signature = model.metadata.signature
    assert signature is not None, "log the model with a signature (infer_signature)"
    assert [c.name for c in signature.inputs.inputs] == FEATURE_NAMES
    assert {c.type.name for c in signature.inputs.inputs} == {"double"}


def test_predictions_are_known_classes_and_deterministic(model, split):
    first = np.asarray(model.predict(split.X_val))
    assert set(np.unique(first)) <= {0, 1, 2}
    np.testing.assert_array_equal(first, np.asarray(model.predict(split.X_val)))


def test_model_refuses_input_without_the_expected_columns(model, split):
    with pytest.raises(mlflow.exceptions.MlflowException):
        model.predict(split.X_val.drop(columns="petal_width"))
