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
    "q5": (
        "In an MLOps workflow, which combination best ensures a smooth transition from research to production?",
        "B",
    ),
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
    return next(
        "".join(c["source"])
        for c in notebook["cells"]
        if c["metadata"].get("nbgrader", {}).get("grade_id") == f"{qid}_check"
    )


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


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: _q(d, "q2").update(answer="E"), "q2: the answer must be one letter"),
        (lambda d: _q(d, "q3")["misconceptions"].pop("A"), "q3: give one misconception for every wrong option"),
        (
            lambda d: _q(d, "q3")["misconceptions"].update(C="the right answer cannot be a misconception"),
            "q3: give one misconception",
        ),
        (lambda d: _q(d, "q4").pop("hint"), "q4: missing ['hint']"),
        (lambda d: _q(d, "q6").update(difficulty="trivial"), "q6: difficulty must be one of"),
        (lambda d: _q(d, "q7")["options"].pop("D"), "q7: options must be exactly"),
        (lambda d: _q(d, "q9").update(difficulty="medium"), "only 2 hard question(s)"),
        (lambda d: d["questions"].pop(), "exactly 10 questions"),
        (lambda d: _q(d, "q7").update(topic="mlops"), "no question covers: serving"),
        (lambda d: _q(d, "q8").update(solution=["only one step"]), "q8: solution must be a list of at least two"),
        (
            lambda d: _q(d, "q5").update(answer=["B", "C"]),
            "q5: the answer must be one letter of ('A', 'B', 'C', 'D') (exactly one keyed option), not ['B', 'C']",
        ),
        (lambda d: _q(d, "q5").update(answer="BC"), "(exactly one keyed option), not 'BC'"),
        (
            lambda d: _q(d, "q2")["options"].update(C=_q(d, "q2")["options"]["A"]),
            "q2: two options have the same text, so there is not exactly one keyed option",
        ),
        (
            lambda d: _q(d, "q7")["options"].update(
                A='`{"dataframe_split": {"columns": ["sepal length (cm)", "sepal_width"], "data": [[5.1, 3.5]]}}`'
            ),
            "q7: option A names the column(s) ['sepal length (cm)'], which the course's model does not have",
        ),
        (
            lambda d: _q(d, "q9").update(question=_q(d, "q9")["question"] + "\nThe column is `petal_lengths`."),
            "q9: question names the column(s) ['petal_lengths']",
        ),
        (lambda d: _q(d, "q8")["solution"].append("Check `X['Petal-Width']`."), "q8: solution step 4 names the column"),
    ],
    ids=[
        "bad-answer",
        "missing-misconception",
        "misconception-for-answer",
        "no-hint",
        "bad-difficulty",
        "three-options",
        "two-hard",
        "nine-questions",
        "topic-uncovered",
        "one-step",
        "two-keyed",
        "two-letters",
        "duplicate-option",
        "sklearn-column-name",
        "misspelt-column-in-question",
        "column-in-solution",
    ],
)
def test_invalid_banks_are_rejected_with_the_rule_broken(tmp_path, mutate, message):
    with pytest.raises(QuestionBankError) as err:
        questions.load_bank(_mutated_bank(tmp_path, mutate))
    assert message in str(err.value)


def test_cli_refuses_an_invalid_bank_and_writes_nothing(tmp_path, capsys):
    bad = _mutated_bank(tmp_path, lambda d: _q(d, "q1").update(answer="Z"))
    out = tmp_path / "out.ipynb"
    assert questions.main(["--bank", str(bad), "--output", str(out)]) == 2
    assert "q1" in capsys.readouterr().err and not out.exists()


# ----------------------------------------------------------------------------------------------- no answer-length cue
def _longest(q) -> bool:
    return all(len(q.options[q.answer]) > len(text) for letter, text in q.options.items() if letter != q.answer)


def test_length_cue_limit_is_what_guessing_gives():
    assert [questions.length_cue_limit(n) for n in (1, 4, 5, 10, 12)] == [1, 1, 2, 3, 3]


def test_picking_the_longest_option_does_not_beat_guessing(bank):
    longest_right = sum(_longest(q) for q in bank)
    assert longest_right <= questions.length_cue_limit(len(bank)) == 3, [q.id for q in bank if _longest(q)]


def test_a_bank_where_the_longest_option_is_keyed_too_often_is_rejected(tmp_path):
    def pad_keys(data):  # make the key the strictly longest option of the first four questions
        for raw in data["questions"][:4]:
            longest = max(len(text) for text in raw["options"].values())
            raw["options"][raw["answer"]] = raw["options"][raw["answer"]] + "!" * (longest + 1)

    bad = _mutated_bank(tmp_path, pad_keys)
    with pytest.raises(QuestionBankError) as err:
        questions.load_bank(bad)
    assert "the keyed option is the strictly longest option in" in str(err.value)
    assert "at most 3 are allowed" in str(err.value)
    for raw in yaml.safe_load(bad.read_text())["questions"][:4]:
        assert raw["id"] in str(err.value)


def test_a_tie_for_the_longest_option_is_no_cue(tmp_path):
    def tie_keys(data):  # the key as long as the longest distractor in every question: allowed
        for raw in data["questions"]:
            longest = max(len(text) for letter, text in raw["options"].items() if letter != raw["answer"])
            key = raw["options"][raw["answer"]]
            raw["options"][raw["answer"]] = key + "." * max(0, longest - len(key))

    assert len(questions.load_bank(_mutated_bank(tmp_path, tie_keys))) == 10


# ----------------------------------------------------------------------------------------------- facts behind answers
def test_course_column_names_are_the_signature_of_the_course_model():
    from mlflow.models import infer_signature

    from mlops_helpers.data import split_iris

    assert infer_signature(split_iris().X_train).inputs.input_names() == list(questions.course_column_names())


def test_q7_only_the_keyed_body_gets_predictions_from_the_scoring_server(bank, tmp_path):
    """q7's options, posted to MLflow's own scoring app (what `mlflow models serve` runs, driven in-process) for a
    model with the course's signature: the keyed body gets HTTP 200, the other bodies HTTP 400."""
    import re
    import warnings

    import mlflow
    from mlflow.models import infer_signature
    from mlflow.pyfunc import scoring_server
    from sklearn.linear_model import LogisticRegression

    from mlops_helpers.data import split_iris

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette: "Using httpx with starlette.testclient is deprecated"
        from starlette.testclient import TestClient

    split = split_iris()
    model = LogisticRegression(max_iter=200).fit(split.X_train, split.y_train)
    mlflow.sklearn.save_model(
        model,
        tmp_path / "model",
        pip_requirements=["scikit-learn"],
        signature=infer_signature(split.X_train, model.predict(split.X_train)),
    )
    client = TestClient(scoring_server.init(mlflow.pyfunc.load_model(str(tmp_path / "model"))))
    q7 = next(q for q in bank if q.id == "q7")
    bodies = {letter: re.fullmatch(r"`(.+)`", text) for letter, text in q7.options.items()}
    statuses = {}
    for letter, body in bodies.items():
        if body:
            reply = client.post("/invocations", content=body.group(1), headers={"Content-Type": "application/json"})
            statuses[letter] = reply.status_code
            if reply.status_code == 200:
                flowers = json.loads(body.group(1))["inputs"]
                assert reply.json()["predictions"] == model.predict(__import__("pandas").DataFrame(flowers)).tolist()
    assert statuses == {"A": 400, "B": 200, "C": 400} and q7.answer == "B"
    assert "Any of these" in q7.options["D"]  # D is wrong because A and C are refused


def test_q8_logistic_regression_and_mlflow_metrics_are_deterministic(bank, tmp_path):
    """q8's misconceptions A and C: the default lbfgs fit gives the same coefficients on the same rows whatever the
    random_state, and MLflow gives back the exact float it was given."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlops_helpers.data import split_iris

    split = split_iris()
    fits = [LogisticRegression(max_iter=200, random_state=seed).fit(split.X_train, split.y_train) for seed in (0, 1)]
    assert fits[0].solver == "lbfgs" and np.array_equal(fits[0].coef_, fits[1].coef_)
    accuracy = fits[0].score(split.X_test, split.y_test)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("q8"))
    client.log_metric(run.info.run_id, "accuracy", accuracy)
    assert client.get_run(run.info.run_id).data.metrics["accuracy"] == accuracy
    q8 = next(q for q in bank if q.id == "q8")
    assert "lbfgs" in q8.misconceptions["C"] and "exact float" in q8.misconceptions["A"]


def test_q9_p_value_is_the_chance_of_such_a_difference_under_the_null_hypothesis(bank):
    """q9's key: the KS p-value is P(statistic >= observed | same distribution), checked by simulation."""
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(0)
    observed = stats.ks_2samp(rng.normal(0, 1, 200), rng.normal(0.2, 1, 200))
    null = [stats.ks_2samp(rng.normal(0, 1, 200), rng.normal(0, 1, 200)).statistic for _ in range(2000)]
    assert abs(np.mean(np.array(null) >= observed.statistic) - observed.pvalue) < 0.02
    q9 = next(q for q in bank if q.id == "q9")
    assert "if both samples came from the same distribution" in q9.options[q9.answer]
    texts = [*q9.misconceptions.values(), q9.hint, *q9.solution]
    assert not any("unlikely to come from the same distribution" in t for t in texts)  # the misreading itself


def test_q4_misconception_a_quotes_the_error_python_raises(bank):
    q4 = next(q for q in bank if q.id == "q4")
    snippet = q4.question.split("```python")[1].split("```")[0]
    with pytest.raises(SyntaxError) as error:
        compile(snippet, "<q4>", "exec")
    assert f"SyntaxError: {error.value.msg}" in q4.misconceptions["A"] and "NameError" in q4.misconceptions["A"]
    assert "NameError" in q4.options["A"]  # option A claims a NameError; its misconception must be about that


def test_q3_output_is_what_python_prints(bank, capsys):
    q3 = next(q for q in bank if q.id == "q3")
    exec(q3.question.split("```python")[1].split("```")[0], {})
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["Running data_preprocessing step", "Running model_training step", "Running model_deployment step"]
    assert q3.answer == "C" and lines[0] in q3.options["C"] and q3.options["C"].startswith("Three lines")


def test_q10_model_stages_are_deprecated_since_mlflow_2_9(bank):
    import warnings

    import mlflow

    client = mlflow.MlflowClient("sqlite:///:memory:")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            client.transition_model_version_stage("no-such-model", "1", "Production")
        except Exception:  # noqa: BLE001 - only the warning is of interest
            pass
    assert any(w.category is FutureWarning and "deprecated since 2.9.0" in str(w.message) for w in caught)
    q10 = next(q for q in bank if q.id == "q10")
    assert "deprecated since MLflow 2.9" in q10.misconceptions["D"]


def test_readme_states_the_bank_s_difficulties_and_points(bank):
    readme = (questions.ROOT / "README.md").read_text()
    counts = Counter(q.difficulty for q in bank)
    row = next(line for line in readme.splitlines() if line.startswith("| `practice_questions` |"))
    expected = (
        f"{counts['easy']} easy / {counts['medium']} medium / {counts['hard']} hard, "
        f"{sum(q.points for q in bank)} points"
    )
    assert expected in row, (expected, row)


@pytest.mark.parametrize("qid", [f"q{i}" for i in range(1, 11)])
def test_every_question_is_a_check_cell_judged_outside_the_kernel(bank, notebook, qid):
    """The course's grader judges the letter the kernel reports: the key and the misconceptions (whose letters would
    give the key away) are in the check, which never enters the student's kernel."""
    import json

    from autograder.checks import parse_check_cell

    q = next(q for q in bank if q.id == qid)
    cell = parse_check_cell(_test_cell(notebook, qid))
    assert cell is not None and [c.expression for c in cell.checks] == [qid]
    assert "equals" not in cell.visible_source and "Misconception" not in cell.visible_source
    (check,) = cell.checks
    assert check.judge(json.dumps({"value": q.answer, "type": "str"})) == (True, "")
    for letter, misconception in q.misconceptions.items():
        passed, message = check.judge(json.dumps({"value": letter, "type": "str"}))
        assert not passed and f"Misconception: {misconception}" in message and q.hint in message
