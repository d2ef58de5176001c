"""The grader's in-kernel guard: undo what student code did to the interpreter before a test cell runs.

This file is NOT imported by the grader: ``autograder.unit`` sends its source text into the student's kernel
(right after the kernel starts, before any student cell), where it takes a snapshot of the pristine interpreter;
before each autograder-test cell the grader calls ``before_test`` and after it ``after_test``. Each defence:

1. Exception-swallowing hooks. ``sys.excepthook``, ``sys.displayhook``, ``sys.settrace`` / ``sys.setprofile``
   (a tracer can jump over an ``assert`` by setting ``f_lineno``), ``threading.settrace``, IPython's
   ``set_custom_exc`` (``custom_exceptions`` / ``CustomTB``), ``ast_transformers`` (can wrap a cell in try/except),
   input transformers, ``pre_run_cell`` / ``pre_execute`` events, instance-level patches of shell methods
   (``showtraceback``, ``run_cell``...) and class-level patches of the shell's / kernel's / session's classes
   (``do_execute`` faking an "ok" reply) are all reset to the snapshot.
2. Monkeypatched builtins and checking helpers. The ``builtins`` module is restored from the snapshot; builtins
   shadowed in the notebook's namespace by names the test cell uses (``def len(x): return 3``) are moved aside
   while the test runs (and put back after: the student's later cells see their own names); module attributes
   patched since the snapshot (``math.isclose = lambda *a: True``, ``numpy.testing.assert_allclose = ...``) are
   restored, ``sys.modules`` entries swapped for fakes are restored; for modules first imported after the snapshot,
   any function or method of an installed (read-only) library whose code comes from notebook code is reported
   and fails the test cell rather than being trusted.
3. Objects that compare equal to anything. The grader rewrites every ``==`` / ``!=`` inside ``assert`` statements
   of test cells into ``<guard>.eq(a, b)`` / ``<guard>.ne(a, b)``: when the two sides are not of the same type,
   every leaf (recursing into lists, tuples, dicts, sets and object arrays) must have comparison/truth methods
   implemented by Python itself or an installed library, not by notebook code; otherwise the assertion fails
   with a message saying so. Same-type comparisons (an instructor testing a student's own class against itself)
   keep their normal meaning.
4. The grader (outside) also judges a test cell by the kernel's execute_reply status AND by a random token the
   rewritten cell prints as its very last action: a hook that swallows the exception cannot produce the token.

What this does NOT defend against (in-process defences cannot be complete): code that finds and edits this
guard's snapshot (e.g. through ``gc``) before the tests run; functions forged with a ``co_filename`` inside the
installed libraries; C-level tricks (ctypes writes into interpreter memory); an ``__eq__`` reached through
helpers that are not rewritten (``numpy.testing.assert_array_equal`` on object arrays, ``assert answer()``
relying on ``__bool__`` of a student object); a replaced execution machinery that strips assertions and still
runs the token line. The sandbox bounds what such code can reach: only this student's own score and files.
"""

# Everything below runs inside the student's kernel. Keep it dependency-free (stdlib only).
import builtins as _builtins
import sys as _sys
import threading as _threading
import types as _types

_CHECKED_METHODS = ("__eq__", "__ne__", "__bool__", "__len__")
_SHELL_METHODS = ("run_cell", "run_cell_async", "run_code", "run_ast_nodes", "showtraceback", "_showtraceback",
                  "showsyntaxerror", "get_exception_only", "transform_cell", "transform_ast", "should_run_async",
                  "CustomTB", "ex", "ev", "events")
_PRELOAD = ("math", "operator", "numpy", "numpy.testing", "numpy.linalg", "numpy.lib")
_MAX_LEAVES = 100_000


class GuardError(AssertionError):
    """Raised when notebook code tampered with something a test relies on."""


class _CappedStream:
    """``sys.stdout`` / ``sys.stderr`` that stop forwarding once the notebook's output budget is spent.

    Output past the budget is discarded in the kernel itself: a loop printing millions of lines would otherwise
    send them all to the grader, which must receive them before the next test can run -- on a busy machine long
    enough to time the later tests out. The budget (shared by both streams) is a little over the grader's, so the
    grader still sees that the output went over it and says so.
    """

    def __init__(self, stream, budget):
        self._stream, self._budget = stream, budget

    def write(self, text):
        if self._budget[0] <= 0:
            return len(text)
        self._budget[0] -= len(text)
        if self._budget[0] < 0:
            text = text[:len(text) + self._budget[0]] + "\n... output stopped in the kernel by the grader ...\n"
        return self._stream.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class Guard:
    def __init__(self, output_budget=None):
        import importlib

        if output_budget:
            budget = [int(output_budget)]
            _sys.stdout = _CappedStream(_sys.stdout, budget)
            _sys.stderr = _CappedStream(_sys.stderr, budget)
        for name in _PRELOAD:  # pre-import common checking helpers so their attributes get a snapshot
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a missing optional library is fine
                pass
        self.shell = get_ipython()  # noqa: F821 - provided by IPython in the kernel
        self.kernel = getattr(self.shell, "kernel", None)
        self.builtins = dict(vars(_builtins))
        self.sys_attrs = {k: getattr(_sys, k) for k in ("excepthook", "displayhook", "breakpointhook", "stdout",
                                                         "stderr", "stdin") if hasattr(_sys, k)}
        self.modules = dict(_sys.modules)
        self.module_attrs = {name: dict(vars(mod)) for name, mod in self.modules.items()
                             if mod is not None and name != "__main__"}
        self.trusted_prefixes = tuple(sorted({p for p in (_sys.prefix, _sys.base_prefix, _sys.exec_prefix)
                                              if p}))
        self.classes = {}
        for obj in (self.shell, self.kernel, getattr(self.kernel, "session", None),
                    getattr(self.shell, "displayhook", None), getattr(self.shell, "display_pub", None)):
            if obj is None:
                continue
            for cls in type(obj).__mro__:
                if cls is not object and cls not in self.classes:
                    self.classes[cls] = dict(vars(cls))
        sh = self.shell
        self.shell_state = {
            "ast_transformers": list(sh.ast_transformers),
            "input_transformers_post": list(getattr(sh, "input_transformers_post", [])),
            "input_transformers_cleanup": list(getattr(sh.input_transformer_manager, "cleanup_transforms", [])),
            "line_transforms": list(getattr(sh.input_transformer_manager, "line_transforms", [])),
            "token_transformers": list(getattr(sh.input_transformer_manager, "token_transformers", [])),
            "events": {k: list(v) for k, v in sh.events.callbacks.items()},
            "CustomTB": sh.CustomTB,
        }
        self.stashed = {}

    @property
    def stdout(self):
        """Where a test cell prints its token: past the output cap (it must always arrive)."""
        out = _sys.stdout
        return out._stream if isinstance(out, _CappedStream) else out

    # -- trust ------------------------------------------------------------------------------------------------
    def _trusted_function(self, func) -> bool:
        """A Python-level function is trusted when its code lives in the installed (read-only) Python/venv."""
        func = getattr(func, "__func__", func)
        code = getattr(func, "__code__", None)
        if not isinstance(code, _types.CodeType):
            # implemented in C (slot wrappers, builtins) or not a function at all; a class such as
            # types.FunctionType has a ``__code__`` *descriptor*, not a code object
            return True
        if code.co_filename.startswith(self.trusted_prefixes):
            return True
        # Libraries build functions with exec() too (dataclass methods, scipy.optimize's solvers, fastapi): their
        # code is named "<string>" but they belong to the library's module, not to the notebook's __main__.
        return code.co_filename == "<string>" and getattr(func, "__module__", "__main__") != "__main__"

    def _trusted_type(self, tp) -> bool:
        for name in _CHECKED_METHODS:
            for klass in tp.__mro__:
                if name in vars(klass):
                    if not self._trusted_function(vars(klass)[name]):
                        return False
                    break
        return True

    def _vet(self, a, b, budget):
        """Raise GuardError if comparing a with b could be decided by notebook-defined comparison code."""
        budget[0] -= 1
        if budget[0] < 0:
            return
        if type(a) is type(b):
            if isinstance(a, (list, tuple)) and len(a) == len(b):
                for x, y in zip(a, b):
                    self._vet(x, y, budget)
            elif isinstance(a, dict):
                for key in a:
                    if key in b:
                        self._vet(a[key], b[key], budget)
            elif type(a).__name__ == "ndarray" and getattr(a, "dtype", None) is not None and a.dtype == object:
                for x, y in zip(a.ravel().tolist(), b.ravel().tolist()):
                    self._vet(x, y, budget)
            return
        for side in (a, b):
            self._vet_one(side, budget)

    def _vet_one(self, value, budget):
        budget[0] -= 1
        if budget[0] < 0:
            return
        if not self._trusted_type(type(value)):
            raise GuardError(
                f"the value compared has type {type(value).__qualname__}, whose comparison is defined by notebook "
                "code: the grader does not trust it in a test (compare plain values such as numbers, strings, "
                "lists or arrays)")
        if isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                self._vet_one(item, budget)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._vet_one(key, budget)
                self._vet_one(item, budget)
        elif type(value).__name__ == "ndarray" and getattr(value, "dtype", None) == object:
            for item in value.ravel().tolist():
                self._vet_one(item, budget)

    def eq(self, a, b):
        self._vet(a, b, [_MAX_LEAVES])
        return a == b

    def ne(self, a, b):
        self._vet(a, b, [_MAX_LEAVES])
        return a != b

    # -- restoring --------------------------------------------------------------------------------------------
    def _restore_hooks(self):
        _sys.settrace(None)
        _sys.setprofile(None)
        _threading.settrace(None)
        _threading.setprofile(None)
        for key, value in self.sys_attrs.items():
            setattr(_sys, key, value)
        sh = self.shell
        sh.ast_transformers[:] = self.shell_state["ast_transformers"]
        if hasattr(sh, "input_transformers_post"):
            sh.input_transformers_post[:] = self.shell_state["input_transformers_post"]
        itm = sh.input_transformer_manager
        for attr, key in (("cleanup_transforms", "input_transformers_cleanup"), ("line_transforms", "line_transforms"),
                          ("token_transformers", "token_transformers")):
            if hasattr(itm, attr):
                getattr(itm, attr)[:] = self.shell_state[key]
        sh.events.callbacks.clear()
        sh.events.callbacks.update({k: list(v) for k, v in self.shell_state["events"].items()})
        sh.custom_exceptions = ()
        sh.CustomTB = self.shell_state["CustomTB"]
        for obj in (sh, self.kernel):
            if obj is None:
                continue
            for name in _SHELL_METHODS + ("do_execute", "execute_request", "send_response", "send"):
                if name in getattr(obj, "__dict__", {}) and name not in ("CustomTB", "events"):
                    del obj.__dict__[name]
        for cls, attrs in self.classes.items():
            current = dict(vars(cls))
            for name, value in attrs.items():
                if current.get(name, _MISSING) is not value and name not in ("__dict__", "__weakref__", "__doc__"):
                    try:
                        setattr(cls, name, value)
                    except (AttributeError, TypeError):
                        pass
            for name in current.keys() - attrs.keys():
                try:
                    delattr(cls, name)
                except (AttributeError, TypeError):
                    pass

    def _restore_modules(self):
        vars(_builtins).update(self.builtins)
        for name, module in self.modules.items():
            if _sys.modules.get(name) is not module:
                _sys.modules[name] = module
        for name, attrs in self.module_attrs.items():
            module = self.modules[name]
            current = vars(module)
            for key, value in attrs.items():
                if current.get(key, _MISSING) is not value and callable(value):
                    current[key] = value

    def _check_late_modules(self):
        """Modules imported after the snapshot: a library function replaced by notebook code fails the test."""
        problems = []
        for name, module in list(_sys.modules.items()):
            if name in self.modules or module is None or name == "__main__":
                continue
            path = getattr(module, "__file__", None) or ""
            if not path.startswith(self.trusted_prefixes):
                continue  # the student's own modules may do as they like
            for key, value in list(vars(module).items()):
                try:
                    func = getattr(value, "__func__", value)
                    code = getattr(func, "__code__", None)
                    owner = getattr(func, "__module__", "__main__")
                except Exception:  # a lazy-loading attribute (e.g. MLflow's optional integrations) failing to import
                    continue
                # exec'd library code is also named "<string>"; only functions of the notebook's __main__ count
                if isinstance(code, _types.CodeType) and _from_notebook(code.co_filename) and owner == "__main__":
                    problems.append(f"{name}.{key}")
        return problems

    def before_test(self, guard_name, used_names):
        self._restore_hooks()
        self._restore_modules()
        ns = self.shell.user_ns
        self.stashed = {}
        for name in used_names:
            if name in self.builtins and name in ns and ns[name] is not self.builtins[name]:
                self.stashed[name] = ns.pop(name)
        ns[guard_name] = self
        problems = self._check_late_modules()
        if problems:
            raise GuardError("library functions were replaced by notebook code: " + ", ".join(sorted(problems)[:10]))

    def after_test(self, guard_name):
        ns = self.shell.user_ns
        ns.pop(guard_name, None)
        ns.update(self.stashed)
        self.stashed = {}


_MISSING = object()


def _from_notebook(filename: str) -> bool:
    """Code compiled from a notebook cell (ipykernel names cells /tmp/ipykernel_<pid>/<hash>.py) or exec'd text."""
    return "ipykernel_" in filename or filename.startswith(("<ipython-input", "<string>"))
