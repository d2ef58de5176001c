"""Feedback shows each test's result, score and message, never the source of a hidden test (nbgrader #917, #1363).

The example course's ps1 gets a hidden-test region in its first test cell; a third student, ``partial``, passes
the visible asserts but fails a hidden one. After ``grade`` + ``feedback`` no line of hidden-test source may appear
in any HTML, while the hidden assertion's message (the hint) must. Plain ``nbgrader generate_feedback`` on the same
graded course does leak the hidden lines: proof that the search below finds a leak when there is one.
"""

from __future__ import annotations

import html
import json
import re
import shutil

import pytest

from autograder.regions import hidden_regions
from nbgrader_course import HIDDEN_MESSAGES, HIDDEN_TEST_LINES, autograder_cli, nbgrader_cli


def _text(path) -> str:
    """What a reader of the HTML page sees: tags and ANSI codes removed, entities decoded, spaces collapsed."""
    raw = re.sub(r"<style.*?</style>|<script.*?</script>", " ", path.read_text(), flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", "", raw))
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


def _hidden_source_lines(course) -> list[str]:
    """Every line inside a hidden-test region of source/ (delimiters included), read from the source notebooks."""
    lines = []
    for path in (course / "source").rglob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            lines += [" ".join(h.split()) for h in hidden_regions(source)[1] if h.strip()]
    return lines


@pytest.fixture(scope="module")
def graded(graded_docs_course):
    return graded_docs_course


@pytest.fixture(scope="module")
def feedback(graded):
    course, _ = graded
    proc = autograder_cli(course, "feedback", "ps1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    pages = sorted((course / "feedback").rglob("*.html"))
    return course, {(p.parent.parent.name, p.stem): _text(p) for p in pages}


def test_hidden_regions_split():
    source = "assert f(1) == 1\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS\nprint('ok')"
    assert hidden_regions(source) == (
        "assert f(1) == 1\nprint('ok')",
        ["### BEGIN HIDDEN TESTS", "assert f(2) == 4", "### END HIDDEN TESTS"],
    )


@pytest.mark.sandbox
def test_partial_student_lost_the_hidden_test_point(graded):
    _, rows = graded
    assert rows["partial"]["status"] == "ok"
    assert rows["partial"]["score"] == rows["hacker"]["score"] - 1.0  # correct_squares (1 point) lost


@pytest.mark.sandbox
def test_feedback_for_every_graded_notebook(feedback):
    _, pages = feedback
    assert set(pages) == {(s, nb) for s in ("bitdiddle", "hacker", "partial") for nb in ("problem1", "problem2")}


@pytest.mark.sandbox
def test_no_hidden_test_source_in_any_page(feedback):
    course, pages = feedback
    hidden = _hidden_source_lines(course)
    assert len(hidden) == len(HIDDEN_TEST_LINES)  # the search covers the region this test planted
    leaks = {(page, line) for page, text in pages.items() for line in hidden if line in text}
    assert leaks == set()


@pytest.mark.sandbox
def test_lost_points_are_explained(feedback):
    _, pages = feedback
    page = pages[("partial", "problem1")]
    assert HIDDEN_MESSAGES[0] in page  # the failed hidden assertion's message (its hint) is shown
    assert "AssertionError" in page
    # the visible tests are still shown: the search above would find a line that is there
    assert "assert squares(10) == [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]" in page
    # and the scores: nbgrader's template prints "Score: x / y" for the notebook and for every test cell
    assert re.search(r"Score: 0(\.0)? / 1(\.0)?", page)
    assert HIDDEN_MESSAGES[0] not in pages[("hacker", "problem1")]  # hacker passed: no message to show


@pytest.mark.sandbox
@pytest.mark.full  # another nbgrader start-up and HTML rendering
def test_plain_nbgrader_feedback_leaks_what_we_hide(graded, tmp_path):
    course, _ = graded
    copy = tmp_path / "course"
    shutil.copytree(course, copy, ignore=shutil.ignore_patterns("feedback"))
    nbgrader_cli(copy, "generate_feedback", "ps1")
    page = _text(copy / "feedback" / "partial" / "ps1" / "problem1.html")
    assert any(line in page for line in _hidden_source_lines(copy))
