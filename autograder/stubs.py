"""Per-cell code stubs for ``nbgrader generate_assignment``: the student gets the code to repair, not "YOUR CODE HERE".

nbgrader's :class:`~nbgrader.preprocessors.ClearSolutions` replaces every ``### BEGIN SOLUTION`` ...
``### END SOLUTION`` region by ONE stub per language (``raise NotImplementedError()``). A fix-the-pipeline exercise
needs the opposite: the released notebook must show the *broken* code in the answer cell, so that the student sees
the mistake and repairs it in place (and the visible tests demonstrably fail on it). nbgrader has no per-cell stub,
so this subclass adds one, and ``nbgrader_config.py`` puts it in ``GenerateAssignment.preprocessors`` in place of
ClearSolutions: plain ``nbgrader generate_assignment`` and ``python -m autograder release`` give the same release.

In the source (instructor) notebook, a solution cell may carry, after its solution region, a stub region holding the
student's version *commented out* (so that the source notebook still runs the solution)::

    def run_pipeline(pipeline):
        ### BEGIN SOLUTION
        for step in pipeline:
            ...
        ### END SOLUTION
        ### BEGIN STUB
        # for step in pipeline
        #     ...
        ### END STUB

The released cell holds the stub lines uncommented (one ``# `` removed after the marker's indentation, as
JupyterLab's toggle-comment adds it) in place of the solution region; the stub region itself disappears. Cells
without a stub region are released exactly as ClearSolutions releases them.
"""

from __future__ import annotations

import re

from nbgrader.preprocessors import ClearSolutions
from traitlets import Unicode

from .exceptions import StubRegionError
from .regions import BEGIN, OUTSIDE, split


class ClearSolutionsWithStubs(ClearSolutions):
    """ClearSolutions that replaces a cell's solution region by the cell's own ``### BEGIN STUB`` region, if any."""

    begin_stub_delimiter = Unicode("BEGIN STUB", help="The delimiter marking the beginning of a per-cell stub").tag(
        config=True
    )
    end_stub_delimiter = Unicode("END STUB", help="The delimiter marking the end of a per-cell stub").tag(config=True)

    def _extract_stub(self, cell) -> list[str] | None:
        """Remove the stub region from ``cell.source``; return its lines uncommented, or None if there is none."""
        cut = split(cell.source, (self.begin_stub_delimiter, self.end_stub_delimiter))
        if cut.problem == "nested":
            raise StubRegionError(f"nested {self.begin_stub_delimiter!r} in cell:\n{cell.source}")
        if cut.problem == "end without a beginning":
            raise StubRegionError(f"{self.end_stub_delimiter!r} without a beginning in cell:\n{cell.source}")
        if cut.count > 1:
            raise StubRegionError(f"more than one stub region in cell:\n{cell.source}")
        if cut.problem == "not closed":
            raise StubRegionError(f"no {self.end_stub_delimiter!r} in cell:\n{cell.source}")
        if not cut.found:
            return None
        indent = re.match(r"\s*", next(line for line, kind in cut.lines if kind == BEGIN)).group(0)
        stub = [self._uncomment(line, indent, cell) for line in cut.inside]
        cell.source = cut.text()
        return stub

    @staticmethod
    def _uncomment(line: str, indent: str, cell) -> str:
        if line.strip() == "":
            return ""
        for prefix in (indent + "# ", indent + "#"):
            if line.startswith(prefix):
                rest = line[len(prefix) :]
                return indent + rest if rest.strip() else ""
        raise StubRegionError(
            f"every line of a stub region must be commented out at the marker's indentation; this one is not: "
            f"{line!r} in cell:\n{cell.source}"
        )

    def _replace_solution_region(self, cell, language: str) -> bool:
        stub = self._extract_stub(cell)
        if stub is None:
            return super()._replace_solution_region(cell, language)
        # ClearSolutions' rules, with the cell's own stub instead of the language's.
        cut = split(cell.source, (self.begin_solution_delimeter, self.end_solution_delimeter))
        if cut.problem == "nested" or cut.count > 1:
            raise StubRegionError(f"a cell with a stub region must have exactly one solution region:\n{cell.source}")
        if cut.problem == "not closed":
            raise StubRegionError("no end solution statement found")
        if not cut.found:
            raise StubRegionError(f"a stub region needs a solution region to replace, in cell:\n{cell.source}")
        new_lines = []
        for line, kind in cut.lines:
            if kind == BEGIN:
                new_lines.extend(stub)
            elif kind == OUTSIDE:
                new_lines.append(line)
        cell.source = "\n".join(new_lines)
        return True
