"""Instructor-side package of the MLOps Bridge course: release, grade, feedback, export and report.

``python -m autograder --help`` lists the commands. One module a verb (papermill's layout): each command
module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int`` and keeps its heavy
imports (nbgrader, nbformat, mlflow) inside ``run`` so that ``--help`` answers at once.
"""

__version__ = "0.1.0"
