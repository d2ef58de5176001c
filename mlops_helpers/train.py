"""The MLflow Project's entry point: train the course's iris model and log it, from the command line.

``MLproject`` at the repository root runs it (``mlflow run . -P max_iter=300``); it also runs on its own::

    python -m mlops_helpers.train --max-iter 200 --C 1.0 --random-state 42 --experiment-name my-experiment

Under ``mlflow run`` the run already exists (MLflow passes its ID in ``MLFLOW_RUN_ID``) and has the
``-P`` parameters recorded as the text typed; this script logs into that run. On its own it creates
a run in ``--experiment-name`` of the store given by ``--tracking-uri`` / ``MLFLOW_TRACKING_URI``.
Bad values are refused before anything is trained or logged, with a message naming the option.
"""

from __future__ import annotations

import argparse
import os
import sys

PROG = "mlops_helpers.train"


def positive_int(text: str) -> int:
    """argparse type: a whole number > 0 (``max_iter``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number greater than 0, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number greater than 0, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (``random_state``: numpy seeds cannot be negative)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number 0 or greater, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number 0 or greater, got {text!r}")
    return value


def positive_number(text: str) -> int | float:
    """argparse type: a number > 0 (``C``), kept as ``int`` when written as one.

    Keeping ``1`` as ``1`` (not ``1.0``) matters under ``mlflow run``: MLflow records ``-P C=1`` as the
    text ``"1"`` and refuses a later ``log_param("C", 1.0)`` as an attempt to change the value.
    """
    try:
        value: int | float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):  # `not >` also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train the course's logistic regression on iris (the seed's split) and log it to MLflow: "
        "params, the test accuracy, and the model (signature, input example, pinned requirements). "
        "This is the entry point of the repository's MLproject (`mlflow run . -P max_iter=300`).",
    )
    parser.add_argument("--max-iter", type=positive_int, default=200, help="solver iterations (default: 200)")
    parser.add_argument(
        "--C",
        type=positive_number,
        default=1.0,
        help="inverse regularisation strength; smaller means a simpler model (default: 1.0)",
    )
    parser.add_argument(
        "--random-state",
        type=non_negative_int,
        default=42,
        help="seed of the train/test split and the model (default: 42, the seed lesson's)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="tracking store when run on its own "
        "(default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db); "
        "ignored under `mlflow run`, which chooses the store",
    )
    parser.add_argument(
        "--experiment-name",
        default=None,
        help="experiment when run on its own (default: mlops-bridge); ignored under `mlflow run`, "
        "whose --experiment-name chooses it",
    )
    return parser


def check_recorded_params(run_id: str, values: dict) -> None:
    """Refuse to train when ``mlflow run`` recorded a parameter as text this script would log differently.

    Example: ``-P C=1e-2`` is recorded as ``"1e-2"``; the model trains with 0.01 and would log ``"0.01"``,
    which MLflow rejects only after training. Saying so first, with the fix, is clearer.
    """
    from mlflow import MlflowClient

    recorded = MlflowClient().get_run(run_id).data.params
    for key, value in values.items():
        if key in recorded and recorded[key] != str(value):
            raise SystemExit(
                f"{PROG}: error: -P {key}={recorded[key]} is read as {value}; MLflow keeps parameters as the text "
                f"typed and would refuse to record it again as {value!s}. Write it as -P {key}={value}."
            )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 with "argument --max-iter: must be ..." on bad input

    import mlflow

    from . import tracking

    project_run_id = os.environ.get("MLFLOW_RUN_ID")  # set by `mlflow run` for the command it starts
    if project_run_id:
        check_recorded_params(
            project_run_id, {"max_iter": args.max_iter, "C": args.C, "random_state": args.random_state}
        )
    else:
        tracking.setup_experiment(args.tracking_uri, args.experiment_name or tracking.DEFAULT_EXPERIMENT)
    result = tracking.train_and_log(
        max_iter=args.max_iter,
        C=args.C,
        random_state=args.random_state,
        tags={"entry_point": PROG},
    )
    print(f"run_id={result.run_id}")
    print(f"accuracy={result.accuracy:.4f}")
    print(f"model_uri={result.model_uri}")
    print(f"tracking_uri={mlflow.get_tracking_uri()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
