"""Hidden checks of the course's assignments: a test format in which the answer key never enters a student's kernel.

An nbgrader test cell's hidden region (``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``) made only of
``check(...)`` calls is a *check cell*::

    from mlops_helpers.checks import check
    assert add(1, 2) == 3                 # visible tests: plain asserts, run in the kernel (the student sees them)
    ### BEGIN HIDDEN TESTS
    check("add(-1, 1)", equals=0, message="add must work with negative numbers")
    check("mean([1.5, 2.5])", close_to=2.0, message="mean must return a float, not round")
    check("squares(-1)", raises="ValueError", message="squares must refuse a negative n")
    ### END HIDDEN TESTS

Each ``check`` names the call to make -- an expression, the test's *input*, evaluated in the student's namespace --
and ONE property its result must have, with the expected value (a literal: numbers, strings, lists, dicts...):

========================  ==============================================================================
``equals=V``              the result, as plain data, equals V (tuples compare as lists, numpy/pandas as lists)
``close_to=V``            a number within ``rel_tol`` (default 1e-6) or ``abs_tol`` (default 1e-9) of V
``one_of=[V, ...]``       equals one of the values
``at_least=V``            a number >= V
``at_most=V``             a number <= V
``length=N``              ``len(result) == N``
``raises="Name"``         evaluating the expression raises that exception (or a subclass of it)
========================  ==============================================================================

``message`` is what the student reads in the feedback when the check fails (write one: the check's source is never
shown, and the default message cannot say more than "a hidden check failed"). ``explain={value: text, ...}`` adds
the text for a wrong result equal to that value (e.g. the misconception behind each wrong option of a
multiple-choice question); under the course's grader it never enters the kernel either, so its keys cannot give
the right answer away by elimination.

How the course's grader (``python -m autograder grade``) runs a check cell: the visible part runs in the kernel as
any test cell does; for each check the grader sends only the expression, receives the result as plain data
(values, never objects: :func:`observe`, at most :data:`MAX_OBSERVED_BYTES`), and judges it outside the student's
process with :func:`judge`. The expected values never enter the kernel, so code that forges its reply can claim an
answer, never a pass. Under plain nbgrader (``nbgrader autograde``, the Validate button) the same cell runs as
Python: :func:`check` evaluates and judges in the kernel, with the same :func:`judge`.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

#: The properties a check can state (exactly one per check).
PROPERTIES = ("equals", "close_to", "one_of", "at_least", "at_most", "length", "raises")
#: Options that refine a property (numbers).
OPTIONS = ("rel_tol", "abs_tol")
#: Texts for the student: ``message``, and ``explain`` (a dict: wrong value -> what it means).
TEXTS = ("message", "explain")
#: Largest observation sent out of the kernel, as JSON text (a bigger result is reported as too large).
MAX_OBSERVED_BYTES = 100_000
DEFAULT_MESSAGE = "a hidden check failed"


def to_plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-able plain data: None, bool, int, float, str, lists and string-keyed dicts.

    numpy arrays and scalars and pandas objects become lists/numbers (``tolist()``, ``item()``); tuples and sets
    become lists (sets sorted when they can be); anything else becomes ``{"__repr__": ..., "__type__": ...}``,
    which equals no expected literal.
    """
    if depth > 50:
        raise ValueError("nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [to_plain(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [to_plain(v, depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, dict):
        return {str(k): to_plain(v, depth + 1) for k, v in value.items()}
    module = type(value).__module__.split(".")[0]
    if module in ("numpy", "pandas"):
        if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a DataFrame
            return to_plain(value.to_dict(orient="list"), depth + 1)
        for method in ("tolist", "item"):
            if hasattr(value, method):
                return to_plain(getattr(value, method)(), depth + 1)
    return {"__repr__": repr(value)[:200], "__type__": type(value).__qualname__}


def observe(call: Callable[[], Any]) -> str:
    """Run ``call`` and describe its outcome as JSON text: ``{"value": ..., "type": ...}`` or ``{"raised": [names of
    the exception's classes], "error": message}`` (or ``{"too_large": N}``). Runs in the student's kernel."""
    try:
        value = call()
    except Exception as exc:  # noqa: BLE001 - the outcome being observed
        return json.dumps({"raised": [c.__name__ for c in type(exc).__mro__], "error": str(exc)[:300]})
    try:
        text = json.dumps({"value": to_plain(value), "type": type(value).__name__})
    except (ValueError, TypeError, RecursionError) as exc:
        text = json.dumps({"value": {"__repr__": f"not plain data: {exc}"[:200]}, "type": type(value).__name__})
    if len(text) > MAX_OBSERVED_BYTES:
        return json.dumps({"too_large": len(text), "type": type(value).__name__})
    return text


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _got(observed: dict) -> str:
    if "raised" in observed:
        return f"your code raised {observed['raised'][0]}: {observed.get('error', '')}"[:300]
    if "too_large" in observed:
        return f"your code returned a {observed.get('type')} too large to check ({observed['too_large']} bytes)"
    value = observed.get("value")
    if isinstance(value, dict) and set(value) == {"__repr__", "__type__"}:  # an object, not plain data
        return f"your code gave {value['__repr__'][:200]}"
    return f"your code gave {json.dumps(value)[:200]}"


def property_of(spec: dict) -> tuple[str, Any]:
    """The one property a check's keyword arguments state; ValueError naming the problem otherwise."""
    named = [p for p in PROPERTIES if p in spec]
    unknown = [k for k in spec if k not in PROPERTIES and k not in OPTIONS and k not in TEXTS]
    if "explain" in spec and not isinstance(spec["explain"], dict):
        unknown.append("explain (not a dict)")
    if len(named) != 1 or unknown:
        raise ValueError(f"a check states exactly one of {', '.join(PROPERTIES)} (got {sorted(spec)})")
    return named[0], spec[named[0]]


def judge(observed: dict, spec: dict) -> tuple[bool, str]:
    """(passed, what the student reads) for an observation against a check's keyword arguments."""
    prop, expected = property_of(spec)
    message = spec.get("message") or DEFAULT_MESSAGE
    if prop == "raises":
        passed = expected in observed.get("raised", [])
        return passed, "" if passed else f"{message} ({_got(observed) if 'raised' in observed else 'no error'})"
    if "value" not in observed:
        return False, f"{message} ({_got(observed)})"
    value = observed["value"]
    plain_expected = json.loads(json.dumps(to_plain(expected)))
    if prop == "equals":
        passed = value == plain_expected
    elif prop == "one_of":
        passed = any(value == json.loads(json.dumps(to_plain(v))) for v in expected)
    elif prop == "length":
        passed = isinstance(value, (list, dict, str)) and len(value) == expected
    elif not _number(value):
        passed = False
    elif prop == "close_to":
        passed = math.isclose(value, expected, rel_tol=spec.get("rel_tol", 1e-6), abs_tol=spec.get("abs_tol", 1e-9))
    elif prop == "at_least":
        passed = value >= expected
    else:  # at_most
        passed = value <= expected
    if passed:
        return True, ""
    explanation = (spec.get("explain") or {}).get(value if isinstance(value, str) else json.dumps(value))
    return False, f"{message} ({_got(observed)})" + (f" {explanation}" if explanation else "")


def check(expression: str, *, message: str | None = None, **spec) -> None:
    """Evaluate ``expression`` in the caller's namespace and assert the stated property (plain nbgrader's path; the
    course's grader judges check cells outside the kernel instead). Raises AssertionError with ``message``."""
    import inspect

    frame = inspect.currentframe().f_back
    namespace = {**frame.f_globals, **frame.f_locals}
    observed = json.loads(observe(lambda: eval(expression, namespace)))  # noqa: S307 - the instructor's own check
    passed, text = judge(observed, {**spec, "message": message})
    if not passed:
        raise AssertionError(text)
