"""nbgrader's delimited regions in a cell's source (hidden tests, solutions, stubs): one parser, nbgrader's rules.

nbgrader marks a region with two delimiter lines: a line that *contains* the begin delimiter opens it, a line that
contains the end delimiter closes it, and both lines belong to the region (``ClearHiddenTests`` and
``ClearSolutions`` walk a cell's lines this way). The delimiters are nbgrader settings, with nbgrader's spelling:
``ClearHiddenTests.begin_test_delimeter`` / ``end_test_delimeter`` (default ``BEGIN HIDDEN TESTS`` /
``END HIDDEN TESTS``) and ``ClearSolutions.begin_solution_delimeter`` / ``end_solution_delimeter`` (``BEGIN
SOLUTION`` / ``END SOLUTION``); this course adds ``ClearSolutionsWithStubs.begin_stub_delimiter`` /
``end_stub_delimiter`` (:mod:`autograder.stubs`). :meth:`Delimiters.from_config` reads them through nbgrader's own
configurables, so a course that changes them is parsed the same by the grader, the feedback and the examples.

Every consumer splits a source with :func:`split`; the grader's sandboxed unit gets the course's delimiters in its
job (:attr:`autograder.job.GradeJob.delimiters`), as it never sees the course's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Delimiters:
    """The texts that open and close each kind of region (nbgrader's defaults unless the course sets others)."""

    begin_test: str = "BEGIN HIDDEN TESTS"
    end_test: str = "END HIDDEN TESTS"
    begin_solution: str = "BEGIN SOLUTION"
    end_solution: str = "END SOLUTION"
    begin_stub: str = "BEGIN STUB"
    end_stub: str = "END STUB"

    @classmethod
    def from_config(cls, config) -> "Delimiters":
        """The delimiters a traitlets ``config`` (a course's nbgrader configuration) sets, as nbgrader reads them."""
        from nbgrader.preprocessors import ClearHiddenTests

        from .stubs import ClearSolutionsWithStubs  # a ClearSolutions: it reads ClearSolutions' settings too

        tests, solutions = ClearHiddenTests(config=config), ClearSolutionsWithStubs(config=config)
        return cls(
            begin_test=tests.begin_test_delimeter,
            end_test=tests.end_test_delimeter,
            begin_solution=solutions.begin_solution_delimeter,
            end_solution=solutions.end_solution_delimeter,
            begin_stub=solutions.begin_stub_delimiter,
            end_stub=solutions.end_stub_delimiter,
        )

    @property
    def hidden_tests(self) -> tuple[str, str]:
        return self.begin_test, self.end_test

    @property
    def solution(self) -> tuple[str, str]:
        return self.begin_solution, self.end_solution

    @property
    def stub(self) -> tuple[str, str]:
        return self.begin_stub, self.end_stub


#: nbgrader's default delimiters (and this course's).
DEFAULT = Delimiters()


#: What a line of a split source is: outside every region, a region's begin or end delimiter line, or inside one.
OUTSIDE, BEGIN, INSIDE, END = "outside", "begin", "inside", "end"


@dataclass(frozen=True)
class Split:
    """A source cut along one kind of region: each line with what it is (:data:`OUTSIDE`, :data:`BEGIN`,
    :data:`INSIDE` or :data:`END`), and ``problem`` when the regions are not what nbgrader accepts when it releases
    a notebook (``"nested"``, ``"end without a beginning"``, ``"not closed"``; None when well formed)."""

    lines: tuple[tuple[str, str], ...]
    problem: str | None

    @property
    def found(self) -> bool:
        """Whether a region was opened."""
        return self.count > 0

    @property
    def count(self) -> int:
        """How many regions were opened."""
        return sum(kind == BEGIN for _, kind in self.lines)

    @property
    def outside(self) -> list[str]:
        return [line for line, kind in self.lines if kind == OUTSIDE]

    @property
    def inside(self) -> list[str]:
        """The lines inside the regions, delimiter lines excluded."""
        return [line for line, kind in self.lines if kind == INSIDE]

    @property
    def regions(self) -> list[str]:
        """The regions' lines in their order, delimiter lines included."""
        return [line for line, kind in self.lines if kind != OUTSIDE]

    def text(self) -> str:
        """The source without its regions (what nbgrader releases of a hidden-test region)."""
        return "\n".join(self.outside)

    def unmarked(self) -> str:
        """The source without its delimiter lines (the regions' content kept)."""
        return "\n".join(line for line, kind in self.lines if kind not in (BEGIN, END))


def split(source: str, region: tuple[str, str]) -> Split:
    """Cut ``source`` along the regions that ``region`` (a ``(begin, end)`` pair of delimiters) opens and closes."""
    begin, end = region
    lines, inside, problem = [], False, None
    for line in source.split("\n"):
        if begin in line:
            if inside:
                problem = problem or "nested"
            inside = True
            lines.append((line, BEGIN))
        elif end in line:
            if not inside:
                problem = problem or "end without a beginning"
            inside = False
            lines.append((line, END))
        else:
            lines.append((line, INSIDE if inside else OUTSIDE))
    if inside:
        problem = problem or "not closed"
    return Split(lines=tuple(lines), problem=problem)


def hidden_tests(source: str, delimiters: Delimiters = DEFAULT) -> Split:
    """``source`` cut along its hidden-test regions."""
    return split(source, delimiters.hidden_tests)


def hidden_regions(source: str, delimiters: Delimiters = DEFAULT) -> tuple[str, list[str]]:
    """``source`` without its hidden-test regions, and the regions' lines (delimiter lines included)."""
    cut = hidden_tests(source, delimiters)
    return cut.text(), cut.regions


def without_hidden_tests(source: str, delimiters: Delimiters = DEFAULT) -> str:
    """The released version of a test cell's source: nbgrader's ``ClearHiddenTests`` removes its hidden regions."""
    return hidden_tests(source, delimiters).text()


def solution_only(source: str, delimiters: Delimiters = DEFAULT) -> str:
    """The answer a student who solved the exercise would submit: the solution lines kept, the solution delimiter
    lines and any stub region removed."""
    return split(split(source, delimiters.stub).text(), delimiters.solution).unmarked()
