"""Instructor-side package of the MLOps Bridge course: release, grade, feedback, export and report.

``python -m autograder --help`` lists the commands. One module a verb (papermill's layout): each command
module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int`` and keeps its heavy
imports (nbgrader, nbformat, mlflow) inside ``run`` so that ``--help`` answers at once.
"""

__version__ = "0.1.0"

import sys as _sys

# jsonschema imports ``rfc3987_syntax`` when it is installed (jupyter-events pulls it in) and builds dozens of lark
# grammars at import: most of what ``import nbformat`` costs, paid by the grading process and by every worker. It
# only validates the "iri"/"iri-reference" string formats, which no notebook or nbgrader schema uses; marking it
# absent makes jsonschema skip that checker (its documented optional import).
if "rfc3987_syntax" not in _sys.modules and "jsonschema" not in _sys.modules:
    _sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]
