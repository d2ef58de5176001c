"""mlops_helpers.registry against a real (temporary sqlite) tracking store and model registry."""

import mlflow
import pytest
from mlflow import MlflowClient

from mlflow_state import reset_mlflow_globals
from mlops_helpers import registry, tracking
from mlops_helpers.data import split_iris, split_iris_validation
from mlops_helpers.exceptions import RegistryError


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """One store for the read-only tests (a fresh sqlite store costs seconds of migrations): the seed's model
    (C=1.0, validation accuracy 27/28) in one experiment, then a weaker one (C=0.01, 25/28) in another, both
    fitted on the validation split's training rows and registered as versions 1 and 2 of ``iris-cmp`` with
    aliases champion -> 1, challenger -> 2."""
    folder = tmp_path_factory.mktemp("registry-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        tracking.setup_experiment(uri, "unit-registry-a")
        best = tracking.train_and_log(split_iris_validation(42), C=1.0, registered_model_name="iris-cmp")
        tracking.setup_experiment(uri, "unit-registry-b")
        worse = tracking.train_and_log(split_iris_validation(42), C=0.01, registered_model_name="iris-cmp")
        tracking.train_and_log(C=5.0)  # scored on the test rows only: never a candidate
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
    assert first.trained_now and first.accuracy == pytest.approx(27 / 28)  # validation accuracy of C=1.0
    assert "No logged iris model" in said[0] and "train_and_log" in said[0]
    assert MlflowClient().get_run(first.run_id).data.tags["created_by"] == "mlops_helpers.registry"

    again = registry.find_or_train_iris_model(random_state=42, announce=said.append)
    assert not again.trained_now
    assert (again.run_id, again.model_uri) == (first.run_id, first.model_uri)
    assert "Found the tracked iris model" in said[1]
    assert "validation accuracy 0.964" in said[1]
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


def test_ensure_challenger_finds_the_alias_or_registers_a_weaker_model(tracking_uri):
    tracking.setup_experiment(tracking_uri, "unit-registry-challenger")
    said = []
    champion = registry.ensure_champion("iris-ch", announce=said.append)
    challenger = registry.ensure_challenger("iris-ch", announce=said.append)
    assert (str(champion.version), str(challenger.version)) == ("1", "2")
    assert "There was no iris-ch@challenger" in said[-1] and "C=0.01" in said[-1]
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("iris-ch", "challenger").version) == "2"
    assert client.get_run(challenger.run_id).data.params["C"] == "0.01"
    split = split_iris_validation(42)
    scores = registry.score_versions("iris-ch", ["1", "2"], split.X_val, split.y_val)
    assert scores.loc[2, "accuracy"] < scores.loc[1, "accuracy"] and scores.loc[2, "differs_from_first"] > 0
    said.clear()
    assert str(registry.ensure_challenger("iris-ch", announce=said.append, distinct_from="1").version) == "2"
    assert "registered earlier" in said[0] and len(client.search_model_versions("name='iris-ch'")) == 2
    client.set_registered_model_alias("iris-ch", "champion", "2")  # a bad promotion left in place
    said.clear()
    third = registry.ensure_challenger("iris-ch", announce=said.append, distinct_from="2")
    assert str(third.version) == "3" and "the champion itself" in said[0]
    assert str(client.get_model_version_by_alias("iris-ch", "challenger").version) == "3"


def test_the_best_model_is_found_across_experiments(two_versions):
    best, worse = two_versions
    assert worse.accuracy < best.accuracy
    found = registry.find_logged_iris_model()
    assert found.run_id == best.run_id  # not the newest, nor the C=5.0 run that has only a test accuracy
    assert found.accuracy == pytest.approx(best.accuracy) == pytest.approx(27 / 28)
    model = mlflow.pyfunc.load_model(found.model_uri)
    X_test = split_iris(42).X_test
    assert (model.predict(X_test) == best.model.predict(X_test)).all()


def test_on_a_shared_server_only_the_students_own_experiments_are_searched(two_versions, monkeypatch):
    """A class's server lets every student read everyone's runs: the best model of a classmate ("unit-...": the
    store's experiments here) is never a student's own; the student's own experiments alone are searched."""
    best, worse = two_versions
    monkeypatch.setattr(tracking, "student_prefix", lambda uri=None, environ=None: "unit-registry-b")
    assert registry.find_logged_iris_model() is None  # "unit-registry-b" is an experiment, not a prefix of one
    monkeypatch.setattr(tracking, "student_prefix", lambda uri=None, environ=None: "unit")
    # both experiments are "unit-..." (this student's): the best of them, as without a prefix
    assert registry.find_logged_iris_model().run_id == best.run_id
    monkeypatch.setattr(tracking, "student_prefix", lambda uri=None, environ=None: "unit-registry")
    assert registry.find_logged_iris_model().run_id == best.run_id
    monkeypatch.setattr(tracking, "student_prefix", lambda uri=None, environ=None: "ada")
    assert registry.find_logged_iris_model() is None  # nothing of ada's: the classmates' models are not taken


def test_versions_frame_shows_aliases_and_accuracy(two_versions):
    best, worse = two_versions
    table = registry.versions_frame(MlflowClient().search_model_versions("name='iris-cmp'"))
    assert list(table.index) == [1, 2]
    assert table.loc[1, "aliases"] == "champion" and table.loc[2, "aliases"] == "challenger"
    assert table.loc[1, "run_id"] == best.run_id and table.loc[2, "run_id"] == worse.run_id
    assert table.loc[1, "val_accuracy"] == pytest.approx(27 / 28)
    assert table.loc[2, "val_accuracy"] == pytest.approx(25 / 28)


def test_score_versions_compares_predictions(two_versions):
    split = split_iris_validation(42)
    scores = registry.score_versions("iris-cmp", ["1", "2"], split.X_val, split.y_val)
    assert scores.loc[1, "accuracy"] == pytest.approx(27 / 28) and scores.loc[1, "wrong"] == 1
    assert scores.loc[2, "accuracy"] == pytest.approx(25 / 28) and scores.loc[2, "wrong"] == 3
    best, worse = two_versions
    differ = (best.model.predict(split.X_val) != worse.model.predict(split.X_val)).sum()
    assert scores.loc[2, "differs_from_first"] == differ
    assert scores.loc[2, "differs_from_first"] >= 2 and scores.loc[1, "differs_from_first"] == 0


def test_bad_names_are_clear_errors(two_versions):
    with pytest.raises(RegistryError, match="no model versions"):
        registry.versions_frame([])
    with pytest.raises(RegistryError, match="cannot load models:/no-such-model/1"):
        registry.score_versions("no-such-model", ["1"], split_iris(42).X_test, split_iris(42).y_test)
    with pytest.raises(RegistryError, match="cannot load models:/iris-cmp/7"):
        registry.score_versions("iris-cmp", ["1", "7"], split_iris(42).X_test, split_iris(42).y_test)
