"""The grader's side of check cells (the format is documented in ``mlops_helpers/checks.py``): find them, split
them into the part the kernel runs and the checks the grader judges.

A test cell is a check cell when it has a hidden-test region and every statement in its hidden regions is a
``check("<expression>", <property>=<literal>, message="...")`` call whose keyword values are literals. Anything
else in a hidden region (an ``assert``, a loop) makes it an ordinary test cell, run whole in the kernel under the
in-kernel guard (best effort, see ``autograder/kernel_guard.py``).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass

from mlops_helpers.checks import OPTIONS, judge, property_of

from .regions import DEFAULT, Delimiters, hidden_tests
from .rewrite import parse_cell


@dataclass(frozen=True)
class Check:
    expression: str
    spec: dict  # the property, its options and the message: literals only

    def judge(self, observed_json: str) -> tuple[bool, str]:
        """(passed, what the student reads) from the kernel's JSON observation (see ``mlops_helpers.checks``)."""
        try:
            observed = json.loads(observed_json)
            if not isinstance(observed, dict):
                raise ValueError("not an object")
        except ValueError:
            return (
                False,
                f"{self.spec.get('message') or 'a hidden check failed'} (the kernel's answer was not an observation)",
            )
        return judge(observed, self.spec)


@dataclass(frozen=True)
class CheckCell:
    visible_source: str  # what runs in the kernel: the cell without its hidden regions
    checks: tuple[Check, ...]


def _check_of(node: ast.stmt) -> Check | None:
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return None
    call = node.value
    if not (isinstance(call.func, ast.Name) and call.func.id == "check") or len(call.args) != 1:
        return None
    try:
        expression = ast.literal_eval(call.args[0])
        spec = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg is not None}
    except ValueError:
        return None
    if not isinstance(expression, str) or len(spec) != len(call.keywords):
        return None
    try:
        property_of(spec)
        ast.parse(expression, mode="eval")
    except (ValueError, SyntaxError):
        return None
    if any(k in OPTIONS and not isinstance(v, (int, float)) for k, v in spec.items()):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in spec.get("explain", {}).items()):
        return None
    return Check(expression=expression, spec=spec)


def parse_check_cell(source: str, delimiters: Delimiters = DEFAULT) -> CheckCell | None:
    """The check cell in ``source``, or None when it is an ordinary test cell (or its hidden regions are not well
    formed). ``delimiters``: the course's (:mod:`autograder.regions`)."""
    cut = hidden_tests(source, delimiters)
    if not cut.found or cut.problem:
        return None
    visible, hidden = cut.outside, cut.inside
    try:
        body = parse_cell("\n".join(hidden)).body
    except SyntaxError:
        return None
    checks = [_check_of(node) for node in body]
    if not checks or any(c is None for c in checks):
        return None
    return CheckCell(visible_source="\n".join(visible).rstrip("\n") + "\n", checks=tuple(checks))


def observation_request(expression: str) -> str:
    """The user expression that makes the kernel observe ``expression`` (the input goes in; only its JSON comes
    out). The observer is ``mlops_helpers.checks.observe``, importable in the sandbox."""
    return f"__import__('mlops_helpers.checks', fromlist=['observe']).observe(lambda: ({expression}\n))"
