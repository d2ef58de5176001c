"""Feedback against hostile and broken submissions (an assert-based course: nbgrader's documentation example with
a hidden-test region). Student code that ran after the hidden tests may print them encoded (base64 here, of the
kernel's input history): no such output reaches a feedback page. One student's unreadable graded notebook or an
odd id (leading and trailing spaces, which nbgrader's feedback cannot handle) does not stop the others' feedback;
each failure is named and the exit code says so."""

from __future__ import annotations

import base64
import binascii
import json
import re
import shutil

import pytest

from nbgrader_course import autograder_cli

pytestmark = pytest.mark.sandbox

LEAK = "import base64\nprint('LEAK', base64.b64encode('\\n'.join(In).encode()).decode())"


def _decoded_blobs(text: str) -> str:
    out = []
    for blob in re.findall(r"[A-Za-z0-9+/=]{40,}", text):
        try:
            out.append(base64.b64decode(blob + "=" * (-len(blob) % 4)).decode("utf-8", "replace"))
        except (binascii.Error, ValueError):
            pass
    return "\n".join(out)


def test_encoded_hidden_tests_and_broken_students(generated_docs_course, tmp_path, grading_sandbox):
    course = tmp_path / "course"
    shutil.copytree(generated_docs_course, course)
    for student in ("leaker", " spaced "):
        shutil.copytree(course / "submitted" / "hacker", course / "submitted" / student)
    path = course / "submitted" / "leaker" / "ps1" / "problem1.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"].append({"cell_type": "code", "metadata": {}, "source": LEAK, "outputs": [], "execution_count": None})
    path.write_text(json.dumps(nb))
    proc = autograder_cli(course, "grade", "ps1", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    graded = (course / "autograded" / "leaker" / "ps1" / "problem1.ipynb").read_text()
    assert "LEAK" in graded and "BEGIN HIDDEN TESTS" in _decoded_blobs(graded)  # the leak is real in the kernel
    broken = course / "autograded" / "bitdiddle" / "ps1" / "problem1.ipynb"
    broken.chmod(0o644)
    broken.write_text(broken.read_text()[:300])  # truncated

    proc = autograder_cli(course, "feedback", "ps1")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "feedback for 'bitdiddle' failed" in proc.stderr
    page = (course / "feedback" / "leaker" / "ps1" / "problem1.html").read_text()
    assert "output not shown in the feedback: it was produced after hidden tests ran" in page
    assert re.search(r"LEAK [A-Za-z0-9+/=]{20}", page) is None  # the printed line is gone
    assert "BEGIN HIDDEN TESTS" not in _decoded_blobs(page)
    # nbgrader strips a student id's spaces and then finds no notebook: that student is named, the rest carry on
    assert "feedback for ' spaced ' failed" in proc.stderr
    for student in ("hacker", "partial", "leaker"):
        assert (course / "feedback" / student / "ps1" / "problem1.html").is_file(), student


def test_check_cells_keep_the_outputs_and_have_nothing_to_leak(tmp_path, grading_sandbox):
    """The same leak against a check cell: its hidden checks never entered the kernel, so the history dump holds
    none of them, and the feedback keeps the students' outputs (nothing is hidden for nothing)."""
    from nbgrader_course import docs_course, nbgrader_cli

    course = docs_course(tmp_path / "course")
    source = course / "source" / "ps1" / "problem1.ipynb"
    nb = json.loads(source.read_text())
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "correct_squares":
            cell["source"] = (
                "from mlops_helpers.checks import check\n"
                + "".join(cell["source"]).rstrip("\n")
                + "\n### BEGIN HIDDEN TESTS\ncheck('squares(12)[-1]', equals=144, "
                "message='the range must include n itself')\n### END HIDDEN TESTS"
            )
    source.write_text(json.dumps(nb, indent=1))
    nbgrader_cli(course, "generate_assignment", "ps1")
    shutil.copytree(course / "submitted" / "hacker", course / "submitted" / "leaker")
    path = course / "submitted" / "leaker" / "ps1" / "problem1.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"].append({"cell_type": "code", "metadata": {}, "source": LEAK, "outputs": [], "execution_count": None})
    path.write_text(json.dumps(nb))
    proc = autograder_cli(course, "grade", "ps1", "--json", "--student", "leaker")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)[0]["score"] == 3.0  # hacker's work passes the hidden check too
    proc = autograder_cli(course, "feedback", "ps1", "--student", "leaker")
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (course / "feedback" / "leaker" / "ps1" / "problem1.html").read_text()
    assert re.search(r"LEAK [A-Za-z0-9+/=]{20}", page)  # the student's output is shown...
    assert "output not shown in the feedback" not in page
    assert "equals=144" not in _decoded_blobs(page) and "BEGIN HIDDEN TESTS" not in _decoded_blobs(page)  # ...safely
