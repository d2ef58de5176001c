"""Put MLflow's process-wide state back to "nothing set" after a test changed it.

``mlflow.set_tracking_uri``/``set_registry_uri``/``set_experiment`` also export MLFLOW_TRACKING_URI,
MLFLOW_REGISTRY_URI and MLFLOW_EXPERIMENT_ID, which every kernel or CLI a later test starts inherits: a
stale one sends later lessons' runs or registered models to a previous test's store (or makes
``mlflow run --experiment-name`` refuse to start). Restoring "the previous URI" is not enough, since
MLflow reports its default as if it had been set.
"""

import os


def reset_mlflow_globals() -> None:
    import mlflow

    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # also unsets MLFLOW_TRACKING_URI
    mlflow.set_registry_uri(None)
    for name in ("MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        os.environ.pop(name, None)
