"""The nbgrader assignments, end to end, in a temporary copy of the course directory.

Per assignment: plain ``nbgrader generate_assignment`` succeeds; the release holds no solution and no hidden-test
line; graded through nbgrader's own API, the untouched release scores 0, the solution full marks and a partially
correct submission exactly the expected points; the feedback explains every lost point; nbgrader's Validator
passes the solution and fails the release on every graded cell.

nbgrader is slow here (each autograde executes a notebook): the course copy is generated once per module and
each kind of submission graded once per assignment. fix_the_pipeline (mlflow + sklearn + scipy in one kernel,
~45 s per execution on a loaded machine) is graded only in the ``full`` run.
"""

from __future__ import annotations

import ast
import csv
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import course

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = course.source_assignments(ROOT)
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN STUB", "END STUB")

# What the partially correct submission does, per assignment: which answer cells it gets right, and for the
# others what it submits (None: leave the released cell as it is).
PARTIAL = {
    "practice_questions": {
        "right": {"q1", "q2", "q3", "q4", "q5"},
        "wrong": {"q6": "A", "q7": "A", "q8": "C", "q9": "A", "q10": "B"},
        # a test cell deleted by the student: nbgrader must put it back and still score it
        # (OverwriteCells.add_missing_cells in nbgrader_config.py)
        "deleted": {"q2_check"},
    },
    # exercise 7 repaired minimally (`or` -> `and`): its main rules hold, its boundaries do not: 1 point of 2
    "fix_the_pipeline": {
        "right": {"ex1", "ex3", "ex5"},
        "wrong": {},
        "code": {
            "ex7_answer": "def should_promote(candidate_accuracy, champion_accuracy, "
            "min_accuracy=0.9):\n    return candidate_accuracy > min_accuracy "
            "and candidate_accuracy > champion_accuracy"
        },
        "scores": {"ex7_tests": 1.0},
        "deleted": {"ex5_tests"},
    },
}
STUDENTS = ("untouched", "solution", "partial")


# ----------------------------------------------------------------------------------------------- helpers
def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def item(grade_id: str) -> str:
    """The question / exercise a cell belongs to: 'q3_answer' and 'q3_check' -> 'q3'."""
    return grade_id.split("_")[0]


def solution_code(source: str) -> str:
    """A source cell as its solution runs: markers dropped, the stub region (the broken code) removed."""
    kept, in_stub = [], False
    for line in source.split("\n"):
        if "BEGIN STUB" in line:
            in_stub = True
        elif "END STUB" in line:
            in_stub = False
        elif not in_stub and not any(m in line for m in ("BEGIN SOLUTION", "END SOLUTION")):
            kept.append(line)
    return "\n".join(kept)


def regions(source: str):
    """Split a source cell's lines into (secret, public): solution and hidden-test lines vs everything a student
    may see (the rest of the cell and the uncommented stub)."""
    secret, public, state = [], [], None
    for line in source.split("\n"):
        if "BEGIN SOLUTION" in line or "BEGIN HIDDEN TESTS" in line:
            state = "secret"
        elif "BEGIN STUB" in line:
            state = "stub"
        elif any(m in line for m in ("END SOLUTION", "END HIDDEN TESTS", "END STUB")):
            state = None
        elif state == "secret":
            secret.append(line.strip())
        elif state == "stub":
            public.append(re.sub(r"^#\s?", "", line.strip()).strip())
        else:
            public.append(line.strip())
    return secret, public


def read(path: Path):
    return nbformat.read(str(path), as_version=4)


def source_notebook(root: Path, assignment: str) -> Path:
    (path,) = course.notebook_paths(root, "source", assignment)
    return path


def make_submission(root: Path, assignment: str, student: str) -> Path:
    """Write submitted/<student>/<assignment>/<notebook> from the release, as that student would hand it in."""
    src = source_notebook(root, assignment)
    source_cells = {nbgrader_meta(c)["grade_id"]: c for c in read(src).cells if nbgrader_meta(c)}
    nb = read(root / "release" / assignment / src.name)
    plan = PARTIAL[assignment]
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if not meta.get("solution"):
            continue
        name = item(meta["grade_id"])
        if student == "solution" or (student == "partial" and name in plan["right"]):
            cell.source = solution_code(source_cells[meta["grade_id"]].source)
        elif student == "partial" and name in plan["wrong"]:
            cell.source = f"{name} = {plan['wrong'][name]!r}"
        elif student == "partial" and meta["grade_id"] in plan.get("code", {}):
            cell.source = plan["code"][meta["grade_id"]]
    if student == "partial":
        nb.cells = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") not in plan["deleted"]]
    dest = root / "submitted" / student / assignment / src.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(dest))
    return dest


def grade_cells(root: Path, assignment: str) -> dict[str, float]:
    """grade_id -> points of every autograded test cell of the source notebook."""
    cells = read(source_notebook(root, assignment)).cells
    return {
        nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"])
        for c in cells
        if nbgrader_meta(c).get("grade") and c.cell_type == "code"
    }


def expected_partial_cells(root: Path, assignment: str) -> dict[str, float]:
    """grade_id -> the points the partial submission must get: full marks on the items it gets right, the planned
    score on the cells listed in its plan's "scores", 0 elsewhere."""
    plan = PARTIAL[assignment]
    return {
        gid: p if item(gid) in plan["right"] else plan.get("scores", {}).get(gid, 0.0)
        for gid, p in grade_cells(root, assignment).items()
    }


def expected_partial(root: Path, assignment: str) -> float:
    return sum(expected_partial_cells(root, assignment).values())


def visible_text(page: str) -> str:
    """The text a student reads in an HTML feedback page: tags stripped, entities decoded, whitespace collapsed."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", page)))


# ----------------------------------------------------------------------------------------------- fixtures
def plain_nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the `nbgrader` command itself from the course directory, as an instructor would."""
    course.ensure_venv_on_path()
    nbgrader = str(Path(sys.executable).parent / "nbgrader")
    return subprocess.run([nbgrader, *args], cwd=root, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory):
    """A copy of the course with both assignments generated once: practice_questions by PLAIN `nbgrader
    generate_assignment` (which must load nbgrader_config.py by itself), fix_the_pipeline by this project's
    `release` verb (generate + release to the course-local exchange)."""
    from autograder.cli import main

    root = course.copy_course(ROOT, tmp_path_factory.mktemp("course"))
    plain = plain_nbgrader(root, "generate_assignment", "practice_questions")
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert main(["release", "fix_the_pipeline", "--course-dir", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def api(course_copy):
    return course.make_api(course_copy)


@pytest.fixture(
    scope="module",
    params=[
        "practice_questions",
        pytest.param("fix_the_pipeline", marks=pytest.mark.full),
    ],
)
def graded(request, course_copy, api):
    """One assignment, its three submissions autograded by nbgrader (once): scores per student and per cell."""
    assignment = request.param
    root = course_copy
    scores, cells = {}, {}
    for student in STUDENTS:
        make_submission(root, assignment, student)
        result = api.autograde(assignment, student)
        assert result["success"], result.get("error") or result.get("log")
    with api.gradebook as gb:
        for student in STUDENTS:
            submission = gb.find_submission(assignment, student)
            scores[student] = (submission.score, submission.max_score)
            cells[student] = {
                g.name: (g.score, g.max_score)
                for nb in submission.notebooks
                for g in nb.grades
                if g.cell.cell_type == "code"
            }
    return {"assignment": assignment, "root": root, "scores": scores, "cells": cells}


# ----------------------------------------------------------------------------------------------- generation & release
def test_both_assignments_are_generated(course_copy):
    for assignment in ("practice_questions", "fix_the_pipeline"):
        assert course.notebook_paths(course_copy, "release", assignment), f"no released notebook for {assignment}"


@pytest.mark.full
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_plain_nbgrader_generates_every_source_folder(tmp_path, assignment):
    root = course.copy_course(ROOT, tmp_path)
    run = plain_nbgrader(root, "generate_assignment", assignment)
    assert run.returncode == 0, f"nbgrader generate_assignment {assignment}:\n{run.stderr[-3000:]}"
    assert course.notebook_paths(root, "release", assignment)
    assert "[GenerateAssignmentApp | ERROR]" not in run.stderr and "[GenerateAssignmentApp | WARNING]" not in run.stderr


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebooks_are_well_formed(assignment):
    """Unique grade_ids (one duplicate aborts a whole autograde batch), python3 kernel, answer and test cells."""
    for path in (ROOT / "source" / assignment).glob("*.ipynb"):
        nb = read(path)
        nbformat.validate(nb)
        ids = [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicated grade_id"
        assert nb.metadata.kernelspec.name == "python3"
        answers = {item(nbgrader_meta(c)["grade_id"]) for c in nb.cells if nbgrader_meta(c).get("solution")}
        tests = {
            item(nbgrader_meta(c)["grade_id"])
            for c in nb.cells
            if nbgrader_meta(c).get("grade") and c.cell_type == "code"
        }
        assert answers == tests, "every answer cell has its own test cell"
        for cell in nb.cells:
            if nbgrader_meta(cell).get("grade") and cell.cell_type == "code":
                assert nbgrader_meta(cell)["locked"] and "BEGIN HIDDEN TESTS" in cell.source, (
                    f"{nbgrader_meta(cell)['grade_id']}: a test cell is read-only and has hidden tests"
                )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_holds_no_solution_and_no_hidden_test(course_copy, assignment):
    root = course_copy
    secret, public = set(), set()
    for path in (root / "source" / assignment).rglob("*.ipynb"):
        for cell in read(path).cells:
            s, p = regions(cell.source)
            if nbgrader_meta(cell).get("solution") and cell.cell_type == "code":
                assert set(s) - set(p) - {""}, f"{nbgrader_meta(cell)['grade_id']}: the solution equals the stub"
            secret.update(s)
            public.update(p)
    secret -= public | {""}
    assert len(secret) > 20  # the search below looks for something
    files = [f for f in (root / "release" / assignment).rglob("*") if f.is_file()]
    assert files
    for f in files:
        text = f.read_text(errors="replace")
        for marker in MARKERS:
            assert marker not in text, f"{f.name} keeps a {marker!r} marker"
        lines = set()
        if f.suffix == ".ipynb":
            for cell in read(f).cells:
                lines.update(line.strip() for line in cell.source.split("\n"))
        else:
            lines.update(line.strip() for line in text.splitlines())
        leaked = sorted(secret & lines)
        assert not leaked, f"{f.name} leaks solution / hidden-test lines: {leaked[:5]}"


def test_assignment_sizes(api):
    with api.gradebook as gb:
        questions = gb.find_assignment("practice_questions")
        exercises = gb.find_assignment("fix_the_pipeline")
        q_cells = [c for nb in questions.notebooks for c in nb.grade_cells if c.cell_type == "code"]
        x_cells = [c for nb in exercises.notebooks for c in nb.grade_cells if c.cell_type == "code"]
    assert len(q_cells) == 10
    assert len(x_cells) >= 6 and all(c.max_score > 0 for c in x_cells)


def test_fix_the_pipeline_release_shows_the_broken_code(course_copy):
    """The student sees the code to repair in the answer cell (not nbgrader's 'raise NotImplementedError()')."""
    root = course_copy
    released = read(root / "release" / "fix_the_pipeline" / "fix_the_pipeline.ipynb")
    answers = {nbgrader_meta(c)["grade_id"]: c.source for c in released.cells if nbgrader_meta(c).get("solution")}
    assert len(answers) >= 6
    assert not any("NotImplementedError" in s for s in answers.values())
    assert "for step in pipeline\n" in answers["ex1_answer"]  # the seed's missing colon, as the student gets it
    assert 'mlflow.log_metric("accuracy", accuracy)' in answers["ex2_answer"]
    assert "start_run" not in answers["ex2_answer"]
    assert 'return {"columns": list(batch.columns)' in answers["ex4_answer"]


# ----------------------------------------------------------------------------------------------- grading
def test_untouched_release_scores_zero(graded):
    score, max_score = graded["scores"]["untouched"]
    assert max_score == sum(grade_cells(graded["root"], graded["assignment"]).values())
    assert score == 0, graded["cells"]["untouched"]


def test_solution_scores_full_marks(graded):
    score, max_score = graded["scores"]["solution"]
    assert max_score > 0 and score == max_score, {k: v for k, v in graded["cells"]["solution"].items() if v[0] != v[1]}


def test_partial_submission_scores_exactly_the_expected_points(graded):
    root, assignment = graded["root"], graded["assignment"]
    score, _ = graded["scores"]["partial"]
    assert score == expected_partial(root, assignment)
    right = PARTIAL[assignment]["right"]
    assert set(graded["cells"]["partial"]) == set(grade_cells(root, assignment))  # deleted cells were put back
    expected = expected_partial_cells(root, assignment)
    for grade_id, (got, _out_of) in graded["cells"]["partial"].items():
        assert got == expected[grade_id], grade_id
    assert any(item(gid) in right for gid in PARTIAL[assignment]["deleted"])  # ... and earned their points


def test_feedback_explains_every_lost_point(graded, api):
    root, assignment = graded["root"], graded["assignment"]
    result = api.generate_feedback(assignment, "partial")
    assert result["success"], result.get("error")
    (page,) = (root / "feedback" / "partial" / assignment).glob("*.html")
    text = visible_text(page.read_text())
    (autograded,) = course.notebook_paths(root, "autograded", assignment, student="partial")
    lost = [
        c
        for c in read(autograded).cells
        if nbgrader_meta(c).get("grade")
        and c.cell_type == "code"
        and graded["cells"]["partial"][nbgrader_meta(c)["grade_id"]][0] == 0
    ]
    assert len(lost) == sum(p == 0 for p in expected_partial_cells(root, assignment).values())
    for cell in lost:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors and errors[0].evalue.strip(), f"{nbgrader_meta(cell)['grade_id']} lost points silently"
        explanation = re.sub(r"\s+", " ", errors[0].evalue).strip()
        assert explanation in text, f"the feedback does not show why {nbgrader_meta(cell)['grade_id']} lost points"
    if assignment == "practice_questions":
        from autograder.questions import load_bank

        for q in load_bank():
            chosen = PARTIAL[assignment]["wrong"].get(q.id)
            if chosen:
                assert f"Misconception: {q.misconceptions[chosen]}" in text, q.id
                assert f"Hint: {q.hint}" in text, q.id


def test_validator_passes_the_solution_and_fails_every_cell_of_the_release(graded):
    """nbgrader validate exits 0 even when validation fails: ask nbgrader's Validator itself."""
    from nbgrader.validator import Validator

    root, assignment = graded["root"], graded["assignment"]
    validator = Validator(config=course.load_config(root))
    (solution,) = course.notebook_paths(root, "submitted", assignment, student="solution")
    (untouched,) = course.notebook_paths(root, "submitted", assignment, student="untouched")
    assert validator.validate(str(solution)) == {}
    failed = validator.validate(str(untouched)).get("failed", [])
    assert len(failed) == len(grade_cells(root, assignment)), "a visible test passes on the untouched release"


def test_export_writes_the_grades_csv(graded, api):
    from autograder.cli import main

    root, assignment = graded["root"], graded["assignment"]
    out = root / "build" / f"{assignment}.csv"
    assert main(["export", "--course-dir", str(root), "--to", str(out), "--assignment", assignment]) == 0
    rows = {r["student_id"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == set(STUDENTS)
    for student, (score, max_score) in graded["scores"].items():
        assert float(rows[student]["raw_score"]) == score and float(rows[student]["max_score"]) == max_score
    assert main(["export", "--course-dir", str(root), "--assignment", "no_such_assignment"]) == 2


# ----------------------------------------------------------------------------------------------- the release verb
def test_release_verb_put_the_release_in_the_local_exchange(course_copy, capsys):
    from autograder.cli import main

    released = course_copy / "release" / "fix_the_pipeline" / "fix_the_pipeline.ipynb"
    outbound = course_copy / "exchange" / "mlops-bridge" / "outbound" / "fix_the_pipeline" / "fix_the_pipeline.ipynb"
    assert json.loads(outbound.read_text()) == json.loads(released.read_text())
    before = outbound.stat().st_mtime_ns
    assert main(["release", "fix_the_pipeline", "--course-dir", str(course_copy)]) == 2  # already released
    assert "add --force" in capsys.readouterr().err and outbound.stat().st_mtime_ns == before
    assert main(["release", "no_such_assignment", "--course-dir", str(course_copy)]) == 2
    assert "known assignments: fix_the_pipeline, practice_questions" in capsys.readouterr().err


@pytest.mark.full
def test_release_verb_force_rereleases(tmp_path, capsys):
    from autograder.cli import main

    root = course.copy_course(ROOT, tmp_path / "course")
    assert main(["release", "practice_questions", "--course-dir", str(root)]) == 0
    total = sum(grade_cells(root, "practice_questions").values())
    assert total == 19 and f"10 autograded cells, {total:g} points" in capsys.readouterr().out
    assert main(["release", "practice_questions", "--force", "--course-dir", str(root)]) == 0
    outbound = root / "exchange" / "mlops-bridge" / "outbound"
    assert (outbound / "practice_questions" / "practice_questions.ipynb").is_file()


def test_readme_states_the_points_of_each_assignment():
    readme = (ROOT / "README.md").read_text()
    for assignment in ASSIGNMENTS:
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{assignment}` |"))
        assert f"{sum(grade_cells(ROOT, assignment).values()):g} points" in row, (assignment, row)


def test_release_verb_outside_a_course_directory_says_so(tmp_path, capsys, monkeypatch):
    from autograder.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["release", "practice_questions"]) == 2
    assert "no nbgrader_config.py" in capsys.readouterr().err


def test_export_before_any_grading_says_so_and_creates_no_gradebook(tmp_path, capsys):
    from autograder.cli import main

    root = course.copy_course(ROOT, tmp_path / "course")
    assert main(["export", "--course-dir", str(root)]) == 2
    assert "no gradebook" in capsys.readouterr().err
    assert not (root / "gradebook.db").exists() and not (root / "grades.csv").exists()


# ----------------------------------------------------------------------------------------------- fix_the_pipeline's
# test cells, run in this process on chosen answers (fast: no kernel). The source cells run as they are graded
# (the markers are comments); "visible" is the part a student runs before submitting.
FIX_THE_PIPELINE = ROOT / "source" / "fix_the_pipeline" / "fix_the_pipeline.ipynb"
LESSON_04 = ROOT / "notebooks" / "04_serving.ipynb"
SIGNATURE_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def fix_cells() -> dict[str, str]:
    return {nbgrader_meta(c)["grade_id"]: c.source for c in read(FIX_THE_PIPELINE).cells if nbgrader_meta(c)}


@pytest.fixture(scope="module")
def fix_setup(fix_cells):
    """The namespace after the read-only setup cell (its logger levels are put back for the rest of the suite)."""
    import logging

    loggers = {name: logging.getLogger(name).level for name in ("mlflow", "alembic")}
    namespace: dict = {}
    exec(fix_cells["setup"], namespace)
    for name, level in loggers.items():
        logging.getLogger(name).setLevel(level)
    return namespace


def run_test_cell(fix_setup, fix_cells, answer: str, test_id: str, *, visible_only: bool = False) -> str | None:
    """Run ``answer`` then the test cell ``test_id`` after the setup cell: None if it passes, else what the student
    reads (the assertion message, or the exception's type and message)."""
    namespace = dict(fix_setup)
    source = fix_cells[test_id]
    if visible_only:
        source = source.split("### BEGIN HIDDEN TESTS")[0]
    exec(answer, namespace)
    try:
        exec(source, namespace)
    except AssertionError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a test cell that crashes fails too: report what the student sees
        return f"{type(exc).__name__}: {exc}"
    return None


def stub_code(source: str) -> str:
    """A source answer cell as the student receives it: solution region dropped, stub region uncommented."""
    kept, state = [], None
    for line in source.split("\n"):
        if "BEGIN SOLUTION" in line or "BEGIN STUB" in line:
            state = "solution" if "SOLUTION" in line else "stub"
        elif "END SOLUTION" in line or "END STUB" in line:
            state = None
        elif state == "stub":
            kept.append(re.sub(r"^(\s*)# ?", r"\1", line))
        elif state is None:
            kept.append(line)
    return "\n".join(kept)


def lesson_04_payloads() -> dict[str, str]:
    """The payloads lesson 04 shows answered with HTTP 200: format key -> the expression building it from `two`."""
    import ast

    for cell in read(LESSON_04).cells:
        if cell.cell_type != "code" or "payloads" not in cell.source:
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == "payloads" for t in node.targets)
            ):
                pairs = zip(node.value.keys, node.value.values, strict=True)
                return {ast.literal_eval(k): ast.unparse(v) for k, v in pairs}
    raise AssertionError(
        "lesson 04 no longer has its `payloads = {...}` table of accepted formats: update lesson_04_payloads()"
    )


def payload_builder(expression: str, *, reorder: bool) -> str:
    """build_payload(batch) as a student writes it from lesson 04's code (``two`` is a batch in the signature's
    column order there: ``reorder`` puts the batch in that order first, as a careful student does)."""
    batch = f"batch[{SIGNATURE_COLUMNS!r}]" if reorder else "batch"
    return (
        f"FEATURE_NAMES = {SIGNATURE_COLUMNS!r}\n"
        f"def build_payload(batch):\n    two = {batch}\n    return {expression}\n"
    )


def test_lesson_04_shows_the_four_json_formats():
    assert set(lesson_04_payloads()) == {"dataframe_split", "dataframe_records", "instances", "inputs"}


@pytest.mark.parametrize("key", ["dataframe_split", "dataframe_records", "instances", "inputs"])
def test_ex4_accepts_every_payload_lesson_04_shows_answered(fix_setup, fix_cells, key):
    """Every format lesson 04 calls correct passes the whole test cell (hidden part too), built from the batch."""
    payloads = lesson_04_payloads()
    assert run_test_cell(fix_setup, fix_cells, payload_builder(payloads[key], reorder=True), "ex4_tests") is None


@pytest.mark.parametrize(
    "answer",
    [
        'def build_payload(batch):\n    return {"dataframe_split": batch.to_dict(orient="split")}',
        'def build_payload(batch):\n    return {"dataframe_records": batch.to_dict(orient="records")}',
        'def build_payload(batch):\n    return {"instances": batch.to_dict(orient="records")}',
        'def build_payload(batch):\n    return {"inputs": batch.to_dict(orient="list")}',
    ],
    ids=["split", "records", "instances", "inputs"],
)
def test_ex4_accepts_each_format_built_with_the_batchs_own_columns(fix_setup, fix_cells, answer):
    assert run_test_cell(fix_setup, fix_cells, answer, "ex4_tests") is None


def test_ex4_names_the_column_order_rule_in_a_visible_test(fix_setup, fix_cells):
    """Lesson 04's split payload copied literally (the signature's names over the batch's values) is accepted by the
    server but maps the numbers to the wrong columns once the batch has another order: the VISIBLE test says so."""
    literal = payload_builder(lesson_04_payloads()["dataframe_split"], reorder=False)
    message = run_test_cell(fix_setup, fix_cells, literal, "ex4_tests", visible_only=True)
    assert message and "columns in another order" in message and "under its own column name" in message, message


@pytest.mark.parametrize(
    "answer, expected",
    [
        (None, ["HTTP 400", "scoring protocol has changed"]),  # the released stub: the MLflow 1 body
        ("def build_payload(batch):\n    return batch.values.tolist()", ["HTTP 400", "Received a list"]),
        ("def build_payload(batch):\n    return None", ["HTTP 400", "unexpected input type"]),
        ('def build_payload(batch):\n    return {"inputs": batch.values.tolist()}', ["HTTP 400", "missing inputs"]),
        (
            "def build_payload(batch):\n"
            '    return {"dataframe_split": {"columns": list(batch.columns), "data": batch.values}}',
            ["cannot be sent as JSON", ".tolist()"],
        ),
        (
            'def build_payload(batch):\n    return {"inputs": batch.to_dict(orient="list"), '
            '"instances": batch.to_dict(orient="records")}',
            ["HTTP 400", "exactly one of the input fields"],
        ),
    ],
    ids=["mlflow1-stub", "bare-list", "none", "unnamed-rows", "ndarray", "two-format-keys"],
)
def test_ex4_refuses_what_the_server_refuses_with_a_message(fix_setup, fix_cells, answer, expected):
    if answer is None:
        answer = stub_code(fix_cells["ex4_answer"])
    message = run_test_cell(fix_setup, fix_cells, answer, "ex4_tests", visible_only=True)
    assert message is not None and all(part in message for part in expected), message
    assert "AttributeError" not in message and "Traceback" not in message


def test_ex4_judge_agrees_with_the_real_scoring_server(fix_setup, fix_cells, tmp_path):
    """The exercise's verdict (pass, or fail with 'HTTP 400') matches the status MLflow's own scoring app (the one
    `mlflow models serve` runs, driven in-process) returns for the same body and the same signature."""
    import warnings

    import mlflow
    from mlflow.models import infer_signature
    from mlflow.pyfunc import scoring_server
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette: "Using httpx with starlette.testclient is deprecated"
        from starlette.testclient import TestClient

    X, y = fix_setup["X"], fix_setup["y"]
    model = LogisticRegression(max_iter=200).fit(X, y)
    mlflow.sklearn.save_model(
        model, tmp_path / "model", signature=infer_signature(X, model.predict(X)), pip_requirements=["scikit-learn"]
    )
    client = TestClient(scoring_server.init(mlflow.pyfunc.load_model(str(tmp_path / "model"))))
    builders = {f"lesson 04 {key}": payload_builder(expr, reorder=True) for key, expr in lesson_04_payloads().items()}
    builders |= {
        "mlflow1": (
            'def build_payload(batch):\n    return {"columns": list(batch.columns), "data": batch.values.tolist()}'
        ),
        "bare list": "def build_payload(batch):\n    return batch.values.tolist()",
        "unnamed rows": 'def build_payload(batch):\n    return {"instances": batch.values.tolist()}',
        "records": 'def build_payload(batch):\n    return {"dataframe_records": batch.to_dict(orient="records")}',
    }
    batch = X.iloc[[0, 50, 100]]
    for name, answer in builders.items():
        namespace: dict = {}
        exec(answer, namespace)
        reply = client.post(
            "/invocations",
            content=json.dumps(namespace["build_payload"](batch)),
            headers={"Content-Type": "application/json"},
        )
        assert reply.status_code in (200, 400), (name, reply.status_code, reply.text[:300])
        message = run_test_cell(fix_setup, fix_cells, answer, "ex4_tests", visible_only=True)
        if reply.status_code == 200:
            assert reply.json()["predictions"] == model.predict(batch).tolist(), name
            assert message is None, (name, message)
        else:
            assert message is not None and "HTTP 400" in message, (name, reply.text[:300], message)


EX7_HEAD = "def should_promote(candidate_accuracy, champion_accuracy, min_accuracy=0.9):\n    return "
EX7_REPAIRS = {  # plausible repairs of the promotion gate
    "released stub": "candidate_accuracy > min_accuracy or candidate_accuracy > champion_accuracy",
    "minimal: or -> and": "candidate_accuracy > min_accuracy and candidate_accuracy > champion_accuracy",
    "inclusive, no None": "candidate_accuracy >= min_accuracy and candidate_accuracy >= champion_accuracy",
    "None handled, strict": (
        "candidate_accuracy > min_accuracy and (champion_accuracy is None or candidate_accuracy > champion_accuracy)"
    ),
    "minimum hard-coded": (
        "candidate_accuracy >= 0.9 and (champion_accuracy is None or candidate_accuracy >= champion_accuracy)"
    ),
    "None handled, champion tie strict": (
        "candidate_accuracy >= min_accuracy and (champion_accuracy is None or candidate_accuracy > champion_accuracy)"
    ),
    "correct": (
        "candidate_accuracy >= min_accuracy and (champion_accuracy is None or candidate_accuracy >= champion_accuracy)"
    ),
}


@pytest.mark.parametrize("repair", list(EX7_REPAIRS))
def test_ex7_a_repair_that_passes_the_visible_tests_passes_the_hidden_ones(fix_setup, fix_cells, repair):
    """Every rule the hidden tests check has a visible test: no repair passes all visible tests of exercise 7 and
    then loses points at grading."""
    answer = EX7_HEAD + EX7_REPAIRS[repair]
    cells = ("ex7_tests", "ex7_edges")
    visible = [run_test_cell(fix_setup, fix_cells, answer, c, visible_only=True) for c in cells]
    graded = [run_test_cell(fix_setup, fix_cells, answer, c) for c in cells]
    if all(v is None for v in visible):
        assert graded == [None, None], (repair, graded)
    assert (graded == [None, None]) is (repair == "correct"), (repair, graded)


@pytest.mark.parametrize(
    "repair, main, edges",
    [
        ("released stub", "worse than the champion", "TypeError"),
        ("minimal: or -> and", None, "exactly at min_accuracy"),
        ("None handled, champion tie strict", None, "as good as the champion"),
        ("inclusive, no None", None, "TypeError"),
        ("minimum hard-coded", "min_accuracy passed in", None),
    ],
)
def test_ex7_scores_the_main_rules_and_the_boundaries_apart(fix_setup, fix_cells, repair, main, edges):
    """1 point for the main rules, 1 for the boundaries, and the visible message names the rule that is broken."""
    answer = EX7_HEAD + EX7_REPAIRS[repair]
    for cell, expected in (("ex7_tests", main), ("ex7_edges", edges)):
        got = run_test_cell(fix_setup, fix_cells, answer, cell, visible_only=True)
        assert (got is None) if expected is None else (got is not None and expected in got), (cell, got)
    points = grade_cells(ROOT, "fix_the_pipeline")
    assert (points["ex7_tests"], points["ex7_edges"]) == (1.0, 1.0)


def test_ex7_repairs_start_from_the_released_stub(fix_cells):
    assert stub_code(fix_cells["ex7_answer"]).strip().endswith(EX7_REPAIRS["released stub"])


# ----------------------------------------------------------------------------------------------- fix_the_pipeline's
# hidden tests are check cells (autograder/checks.py): under the course's grader their expected values never enter
# the student's kernel. A test cell whose hidden tests must stay asserts (run whole in the kernel, guarded only by
# the in-kernel guard) is listed here with the reason; none is today.
FIX_THE_PIPELINE_ASSERT_CELLS: dict[str, str] = {}
CHECK_IMPORT = "from mlops_helpers.checks import check"


def fix_check_cells(fix_cells) -> dict:
    from autograder.checks import parse_check_cell

    return {gid: parse_check_cell(source) for gid, source in fix_cells.items() if "BEGIN HIDDEN TESTS" in source}


def squeezed(text: str) -> str:
    """Source text with whitespace dropped and one quote style: a literal is found however it is wrapped."""
    return re.sub(r"\s+", "", text).replace('"', "'")


def check_answers(check) -> list:
    """The expected values a check states (one_of: each of them)."""
    from mlops_helpers.checks import property_of

    prop, expected = property_of(check.spec)
    return list(expected) if prop == "one_of" else [expected]


def distinctive(value) -> bool:
    """A value long enough to mean something when found in a notebook (True, 0.0 or [2] are found anywhere)."""
    return len(squeezed(repr(value))) >= 10


def names_bound(node) -> set[str]:
    """The names a top-level statement binds."""
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {a.asname or a.name.split(".")[0] for a in node.names}
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def test_fix_the_pipeline_hidden_tests_are_check_cells(fix_cells):
    cells = fix_check_cells(fix_cells)
    assert set(cells) == set(grade_cells(ROOT, "fix_the_pipeline"))  # every test cell has hidden tests
    assert set(FIX_THE_PIPELINE_ASSERT_CELLS) <= set(cells)
    for grade_id, cell in cells.items():
        if grade_id in FIX_THE_PIPELINE_ASSERT_CELLS:
            assert cell is None, f"{grade_id} is a check cell now: take it off FIX_THE_PIPELINE_ASSERT_CELLS"
            continue
        assert cell is not None, (
            f"{grade_id}: its hidden region is not only check('<expression>', <property>=<literal>, message=...) calls"
        )
        # plain nbgrader runs the hidden checks as Python in the kernel: the visible part imports check
        assert CHECK_IMPORT in cell.visible_source.split("\n"), grade_id
        for check in cell.checks:
            message = check.spec.get("message") or ""
            assert len(message) > 20, (grade_id, check.expression)  # what the student reads: a real explanation
            assert not any(distinctive(v) and squeezed(repr(v)) in squeezed(message) for v in check_answers(check)), (
                f"{grade_id}: the message of {check.expression!r} gives the answer away"
            )


def test_fix_the_pipeline_checks_find_their_helpers_after_a_failed_visible_test(fix_cells):
    """The grader asks every check even when the visible part failed (plain nbgrader stops at the first failure):
    what a check's expression uses from its own test cell is defined before the cell's first test, so the feedback
    never reports a NameError of the test's own making."""
    for grade_id, cell in fix_check_cells(fix_cells).items():
        if cell is None:
            continue
        before, everywhere, testing = set(), set(), False
        for node in ast.parse(cell.visible_source).body:
            testing = testing or isinstance(node, (ast.Assert, ast.Expr, ast.With, ast.Try, ast.For, ast.If))
            bound = names_bound(node)
            everywhere |= bound
            if not testing:
                before |= bound
        for check in cell.checks:
            used = {n.id for n in ast.walk(ast.parse(check.expression, mode="eval")) if isinstance(n, ast.Name)}
            assert used & everywhere <= before, (grade_id, check.expression, sorted(used & everywhere - before))


def test_fix_the_pipeline_release_holds_no_check_and_no_expected_value(course_copy, fix_cells):
    released = read(course_copy / "release" / "fix_the_pipeline" / "fix_the_pipeline.ipynb")
    released_cells = {nbgrader_meta(c)["grade_id"]: c.source for c in released.cells if nbgrader_meta(c)}
    for cell in released.cells:
        if cell.cell_type == "code":
            assert not re.search(r"\bcheck\(", cell.source), f"a check went out with the release:\n{cell.source}"
    cells = {gid: cell for gid, cell in fix_check_cells(fix_cells).items() if cell is not None}
    for grade_id in cells:  # where nbgrader puts the hidden checks back at grading time, check is imported
        assert CHECK_IMPORT in released_cells[grade_id].split("\n"), grade_id
    answers = [v for cell in cells.values() for check in cell.checks for v in check_answers(check) if distinctive(v)]
    assert len(answers) >= 10  # the search below looks for something
    source_text = squeezed("\n".join(c.source for c in read(FIX_THE_PIPELINE).cells))
    released_text = squeezed("\n".join(c.source for c in released.cells))
    for value in answers:
        assert squeezed(repr(value)) in source_text, value  # the search is not blind: it finds the key in source/
        assert squeezed(repr(value)) not in released_text, f"an expected value went out with the release: {value!r}"
