"""Iris, the course's data set. It ships with scikit-learn, so nothing is downloaded."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pandas as pd
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

FEATURE_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TARGET_NAMES = ["setosa", "versicolor", "virginica"]
TARGET = "species"

# ``mlflow.log_input(mlflow.data.from_pandas(frame, targets="species"))`` infers the dataset's schema, and MLflow's
# schema inference (mlflow.types.utils._infer_schema) warns about any integer column that integers cannot hold
# missing values. Its advice is for model signatures fed with gappy data; here the only integer column is the
# species label, which is never missing, and the warning would print red text in lesson 01 on every dataset logged.
warnings.filterwarnings(
    "ignore",
    message="Hint: Inferred schema contains integer column",
    category=UserWarning,
    module=r"mlflow\.types\.utils",
)


def load_iris_frame() -> pd.DataFrame:
    """Iris as one DataFrame: four float feature columns with plain names, plus the integer ``species``."""
    bunch = load_iris()
    frame = pd.DataFrame(bunch.data, columns=FEATURE_NAMES)
    frame[TARGET] = bunch.target
    return frame


def with_labels(X: pd.DataFrame, y: pd.Series) -> pd.DataFrame:
    """Features and their labels as one frame (the label column is ``species``): the rows of one part of a split as a
    dataset, for ``mlflow.data.from_pandas(with_labels(X, y), name=..., targets="species")``."""
    return X.assign(**{TARGET: y})


@dataclass(frozen=True)
class Split:
    """A train/test split of iris; features are DataFrames so MLflow can infer a named signature."""

    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series

    def __iter__(self):  # allows ``X_train, X_test, y_train, y_test = split``
        return iter((self.X_train, self.X_test, self.y_train, self.y_test))


def split_iris(random_state: int | None = 42, test_size: float = 0.25) -> Split:
    """The seed's split (``train_test_split(..., random_state=42)``), on named columns.

    Same rows as the seed's ``train_test_split(iris.data, iris.target, random_state=42)``.

    ``random_state=None`` gives a different split each call: lesson 02 uses it to show why an
    unseeded split makes results irreproducible.
    """
    frame = load_iris_frame()
    X_train, X_test, y_train, y_test = train_test_split(
        frame[FEATURE_NAMES],
        frame[TARGET],
        test_size=test_size,
        random_state=random_state,
    )
    return Split(X_train, X_test, y_train, y_test)


@dataclass(frozen=True)
class ValidationSplit:
    """Train, validation and test rows of iris: every choice is made on validation, the test set is the final check.

    ``X_train``/``y_train`` fit the models; ``X_val``/``y_val`` choose between them (a hyperparameter, a model
    version, a quality gate); ``X_test``/``y_test`` are looked at once, for the model that was chosen. A score
    used to pick the best of several candidates is biased upwards (the winner is partly the luckiest), so it can
    no longer estimate how the winner does on new data: that is what the untouched test set is kept for.
    """

    X_train: pd.DataFrame
    X_val: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_val: pd.Series
    y_test: pd.Series

    @property
    def for_selection(self) -> Split:
        """Fit on the training rows, score on the validation rows (the test rows are not in it)."""
        return Split(self.X_train, self.X_val, self.y_train, self.y_val)

    @property
    def held_out(self) -> tuple[pd.DataFrame, pd.Series]:
        """Every row the models were not fitted on (validation and test), as one frame and one series."""
        return pd.concat([self.X_val, self.X_test]), pd.concat([self.y_val, self.y_test])


def split_iris_validation(
    random_state: int | None = 42, validation_size: float = 0.25, test_size: float = 0.25
) -> ValidationSplit:
    """The seed's split, with a validation part carved out of its training rows.

    The test rows are exactly those of :func:`split_iris` (the seed's 38 flowers with ``random_state=42``); the
    seed's 112 training rows are split again, stratified by species, into 84 training and 28 validation rows
    (``validation_size`` is a share of the training rows).
    """
    seed = split_iris(random_state, test_size=test_size)
    X_train, X_val, y_train, y_val = train_test_split(
        seed.X_train,
        seed.y_train,
        test_size=validation_size,
        random_state=random_state,
        stratify=seed.y_train,
    )
    return ValidationSplit(X_train, X_val, seed.X_test, y_train, y_val, seed.y_test)
