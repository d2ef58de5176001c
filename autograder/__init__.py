"""Instructor-side package of the MLOps Bridge course: release, grade, feedback, export and report.

``python -m autograder --help`` lists the commands. One module a verb (papermill's layout): each command
module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int`` and keeps its heavy
imports (nbgrader, nbformat, mlflow) inside ``run`` so that ``--help`` answers at once.

Where things are:

* the commands (``cli.py`` maps each verb to its module): ``release``, ``grade``, ``feedback``, ``export``,
  ``report``, ``watch`` (grading on submit), ``attempts``;
* the course: ``course.py`` (the one model of the course directory and its nbgrader configuration),
  ``regions.py`` (hidden-test, solution and stub regions, with the course's delimiters), ``stubs.py`` (the
  release's per-cell stubs), ``questions.py`` (the practice-questions bank), ``examples.py`` (example submissions);
* grading, in the grading process: ``grade.py`` orchestrates ``submissions.py`` (read submissions, build
  jobs), ``preflight.py`` (one kernel start before anything), ``engines.py`` (local processes or Dask),
  ``gradebook.py`` (check and record, as nbgrader does), ``statuses.py`` (each submission's status);
* grading, wherever the job runs: ``job.py`` (the job and its result: plain dataclasses), ``unit.py`` (the steps
  that grade one submission), ``kernel_client.py`` (runs its cells in a kernel), ``sandbox.py`` and
  ``cgroups.py`` (the kernel's limits), ``rewrite.py`` (hardened test cells), ``checks.py`` (check cells);
  ``kernel_guard.py`` runs inside the student's kernel;
* ``exceptions.py``: every error of the package.
"""

__version__ = "0.1.0"

import sys as _sys

# jsonschema imports ``rfc3987_syntax`` when it is installed (jupyter-events pulls it in) and builds dozens of lark
# grammars at import: most of what ``import nbformat`` costs, paid by the grading process and by every worker. It
# only validates the "iri"/"iri-reference" string formats, which no notebook or nbgrader schema uses; marking it
# absent makes jsonschema skip that checker (its documented optional import).
if "rfc3987_syntax" not in _sys.modules and "jsonschema" not in _sys.modules:
    _sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]
