"""The MLflow UI in a real browser, on the store a lesson wrote, clicked the way a student clicks it.

Lesson 01 is executed (papermill) with its defaults in a temporary folder: it writes ``sqlite:///mlflow.db``
there, as on a student's machine. ``mlflow ui`` (the ``MlflowUI`` helper: free port, process group stopped) is
started on that store. MLflow 3.17's UI opens on a GenAI overview; the iris runs are under the **Model training**
toggle -> Experiments -> the lesson's experiment -> Runs (the path the lessons, the README and
docs/troubleshooting.md give) -> a run, whose overview lists its validation accuracy.
The names and the value the page must show are read from the store with ``MlflowClient``, not typed here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSON = "01_experiment_tracking.ipynb"
EXPERIMENT = "01-experiment-tracking"


@pytest.fixture(scope="module")
def lesson_store(tmp_path_factory) -> str:
    from mlops_helpers.notebooks import execute

    folder = tmp_path_factory.mktemp("student")
    execute(ROOT / "notebooks" / LESSON, folder / "executed" / LESSON, {}, cwd=folder)
    store = folder / "mlflow.db"
    assert store.is_file(), "lesson 01 did not write its default store"
    return f"sqlite:///{store}"


def test_mlflow_ui_shows_the_lessons_runs_and_accuracy(page, lesson_store):
    from mlflow import MlflowClient

    from mlops_helpers.serving import MlflowUI

    client = MlflowClient(lesson_store)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    names = {r.info.run_name for r in runs}
    # The lesson's best run (its own query, on validation accuracy), whose parameters explain its score.
    best = client.search_runs(
        [experiment.experiment_id],
        "tags.sweep = 'C'",
        order_by=["metrics.val_accuracy DESC", "attributes.start_time ASC"],
    )[0]
    assert len(names) == len(runs) >= 2 and "val_accuracy" in best.data.metrics

    with MlflowUI(lesson_store) as ui:
        page.goto(ui.url)
        # The student's path: the toggle, Experiments in the sidebar, the experiment, Runs in its sidebar.
        page.get_by_text("Model training", exact=True).first.click()
        page.get_by_role("link", name="Experiments", exact=True).first.click()
        page.get_by_role("link", name=EXPERIMENT, exact=True).first.click()
        page.get_by_role("link", name="Runs", exact=True).first.click()
        page.wait_for_url(re.compile(r"#/experiments/\d+/runs"))
        for name in names:  # every run of the lesson is listed, by its name
            page.get_by_role("link", name=name, exact=True).first.wait_for()
        page.get_by_role("link", name=best.info.run_name, exact=True).first.click()

        page.get_by_text("Metrics", exact=False).first.wait_for()
        page.get_by_text("val_accuracy", exact=True).first.wait_for()
        body = page.inner_text("body")
        assert best.info.run_id in page.url or best.info.run_id in body
        for metric in ("val_accuracy", "test_accuracy"):  # the choice and the final check, both on the run
            shown = re.search(rf"^{metric}\s+([0-9.eE+-]+)\s*$", body, re.M)
            assert shown, f"no {metric} value on the run page:\n{body[:2000]}"
            assert float(shown.group(1)) == pytest.approx(best.data.metrics[metric], abs=1e-9)
        for key, value in best.data.params.items():  # the parameters that explain the score
            assert re.search(rf"^{re.escape(key)}\s+{re.escape(value)}\s*$", body, re.M), key
    assert not ui.running
