"""The regression set through grade_job, sandbox on: every case gets its expected status and score.

Also checks, after the run: the files the hostile cases tried to read/overwrite are unchanged, the listener on
127.0.0.1 saw no connection, the hidden tests never appear in the read_hidden output, and no sandboxed process
(of the sandbox uid range) is left behind. Submissions are graded by a pool of 2 processes (one per core).
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from autograder.job import GradeJob, Limits
from autograder.sandbox import SANDBOX_UID_BASE, SANDBOX_UID_SPAN

from .submissions import ASSIGNMENT, MAX_SCORE, NOTEBOOK, build_submissions, loopback_listener, specs_from_source

pytestmark = pytest.mark.sandbox

LIMITS = Limits(cell_timeout=10, notebook_timeout=90, memory_mb=1024, max_processes=128, max_output_bytes=200_000)


def _grade(args):
    from autograder.unit import grade_job

    student_id, notebook = args
    return grade_job(
        GradeJob(
            "regression",
            ASSIGNMENT,
            student_id,
            {f"{NOTEBOOK}.ipynb": notebook},
            specs_from_source(),
            {},
            LIMITS,
            sandbox=True,
        )
    )


def _sandbox_processes(uids: set[int]) -> list[str]:
    """Processes running as one of ``uids`` (the sandbox uids of this test's own graders: other graders on the
    machine, such as a concurrent test run, have theirs)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        uid = int(text.split("\nUid:\t", 1)[1].split()[0])
        if uid in uids:
            found.append(text.splitlines()[0])
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory, grading_sandbox):
    course = tmp_path_factory.mktemp("course")
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    (course / "submitted" / "other" / ASSIGNMENT).mkdir(parents=True)
    protected = {
        course / "gradebook.db": b"SQLite format 3\0 (stand-in)",
        course / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb": b"hidden tests here",
        course / "submitted" / "other" / ASSIGNMENT / f"{NOTEBOOK}.ipynb": b"another student's work",
    }
    for path, data in protected.items():
        path.write_bytes(data)

    with loopback_listener() as (port, connections):
        cases = build_submissions(port=port, course_dir=str(course))
        with ProcessPoolExecutor(2) as pool:
            graded = pool.map(_grade, [(sid, case.notebook) for sid, case in cases.items()])
            results = dict(zip(cases, graded, strict=True))
            # the sandbox uids the pool's workers ran kernels as (one per worker process: sandbox_uid())
            uids = {SANDBOX_UID_BASE + pid % SANDBOX_UID_SPAN for pid in pool._processes}
    return {"cases": cases, "results": results, "connections": connections, "protected": protected, "uids": uids}


CASE_NAMES = list(build_submissions(port=1, course_dir="/nonexistent"))


@pytest.mark.parametrize("student_id", CASE_NAMES)
def test_case_gets_expected_status_and_score(graded, student_id):
    case, result = graded["cases"][student_id], graded["results"][student_id]
    assert (result.status, result.score) == (case.status, case.score), result.reason
    assert result.max_score == MAX_SCORE
    assert result.reason  # every outcome explains itself


def _outputs_text(result) -> str:
    """Everything the graded notebook's cells printed (not their sources)."""
    nb = json.loads(result.notebooks[0].graded)

    def text(value):  # nbformat stores multi-line strings as lists of lines
        return "".join(value) if isinstance(value, list) else value

    return "".join(
        text(o.get("text", "")) + text(o.get("evalue", "")) for c in nb["cells"] for o in c.get("outputs", [])
    )


def test_network_listener_saw_nothing(graded):
    assert graded["connections"] == []
    out = _outputs_text(graded["results"]["network"])
    assert "no network" in out and "CONNECTED" not in out


def test_files_outside_the_sandbox_unchanged(graded):
    for path, data in graded["protected"].items():
        assert path.read_bytes() == data, path
    out = _outputs_text(graded["results"]["write_gradebook"])
    assert out.count("cannot write") == 2


def test_process_flood_was_bounded(graded):
    out = _outputs_text(graded["results"]["process_flood"])
    assert "fork refused after" in out
    refused_after = int(out.split("fork refused after ")[1].split()[0])
    assert refused_after < LIMITS.max_processes


def test_huge_output_truncated(graded):
    notebook = graded["results"]["huge_output"].notebooks[0].graded
    assert len(notebook) < 3 * LIMITS.max_output_bytes
    # 200 prints of 100 kB: the kernel batches them into messages, kept up to the budget or refused when one is
    # larger than the socket allows; either way the notebook says so
    assert b"output truncated by the grader" in notebook or b"output refused by the grader" in notebook


def test_huge_single_message_refused_at_the_socket(graded):
    """One 20 MB display (printed output is cut in the kernel itself, a display is not): refused whole by ZeroMQ
    (never held by the grader), said in the reason and in the cell, and the connection is reopened so the test cells
    after it still count (the case's score is asserted above)."""
    from autograder.unit import max_message_bytes

    result = graded["results"]["huge_message"]
    assert f"over {max_message_bytes(LIMITS)} bytes; the grader refused it" in result.reason
    assert len(result.notebooks[0].graded) < 3 * LIMITS.max_output_bytes
    assert "output refused by the grader" in _outputs_text(result)


def test_graded_notebooks_agree_with_nbgrader_determine_grade(graded):
    """What the grader stores via nbgrader's SaveAutoGrades must equal our scores: recompute from the notebook."""
    import nbformat
    from nbgrader.utils import determine_grade, is_grade

    for student_id in ("perfect", "stderr_warnings", "hook_custom_exc", "deleted_test", "infinite_loop"):
        result = graded["results"][student_id].notebooks[0]
        nb = nbformat.reads(result.graded.decode(), as_version=4)
        recomputed = {c.metadata.nbgrader["grade_id"]: determine_grade(c)[0] for c in nb.cells if is_grade(c)}
        assert recomputed == {k: v[0] for k, v in result.scores.items()}, student_id


def test_no_sandboxed_process_left_behind(graded):
    assert graded["uids"] and _sandbox_processes(graded["uids"]) == []


@pytest.mark.full  # a Dask cluster start and the whole set again: about as long as the set itself
def test_the_whole_set_on_the_dask_engine(grading_sandbox):
    """Every case through the Dask engine (a LocalCluster of 2 worker processes), as ``grade --scheduler`` runs
    them: the same status and score as expected, whatever worker grades it."""
    from distributed import LocalCluster

    from autograder.engines import get_engine
    from autograder.unit import grade_job

    with (
        loopback_listener() as (port, _),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
    ):
        cases = build_submissions(port=port, course_dir="/nonexistent-course")
        jobs = [
            GradeJob(
                "regression",
                ASSIGNMENT,
                name,
                {f"{NOTEBOOK}.ipynb": case.notebook},
                specs_from_source(),
                {},
                LIMITS,
                sandbox=True,
            )
            for name, case in cases.items()
        ]
        with get_engine("dask", scheduler=cluster, job_timeout=600) as engine:
            outcomes = {o.job.student_id: o for o in engine.map(grade_job, jobs)}
    got = {
        name: (o.result.status, o.result.score) if o.error is None else ("engine error", repr(o.error))
        for name, o in outcomes.items()
    }
    assert got == {name: (case.status, case.score) for name, case in cases.items()}
