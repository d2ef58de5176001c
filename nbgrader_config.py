"""nbgrader configuration of the MLOps Bridge course. The repository root is the course directory.

Plain ``nbgrader ...`` commands read this file when run from the root (with ``.venv/bin`` first on PATH, see
README "For instructors"); ``python -m autograder ...`` and the tests load the same file through
``autograder.course.load_config``.
"""

import os

from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    ComputeChecksums,
    IncludeHeaderFooter,
    InstantiateTests,
    LockCells,
    SaveCells,
)

from autograder.stubs import ClearSolutionsWithStubs

c = get_config()  # noqa: F821 (injected by traitlets)

HERE = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "mlops-bridge"

# --- generate_assignment ------------------------------------------------------------------------------------
# nbgrader's default pipeline with ONE change: ClearSolutionsWithStubs instead of ClearSolutions, so that a
# fix-the-pipeline answer cell is released holding the broken code the student must repair (its "### BEGIN STUB"
# region), not "raise NotImplementedError()". Cells without a stub region are released as nbgrader always does.
# Order copied from nbgrader 0.9.6 GenerateAssignment.preprocessors (ClearHiddenTests after the first checksums).
c.GenerateAssignment.preprocessors = [
    IncludeHeaderFooter,
    InstantiateTests,
    LockCells,
    ClearSolutionsWithStubs,
    ClearOutput,
    CheckCellMetadata,
    ComputeChecksums,
    SaveCells,
    ClearHiddenTests,
    ClearMarkScheme,
    ComputeChecksums,
    CheckCellMetadata,
]

# --- execution (autograde, validate, generate_feedback) -------------------------------------------------------
# On a loaded 2-core machine `import mlflow` alone takes up to 4 s and a fresh sqlite store another few seconds:
# allow a cell 3 minutes, the kernel 2 minutes to start, and keep going with a clear error when one cell stalls.
c.Execute.timeout = 180
c.Execute.startup_timeout = 120
c.Execute.interrupt_on_timeout = True
c.Execute.allow_errors = True  # a failing test cell scores 0; the following cells still run
c.ExecutePreprocessor.timeout = 180  # nbconvert's name for the same knob (read by tools that use it directly)

# --- scoring --------------------------------------------------------------------------------------------------
# nbgrader scores a test cell 0 as soon as it printed ANYTHING on stderr. MLflow logs INFO lines there
# ("Creating initial MLflow database tables...", "Experiment with name ... does not exist"), alembic too, and
# scikit-learn / pandas emit warnings: none of that may cost a correct answer its points. Errors (tracebacks) are
# outputs of type "error", not stderr streams, and are never removed by this.
c.IgnorePattern.pattern = (
    r"(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING) mlflow"  # MLflow's log format
    r"|INFO\s+\[alembic"  # database migrations of a fresh sqlite store
    r"|\b(Future|Deprecation|PendingDeprecation|User|Runtime|Convergence|DataConversion)Warning\b"
)

# A student who deletes a test cell must not dodge it: nbgrader puts the cell back and runs it.
c.OverwriteCells.add_missing_cells = True

# --- exchange (release / fetch / submit / collect on one machine) ---------------------------------------------
# A course-local exchange folder (ignored by git), instead of the system-wide /srv/nbgrader/exchange that needs
# root: enough for a single-machine class and for the tests, which copy the course and get their own exchange.
c.Exchange.root = os.path.join(HERE, "exchange")
# Where a student's `nbgrader fetch_assignment` puts their working copy (and `nbgrader submit` takes it from):
# assignments/<assignment>/, also ignored by git, instead of folders scattered over the repository root.
c.Exchange.assignment_dir = os.path.join(HERE, "assignments")
# nbgrader's Assignments tab in JupyterLab (its assignment_list server extension) changes into this folder and reads
# the nbgrader_config.py found THERE: without the folder it lists nothing ("Loading, please wait..." for ever), and
# without a config there it looks for the exchange in /usr/local/share/nbgrader/exchange. So the folder gets a
# config that loads this one.
os.makedirs(c.Exchange.assignment_dir, exist_ok=True)
_student_config = os.path.join(c.Exchange.assignment_dir, "nbgrader_config.py")
if not os.path.exists(_student_config):
    with open(_student_config, "w") as _fh:
        _fh.write(
            "# Written by the course's nbgrader_config.py (one folder up), which it loads: "
            "nbgrader's Assignments\n# tab reads the config of this folder.\nimport os\n\n"
            "load_subconfig(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "
            "'nbgrader_config.py'))  # noqa: F821\n"
        )

# --- grade on submit (python -m autograder watch; python -m autograder attempts ASSIGNMENT) ---------------------
# The practice questions: unlimited attempts (the default), the best counts. The exercises: five graded attempts,
# at least a minute apart, the best counts. After nbgrader's due date an attempt is graded and flagged late
# (nbgrader's late-penalty plugin applies). `python -m autograder watch --help` lists every setting.
c.AttemptsPolicy.limits = {"fix_the_pipeline": 5}
c.AttemptsPolicy.min_interval = {"fix_the_pipeline": 60}
c.AttemptsPolicy.default_counts = "best"
