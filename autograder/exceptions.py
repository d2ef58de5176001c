"""Every error raised by :mod:`autograder` derives from :class:`AutograderError`, and all of them are defined here.

The CLI turns those that reach it into a one-line message and a non-zero exit code; anything else is a bug. Some
never reach it: they concern one submission (:class:`WorkerCrashed`, :class:`TimestampError`, :class:`RewriteError`,
:class:`CollectError`) and become that submission's status ``error`` with the message as its reason, or they are
reported by nbgrader (:class:`StubRegionError`, raised inside ``nbgrader generate_assignment``). The kernel-side
``kernel_guard.GuardError`` is not one of them: it is an ``AssertionError`` that fails a student's test.
"""


class AutograderError(Exception):
    """Base class for errors the instructor can act on."""


class CourseDirectoryError(AutograderError):
    """The working directory is not a usable nbgrader course directory (no nbgrader_config.py, ...)."""


class UnknownAssignmentError(AutograderError):
    """The assignment named on the command line does not exist in source/ (or release/, submitted/)."""


class EngineError(AutograderError):
    """A grading engine cannot be set up (unknown engine name, unreachable Dask scheduler...)."""


class WorkerCrashed(AutograderError):
    """A grading worker process died while running one job; that job alone is reported with status ``error``."""


class GradebookError(AutograderError):
    """The course's gradebook is missing or does not know the assignment (generate / release it first)."""


class SandboxUnavailableError(AutograderError):
    """Student code cannot be sandboxed here (no bubblewrap / namespaces); grading needs --no-sandbox to proceed."""


class QuestionBankError(AutograderError):
    """The question bank (autograder/question_bank.yaml) breaks a rule: it names the question and the rule."""


class NbgraderStepError(AutograderError):
    """An nbgrader step (generate, release, export...) reported failure; the message carries nbgrader's log."""


class TimestampError(AutograderError):
    """A submission's timestamp.txt holds something that is not a date (that submission alone is not graded)."""


class RewriteError(AutograderError):
    """The hardened version of a valid test cell does not compile (a grader bug, reported as status ``error``)."""


class CollectError(AutograderError):
    """nbgrader's collect failed for one submission (that submission gets status error, the others go on)."""


class StubRegionError(AutograderError):
    """A stub region is malformed (unclosed, nested, outside a solution cell, or a line is not commented)."""
