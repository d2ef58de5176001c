"""The rewrite of test cells (autograder.rewrite) against plain execution: a property test on generated cells and
on real ones (nbgrader's own test fixtures, cells shaped like nbgrader's autotest output, this course's own).

The property: the rewritten cell compiles, keeps its line count and comments, and -- run in a real IPython shell
with the real in-kernel guard, exactly as the grader runs it -- passes (no error AND the token printed) exactly
when the original cell passes when run as it is (what plain nbgrader does), with the same displayed result
(nbgrader's partial credit). Cells are generated from a seeded random grammar of the statements test cells are
made of (asserts with ``==``/``!=``, chained and nested comparisons, multi-line asserts in parentheses or with
backslashes, asserts in loops/functions/try blocks, ``print("Success!")`` after the asserts, final expressions,
``;`` on the last line, several statements on a line, UTF-8 text, magics and top-level ``await``).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import nbgrader
import pytest
import yaml

from autograder.rewrite import RewriteError, builtin_names_used, harden_test_source

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(nbgrader.__file__).parent / "tests" / "apps" / "files"
GUARD_MODULE = "_test_guard"

# ------------------------------------------------------------------------------------------------ the shell
VALUES = [
    "1",
    "2",
    "0",
    "-3",
    "2.5",
    "'é'",
    "'日本'",
    "'a'",
    "[1, 2]",
    "[1, 3]",
    "(1, 'x')",
    "{'k': 1}",
    "{'k': 2}",
    "None",
    "True",
    "{1, 2}",
    "ident(1)",
    "ident([1, 2])",
]


@pytest.fixture(scope="module")
def shell():
    """A real in-process IPython shell with the grader's guard installed the way the grader installs it."""
    from IPython.core.interactiveshell import InteractiveShell

    from autograder.unit import guard_install_code

    # The shell swaps in a __main__ of its own (with no __spec__: multiprocessing's spawn/forkserver then fail
    # in later tests of the same session) and its own display/except hooks: put them back afterwards.
    saved = sys.modules["__main__"], sys.displayhook, sys.excepthook
    sh = InteractiveShell.instance()
    try:
        result = sh.run_cell(guard_install_code(GUARD_MODULE), store_history=False)
        assert result.error_in_exec is None, result.error_in_exec
        yield sh
    finally:
        sys.modules.pop(GUARD_MODULE, None)
        InteractiveShell.clear_instance()
        sys.modules["__main__"], sys.displayhook, sys.excepthook = saved


def _run(sh, source: str):
    """(passed, displayed result, stdout) of one cell in ``sh``."""
    from IPython.utils.capture import capture_output

    with capture_output(display=False) as captured:
        result = sh.run_cell(source, store_history=True)
    passed = result.error_in_exec is None and result.error_before_exec is None
    return passed, result.result, captured.stdout


def _as_graded(sh, source: str, tag: int):
    """Run ``source`` as the grader runs a test cell: guard before, hardened source, token check, guard after."""
    guard_name, token = f"_grader_g{tag}", f"autograder-ok-{tag:08d}"
    guard = sys.modules[GUARD_MODULE].GUARD
    guard.before_test(guard_name, builtin_names_used(source))
    try:
        hardened = harden_test_source(source, guard_name, token)
        passed, value, out = _run(sh, hardened)
    finally:
        guard.after_test(guard_name)
    return passed and token in out, value, hardened


def _same(a, b) -> bool:
    return type(a) is type(b) and repr(a) == repr(b)


def check_property(sh, setup: str, cell: str, tag: int) -> bool:
    """Assert the property for one cell (after ``setup`` ran); returns whether the original passed."""
    assert _run(sh, setup)[0], setup
    plain_passed, plain_value, _ = _run(sh, cell)
    assert _run(sh, setup)[0]
    graded_passed, graded_value, hardened = _as_graded(sh, cell, tag)
    context = f"\n--- original ---\n{cell}\n--- hardened ---\n{hardened}"
    assert graded_passed == plain_passed, context
    if plain_passed:
        assert _same(graded_value, plain_value), f"displayed {graded_value!r} vs {plain_value!r}{context}"
    code_lines = [line for line in cell.splitlines() if line.strip().startswith("#")]
    for comment in code_lines:  # comments (hidden-test markers among them) are untouched
        assert comment in hardened.splitlines(), context
    return plain_passed


# ------------------------------------------------------------------------------------------------ generated cells
def _autotest_lines(rng: random.Random, templates: dict) -> list[str]:
    """Lines shaped like nbgrader's autotest output (its autotests.yml ``check`` and ``success`` templates)."""
    name = rng.choice(["a", "b", "c"])
    spec = templates["python3"]
    kind = rng.choice(["default", "int", "str", "list"])
    lines = [spec["setup"]]
    for test in spec["templates"][kind]:
        snippet = test["test"].replace("{{snippet}}", name)
        value = f"str({snippet})" if rng.random() < 0.8 else "'wrong'"
        message = test["fail"].replace("{{snippet}}", name).replace('"', "'")
        lines.append(
            spec["check"]
            .replace("{{snippet}}", value)
            .replace('"{{value}}"', f"str({snippet})")
            .replace("{{message}}", message)
        )
    lines.append(spec["success"])
    return lines


def _statement(rng: random.Random, depth: int = 0) -> list[str]:
    a, b = rng.choice(VALUES), rng.choice(VALUES)
    if rng.random() < 0.5:
        b = a  # half the comparisons hold
    op = rng.choice(["==", "!="])
    choices = [
        [f"assert {a} {op} {b}"],
        [f"assert {a} {op} {b}, 'message with é and \"quotes\"'"],
        [f"assert ({a} {op}", f"        {b})  # trailing comment"],
        [f"assert {a} {op} \\", f"    {b}"],
        [f"assert {a} == {a} {op} {b}"],
        [f"assert ident({a}) {op} {b} or ident({b}) == {b}"],
        [f"assert [x {op} {b} for x in [{a}]] == [x {op} {b} for x in [{a}]]"],
        [f"assert (lambda: {a} {op} {b})() in (True, False)"],
        [f"x = {a}; assert x {op} {b}"],
        ["print('Success!')"],
        [f"y = {a}"],
        ["# a comment"],
        ["try:", f"    assert {a} {op} {b}", "except AssertionError:", "    pass"],
        ["def check():", f"    assert {a} {op} {b}, 'in a function'", "check()"],
        ["if True:", f"    assert {a} {op} \\", f"        {b}", "    z = 1"],
        ["for i in range(2):", f"    assert ident(i) == i and {a} {op} {b}"],
        ["%time w = 1"],
        ["import asyncio", "await asyncio.sleep(0)"],
    ]
    return rng.choice(choices)


def _generated_cell(rng: random.Random, templates: dict) -> str:
    lines: list[str] = []
    hidden = rng.random() < 0.3
    for _ in range(rng.randint(1, 5)):
        lines += _statement(rng)
    if hidden:
        lines += ["### BEGIN HIDDEN TESTS", *_statement(rng), "### END HIDDEN TESTS"]
    if rng.random() < 0.2:
        lines += _autotest_lines(rng, templates)
    ending = rng.random()
    if ending < 0.25:
        lines.append(rng.choice(["0.5", "1", "ident(0.25)", "len([1, 2])", "'text'"]))
    elif ending < 0.35:
        lines.append(rng.choice(["0.5;", "y = 1;", "ident(2)  ;  # quiet"]))
    elif ending < 0.45:
        lines.append("print('Success!')")
    text = "\n".join(lines)
    return text + ("\n" if rng.random() < 0.5 else "")


SETUP = "def ident(v):\n    return v\na, b, c = 5, 'hello', [1, 2, 'test']"


def test_generated_cells_pass_exactly_when_the_original_passes(shell):
    templates = yaml.safe_load((FIXTURES / "autotests.yml").read_text())
    rng = random.Random(20261201)
    outcomes = []
    for tag in range(100):
        outcomes.append(check_property(shell, SETUP, _generated_cell(rng, templates), tag))
    # both outcomes are well represented, so the property was checked on passing and on failing cells
    assert 25 < sum(outcomes) < 75, sum(outcomes)


def test_the_reported_cell_shapes(shell):
    """The shapes that scored honest students 0 before: an assert followed by a final expression or a print."""
    for tag, cell in enumerate(
        [
            "assert ident(1) == 1\nprint('Success!')",
            "assert ident(1) == 1\nassert ident(2) != 3\n0.5",
            "assert ident([1, 2]) == [1,\n  2]\nident(1)",
            "x = 'é日本'; assert x == 'é日本'\nx",
        ]
    ):
        assert check_property(shell, SETUP, cell, 1000 + tag)


# ------------------------------------------------------------------------------------------------ real cells
def _cells(path: Path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            yield cell.get("metadata", {}).get("nbgrader", {}), "".join(cell["source"])


def _fixture_notebooks():
    names = []
    for path in sorted(FIXTURES.glob("*.ipynb")):
        text = path.read_text()
        # timeout.ipynb sleeps to test nbgrader's timeout, not a rewrite (the port's test_autograde_timeout has it)
        if '"grade": true' in text and "AUTOTEST" not in text and path.name not in ("too-new.ipynb", "timeout.ipynb"):
            names.append(path.name)
    return names


@pytest.mark.parametrize("name", _fixture_notebooks())
def test_nbgrader_fixture_notebooks(shell, name):
    """Each of nbgrader's own test notebooks, run top to bottom: every test cell as the grader runs it gives the
    plain run's outcome (its answers as the fixture holds them, right or wrong)."""
    shell.reset(new_session=False)
    for tag, (meta, source) in enumerate(_cells(FIXTURES / name)):
        if meta.get("grade") and not meta.get("solution"):
            check_property(shell, "pass", source, 2000 + tag)
        else:
            _run(shell, source)


def test_course_test_cells_compile_with_lines_and_comments_kept():
    """This course's own test cells (both assignments, hidden tests included) rewrite into code that compiles,
    with the same number of lines before the token and every comment line unchanged."""
    cells = [
        (path, source)
        for path in sorted((ROOT / "source").glob("*/*.ipynb"))
        for meta, source in _cells(path)
        if meta.get("grade") and not meta.get("solution")
    ]
    assert len(cells) >= 10
    for path, source in cells:
        hardened = harden_test_source(source, "_grader_x", "TOKEN")
        before_token = hardened.split("print('TOKEN'")[0].rstrip("\n").split("\n")
        assert len(before_token) == len(source.rstrip("\n").split("\n")), (path.name, source)
        for line in source.splitlines():
            if line.strip().startswith("#"):
                assert line in before_token, (path.name, line)


def test_a_rewrite_that_does_not_compile_is_an_error_not_a_pass(monkeypatch):
    """Should the rewrite ever produce code that does not compile, it raises RewriteError naming why (the grader
    turns it into the status ``error``), instead of sending a SyntaxError to the kernel (a silent 0)."""
    import autograder.rewrite as rewrite

    monkeypatch.setattr(rewrite.ast, "unparse", lambda node: "assert (")
    with pytest.raises(RewriteError, match="does not compile"):
        rewrite.harden_test_source("assert 1 == 1\n", "G", "T")
    # a test cell that is not code to begin with is left as it is (it fails in the kernel, as under nbgrader)
    assert rewrite.harden_test_source("assert (", "G", "T") == "assert ("
