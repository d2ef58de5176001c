"""The class hub in a real browser (Playwright + Debian's chromium): a student logs in with their Linux password,
runs lesson 01 in their JupyterLab and finds their runs in the class's MLflow UI under their own experiment; a
student fetches the practice questions from the Assignments tab, submits them there, presses Fetch Feedback and reads
the graded feedback; the instructor logs in, sees the submissions in formgrader and exports the grades."""

from __future__ import annotations

import csv
import io
import re
import time

import pytest
from classhub import BIN, BUILD, COURSE, save_answers, submit_answers, wait_until

pytestmark = pytest.mark.browser
TIMEOUT_MS = 180_000
LESSON = "01_experiment_tracking.ipynb"

# Done when every code cell shows an execution count, an error output stopped Run All, or JupyterLab opened a
# dialog (a dead kernel, a server gone): then the test fails at once instead of waiting for its timeout.
DONE_JS = """() => {
    if (document.querySelector('.jp-Dialog')) return true;
    const prompts = Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt'));
    const errors = Array.from(document.querySelectorAll(
            '.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]'));
    const busy = document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]') === null;
    return !busy && (errors.length > 0 || (prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent))));
}"""
ERRORS_JS = """() => Array.from(document.querySelectorAll(
    '.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]')).map(e => e.textContent)"""


def login(context, hub, user):
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{hub.url}/hub/login")
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(hub.password(user))
    page.locator("input[type=submit], button[type=submit]").first.click()
    return page


def screenshot_on_failure(page, name):
    BUILD.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(BUILD / f"{name}.png"), full_page=True, timeout=30_000)
    except Exception:  # noqa: BLE001 - the test's own failure matters more
        pass


def test_a_student_runs_lesson_01_and_sees_their_runs_in_mlflow(class_hub, chromium):
    hub, a = class_hub, class_hub.users["a"]
    run_id = chromium(_run_lesson_01, hub, a)
    assert chromium(_see_run_in_mlflow_ui, hub, a, run_id)


def _run_lesson_01(chromium, hub, a) -> str:
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = login(context, hub, a)
    try:
        page.wait_for_url(re.compile(rf"/user/{a}/lab"), timeout=TIMEOUT_MS)
        page.goto(f"{hub.url}/user/{a}/lab/tree/lessons/{LESSON}")
        page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for()
        page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).wait_for()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        page.wait_for_function(DONE_JS, timeout=600_000, polling=1000)  # one student: under a minute measured
        dialog = page.locator(".jp-Dialog")
        assert not dialog.count(), dialog.first.inner_text()
        errors = page.evaluate(ERRORS_JS)
        assert not errors, errors[0][:3000]
        shared = page.get_by_text(re.compile(rf"your own names are .*{a}-01-experiment-tracking"))
        shared.first.scroll_into_view_if_needed()
        assert shared.first.is_visible()
        best = page.get_by_text(re.compile(r"^best run: \w{32} ")).first
        best.scroll_into_view_if_needed()
        run_id = best.text_content().split()[2]
    except Exception:
        screenshot_on_failure(page, "student_lesson01")
        raise
    finally:
        context.close()
    return run_id


def _see_run_in_mlflow_ui(chromium, hub, a, run_id) -> bool:
    # the best run shown is in the student's own experiment on the class's server
    run = hub.mlflow_call(a, "GET", "runs/get", params={"run_id": run_id})
    assert run.status_code == 200
    experiment = hub.mlflow_call(
        a, "GET", "experiments/get", params={"experiment_id": run.json()["run"]["info"]["experiment_id"]}
    )
    assert experiment.json()["experiment"]["name"] == f"{a}-01-experiment-tracking"

    # the MLflow UI, with the student's MLflow account: Model training -> Experiments -> theirs -> Runs
    username, password = hub.mlflow_auth(a)
    context = chromium.new_context(
        viewport={"width": 1400, "height": 900}, http_credentials={"username": username, "password": password}
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(hub.mlflow)
        page.get_by_text("Model training", exact=True).first.click()
        page.get_by_role("link", name="Experiments", exact=True).first.click()
        page.get_by_role("link", name=f"{a}-01-experiment-tracking", exact=True).first.click()
        page.get_by_role("link", name="Runs", exact=True).first.click()
        run_name = run.json()["run"]["info"]["run_name"]
        page.get_by_role("link", name=run_name, exact=True).first.wait_for()
    except Exception:
        screenshot_on_failure(page, "student_mlflow_ui")
        raise
    finally:
        context.close()
    return True


ASSIGNMENT = "practice_questions"


def test_a_student_submits_from_the_assignments_tab_and_reads_the_feedback(class_hub, chromium):
    """Student b, in JupyterLab: Nbgrader -> Assignment List, Fetch, the answers saved (all right but q10, saved
    through b's server as JupyterLab saves), Submit, Fetch Feedback until the grading service's feedback arrives,
    then the feedback page opened in the browser: 16 / 19, with the misconception of the wrong answer."""
    hub, b = class_hub, class_hub.users["b"]
    if not hub.api(b, "GET", f"/hub/api/users/{b}").json()["servers"]:
        hub.spawn(b)
    text = chromium(_submit_and_read_feedback, hub, b)
    assert re.search(r"This attempt: 16 / 19", text), text[:2000]
    assert "Score that counts" in text and "Misconception:" in text


def _submit_and_read_feedback(chromium, hub, b) -> str:
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = login(context, hub, b)
    work = hub.home(b) / ASSIGNMENT
    try:
        page.wait_for_url(re.compile(rf"/user/{b}/lab"), timeout=TIMEOUT_MS)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Nbgrader$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Assignment List$")).click()

        def row(button):
            return page.locator(".list_item", has_text=ASSIGNMENT).get_by_role("button", name=button, exact=True)

        row("Fetch").first.click()
        wait_until(lambda: (work / f"{ASSIGNMENT}.ipynb").is_file(), 120, "Fetch to bring the assignment")
        save_answers(hub, b, ASSIGNMENT, right={f"q{n}_answer" for n in range(1, 10)})
        row("Submit").first.click()
        deadline = time.monotonic() + 300
        while not list((work / "feedback").glob(f"*/{ASSIGNMENT}.html")):
            assert time.monotonic() < deadline, "no feedback 300 s after Submit"
            time.sleep(5)
            row("Fetch Feedback").first.click()  # the student presses it until the feedback is there
        page.get_by_text("(view feedback)").first.wait_for()
        (html,) = (work / "feedback").glob(f"*/{ASSIGNMENT}.html")
        page.goto(f"{hub.url}/user/{b}/files/{html.relative_to(hub.home(b)).as_posix()}")
        body = page.locator("body")
        body.get_by_text(re.compile(r"This attempt: \d+ / 19")).first.wait_for()
        return body.inner_text()
    except Exception:
        screenshot_on_failure(page, "student_assignments_tab")
        raise
    finally:
        context.close()


def test_the_instructor_sees_the_submissions_in_formgrader(class_hub, chromium):
    hub, a = class_hub, class_hub.users["a"]
    submitted = hub.home(hub.instructor) / COURSE / "submitted" / a / "practice_questions"
    if not submitted.is_dir():  # this module run alone: a submits now
        if not hub.api(a, "GET", f"/hub/api/users/{a}").json()["servers"]:
            hub.spawn(a)
        submit_answers(hub, a)
    wait_until(
        lambda: (hub.home(hub.instructor) / COURSE / "submitted" / a / "practice_questions").is_dir(),
        300,
        "a's submission collected into the course directory",
    )
    chromium(_formgrader_shows_the_submission, hub, a)
    chromium(_formgrader_refuses_a_student, hub, hub.users["b"])
    # then exports the grades, in the course directory as themself (a terminal of their JupyterLab)
    course = hub.home(hub.instructor) / COURSE
    command = [str(BIN / "python"), "-m", "autograder", "export", "--course-dir", str(course)]
    exported = hub.as_user(hub.instructor, *command)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO((course / "grades.csv").read_text())))
    (mine,) = [r for r in rows if r["student_id"] == a and r["assignment"] == ASSIGNMENT]
    assert float(mine["score"]) == float(mine["max_score"]) == 19, mine
    assert (course / "grades.csv").stat().st_uid == hub.uid(hub.instructor)


def _formgrader_shows_the_submission(chromium, hub, a) -> None:
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = login(context, hub, hub.instructor)
    try:
        page.wait_for_url(re.compile(rf"/user/{hub.instructor}/"), timeout=TIMEOUT_MS)
        page.goto(f"{hub.url}/services/{COURSE}/formgrader/manage_submissions/{ASSIGNMENT}")
        page.get_by_text(a, exact=True).first.wait_for()
        row = page.locator("tr", has_text=a).first
        assert re.search(r"19(\.0)?\s*/\s*19", row.inner_text()), row.inner_text()
    except Exception:
        screenshot_on_failure(page, "instructor_formgrader")
        raise
    finally:
        context.close()


def _formgrader_refuses_a_student(chromium, hub, b) -> None:
    context = chromium.new_context()
    page = login(context, hub, b)
    try:
        page.wait_for_url(re.compile(rf"/user/{b}/"), timeout=TIMEOUT_MS)
        response = page.goto(f"{hub.url}/services/{COURSE}/formgrader")
        assert response.status == 403 or "403" in page.content(), response.status
    finally:
        context.close()
