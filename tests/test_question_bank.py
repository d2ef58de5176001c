"""The practice-questions bank is valid data, and the committed notebook is exactly what it generates.

Fast (no kernel): the hidden-test code of every question is executed here in-process for every option, so that
each wrong option is shown to fail with its own misconception and the hint, and the right one to pass.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from autograder import questions
from autograder.exceptions import QuestionBankError

SEED_ANSWERS = {  # the seed lesson's five practice questions and their answers
    "q1": ("What is the main purpose of MLOps in machine learning projects?", "A"),
    "q2": ("Which of the following is a correct description of a key MLOps practice?", "A"),
    "q3": ("Consider this simplified MLOps pipeline code snippet:", "C"),
    "q4": ("You have this MLOps script snippet:", "D"),
    "q5": ("In an MLOps workflow, which combination best ensures a smooth transition from research to production?",
           "B"),
}


@pytest.fixture(scope="module")
def bank():
    return questions.load_bank()


@pytest.fixture(scope="module")
def notebook():
    return json.loads(questions.NOTEBOOK.read_text())


def test_bank_has_ten_questions_three_per_difficulty_and_every_topic(bank):
    assert len(bank) == 10
    counts = Counter(q.difficulty for q in bank)
    assert set(counts) == {"easy", "medium", "hard"} and min(counts.values()) >= 3, counts
    assert set(questions.REQUIRED_TOPICS) <= {q.topic for q in bank}
    assert [q.id for q in bank] == [f"q{i}" for i in range(1, 11)]


def test_bank_keeps_the_seed_questions_and_answers(bank):
    for q in bank[:5]:
        text, answer = SEED_ANSWERS[q.id]
        assert q.origin == "seed" and q.question.startswith(text) and q.answer == answer, q.id
    assert all(q.origin == "new" for q in bank[5:])


def test_every_question_is_complete(bank):
    for q in bank:
        assert list(q.options) == ["A", "B", "C", "D"]
        assert set(q.misconceptions) == set(q.options) - {q.answer}, q.id
        assert q.hint and len(q.solution) >= 2, q.id
        assert q.points == {"easy": 1, "medium": 2, "hard": 3}[q.difficulty]


def test_committed_notebook_is_what_the_bank_generates(bank, notebook):
    assert notebook == json.loads(questions.render(bank)), "run: python -m autograder.questions"
    assert questions.main(["--check"]) == 0


def test_check_mode_reports_a_stale_notebook(tmp_path, capsys):
    stale = tmp_path / "stale.ipynb"
    stale.write_text(questions.NOTEBOOK.read_text().replace("Question 1 ·", "Question one ·"))
    assert questions.main(["--check", "--output", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert questions.main(["--check", "--output", str(tmp_path / "missing.ipynb")]) == 1


def test_notebook_cells_and_points(bank, notebook):
    cells = notebook["cells"]
    graded = [c for c in cells if c["metadata"].get("nbgrader", {}).get("grade") and c["cell_type"] == "code"]
    answers = [c for c in cells if c["metadata"].get("nbgrader", {}).get("solution")]
    assert len(graded) == 10 and len(answers) == 10
    assert [c["metadata"]["nbgrader"]["points"] for c in graded] == [q.points for q in bank]
    ids = [c["metadata"]["nbgrader"]["grade_id"] for c in cells if "nbgrader" in c["metadata"]]
    assert len(ids) == len(set(ids)), "duplicated grade_id: one aborts a whole nbgrader autograde batch"
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


def _test_cell(notebook, qid):
    return next("".join(c["source"]) for c in notebook["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade_id") == f"{qid}_check")


@pytest.mark.parametrize("qid", [f"q{i}" for i in range(1, 11)])
def test_hidden_test_names_the_misconception_of_every_wrong_option(bank, notebook, qid):
    q = next(q for q in bank if q.id == qid)
    code = _test_cell(notebook, qid)  # the markers are comments: the source cell runs as it is graded
    exec(code, {qid: q.answer})  # the right answer passes
    for letter, misconception in q.misconceptions.items():
        with pytest.raises(AssertionError) as failed:
            exec(code, {qid: letter})
        message = str(failed.value)
        assert f"Misconception: {misconception}" in message and q.hint in message, (letter, message)
        others = [text for other, text in q.misconceptions.items() if other != letter]
        assert not any(text in message for text in others)


@pytest.mark.parametrize("bad", ["E", "a", 1, None, Ellipsis])
def test_visible_test_rejects_a_malformed_answer_helpfully(notebook, bad):
    visible = _test_cell(notebook, "q1").split("### BEGIN HIDDEN TESTS")[0]
    with pytest.raises(AssertionError, match=r'one of the letters "A", "B", "C" or "D"'):
        exec(visible, {"q1": bad})
    exec(visible, {"q1": "B"})  # the visible test checks the format only: a wrong letter passes it


def _mutated_bank(tmp_path, mutate):
    data = yaml.safe_load(questions.BANK.read_text())
    mutate(data)
    path = tmp_path / "bank.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def _q(data, qid):
    return next(q for q in data["questions"] if q["id"] == qid)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: _q(d, "q2").update(answer="E"), "q2: the answer must be one letter"),
    (lambda d: _q(d, "q3")["misconceptions"].pop("A"), "q3: give one misconception for every wrong option"),
    (lambda d: _q(d, "q3")["misconceptions"].update(C="the right answer cannot be a misconception"),
     "q3: give one misconception"),
    (lambda d: _q(d, "q4").pop("hint"), "q4: missing ['hint']"),
    (lambda d: _q(d, "q6").update(difficulty="trivial"), "q6: difficulty must be one of"),
    (lambda d: _q(d, "q7")["options"].pop("D"), "q7: options must be exactly"),
    (lambda d: _q(d, "q9").update(difficulty="medium"), "only 2 hard question(s)"),
    (lambda d: d["questions"].pop(), "exactly 10 questions"),
    (lambda d: _q(d, "q7").update(topic="mlops"), "no question covers: serving"),
    (lambda d: _q(d, "q8").update(solution=["only one step"]), "q8: solution must be a list of at least two"),
], ids=["bad-answer", "missing-misconception", "misconception-for-answer", "no-hint", "bad-difficulty",
        "three-options", "two-hard", "nine-questions", "topic-uncovered", "one-step"])
def test_invalid_banks_are_rejected_with_the_rule_broken(tmp_path, mutate, message):
    with pytest.raises(QuestionBankError) as err:
        questions.load_bank(_mutated_bank(tmp_path, mutate))
    assert message in str(err.value)


def test_cli_refuses_an_invalid_bank_and_writes_nothing(tmp_path, capsys):
    bad = _mutated_bank(tmp_path, lambda d: _q(d, "q1").update(answer="Z"))
    out = tmp_path / "out.ipynb"
    assert questions.main(["--bank", str(bad), "--output", str(out)]) == 2
    assert "q1" in capsys.readouterr().err and not out.exists()
