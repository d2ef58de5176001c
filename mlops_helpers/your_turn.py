"""Checks for the lessons' "your turn" cells: the student writes the code, the next cell answers at once.

Each lesson has at least one code cell tagged ``your-turn`` that ships with a placeholder (``answer = ...  # your
code here``), followed by a cell that calls one function of this module on what the student wrote. A check never
raises and never prints the answer: it prints either

    ✓ <what is right>                      and returns True, or
    not yet: <what is wrong, and where to look>   and returns False.

So a lesson still runs top to bottom with the placeholder in place (headless, under papermill): the check cell says
"not yet" and the lesson goes on. Every check is wrapped in :func:`never_raises`: an answer no hint foresaw (an
object that fails when touched) is still answered with "not yet", naming what went wrong. The hints name the
mistake (a missing filter, a wrong payload key, an empty bin's ``log(0)``), never the value or the code that would
pass.

Judging plain values reuses :mod:`mlops_helpers.checks` (the assignments' check cells): :func:`~.checks.judge`
compares a number with ``close_to``, :func:`~.checks.to_plain` turns numpy and pandas results into plain data.
"""

from __future__ import annotations

import dataclasses
import dis
import functools
import json
import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from .checks import judge, to_plain

PASSED = "✓"
NOT_YET = "not yet:"


def passed(text: str) -> bool:
    print(f"{PASSED} {text}")
    return True


def not_yet(hint: str) -> bool:
    print(f"{NOT_YET} {hint}")
    return False


def never_raises(check: Callable[..., bool]) -> Callable[..., bool]:
    """A check's promise: whatever the student's code gave, it answers (a lesson must run on past it)."""

    @functools.wraps(check)
    def answering(*args, **kwargs) -> bool:
        try:
            return check(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - an answer the check did not foresee is still an answer
            return not_yet(f"the check could not make sense of your answer ({type(exc).__name__}: {exc})"[:300])

    return answering


def is_placeholder(value: Any) -> bool:
    """True for what a your-turn cell ships with: ``...`` (Ellipsis), or a function whose body is only ``...``."""
    if value is Ellipsis:
        return True
    code = getattr(value, "__code__", None)
    if code is None:
        return False
    # a body of ``...`` (after a docstring or not) compiles to "return None" and nothing else
    ops = [(i.opname, i.argval) for i in dis.get_instructions(code) if i.opname not in ("RESUME", "NOP", "CACHE")]
    return ops in ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


def _described(value: Any) -> str:
    plain = to_plain(value)
    if isinstance(plain, dict) and set(plain) == {"__repr__", "__type__"}:
        return plain["__repr__"][:120]
    return json.dumps(plain)[:120]


# ------------------------------------------------------------------ lesson 00: a pipeline step that validates data


@never_raises
def check_data_validation(step: Callable[[dict], Any], split) -> bool:
    """Lesson 00: ``step(state)`` must raise ValueError when ``state["split"].X_train`` has a missing value, and let
    clean data through (returning normally)."""
    if is_placeholder(step):
        return not_yet(
            "write the body of data_validation(state): it should raise ValueError when the training "
            "rows have a missing measurement, and do nothing otherwise"
        )
    if not callable(step):
        return not_yet(f"data_validation should be a function of the pipeline's state; it is {_described(step)}")
    clean = {"split": split}
    try:
        step(clean)
    except Exception as exc:  # noqa: BLE001 - what the student's step raised is the observation
        return not_yet(
            f"your step stopped the clean iris data ({type(exc).__name__}: {exc}): it should only "
            "stop training rows with a missing value"
        )
    X_broken = split.X_train.copy()
    X_broken.iloc[3, 2] = np.nan
    broken = {"split": dataclasses.replace(split, X_train=X_broken)}
    try:
        step(broken)
    except ValueError:
        return passed("data_validation lets clean data through and stops a missing measurement before training")
    except Exception as exc:  # noqa: BLE001
        return not_yet(
            f"your step raised {type(exc).__name__} on a missing value: raise ValueError (the pipeline's "
            "callers expect a ValueError for bad data)"
        )
    return not_yet(
        "your step let through training rows (state['split'].X_train) with a missing measurement "
        "(NaN): which pandas method tells a missing value from a number?"
    )


# ------------------------------------------------------------------ lesson 01: a run logged by hand


@never_raises
def check_logged_run(run_id: Any, experiment_name: str, split, *, C: float, max_iter: int) -> bool:
    """Lesson 01: ``run_id`` must name a finished run of ``experiment_name`` that logged the parameter ``C`` and the
    metric ``val_accuracy``: the score on ``split``'s validation rows of ``LogisticRegression(C=C, max_iter=max_iter)``
    fitted on its training rows."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from sklearn.linear_model import LogisticRegression

    if is_placeholder(run_id):
        return not_yet(
            "replace ... with your code: start a run, fit the model, log C and val_accuracy, and keep the run's ID"
        )
    if not isinstance(run_id, str):
        return not_yet(f"keep the run's ID, a string (run.info.run_id); you have {_described(run_id)}")
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException:
        return not_yet(f"the tracking store has no run with the ID {run_id!r}: keep run.info.run_id of your run")
    experiment = MlflowClient().get_experiment(run.info.experiment_id)
    if experiment.name != experiment_name:
        return not_yet(f"your run is in the experiment {experiment.name!r}, not in this lesson's")
    if run.info.status != "FINISHED":
        return not_yet(
            f"your run is {run.info.status}: a run started with `with mlflow.start_run() as ...:` ends "
            "(FINISHED) when the block does"
        )
    params, metrics = run.data.params, run.data.metrics
    if "C" not in params:
        return not_yet(
            f"your run has no parameter C (it has {sorted(params) or 'none'}): log the setting you trained with"
        )
    try:
        logged_C = float(params["C"])
    except ValueError:
        logged_C = None
    if logged_C != C:
        return not_yet(f"your run logged C = {params['C']}; the task asks for another value")
    if "val_accuracy" not in metrics:
        return not_yet(
            f"your run has no metric val_accuracy (it has {sorted(metrics) or 'none'}): log the score under that name"
        )
    score = metrics["val_accuracy"]
    model = LogisticRegression(C=C, max_iter=max_iter).fit(split.X_train, split.y_train)
    val_accuracy, test_accuracy = model.score(split.X_val, split.y_val), model.score(split.X_test, split.y_test)
    if math.isclose(score, test_accuracy) and not math.isclose(score, val_accuracy):
        return not_yet("your val_accuracy is the score on the test rows: choices are made on the validation rows")
    if math.isclose(score, model.score(split.X_train, split.y_train)) and not math.isclose(score, val_accuracy):
        return not_yet(
            "your val_accuracy is the score on the rows the model was fitted on: score it on rows it "
            "has not seen, the validation rows"
        )
    if not math.isclose(score, val_accuracy, rel_tol=1e-9):
        return not_yet(
            f"your val_accuracy ({score:.3f}) is not the score of LogisticRegression(C={C}) fitted on the "
            "training rows and scored on the validation rows: check the rows and the settings"
        )
    return passed(f"run {run_id} logged C = {C} and val_accuracy = {score:.3f}")


# ------------------------------------------------------------------ lesson 01: a query with mlflow.search_runs


@never_raises
def check_sweep_query(runs: Any, experiment_name: str, min_accuracy: float) -> bool:
    """Lesson 01: ``runs`` must be what ``mlflow.search_runs`` returns for the sweep's runs (tag ``sweep = 'C'``) of
    ``experiment_name`` whose ``val_accuracy`` is at least ``min_accuracy``, best first."""
    from mlflow import MlflowClient

    if is_placeholder(runs):
        return not_yet(
            "replace ... with a call to mlflow.search_runs(...) that keeps only the sweep's runs with a "
            f"validation accuracy of at least {min_accuracy}"
        )
    if isinstance(runs, list):
        return not_yet("you have a list: ask mlflow.search_runs for a pandas DataFrame (its default output_format)")
    if not isinstance(runs, pd.DataFrame) or "run_id" not in runs:
        return not_yet(
            f"mlflow.search_runs returns a pandas DataFrame with a run_id column; you have {_described(runs)}"
        )
    client = MlflowClient()
    experiment = client.get_experiment_by_name(experiment_name)
    everything = client.search_runs([experiment.experiment_id]) if experiment else []
    sweep = [r for r in everything if r.data.tags.get("sweep") == "C"]
    wanted = {r.info.run_id for r in sweep if r.data.metrics.get("val_accuracy", -1) >= min_accuracy}
    got = list(runs["run_id"])
    if set(got) - {r.info.run_id for r in everything}:
        return not_yet(
            "your DataFrame holds runs of another experiment: name this lesson's experiment "
            "(experiment_names=[experiment_name])"
        )
    if set(got) - {r.info.run_id for r in sweep}:
        return not_yet(
            "your DataFrame holds runs that are not part of the sweep (the seed's run, the MLflow 3 "
            "run, a run of your own): filter on the tag the sweep's runs carry"
        )
    if set(got) - wanted:
        return not_yet(
            f"your DataFrame holds sweep runs whose validation accuracy is below {min_accuracy}: add a "
            "condition on metrics.val_accuracy to the filter string"
        )
    if wanted - set(got):
        return not_yet(
            f"{len(wanted - set(got))} sweep run(s) with a validation accuracy of at least "
            f"{min_accuracy} are missing: is your condition >= or >? and does it name val_accuracy?"
        )
    accuracy = {r.info.run_id: r.data.metrics["val_accuracy"] for r in sweep}
    scores = [accuracy[run_id] for run_id in got]
    if scores != sorted(scores, reverse=True):
        return not_yet("the right runs, in the wrong order: sort them best first (order_by on val_accuracy)")
    return passed(f"{len(got)} sweep run(s) with a validation accuracy of at least {min_accuracy}, best first")


# ------------------------------------------------------------------ lesson 02: the `mlflow run` command line


@never_raises
def check_project_command(command: Any, experiment_name: str, max_iter: int) -> bool:
    """Lesson 02: ``command`` must be the argument list of ``mlflow run`` on this project, offline, with
    ``max_iter`` as a project parameter and ``experiment_name`` as the experiment."""
    if is_placeholder(command):
        return not_yet("replace ... with the command as a list of strings, as in the cell that ran `mlflow run .`")
    if isinstance(command, str):
        return not_yet("give the command as a list of strings (one per word), as subprocess.run expects it")
    if not isinstance(command, (list, tuple)) or not all(isinstance(word, str) for word in command):
        return not_yet(f"the command should be a list of strings; you have {_described(command)}")
    words = list(command)
    if words[:2] != ["mlflow", "run"]:
        return not_yet("the command starts with the two words that run an MLflow Project")
    if "." not in words[2:]:
        return not_yet("say which project to run: the current folder (the command runs in the project's root)")

    def value_of(option: str) -> str | None:
        for i, word in enumerate(words):
            if word == option:
                return words[i + 1] if i + 1 < len(words) else None
            if word.startswith(option + "="):
                return word.split("=", 1)[1]
        return None

    if value_of("--env-manager") != "local":
        return not_yet("offline, MLflow must use this Python environment: which --env-manager does that?")
    if value_of("--experiment-name") != experiment_name:
        return not_yet("log into this lesson's experiment: --experiment-name with the experiment_name parameter")
    parameters = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "-P"]
    if any(p.startswith("max_iter ") or p == "max_iter" for p in parameters) or "max_iter" in words:
        return not_yet("a project parameter is one word, name=value, after -P")
    if f"max_iter={max_iter}" not in parameters:
        if any(p.startswith("max_iter=") for p in parameters):
            return not_yet(f"max_iter is passed, with another value than the task's {max_iter}")
        return not_yet(
            f"pass max_iter={max_iter} as a project parameter (the option MLflow Projects use for parameters)"
        )
    return passed("that command reruns the project offline with your max_iter, in this lesson's experiment")


# ------------------------------------------------------------------ lesson 03: moving an alias


@never_raises
def check_alias(model_name: str, alias: str, expected_version: str | int, *, why: str) -> bool:
    """Lesson 03: the registry must show ``alias`` on ``expected_version`` of ``model_name``. ``why`` names, without
    its number, the version the alias should be on (printed in the hint)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        aliases = MlflowClient().get_registered_model(model_name).aliases
    except MlflowException as exc:
        return not_yet(f"the registry has no model {model_name!r} ({type(exc).__name__})")
    if alias not in aliases:
        return not_yet(
            f"no version of {model_name!r} has the alias {alias!r} yet: the client call that sets an "
            "alias takes the model's name, the alias and a version"
        )
    on = str(aliases[alias])
    if on == str(expected_version):
        return passed(f"@{alias} is on version {on}: {why}")
    if on == str(aliases.get("champion")):
        return not_yet(f"@{alias} is on the current champion (version {on}); it should be on {why}")
    return not_yet(f"@{alias} is on version {on}; it should be on {why}")


# ------------------------------------------------------------------ lesson 04: a payload to the running server


@never_raises
def check_invocation(response: Any, expected_predictions, *, key: str, n_flowers: int) -> bool:
    """Lesson 04: ``response`` must be the ``requests.Response`` of a POST to ``/invocations`` whose JSON body used
    ``key`` and asked for ``n_flowers`` flowers, answered with ``expected_predictions``."""
    import requests

    if is_placeholder(response):
        return not_yet(
            f"replace ... with requests.post(...) to the server's /invocations, the flowers in the {key!r} format"
        )
    if not isinstance(response, requests.Response):
        return not_yet(f"keep what requests.post returns (a Response); you have {_described(response)}")
    if not response.request.url.endswith("/invocations"):
        return not_yet(f"you called {response.request.url}: predictions come from the /invocations endpoint")
    try:
        body = json.loads(response.request.body or b"null")
    except (TypeError, ValueError):
        body = None
    if not isinstance(body, dict):
        return not_yet("send the flowers as JSON (requests.post(url, json=...)), a dict with one format key")
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code != 200:
        message = answer.get("message") if isinstance(answer, dict) else None
        return not_yet(
            f"the server refused your request (HTTP {response.status_code}); its message says why: "
            f"{str(message or response.text)[:160]}"
        )
    if list(body) != [key]:
        return not_yet(
            f"the server answered, but you sent the {', '.join(map(repr, body))} format: the task asks for {key!r}"
        )
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list):
        return not_yet(f"the server's answer holds no list of predictions: {response.text[:160]}")
    if len(predictions) != n_flowers:
        return not_yet(f"you asked about {len(predictions)} flower(s); the task asks about {n_flowers}")
    verdict, text = judge(
        {"value": to_plain(predictions)},
        {
            "equals": to_plain(expected_predictions),
            "message": "the server answered for other flowers than the task's: take them from the test split, in order",
        },
    )
    return passed(f"HTTP 200 for the {key!r} format: {predictions}") if verdict else not_yet(text)


# ------------------------------------------------------------------ lesson 05: PSI by hand


@never_raises
def check_psi(value: Any, expected: float, *, other_batch: float | None = None) -> bool:
    """Lesson 05: ``value`` must be the PSI the course computes (:func:`mlops_helpers.monitoring.psi`), within a
    relative 1e-6. ``other_batch`` is the PSI of the batch the task did not ask about (a common slip)."""
    if is_placeholder(value):
        return not_yet(
            "replace ... with your PSI: the shares of the reference and of the batch in each bin, "
            "then sum((c - r) * ln(c / r))"
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        return not_yet(f"the PSI is one number; you have {_described(value)}")
    if math.isnan(number) or math.isinf(number):
        return not_yet(
            f"your PSI is {number}: an empty bin gives ln(0) or a division by 0; floor each share at a "
            "small number (the course uses 1e-4) before taking the log"
        )
    if number < 0:
        return not_yet(
            f"your PSI is negative ({number:.3f}); every term (c - r) * ln(c / r) is >= 0: check that "
            "the same share is on both sides of each term"
        )
    if other_batch is not None and math.isclose(number, other_batch, rel_tol=1e-6):
        return not_yet("that is the PSI of another batch: the task asks about the last batch of the traffic")
    ok, text = judge({"value": number}, {"close_to": expected, "rel_tol": 1e-6, "message": "not the course's PSI"})
    if ok:
        return passed(f"PSI = {number:.3f}, as mlops_helpers.monitoring.psi computes it")
    if number > 10 * expected > 0:
        return not_yet(f"{text}: far too large; are c and r shares (counts divided by the number of flowers)?")
    return not_yet(
        f"{text}: the bins are the reference's deciles (edges given, outer ones open) and each share is "
        "a bin's count over all flowers of its sample"
    )


# ------------------------------------------------------------------ lesson 06: a gate check


@never_raises
def check_gate_check(gate: Callable[[float, float, float], Any]) -> bool:
    """Lesson 06: ``gate(accuracy, champion_accuracy, tolerance)`` must say whether a candidate is not worse than the
    champion by more than ``tolerance``: True/False, a tie and a candidate exactly ``tolerance`` below pass."""
    if is_placeholder(gate):
        return not_yet(
            "write the body of not_worse(accuracy, champion_accuracy, tolerance): return True when the "
            "candidate may replace the champion, False otherwise"
        )
    if not callable(gate):
        return not_yet(f"not_worse should be a function; it is {_described(gate)}")
    one = 1 / 28  # one of lesson 06's 28 validation flowers
    cases = [
        ((26 / 28, 25 / 28, one), True, "a candidate that is better than the champion was blocked"),
        ((25 / 28, 25 / 28, one), True, "a tie was blocked: an equally good candidate may pass"),
        # 24/28 >= 25/28 - 1/28 is False in floating point: the boundary needs a little slack
        (
            (24 / 28, 25 / 28, one),
            True,
            "a candidate exactly one tolerance below the champion was blocked: 'at "
            "most the tolerance below' includes the boundary, and accuracies are "
            "floats (print 25/28 - 1/28 and 24/28), so compare with a little slack",
        ),
        ((23 / 28, 25 / 28, one), False, "a candidate two flowers worse, with a tolerance of one, got through"),
        ((25 / 28, 25 / 28, 0.0), True, "with a tolerance of 0, a tie was blocked"),
        ((24 / 28, 25 / 28, 0.0), False, "with a tolerance of 0, a worse candidate got through"),
        ((0.5, 1.0, one), False, "a candidate far worse than the champion got through"),
    ]
    for args, expected, hint in cases:
        try:
            answer = gate(*args)
        except Exception as exc:  # noqa: BLE001
            return not_yet(f"not_worse{tuple(round(a, 3) for a in args)} raised {type(exc).__name__}: {exc}")
        if not isinstance(answer, (bool, np.bool_)):
            return not_yet(f"not_worse should return True or False; it returned {_described(answer)}")
        if bool(answer) != expected:
            return not_yet(hint)
    return passed("not_worse passes better, equal and within-tolerance candidates and blocks worse ones")
