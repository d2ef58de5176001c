"""The seed lesson's code example vs ``tracking.train_and_log``, timed side by side in one process.

``python -m benchmarks tracking [--repeats N]``. Both log the same model to the same fresh, temporary sqlite store,
alternating (seed, fast, seed, fast, ...) so that load from other processes falls on both alike. Prints each
side's times, the medians and their ratio (goal: the helper at least 3x faster). The seed's ``log_model`` infers
pip requirements in a subprocess and uses the deprecated ``artifact_path``; its warning is expected here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

GOAL = 3.0


def seed_example() -> float:
    """The seed lesson's code example as written (only the print is left out); returns its accuracy."""
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    iris = load_iris()
    X_train, X_test, y_train, y_test = train_test_split(iris.data, iris.target, random_state=42)
    with mlflow.start_run():
        model = LogisticRegression(max_iter=200)
        model.fit(X_train, y_train)
        mlflow.sklearn.log_model(model, "model")
        accuracy = model.score(X_test, y_test)
        mlflow.log_metric("accuracy", accuracy)
    return accuracy


def helper_example() -> float:
    from mlops_helpers import tracking

    return tracking.train_and_log(max_iter=200, random_state=42).accuracy


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks tracking", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions of each side (default: 3)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    from tqdm import tqdm

    from mlops_helpers import tracking

    sides = {'seed example (log_model(model, "model"))': seed_example, "tracking.train_and_log": helper_example}
    times: dict[str, list[float]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as folder:
        tracking.setup_experiment(f"sqlite:///{Path(folder) / 'mlflow.db'}", "bench-tracking")
        helper_example()  # warm-up: imports and the store's first writes are not what is measured
        # The seed's "`artifact_path` is deprecated" line on stderr is expected: it is the code as written.
        with tqdm(total=2 * args.repeats, desc="tracking", file=sys.stderr) as bar:
            for _ in range(args.repeats):
                for name, function in sides.items():
                    started = time.perf_counter()
                    accuracy = function()
                    times[name].append(time.perf_counter() - started)
                    if accuracy != 1.0:
                        print(f"{name}: unexpected accuracy {accuracy}", file=sys.stderr)
                        return 1
                    bar.update()
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:45s} median {medians[name]:6.2f} s   runs: {', '.join(f'{v:.2f}' for v in values)}")
    seed_median, helper_median = medians.values()
    ratio = seed_median / helper_median
    print(f"ratio seed / train_and_log: {ratio:.1f}x (goal >= {GOAL:.0f}x){'' if ratio >= GOAL else '  BELOW GOAL'}")
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
