"""Build the regression set: a small nbgrader assignment and hostile submissions of it, each with its expectation.

Importable by any test (the unit tests grade them with ``grade_job``; the CLI tests run the same set end to end):

    from tests.regression.submissions import build_source, build_submissions, specs_from_source
    cases = build_submissions(port=free_port(), course_dir=tmp_path)   # {student_id: Case}

The assignment ``reg`` has one notebook, ``problem1``, with three autograded answers and their test cells
(2 + 1 + 1 = 4 points); the test cells hold hidden tests. Each case is the released notebook with the student's
answers typed into the answer cells, plus whatever trick the case plays.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import socket
import threading
from dataclasses import dataclass


@contextlib.contextmanager
def loopback_listener():
    """A TCP listener on 127.0.0.1 (a free port) accepting in a thread, for the ``network`` case to try.

    Yields ``(port, connections)``; ``connections`` lists every accepted connection (it must stay empty)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    connections, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connections.append(listener.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], connections
    finally:
        stop.set()
        thread.join(5)
        listener.close()


ASSIGNMENT = "reg"
NOTEBOOK = "problem1"
MAX_SCORE = 4.0

CORRECT = {
    "add": "def add(a, b):\n    return a + b",
    "squares": "def squares(n):\n    return [i * i for i in range(1, n + 1)]",
    "mean": "def mean(xs):\n    return sum(xs) / len(xs)",
}
BLANK = {
    "add": "def add(a, b):\n    # YOUR CODE HERE\n    raise NotImplementedError()",
    "squares": "def squares(n):\n    # YOUR CODE HERE\n    raise NotImplementedError()",
    "mean": "def mean(xs):\n    # YOUR CODE HERE\n    raise NotImplementedError()",
}
TESTS = {
    "test_add": ("assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\nassert add(-1, 1) == 0\n"
                 "assert add(2.5, 2.5) == 5.0\n### END HIDDEN TESTS", 2.0),
    "test_squares": ("assert squares(3) == [1, 4, 9]\n### BEGIN HIDDEN TESTS\nassert squares(0) == []\n"
                     "### END HIDDEN TESTS", 1.0),
    # numpy.testing is not preloaded in the kernel: the guard meets it as a late import (the late_* cases)
    "test_mean": ("import math\nassert math.isclose(mean([1, 2, 3]), 2.0)\n### BEGIN HIDDEN TESTS\n"
                  "assert math.isclose(mean([1.5, 2.5]), 2.0)\nimport numpy.testing\n"
                  "numpy.testing.assert_allclose(mean([1, 2, 3, 4]), 2.5)\n### END HIDDEN TESTS", 1.0),
}


@dataclass(frozen=True)
class Case:
    notebook: bytes | None     # raw problem1.ipynb bytes, None = not submitted
    status: str                # expected status
    score: float               # expected total score (of MAX_SCORE)
    note: str = ""


def _checksum(source: str, cell_type: str, grade: bool, solution: bool, locked: bool, grade_id: str,
              points: float | None) -> str:
    """nbgrader.utils.compute_checksum, reimplemented to avoid importing nbgrader (seconds) in the builder."""
    m = hashlib.md5()
    for part in (source, cell_type, str(grade), str(solution), str(locked), grade_id):
        m.update(part.encode("utf-8"))
    if grade:
        m.update(str(float(points)).encode("utf-8"))
    return m.hexdigest()


def _cell(cell_type: str, source: str, grade_id: str | None = None, *, grade=False, solution=False, locked=False,
          points=None) -> dict:
    cell = {"cell_type": cell_type, "metadata": {}, "source": source}
    if cell_type == "code":
        cell.update(outputs=[], execution_count=None)
    if grade_id:
        meta = {"grade_id": grade_id, "grade": grade, "solution": solution, "locked": locked, "schema_version": 3}
        if grade:
            meta["points"] = points
        meta["checksum"] = _checksum(source, cell_type, grade, solution, locked or grade, grade_id, points)
        cell["metadata"]["nbgrader"] = meta
        if locked or grade:
            cell["metadata"].update(deletable=False, editable=False)
    return cell


def build_source() -> dict:
    """The instructor's notebook (solutions + hidden tests), as an nbformat 4.4 dict."""
    cells = [_cell("markdown", "# Regression assignment\nImplement the three functions.", "intro", locked=True)]
    for answer, test in (("add", "test_add"), ("squares", "test_squares"), ("mean", "test_mean")):
        cells.append(_cell("code", BLANK[answer], answer, solution=True))
        source, points = TESTS[test]
        cells.append(_cell("code", source, test, grade=True, locked=True, points=points))
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                         "language": "python"}},
            "nbformat": 4, "nbformat_minor": 4}


def released() -> dict:
    """The student version: hidden tests removed (what a student downloads)."""
    import re

    nb = copy.deepcopy(build_source())
    for cell in nb["cells"]:
        cell["source"] = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", cell["source"], flags=re.S)
        cell["source"] = cell["source"].rstrip("\n")
    return nb


def specs_from_source():
    """The NotebookSpec tuple of the assignment, as specs_from_gradebook would build it from a gradebook."""
    from autograder.job import CellSpec, NotebookSpec, _kind

    cells = []
    for cell in build_source()["cells"]:
        meta = cell["metadata"]["nbgrader"]
        cells.append(CellSpec(grade_id=meta["grade_id"], cell_type=cell["cell_type"], source=cell["source"],
                              locked=bool(meta["locked"] or meta["grade"]), checksum=meta["checksum"],
                              points=meta.get("points"), kind=_kind(meta["grade"], meta["solution"], False)))
    return (NotebookSpec(name=NOTEBOOK, cells=tuple(cells)),)


def _answers(nb: dict, answers: dict[str, str]) -> dict:
    for cell in nb["cells"]:
        gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell["source"] = answers[gid]
    return nb


def _submit(answers: dict[str, str], *, before: dict[str, str] | None = None, edit=None) -> bytes:
    """A released notebook with ``answers``; ``before`` puts extra code at the top of an answer cell."""
    nb = _answers(released(), {**CORRECT, **answers})
    for gid, code in (before or {}).items():
        for cell in nb["cells"]:
            if cell["metadata"].get("nbgrader", {}).get("grade_id") == gid:
                cell["source"] = code + "\n" + cell["source"]
    if edit:
        edit(nb)
    return json.dumps(nb, indent=1).encode()


def build_submissions(port: int, course_dir: str) -> dict[str, Case]:
    """Every regression case. ``port``: a listener the test runs on 127.0.0.1; ``course_dir``: a folder holding
    ``gradebook.db``, ``source/reg/problem1.ipynb`` and ``submitted/other/reg/problem1.ipynb`` (the test makes them)
    that the hostile submissions try to read or overwrite."""
    wrong_add = "def add(a, b):\n    return 0"
    cases: dict[str, Case] = {}
    cases["perfect"] = Case(_submit({}), "ok", 4.0)
    cases["blank"] = Case(json.dumps(released()).encode(), "ok", 0.0)
    cases["partial"] = Case(_submit({"squares": "def squares(n):\n    return [1, 4, 9]"}), "ok", 3.0,
                            "squares passes the visible test, fails the hidden one")
    cases["infinite_loop"] = Case(_submit({}, before={"squares": (
        "import time\nwhile True:\n    try:\n        time.sleep(0.5)\n    except KeyboardInterrupt:\n        pass")}),
        "timeout", 2.0, "points of test_add (before the loop) are kept")
    cases["kernel_crash"] = Case(_submit({}, before={"squares": "import os\nos._exit(3)"}), "kernel_died", 2.0)
    cases["invalid_json"] = Case(b'{"cells": [ this is not json', "invalid_notebook", 0.0)

    def edit_test(nb):
        for cell in nb["cells"]:
            if cell["metadata"].get("nbgrader", {}).get("grade_id") == "test_add":
                cell["source"] = "assert True"
    cases["edited_test"] = Case(_submit({"add": wrong_add}, edit=edit_test), "ok", 2.0, "test_add restored")

    def delete_test(nb):
        nb["cells"] = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") != "test_add"]
    cases["deleted_test"] = Case(_submit({"add": wrong_add}, edit=delete_test), "ok", 2.0, "test_add re-added")

    def retype_test(nb):
        for cell in nb["cells"]:
            if cell["metadata"].get("nbgrader", {}).get("grade_id") == "test_add":
                cell["cell_type"] = "markdown"
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
    cases["retyped_test"] = Case(_submit({"add": wrong_add}, edit=retype_test), "ok", 2.0, "test_add back to code")

    def duplicate(nb):
        for i, cell in enumerate(nb["cells"]):
            if cell["metadata"].get("nbgrader", {}).get("grade_id") == "squares":
                nb["cells"].insert(i, copy.deepcopy(cell))
                break
    cases["duplicated_id"] = Case(_submit({}, edit=duplicate), "ok", 4.0)
    cases["memory_bomb"] = Case(_submit({}, before={"squares": "blob = bytearray(64 * 1024 ** 3)"}),
                                "resource_limit", 3.0, "MemoryError stops the squares cell: only its test is lost")
    cases["process_flood"] = Case(_submit({}, before={"add": (
        "import os, time\npids = []\ntry:\n    while len(pids) < 5000:\n        pid = os.fork()\n"
        "        if pid == 0:\n            time.sleep(120)\n            os._exit(0)\n        pids.append(pid)\n"
        "except OSError as exc:\n    print('fork refused after', len(pids), 'children:', exc)\n"
        "print('children', len(pids))")}), "ok", 4.0, "forks are refused past the process limit")
    cases["network"] = Case(_submit({}, before={"add": (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', %d), timeout=3).sendall(b'leak')\n"
        "    print('CONNECTED')\nexcept OSError as exc:\n    print('no network:', exc)" % port)}), "ok", 4.0)
    cases["read_hidden"] = Case(_submit({"add": (
        "import pathlib\n_found = []\nfor p in [%r, %r, %r]:\n    try:\n"
        "        _found.append(pathlib.Path(p).read_bytes())\n    except OSError:\n        pass\n"
        "def add(a, b):\n    if not _found:\n        raise NotImplementedError('could not read the hidden tests')\n"
        "    return a + b") % (f"{course_dir}/gradebook.db", f"{course_dir}/source/{ASSIGNMENT}/{NOTEBOOK}.ipynb",
                              "/root/.bash_history")}), "ok", 2.0, "add only works if the files were readable")
    cases["write_gradebook"] = Case(_submit({}, before={"add": (
        "for p in [%r, %r]:\n    try:\n        open(p, 'w').write('pwned')\n    except OSError as exc:\n"
        "        print('cannot write', p, exc)") % (f"{course_dir}/gradebook.db",
                                                   f"{course_dir}/submitted/other/{ASSIGNMENT}/{NOTEBOOK}.ipynb")}),
        "ok", 4.0, "the files outside stay unchanged")
    cases["huge_output"] = Case(_submit({}, before={"add": "for _ in range(200):\n    print('x' * 100_000)"}),
                                "resource_limit", 4.0, "outputs truncated, points kept")
    cases["huge_message"] = Case(_submit({}, before={"add": (
        "from IPython.display import display\ndisplay({'text/plain': 'y' * 20_000_000}, raw=True)")}),
        "resource_limit", 4.0, "one 20 MB message refused at the socket, points kept")
    cases["huge_write"] = Case(_submit({}, before={"add": (
        "import sys\nsys.stdout.write('y' * 20_000_000)\nsys.stdout.flush()")}),
        "resource_limit", 4.0, "one 20 MB write cut in the kernel at the output budget, points kept")
    always_equal = ("class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n"
                    "    def __ne__(self, other):\n        return False\n")
    cases["always_equal"] = Case(_submit({
        "add": always_equal + "def add(a, b):\n    return AlwaysEqual()",
        "squares": "def squares(n):\n    return [AlwaysEqual()] * n"}), "ok", 1.0, "only mean (correct) scores")
    cases["always_equal_int"] = Case(_submit({
        "add": "class E(int):\n    def __eq__(self, other):\n        return True\n"
               "    __hash__ = int.__hash__\ndef add(a, b):\n    return E(0)"}), "ok", 2.0)
    cases["hook_custom_exc"] = Case(_submit({"add": wrong_add, "squares": "def squares(n):\n    return []"}, before={
        "add": ("import sys\nip = get_ipython()\nip.set_custom_exc((BaseException,), lambda *a, **k: None)\n"
                "ip.showtraceback = lambda *a, **k: None\nsys.excepthook = lambda *a: None")}), "ok", 1.0)
    cases["hook_ast_transformer"] = Case(_submit({"add": wrong_add, "squares": "def squares(n):\n    return []"},
                                                 before={"add": (
        "import ast\nclass Swallow(ast.NodeTransformer):\n    def visit_Module(self, node):\n"
        "        handler = ast.ExceptHandler(type=ast.Name('BaseException', ast.Load()), name=None,"
        " body=[ast.Pass()])\n        node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler],"
        " orelse=[], finalbody=[])]\n        return ast.fix_missing_locations(node)\n"
        "get_ipython().ast_transformers.append(Swallow())")}), "ok", 1.0)
    cases["hook_pre_run_cell"] = Case(_submit({"add": wrong_add, "squares": "def squares(n):\n    return []"},
                                              before={"add": (
        "import builtins\n_real_eq = None\ndef _cheat(info):\n    builtins.AssertionError = Warning\n"
        "get_ipython().events.register('pre_run_cell', _cheat)")}), "ok", 1.0)
    cases["hook_settrace"] = Case(_submit({"add": wrong_add, "squares": "def squares(n):\n    return []"},
                                          before={"add": (
        "import sys\ndef _skip(frame, event, arg):\n    if event == 'exception':\n        return None\n"
        "    return _skip\nsys.settrace(_skip)")}), "ok", 1.0)
    cases["monkeypatch_helpers"] = Case(_submit({"mean": "def mean(xs):\n    return 0"}, before={"mean": (
        "import math, builtins\nmath.isclose = lambda *a, **k: True\nbuiltins.round = lambda *a: 0")}),
        "ok", 3.0, "math.isclose restored: the wrong mean fails")
    cases["stderr_warnings"] = Case(_submit({"add": (
        "import sys, warnings\ndef add(a, b):\n    warnings.warn('this is deprecated')\n"
        "    print('noise on stderr', file=sys.stderr)\n    return a + b")}), "ok", 4.0, "warnings cost nothing")
    cases["result_in_failing_test"] = Case(_submit({"add": (
        "def add(a, b):\n    get_ipython().displayhook(1.0)  # a partial-credit result, shown during the test\n"
        "    return 0")}), "ok", 2.0, "the failing test_add scores 0 whatever results it shows")
    cases["deep_json"] = Case(b'{"cells": ' + b"[" * 200_000 + b"]" * 200_000 + b', "nbformat": 4}',
                              "invalid_notebook", 0.0, "JSON nested too deeply")

    def metadata(value):
        def edit(nb):
            for cell in nb["cells"]:
                if cell["metadata"].get("nbgrader", {}).get("grade_id") == "add":
                    cell["metadata"]["nbgrader"] = value(cell["metadata"]["nbgrader"])
        return edit
    cases["metadata_list"] = Case(_submit({}, edit=metadata(lambda m: [m])), "invalid_notebook", 0.0)
    cases["metadata_grade_id_int"] = Case(_submit({}, edit=metadata(lambda m: {**m, "grade_id": 7})),
                                          "invalid_notebook", 0.0)
    cases["metadata_points_text"] = Case(_submit({}, edit=metadata(lambda m: {**m, "points": "lots"})),
                                         "invalid_notebook", 0.0)
    cases["huge_metadata"] = Case(_submit({}, before={"add": (
        "from IPython.display import display\n"
        "for _ in range(3):\n    display({'text/plain': 'x'}, metadata={'pad': 'y' * 600_000}, raw=True)")}),
        "resource_limit", 4.0, "an output's metadata counts against the output budget")
    cases["forged_reply"] = Case(_submit({"add": (
        "def add(a, b):\n    import inspect, linecache, re\n    ip = get_ipython()\n    kernel = ip.kernel\n"
        "    ip.showtraceback = lambda *a, **k: None  # no error output for the failing assert\n"
        "    for frame in inspect.stack():\n"
        "        found = re.search(r'autograder-ok-[0-9a-f]{32}', ''.join(linecache.getlines(frame.filename)))\n"
        "        if found:\n            break\n"
        "    print(found.group())  # the test's token, read from its own source\n"
        "    kernel.session.send(kernel.shell_stream, 'execute_reply', {'status': 'ok', 'execution_count': 1,\n"
        "                        'user_expressions': {}, 'payload': []}, parent=kernel.get_parent('shell'),\n"
        "                        ident=kernel._parent_ident['shell'])  # a signed 'ok' before the real error\n"
        "    return 0")}), "ok", 2.0, "the second reply to the test's request gives the forgery away")
    cases["memfd_fill"] = Case(_submit({}, before={"mean": (
        "import os\nfds = []\nfor i in range(12):  # 2.4 GB of files in memory: not address space, not on disk\n"
        "    fd = os.memfd_create(f'fill{i}')\n    os.write(fd, b'x' * 200 * 1024 * 1024)\n    fds.append(fd)")}),
        "kernel_died", 3.0, "memory-backed files count against the kernel's memory cgroup")
    cases["disk_fill"] = Case(_submit({}, before={"mean": (
        "import os\ntry:\n    for i in range(40):  # 40 files of 200 MB: under the per-file limit, 8 GB in all\n"
        "        with open(f'fill{i}', 'wb') as fh:\n            fh.write(b'x' * 200 * 1024 * 1024)\n"
        "except OSError as exc:\n    print('stopped at file', i, exc)\n"
        "finally:\n    for name in os.listdir('.'):\n"
        "        if name.startswith('fill'):\n            os.remove(name)")}),
        "ok", 4.0, "the scratch folder's total size is limited: 'No space left on device', points kept")
    _guard_cases(cases)
    cases["missing"] = Case(None, "missing", 0.0)
    return cases


def _guard_cases(cases: dict[str, Case]) -> None:
    """Submissions attacking the in-kernel guard of assert-based test cells (autograder/kernel_guard.py). Each one
    passes its target test under a guard that lacks the defence named in its note; with it, the target fails."""
    # 1. no guard object reachable by name: code running inside the test searches the test's globals, the
    # notebook's namespace, every module, the garbage collector and the test's own constants, and patches whatever
    # looks like the guard's comparison (an instance, its class, a function's code or defaults)
    cases["guard_hunt"] = Case(_submit({"add": (
        "import gc, sys, types\n"
        "def add(a, b):\n"
        "    spaces, done = [globals(), get_ipython().user_ns], []\n"
        "    spaces += [vars(m) for m in list(sys.modules.values()) if isinstance(m, types.ModuleType)]\n"
        "    try:\n"
        "        spaces.append(dict(enumerate(gc.get_objects())))\n"
        "    except RuntimeError as exc:\n"
        "        done.append(f'gc: {exc}')\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:  # the constants of the code running the test\n"
        "        spaces.append(dict(enumerate(frame.f_code.co_consts)))\n"
        "        frame = frame.f_back\n"
        "    for space in spaces:\n"
        "        for obj in list(space.values()):\n"
        "            try:\n"
        "                if isinstance(obj, types.ModuleType):\n"
        "                    continue\n"
        "                if isinstance(obj, types.FunctionType) and obj.__name__ in ('eq', 'ne', 'vet', 'fin'):\n"
        "                    for attr, value in (('__code__', (lambda *a, **k: True).__code__),\n"
        "                                        ('__defaults__', None), ('__kwdefaults__', None)):\n"
        "                        try:\n"
        "                            setattr(obj, attr, value)\n"
        "                            done.append(f'{obj.__name__}.{attr} set')\n"
        "                        except Exception as exc:\n"
        "                            done.append(f'{obj.__name__}.{attr}: {exc}')\n"
        "                elif callable(getattr(obj, 'eq', None)) and callable(getattr(obj, 'ne', None)):\n"
        "                    obj.eq, obj.ne = (lambda *a: True), (lambda *a: False)\n"
        "                    type(obj).eq = type(obj).ne = staticmethod(lambda *a: True)\n"
        "                    done.append(f'patched a {type(obj).__name__}')\n"
        "            except Exception:\n"
        "                pass\n"
        "    print(sorted(set(done)))\n"
        "    return 0")}), "ok", 2.0,
        "the comparison is a constant of the compiled test, nothing named: test_add fails")

    # 2. trust by identity, not by metadata: a comparison compiled under a library's file name, a class claiming
    # to be numpy's
    cheat = "class Cheat:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n" \
            "        return False\n"
    cases["forged_filename"] = Case(_submit({"add": (
        f"import numpy\n{cheat}"
        "for _method in (Cheat.__eq__, Cheat.__ne__):  # code 'from' numpy's own file\n"
        "    _method.__code__ = _method.__code__.replace(co_filename=numpy.__file__)\n"
        "def add(a, b):\n    return Cheat()")}), "ok", 2.0, "a forged co_filename is not trusted: test_add fails")
    cases["module_numpy"] = Case(_submit({"squares": (
        f"_ns = {{'__name__': 'numpy'}}\nexec({cheat!r}, _ns)\nCheat = _ns['Cheat']\n"
        "assert Cheat.__module__ == 'numpy'\n"
        "def squares(n):\n    return [Cheat()] * n")}), "ok", 3.0,
        "__module__ = 'numpy' (and <string> code) is not trusted: test_squares fails")

    # 3. hooks: an audit hook re-patching after the guard restored things, a tracer installed by the tested code
    # during the test, a thread re-patching between the guard's restore and the test
    wrong_mean = "def mean(xs):\n    return 0"
    cases["hook_audit"] = Case(_submit({"mean": (
        "import math, sys\n"
        "def _hook(event, args):  # runs at every exec: after the guard restored math.isclose\n"
        "    if event == 'exec':\n"
        "        math.isclose = lambda *a, **k: True\n"
        "        testing = sys.modules.get('numpy.testing')\n"
        "        if testing is not None:\n"
        "            testing.assert_allclose = lambda *a, **k: None\n"
        f"sys.addaudithook(_hook)\n{wrong_mean}")}), "ok", 3.0, "no audit hook is ever added: test_mean fails")
    cases["trace_mid_test"] = Case(_submit({"add": (
        "import sys\n"
        "def _tracer(frame, event, arg):  # makes the comparison's left side equal its right side\n"
        "    if event == 'call' and frame.f_code.co_name == 'eq' and 'b' in frame.f_locals:\n"
        "        frame.f_locals['a'] = frame.f_locals['b']\n"
        "    return None\n"
        "def add(a, b):\n"
        "    try:\n"
        "        sys.settrace(_tracer)\n"
        "    except RuntimeError as exc:\n"
        "        print('refused:', exc)\n"
        "    return 0")}), "ok", 2.0, "sys.settrace is refused while a test runs: test_add fails")
    cases["thread_patch"] = Case(_submit({"mean": (
        "import math, sys, threading, time\n"
        "def _repatch():\n"
        "    while True:\n"
        "        math.isclose = lambda *a, **k: True\n"
        "        testing = sys.modules.get('numpy.testing')\n"
        "        if testing is not None:\n"
        "            testing.assert_allclose = lambda *a, **k: None\n"
        "        time.sleep(0.001)\n"
        f"threading.Thread(target=_repatch, daemon=True).start()\n{wrong_mean}")}), "ok", 3.0,
        "a thread running notebook code stops the test: test_mean fails")

    # 4. a library module imported after the snapshot (numpy.testing, not preloaded): a mean right for the
    # math.isclose checks only, and numpy.testing.assert_allclose made harmless four ways
    cheat_mean = "def mean(xs):\n    return 2.0 if len(xs) < 4 else 0.0"
    fake = "import types\nfake = types.ModuleType('numpy.testing')\nfake.assert_allclose = lambda *a, **k: None\n"
    cases["late_noop"] = Case(_submit({"mean": (
        "import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None\n" + cheat_mean)}), "ok", 3.0,
        "the recorded function is put back for the test: test_mean fails")
    cases["late_fake_module"] = Case(_submit({"mean": (
        f"import sys\n{fake}sys.modules['numpy.testing'] = fake  # before anything imports it\n" + cheat_mean)}),
        "ok", 3.0, "a fake under an installed module's name is removed: the test imports the real one")
    cases["late_code_swap"] = Case(_submit({"mean": (
        "import numpy.testing\n"
        "try:\n"
        "    numpy.testing.assert_allclose.__code__ = (lambda *a, **k: None).__code__\n"
        "except RuntimeError as exc:\n"
        "    print('refused:', exc)\n" + cheat_mean)}), "ok", 3.0,
        "a recorded library function's code cannot be replaced: test_mean fails")
    cases["late_parent_attr"] = Case(_submit({"mean": (
        f"import numpy.testing\n{fake}numpy.testing = fake  # the package's attribute, not sys.modules\n"
        + cheat_mean)}), "ok", 3.0, "the package's attribute is put back for the test: test_mean fails")
