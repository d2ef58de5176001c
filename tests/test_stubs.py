"""ClearSolutionsWithStubs: a solution cell is released with its own stub (the broken code), others as nbgrader does."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from nbgrader.preprocessors import IgnorePattern

from autograder import course
from autograder.stubs import ClearSolutionsWithStubs, StubRegionError

ROOT = Path(__file__).resolve().parents[1]

SOLUTION_META = {
    "nbgrader": {"grade": False, "grade_id": "a", "locked": False, "schema_version": 3, "solution": True, "task": False}
}


def _release(source: str, metadata=SOLUTION_META) -> str:
    nb = new_notebook(
        cells=[new_code_cell(source, metadata=metadata)],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
    )
    nb, _ = ClearSolutionsWithStubs().preprocess(nb, {})
    return nb.cells[0].source


def test_solution_region_is_replaced_by_the_uncommented_stub():
    source = "\n".join(
        [
            "def run(pipeline):",
            "    lines = []",
            "    ### BEGIN SOLUTION",
            "    for step in pipeline:",
            "        lines.append(step)",
            "    ### END SOLUTION",
            "    ### BEGIN STUB",
            "    # for step in pipeline",
            "    #     lines.append(step)",
            "    #",
            "    ### END STUB",
            "    return lines",
        ]
    )
    assert _release(source) == "\n".join(
        [
            "def run(pipeline):",
            "    lines = []",
            "    for step in pipeline",
            "        lines.append(step)",
            "",
            "    return lines",
        ]
    )


def test_cells_without_a_stub_get_nbgraders_code_stub():
    released = _release("x = 1\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION")
    assert released == "x = 1\n# YOUR CODE HERE\nraise NotImplementedError()"


def test_the_source_cell_runs_the_solution_because_the_stub_is_commented_out():
    namespace = {}
    exec("### BEGIN SOLUTION\nq1 = 'A'\n### END SOLUTION\n### BEGIN STUB\n# q1 = ...\n### END STUB", namespace)
    assert namespace["q1"] == "A"
    assert (
        _release("### BEGIN SOLUTION\nq1 = 'A'\n### END SOLUTION\n### BEGIN STUB\n# q1 = ...\n### END STUB")
        == "q1 = ..."
    )


@pytest.mark.parametrize(
    "source, message",
    [
        ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### BEGIN STUB\nx = 0\n### END STUB", "must be commented out"),
        ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### BEGIN STUB\n# x = 0", "no 'END STUB'"),
        ("x = 1\n### BEGIN STUB\n# x = 0\n### END STUB", "needs a solution region"),
        (
            "### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### BEGIN SOLUTION\ny = 1\n### END SOLUTION\n"
            "### BEGIN STUB\n# x = 0\n### END STUB",
            "exactly one solution region",
        ),
        (
            "### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### BEGIN STUB\n# a\n### END STUB\n### BEGIN STUB\n# b\n"
            "### END STUB",
            "more than one stub region",
        ),
    ],
)
def test_malformed_stub_regions_are_refused_clearly(source, message):
    with pytest.raises(StubRegionError, match=re.escape(message)):
        _release(source)


def test_course_config_uses_the_stub_preprocessor_in_place_of_clear_solutions():
    from nbgrader.preprocessors import ClearSolutions

    pipeline = course.load_config(ROOT).GenerateAssignment.preprocessors
    assert ClearSolutionsWithStubs in pipeline and ClearSolutions not in pipeline


def _stderr_cell(text):
    cell = new_code_cell(
        "pass",
        metadata={
            "nbgrader": {
                "grade": True,
                "grade_id": "t",
                "points": 1,
                "solution": False,
                "locked": True,
                "schema_version": 3,
            }
        },
    )
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=text)]
    return cell


@pytest.mark.parametrize(
    "text, ignored",
    [
        ("2026/11/26 15:24:24 INFO mlflow.store.db.utils: Creating initial MLflow database tables...\n", True),
        (
            "2026/11/26 15:24:26 INFO mlflow.tracking.fluent: Experiment with name 'x' does not exist. "
            "Creating a new experiment.\n",
            True,
        ),
        ("INFO  [alembic.runtime.migration] Context impl SQLiteImpl.\n", True),
        (
            "/x/site-packages/sklearn/linear_model/_logistic.py:469: ConvergenceWarning: lbfgs failed to converge\n",
            True,
        ),
        ("/x/site-packages/mlflow/models/signature.py:1: FutureWarning: something is deprecated\n", True),
        ("I printed this to stderr on purpose\n", False),
    ],
)
def test_ignore_pattern_drops_library_noise_but_not_other_stderr(text, ignored):
    """nbgrader scores a test cell 0 as soon as it wrote to stderr: library noise must not cost points."""
    from nbgrader.utils import determine_grade

    config = course.load_config(ROOT)
    nb = new_notebook(cells=[_stderr_cell(text)])
    nb, _ = IgnorePattern(config=config).preprocess(nb, {})
    score, _ = determine_grade(nb.cells[0])
    assert score == (1 if ignored else 0)
