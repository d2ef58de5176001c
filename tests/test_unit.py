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
    data["cells"].append(
        {
            "cell_type": "code",
            "metadata": {
                "nbgrader": {
                    "grade_id": "bonus",
                    "grade": True,
                    "solution": False,
                    "locked": True,
                    "points": 100.0,
                    "schema_version": 3,
                }
            },
            "source": "pass",
            "outputs": [],
            "execution_count": None,
        }
    )
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
    # names the cell binds itself are its own, not builtins it relies on (the guard checks the others)
    assert builtin_names_used("sum = 0\nfor i in range(3):\n    sum += i\nassert sum == 3") == ["range"]
    assert builtin_names_used("from math import pow\ndef abs(x):\n    return x\nassert abs(pow(2, 1)) == 2") == []


# ------------------------------------------------------------------------------------------- the in-kernel guard
@pytest.fixture(scope="module")
def shell():
    """A real in-process IPython shell (the guard built with ``install=False`` leaves this process alone)."""
    from IPython.core.interactiveshell import InteractiveShell

    yield InteractiveShell.instance()
    InteractiveShell.clear_instance()


@pytest.fixture(scope="module")
def guard(shell):
    from autograder.kernel_guard import Guard

    return Guard(shell, install=False)


def test_kernel_guard_strict_equality_without_a_kernel(guard):
    """The guard's eq/ne, built in this process as in a kernel (classes made after its snapshot are notebook
    code unless they only inherit their comparison)."""
    from pathlib import Path

    import numpy

    from autograder import kernel_guard
    from autograder.unit import guard_install_code

    ns = {}
    exec(
        compile(
            "class AlwaysEqual:\n    def __eq__(self, o): return True\n"
            "class E(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
            "class Plain(int):\n    pass\n",
            "/tmp/ipykernel_1/123.py",
            "exec",
        ),
        ns,
    )
    A, E, Plain = ns["AlwaysEqual"], ns["E"], ns["Plain"]
    assert guard.eq(3, 3) and guard.eq(2, 2.0) and not guard.eq([1, 2], [1, 3])
    assert guard.eq({"a": [1, 2]}, {"a": [1, 2]}) and guard.ne(1, 2)
    assert guard.eq(Plain(3), 3)  # inherits int's comparison: trusted
    for cheat, other in (
        (A(), 5),
        (E(0), 5),
        ([A(), A()], [1, 2]),
        ({"k": A()}, {"k": 5}),
        ({E(1): 1}, {1: 1}),
        ((1, {E(1)}), (1, {1})),
        (range(3), A()),
    ):
        with pytest.raises(kernel_guard.GuardError, match="notebook"):
            guard.eq(cheat, other)
    assert guard.eq(A(), A())  # same user type on both sides keeps its own meaning
    assert guard.eq(numpy.float64(2.0), 2.0) and guard.eq(list(numpy.arange(3)), [0, 1, 2])
    assert guard.eq(numpy.arange(3), [0, 1, 2]).all()
    with pytest.raises(kernel_guard.GuardError, match="notebook"):
        guard.eq(numpy.array([A(), 1], dtype=object), numpy.array([1, 1], dtype=object))
    # the module tested here is the very source the grader sends into the student's kernel
    assert repr(Path(kernel_guard.__file__).read_text()) in guard_install_code("guard")


def test_kernel_guard_trusts_identity_not_metadata(guard, monkeypatch):
    """A comparison compiled under a library's file name, or a class claiming a library's module, is notebook
    code; a library class whose comparison was replaced after the snapshot is not trusted either."""
    import fractions

    import numpy

    from autograder.kernel_guard import GuardError

    class Forged:
        def __eq__(self, other):
            return True

    Forged.__eq__.__code__ = Forged.__eq__.__code__.replace(co_filename=numpy.__file__)
    ns = {"__name__": "numpy"}
    exec("class Numpyish:\n    def __eq__(self, other):\n        return True\n", ns)
    ns["Numpyish"].__module__, ns["Numpyish"].__qualname__ = "numpy", "ndarray"
    for cheat in (Forged(), ns["Numpyish"]()):
        with pytest.raises(GuardError, match="defined by notebook code"):
            guard.eq(cheat, 1)
    assert guard.core["trust_of"](fractions.Fraction) == 0  # a library class known at the snapshot
    monkeypatch.setattr(fractions.Fraction, "__eq__", lambda self, other: True)
    for other in (0.5, fractions.Fraction(1, 3)):
        with pytest.raises(GuardError, match="replaced by notebook code"):
            guard.eq(fractions.Fraction(1, 2), other)


def test_kernel_guard_protected_functions_read_no_globals(guard):
    """The functions that decide a verdict take everything from their default arguments: none reads a global
    (the guard's module dict is reachable from ``__globals__``) or has a closure cell (writable)."""
    import dis
    import types

    from autograder import kernel_guard

    funcs = [f for f in guard.core.values() if isinstance(f, types.FunctionType)] + [guard.sentry]
    assert len(funcs) > 20
    for func in funcs:
        assert func.__closure__ is None, func.__name__
        codes = {}
        kernel_guard._nested_codes(func.__code__, codes)
        for code in codes.values():
            ops = {i.opname for i in dis.get_instructions(code)}
            assert not ops & {
                "LOAD_GLOBAL",
                "LOAD_NAME",
                "STORE_GLOBAL",
                "STORE_NAME",
                "DELETE_GLOBAL",
                "LOAD_CLASSDEREF",
            }, (func.__name__, code.co_name)


LATE_LIBRARY = """
import types
from types import FunctionType


class Money:
    def __init__(self, cents):
        self.cents = cents

    def __eq__(self, other):
        return type(other) is Money and other.cents == self.cents

    __hash__ = None


def check(a, b):
    assert a == b


class LazyIntegration:  # like MLflow's lazy loaders: touching an attribute imports a missing package
    def __getattr__(self, name):
        raise ModuleNotFoundError("No module named 'haystack'")


haystack = LazyIntegration()
exec("def solver():\\n    return 1\\n", globals())  # a function a library builds with exec()
"""


def test_kernel_guard_records_a_late_library_module(shell, tmp_path, monkeypatch):
    """A library module imported after the snapshot: loaded by the guard's recorder, its classes trusted by
    identity, its functions put back for a test when patched, a fake under its name (or under the name of one of
    the installation's modules not imported yet) taken out of sys.modules."""
    import importlib.util
    import sys
    import types

    from autograder.kernel_guard import Guard

    lib = tmp_path / "site-packages"
    lib.mkdir()
    (lib / "lateprobe.py").write_text(LATE_LIBRARY)
    (lib / "lateprobe_unused.py").write_text("def check(a, b):\n    assert a == b\n")
    monkeypatch.syspath_prepend(str(lib))
    guard = Guard(shell, install=False, trusted_dirs=(str(lib),))
    spec = guard.recorder.find_spec("lateprobe")  # install=False: the recorder is not in sys.meta_path
    module = types.ModuleType("lateprobe")
    module.__spec__, module.__file__ = spec, spec.origin
    module.check = "planted before the import"  # cleared: only what the library's own code makes counts
    monkeypatch.setitem(sys.modules, "lateprobe", module)
    spec.loader.exec_module(module)
    core = guard.core
    assert module.solver() == 1 and isinstance(module.check, types.FunctionType)
    assert core["trust_of"](module.Money) == 0
    assert guard.eq(module.Money(5), module.Money(5)) and not guard.eq(module.Money(5), module.Money(6))
    ns = {}
    exec(compile("class Fake:\n    def __eq__(self, other):\n        return True\n", spec.origin, "exec"), ns)
    assert core["trust_of"](ns["Fake"]) == 1  # its file name is the library's, its code is not
    assert core["trust_of"](type("Sub", (module.Money,), {})) == 0  # made later, inheriting the comparison
    assert core["tampered"](()) == []

    original, noop = module.check, (lambda a, b: None)
    module.check = noop
    assert "lateprobe.check was replaced" in core["tampered"](())
    guard.before_test("_grader_probe", [])
    assert module.check is original  # for the test
    guard.after_test("_grader_probe")
    assert module.check is noop  # the notebook's own, after it

    # record() only records a library file's own code, under that file's own name, in a plain module object
    named_by = core["named_by"]
    assert named_by("lateprobe", f"{lib}/lateprobe.py") and named_by("a.b", f"{lib}/a/b/__init__.py")
    assert named_by("a.b", f"{lib}/a/b.cpython-311-x86_64-linux-gnu.so")
    assert not named_by("a.testing", f"{lib}/other/testing.py") and not named_by("testing", f"{lib}/other/testing.py")
    assert not named_by("lateprobe", f"{tmp_path}/lateprobe.py")  # not an import root of the installation
    for name, kind in (("lateprobe_renamed", types.ModuleType), ("lateprobe", type("M", (types.ModuleType,), {}))):
        other = kind(name)
        other.__spec__ = importlib.util.spec_from_file_location(name, spec.origin)
        core["record"](other.__spec__.loader, other)  # loaded the loader's own way, not recorded
        assert core["known_modules"]()["lateprobe"][0] is module and other.solver() == 1
    assert "lateprobe_renamed" not in core["known_modules"]()

    # a file the import system loads under another name (a package borrowing another's __path__, as tlz does
    # with toolz): trusted code, not a fake as long as that name designates that file
    (lib / "realpkg").mkdir()
    (lib / "realpkg" / "__init__.py").write_text("")
    (lib / "realpkg" / "part.py").write_text(LATE_LIBRARY)
    alias = types.ModuleType("aliaspkg")
    alias.__path__ = [str(lib / "realpkg")]
    monkeypatch.setitem(sys.modules, "aliaspkg", alias)
    part_spec = guard.recorder.find_spec("aliaspkg.part", alias.__path__)
    part = importlib.util.module_from_spec(part_spec)
    monkeypatch.setitem(sys.modules, "aliaspkg.part", part)
    part_spec.loader.exec_module(part)
    assert core["trust_of"](part.Money) == 0 and "aliaspkg.part" not in core["fakes"]()
    alias.__path__ = [str(lib)]  # the name now designates another file (none): the alias is no fake either
    assert "aliaspkg.part" not in core["fakes"]()
    monkeypatch.setitem(sys.modules, "aliaspkg.part", types.ModuleType("aliaspkg.part"))
    alias.__path__ = [str(lib / "realpkg")]
    assert "aliaspkg.part" in core["fakes"]()  # a plain module object under that name is one
    sys.modules["aliaspkg.part"] = part

    fake, unused = types.ModuleType("lateprobe"), types.ModuleType("lateprobe_unused")
    sys.modules["lateprobe"] = fake
    monkeypatch.setitem(sys.modules, "lateprobe_unused", unused)
    problems = core["tampered"](())
    assert "sys.modules['lateprobe'] was replaced" in problems
    assert "sys.modules['lateprobe_unused'] is not the installed module" in problems
    guard.before_test("_grader_probe", [])
    guard.after_test("_grader_probe")
    assert sys.modules["lateprobe"] is module and "lateprobe_unused" not in sys.modules

    # a known package's __path__ decides what its submodules' names designate: checked, and put back
    spec = importlib.util.spec_from_file_location("realpkg", str(lib / "realpkg" / "__init__.py"))
    realpkg = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "realpkg", realpkg)
    core["record"](spec.loader, realpkg)
    original = realpkg.__path__
    assert original == [str(lib / "realpkg")]
    assert not [problem for problem in core["tampered"](()) if "__path__" in problem]
    realpkg.__path__.append(str(tmp_path))
    assert "the __path__ of package realpkg was changed" in core["tampered"](())
    guard.before_test("_grader_probe", [])
    guard.after_test("_grader_probe")
    assert realpkg.__path__ is original and original == [str(lib / "realpkg")]


@pytest.mark.full  # a process of its own with numpy and IPython (2-5 s); make test grades these attacks anyway
def test_kernel_guard_installed_refuses_what_the_regression_cases_try():
    """The installed guard (audit hook, import recorder) in a shell of its own process, as the grader drives a
    kernel: the attacks of the regression set's guard cases fail their test, what honest notebooks do works."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("regression") / "guard_scenarios.py"
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert "RESULT" in proc.stdout, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert out["hook installed"] is True
    assert out["honest"][:2] == [True, ""], out["honest"]
    assert out["late extension module"] == [True, "", "True"], out["late extension module"]
    passed, error, printed = out["hunt"]
    assert not passed and "AssertionError" in error
    assert "__code__ refused" in printed and "__defaults__ refused" in printed and "gc refused" in printed
    assert "changed" not in printed
    assert out["audit hook added"] is False  # refused: it never saw an event
    passed, error, printed = out["tracer from __del__"]
    assert not passed and "refused: sys.settrace is refused while the grader runs a test" in printed
    assert out["trace function after the test"] is True
    assert out["settrace and gc outside a test"] == [True, "True"]
    assert out["thread alive before"][:2] == [
        False,
        "before_test: 1 thread(s) started by notebook code are running: the grader does not run a test next to them",
    ]
    passed, error, _ = out["thread started during"]
    assert not passed and "thread(s) running notebook code during the test" in error
    for attack in ("fake module", "no-op", "code swap", "package attribute"):
        passed, error, _, printed = out[attack]
        assert not passed and "AssertionError" in error and "Not equal to tolerance" in error, (attack, error)
    assert "refused: __code__ of a library function cannot be changed" in out["code swap"][3]


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
    job = GradeJob(
        "c",
        "reg",
        "alice",
        {f"{NOTEBOOK}.ipynb": json.dumps(data).encode()},
        specs,
        {},
        Limits(cell_timeout=30),
        sandbox=False,
    )
    result = grade_job(job)
    assert (result.status, result.score, result.max_score) == ("ok", 4.0, 4.0), result.reason
    graded = nbformat.reads(result.notebooks[0].graded.decode(), as_version=4)
    assert "### BEGIN HIDDEN TESTS" in _by_id(graded)["test_add"].source  # the feedback must strip these
    missing = grade_job(GradeJob("c", "reg", "bob", {}, specs, {}, Limits(), sandbox=False))
    assert (missing.status, missing.score, missing.max_score) == ("missing", 0.0, 4.0)


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

    specs = _with_test_source(
        specs_from_source(),
        "test_add",
        "assert add(1, 2) == 3\nassert add(2, 2) == \\\n    4\nprint('Success!')\n"
        "### BEGIN HIDDEN TESTS\nassert add(-1, 1) == 0\n### END HIDDEN TESTS\n'é'",
    )
    data = released()
    for cell in data["cells"]:
        cell["source"] = CORRECT.get(cell["metadata"]["nbgrader"]["grade_id"], cell["source"])
    job = GradeJob(
        "c",
        "reg",
        "alice",
        {f"{NOTEBOOK}.ipynb": json.dumps(data).encode()},
        specs,
        {},
        Limits(cell_timeout=30),
        sandbox=False,
    )
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
    result = unit.grade_job(
        GradeJob(
            "c",
            "reg",
            "alice",
            {f"{NOTEBOOK}.ipynb": json.dumps(data).encode()},
            specs_from_source(),
            {},
            Limits(cell_timeout=30),
            sandbox=False,
        )
    )
    assert result.status == "error"
    assert "test cell test_add" in result.reason and "does not compile" in result.reason


def test_kernel_guard_snapshot_skips_objects_that_only_claim_to_be_modules(shell):
    """cffi's compiled ``lib`` objects (argon2's, imported by Jupyter's password hashing) stand in sys.modules and
    claim ``__class__ = module`` without a module's __dict__: the guard must not take them for modules (it crashed
    reading them, failing every test of the process)."""
    import sys
    import types

    import argon2  # noqa: F401 - puts _argon2_cffi_bindings._ffi.lib in sys.modules

    from autograder.kernel_guard import Guard

    posers = [
        n
        for n, m in sys.modules.items()
        if isinstance(m, types.ModuleType)
        and type(m) is not types.ModuleType
        and not issubclass(type(m), types.ModuleType)
    ]
    assert posers, "no cffi lib object in sys.modules: the test no longer tests anything"
    guard = Guard(shell, install=False)
    assert guard.core["tampered"](()) == []
