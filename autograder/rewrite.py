"""The source the grader actually executes for an nbgrader test cell ("hardening"), built on the AST.

A test cell is rewritten in two ways before it runs (see ``autograder/kernel_guard.py`` for the in-kernel half):

* every ``==`` / ``!=`` inside an ``assert`` statement becomes ``G.eq(a, b)`` / ``G.ne(a, b)`` (``G`` being the
  guard's random name for this test), so that an object whose ``__eq__`` always answers True cannot pass;
* after the cell's code, a random token is printed: the grader counts the test as passed only when the kernel
  replied "ok" AND the token arrived, so a hook that swallows the exception cannot make a failing test pass.
  A final bare expression (nbgrader's partial credit: a test cell whose value is a number) is kept as the
  cell's displayed result, after the token.

Every edit is a span of the *same* text it is applied to (the cell's Python source, after IPython's own
transformations of magics and shell escapes), computed from its AST, and applied from the end backwards, so
that no edit can shift another. Line numbers stay put (a multi-line assert keeps its lines through backslash
continuations), and comments -- the ``### BEGIN HIDDEN TESTS`` markers among them -- are untouched. The result
is compiled before it is used: a rewrite that does not compile raises :class:`RewriteError` naming the reason,
which the grader turns into the status ``error`` for that notebook (never a silent 0 for the student). A test
cell that is not valid code to begin with is returned unchanged: it fails in the kernel, as under nbgrader.

Why not a library: nbgrader runs test cells as they are; pytest's assertion rewriting works on whole modules and
changes what ``assert`` does (it would not keep IPython's cell semantics nor the final expression's display).
"""

from __future__ import annotations

import ast
import builtins
import copy
import io
import tokenize

from .exceptions import RewriteError

#: ``compile`` flags for a cell: an AST, with IPython's top-level ``await`` allowed.
_AST_FLAGS = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def parse_cell(source: str) -> ast.Module:
    """The AST of a cell's Python source; raises SyntaxError like ``compile``."""
    return compile(source, "<test cell>", "exec", flags=_AST_FLAGS, dont_inherit=True)


def python_source(source: str) -> str | None:
    """The Python IPython executes for ``source`` (magics and ``!`` escapes transformed), or None if it is not code.

    Valid Python is returned as is (IPython's transformations change nothing in it).
    """
    try:
        parse_cell(source)
        return source
    except SyntaxError:
        pass
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        transformed = TransformerManager().transform_cell(source)
        parse_cell(transformed)
        return transformed
    except Exception:  # noqa: BLE001 - SyntaxError or a transformer failure: not code the kernel can run either
        return None


class _EqualityRewriter(ast.NodeTransformer):
    """``a == b`` -> ``G.eq(a, b)`` and ``a != b`` -> ``G.ne(a, b)`` (single comparisons only: a chained
    comparison such as ``a == b == c`` keeps Python's meaning)."""

    def __init__(self, guard_name: str):
        self.guard_name = guard_name
        self.changed = False

    def visit_Compare(self, node):
        self.generic_visit(node)
        if len(node.ops) == 1 and isinstance(node.ops[0], (ast.Eq, ast.NotEq)):
            self.changed = True
            method = "eq" if isinstance(node.ops[0], ast.Eq) else "ne"
            call = ast.Call(
                func=ast.Attribute(value=ast.Name(self.guard_name, ast.Load()), attr=method, ctx=ast.Load()),
                args=[node.left, node.comparators[0]],
                keywords=[],
            )
            return ast.copy_location(call, node)
        return node


class _Positions:
    """(line, UTF-8 column) as the AST gives them -> offsets into the text the AST was parsed from."""

    def __init__(self, text: str):
        self.lines = text.splitlines(keepends=True) or [""]
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def __call__(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8", "replace"))


def _ends_with_semicolon(text: str) -> bool:
    """IPython's rule for a quiet cell: its last token (comments and newlines aside) is ``;``."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    for tok in reversed(tokens):
        if tok.type in (
            tokenize.ENDMARKER,
            tokenize.NL,
            tokenize.NEWLINE,
            tokenize.COMMENT,
            tokenize.DEDENT,
            tokenize.INDENT,
        ):
            continue
        return tok.type == tokenize.OP and tok.string == ";"
    return False


def harden_test_source(source: str, guard_name: str, token: str) -> str:
    """The source executed for a test cell (see the module docstring). Raises :class:`RewriteError` when the
    rewrite of a valid cell does not compile."""
    text = python_source(source)
    if text is None:
        return source  # not code: the kernel reports the SyntaxError, the test fails as it does under nbgrader
    if not text.endswith("\n"):
        text += "\n"  # a backslash continuation on the last line needs a line after it
    tree = parse_cell(text)
    pos = _Positions(text)
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), offsets into ``text``
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        rewriter = _EqualityRewriter(guard_name)
        new = rewriter.visit(copy.deepcopy(node))
        if not rewriter.changed:
            continue
        # one line of code, then as many continuation lines as the original spanned (line numbers stay put)
        replacement = ast.unparse(ast.fix_missing_locations(new)) + " \\\n" * (node.end_lineno - node.lineno)
        edits.append((pos(node.lineno, node.col_offset), pos(node.end_lineno, node.end_col_offset), replacement))
    last = tree.body[-1] if tree.body else None
    quiet = _ends_with_semicolon(text)
    if isinstance(last, ast.Expr) and not quiet:
        # keep the final value (nbgrader's partial credit) as the cell's displayed result, after the token
        start, end = pos(last.lineno, last.col_offset), pos(last.end_lineno, last.end_col_offset)
        edits.append((end, end, ")"))
        edits.append((start, start, f"{guard_name}.result = ("))
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        text = text[:start] + replacement + text[end:]
    # (``text`` ends with a newline: a trailing continuation line stays closed). The token goes to the guard's
    # uncapped stdout: printed output past the notebook's budget is discarded in the kernel, the token never is.
    text += f"print({token!r}, file={guard_name}.stdout)\n"
    if isinstance(last, ast.Expr) and not quiet:
        text += f"{guard_name}.result\n"
    try:
        compile(text, "<hardened test cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except SyntaxError as exc:
        raise RewriteError(
            f"the grader's rewrite of this test cell does not compile ({exc.msg}, line {exc.lineno})"
        ) from None
    return text


def builtin_names_used(source: str) -> list[str]:
    """Names a test cell loads that are builtins and that it does not bind itself (the guard moves notebook
    variables shadowing them aside for the test, and fails the test if one is bound again while it runs)."""
    text = python_source(source)
    if text is None:
        return []
    loaded, bound = set(), set()
    for node in ast.walk(parse_cell(text)):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
    return sorted(n for n in loaded - bound if hasattr(builtins, n))
