"""Student-side helpers for the MLOps Bridge course.

The lessons import these modules for plumbing (data loading, tracking set-up, ports, processes,
drift maths) so that lesson cells stay short and show the real MLflow calls being taught.
One module owns each concern:

- :mod:`mlops_helpers.data`       iris as a DataFrame, the seed's train/test split, a train/validation/test split
- :mod:`mlops_helpers.tracking`   tracking URI and experiment set-up, a fast train-and-log
- :mod:`mlops_helpers.registry`   registered models and aliases the lessons need, versions side by side
- :mod:`mlops_helpers.serving`    real ``mlflow models serve`` / ``mlflow ui`` processes: start, readiness, stop
- :mod:`mlops_helpers.ports`      is a port free, which one is
- :mod:`mlops_helpers.processes`  the ``mlflow`` CLI, its environment, stopping a whole process group
- :mod:`mlops_helpers.models`     checking a model URI before a server is launched for it
- :mod:`mlops_helpers.cell_hooks` stopping a server when a notebook cell fails
- :mod:`mlops_helpers.payloads`   request bodies for ``/invocations`` and the server's error messages
- :mod:`mlops_helpers.latency`    timing sequential requests: p50, p99, throughput
- :mod:`mlops_helpers.monitoring` simulated traffic from held-out rows, drift statistics, alerts
- :mod:`mlops_helpers.gates`      the quality gate a candidate passes before ``@champion`` moves
- :mod:`mlops_helpers.notebooks`  executing lesson notebooks headless (papermill), used by ``make course``
- :mod:`mlops_helpers.exceptions` every error this package raises
"""

__version__ = "0.1.0"
