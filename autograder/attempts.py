"""Every graded attempt of every student, and the course's attempts policy.

    python -m autograder attempts fix_the_pipeline                  # one line per attempt, every student
    python -m autograder attempts fix_the_pipeline --student alice  # alice's attempts only
    python -m autograder attempts fix_the_pipeline --json

The grading service (``python -m autograder watch``) keeps one record per submission it saw in the exchange in
``.autograder/attempts.json`` at the course root (the *ledger*): which attempt of the student it was, whether it
was graded or refused (and why), its status and score, whether it was late, and whether its feedback was released.
This verb lists them, with the score that counts and the attempts left under the policy.

The policy is set per assignment in ``nbgrader_config.py`` (traitlets configuration, like nbgrader's own settings)::

    c.AttemptsPolicy.limits = {"fix_the_pipeline": 5}          # graded attempts; an assignment not named: unlimited
    c.AttemptsPolicy.min_interval = {"fix_the_pipeline": 60}   # seconds between two graded attempts of a student
    c.AttemptsPolicy.counts = {"practice_questions": "last"}   # which attempt counts: "best" (default) or "last"
    c.AttemptsPolicy.after_due = {"fix_the_pipeline": "grade"} # after the due date: "grade" (flagged late) or "refuse"

An attempt over the limit, or sooner than ``min_interval`` after the student's previous graded attempt, is not
graded: its feedback says so and why. An attempt the *grader* failed on (status ``error``) does not use up one of
the student's attempts. The due date is nbgrader's (``nbgrader generate_assignment --duedate`` / the gradebook):
a late attempt is graded and flagged late, and nbgrader's late-penalty plugin (``LateSubmissionPlugin``) applies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .course import ENGINE_DIR
from .exceptions import AutograderError

HELP = "list every attempt of an assignment per student (graded, refused, score that counts, attempts left)"

LEDGER_FILE = "attempts.json"
#: statuses of a graded attempt that do not use up one of the student's attempts: the grader, not the student, failed
NOT_COUNTED = ("error",)


def _policy_class():
    """Built lazily (traitlets is light, but keep the pattern of the package: imports on use)."""
    from traitlets import Dict, Enum, Float, Int
    from traitlets.config import Configurable

    class AttemptsPolicy(Configurable):
        """How many graded attempts a student gets, how often, which counts, and what happens after the due date."""

        limits = Dict(
            value_trait=Int(),
            default_value={},
            help=(
                "Graded attempts per student, per assignment, e.g. {'fix_the_pipeline': 5}. An assignment not named "
                "here has unlimited attempts. An attempt over the limit is not graded; its feedback says so."
            ),
        ).tag(config=True)
        min_interval = Dict(
            value_trait=Float(),
            default_value={},
            help=(
                "Minimum seconds between two graded attempts of one student, per assignment, e.g. "
                "{'fix_the_pipeline': 60}. A sooner attempt is not graded; its feedback says when to submit again."
            ),
        ).tag(config=True)
        counts = Dict(
            value_trait=Enum(["best", "last"]),
            default_value={},
            help=("Which graded attempt's score counts, per assignment: 'best' or 'last' (default: default_counts)."),
        ).tag(config=True)
        default_counts = Enum(
            ["best", "last"], default_value="best", help=("Which attempt counts for an assignment not named in counts.")
        ).tag(config=True)
        after_due = Dict(
            value_trait=Enum(["grade", "refuse"]),
            default_value={},
            help=(
                "After nbgrader's due date of the assignment: 'grade' (graded and flagged late; nbgrader's "
                "LateSubmissionPlugin applies its penalty) or 'refuse' (not graded). Default: grade."
            ),
        ).tag(config=True)
        poll_interval = Float(
            1.0, help="Seconds between two looks at the exchange's inbound folder (python -m autograder watch)."
        ).tag(config=True)

        def limit(self, assignment: str) -> int | None:
            value = self.limits.get(assignment)
            return None if value is None or value <= 0 else int(value)

        def interval(self, assignment: str) -> float:
            return float(self.min_interval.get(assignment, 0.0))

        def counting(self, assignment: str) -> str:
            return self.counts.get(assignment, self.default_counts)

        def late_action(self, assignment: str) -> str:
            return self.after_due.get(assignment, "grade")

    return AttemptsPolicy


def policy_help() -> str:
    """The policy's settings as ``--help`` shows them: traitlets' help of each trait, and this course's values
    (when run inside a course directory)."""
    import textwrap

    cls = _policy_class()
    current = None
    try:
        from .course import find_course_root

        current = load_policy(find_course_root())
    except Exception:  # noqa: BLE001 - --help outside a course, or a broken config: defaults only
        pass
    lines = ["attempts policy (set per assignment in nbgrader_config.py; 'this course' = the one here):"]
    for name in ("limits", "min_interval", "counts", "default_counts", "after_due", "poll_interval"):
        trait = cls.class_traits()[name]
        value = f"; this course: {getattr(current, name)!r}" if current is not None else ""
        lines.append(f"  c.AttemptsPolicy.{name} = ... (default {trait.default()!r}{value})")
        lines += textwrap.wrap(trait.help, 100, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def load_policy(root):
    """The :class:`AttemptsPolicy` configured in ``<root>/nbgrader_config.py`` (defaults when it sets nothing)."""
    from .course import load_config

    return _policy_class()(config=load_config(root))


# ----------------------------------------------------------------------------------------------- the ledger
@dataclass
class Attempt:
    """One submission seen in the exchange. ``id`` is its inbound folder name (student+assignment+time+random):
    unique, so a submission is never recorded (or graded) twice.

    state: ``queued`` (seen), ``grading`` (collected, being graded), ``graded``, ``refused`` (not graded: policy).
    feedback: ``pending``, ``released``, or ``failed: why``.
    """

    id: str
    assignment: str
    student: str
    timestamp: str
    number: int
    state: str = "queued"
    status: str = ""
    score: float | None = None
    max_score: float | None = None
    reason: str = ""
    late: bool = False
    graded_at: str = ""
    feedback: str = "pending"
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def graded(self) -> bool:
        return self.state == "graded"

    @property
    def uses_attempt(self) -> bool:
        return self.graded and self.status not in NOT_COUNTED


class Ledger:
    """``.autograder/attempts.json``: a list of :class:`Attempt` records, rewritten atomically (temporary file,
    fsync, rename) after every change, so that a service killed at any moment leaves either the old or the new file,
    never half.

    Our own file rather than nbgrader's gradebook: the gradebook keeps one submission per student and assignment
    (the one that counts); every attempt and its state must survive a crash of the service.
    """

    def __init__(self, root):
        self.path = Path(root) / ENGINE_DIR / LEDGER_FILE
        self.attempts: list[Attempt] = []
        self.load()

    def load(self) -> None:
        if not self.path.exists():
            self.attempts = []
            return
        try:
            data = json.loads(self.path.read_text())
        except OSError as exc:
            raise AutograderError(f"cannot read the attempts ledger {self.path}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise AutograderError(
                f"the attempts ledger {self.path} is not valid JSON ({exc}); it is only ever "
                "replaced whole, so it was edited by hand: fix or remove it"
            ) from exc
        known = set(Attempt.__dataclass_fields__)
        self.attempts = [Attempt(**{k: v for k, v in a.items() if k in known}) for a in data.get("attempts", [])]

    def save(self) -> None:
        data = {"version": 1, "attempts": [asdict(a) for a in self.attempts]}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as fh:
                fh.write(json.dumps(data, indent=1) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            with contextlib.suppress(OSError):  # make the rename itself durable
                fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            why = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise AutograderError(f"cannot write the attempts ledger {self.path}: {why}") from exc

    def get(self, attempt_id: str) -> Attempt | None:
        return next((a for a in self.attempts if a.id == attempt_id), None)

    def add(self, attempt_id: str, assignment: str, student: str, timestamp: str) -> Attempt:
        number = 1 + sum(a.assignment == assignment and a.student == student for a in self.attempts)
        attempt = Attempt(id=attempt_id, assignment=assignment, student=student, timestamp=timestamp, number=number)
        self.attempts.append(attempt)
        return attempt

    def of(self, assignment: str, student: str | None = None) -> list[Attempt]:
        return [a for a in self.attempts if a.assignment == assignment and (student is None or a.student == student)]


@dataclass
class Standing:
    """Where a student stands on an assignment under the policy, after their graded attempts so far."""

    used: int
    limit: int | None
    counting: str
    counted: Attempt | None

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    @property
    def score(self) -> float | None:
        return None if self.counted is None else self.counted.score

    def describe_left(self) -> str:
        return "unlimited" if self.left is None else str(self.left)


def standing(ledger: Ledger, policy, assignment: str, student: str) -> Standing:
    """Attempts used and left, and the attempt whose score counts (best or last, per the policy)."""
    counted_attempts = [a for a in ledger.of(assignment, student) if a.uses_attempt]
    counting = policy.counting(assignment)
    counted = None
    if counted_attempts:
        if counting == "last":
            counted = counted_attempts[-1]
        else:  # best; the earliest of equal scores
            counted = max(counted_attempts, key=lambda a: (a.score or 0.0, -a.number))
    return Standing(used=len(counted_attempts), limit=policy.limit(assignment), counting=counting, counted=counted)


def parse_timestamp(text: str) -> dt.datetime | None:
    """nbgrader's submission timestamp (``timestamp.txt``, the inbound folder name) as an aware UTC datetime."""
    from nbgrader.utils import parse_utc

    try:
        value = parse_utc(text)
    except Exception:  # noqa: BLE001 - an unparsable timestamp is treated as "unknown"
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def due_date(course, assignment: str) -> dt.datetime | None:
    """nbgrader's due date of ``assignment`` (aware, UTC), or None."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url, course.course_id or None) as gb:
        try:
            due = gb.find_assignment(assignment).duedate
        except MissingEntry:
            return None
    if due is None:
        return None
    return due.replace(tzinfo=dt.timezone.utc) if due.tzinfo is None else due


def past_due(course, assignment: str, now: dt.datetime | None = None) -> bool:
    due = due_date(course, assignment)
    return due is not None and (now or dt.datetime.now(dt.timezone.utc)) > due


# ----------------------------------------------------------------------------------------------- CLI protocol
def add_arguments(parser) -> None:
    parser.add_argument("assignment", metavar="ASSIGNMENT", help="the assignment, e.g. fix_the_pipeline")
    parser.add_argument("--student", metavar="ID", default=None, help="only this student's attempts")
    parser.add_argument("--json", action="store_true", help="print the attempts as a JSON list on stdout")
    parser.add_argument(
        "--course-dir",
        metavar="PATH",
        default=None,
        help="the course directory (default: the nearest folder holding nbgrader_config.py)",
    )


def epilog() -> str:
    return policy_help()


def run(args) -> int:
    from .course import find_course_root

    root = find_course_root(args.course_dir)
    ledger = Ledger(root)
    policy = load_policy(root)
    attempts = ledger.of(args.assignment, args.student)
    if args.json:
        json.dump([asdict(a) for a in attempts], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not attempts:
        print(
            f"no attempts of {args.assignment!r}"
            + (f" by {args.student}" if args.student else "")
            + f" in {ledger.path}",
            file=sys.stderr,
        )
        return 0
    students = sorted({a.student for a in attempts})
    for student in students:
        s = standing(ledger, policy, args.assignment, student)
        counts = "-" if s.counted is None else f"{s.score:g}/{s.counted.max_score:g} (attempt {s.counted.number})"
        print(f"{student}: {s.used} graded attempt(s), {s.describe_left()} left, {s.counting} counts: {counts}")
        for a in ledger.of(args.assignment, student):
            score = "" if a.score is None else f" {a.score:g}/{a.max_score:g}"
            mark = " *" if s.counted is a else ""
            late = " late" if a.late else ""
            why = f" - {a.reason}" if a.reason else ""
            print(f"  #{a.number} {a.timestamp} {a.state} {a.status}{score}{late}{mark}{why}")
    return 0


def attempts_column(root, assignment: str) -> dict[str, str]:
    """student -> "used/limit" (or "used" when unlimited) for ``report``'s attempts column ({} without a ledger)."""
    root = Path(root)
    if not (root / ENGINE_DIR / LEDGER_FILE).exists():
        return {}
    ledger, policy = Ledger(root), load_policy(root)
    out = {}
    for student in sorted({a.student for a in ledger.of(assignment)}):
        s = standing(ledger, policy, assignment, student)
        refused = sum(a.state == "refused" for a in ledger.of(assignment, student))
        text = f"{s.used}" if s.limit is None else f"{s.used}/{s.limit}"
        out[student] = text + (f" (+{refused} refused)" if refused else "")
    return out
