import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from mlops_helpers.data import FEATURE_NAMES, TARGET, load_iris_frame, split_iris, split_iris_validation


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


def test_validation_split_keeps_the_seeds_test_rows_and_carves_validation_from_its_training_rows():
    seed = split_iris(42)
    three = split_iris_validation(42)
    assert three.X_test.index.tolist() == seed.X_test.index.tolist()
    assert three.y_test.tolist() == seed.y_test.tolist()
    train, val, test = set(three.X_train.index), set(three.X_val.index), set(three.X_test.index)
    assert (len(train), len(val), len(test)) == (84, 28, 38)
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val == set(seed.X_train.index)
    # stratified: each species keeps its share of the seed's training rows in the validation rows
    for species, n in seed.y_train.value_counts().items():
        assert abs((three.y_val == species).sum() - n * 28 / 112) < 1
    assert (three.X_train.index == three.y_train.index).all()


def test_selection_split_never_contains_a_test_row_and_held_out_is_validation_plus_test():
    three = split_iris_validation(42)
    selection = three.for_selection
    assert selection.X_test.index.tolist() == three.X_val.index.tolist()
    assert not set(selection.X_train.index) & set(three.X_test.index)
    assert not set(selection.X_test.index) & set(three.X_test.index)
    X, y = three.held_out
    assert sorted(X.index) == sorted(set(three.X_val.index) | set(three.X_test.index))
    assert (X.index == y.index).all()
    assert split_iris_validation(7).X_val.index.tolist() == split_iris_validation(7).X_val.index.tolist()
