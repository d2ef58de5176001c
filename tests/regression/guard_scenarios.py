"""The attacks of the regression set's guard cases, against the installed in-kernel guard, in seconds.

Run by tests/test_unit.py in a process of its own (the guard's audit hook cannot be removed once added): an
in-process IPython shell gets the guard exactly as a grading kernel does, each test cell is run as the grader runs
it (before_test, the rewritten cell, the token, after_test). Prints ``RESULT`` and one JSON object: scenario ->
outcome (passed, what went wrong, what the cell printed).
"""

import json
import sys
import time

from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from autograder.rewrite import builtin_names_used, harden_test_source
from autograder.unit import guard_install_code

sh = InteractiveShell.instance()
assert sh.run_cell(guard_install_code("_guard"), store_history=False).error_in_exec is None
GUARD = sys.modules["_guard"].GUARD
out, counter = {}, [0]


def cell(source):
    with capture_output(display=False) as captured:
        result = sh.run_cell(source, store_history=True)
    return result, captured.stdout


def graded(source):
    counter[0] += 1
    name, token = f"_grader_s{counter[0]}", f"autograder-ok-{counter[0]:08d}"
    try:
        GUARD.before_test(name, builtin_names_used(source))
    except Exception as exc:  # noqa: BLE001 - the grader fails the test with this message
        return False, f"before_test: {exc}", ""
    try:
        result, printed = cell(harden_test_source(source, name, token))
    finally:
        GUARD.after_test(name)
    error = result.error_in_exec or result.error_before_exec
    return error is None and token in printed, f"{type(error).__name__}: {error}" if error else "", printed


TEST_ADD = "assert add(1, 2) == 3\nassert add(-1, 1) == 0"
out["hook installed"] = GUARD.audit_hook_active()
cell("def add(a, b):\n    return a + b")
out["honest"] = graded(TEST_ADD + "\nimport numpy.testing\nnumpy.testing.assert_allclose(add(0.5, 0.5), 1.0)\n2.0")
# an extension module first imported in a test (decimal's C part, _decimal): recorded through importlib's loader
passed, error, printed = graded(
    "import decimal, sys\nassert decimal.Decimal('1.5') == 1.5\n"
    "print('_decimal' in sys.modules['_guard'].GUARD.core['known_modules']())"
)
out["late extension module"] = (passed, error, printed.split("autograder-ok")[0].strip())

# 1. hunting the guard from inside the test: globals, the notebook's namespace, every module, gc, the test's code
cell("""
import gc, sys, types
def add(a, b):
    done = []
    spaces = [globals(), get_ipython().user_ns] + [vars(m) for m in list(sys.modules.values())
                                                   if isinstance(m, types.ModuleType)]
    try:
        spaces.append(dict(enumerate(gc.get_objects())))
    except RuntimeError:
        done.append("gc refused")
    frame = sys._getframe(1)
    while frame is not None:
        spaces.append(dict(enumerate(frame.f_code.co_consts)))
        frame = frame.f_back
    for space in spaces:
        for obj in list(space.values()):
            if isinstance(obj, types.FunctionType) and obj.__name__ in ("eq", "ne"):
                for attr, value in (("__code__", (lambda *a: True).__code__), ("__defaults__", None)):
                    try:
                        setattr(obj, attr, value)
                        done.append(f"{attr} changed")
                    except RuntimeError:
                        done.append(f"{attr} refused")
    print(sorted(set(done)))
    return 0
""")
out["hunt"] = graded(TEST_ADD)

# 3. hooks: an audit hook, a tracer set by a __del__ during the test, gc, threads
cell("import sys\nseen = []\nsys.addaudithook(lambda event, args: seen.append(event))\nimport json")
out["audit hook added"] = bool(sh.user_ns["seen"])
cell("""
import sys
class Tracer:
    def __del__(self):
        try:
            sys.settrace(lambda *a: None)
            print("tracer set")
        except RuntimeError as exc:
            print("refused:", exc)
def add(a, b):
    Tracer()
    return 0
""")
out["tracer from __del__"] = graded(TEST_ADD)
out["trace function after the test"] = sys.gettrace() is None
result, printed = cell(
    "import sys, gc\nsys.settrace(lambda *a: None)\nsys.settrace(None)\nprint(len(gc.get_objects()) > 0)"
)
out["settrace and gc outside a test"] = (result.error_in_exec is None, printed.strip())
cell("def add(a, b):\n    return a + b")
cell(
    "import threading, time\nstop = False\ndef spin():\n    while not stop:\n        time.sleep(0.001)\n"
    "threading.Thread(target=spin, daemon=True).start()"
)
out["thread alive before"] = graded(TEST_ADD)
cell("stop = True\nimport time\ntime.sleep(0.05)")
cell(
    "import threading, time\ndef add(a, b):\n"
    "    threading.Thread(target=lambda: [time.sleep(0.001) for _ in range(300)], daemon=True).start()\n"
    "    return a + b"
)
out["thread started during"] = graded(TEST_ADD)
time.sleep(0.5)

# 4. numpy.testing, imported after the snapshot, made harmless four ways
cell("def mean(xs):\n    return 0.0")
TEST_MEAN = "import numpy.testing\nnumpy.testing.assert_allclose(mean([1, 3]), 2.0)"
FAKE = "import types\nfake = types.ModuleType('numpy.testing')\nfake.assert_allclose = lambda *a, **k: None\n"
for name, attack in (
    ("fake module", "import sys\n" + FAKE + "sys.modules['numpy.testing'] = fake"),
    (
        "code swap",
        "import numpy.testing\ntry:\n"
        "    numpy.testing.assert_allclose.__code__ = (lambda *a, **k: None).__code__\n"
        "except RuntimeError as exc:\n    print('refused:', exc)",
    ),
    ("no-op", "import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None"),
    ("package attribute", "import numpy.testing\n" + FAKE + "numpy.testing = fake"),
):
    result, printed = cell(attack)
    out[name] = (*graded(TEST_MEAN), printed.strip())
print("RESULT" + json.dumps(out))
