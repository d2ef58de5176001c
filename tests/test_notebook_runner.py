"""The engine of ``make course``: papermill execution that fails loudly and names the failing cell."""

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mlops_helpers import notebooks
from mlops_helpers.exceptions import DeprecatedApiError, NotebookExecutionError


def _write(path, *cells):
    nb = new_notebook(cells=[new_code_cell("x = 1", metadata={"tags": ["parameters"]}), *cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_parameters_are_injected_and_outputs_kept(tmp_path):
    src = _write(tmp_path / "01_ok.ipynb", new_code_cell("print(x * 2)"))
    result = notebooks.execute(src, tmp_path / "out" / "01_ok.ipynb", {"x": 21})
    assert "42" in result.outputs_text()
    assert (tmp_path / "out" / "01_ok.ipynb").exists()


def test_failing_cell_is_named(tmp_path):
    src = _write(tmp_path / "02_bad.ipynb", new_code_cell("y = 2"), new_code_cell("1 / 0"))
    with pytest.raises(NotebookExecutionError) as info:
        notebooks.execute(src, tmp_path / "out.ipynb")
    assert info.value.ename == "ZeroDivisionError"
    assert "02_bad.ipynb" in str(info.value) and "ZeroDivisionError" in str(info.value)
    assert info.value.exec_count == 3


def test_deprecation_warning_fails_unless_the_cell_is_tagged(tmp_path):
    warn = "import sys; print('WARNING mlflow.models.model: `artifact_path` is deprecated.', file=sys.stderr)"
    src = _write(tmp_path / "03_dep.ipynb", new_code_cell(warn))
    with pytest.raises(DeprecatedApiError, match="cell 1"):
        notebooks.execute(src, tmp_path / "out.ipynb")
    tagged = _write(tmp_path / "04_dep.ipynb", new_code_cell(warn, metadata={"tags": ["deprecated-on-purpose"]}))
    result = notebooks.execute(tagged, tmp_path / "out2.ipynb")
    assert "`artifact_path` is deprecated" in result.outputs_text()  # ran, printed its warning, was let through


def test_cli_runs_in_order_and_exits_1_naming_the_notebook(tmp_path, capsys):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _write(folder / "00_first.ipynb", new_code_cell("open('ran-00', 'w').close()"))
    _write(folder / "01_broken.ipynb", new_code_cell("raise RuntimeError('boom')"))
    _write(folder / "02_never.ipynb", new_code_cell("open('ran-02', 'w').close()"))
    code = notebooks.main([str(folder), "--out", str(tmp_path / "build")])
    err = capsys.readouterr().err
    assert code == 1
    assert "01_broken.ipynb" in err and "RuntimeError: boom" in err
    assert (folder / "ran-00").exists() and not (folder / "ran-02").exists()


def test_kernels_run_quiet(tmp_path, capfd, monkeypatch):
    """What a cell's subprocess prints is in the notebook and the kernel log, not on the terminal; no ipykernel
    start-up warning (TCP without encryption) anywhere; MLflow's artifact progress bar stays out of the outputs.
    Paths relative to the caller's folder, as ``make course`` gives them (papermill runs in the notebook's)."""
    monkeypatch.chdir(tmp_path)
    src = _write(
        tmp_path / "05_quiet.ipynb",
        new_code_cell(
            "import subprocess, sys\n"
            "subprocess.run([sys.executable, '-c', 'print(\"printed by a subprocess\")'], check=True)"
        ),
        new_code_cell(
            "from mlflow.utils.file_utils import ArtifactProgressBar\n"
            "with ArtifactProgressBar.files(desc='Downloading artifacts', total=2) as bar:\n"
            "    bar.update(); bar.update()\n"
            "print('after the download')"
        ),
    )
    result = notebooks.execute(src.relative_to(tmp_path), Path("out") / "05_quiet.ipynb")
    outputs = json.dumps([cell.get("outputs", []) for cell in result.notebook.cells])  # every output, any type
    assert "printed by a subprocess" in outputs and "after the download" in outputs
    assert "Downloading artifacts" not in outputs and "it/s" not in outputs
    terminal = "".join(capfd.readouterr())
    assert "printed by a subprocess" not in terminal and "without encryption" not in terminal, terminal
    log = notebooks.kernel_log_path(tmp_path / "out" / "05_quiet.ipynb").read_text()
    assert "printed by a subprocess" in log and "without encryption" not in log, log
