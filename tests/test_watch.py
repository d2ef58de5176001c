"""Grade on submit: ``python -m autograder watch`` on a temporary course, with real students and real processes.

Students have their own homes and run the real ``nbgrader fetch_assignment / submit / fetch_feedback``; the service
is a real subprocess (tests/watch_course.py). The slow robustness tests (SIGKILL and restart, SIGTERM mid-grading)
carry ``@pytest.mark.full`` (make test-full).
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder.questions import load_bank
from watch_course import Service, Student, env, kill_session, make_course

ASSIGNMENT = "practice_questions"
BANK = load_bank()
RIGHT = {f"{q.id}_answer": f"{q.id} = {q.answer!r}" for q in BANK}
CELL_TIMEOUT = 30  # seconds a cell may run in the test course (the hostile submission's infinite loop hits it)


def md(text: str) -> str:
    """Bank text as it reads on the rendered page (markdown code spans lose their backticks)."""
    return text.replace("`", "")


def wrong(qid: str) -> str:
    q = next(q for q in BANK if q.id == qid)
    return f"{qid} = {next(letter for letter in 'ABCD' if letter != q.answer)!r}"


def hidden_lines(root: Path, assignment: str = ASSIGNMENT) -> list[str]:
    """Every line of the source notebook's hidden-test regions long enough to be recognisable."""
    from autograder.feedback import MIN_SCRUB_CHARS
    from autograder.regions import hidden_regions

    source = json.loads((root / "source" / assignment / f"{assignment}.ipynb").read_text())
    lines = []
    for cell in source["cells"]:
        _, hidden = hidden_regions("".join(cell["source"]))
        lines += [h.strip() for h in hidden if len(h.strip()) >= MIN_SCRUB_CHARS]
    return lines


def latest(pages: dict[str, str]) -> str:
    return pages[max(pages)]


@pytest.fixture
def course(tmp_path):
    return make_course(
        tmp_path,
        policy=f"c.AttemptsPolicy.limits = {{{ASSIGNMENT!r}: 2}}",
        config=f"c.Execute.timeout = {CELL_TIMEOUT}",
    )


@pytest.mark.full  # ~35 s: three graded attempts through the real service (make test's 10-minute budget)
@pytest.mark.sandbox
def test_a_second_attempt_raises_the_score_that_counts_then_solutions_then_refusal(course, tmp_path):
    """One student, the real commands: a wrong answer's misconception and hint, no solutions while an attempt is
    left; the last attempt fixes it (the score that counts rises) and releases every solution; one more is refused."""
    bob = Student(course, "bob", tmp_path)
    bob.fetch(ASSIGNMENT)
    bob.answer(ASSIGNMENT, {**RIGHT, "q10_answer": "q10 = 'A'", "q2_answer": wrong("q2")})
    service = Service(course, "--poll", "0.2")
    try:
        service.wait_for("watching")
        bob.submit(ASSIGNMENT)
        bob.wait_feedback(ASSIGNMENT, 1)
        bob.answer(ASSIGNMENT, RIGHT)
        bob.submit(ASSIGNMENT)
        bob.wait_feedback(ASSIGNMENT, 2)
        bob.submit(ASSIGNMENT)  # over the limit of 2
        bob.wait_feedback(ASSIGNMENT, 3)
        first, second, third = (page for _, page in sorted(bob.fetch_feedback(ASSIGNMENT).items()))
    finally:
        assert service.stop() == 0
    q10, q2 = BANK[9], BANK[1]
    assert "Your attempt 1" in first and "This attempt: 15 / 19" in first  # q10 (3 points) and q2 (1 point) wrong
    assert "Attempts left: 1 of 2" in first
    assert f"you answered A. Misconception: {md(q10.misconceptions['A'])} Hint: {md(q10.hint)}" in first
    assert f"Misconception: {md(q2.misconceptions[wrong('q2')[-2]])}" in first
    assert f"Question 1 (1/1): A is right. {md(BANK[0].why)}" in first
    assert "Step-by-step solutions" not in first and not any(md(step) in first for q in BANK for step in q.solution)

    assert "Your attempt 2" in second and "This attempt: 19 / 19" in second and "Attempts left: 0 of 2" in second
    assert "Score that counts (best of your graded attempts): 19 / 19 (attempt 2)" in second
    assert "Step-by-step solutions" in second and all(md(step) in second for q in BANK for step in q.solution)

    assert "Your attempt 3" in third and "This attempt was not graded" in third
    assert "you have used all 2 graded attempts" in third
    assert "Score that counts (best of your graded attempts): 19 / 19 (attempt 2)" in third
    leaked = [line for line in hidden_lines(course) for page in (first, second, third) if line in page]
    assert not leaked, leaked[:3]
    assert re.search(r"bob practice_questions attempt 3: refused", service.text())

    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "attempts", ASSIGNMENT, "--student", "bob"],
        cwd=course,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "bob: 2 graded attempt(s), 0 left, best counts: 19/19 (attempt 2)" in proc.stdout
    assert re.search(r"#1 [^\n]+ UTC graded ok 15/19", proc.stdout)
    assert re.search(r"#3 [^\n]+ UTC refused refused", proc.stdout)


@pytest.mark.full
@pytest.mark.sandbox
def test_three_students_each_get_their_feedback_and_a_hostile_one_delays_nobody(course, tmp_path):
    alice, dave, carol = (Student(course, name, tmp_path) for name in ("alice", "dave", "carol"))
    for student in (alice, dave, carol):
        student.fetch(ASSIGNMENT)
    alice.answer(ASSIGNMENT, RIGHT)
    dave.answer(ASSIGNMENT, {**RIGHT, "q7_answer": wrong("q7"), "q9_answer": wrong("q9")})
    carol.answer(ASSIGNMENT, {**RIGHT, "q10_answer": "while True:\n    pass"})  # hostile: never ends
    service = Service(course, "--poll", "0.2", "--workers", "2")
    try:
        service.wait_for("watching")
        carol.submit(ASSIGNMENT)
        alice_submitted = alice.submit(ASSIGNMENT)
        alice_done = alice.wait_feedback(ASSIGNMENT, 1)
        # the infinite loop, submitted first, holds one worker until its time limit; alice is served meanwhile
        assert carol.feedback_count(ASSIGNMENT) == 0, "alice's feedback waited for the infinite loop"
        assert alice_done - alice_submitted < CELL_TIMEOUT
        dave.submit(ASSIGNMENT)
        dave.wait_feedback(ASSIGNMENT, 1)
        carol.wait_feedback(ASSIGNMENT, 1)
        pages = {s.name: latest(s.fetch_feedback(ASSIGNMENT)) for s in (alice, dave, carol)}
    finally:
        assert service.stop() == 0
    assert "This attempt: 19 / 19" in pages["alice"] and "Attempts left: 1 of 2" in pages["alice"]
    assert all(
        f"Question {q.number} ({q.points}/{q.points}): {q.answer} is right. {md(q.why)}" in pages["alice"] for q in BANK
    )
    assert "This attempt: 13 / 19" in pages["dave"]  # q7 and q9: 3 points each
    assert "status: timeout" in pages["carol"] and "Question 10 (0/3): no answer" in pages["carol"]
    assert "This attempt: 16 / 19" in pages["carol"]  # the points earned before the loop are kept
    leaked = [line for line in hidden_lines(course) for page in pages.values() if line in page]
    assert not leaked, leaked[:3]
    assert re.search(r"carol practice_questions attempt 1: timeout 16/19", service.text())

    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "report", ASSIGNMENT],
        cwd=course,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    import csv

    rows = {
        r["student_id"]: r for r in csv.DictReader((course / "build" / "report" / ASSIGNMENT / "grades.csv").open())
    }
    assert {s: (r["attempts"], float(r["total"]), r["status"]) for s, r in rows.items()} == {
        "alice": ("1/2", 19.0, "ok"),
        "dave": ("1/2", 13.0, "ok"),
        "carol": ("1/2", 16.0, "timeout"),
    }


def test_a_second_service_on_the_same_course_refuses(tmp_path):
    from autograder.course import copy_course
    from watch_course import ROOT

    course = copy_course(ROOT, tmp_path / "course")
    first = Service(course, "--no-sandbox", "--poll", "0.2")
    try:
        first.wait_for("watching")
        proc = subprocess.run(
            [sys.executable, "-m", "autograder", "watch", "--once", "--no-sandbox"],
            cwd=course,
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2
        assert f"another grading service is already running on this course (pid {first.proc.pid}" in proc.stderr
        assert str(course / ".autograder" / "watch.lock") in proc.stderr
    finally:
        assert first.stop() == 0
    assert "SIGTERM: finishing" in first.text()


def test_an_unreadable_exchange_is_an_error_naming_the_path(tmp_path):
    from autograder.course import copy_course
    from watch_course import ROOT

    course = copy_course(ROOT, tmp_path / "course")
    inbound = course / "exchange" / "mlops-bridge" / "inbound"
    inbound.parent.mkdir(parents=True)
    inbound.write_text("not a folder")
    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "watch", "--once", "--no-sandbox"],
        cwd=course,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"cannot read the exchange's inbound folder {inbound}" in proc.stderr


def test_a_full_disk_is_an_error_naming_the_ledger(tmp_path, monkeypatch):
    from autograder.attempts import Ledger
    from autograder.exceptions import AutograderError

    ledger = Ledger(tmp_path)
    ledger.add("alice+ps1+2026-01-01 10:00:00.000000 UTC+abc", "ps1", "alice", "2026-01-01 10:00:00.000000 UTC")

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(os, "replace", full)
    path = tmp_path / ".autograder" / "attempts.json"
    with pytest.raises(AutograderError, match=re.escape(f"cannot write the attempts ledger {path}: the disk is full")):
        ledger.save()
    assert not list((tmp_path / ".autograder").iterdir())  # no temporary file left behind


def test_policy_counts_best_or_last_and_attempts_left(tmp_path):
    from autograder.attempts import Ledger, load_policy, standing

    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.AttemptsPolicy.limits = {'ex': 3}\nc.AttemptsPolicy.counts = {'pq': 'last'}\n"
    )
    policy = load_policy(tmp_path)
    ledger = Ledger(tmp_path)
    for assignment in ("ex", "pq"):
        for i, (status, score) in enumerate([("ok", 5.0), ("error", 0.0), ("ok", 3.0)]):
            a = ledger.add(f"s+{assignment}+{i}", assignment, "s", f"2026-01-01 10:00:0{i}.000000 UTC")
            a.state, a.status, a.score, a.max_score = "graded", status, score, 10.0
    ledger.save()
    ledger = Ledger(tmp_path)  # read back
    ex, pq = standing(ledger, policy, "ex", "s"), standing(ledger, policy, "pq", "s")
    assert (ex.used, ex.left, ex.counting, ex.score, ex.counted.number) == (2, 1, "best", 5.0, 1)  # error: not used
    assert (pq.used, pq.left, pq.counting, pq.score, pq.counted.number) == (2, None, "last", 3.0, 3)


def test_watch_help_shows_the_policy():
    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "watch", "--help"],
        cwd=Path(__file__).parents[1],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "c.AttemptsPolicy.limits" in proc.stdout and "this course: {'fix_the_pipeline': 5}" in proc.stdout


def _students_submit(course, tmp_path, names, answers=RIGHT):
    students = [Student(course, name, tmp_path) for name in names]
    for s in students:
        s.fetch(ASSIGNMENT)
        s.answer(ASSIGNMENT, answers)
    return students


@pytest.mark.full
@pytest.mark.sandbox
def test_sigkill_mid_grading_then_restart_grades_every_submission_once(course, tmp_path):
    students = _students_submit(course, tmp_path, ["s1", "s2", "s3", "s4"])
    for s in students:
        s.submit(ASSIGNMENT)
    ledger = course / ".autograder" / "attempts.json"
    service = Service(course, "--poll", "0.2", "--workers", "1")
    try:
        deadline = time.monotonic() + 120
        while not (ledger.exists() and '"state": "grading"' in ledger.read_text()):
            assert time.monotonic() < deadline, service.text()
            time.sleep(0.05)
        service.kill()
    finally:
        kill_session(service.proc.pid)
        service.fh.close()
    before = json.loads(ledger.read_text())["attempts"]
    assert any(a["state"] == "grading" for a in before)
    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "watch", "--once"],
        cwd=course,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    attempts = json.loads(ledger.read_text())["attempts"]
    inbound = sorted(p.name for p in (course / "exchange" / "mlops-bridge" / "inbound").iterdir())
    assert sorted(a["id"] for a in attempts) == inbound  # one record per submission, none twice
    assert {(a["student"], a["number"], a["state"], a["status"], a["score"], a["feedback"]) for a in attempts} == {
        (s.name, 1, "graded", "ok", 19.0, "released") for s in students
    }
    for s in students:
        assert s.feedback_count(ASSIGNMENT) == 1
    graded_lines = re.findall(r"watch: (s\d) practice_questions attempt 1: ok", proc.stderr)
    done_before = {a["student"] for a in before if a["feedback"] == "released"}
    assert sorted(graded_lines) == sorted({s.name for s in students} - done_before)


@pytest.mark.full
@pytest.mark.sandbox
def test_sigterm_finishes_the_attempt_in_progress(course, tmp_path):
    (student,) = _students_submit(course, tmp_path, ["solo"])
    service = Service(course, "--poll", "0.2")
    try:
        service.wait_for("watching")
        student.submit(ASSIGNMENT)
        ledger = course / ".autograder" / "attempts.json"
        deadline = time.monotonic() + 120
        while not (ledger.exists() and '"state": "grading"' in ledger.read_text()):
            assert time.monotonic() < deadline, service.text()
            time.sleep(0.05)
        service.signal(signal.SIGTERM)
        assert service.proc.wait(300) == 0
    finally:
        service.stop()
    (attempt,) = json.loads((course / ".autograder" / "attempts.json").read_text())["attempts"]
    assert (attempt["state"], attempt["score"], attempt["feedback"]) == ("graded", 19.0, "released")
    assert student.feedback_count(ASSIGNMENT) == 1
    assert "SIGTERM: finishing the attempts in progress" in service.text()


@pytest.mark.full
@pytest.mark.sandbox
def test_exercise_feedback_names_failed_checks_and_a_too_soon_attempt_is_refused(tmp_path):
    """fix_the_pipeline under the course's own policy (5 attempts, 60 s apart): the released (broken) code submitted
    as is; the feedback lists every failed check with its message and no hidden-test source; an attempt right after
    it is refused without using one up."""
    exercise = "fix_the_pipeline"
    course = make_course(tmp_path, assignments=(exercise,))
    eve = Student(course, "eve", tmp_path)
    eve.fetch(exercise)
    service = Service(course, "--poll", "0.2")
    try:
        service.wait_for("watching")
        eve.submit(exercise)
        eve.wait_feedback(exercise, 1, timeout=600)
        eve.submit(exercise)
        eve.wait_feedback(exercise, 2)
        first, second = (page for _, page in sorted(eve.fetch_feedback(exercise).items()))
    finally:
        assert service.stop() == 0
    assert "Your attempt 1" in first and "Attempts left: 4 of 5" in first and "Checks of fix_the_pipeline" in first
    failed = re.findall(r"❌ (\S+): 0/\d+ — (\w+Error: [^❌✅]{10,})", first)
    assert len(failed) >= 5, first[:3000]
    leaked = [line for line in hidden_lines(course, exercise) if line in first or line in second]
    assert not leaked, leaked[:3]
    assert "Your attempt 2" in second and "This attempt was not graded" in second
    assert "attempts must be at least 60 s apart" in second and "it did not use up an attempt" in second
    assert "Attempts left: 4 of 5" in second


def test_after_the_due_date_attempts_are_flagged_late_or_refused_and_solutions_are_released(tmp_path):
    """nbgrader's due date (in the gradebook): an attempt after it is graded and flagged late under 'grade', refused
    under 'refuse'; the practice questions' solutions (unlimited attempts) appear in the feedback once it passed."""
    import datetime as dt

    from nbgrader.api import Gradebook

    from autograder.attempts import Ledger
    from autograder.course import Course
    from autograder.feedback import attempt_summary
    from autograder.watch import Service as WatchService

    course = make_course(tmp_path, policy="c.AttemptsPolicy.after_due = {'fix_the_pipeline': 'refuse'}")
    due = dt.datetime(2026, 1, 1, 12, 0, 0)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=due)
        gb.update_or_create_assignment("fix_the_pipeline", duedate=due)
    service = WatchService(course)
    service.course, service.ledger = Course.open(course), Ledger(course)
    before = service.ledger.add("a+x+1", ASSIGNMENT, "a", "2026-01-01 11:59:00.000000 UTC")
    after = service.ledger.add("a+x+2", ASSIGNMENT, "a", "2026-01-01 12:01:00.000000 UTC")
    late_exercise = service.ledger.add("a+y+1", "fix_the_pipeline", "a", "2026-01-02 09:00:00.000000 UTC")
    assert (service.decide(before), before.late) == (None, False)
    assert (service.decide(after), after.late) == (None, True)
    assert service.decide(late_exercise) == (
        "not graded: submitted after the due date, and this assignment takes no late attempts"
    )
    after.state, after.status, after.score, after.max_score = "graded", "ok", 3.0, 19.0
    summary = attempt_summary(
        service.course, ASSIGNMENT, "a", attempt=after, ledger=service.ledger, policy=service.policy
    )
    assert "## Your attempt 2 (late)" in summary and "Attempts left: **unlimited**" in summary
    assert "## Step-by-step solutions" in summary and all(step in summary for q in BANK for step in q.solution)
