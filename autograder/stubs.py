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


class StubRegionError(RuntimeError):
    """A stub region is malformed (unclosed, nested, outside a solution cell, or a line is not commented)."""


class ClearSolutionsWithStubs(ClearSolutions):
    """ClearSolutions that replaces a cell's solution region by the cell's own ``### BEGIN STUB`` region, if any."""

    begin_stub_delimiter = Unicode("BEGIN STUB", help="The delimiter marking the beginning of a per-cell stub").tag(
        config=True)
    end_stub_delimiter = Unicode("END STUB", help="The delimiter marking the end of a per-cell stub").tag(config=True)

    def _extract_stub(self, cell) -> list[str] | None:
        """Remove the stub region from ``cell.source``; return its lines uncommented, or None if there is none."""
        lines = cell.source.split("\n")
        kept, stub, indent = [], None, None
        for line in lines:
            if self.begin_stub_delimiter in line:
                if indent is not None:
                    raise StubRegionError(f"nested {self.begin_stub_delimiter!r} in cell:\n{cell.source}")
                if stub is not None:
                    raise StubRegionError(f"more than one stub region in cell:\n{cell.source}")
                indent, stub = re.match(r"\s*", line).group(0), []
            elif self.end_stub_delimiter in line:
                if indent is None:
                    raise StubRegionError(f"{self.end_stub_delimiter!r} without a beginning in cell:\n{cell.source}")
                indent = None
            elif indent is not None:
                stub.append(self._uncomment(line, indent, cell))
            else:
                kept.append(line)
        if indent is not None:
            raise StubRegionError(f"no {self.end_stub_delimiter!r} in cell:\n{cell.source}")
        if stub is None:
            return None
        cell.source = "\n".join(kept)
        return stub

    @staticmethod
    def _uncomment(line: str, indent: str, cell) -> str:
        if line.strip() == "":
            return ""
        for prefix in (indent + "# ", indent + "#"):
            if line.startswith(prefix):
                rest = line[len(prefix):]
                return indent + rest if rest.strip() else ""
        raise StubRegionError(
            f"every line of a stub region must be commented out at the marker's indentation; this one is not: "
            f"{line!r} in cell:\n{cell.source}")

    def _replace_solution_region(self, cell, language: str) -> bool:
        stub = self._extract_stub(cell)
        if stub is None:
            return super()._replace_solution_region(cell, language)
        # Same walk as ClearSolutions, with the cell's own stub instead of the language's.
        new_lines, in_solution, replaced = [], False, False
        for line in cell.source.split("\n"):
            if self.begin_solution_delimeter in line:
                if in_solution or replaced:
                    raise StubRegionError(
                        f"a cell with a stub region must have exactly one solution region:\n{cell.source}")
                in_solution = replaced = True
                new_lines.extend(stub)
            elif self.end_solution_delimeter in line:
                in_solution = False
            elif not in_solution:
                new_lines.append(line)
        if in_solution:
            raise StubRegionError("no end solution statement found")
        if not replaced:
            raise StubRegionError(f"a stub region needs a solution region to replace, in cell:\n{cell.source}")
        cell.source = "\n".join(new_lines)
        return True
