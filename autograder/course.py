"""The nbgrader course directory, seen from Python: find it, load its config, build nbgrader's API over it.

The repository root is the course directory (it holds ``nbgrader_config.py`` and ``source/``). :class:`Course` is
the one model of it every command uses: its root, its nbgrader configuration (``nbgrader_config.py`` plus any
``--Section.trait=value`` given on the command line) and nbgrader's ``CourseDirectory`` and gradebook URL, exactly
as plain ``nbgrader ...`` commands run from the root would see them. Everything the instructor CLI and the tests
do goes through nbgrader's own Python API (:meth:`Course.api`). nbgrader is imported lazily so that ``--help``
stays fast.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .exceptions import AutograderError, CourseDirectoryError, UnknownAssignmentError
from .regions import DEFAULT, Delimiters

CONFIG_FILE = "nbgrader_config.py"
# What a course copy needs; everything else at the root is either code (installed) or generated state.
COURSE_FILES = (CONFIG_FILE, "source")
# nbgrader's generated folders (CourseDirectory defaults) and the local exchange of nbgrader_config.py.
GENERATED = ("release", "submitted", "autograded", "feedback", "exchange", "gradebook.db", ".autograder")
#: The engine's own files (grading statuses, attempts ledger, locks, preflight cache) at the course root: never under
#: ``autograded/``, where a student id equal to a file name would collide with them.
ENGINE_DIR = ".autograder"


def find_course_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding ``nbgrader_config.py``."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise CourseDirectoryError(
        f"no {CONFIG_FILE} in {here} or any folder above it: run this from the course directory "
        "(the repository root), or pass --course-dir"
    )


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
    return Course.open(root, sections=config_overrides).api()


@dataclass
class Course:
    """What the instructor-side commands know about the course: its root, nbgrader config, CourseDirectory and
    gradebook URL."""

    root: Path
    config: object
    coursedir: object
    db_url: str = field(init=False)

    def __post_init__(self):
        self.db_url = self.coursedir.db_url

    @classmethod
    def open(
        cls, root: str | os.PathLike | None = None, overrides: Iterable[str] = (), sections: dict | None = None
    ) -> "Course":
        """The course at or above ``root`` (default: the working directory) with its nbgrader_config.py, then
        ``overrides`` (``--Section.trait=value`` text, as on nbgrader's command line), then ``sections``
        (``{Section: {trait: value}}``)."""
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config import Config

        ensure_venv_on_path()  # nbgrader's gradebook code needs alembic on PATH
        root = find_course_root(root)
        config = load_config(root)
        config.merge(parse_config_overrides(overrides))
        for section, values in (sections or {}).items():
            config.merge(Config({section: values}))
        if "AutogradeApp" in config:  # nbgrader's AutogradeApp moves these to Autograde (its _load_config)
            config.Autograde.merge(config.AutogradeApp)
            del config["AutogradeApp"]
        return cls(root=root, config=config, coursedir=CourseDirectory(config=config))

    def api(self):
        """nbgrader's :class:`~nbgrader.apps.NbGraderAPI` over this course and its configuration."""
        from nbgrader.apps import NbGraderAPI

        return NbGraderAPI(coursedir=self.coursedir, config=self.config)

    def autograde_settings(self) -> "AutogradeSettings":
        """The nbgrader settings the grader honours, read through nbgrader's own configurables (so that a value
        given as text on the command line is converted exactly as nbgrader converts it)."""
        from nbgrader.converters import Autograde
        from nbgrader.preprocessors import Execute

        converter = Autograde(coursedir=self.coursedir, config=self.config)
        exclude = {s.strip() for s in (self.coursedir.student_id_exclude or "").split(",") if s.strip()}
        return AutogradeSettings(
            create_student=bool(converter.create_student),
            permissions=int(str(converter.permissions), 8),
            groupshared=bool(self.coursedir.groupshared),
            student_id_exclude=exclude,
            exclude_overwriting={k: list(v) for k, v in converter.exclude_overwriting.items()},
            cell_timeout=Execute(config=self.config).timeout,
            delimiters=Delimiters.from_config(self.config),
        )

    def path(self, folder: str, student: str | None, assignment: str) -> Path:
        """``<folder>/<student>/<assignment>`` by nbgrader's ``CourseDirectory.format_path`` (no student: ``.``)."""
        return Path(self.coursedir.format_path(folder, student or ".", assignment))

    @property
    def course_id(self) -> str:
        return self.coursedir.course_id or ""

    @property
    def engine_dir(self) -> Path:
        """The engine's own folder (:data:`ENGINE_DIR`) at the course root."""
        return Path(self.coursedir.root) / ENGINE_DIR

    def is_ignored(self, relpath: str) -> bool:
        """Whether a file of a submission is left alone, as nbgrader does: a part of its path matches
        ``CourseDirectory.ignore`` (or is a checkpoint / bytecode folder)."""
        ignore = list(self.coursedir.ignore) + [".ipynb_checkpoints", "__pycache__"]
        return any(fnmatch.fnmatch(part, pattern) for part in relpath.split("/") for pattern in ignore)


@dataclass(frozen=True)
class AutogradeSettings:
    """What of nbgrader's configuration the grader honours, as nbgrader reads it.

    create_student: ``Autograde.create_student`` (False: a student missing from the gradebook is not graded).
    permissions: ``Autograde.permissions`` (``AutogradeApp.permissions``), as a mode: 0o444, or 0o664 when
    ``CourseDirectory.groupshared``; groupshared also makes the autograded folders group-writable and setgid.
    student_id_exclude: ``CourseDirectory.student_id_exclude`` (comma-separated ids never graded).
    exclude_overwriting: ``Autograde.exclude_overwriting`` (the student's own version of these files is kept).
    cell_timeout: ``Execute.timeout`` / ``ExecutePreprocessor.timeout`` (None: no per-cell limit).
    delimiters: ``ClearHiddenTests``' and ``ClearSolutions``' region delimiters (:mod:`autograder.regions`).
    """

    create_student: bool = True
    permissions: int = 0o444
    groupshared: bool = False
    student_id_exclude: frozenset | set = frozenset()
    exclude_overwriting: dict = field(default_factory=dict)
    cell_timeout: float | None = None
    delimiters: Delimiters = DEFAULT


def parse_config_overrides(arguments: Iterable[str]):
    """nbgrader-style ``--Section.trait=value`` (or ``--Section.trait value``) arguments -> a traitlets Config.

    Values stay text until nbgrader's configurables read them (traitlets' DeferredConfigString): a Bool, an Integer
    or a Unicode trait converts it as it does on nbgrader's own command line.
    """
    import re

    from traitlets.config import Config
    from traitlets.config.loader import DeferredConfigString

    config = Config()
    items = list(arguments)
    i = 0
    while i < len(items):
        match = re.fullmatch(r"--([A-Za-z_]\w*)\.([A-Za-z_]\w*)(?:=(.*))?", items[i], flags=re.S)
        if not match:
            raise AutograderError(
                f"unrecognized argument {items[i]!r} (nbgrader settings are given as "
                "--Section.trait=value, e.g. --Execute.timeout=30)"
            )
        section, trait, value = match.groups()
        if value is None:
            if i + 1 >= len(items):
                raise AutograderError(f"{items[i]} needs a value: {items[i]}=VALUE")
            value = items[i + 1]
            i += 1
        config[section][trait] = DeferredConfigString(value)
        i += 1
    return config


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
            + (", ".join(known) or "none")
        )
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
