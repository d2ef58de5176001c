"""The course repository's GitHub Actions workflow: actionlint accepts it and rejects broken ones (as make lint
runs it), and it does what .ci/run does (the same Debian packages, then make test and make test-full)."""

import platform
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "test.yml"


@pytest.fixture(scope="module")
def actionlint() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if found:
        return found
    if sys.platform == "linux" and platform.machine() == "x86_64":
        pytest.fail("actionlint is not installed in the venv: make setup installs it (requirements.lock)")
    pytest.skip("actionlint has wheels for Linux x86-64 only; CI lints the workflows")


def lint(actionlint, path):
    return subprocess.run([actionlint, "-no-color", str(path)], capture_output=True, text=True, timeout=60)


def test_actionlint_accepts_the_course_workflow(actionlint):
    result = lint(actionlint, WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "break_it, complaint",
    [
        (lambda text: text.replace("    runs-on: ubuntu-24.04\n", ""), r'"runs-on" section is missing'),
        (
            lambda text: text.replace("make ${{ matrix.target }}\n", "make ${{ matrix.targets }}\n"),
            r'property "targets" is not defined',
        ),
        (lambda text: text.replace("actions/checkout@v5", "actions/checkout@v2"), r"checkout@v2.* is retired"),
        (lambda text: text.replace("  pull_request:\n", "  pull-request:\n"), r'unknown Webhook event "pull-request"'),
    ],
    ids=["no runs-on", "undefined matrix property", "outdated action", "unknown event"],
)
def test_actionlint_rejects_a_broken_workflow(actionlint, tmp_path, break_it, complaint):
    text = WORKFLOW.read_text()
    broken = break_it(text)
    assert broken != text, "the breakage did not apply: update the test to the workflow"
    path = tmp_path / ".github" / "workflows" / "test.yml"
    path.parent.mkdir(parents=True)
    path.write_text(broken)
    result = lint(actionlint, path)
    assert result.returncode != 0 and re.search(complaint, result.stdout), result.stdout + result.stderr


def _apt_packages(text: str) -> set[str]:
    """Every Debian package an ``apt-get install`` line of a script names (options and redirections left out)."""
    lines = [line for line in text.splitlines() if "apt-get install" in line and not line.lstrip().startswith("#")]
    assert lines, "no apt-get install line"
    return {
        word
        for line in lines
        for word in line.split("apt-get install", 1)[1].split()
        if not word.startswith(("-", ">"))
    }


def test_the_workflow_does_what_ci_run_does():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    [job] = workflow["jobs"].values()
    steps = "\n".join(step.get("run", "") for step in job["steps"])
    assert _apt_packages(steps) == _apt_packages((ROOT / ".ci" / "run").read_text()) >= {"bubblewrap", "chromium"}
    assert job["strategy"]["matrix"]["target"] == ["test", "test-full"]
    assert "make ${{ matrix.target }}" in steps and "make setup" in steps
    assert "autograder.sandbox --check" in steps
    assert job["env"]["CI"] == "true"  # sandbox tests fail instead of skipping, as under .ci/run
    assert re.match(r"python:3\.11\b", job["container"]["image"])  # the course's Python
    assert job["timeout-minutes"] <= 90


def test_the_lock_keeps_actionlints_platform_marker():
    """uv pip compile drops markers: a lock regenerated without it would break make setup where no wheel exists."""
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    [declared] = [r for r in dev if r.startswith("actionlint")]
    [locked] = [line for line in (ROOT / "requirements.lock").read_text().splitlines() if line.startswith("actionlint")]
    marker = declared.split(";", 1)[1].strip()
    assert locked.split(";", 1)[1].strip() == marker
