"""Where a model URI points: checked with MLflow before a server is launched for it.

A server given a URI that names nothing dies ~10 s after launch with a long traceback; :func:`check_model_uri`
says the same in well under a second, naming the URI and the tracking store it looked in.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import urlparse

from .exceptions import ModelNotFoundError


def check_model_uri(model_uri: str, tracking_uri: str | None = None) -> None:
    """Raise :class:`ModelNotFoundError` unless ``model_uri`` names a model MLflow can load.

    Fetches only the model's ``MLmodel`` file through the MLflow client (``runs:/``, ``models:/name/version``,
    ``models:/name@alias``, ``models:/<model id>``, local paths), in a fraction of a second.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from .tracking import resolve_tracking_uri

    uri = str(model_uri)
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        local = Path(urlparse(uri).path if scheme else uri)
        if not (local / "MLmodel").is_file():
            raise ModelNotFoundError(f"no MLflow model at {uri}: {local / 'MLmodel'} does not exist")
        return
    store = resolve_tracking_uri(tracking_uri)
    # Explicit URIs only: this runs in the caller's process (a lesson kernel, the test process), whose global
    # tracking/registry URIs -- and the MLFLOW_*_URI variables MLflow exports with them -- must not change.
    with tempfile.TemporaryDirectory() as tmp:
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{uri.rstrip('/')}/MLmodel", dst_path=tmp, tracking_uri=store, registry_uri=store
            )
            return
        except MlflowException as exc:
            error = exc
    # models:/<model id> names a logged model (MLflow 3), which download_artifacts takes for a registered name.
    name = uri.removeprefix("models:/").rstrip("/")
    if uri.startswith("models:/") and name.startswith("m-") and "/" not in name and "@" not in name:
        try:
            mlflow.MlflowClient(tracking_uri=store).get_logged_model(name)
            return
        except MlflowException:
            pass
    raise ModelNotFoundError(
        f"no model at {uri} in the tracking store {store}: {error.message} "
        f"(check the run id, the registered model's name, version or alias, and the tracking URI)"
    ) from error
