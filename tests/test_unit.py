"""Unit tests of the grading steps (no kernel) and one unsandboxed grade_job end to end."""

from __future__ import annotations

import ast
import json

import nbformat
import pytest

from autograder.job import GradeJob, GradeResult, Limits, NotebookResult, worst_status
from autograder.unit import (
    ClearOutputs,
    Context,
    ReadNotebook,
    RepairCellIds,
    RestoreCells,
    ScoreCells,
    StepFailed,
    builtin_names_used,
    harden_test_source,
)
from regression.submissions import CORRECT, NOTEBOOK, build_source, released, specs_from_source


@pytest.fixture
def ctx():
    return Context(spec=specs_from_source()[0], limits=Limits())


def _nb(data: dict):
    return nbformat.reads(json.dumps(data), as_version=4)


def _by_id(nb):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def test_read_rejects_bad_json_and_non_notebooks(ctx):
    for raw, message in ((b"{oops", "not valid JSON"), (b'{"a": 1}', "not a notebook"), (b"\xff\xfe", "not valid")):
        with pytest.raises(StepFailed, match=message) as info:
            ReadNotebook()(raw, ctx)
        assert info.value.status == "invalid_notebook"
    assert len(ReadNotebook()(json.dumps(released()).encode(), ctx).cells) == 7


def test_clear_outputs(ctx):
    data = released()
    data["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "fake pass"}]
    data["cells"][1]["execution_count"] = 7
    nb = ClearOutputs()(_nb(data), ctx)
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None


def test_duplicated_grade_id_repaired_not_fatal(ctx):
    data = released()
    data["cells"].insert(1, json.loads(json.dumps(data["cells"][1])))
    nb = RepairCellIds()(_nb(data), ctx)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert ids.count("add") == 1 and ids[2] == "add"  # nbgrader's DeduplicateIds keeps the last copy
    assert "duplicated cell id(s) add repaired" in ctx.notes


def test_duplicated_cell_ids_of_nbformat_4_5_get_new_ids(ctx):
    data = released()
    data["nbformat_minor"] = 5
    for cell in data["cells"]:
        cell["id"] = "same"
    nb = RepairCellIds()(ReadNotebook()(json.dumps(data).encode(), ctx), ctx)
    assert len({c.id for c in nb.cells}) == len(nb.cells)
    assert "duplicated notebook cell ids repaired" in ctx.notes


def test_restore_edited_retyped_deleted_and_invented_cells(ctx):
    data = released()
    cells = {c["metadata"]["nbgrader"]["grade_id"]: c for c in data["cells"]}
    cells["test_add"]["source"] = "assert True"
    cells["test_squares"].update(cell_type="markdown")
    cells["test_squares"].pop("outputs")
    cells["test_squares"].pop("execution_count")
    data["cells"].remove(cells["test_mean"])
    data["cells"].append({"cell_type": "code", "metadata": {"nbgrader": {
        "grade_id": "bonus", "grade": True, "solution": False, "locked": True, "points": 100.0,
        "schema_version": 3}}, "source": "pass", "outputs": [], "execution_count": None})
    nb = RestoreCells()(_nb(data), ctx)
    spec = {c.grade_id: c for c in ctx.spec.cells}
    restored = _by_id(nb)
    assert "bonus" not in restored  # invented grade cells carry no points
    assert restored["test_add"].source == spec["test_add"].source  # with the hidden tests
    assert restored["test_squares"].cell_type == "code"
    assert restored["test_mean"].source.endswith(spec["test_mean"].source)
    order = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert order == [c.grade_id for c in ctx.spec.cells]  # re-added right after its answer cell
    assert restored["test_mean"].metadata["nbgrader"]["points"] == 1.0
    assert any("edited" in n and "test_add" in n for n in ctx.notes)
    assert any("missing" in n and "test_mean" in n for n in ctx.notes)


def test_released_test_cells_are_not_reported_as_edited(ctx):
    RestoreCells()(_nb(released()), ctx)
    assert ctx.notes == []


def test_harden_rewrites_equality_keeps_lines_and_comments():
    source = build_source()["cells"][2]["source"]  # test_add with hidden tests
    hardened = harden_test_source(source, "G", "TOKEN123")
    assert "### BEGIN HIDDEN TESTS" in hardened
    assert hardened.splitlines()[0] == "assert G.eq(add(1, 2), 3)"
    assert hardened.splitlines()[3] == "assert G.eq(add(2.5, 2.5), 5.0)"
    assert hardened.rstrip().endswith("print('TOKEN123', file=G.stdout)")


def test_harden_multiline_assert_keeps_line_numbers():
    source = "assert f(1) == [\n    1,\n    2]\nassert g() != 3, 'msg'\nx = 1\n"
    hardened = harden_test_source(source, "G", "T")
    ast.parse(hardened)
    lines = hardened.splitlines()
    assert lines[0].startswith("assert G.eq(f(1), [1, 2])")
    assert lines[3] == "assert G.ne(g(), 3), 'msg'"


def test_harden_keeps_final_expression_for_partial_credit():
    hardened = harden_test_source("score = 0.5\nscore", "G", "T")
    tree = ast.parse(hardened)
    assert isinstance(tree.body[-1], ast.Expr) and ast.unparse(tree.body[-1]) == "G.result"
    assert "print('T', file=G.stdout)" in hardened


def test_harden_leaves_syntax_errors_alone():
    assert harden_test_source("assert (", "G", "T") == "assert ("


def test_builtin_names_used():
    assert builtin_names_used("assert len(x) == sum(y)\nimport math") == ["len", "sum"]


def test_kernel_guard_strict_equality_without_a_kernel():
    """The guard's eq/ne logic, exercised in this process with a stand-in for trusted prefixes."""
    import sys
    from pathlib import Path

    from autograder import kernel_guard
    from autograder.unit import guard_install_code

    guard = kernel_guard.Guard.__new__(kernel_guard.Guard)
    guard.trusted_prefixes = (sys.prefix, sys.base_prefix)
    # classes compiled from a "notebook cell"
    ns = {}
    exec(compile("class AlwaysEqual:\n    def __eq__(self, o): return True\n"
                 "class E(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n",
                 "/tmp/ipykernel_1/123.py", "exec"), ns)
    A, E = ns["AlwaysEqual"], ns["E"]
    assert guard.eq(3, 3) and guard.eq(2, 2.0) and not guard.eq([1, 2], [1, 3])
    assert guard.eq({"a": [1, 2]}, {"a": [1, 2]}) and guard.ne(1, 2)
    for cheat in (A(), E(0), [A(), A()], {"k": A()}):
        with pytest.raises(kernel_guard.GuardError, match="notebook"):
            guard.eq(cheat, [1, 2] if isinstance(cheat, list) else 5)
    assert guard.eq(A(), A())  # same user type on both sides keeps its own meaning
    # the module tested here is the very source the grader sends into the student's kernel
    assert repr(Path(kernel_guard.__file__).read_text()) in guard_install_code("guard")


def test_score_cells_warnings_do_not_cost_points_and_swallowed_errors_do(ctx):
    nb = RestoreCells()(_nb(released()), ctx)
    cells = _by_id(nb)
    cells["test_add"].outputs = [nbformat.v4.new_output("stream", name="stderr", text="DeprecationWarning: x\n")]
    ctx.verdicts = {"test_add": (True, ""), "test_squares": (False, "swallowed"), "test_mean": (False, "boom")}
    cells["test_mean"].outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[])]
    scores = ScoreCells()(nb, ctx)
    assert scores == {"test_add": (2.0, 2.0), "test_squares": (0.0, 1.0), "test_mean": (0.0, 1.0)}
    assert cells["test_add"].outputs[0]["name"] == "stdout"
    assert cells["test_squares"].outputs[-1]["evalue"] == "swallowed"


def test_worst_status_and_result_shape():
    assert worst_status(["ok", "timeout", "missing"]) == "timeout"
    assert worst_status([]) == "ok"
    result = GradeResult("s", "ok", "graded", [NotebookResult("p", "ok", "", None, {"a": (1.0, 2.0)})], 1.0, 1.0, 2.0)
    assert result.to_dict() == {"student_id": "s", "status": "ok", "score": 1.0, "max_score": 2.0, "reason": "graded"}


def test_grade_job_unsandboxed_end_to_end():
    """A perfect and a missing notebook in one job, sandbox off: scores from a real kernel."""
    from autograder.unit import grade_job

    data = released()
    for cell in data["cells"]:
        gid = cell["metadata"]["nbgrader"]["grade_id"]
        cell["source"] = CORRECT.get(gid, cell["source"])
    specs = specs_from_source()
    job = GradeJob("c", "reg", "alice", {f"{NOTEBOOK}.ipynb": json.dumps(data).encode()}, specs, {},
                   Limits(cell_timeout=30), sandbox=False)
    result = grade_job(job)
    assert (result.status, result.score, result.max_score) == ("ok", 4.0, 4.0), result.reason
    graded = nbformat.reads(result.notebooks[0].graded.decode(), as_version=4)
    assert "### BEGIN HIDDEN TESTS" in _by_id(graded)["test_add"].source  # the feedback must strip these
    missing = grade_job(GradeJob("c", "reg", "bob", {}, specs, {}, Limits(), sandbox=False))
    assert (missing.status, missing.score, missing.max_score) == ("missing", 0.0, 4.0)


def test_kernel_guard_late_module_check_skips_classes_with_a_code_descriptor():
    """Regression: a trusted module imported after the snapshot that holds a class such as types.FunctionType
    (whose ``__code__`` is a descriptor, not a code object) made every test cell fail with AttributeError."""
    import sys
    import types

    from autograder import kernel_guard

    guard = kernel_guard.Guard.__new__(kernel_guard.Guard)
    guard.trusted_prefixes = (sys.prefix, sys.base_prefix)
    guard.modules = {}
    late = types.ModuleType("late_library")
    late.__file__ = f"{sys.prefix}/lib/late_library.py"
    late.FunctionType = types.FunctionType

    class LazyIntegration:  # like MLflow's lazy loaders: touching an attribute imports a missing package
        def __getattr__(self, name):
            raise ModuleNotFoundError("No module named 'haystack'")

    late.haystack = LazyIntegration()
    # a library building its own functions with exec() (scipy.optimize._nonlin, fastapi, dataclasses do)
    exec(compile("def solver():\n    return 1\n", "<string>", "exec"), vars(late))
    late.__name__ = "late_library"
    cell = {"__name__": "__main__"}  # a notebook cell's namespace
    exec(compile("def patched():\n    return True\n", "/tmp/ipykernel_1/456.py", "exec"), cell)
    late.patched = cell["patched"]
    sys.modules["late_library"] = late
    try:
        problems = guard._check_late_modules()
    finally:
        del sys.modules["late_library"]
    assert "late_library.patched" in problems            # notebook code planted in a library is still caught
    assert "late_library.FunctionType" not in problems
    assert "late_library.solver" not in problems
    exec_from_cell = {"__name__": "__main__"}
    exec(compile("def forged():\n    return 1\n", "<string>", "exec"), exec_from_cell)
    assert not guard._trusted_function(exec_from_cell["forged"])     # exec'd in the notebook: not trusted
    assert guard._trusted_function(late.solver)                      # exec'd by a library: trusted
    assert guard._trusted_function(types.FunctionType)


def _with_test_source(specs, grade_id: str, source: str):
    """``specs`` with one test cell's instructor source replaced."""
    import dataclasses

    (spec,) = specs
    cells = tuple(dataclasses.replace(c, source=source) if c.grade_id == grade_id else c for c in spec.cells)
    return (dataclasses.replace(spec, cells=cells),)


def test_assert_followed_by_statements_scores_full_marks_in_a_real_kernel():
    """nbgrader-style test cells: asserts, then ``print("Success!")`` or a final expression. A correct answer scores
    full marks (the rewrite used to turn such cells into a SyntaxError: 0 with status ok); a wrong one scores 0."""
    from autograder.unit import grade_job

    specs = _with_test_source(specs_from_source(), "test_add",
                              "assert add(1, 2) == 3\nassert add(2, 2) == \\\n    4\nprint('Success!')\n"
                              "### BEGIN HIDDEN TESTS\nassert add(-1, 1) == 0\n### END HIDDEN TESTS\n'é'")
    data = released()
    for cell in data["cells"]:
        cell["source"] = CORRECT.get(cell["metadata"]["nbgrader"]["grade_id"], cell["source"])
    job = GradeJob("c", "reg", "alice", {f"{NOTEBOOK}.ipynb": json.dumps(data).encode()}, specs, {},
                   Limits(cell_timeout=30), sandbox=False)
    result = grade_job(job)
    assert (result.status, result.score) == ("ok", 4.0), result.reason
    graded = _by_id(nbformat.reads(result.notebooks[0].graded.decode(), as_version=4))
    assert "Success!" in "".join(o.get("text", "") for o in graded["test_add"].outputs)
    assert result.notebooks[0].scores["test_add"] == (2.0, 2.0)


def test_a_rewrite_that_fails_is_a_grader_error_naming_the_cell(monkeypatch):
    from autograder import kernel_client, unit
    from autograder.rewrite import RewriteError

    def broken(source, guard_name, token):
        raise RewriteError("the grader's rewrite of this test cell does not compile (invalid syntax, line 1)")

    monkeypatch.setattr(kernel_client, "harden_test_source", broken)
    data = released()
    for cell in data["cells"]:
        cell["source"] = CORRECT.get(cell["metadata"]["nbgrader"]["grade_id"], cell["source"])
    result = unit.grade_job(GradeJob("c", "reg", "alice", {f"{NOTEBOOK}.ipynb": json.dumps(data).encode()},
                                     specs_from_source(), {}, Limits(cell_timeout=30), sandbox=False))
    assert result.status == "error"
    assert "test cell test_add" in result.reason and "does not compile" in result.reason
