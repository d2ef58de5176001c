"""Iris, the course's data set. It ships with scikit-learn, so nothing is downloaded."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

FEATURE_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TARGET_NAMES = ["setosa", "versicolor", "virginica"]
TARGET = "species"


def load_iris_frame() -> pd.DataFrame:
    """Iris as one DataFrame: four float feature columns with plain names, plus the integer ``species``."""
    bunch = load_iris()
    frame = pd.DataFrame(bunch.data, columns=FEATURE_NAMES)
    frame[TARGET] = bunch.target
    return frame


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
