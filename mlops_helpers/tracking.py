"""Tracking set-up and a fast train-and-log, shared by the lessons.

Conventions: an explicit ``tracking_uri`` wins, then ``MLFLOW_TRACKING_URI``, then
``sqlite:///mlflow.db`` in the working directory (MLflow 3's own default).

In a class that shares one tracking server (JupyterHub sets ``JUPYTERHUB_USER`` and the server's address in
``MLFLOW_TRACKING_URI``), experiment and registered-model names are each student's own: :func:`setup_experiment`
prefixes them with the user name (``ada-01-experiment-tracking``, ``ada-iris-classifier``), so a lesson runs
unchanged and never touches another student's runs or models (see :func:`class_name`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import mlflow
import mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

from .data import Split, ValidationSplit, split_iris
from .exceptions import TrackingError
from .ports import personalise_notebook_ports, rebind_notebook_variables

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "mlops-bridge"


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The tracking URI a lesson should use: explicit argument, else the environment, else sqlite.

    A relative sqlite path is made absolute (relative to the working directory), so that the commands a
    lesson starts from another folder (``mlflow run``, ``mlflow ui``) open the same database.
    """
    uri = str(tracking_uri) if tracking_uri else os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    return absolute_tracking_uri(uri)


def absolute_tracking_uri(uri: str) -> str:
    """``uri`` with a relative sqlite path made absolute; other URIs unchanged.

    ``sqlite:///mlflow.db`` means "mlflow.db in the current folder". Commands a lesson starts run in other
    folders (``mlflow run`` runs the project's command in the project's root), so they must be given the
    absolute path or they would open a different, empty store.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = uri[len(prefix) :]
    if path.startswith("/") or path == ":memory:":
        return uri
    return prefix + str(Path(path).resolve())


# The names a lesson's parameters cell holds that name things in the tracking store: on a shared server each is
# made the student's own (see :func:`personalise_notebook_names`).
NOTEBOOK_NAME_VARIABLES = ("experiment_name", "model_name")


def student_prefix(uri: str | None = None, environ=None) -> str | None:
    """The prefix that makes names a student's own, or ``None`` when the store is not shared.

    A store is shared by a class when it is a tracking server (``http(s)://``) and the notebook runs under
    JupyterHub (``JUPYTERHUB_USER`` is set); a local sqlite file is the student's alone and keeps plain names.
    """
    environ = os.environ if environ is None else environ
    user = (environ.get("JUPYTERHUB_USER") or "").strip()
    uri = uri if uri is not None else resolve_tracking_uri(None)
    if not user or not str(uri).startswith(("http://", "https://")):
        return None
    return user


def class_name(name: str, prefix: str | None) -> str:
    """``name`` made a student's own: ``<prefix>-<name>``; unchanged without a prefix or when already prefixed."""
    if not prefix or name == prefix or name.startswith(f"{prefix}-"):
        return name
    return f"{prefix}-{name}"


def personalise_notebook_names(prefix: str | None, namespace: dict | None = None) -> dict[str, str]:
    """On a shared store, rename the notebook's ``experiment_name`` and ``model_name`` variables to the student's
    own names, so that every later cell (``mlflow.search_runs``, ``register_model``, ``models:/NAME@champion``, the
    ``mlflow`` commands a lesson starts) uses them. ``namespace`` defaults to the running notebook's (IPython's user
    namespace); outside a notebook nothing is renamed. Returns ``{variable: new name}`` for what changed."""
    if not prefix:
        return {}
    changed = rebind_notebook_variables(
        NOTEBOOK_NAME_VARIABLES,
        lambda value: class_name(value, prefix) if isinstance(value, str) else value,
        namespace,
    )
    return {variable: new for variable, (_, new) in changed.items()}


def setup_experiment(tracking_uri: str | None = None, experiment_name: str = DEFAULT_EXPERIMENT):
    """Point MLflow at the store and experiment; returns the experiment.

    Also exports ``MLFLOW_TRACKING_URI`` so that the ``mlflow`` commands a lesson starts
    (``mlflow run``, ``mlflow models serve``, ``mlflow ui``) read the same store as the notebook.

    On a tracking server shared by a class (:func:`student_prefix`), the experiment is the student's own
    (``<user>-<experiment_name>``), and so are the notebook's ``experiment_name`` and ``model_name`` from then on
    (:func:`personalise_notebook_names`); it prints the names it chose. On a machine shared by a JupyterHub class,
    the notebook's ``port`` and ``ui_port`` become the student's own (:func:`mlops_helpers.ports.class_port`).
    """
    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    prefix = student_prefix(uri)
    if prefix:
        experiment_name = class_name(experiment_name, prefix)
        renamed = personalise_notebook_names(prefix)
        names = ", ".join(f"{variable} = {value!r}" for variable, value in renamed.items()) or experiment_name
        print(f"Shared class tracking server: your own names are {names}")
    moved = personalise_notebook_ports()
    if moved:
        ports = ", ".join(f"{variable} = {own} (not {plan})" for variable, (plan, own) in moved.items())
        print(f"Shared machine: your own ports are {ports}; the course's ports are shared by the class")
    mlflow.set_tracking_uri(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        if mlflow.get_experiment_by_name(experiment_name) is None:
            mlflow.create_experiment(experiment_name, artifact_location=artifact_location(uri))
        return mlflow.set_experiment(experiment_name)
    except Exception as exc:  # MLflow raises several types for an unreachable or broken store
        raise TrackingError(f"cannot use experiment {experiment_name!r} in tracking store {uri}: {exc}") from exc


def artifact_location(uri: str) -> str | None:
    """Where a new experiment in a sqlite store keeps its artifacts: ``mlruns/`` beside the database file.

    MLflow's own default for a database store is ``./mlruns`` in the *current* working directory, so a
    lesson run from notebooks/ against ``sqlite:///build/mlflow.db`` would scatter its models into
    notebooks/mlruns while their metadata sits in build/. ``None`` (MLflow's default) for other stores.
    """
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///")).resolve()
    return (database.parent / "mlruns").as_uri()


def check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, and clearly, when no MLflow tracking server answers at ``uri``.

    Without this, MLflow's HTTP client retries with back-off for minutes before it gives up.
    """
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout).raise_for_status()
    except requests.RequestException as exc:
        raise TrackingError(
            f"no MLflow tracking server answers at {uri} ({type(exc).__name__}). Start one "
            f"(`mlflow server --host 127.0.0.1 --port PORT`) or pass another tracking_uri."
        ) from exc


def pip_requirements() -> list[str]:
    """Pinned requirements for an iris scikit-learn model.

    Passing these to ``log_model(pip_requirements=...)`` skips MLflow's requirement inference, a
    subprocess that costs seconds. The list is what inference finds for
    this model anyway: MLflow's own default for the sklearn flavour plus the libraries it loads with.
    """
    reqs = list(mlflow.sklearn.get_default_pip_requirements(include_skops=True))
    for package in ("mlflow", "numpy", "pandas", "scipy"):
        reqs.append(f"{package}=={version(package)}")
    return reqs


@dataclass(frozen=True)
class LoggedModel:
    """What :func:`train_and_log` produced."""

    run_id: str
    model_uri: str
    accuracy: float
    model: LogisticRegression
    metric: str = "accuracy"  # the metric ``accuracy`` was logged as: test ``accuracy``, or ``val_accuracy``


def train_and_log(
    split: Split | ValidationSplit | None = None,
    *,
    max_iter: int = 200,
    C: float = 1.0,
    random_state: int = 42,
    name: str = "model",
    registered_model_name: str | None = None,
    run_name: str | None = None,
    tags: dict | None = None,
) -> LoggedModel:
    """Train the course's logistic regression on iris and log it the MLflow 3 way, in one run.

    Logs params, one accuracy, tags, and the model under ``name=`` with a signature, an input example and
    explicit pip requirements (fast). Call :func:`setup_experiment` first.

    With a :class:`~mlops_helpers.data.Split` (default: the seed's) the accuracy is measured on its test rows and
    logged as ``accuracy``: one model, checked once. With a :class:`~mlops_helpers.data.ValidationSplit` it is
    measured on the validation rows and logged as ``val_accuracy``, the number candidates are compared by; the
    test rows are not touched (the chosen model gets its ``test_accuracy`` later, once).
    """
    split = split or split_iris(random_state)
    if isinstance(split, ValidationSplit):
        metric, split = "val_accuracy", split.for_selection
    else:
        metric = "accuracy"
    model = LogisticRegression(max_iter=max_iter, C=C, random_state=random_state)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({"max_iter": max_iter, "C": C, "random_state": random_state, "model": "LogisticRegression"})
        model.fit(split.X_train, split.y_train)
        accuracy = float(model.score(split.X_test, split.y_test))
        mlflow.log_metric(metric, accuracy)
        mlflow.set_tags({"course": "mlops-bridge", **(tags or {})})
        signature = infer_signature(split.X_train, model.predict(split.X_train))
        info = mlflow.sklearn.log_model(
            model,
            name=name,
            signature=signature,
            input_example=split.X_train.head(3),
            pip_requirements=pip_requirements(),
            registered_model_name=registered_model_name,
        )
    return LoggedModel(run_id=run.info.run_id, model_uri=info.model_uri, accuracy=accuracy, model=model, metric=metric)
