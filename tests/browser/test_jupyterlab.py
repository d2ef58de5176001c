"""JupyterLab in a real browser, as a student uses it, on a temporary copy of the course.

(a) Lesson 01 opened, Run -> Run All Cells from the menu bar, every code cell executed, no error output, and the
    outputs a student reads (the best run, the confusion matrix) visible -- and true: the best run it names is the
    best run of the tracking store the notebook wrote (``sqlite:///mlflow.db`` in the copy's notebooks/ folder,
    the lesson's default, as on a student's machine).
(b) nbgrader's JupyterLab extension: a released assignment opened, the Validate button of the notebook toolbar
    pressed, its result dialog shown -- failure for the untouched release (naming what is missing), "Success!" for
    a solved copy.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import practice_answers
from autograder.course import copy_course

ROOT = Path(__file__).resolve().parents[2]
LESSON = "01_experiment_tracking.ipynb"
RUN_TIMEOUT_MS = 900_000  # the whole lesson in a browser kernel, on a loaded machine


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A temporary copy of the repository as a student and an instructor see it: the lesson notebooks, and the
    course directory (nbgrader_config.py, source/) with practice_questions generated into release/."""
    from autograder.release import release

    root = copy_course(ROOT, tmp_path_factory.mktemp("course") / "mlops-bridge")
    (root / "notebooks").mkdir()
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy2(notebook, root / "notebooks" / notebook.name)
    release(practice_answers.ASSIGNMENT, root, exchange=False, log=lambda message: None)
    answers, _ = practice_answers.source_answers(root)
    practice_answers.write(
        practice_answers.answered(root, set(answers)), root / "solved" / f"{practice_answers.ASSIGNMENT}.ipynb"
    )
    return root


@pytest.fixture(scope="module")
def lab(course, jupyter_lab_factory):
    return jupyter_lab_factory(course)


def open_notebook(page, lab, path: str, code_cells: int | None = None) -> None:
    """Open ``path`` in JupyterLab and wait until its cells are rendered and its kernel is idle (status bar)."""
    page.goto(lab.lab_url(path))
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for()
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).wait_for()
    if code_cells is not None:
        page.wait_for_function(
            "n => document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell').length === n", arg=code_cells
        )


def click_menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{re.escape(menu)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$")).click()


# JupyterLab renders only the cells near the viewport (content-visibility): read textContent, not innerText,
# which is empty for the cells scrolled away.
# Rendered error outputs (tracebacks) and stderr streams, as JupyterLab marks them.
ERROR_JS = """() => Array.from(document.querySelectorAll(
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
    + '.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]')).map(e => e.textContent)"""

# Done when every code cell shows an execution count, or an error stopped Run All (JupyterLab then leaves the
# remaining cells unexecuted: waiting for their counts would only time out).
DONE_JS = """() => {
    const prompts = Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt'));
    const errors = Array.from(document.querySelectorAll(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
        .filter(e => /Traceback|Error\\b.*:/.test(e.textContent));
    const busy = document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]') === null;  // status bar
    return !busy && (errors.length > 0 || (prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent))));
}"""


def is_error(text: str) -> bool:
    """A traceback or a raised exception (MLflow's INFO/WARNING log lines on stderr are not errors)."""
    return "Traceback" in text or re.search(r"^\w*(Error|Exception)\b.*:", text, re.M) is not None


def test_lesson_01_runs_all_cells_in_jupyterlab(page, lab, course):
    import nbformat
    from mlflow import MlflowClient

    code_cells = sum(c.cell_type == "code" for c in nbformat.read(str(course / "notebooks" / LESSON), 4).cells)
    open_notebook(page, lab, f"notebooks/{LESSON}", code_cells)

    click_menu(page, "Run", "Run All Cells")
    page.wait_for_function(DONE_JS, timeout=RUN_TIMEOUT_MS, polling=1000)

    errors = [text for text in page.evaluate(ERROR_JS) if is_error(text)]
    assert not errors, f"error output in the lesson:\n{errors[0][:3000]}"
    prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").all_text_contents()
    assert all(re.search(r"\[\d+\]", p) for p in prompts), prompts

    # What the student reads, checked against the store the notebook wrote.
    best_output = page.get_by_text(re.compile(r"^best run: \w{32} "))
    best_output.scroll_into_view_if_needed()
    assert best_output.is_visible()
    best = best_output.text_content()
    run_id = best.split()[2]
    store = course / "notebooks" / "mlflow.db"
    assert store.is_file(), "the lesson did not write its default store sqlite:///mlflow.db next to the notebook"
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("01-experiment-tracking")
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.sweep = 'C'",
        order_by=["metrics.val_accuracy DESC", "attributes.start_time ASC"],
    )
    assert run_id == runs[0].info.run_id
    assert f"validation accuracy={runs[0].data.metrics['val_accuracy']:.3f}" in best
    seed_output = page.get_by_text(re.compile(r"Logged model with accuracy: \d\.\d\d"))
    seed_output.scroll_into_view_if_needed()
    assert seed_output.is_visible()
    figure = page.locator(".jp-NotebookPanel .jp-RenderedImage img").last  # the confusion matrix
    figure.scroll_into_view_if_needed()
    assert figure.is_visible() and figure.evaluate("img => img.naturalWidth") > 100
    assert any(a.path.endswith("confusion_matrix.png") for a in client.list_artifacts(run_id))


@pytest.mark.parametrize(
    "notebook, passes",
    [
        (f"release/{practice_answers.ASSIGNMENT}/{practice_answers.ASSIGNMENT}.ipynb", False),
        (f"solved/{practice_answers.ASSIGNMENT}.ipynb", True),
    ],
    ids=["released", "solved"],
)
def test_nbgrader_validate_button(page, lab, notebook, passes):
    open_notebook(page, lab, notebook)
    current = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")  # the notebook in front
    current.locator(".jp-Toolbar").get_by_role("button", name=re.compile("Validate")).click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    dialog.get_by_text(re.compile("Success|fail|error", re.I)).first.wait_for(timeout=600_000)
    text = dialog.inner_text()
    assert "Validation Results" in text, text
    if passes:
        assert "Success!" in text, text
    else:
        assert "Success!" not in text, text
        # The release leaves q1 unanswered: the failure names it, so a student knows what to fix.
        assert "q1" in text, text
