"""Check cells: hidden checks judged outside the student's kernel (mlops_helpers.checks, autograder.checks).

The unit half checks the format (observe, judge, parse); the end-to-end half grades real notebooks with real kernels:
right answers pass, wrong ones fail with the instructor's message, the expected values are nowhere in the kernel,
and a submission that forges its observations can claim an answer but never a pass.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from autograder.checks import parse_check_cell
from autograder.job import CellSpec, GradeJob, Limits, NotebookSpec
from mlops_helpers.checks import check, judge, observe, to_plain

MARKER = 918273645  # an expected value no student code could contain by chance


# ----------------------------------------------------------------------------------------------------- format
def test_to_plain_turns_library_objects_into_values():
    assert to_plain((1, np.int64(2), np.float64(0.5), {"a": np.array([1, 2])})) == [1, 2, 0.5, {"a": [1, 2]}]
    assert to_plain(pd.Series([1, 2])) == [1, 2]
    assert to_plain(pd.DataFrame({"x": [1], "y": ["b"]})) == {"x": [1], "y": ["b"]}
    assert to_plain({3, 1}) == [1, 3]
    assert to_plain(object())["__type__"] == "object"


@pytest.mark.parametrize(
    "spec, value, passed",
    [
        ({"equals": [1, 2]}, (1, 2), True),
        ({"equals": [1, 2]}, [2, 1], False),
        ({"close_to": 0.3}, 0.1 + 0.2, True),
        ({"close_to": 0.3}, 0.31, False),
        ({"close_to": 1.0}, "1.0", False),
        ({"close_to": 0.3, "abs_tol": 0.05}, 0.31, True),
        ({"one_of": ["B", "b"]}, "b", True),
        ({"one_of": ["B"]}, "C", False),
        ({"at_least": 0.9}, 0.95, True),
        ({"at_least": 0.9}, 0.5, False),
        ({"at_most": 3}, 4, False),
        ({"length": 3}, [0, 0, 0], True),
        ({"length": 3}, "ab", False),
    ],
)
def test_judge_each_property(spec, value, passed):
    observed = json.loads(observe(lambda: value))
    ok, message = judge(observed, {**spec, "message": "the mean is wrong"})
    assert ok is passed
    if not passed:
        assert message.startswith("the mean is wrong (your code gave")


def test_raises_and_what_the_student_reads():
    def boom():
        raise KeyError("k")

    assert judge(json.loads(observe(boom)), {"raises": "LookupError"})[0]  # a subclass counts
    ok, message = judge(json.loads(observe(lambda: 1)), {"raises": "ValueError", "message": "refuse n < 1"})
    assert not ok and message == "refuse n < 1 (no error)"
    ok, message = judge(json.loads(observe(boom)), {"equals": MARKER})
    assert not ok and "raised KeyError" in message and str(MARKER) not in message  # the key is never shown


def test_check_in_the_kernel_for_plain_nbgrader():
    values = [1, 2, 3]  # noqa: F841 - read by the expression through the caller's namespace
    check("sum(values)", equals=6)
    with pytest.raises(AssertionError, match=r"^sum is off \(your code gave 6\)$"):
        check("sum(values)", equals=7, message="sum is off")


def test_parse_check_cells_and_ordinary_ones():
    source = (
        "from mlops_helpers.checks import check\nassert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\n"
        "check('add(-1, 1)', equals=0, message='negatives')\n"
        'check("add(0.1, 0.2)", close_to=0.3, rel_tol=1e-3)\n### END HIDDEN TESTS'
    )
    cell = parse_check_cell(source)
    assert cell.visible_source == "from mlops_helpers.checks import check\nassert add(1, 2) == 3\n"
    assert [(c.expression, c.spec) for c in cell.checks] == [
        ("add(-1, 1)", {"equals": 0, "message": "negatives"}),
        ("add(0.1, 0.2)", {"close_to": 0.3, "rel_tol": 1e-3}),
    ]
    for ordinary in (
        "assert add(1, 2) == 3",  # no hidden region
        "### BEGIN HIDDEN TESTS\nassert add(-1, 1) == 0\n### END HIDDEN TESTS",  # an assert hidden
        "### BEGIN HIDDEN TESTS\ncheck('f()', equals=x)\n### END HIDDEN TESTS",  # not a literal
        "### BEGIN HIDDEN TESTS\ncheck('f()', equals=1, close_to=1)\n### END HIDDEN TESTS",
        "### BEGIN HIDDEN TESTS\ncheck('f(', equals=1)\n### END HIDDEN TESTS",
    ):
        assert parse_check_cell(ordinary) is None, ordinary


# ----------------------------------------------------------------------------------------------------- graded
TEST_SOURCE = (
    "from mlops_helpers.checks import check\nassert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\n"
    f"check('add(-1, 1)', equals=0, message='add must work with negative numbers')\n"
    f"check('add(MARK, 0)', equals={MARKER}, message='add must keep large numbers')\n"
    "check('add(None, 1)', raises='TypeError', message='add(None, 1) must fail')\n"
    "### END HIDDEN TESTS"
)
SCAN = """
import gc, linecache, sys
def _seen():
    key = int("KEY") + 1  # built at run time: not a constant of this cell
    hits = []
    for o in gc.get_objects():
        try:
            if isinstance(o, (list, tuple, set, frozenset)) and key in o:
                hits.append(type(o).__name__)
            elif isinstance(o, dict) and key in o.values():
                hits.append("dict")
        except Exception:
            pass
    hits += ["linecache" for entry in list(linecache.cache.values()) if str(key) in "".join(entry[2])]
    hits += ["history" for cell in sys.modules["__main__"].__dict__.get("In", []) if str(key) in cell]
    return sorted(set(hits))
""".replace("KEY", str(MARKER - 1))
CLASSIC_SOURCE = (
    "assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\n"
    f"assert add(MARK, 0) == {MARKER}, 'add must keep large numbers'\n### END HIDDEN TESTS"
)


def _job(answer: str, *, after: str = "", student: str = "s", test_source: str = TEST_SOURCE) -> GradeJob:
    cells = [
        {
            "cell_type": "code",
            "metadata": {
                "nbgrader": {"grade_id": "add", "grade": False, "solution": True, "locked": False, "schema_version": 3}
            },
            "source": answer,
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "metadata": {
                "nbgrader": {
                    "grade_id": "test_add",
                    "grade": True,
                    "solution": False,
                    "locked": True,
                    "points": 3,
                    "schema_version": 3,
                }
            },
            "source": test_source.split("### BEGIN")[0].rstrip("\n"),
            "outputs": [],
            "execution_count": None,
        },
        {"cell_type": "code", "metadata": {}, "source": after or "x = 1", "outputs": [], "execution_count": None},
    ]
    notebook = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 4,
    }
    spec = NotebookSpec(
        "p",
        (
            CellSpec(
                "add", "code", "def add(a, b):\n    raise NotImplementedError()", False, None, None, "autograded-answer"
            ),
            CellSpec("test_add", "code", test_source, True, None, 3.0, "autograder-test"),
        ),
    )
    return GradeJob(
        "c",
        "a",
        student,
        {"p.ipynb": json.dumps(notebook).encode()},
        (spec,),
        {},
        Limits(cell_timeout=60),
        sandbox=False,
    )


def _graded(result):
    import nbformat

    nb = nbformat.reads(result.notebooks[0].graded.decode(), as_version=4)
    return {c.metadata.get("nbgrader", {}).get("grade_id", f"#{i}"): c for i, c in enumerate(nb.cells)}


def test_right_and_wrong_answers_in_a_real_kernel():
    from autograder.unit import grade_job

    right = grade_job(_job("def add(a, b):\n    return a + b\nMARK = " + str(MARKER)))
    assert (right.status, right.score) == ("ok", 3.0), right.reason
    wrong = grade_job(_job("def add(a, b):\n    return abs(a) + b if a is not None else 0\nMARK = 5"))
    assert (wrong.status, wrong.score) == ("ok", 0.0)
    errors = [o.evalue for o in _graded(wrong)["test_add"].outputs if o.output_type == "error"]
    assert errors == [
        "add must work with negative numbers (your code gave 2)",
        "add must keep large numbers (your code gave 5)",
        "add(None, 1) must fail (no error)",
    ]
    assert not any(str(MARKER) in e for e in errors)


def test_the_key_never_enters_the_kernel_and_forged_observations_claim_no_pass():
    """The student's later cell looks everywhere for the expected value, and a forger replaces the observer so that
    every check 'observes' whatever it likes: it can only claim answers, and a claim is judged by the grader."""
    from autograder.unit import grade_job

    spy = grade_job(_job("def add(a, b):\n    return a + b\nMARK = 1", after=SCAN + "print('SEEN', _seen())"))
    text = "".join(o.get("text", "") for o in _graded(spy)["#2"].outputs)
    assert "SEEN []" in text, text  # the expected value is in no object, source cache or history of the kernel
    # the same scan is not blind: with a classic hidden assert, the key is there for student code to find
    classic = grade_job(
        _job(
            "def add(a, b):\n    return a + b\nMARK = 1",
            after=SCAN + "print('SEEN', _seen())",
            test_source=CLASSIC_SOURCE,
        )
    )
    text = "".join(o.get("text", "") for o in _graded(classic)["#2"].outputs)
    assert "SEEN [" in text and "SEEN []" not in text, text
    forger = (
        "import mlops_helpers.checks as c, json\n"
        "c.observe = lambda call: json.dumps({'value': 0, 'type': 'int'})\n"
        "def add(a, b):\n    return a + b\nMARK = 1"
    )
    forged = grade_job(_job(forger))
    assert forged.score == 0.0  # claiming 0 everywhere passes the first check only, and a cell passes whole
    errors = [o.evalue for o in _graded(forged)["test_add"].outputs if o.output_type == "error"]
    assert len(errors) == 2 and errors[0].startswith("add must keep large numbers")


@pytest.mark.sandbox
def test_check_cells_in_the_sandbox(grading_sandbox):
    from dataclasses import replace

    from autograder.unit import grade_job

    result = grade_job(replace(_job("def add(a, b):\n    return a + b\nMARK = " + str(MARKER)), sandbox=True))
    assert (result.status, result.score) == ("ok", 3.0), result.reason
