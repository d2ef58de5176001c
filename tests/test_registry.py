"""mlops_helpers.registry against a real (temporary sqlite) tracking store and model registry."""

import mlflow
import pytest
from mlflow_state import reset_mlflow_globals
from mlflow import MlflowClient

from mlops_helpers import registry, tracking
from mlops_helpers.data import split_iris
from mlops_helpers.exceptions import RegistryError


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """One store for the read-only tests (a fresh sqlite store costs ~8 s of migrations here): the seed's model
    (C=1.0, accuracy 1.0) in one experiment, then a weaker one (C=0.01, 34/38) in another, both registered as
    versions 1 and 2 of ``iris-cmp`` with aliases champion -> 1, challenger -> 2."""
    folder = tmp_path_factory.mktemp("registry-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        tracking.setup_experiment(uri, "unit-registry-a")
        best = tracking.train_and_log(C=1.0, registered_model_name="iris-cmp")
        tracking.setup_experiment(uri, "unit-registry-b")
        worse = tracking.train_and_log(C=0.01, registered_model_name="iris-cmp")
        client = MlflowClient()
        client.set_registered_model_alias("iris-cmp", "champion", "1")
        client.set_registered_model_alias("iris-cmp", "challenger", "2")
        yield best, worse
    reset_mlflow_globals()


def test_empty_store_find_or_train_then_find_then_champion(tracking_uri):
    tracking.setup_experiment(tracking_uri, "unit-registry-train")
    assert registry.find_logged_iris_model() is None

    said = []
    first = registry.find_or_train_iris_model(random_state=42, announce=said.append)
    assert first.trained_now and first.accuracy == 1.0
    assert "No logged iris model" in said[0] and "train_and_log" in said[0]
    assert MlflowClient().get_run(first.run_id).data.tags["created_by"] == "mlops_helpers.registry"

    again = registry.find_or_train_iris_model(random_state=42, announce=said.append)
    assert not again.trained_now
    assert (again.run_id, again.model_uri) == (first.run_id, first.model_uri)
    assert "Found the tracked iris model" in said[1]
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == 1

    said.clear()
    version = registry.ensure_champion("iris-unit", announce=said.append)
    assert str(version.version) == "1" and "champion" in version.aliases
    assert version.run_id == first.run_id  # the tracked model was registered, not a new one trained
    assert any("registered" in s and "iris-unit@champion" in s for s in said)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("iris-unit", "champion").version) == "1"

    said.clear()
    assert str(registry.ensure_champion("iris-unit", announce=said.append).version) == "1"
    assert "registered earlier" in said[0]
    assert len(client.search_model_versions("name='iris-unit'")) == 1
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == 1


def test_the_best_model_is_found_across_experiments(two_versions):
    best, worse = two_versions
    assert worse.accuracy < best.accuracy
    found = registry.find_logged_iris_model()
    assert found.run_id == best.run_id  # not the newest one
    assert found.accuracy == pytest.approx(best.accuracy)
    model = mlflow.pyfunc.load_model(found.model_uri)
    X_test = split_iris(42).X_test
    assert (model.predict(X_test) == best.model.predict(X_test)).all()


def test_versions_frame_shows_aliases_and_accuracy(two_versions):
    best, worse = two_versions
    table = registry.versions_frame(MlflowClient().search_model_versions("name='iris-cmp'"))
    assert list(table.index) == [1, 2]
    assert table.loc[1, "aliases"] == "champion" and table.loc[2, "aliases"] == "challenger"
    assert table.loc[1, "run_id"] == best.run_id and table.loc[2, "run_id"] == worse.run_id
    assert table.loc[1, "accuracy"] == 1.0
    assert table.loc[2, "accuracy"] == pytest.approx(34 / 38)


def test_score_versions_compares_predictions(two_versions):
    scores = registry.score_versions("iris-cmp", ["1", "2"])
    assert scores.loc[1, "accuracy"] == 1.0 and scores.loc[1, "wrong"] == 0
    assert scores.loc[2, "accuracy"] == pytest.approx(34 / 38) and scores.loc[2, "wrong"] == 4
    assert scores.loc[2, "differs_from_first"] == 4  # v1 is right everywhere, so v2 differs where it is wrong
    assert scores.loc[1, "differs_from_first"] == 0


def test_bad_names_are_clear_errors(two_versions):
    with pytest.raises(RegistryError, match="no model versions"):
        registry.versions_frame([])
    with pytest.raises(RegistryError, match="cannot load models:/no-such-model/1"):
        registry.score_versions("no-such-model", ["1"])
    with pytest.raises(RegistryError, match="cannot load models:/iris-cmp/7"):
        registry.score_versions("iris-cmp", ["1", "7"])
