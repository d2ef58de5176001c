"""One parser of nbgrader's delimited regions (``autograder.regions``), honouring a course's own delimiters.

A course may set ``ClearHiddenTests.begin_test_delimeter`` / ``end_test_delimeter`` and
``ClearSolutions.begin_solution_delimeter`` / ``end_solution_delimeter`` (nbgrader's spelling): the grader (its job),
the check cells, the feedback, the example submissions and the stub release then all cut the same regions as
nbgrader's own release does.
"""

from __future__ import annotations

from nbformat.v4 import new_code_cell
from traitlets.config import Config

from autograder.regions import DEFAULT, Delimiters, hidden_regions, solution_only, split, without_hidden_tests

CUSTOM_CONFIG = """c = get_config()
c.CourseDirectory.course_id = "regions"
c.ClearHiddenTests.begin_test_delimeter = "SECRET TESTS START"
c.ClearHiddenTests.end_test_delimeter = "SECRET TESTS STOP"
c.ClearSolutions.begin_solution_delimeter = "ANSWER START"
c.ClearSolutions.end_solution_delimeter = "ANSWER STOP"
"""
CUSTOM = Delimiters(
    begin_test="SECRET TESTS START",
    end_test="SECRET TESTS STOP",
    begin_solution="ANSWER START",
    end_solution="ANSWER STOP",
)
TEST_CELL = (
    "from mlops_helpers.checks import check\n"
    "assert answer in 'ABCD'\n"
    "# SECRET TESTS START\n"
    "check('answer', equals='B', message='not the best answer')\n"
    "# SECRET TESTS STOP"
)
# the default delimiters in a course that changed them are ordinary comments: nothing of this cell is hidden
DEFAULT_MARKED = "x = 1\n### BEGIN HIDDEN TESTS\nassert x == 1\n### END HIDDEN TESTS"
ANSWER_CELL = (
    "def f(x):\n    # ANSWER START\n    return x + 1\n    # ANSWER STOP\n"
    "    ### BEGIN STUB\n    # return x\n    ### END STUB"
)


def _nbgrader_release(source: str, config: Config) -> str:
    """What plain nbgrader's ClearHiddenTests makes of a test cell with this course's configuration."""
    from nbgrader.preprocessors import ClearHiddenTests

    cell = new_code_cell(
        source, metadata={"nbgrader": {"grade": True, "solution": False, "grade_id": "t", "points": 1, "locked": True}}
    )
    cell, _ = ClearHiddenTests(config=config).preprocess_cell(cell, {}, 0)
    return cell.source


def test_a_course_with_its_own_delimiters_is_parsed_the_same_everywhere(tmp_path):
    from autograder.checks import parse_check_cell
    from autograder.course import Course, load_config
    from autograder.feedback import _preprocessor_class, feedback_config
    from autograder.stubs import ClearSolutionsWithStubs
    from autograder.submissions import build_job

    (tmp_path / "nbgrader_config.py").write_text(CUSTOM_CONFIG)
    config = load_config(tmp_path)

    # read through nbgrader's configurables: the course model, and so every job the grader builds
    assert Delimiters.from_config(config) == CUSTOM
    course = Course.open(tmp_path)
    settings = course.autograde_settings()
    assert settings.delimiters == CUSTOM
    job = build_job(course, "hw", "alice", (), None, sandbox=False, delimiters=settings.delimiters)
    assert job.delimiters == CUSTOM

    released = _nbgrader_release(TEST_CELL, config)
    assert "SECRET" not in released and "check(" not in released
    # the grader's view of a released test cell, the check cell's visible part, the feedback's clean source
    assert without_hidden_tests(TEST_CELL, job.delimiters) == released
    check_cell = parse_check_cell(TEST_CELL, job.delimiters)
    assert check_cell is not None and check_cell.visible_source.strip() == released.strip()
    assert [c.expression for c in check_cell.checks] == ["answer"]
    hide = _preprocessor_class()(config=feedback_config(course.config))
    assert hide.delimiters == CUSTOM
    assert hidden_regions(TEST_CELL, hide.delimiters)[0] == released

    # the default markers are not delimiters in this course: nbgrader keeps them, and so does every consumer
    assert _nbgrader_release(DEFAULT_MARKED, config) == DEFAULT_MARKED
    assert without_hidden_tests(DEFAULT_MARKED, CUSTOM) == DEFAULT_MARKED
    assert parse_check_cell(DEFAULT_MARKED, CUSTOM) is None

    # solutions: the stub release and the example solution submission use the course's solution delimiters
    cell = new_code_cell(
        ANSWER_CELL, metadata={"nbgrader": {"grade": False, "solution": True, "grade_id": "a", "locked": False}}
    )
    cell, _ = ClearSolutionsWithStubs(config=config).preprocess_cell(cell, {"language": "python"}, 0)
    assert cell.source == "def f(x):\n    return x"
    assert solution_only(ANSWER_CELL, CUSTOM) == "def f(x):\n    return x + 1"


def test_the_grading_unit_recognises_a_released_test_cell_by_the_jobs_delimiters():
    """The sandboxed unit never sees the course's configuration: the job's delimiters tell it which part of a test
    cell the student never had, so the released cell is not taken for an edited one."""
    import nbformat

    from autograder.job import CellSpec, Limits, NotebookSpec
    from autograder.unit import Context, RestoreCells

    spec = NotebookSpec(
        name="hw",
        cells=(
            CellSpec(
                grade_id="t",
                cell_type="code",
                source=TEST_CELL,
                locked=True,
                checksum=None,
                points=1.0,
                kind="autograder-test",
            ),
        ),
    )

    def notes(delimiters: Delimiters) -> list[str]:
        nb = nbformat.v4.new_notebook(
            cells=[
                new_code_cell(
                    without_hidden_tests(TEST_CELL, CUSTOM),
                    metadata={
                        "nbgrader": {"grade_id": "t", "grade": True, "solution": False, "locked": True, "points": 1.0}
                    },
                )
            ]
        )
        ctx = Context(spec=spec, limits=Limits(), delimiters=delimiters)
        restored = RestoreCells()(nb, ctx)
        assert restored.cells[0].source == TEST_CELL  # the hidden tests are back for grading either way
        return ctx.notes

    assert notes(CUSTOM) == []
    assert notes(DEFAULT) == ["edited locked/test cell(s) restored: t"]  # what the default markers would say


def test_split_follows_nbgrader_line_rules():
    cut = split("a\nb # BEGIN HIDDEN TESTS\nc\nEND HIDDEN TESTS here\nd", DEFAULT.hidden_tests)
    assert cut.outside == ["a", "d"] and cut.inside == ["c"] and cut.found and cut.problem is None
    assert split("a\n# BEGIN HIDDEN TESTS\nb", DEFAULT.hidden_tests).problem == "not closed"
    assert split("# END HIDDEN TESTS\na", DEFAULT.hidden_tests).problem == "end without a beginning"
    assert (
        split("# BEGIN HIDDEN TESTS\n# BEGIN HIDDEN TESTS\n# END HIDDEN TESTS", DEFAULT.hidden_tests).problem
        == "nested"
    )
