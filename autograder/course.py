"""The nbgrader course directory, seen from Python: find it, load its config, build nbgrader's API over it.

The repository root is the course directory (it holds ``nbgrader_config.py`` and ``source/``). Everything the
instructor CLI and the tests do goes through nbgrader's own Python API (:class:`nbgrader.apps.NbGraderAPI`),
built here with the course's ``nbgrader_config.py`` loaded, exactly as plain ``nbgrader ...`` commands run from the
root would see it. nbgrader is imported lazily so that ``--help`` stays fast.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .exceptions import CourseDirectoryError, UnknownAssignmentError

CONFIG_FILE = "nbgrader_config.py"
# What a course copy needs; everything else at the root is either code (installed) or generated state.
COURSE_FILES = (CONFIG_FILE, "source")
# nbgrader's generated folders (CourseDirectory defaults) and the local exchange of nbgrader_config.py.
GENERATED = ("release", "submitted", "autograded", "feedback", "exchange", "gradebook.db", ".autograder")


def find_course_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding ``nbgrader_config.py``."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise CourseDirectoryError(
        f"no {CONFIG_FILE} in {here} or any folder above it: run this from the course directory "
        "(the repository root), or pass --course-dir")


def ensure_venv_on_path() -> None:
    """Put this interpreter's bin folder first on PATH.

    nbgrader creates its gradebook by running ``alembic``; when that executable is not on PATH the creation fails
    half-way and leaves a broken ``gradebook.db`` behind. Kernels started for autograding
    must also find the course's python.
    """
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if not parts or parts[0] != bindir:
        os.environ["PATH"] = os.pathsep.join([bindir, *[p for p in parts if p != bindir]])


def load_config(root: str | os.PathLike):
    """The traitlets Config of ``<root>/nbgrader_config.py``, with ``CourseDirectory.root`` set to ``root``."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root).resolve()
    if not (root / CONFIG_FILE).is_file():
        raise CourseDirectoryError(f"{root} is not a course directory: it has no {CONFIG_FILE}")
    config = Config()
    config.merge(PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config())
    config.CourseDirectory.root = str(root)
    return config


def make_api(root: str | os.PathLike | None = None, **config_overrides):
    """An :class:`nbgrader.apps.NbGraderAPI` over the course at ``root`` (found from the working directory if None).

    ``config_overrides`` are ``Section={trait: value}`` pairs merged over the course config, e.g.
    ``make_api(root, Exchange={"root": "/tmp/x"})``.
    """
    ensure_venv_on_path()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    root = find_course_root() if root is None else Path(root).resolve()
    config = load_config(root)
    for section, values in config_overrides.items():
        config.merge(Config({section: values}))
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def source_assignments(root: str | os.PathLike) -> list[str]:
    """The assignment names of the course: the folders of ``source/`` that hold at least one notebook."""
    source = Path(root) / "source"
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def check_assignment(root: str | os.PathLike, assignment: str) -> str:
    """``assignment`` if it is one of the course's source assignments; a clear error naming the known ones if not."""
    known = source_assignments(root)
    if assignment not in known:
        raise UnknownAssignmentError(
            f"no assignment {assignment!r} in {Path(root) / 'source'}; known assignments: "
            + (", ".join(known) or "none"))
    return assignment


def copy_course(root: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy the course (``nbgrader_config.py`` and ``source/``) into ``dest``, without any generated state.

    Tests and dry runs work in such a copy so that they never touch the real gradebook, release or exchange.
    """
    root, dest = Path(root).resolve(), Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    for name in COURSE_FILES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        elif src.is_file():
            shutil.copy2(src, dest / name)
        else:
            raise CourseDirectoryError(f"{root} is not a complete course directory: {name} is missing")
    return dest


def notebook_paths(root: str | os.PathLike, folder: str, assignment: str, student: str | None = None) -> list[Path]:
    """The notebooks of ``assignment`` under one of nbgrader's folders (source, release, submitted, autograded...)."""
    base = Path(root) / folder
    if student is not None:
        base = base / student
    return sorted((base / assignment).glob("*.ipynb"))
