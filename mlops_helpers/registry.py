"""Model-registry plumbing for lessons 03 and 04.

The lessons show the registry calls themselves (``mlflow.register_model``, ``registered_model_name=``,
``MlflowClient().set_registered_model_alias``, ``get_model_version_by_alias``, ``search_model_versions``,
``mlflow.pyfunc.load_model("models:/<name>@champion")``). What lives here is what a lesson needs *before* it
can teach, and the tables it prints:

- :func:`find_or_train_iris_model`: the iris model tracked earlier (lesson 01) — or, when a lesson runs on its
  own in an empty store, one trained now with :func:`mlops_helpers.tracking.train_and_log`, *saying so*;
- :func:`ensure_champion`: a registered model with a ``champion`` alias (lesson 04 serves ``@champion``);
- :func:`ensure_challenger`: a second, weaker version with a ``challenger`` alias (lesson 04 promotes it while a
  server runs, to show that a running server keeps the version it loaded);
- :func:`versions_frame` and :func:`score_versions`: versions side by side, with their accuracy.

Every comparison here is on **validation** rows (:func:`mlops_helpers.data.split_iris_validation`): models are
chosen by ``val_accuracy``; the test rows are kept for the final check of the model that was chosen.

Aliases only, never stages (deprecated in MLflow 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from . import tracking
from .data import split_iris_validation
from .exceptions import RegistryError

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class FoundModel:
    """A logged iris model: where it is, the run that logged it, its validation accuracy, whether it is new."""

    model_uri: str
    run_id: str
    accuracy: float | None  # the run's val_accuracy
    trained_now: bool


def find_logged_iris_model() -> FoundModel | None:
    """The best iris model already logged in the store: highest ``val_accuracy``, the earliest on ties.

    Looks in every experiment (lesson 01 logs into its own), at runs that logged a ``val_accuracy`` metric (a
    model scored on validation rows) and a model. Runs scored only on the test rows are not candidates: choosing
    by test accuracy would spend the test set. On a tie the earlier run wins (lesson 01's sweep goes from the
    simplest model up). Returns ``None`` when there is none.

    On a tracking server shared by a class (:func:`mlops_helpers.tracking.student_prefix`), every student may read
    everyone's runs: only the student's own experiments (``<user>-...``) are searched, so a lesson never picks up,
    and then fails to register (HTTP 403), a classmate's model.
    """
    scope = {"search_all_experiments": True}
    prefix = tracking.student_prefix(mlflow.get_tracking_uri())
    if prefix:
        own = [
            e.experiment_id
            for e in mlflow.search_experiments(filter_string=f"name LIKE '{prefix}-%'")
            if e.name.startswith(f"{prefix}-")  # LIKE's '_' matches any character; a name's own does not
        ]
        if not own:
            return None
        scope = {"experiment_ids": own}
    runs = mlflow.search_runs(
        **scope,
        filter_string="metrics.val_accuracy >= 0",
        order_by=["metrics.val_accuracy DESC", "attributes.start_time ASC"],
        max_results=100,
        output_format="list",
    )
    for run in runs:
        outputs = run.outputs.model_outputs if run.outputs else []
        if outputs:
            return FoundModel(
                model_uri=f"models:/{outputs[0].model_id}",
                run_id=run.info.run_id,
                accuracy=run.data.metrics.get("val_accuracy"),
                trained_now=False,
            )
    return None


def find_or_train_iris_model(*, random_state: int = 42, announce=print) -> FoundModel:
    """The tracked iris model (see :func:`find_logged_iris_model`), or a new one logged in the current experiment.

    ``announce`` receives one sentence saying which happened (the lesson prints it, so a student running the
    lesson on its own in an empty store knows where the model came from).
    """
    found = find_logged_iris_model()
    if found is not None:
        announce(
            f"Found the tracked iris model {found.model_uri} (run {found.run_id}, "
            f"validation accuracy {found.accuracy:.3f})."
        )
        return found
    announce(
        "No logged iris model in this tracking store (lesson 01 has not been run against it), so one is trained "
        "and logged now with mlops_helpers.tracking.train_and_log - the same model lesson 01 logs."
    )
    logged = tracking.train_and_log(
        split_iris_validation(random_state),
        random_state=random_state,
        run_name="iris-baseline",
        tags={"created_by": "mlops_helpers.registry"},
    )
    return FoundModel(logged.model_uri, logged.run_id, logged.accuracy, trained_now=True)


def ensure_champion(model_name: str, *, random_state: int = 42, announce=print):
    """The ``ModelVersion`` behind ``models:/<model_name>@champion``, creating it when missing.

    When the registered model or its alias does not exist (lesson 04 run on its own), the tracked iris model
    (or a freshly trained one) is registered as a new version and the alias set on it — and it is said.
    """
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
        announce(f"models:/{model_name}@{CHAMPION} is version {version.version} (registered earlier, lesson 03).")
        return version
    except MlflowException:
        pass
    found = find_or_train_iris_model(random_state=random_state, announce=announce)
    version = mlflow.register_model(found.model_uri, model_name)
    client.set_registered_model_alias(model_name, CHAMPION, version.version)
    announce(
        f"There was no {model_name}@{CHAMPION} in this store (lesson 03 not run here): registered "
        f"{found.model_uri} as version {version.version} of {model_name!r} and pointed '{CHAMPION}' at it."
    )
    return client.get_model_version(model_name, version.version)


def ensure_challenger(model_name: str, *, C: float = 0.01, random_state: int = 42, distinct_from=None, announce=print):
    """The ``ModelVersion`` behind ``models:/<model_name>@challenger``, creating it when missing.

    Lesson 03 sets this alias on a strongly regularised model (``C=0.01``). When it is missing (lesson 04 run on its
    own), or when it points at version ``distinct_from`` (the champion: lesson 03 stopped after its bad promotion),
    such a model is logged, registered and given the alias now, and it is said.
    """
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(model_name, CHALLENGER)
        if distinct_from is None or str(version.version) != str(distinct_from):
            announce(f"models:/{model_name}@{CHALLENGER} is version {version.version} (registered earlier, lesson 03).")
            return version
        announce(
            f"models:/{model_name}@{CHALLENGER} is version {version.version}, the champion itself: "
            f"a different model is needed."
        )
    except MlflowException:
        pass
    logged = tracking.train_and_log(
        split_iris_validation(random_state),
        C=C,
        random_state=random_state,
        run_name="challenger",
        registered_model_name=model_name,
        tags={"created_by": "mlops_helpers.registry"},
    )
    [version] = client.search_model_versions(f"name='{model_name}' and run_id='{logged.run_id}'")
    client.set_registered_model_alias(model_name, CHALLENGER, version.version)
    announce(
        f"There was no {model_name}@{CHALLENGER} in this store (lesson 03 not run here): logged a model with C={C} "
        f"as version {version.version} of {model_name!r} and pointed '{CHALLENGER}' at it."
    )
    return client.get_model_version(model_name, version.version)


def versions_frame(versions):
    """A table of ``ModelVersion`` objects (e.g. from ``search_model_versions``): one row per version, oldest
    first, with its aliases, run and that run's ``val_accuracy``."""
    import pandas as pd

    client = MlflowClient()
    aliases: dict[tuple[str, str], list[str]] = {}
    # search_model_versions leaves ModelVersion.aliases empty on SQL stores: the registered model knows them.
    for name in {mv.name for mv in versions}:
        for alias, number in client.get_registered_model(name).aliases.items():
            aliases.setdefault((name, str(number)), []).append(alias)
    rows = []
    for mv in versions:
        accuracy = None
        if mv.run_id:
            try:
                accuracy = client.get_run(mv.run_id).data.metrics.get("val_accuracy")
            except MlflowException:  # the run was deleted: the version outlives it
                accuracy = None
        rows.append(
            {
                "version": int(mv.version),
                "aliases": ", ".join(sorted(aliases.get((mv.name, str(mv.version)), []))) or "-",
                "run_id": mv.run_id,
                "val_accuracy": accuracy,
                "status": mv.status,
            }
        )
    if not rows:
        raise RegistryError("no model versions to show (is the model name right?)")
    return pd.DataFrame(rows).sort_values("version").set_index("version")


def score_versions(model_name: str, versions, X, y):
    """Load each version with ``mlflow.pyfunc.load_model("models:/<name>/<version>")`` and score it on ``X, y``
    (give it validation rows: this table is for choosing): accuracy, number of wrong flowers, and on how many
    flowers each version predicts differently from the first one given."""
    import numpy as np
    import pandas as pd

    truth = np.asarray(y)
    predictions, rows = {}, []
    for v in versions:
        v = str(getattr(v, "version", v))
        try:
            model = mlflow.pyfunc.load_model(f"models:/{model_name}/{v}")
        except MlflowException as exc:
            raise RegistryError(f"cannot load models:/{model_name}/{v}: {exc.message}") from exc
        predictions[v] = np.asarray(model.predict(X))
        rows.append(
            {
                "version": int(v),
                "accuracy": float((predictions[v] == truth).mean()),
                "wrong": int((predictions[v] != truth).sum()),
            }
        )
    first = next(iter(predictions.values()))
    for row in rows:
        row["differs_from_first"] = int((predictions[str(row["version"])] != first).sum())
    return pd.DataFrame(rows).set_index("version")
