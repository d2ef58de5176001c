"""Grade on submit: a service that grades every new submission as it lands in the exchange and releases its feedback.

    python -m autograder watch                         # every released assignment, until stopped (SIGTERM, Ctrl-C)
    python -m autograder watch fix_the_pipeline        # only these assignments
    python -m autograder watch --once                  # grade what is waiting, then exit (cron, tests)
    python -m autograder watch --scheduler tcp://10.0.0.5:8786   # grade on a Dask cluster

Run it from the course directory after releasing an assignment. For each submission a student makes with
``nbgrader submit`` (or JupyterLab's Assignments tab) it:

1. records it in the attempts ledger (``.autograder/attempts.json``, see ``python -m autograder attempts``) and
   applies the attempts policy of ``nbgrader_config.py`` (an attempt over the limit or too soon is not graded);
2. collects it with nbgrader's exchange (``ExchangeCollect``, as ``nbgrader collect`` would) into
   ``submitted/<student>/<assignment>/``;
3. grades it with the sandboxed engine (``autograder.grade.grade_assignment``), which writes the gradebook and
   ``autograded/``;
4. writes its feedback (``autograder.feedback``: results without hidden-test source, plus the attempt number, the
   attempts left, the score that counts, and for practice questions the misconception, hint or why-it-is-right of
   every answer) and releases it to that student alone (``ExchangeReleaseFeedback``), so that
   ``nbgrader fetch_feedback ASSIGNMENT`` (or "Fetch Feedback" in JupyterLab) shows it.

Each student's attempts are graded one after the other, in submission order; different students' at once, one
grading thread per worker. While no more students wait than there are threads, each is graded alone (an infinite
loop delays nobody else); under a burst, a free thread takes up to ``MAX_BATCH`` waiting students in one
``grade_assignment`` call, so twenty arriving at once are served faster than one ``nbgrader autograde`` run. A
submission that cannot be graded (invalid notebook, infinite loop, crash) gets its status and a feedback page saying
what happened; it never blocks the others.

Safety: the ledger is written atomically after each step, so a service killed even with SIGKILL and started again
grades every submission exactly once (an attempt caught mid-grading is graded again from the start; nothing is
counted twice). SIGTERM or Ctrl-C finishes the attempts being graded, releases their feedback and exits 0. A second
service on the same course refuses to start (a lock on ``.autograder/watch.lock``). An unreadable exchange or a full
disk stops the service with an error naming the path (exit 2).

Polling, not inotify/watchdog: the exchange may be a network file system shared with a JupyterHub (where inotify
sees no remote writes), a directory listing per second is negligible next to grading, and it needs no extra
dependency.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import html
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from .course import ENGINE_DIR
from .exceptions import AutograderError, CollectError

HELP = "grade every new submission as it arrives in the exchange and release its feedback (grade on submit)"
LOCK_FILE = f"{ENGINE_DIR}/watch.lock"
#: nbgrader's submission secret is ``secrets.token_hex(64)``, written last by ``nbgrader submit``: a submission
#: folder whose secret is complete has been fully copied into the exchange.
SECRET_LENGTH = 128
#: the most students graded together by one grading thread when more are waiting than there are threads
MAX_BATCH = 5


def add_arguments(parser) -> None:
    parser.add_argument(
        "assignments",
        nargs="*",
        metavar="ASSIGNMENT",
        help="assignments to watch (default: every assignment released to the exchange)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="grade the submissions waiting now (and those arriving meanwhile), then exit",
    )
    from .engines import add_engine_arguments

    add_engine_arguments(parser)
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run student code WITHOUT the bubblewrap sandbox (trusted submissions only)",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between two looks at the exchange (default: AttemptsPolicy.poll_interval, 1)",
    )
    parser.add_argument(
        "--course-dir",
        metavar="PATH",
        default=None,
        help="the course directory (default: the nearest folder holding nbgrader_config.py)",
    )


def epilog() -> str:
    from .attempts import policy_help

    return policy_help()


def run(args) -> int:
    if args.workers is not None and args.workers < 1:
        raise AutograderError(f"--workers must be at least 1 (got {args.workers})")
    service = Service(
        args.course_dir,
        args.assignments or None,
        workers=args.workers,
        scheduler=args.scheduler,
        sandbox=not args.no_sandbox,
        poll=args.poll,
    )
    return service.run(once=args.once)


def say(message: str) -> None:
    print(f"watch: {message}", file=sys.stderr, flush=True)


class ServiceLock:
    """An exclusive ``flock`` on ``<course>/.autograder/watch.lock`` for the service's lifetime. The kernel drops it
    when the process dies (even by SIGKILL), so a stale lock never blocks a restart."""

    def __init__(self, root: Path):
        self.path = root / LOCK_FILE
        self.fh = None

    def __enter__(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.path, "a+")
        except OSError as exc:
            raise AutograderError(f"cannot create the service lock {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "unknown"
            self.fh.close()
            raise AutograderError(
                f"another grading service is already running on this course (pid {holder}, "
                f"lock {self.path}): stop it first; two services would grade submissions twice"
            ) from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(f"{os.getpid()}\n")
        self.fh.flush()
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(OSError):
            self.fh.seek(0)
            self.fh.truncate()
        self.fh.close()


class Service:
    """The grading service on the course at ``root`` (see the module docstring)."""

    def __init__(self, root=None, assignments=None, *, workers=None, scheduler=None, sandbox=True, poll=None):
        from .attempts import load_policy
        from .course import find_course_root

        self.root = find_course_root(root)
        self.only = list(assignments) if assignments else None
        self.workers, self.scheduler, self.sandbox = workers, scheduler, sandbox
        self.policy = load_policy(self.root)
        self.poll = float(poll if poll is not None else self.policy.poll_interval)
        self.stopping = False
        self.lock = threading.RLock()  # the ledger and the policy decisions: one thread at a time
        self.busy: dict = {}  # (assignment, student) -> Future of the attempt being handled
        self._seen_at: dict[str, float] = {}  # attempt id -> monotonic time it was first seen (latency lines)

    # ------------------------------------------------------------------------------------------ set-up
    def _open(self):
        from .attempts import Ledger
        from .course import Course

        self.course = Course.open(self.root)
        # nbgrader's API sets the assignment and student on its CourseDirectory: one of its own, not the course's
        self.api = Course.open(self.root).api()
        if not self.api.exchange_root:
            raise AutograderError("nbgrader's exchange is not usable here (Exchange.root unset or not a folder)")
        self.course_id = self.api.coursedir.course_id
        if not self.course_id:
            raise AutograderError("CourseDirectory.course_id is not set in nbgrader_config.py: the exchange needs it")
        self.exchange = Path(self.api.exchange_root) / self.course_id
        self.ledger = Ledger(self.root)
        self._warm_up()
        if self.only:
            from .gradebook import check_gradebook

            for assignment in self.only:
                check_gradebook(self.course, assignment)

    def _warm_up(self) -> None:
        """Pay the one-off costs before the first submission, not during it: the feedback converter's imports
        (nbconvert, its templates) and the engine's forkserver, which imports the grading unit once for every later
        worker. A few seconds at start-up instead of in the first student's wait."""
        import nbformat
        import nbgrader.converters
        from nbconvert import HTMLExporter

        here = Path(nbgrader.converters.__file__).parent.parent / "server_extensions" / "formgrader"
        exporter = HTMLExporter(
            template_name="feedback",
            extra_template_basedirs=[str(here / "templates")],
            extra_template_paths=[str(here / "static" / "node_modules" / "bootstrap" / "dist" / "css")],
        )
        nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_markdown_cell("**warm** `up`"), nbformat.v4.new_code_cell("1")]
        )
        info = {"notebook": "warm-up", "assignment": "", "student": "", "score": 0, "max_score": 0, "late_penalty": 0}
        with contextlib.suppress(Exception):  # only a warm-up: the real feedback reports its own errors
            exporter.from_notebook_node(nb, resources={"nbgrader": info})
        from .engines import get_engine

        if not self.scheduler:
            with get_engine("local", workers=1) as engine:
                list(engine.map(abs, [0]))
        else:  # an unreachable cluster is said now (EngineError names the address), not at every attempt
            get_engine("dask", scheduler=self.scheduler).close()

    def _signals(self):
        def stop(signum, frame):
            if self.stopping and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stopping = True
            say(f"{signal.Signals(signum).name}: finishing the attempts in progress, then exiting")

        old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
        return old

    # ------------------------------------------------------------------------------------------ the loop
    def run(self, once: bool = False) -> int:
        with ServiceLock(self.root):
            self._open()
            old = self._signals()
            from concurrent.futures import ThreadPoolExecutor

            from .engines import default_workers

            self.threads = self.workers or (8 if self.scheduler else default_workers())
            self.pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="grading")
            try:
                names = ", ".join(self.only) if self.only else "every released assignment"
                say(
                    f"watching {self.exchange / 'inbound'} for {names}"
                    + (" (once)" if once else f", every {self.poll:g} s; stop with SIGTERM or Ctrl-C")
                )
                while not self.stopping:
                    worked = self.step()
                    if once and not worked:
                        break
                    if not worked:
                        self._sleep(self.poll)
                    elif self.busy:
                        self._sleep(min(self.poll, 0.2))
                # SIGTERM: the attempts in progress finish (grading, feedback, release), nothing new starts
                for future in list(self.busy.values()):
                    future.result()
            finally:
                self.pool.shutdown(wait=True, cancel_futures=True)
                for s, handler in old.items():
                    signal.signal(s, handler)
        say("stopped")
        return 0

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, seconds))

    def step(self) -> bool:
        """One round: record new submissions, start grading every student's oldest waiting attempt (one at a time per
        student), handle finished ones. True if anything was done."""
        new = self.scan()
        with self.lock:
            for attempt_id, student, assignment, timestamp in new:
                self.ledger.add(attempt_id, assignment, student, timestamp)
                self._seen_at.setdefault(attempt_id, time.monotonic())
            if new:
                self.ledger.save()
            waiting = [
                a
                for a in self.ledger.attempts
                if a.state in ("queued", "grading") or (a.state in ("graded", "refused") and a.feedback == "pending")
            ]
        worked = bool(new)
        if new:
            say(
                f"{len(new)} new submission(s): {', '.join(f'{s} {a}' for _, s, a, _ in new)}; "
                f"{len(waiting)} waiting, {len(self.busy)} being graded"
            )
        for key, future in list(self.busy.items()):
            if future.done():
                del self.busy[key]
                future.result()  # an instructor-side error (AutograderError) stops the service here
        ready: dict[str, list] = {}  # assignment -> the oldest waiting attempt of each student not being handled
        for attempt in waiting:
            key = (attempt.assignment, attempt.student)
            if (
                self.stopping
                or key in self.busy
                or any(a.student == attempt.student for a in ready.get(attempt.assignment, []))
            ):
                continue
            ready.setdefault(attempt.assignment, []).append(attempt)
        # a thread takes work only when it is free: what arrives meanwhile waits, and is then graded in batches
        free = self.threads - len({id(f) for f in self.busy.values()})
        for attempts in ready.values():
            if free <= 0:
                break
            for batch in self.batches(attempts, free)[:free]:
                future = self.pool.submit(self.handle, batch)
                for attempt in batch:
                    self.busy[(attempt.assignment, attempt.student)] = future
                free -= 1
                worked = True
        return worked or bool(self.busy)

    @staticmethod
    def batches(attempts: list, free: int) -> list[list]:
        """Split the attempts ready to be handled into one batch per free grading thread, at most MAX_BATCH each.

        While there are no more waiting students than threads (a class submitting at its own pace), every attempt
        is graded alone, so a submission that loops until its time limit delays nobody else. Under a burst (twenty
        at once), grading students together in one ``grade_assignment`` call saves that call's fixed cost per
        student (opening the course and gradebook, starting a worker, writing the statuses), and feedback follows
        every MAX_BATCH students instead of after the whole burst."""
        size = min(MAX_BATCH, max(1, -(-len(attempts) // free)))
        return [attempts[i : i + size] for i in range(0, len(attempts), size)]

    def handle(self, attempts: list) -> None:
        """In a grading thread: decide, collect, grade, record, write and release the feedback of some attempts of
        one assignment (each of a different student).

        An instructor-side problem (no gradebook, no sandbox: AutograderError) or a file-system error (unreadable
        exchange, full disk: OSError, turned into an error naming the path) stops the service: the attempt stays
        in the ledger and is handled again at the next start, instead of every submission being marked failed."""
        try:
            self._handle(attempts)
        except OSError as exc:
            why = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            where = exc.filename or self.root
            raise AutograderError(f"{where}: {why} (while handling {', '.join(a.id for a in attempts)})") from exc

    def _handle(self, attempts: list) -> None:
        to_grade = []
        for attempt in attempts:
            if attempt.state in ("graded", "refused"):  # graded by a previous run killed before its feedback
                self.release(attempt)
                continue
            if attempt.state == "queued":
                with self.lock:
                    why = self.decide(attempt)
                    if why:
                        attempt.state, attempt.status, attempt.reason = "refused", "refused", why
                    else:
                        attempt.state = "grading"
                    self.ledger.save()
                if why:
                    self.release(attempt)
                    continue
            try:
                self.collect(attempt)
            except CollectError as exc:
                with self.lock:
                    attempt.state, attempt.status = "graded", "error"
                    attempt.reason = f"could not be collected from the exchange: {exc}"
                    self.ledger.save()
                self.release(attempt)
                continue
            to_grade.append(attempt)
        if not to_grade:
            return
        started = time.monotonic()
        results = self._grade(to_grade[0].assignment, [a.student for a in to_grade])
        for attempt in to_grade:
            result = results.get(attempt.student)
            attempt.extra["grading_seconds"] = round(time.monotonic() - started, 3)
            with self.lock:
                attempt.state, attempt.graded_at = "graded", time.strftime("%Y-%m-%dT%H:%M:%S%z")
                if result is None:
                    attempt.status, attempt.reason = "error", "the grader returned no result for this submission"
                else:
                    attempt.status, attempt.reason = result.status, result.reason
                    attempt.score, attempt.max_score = result.score, result.max_score
                    attempt.seconds = round(result.seconds, 3)
                self.ledger.save()
        for attempt in to_grade:
            self.release(attempt)
        for attempt in to_grade:
            self.restore_counted(attempt)

    def _grade(self, assignment: str, students: list[str]) -> dict:
        """``grade_assignment`` for these students on one worker (the grading threads are the parallelism):
        student -> GradeResult."""
        from .grade import grade_assignment

        results = grade_assignment(
            assignment,
            root=self.root,
            students=students,
            workers=1,
            scheduler=self.scheduler,
            sandbox=self.sandbox,
            progress=False,
        )
        return {r.student_id: r for r in results}

    def restore_counted(self, attempt) -> None:
        """Under 'best', keep the gradebook on the attempt that counts: when this attempt scored lower than an
        earlier one, that earlier attempt is collected and graded again (the gradebook, export and formgrader then
        show the score that counts). Its feedback was released already and is not released again."""
        from .attempts import standing

        with self.lock:
            s = standing(self.ledger, self.policy, attempt.assignment, attempt.student)
        if s.counted is None or s.counted is attempt or not attempt.uses_attempt or self.stopping:
            return
        self.collect(s.counted)
        self._grade(attempt.assignment, [attempt.student])
        say(f"{attempt.student} {attempt.assignment}: gradebook back on attempt {s.counted.number} (the best one)")

    # ------------------------------------------------------------------------------------------ the exchange
    def watched(self) -> set[str] | None:
        if self.only:
            return set(self.only)
        outbound = self.exchange / "outbound"
        try:
            return {p.name for p in outbound.iterdir() if p.is_dir()} if outbound.exists() else set()
        except OSError as exc:
            raise AutograderError(f"cannot read the exchange folder {outbound}: {exc.strerror or exc}") from exc

    def scan(self) -> list[tuple[str, str, str, str]]:
        """New, complete submissions in the inbound folder: (folder name, student, assignment, timestamp), oldest
        first. Folder names follow nbgrader's layout: ``student+assignment+timestamp[+random]``."""
        inbound = self.exchange / "inbound"
        if not inbound.exists():
            return []  # nothing released or submitted yet
        watched = self.watched()
        try:
            entries = sorted(os.listdir(inbound))
        except OSError as exc:
            raise AutograderError(
                f"cannot read the exchange's inbound folder {inbound}: {exc.strerror or exc}"
            ) from exc
        from .attempts import parse_timestamp

        found = []
        for name in entries:
            parts = name.rsplit("+", 3) if name.count("+") >= 3 else name.rsplit("+", 2)
            if len(parts) < 3 or self.ledger.get(name) is not None:
                continue
            student, assignment, timestamp = parts[0], parts[1], parts[2]
            if assignment not in watched or parse_timestamp(timestamp) is None:
                continue
            try:
                secret = (inbound / name / "submission_secret.txt").read_text().strip()
            except OSError:
                continue  # still being copied by `nbgrader submit`
            if len(secret) != SECRET_LENGTH:
                continue
            found.append((name, student, assignment, timestamp))
        found.sort(key=lambda f: (parse_timestamp(f[3]), f[0]))
        return found

    def collect(self, attempt) -> None:
        """Copy this one submission into ``submitted/<student>/<assignment>/`` with nbgrader's ExchangeCollect
        (its copy rules: ignore patterns, size limits, owner check), replacing the student's previous one."""
        from nbgrader.apps.api import capture_log
        from nbgrader.exchange.default import ExchangeCollect

        class CollectOne(ExchangeCollect):
            """nbgrader's collect restricted to one inbound folder (nbgrader's picks each student's latest)."""

            def init_src(self):
                super().init_src()
                self.src_records = [self._path_to_record(os.path.join(self.inbound_path, attempt.id))]

        dest = Path(
            self.course.coursedir.format_path(
                self.course.coursedir.submitted_directory, attempt.student, attempt.assignment
            )
        )
        if dest.is_symlink():
            dest.unlink()
        elif dest.exists():
            shutil.rmtree(dest)
        app = CollectOne(coursedir=self._coursedir(attempt), authenticator=self.api.authenticator, parent=self.api)
        app.update = True
        result = capture_log(app)
        if not result.get("success"):
            why = (result.get("error") or result.get("log") or "").strip().splitlines()
            raise CollectError(why[-1] if why else "nbgrader's collect failed")
        if not dest.is_dir():
            raise CollectError(f"nbgrader's collect wrote nothing to {dest}")

    def _coursedir(self, attempt):
        """A CourseDirectory of its own for one attempt (nbgrader's API sets assignment and student on a shared one,
        which grading threads cannot share)."""
        from nbgrader.coursedir import CourseDirectory

        coursedir = CourseDirectory(config=self.course.config)
        coursedir.assignment_id, coursedir.student_id = attempt.assignment, attempt.student
        return coursedir

    def release_feedback(self, attempt) -> None:
        """nbgrader's ExchangeReleaseFeedback for this student and assignment (``nbgrader release_feedback``)."""
        from nbgrader.apps.api import capture_log
        from nbgrader.exchange.default import ExchangeReleaseFeedback

        app = ExchangeReleaseFeedback(
            coursedir=self._coursedir(attempt), authenticator=self.api.authenticator, parent=self.api
        )
        result = capture_log(app)
        if not result.get("success"):
            why = (result.get("error") or result.get("log") or "").strip().splitlines()
            raise AutograderError(f"nbgrader release_feedback failed: {why[-1] if why else 'no log'}")

    # ------------------------------------------------------------------------------------------ policy, grading
    def decide(self, attempt) -> str | None:
        """Why ``attempt`` is not graded under the policy, or None to grade it."""
        from .attempts import parse_timestamp, past_due, standing

        s = standing(self.ledger, self.policy, attempt.assignment, attempt.student)
        if s.limit is not None and s.used >= s.limit:
            return (
                f"not graded: you have used all {s.limit} graded attempts of {attempt.assignment}; "
                "the score that counts stays as it was"
            )
        when = parse_timestamp(attempt.timestamp)
        interval = self.policy.interval(attempt.assignment)
        earlier = [a for a in self.ledger.of(attempt.assignment, attempt.student) if a.uses_attempt]
        if interval > 0 and earlier and when is not None:
            previous = parse_timestamp(earlier[-1].timestamp)
            if previous is not None and (when - previous).total_seconds() < interval:
                wait = interval - (when - previous).total_seconds()
                return (
                    f"not graded: submitted {(when - previous).total_seconds():.0f} s after your previous graded "
                    f"attempt; attempts must be at least {interval:g} s apart (submit again in {wait:.0f} s or "
                    "later); it did not use up an attempt"
                )
        if when is not None and past_due(self.course, attempt.assignment, when):
            attempt.late = True
            if self.policy.late_action(attempt.assignment) == "refuse":
                return "not graded: submitted after the due date, and this assignment takes no late attempts"
        return None

    # ------------------------------------------------------------------------------------------ feedback
    def release(self, attempt) -> None:
        """Write the attempt's feedback and release it to its student (keyed to that submission's secret)."""
        from .attempts import standing

        started = time.monotonic()
        try:
            pages = self.write_feedback(attempt)
            self.release_feedback(attempt)
            feedback = "released"
            attempt.extra["feedback_seconds"] = round(time.monotonic() - started, 3)
        except OSError as exc:
            why = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise AutograderError(
                f"cannot write feedback at {getattr(exc, 'filename', None) or self.root}: {why}"
            ) from exc
        except AutograderError as exc:
            feedback = f"failed: {exc}"[:500]
            pages = []
        with self.lock:
            attempt.feedback = feedback
            self.ledger.save()
        s = standing(self.ledger, self.policy, attempt.assignment, attempt.student)
        score = "" if attempt.score is None else f" {attempt.score:g}/{attempt.max_score:g}"
        counts = "-" if s.score is None else f"{s.score:g}"
        seen = self._seen_at.pop(attempt.id, None)
        latency = "" if seen is None else f", {time.monotonic() - seen:.1f} s after it arrived"
        if attempt.extra:
            latency += " (" + ", ".join(f"{k.split('_')[0]} {v:.1f} s" for k, v in attempt.extra.items()) + ")"
        say(
            f"{attempt.student} {attempt.assignment} attempt {attempt.number}: {attempt.status}{score}"
            f"{' (late)' if attempt.late else ''}; counts {counts}, {s.describe_left()} left; feedback "
            f"{attempt.feedback if attempt.feedback != 'released' else f'released ({len(pages)} page(s))'}{latency}"
            + (f" - {attempt.reason}" if attempt.reason and attempt.status != "ok" else "")
        )

    def write_feedback(self, attempt) -> list[Path]:
        """feedback/<student>/<assignment>/: nbgrader's feedback of the graded notebooks (with the attempt's summary
        on top), or, for notebooks that could not be rendered (refused, not executed), a page saying what happened.
        The submission's timestamp and secret go with them, as nbgrader's release_feedback needs."""
        from .feedback import attempt_summary, generate_feedback

        coursedir = self.course.coursedir
        folder = Path(coursedir.format_path(coursedir.feedback_directory, attempt.student, attempt.assignment))
        if folder.exists():
            shutil.rmtree(folder)
        pages: list[Path] = []
        with self.lock:
            summary = attempt_summary(
                self.course,
                attempt.assignment,
                attempt.student,
                attempt=attempt,
                ledger=self.ledger,
                policy=self.policy,
            )
        if attempt.state == "graded" and attempt.status not in ("missing",):
            try:
                pages = generate_feedback(
                    attempt.assignment, root=self.root, students=[attempt.student], preambles={attempt.student: summary}
                )
            except AutograderError as exc:
                attempt.reason = attempt.reason or f"feedback could not be rendered: {exc}"
                pages = []
        if folder.exists():
            for stale in ("timestamp.txt", "submission_secret.txt"):
                with contextlib.suppress(FileNotFoundError):
                    (folder / stale).unlink()
        folder.mkdir(parents=True, exist_ok=True)
        inbound = self.exchange / "inbound" / attempt.id
        for name in ("timestamp.txt", "submission_secret.txt"):
            shutil.copyfile(inbound / name, folder / name)
        rendered = {p.stem for p in pages}
        for notebook in self._notebook_names(attempt.assignment):
            if notebook not in rendered:
                path = folder / f"{notebook}.html"
                path.write_text(status_page(attempt, notebook, summary))
                pages.append(path)
        return pages

    def _notebook_names(self, assignment: str) -> list[str]:
        from nbgrader.api import Gradebook

        with Gradebook(self.course.db_url, self.course.course_id or None) as gb:
            return [nb.name for nb in gb.find_assignment(assignment).notebooks]


def status_page(attempt, notebook: str, summary_markdown: str) -> str:
    """A self-contained HTML feedback page for a notebook that has no rendered feedback (refused, not executed)."""
    from .feedback import STATUS_WORDS

    words = STATUS_WORDS.get(attempt.status, "")
    reason = html.escape(attempt.reason or "")
    from nbconvert.filters.markdown import markdown2html

    summary = markdown2html(summary_markdown)  # the summary's dynamic parts are escaped where it is built
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(notebook)} feedback</title>"
        f"</head><body>\n<h1>{html.escape(attempt.assignment)} / {html.escape(notebook)}: attempt "
        f"{attempt.number}</h1>\n<p><b>Status: {html.escape(attempt.status)}</b>. {html.escape(words)}</p>\n"
        f"<p>{reason}</p>\n<div>{summary}</div>\n</body></html>\n"
    )
