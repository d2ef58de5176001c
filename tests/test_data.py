import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from mlops_helpers.data import FEATURE_NAMES, TARGET, load_iris_frame, split_iris


def test_frame_has_named_features_and_150_rows():
    frame = load_iris_frame()
    assert list(frame.columns) == FEATURE_NAMES + [TARGET]
    assert frame.shape == (150, 5)
    assert sorted(frame[TARGET].unique()) == [0, 1, 2]


def test_split_is_the_seeds_split():
    iris = load_iris()
    X_train, X_test, y_train, y_test = train_test_split(iris.data, iris.target, random_state=42)
    split = split_iris(42)
    np.testing.assert_array_equal(split.X_train.to_numpy(), X_train)
    np.testing.assert_array_equal(split.y_test.to_numpy(), y_test)
    assert len(split.X_test) == 38


def test_seeded_split_is_reproducible_and_unseeded_is_not():
    assert split_iris(7).X_test.index.tolist() == split_iris(7).X_test.index.tolist()
    draws = {tuple(split_iris(None).X_test.index) for _ in range(5)}
    assert len(draws) > 1
