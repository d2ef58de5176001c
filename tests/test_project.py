"""House rules of the repository: environment.yml mirrors pyproject.toml, notebooks are stored clean."""

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_FILES = sorted(ROOT.glob("notebooks/*.ipynb")) + sorted(ROOT.glob("source/*/*.ipynb"))


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _conda():
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _normalise(requirements):
    return {Requirement(r).name.lower().replace("_", "-"): str(Requirement(r).specifier) for r in requirements}


def test_environment_yml_mirrors_pyproject():
    project, env = _pyproject(), _conda()
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    expected = _normalise(project["dependencies"] + project["optional-dependencies"]["dev"])
    assert _normalise(pip_section) == expected
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert re.search(r"3\.11", python) and ">=3.11,<3.12" == project["requires-python"]


def test_lock_pins_every_dependency_exactly():
    locked = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            req = Requirement(line)
            locked[req.name.lower()] = req.specifier
    project = _pyproject()
    for name, spec in _normalise(project["dependencies"] + project["optional-dependencies"]["dev"]).items():
        pinned = str(next(iter(locked[name]))).removeprefix("==")
        assert pinned in Requirement(f"{name}{spec}").specifier, f"{name} {pinned} not in {spec}"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_stored_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [
        i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not dirty, f"cells {dirty} of {path.name} keep outputs: strip them before committing"


@pytest.mark.parametrize("path", sorted(ROOT.glob("notebooks/*.ipynb")), ids=lambda p: p.name)
def test_lesson_starts_with_a_parameters_cell(path):
    cells = json.loads(path.read_text())["cells"]
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "parameters" in first_code["metadata"].get("tags", [])
    source = "".join(first_code["source"])
    for knob in ("tracking_uri", "experiment_name", "random_state"):
        assert re.search(rf"^{knob}\s*=", source, re.M), f"{path.name}: no {knob} in the parameters cell"
