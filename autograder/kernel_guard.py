"""The grader's in-kernel guard for assert-based (nbgrader-style) test cells.

This file is NOT imported by the grader: ``autograder.unit`` sends its source text into the student's kernel
(right after the kernel starts, before any student cell) and builds ``Guard(get_ipython(), budget)`` there, which
takes a snapshot of the pristine interpreter. Before each autograder-test cell the grader calls
``before_test(name, builtins_used)``, then sends the cell as rewritten by ``autograder/rewrite.py``, then calls
``after_test(name)``. (The course's own assignments use check cells: their answer key never enters the kernel, see
``autograder/checks.py``; none of what follows is needed for them.)

How a test cell is run
    The rewritten cell refers to ``<name>.eq(a, b)`` / ``<name>.ne(a, b)`` (every ``==`` / ``!=`` of an assert),
    ``print(token, file=<name>.stdout)`` (the verdict token, its last action) and ``<name>.result`` (the final value,
    nbgrader's partial credit). No object of that name exists anywhere: while a test runs, the shell's compiler is
    the guard's (``shell.compile`` is swapped by ``before_test``), which replaces these references in the cell's AST
    by constants -- the guard's own functions placed in the compiled code object's ``co_consts`` -- and compiles
    the cell with ``optimize=0`` (asserts kept). Student code that reads a test's globals, ``user_ns`` or
    ``sys.modules`` finds no helper to call or patch; code that digs one out of a frame's ``co_consts`` or the guard
    module finds functions it cannot change (below). If the guard's compiler is bypassed, the names stay unresolved
    and the test fails with NameError: every way around the guard fails the test, none passes it.

What student code cannot change (the "protected" functions)
    The functions that decide a verdict (``eq``/``ne`` and their vetting, the token writer ``fin``, the compiler,
    ``record`` which runs a library module at import, the audit hook) use no globals and no closure cells:
    everything they need -- builtins included -- is bound in their default arguments, which hold only immutable
    values (tuples, frozensets, builtin functions, code objects) or other protected functions. Their mutable state
    (the trust registry, the running test) lives in the defaults of two "holder" functions, rebound only by the
    protected functions allowed to (checked by code identity of the calling frame). Setting ``__code__``,
    ``__defaults__`` or ``__kwdefaults__`` of a protected function is refused by the guard's audit hook (below),
    and so is the same on a library function known to the guard: ``numpy.testing.assert_allclose.__code__ =
    noop.__code__`` raises RuntimeError.

Trust is identity, never metadata
    * Snapshot (pristine interpreter, before any student cell; ``math``, ``operator`` and ``numpy`` preloaded):
      every class alive is known, with the identity of each comparison/truth method in its own dict (``__eq__``,
      ``__ne__``, ``__bool__``, ``__len__``, ``__iter__``, ``__getitem__`` and numpy's ``__array*__`` protocol);
      every function alive (and the code objects nested in theirs), and every module's callables, by identity
      (strong references kept).
    * Modules imported later: the guard's import recorder (first finder of ``sys.meta_path``) takes over the
      loading of a module whose ``__spec__.origin`` is a file inside the Python installation / virtual environment
      (under the sandbox: a read-only one): it reads the module's bytecode (``__pycache__``, validated against the
      source) or source itself, clears the module's namespace, runs the code, and records the classes and functions
      reachable from the module's dict at that moment (functions whose ``__globals__`` is a known module's dict;
      classes whose comparison methods are such functions, C slots of the class itself, or plain data), the module's
      callables, and the code objects it ran. A module is known under its name only when that name designates the
      file (``a.b`` is ``<root>/a/b.py``...; the first record of a name stays the reference); a file the import
      system loads under another name (``tlz.curried.operator`` is toolz's file, through a borrowed ``__path__``)
      is an alias: its code is trusted, and it stands in sys.modules rightly as long as its name designates that
      file. While the recorder runs a library, a module from any other place cannot be imported
      (ModuleNotFoundError): a file the notebook wrote cannot join a library's namespace.
    * ``co_filename``, ``__module__``, ``__qualname__`` are never consulted: a class whose ``__eq__`` was compiled
      with a site-packages file name, or whose ``__module__`` is ``'numpy'``, is unknown, hence notebook code.

The comparisons (``eq`` / ``ne``)
    When both sides have the same type: a type the guard knows must still have its recorded comparison methods
    (else the assertion fails: the library class was patched); the notebook's own class keeps its own meaning (an
    instructor may test a student's class against itself). When the types differ, every leaf -- recursing into
    lists, tuples, dicts (keys first), sets and object arrays -- must be of a known, unpatched type, or of a class
    whose comparison methods are inherited from one (a class that defines any of them is notebook code). Type
    attributes are read through ``type``'s own descriptors, containers iterated through the builtin types' own
    methods: no metaclass or ``__class__`` property is consulted. More than 2 million leaves fail the assertion.

The verdict (``print(token, file=...)`` becomes the guard's ``fin(token)``)
    ``fin`` writes the token only if, at that moment: no trace or profile function is set; ``builtins`` and every
    known module's callables are the snapshot's (or import-time) objects; the ``sys.modules`` entries of known
    modules are the known module objects, known packages' ``__path__`` lists are unchanged, and no module object
    stands under the name of a module that the installation provides but the guard did not load (as that name's
    file, or as a known module under another name); the names of builtins the test uses are not bound in the
    notebook's namespace; no thread other than the kernel's own runs notebook code (a frame whose code object is not
    a known library's). Otherwise the test fails with GuardError naming the reason. The grader judges a test by the
    execute_reply status AND this token, so a hook that swallows the assertion's exception cannot pass it, and a
    second ("forged") reply or a kernel still busy after the reply fails it (``autograder/unit.py``).

Before each test (``before_test``, a convenience: ``fin`` is what enforces)
    A thread running notebook code fails the test at once (``before_test`` raises). Exception-swallowing hooks are
    reset to the snapshot: ``sys.excepthook``/``displayhook``, trace and profile functions (``sys`` and
    ``threading``), IPython's ``custom_exceptions``/``CustomTB``, ``ast_transformers``, input
    transformers, ``pre_run_cell``/``pre_execute`` events, instance-level patches of shell/kernel methods and
    class-level patches of the classes of the shell, kernel, session, display hook, compiler and output stream.
    ``builtins`` is restored; ``sys.modules`` entries and ``__path__`` of known modules are put back, a fake under a
    library's name is removed (the test's ``import`` then loads the real one through the recorder), a parent
    package's attribute naming a replaced submodule is put back; callables of known modules patched since the
    snapshot are restored for the test and put back after it (MLflow's autologging, for one, patches library
    functions on purpose); notebook variables shadowing builtins the test uses are moved aside for the test.

The guard's audit hook (``sys.addaudithook``, installed first, at the snapshot)
    * ``sys.addaudithook``: always refused (Python then silently does not add the hook) -- no student hook ever
      sees a test's ``exec``/``compile`` events or code objects;
    * ``sys.settrace`` / ``sys.setprofile``, ``gc.get_objects`` / ``get_referrers`` / ``get_referents`` and
      ``sys._current_frames`` (but for the guard's own thread check): refused with RuntimeError while a test cell's
      frame is on the calling thread's stack -- a ``__eq__``, property, ``__del__`` or finalizer running inside the
      test cannot install a tracer that jumps over an assert or rewrites the guard's locals, nor walk the heap.
      Test frames are recognized by a marker object the guard's compiler appends to their ``co_consts``. Outside
      tests these work as usual (a notebook may profile its own code). A thread's tracer -- ``sys.settrace`` in a
      thread, or ``threading.settrace`` for the threads started after it -- traces that thread only in 3.11, and a
      thread running notebook code fails the test anyway (above);
    * ``__code__`` / ``__defaults__`` / ``__kwdefaults__`` of protected or known library functions, and
      ``__class__`` of known modules: refused always;
    * ``sys.monitoring`` (PEP 669) exists from Python 3.12 on; the kernels run 3.11, where it does not exist.
      Moving to 3.12+ needs a check that no monitoring tool is registered, added next to the trace check in ``fin``.

What this does NOT defend against (in-process defences cannot be complete; the sandbox bounds what such code can
reach: this student's own score and files)
    * a replaced execution machinery: code that patches ipykernel so that the grader's requests never run as sent
      (e.g. a kernel handler table entry that answers "ok" and prints the token, which the cell's text contains);
    * C-level tricks: ``ctypes`` writes into interpreter memory, an extension module the notebook loads;
    * a library helper patched and put back within one test (``fin`` checks the state at the end of the test); a
      thread that patches something and exits before ``fin``; signal handlers;
    * an ``__eq__`` reached through helpers that are not rewritten (``numpy.testing.assert_array_equal`` on object
      arrays, ``assert x`` relying on ``__bool__`` of a student object, pandas objects holding student objects);
    * attributes other than comparison methods of library classes (``DataFrame.equals = ...``) and non-callable
      module attributes (``math.pi = 3``) patched by the notebook: checked neither before nor after a test;
    * objects a library imports while it is loaded from a module the notebook planted in ``sys.modules`` earlier;
      a module the guard knows, put in ``sys.modules`` under another library's name (accepted: ``distutils`` is
      setuptools' copy under that name);
    * in an unsandboxed kernel the installation itself is writable by notebook code: "read-only" is then not
      required of a library file, and not meaningful.
"""

# Everything below runs inside the student's kernel. Keep it dependency-free (stdlib only).
import builtins as _builtins
import sys as _sys
import threading as _threading
import types as _types

# comparison / truth methods whose owner class decides whether a value may be compared (see trust_of)
_CHECKED = (
    "__eq__",
    "__ne__",
    "__bool__",
    "__len__",
    "__iter__",
    "__getitem__",
    "__array__",
    "__array_ufunc__",
    "__array_function__",
    "__array_wrap__",
    "__array_interface__",
    "__array_struct__",
    "__array_priority__",
)
_SHELL_METHODS = (
    "run_cell",
    "run_cell_async",
    "run_code",
    "run_ast_nodes",
    "showtraceback",
    "_showtraceback",
    "showsyntaxerror",
    "get_exception_only",
    "transform_cell",
    "transform_ast",
    "should_run_async",
    "CustomTB",
    "ex",
    "ev",
    "events",
)
_COMPILER_METHODS = ("ast_parse", "cache", "extra_flags", "format_code_name", "get_code_name", "reset_compiler_flags")
_PRELOAD = ("math", "operator", "numpy")
_MAX_LEAVES = 2_000_000
# hooks the shell sets around every cell (reset separately by before_test): not compared as module callables
_VOLATILE = {"sys": ("displayhook", "excepthook", "breakpointhook", "unraisablehook")}
# the compiler flags a test cell is compiled with: the __future__ features the shell remembers, top-level await
_FLAG_MASK = 0x2000  # ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
for _feature in __import__("__future__").all_feature_names:
    _FLAG_MASK |= getattr(__import__("__future__"), _feature).compiler_flag
del _feature


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
            text = text[: len(text) + self._budget[0]] + "\n... output stopped in the kernel by the grader ...\n"
        return self._stream.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


_MISSING = object()


# ------------------------------------------------------------------------------------------------- snapshot
def _all_classes():
    """Every class alive (the subclass tree of ``object``)."""
    seen, stack = {}, [object]
    while stack:
        cls = stack.pop()
        if id(cls) not in seen:
            seen[id(cls)] = cls
            stack.extend(type.__subclasses__(cls))
    return list(seen.values())


def _nested_codes(code, into):
    """``code`` and every code object nested in its constants, into ``into`` (id -> code)."""
    stack = [code]
    while stack:
        co = stack.pop()
        if id(co) not in into:
            into[id(co)] = co
            stack.extend(c for c in co.co_consts if type(c) is _types.CodeType)


def _functions_in(values):
    """Plain functions among ``values`` (a namespace's values), including those behind static/class methods and
    properties."""
    for value in values:
        kind = type(value)
        if kind is _types.FunctionType:
            yield value
        elif kind in (staticmethod, classmethod):
            inner = value.__func__
            if type(inner) is _types.FunctionType:
                yield inner
        elif kind is property:
            for inner in (value.fget, value.fset, value.fdel):
                if type(inner) is _types.FunctionType:
                    yield inner


def _guard_codes():
    """id -> code of every code object of this module's functions and classes (the protected ones included)."""
    codes = {}
    for value in list(globals().values()):
        inside = list(vars(value).values()) if isinstance(value, type) else []
        for func in _functions_in([value, *inside]):
            _nested_codes(func.__code__, codes)
    return codes


def _snapshot_chunk():
    """The registry's first chunk: what the pristine interpreter holds (layout: see ``_make_core``)."""
    dict_of = type.__dict__["__dict__"].__get__
    classes = _all_classes()
    triples, refs = set(), [tuple(classes)]
    for cls in classes:
        own = dict_of(cls)
        for name in _CHECKED:
            if name in own:
                triples.add((id(cls), name, id(own[name])))
                refs.append(own[name])
    funcs, codes, modules, module_ids, dict_ids, paths = {}, {}, [], set(), set(), []
    for name, module in list(_sys.modules.items()):
        # type(), not isinstance(): cffi's compiled ``lib`` objects stand in sys.modules and claim
        # ``__class__ = module`` without being modules (no module __dict__ to read)
        if not issubclass(type(module), _types.ModuleType) or name in ("__main__", "builtins"):
            continue
        namespace = vars(module)
        if type(namespace.get("__path__")) is list:
            paths.append((module, namespace["__path__"], tuple(namespace["__path__"])))
        skip = _VOLATILE.get(name, ())
        modules.append(
            (name, module, tuple((k, v) for k, v in list(namespace.items()) if callable(v) and k not in skip))
        )
        module_ids.add(id(module))
        dict_ids.add(id(namespace))
        for func in _functions_in(list(namespace.values())):
            funcs[id(func)] = func
    for cls in classes:
        for func in _functions_in(list(dict_of(cls).values())):
            funcs[id(func)] = func
    import gc

    for obj in gc.get_objects():  # callbacks, lambdas in containers: every function of the pristine interpreter
        if type(obj) is _types.FunctionType:
            funcs[id(obj)] = obj
    for func in funcs.values():
        _nested_codes(func.__code__, codes)
        dict_ids.add(id(func.__globals__))  # a module that replaced itself in sys.modules ran in another dict
    refs += [tuple(funcs.values()), tuple(codes.values())]
    return (
        frozenset(map(id, classes)),
        frozenset(triples),
        frozenset(funcs),
        frozenset(codes),
        frozenset(module_ids),
        frozenset(dict_ids),
        tuple(modules),
        tuple(refs),
        (),
        tuple(paths),
    )


# ------------------------------------------------------------------------------------------------- the core
def _make_core(
    shell, snapshot, builtins_snapshot, kernel_threads, trusted_dirs, readonly, sentinel, guard_codes, record_codes
):
    """Build the protected functions (see the module docstring). Each function defined below uses only its own
    parameters: every dependency, builtins included, is a default argument (tests/test_unit.py checks that none
    reads a global or has a closure).

    Registry chunk layout: (class ids, (class id, name, method id) triples, function ids, code ids, module ids,
    module dict ids, ((name, module, ((key, callable), ...)), ...), strong references, ((alias module, its file),
    ...), ((package, its __path__ list, that list's entries), ...)).
    """
    import _imp
    import _io
    import ast
    import importlib.machinery as machinery
    import importlib.util
    import marshal
    import os

    FunctionType, CodeType, ModuleType, MethodType = (
        _types.FunctionType,
        _types.CodeType,
        _types.ModuleType,
        _types.MethodType,
    )
    mro_of = type.__dict__["__mro__"].__get__
    dict_of = type.__dict__["__dict__"].__get__
    name_of = type.__dict__["__qualname__"].__get__
    mdict_of = ModuleType.__dict__["__dict__"].__get__
    # C-level attributes of a class (slot wrappers, method/getset/member descriptors): made by the class itself
    c_descriptors = frozenset(
        {
            type(object.__eq__),
            type(str.join),
            type(dict.__dict__["fromkeys"]),
            type(FunctionType.__dict__["__globals__"]),
            type(type.__dict__["__dict__"]),
        }
    )
    plain_data = frozenset({type(None), int, float, bool, str})
    MISSING = _MISSING
    builtins_dict = vars(_builtins)
    raw_magic = int.from_bytes(importlib.util.MAGIC_NUMBER, "little")
    MARK = ("autograder test frame", sentinel)  # in every test cell's co_consts: the audit hook spots test frames
    # the installation's import roots (its sys.path entries at the snapshot): where top-level library modules live
    roots = frozenset(p.rstrip("/") for p in _sys.path if p and (p.rstrip("/") + "/").startswith(trusted_dirs))
    root_list = tuple(sorted(roots))
    try:
        import numpy

        nd = numpy.ndarray
        nd_dtype, nd_flat, nd_shape = (
            nd.__dict__["dtype"].__get__,
            nd.__dict__["flat"].__get__,
            nd.__dict__["shape"].__get__,
        )
        dtype_kind = numpy.dtype.__dict__["kind"].__get__
    except Exception:  # noqa: BLE001 - numpy is optional
        nd, nd_dtype, nd_flat, nd_shape, dtype_kind = type("_NoNumpy", (), {}), None, None, None, None

    # ---- holders: functions that only return their default; rebound by the updaters named in Guard.__init__
    def registry(r=(snapshot,)):
        return r

    def state(s=None):  # the running test: (guard name, builtin names used, stash, sealed, held result) or None
        return s

    # ---- trust
    def trust_of(
        tp,
        registry=registry,
        mro_of=mro_of,
        dict_of=dict_of,
        CHECKED=_CHECKED,
        id=id,
        type=type,
        c_descriptors=c_descriptors,
        plain_data=plain_data,
    ):
        """0: each checked method of ``tp`` is the recorded one of a known class, a C slot of its own class, or
        plain data; 1: a class unknown to the guard defines one (notebook code); 2: a known class's was replaced."""
        chunks = registry()
        for name in CHECKED:
            for klass in mro_of(tp):
                own = dict_of(klass)
                if name not in own:
                    continue
                obj = own[name]
                kid = id(klass)
                for chunk in chunks:
                    if kid in chunk[0]:
                        key = (kid, name, id(obj))
                        for chunk_ in chunks:
                            if key in chunk_[1]:
                                break
                        else:
                            return 2
                        break
                else:
                    kind = type(obj)
                    if not (kind in plain_data or (kind in c_descriptors and obj.__objclass__ is klass)):
                        return 1
                break
        return 0

    def vet(
        a,
        b,
        trust_of=trust_of,
        type=type,
        issubclass=issubclass,
        len=len,
        id=id,
        list=list,
        dict=dict,
        set_types=(set, frozenset),
        seq_types=(list, tuple),
        nd=nd,
        nd_dtype=nd_dtype,
        nd_flat=nd_flat,
        nd_shape=nd_shape,
        dtype_kind=dtype_kind,
        name_of=name_of,
        GuardError=GuardError,
        limit=_MAX_LEAVES,
        SINGLE=MISSING,
        keys_of=dict.keys,
        values_of=dict.values,
        zip=zip,
        contains=dict.__contains__,
        getitem=dict.__getitem__,
    ):
        """Raise GuardError unless comparing ``a`` with ``b`` is decided by Python's or a known library's code."""
        todo = [(a, b)]
        budget = limit
        verdicts = {}  # id(type) -> trust_of(type), for this call (the types stay alive while it runs)
        while todo:
            x, y = todo.pop()
            budget -= 1
            if budget < 0:
                raise GuardError(f"the values compared hold more than {limit} items: too many for the grader to check")
            tx = type(x)
            if y is not SINGLE and tx is type(y):
                verdict = verdicts.get(id(tx))
                if verdict is None:
                    verdict = verdicts[id(tx)] = trust_of(tx)
                if verdict == 2:
                    raise GuardError(
                        f"the values compared have type {name_of(tx)}, whose comparison methods were "
                        "replaced by notebook code: the grader does not trust them in a test"
                    )
                if verdict == 1:
                    continue  # the notebook's own class against itself: its own meaning
                if issubclass(tx, seq_types):
                    xs, ys = list(x), list(y)
                    if len(xs) == len(ys):
                        todo.extend(zip(xs, ys))
                elif issubclass(tx, dict):
                    keys = list(keys_of(x)) + list(keys_of(y))
                    while keys:  # keys first, all of them: the lookups below must not run notebook code
                        k = keys.pop()
                        budget -= 1
                        if budget < 0:
                            raise GuardError(
                                f"the values compared hold more than {limit} items: too many for the grader to check"
                            )
                        tk = type(k)
                        verdict = verdicts.get(id(tk))
                        if verdict is None:
                            verdict = verdicts[id(tk)] = trust_of(tk)
                        if verdict != 0:
                            raise GuardError(
                                f"a dict key compared has type {name_of(tk)}, whose comparison is "
                                "defined or replaced by notebook code: the grader does not trust it "
                                "in a test"
                            )
                        if issubclass(tk, seq_types) or issubclass(tk, set_types):
                            keys.extend(list(k))
                    for k in list(keys_of(x)):
                        if contains(y, k):
                            todo.append((getitem(x, k), getitem(y, k)))
                elif issubclass(tx, set_types):
                    todo.extend([(item, SINGLE) for item in list(x)])
                    todo.extend([(item, SINGLE) for item in list(y)])
                elif issubclass(tx, nd) and dtype_kind(nd_dtype(x)) == "O":
                    if nd_shape(x) == nd_shape(y):
                        todo.extend(zip(list(nd_flat(x)), list(nd_flat(y))))
                    else:
                        todo.extend([(item, SINGLE) for item in list(nd_flat(x))])
                        todo.extend([(item, SINGLE) for item in list(nd_flat(y))])
                continue
            for side in (x,) if y is SINGLE else (x, y):
                ts = type(side)
                verdict = verdicts.get(id(ts))
                if verdict is None:
                    verdict = verdicts[id(ts)] = trust_of(ts)
                if verdict == 1:
                    raise GuardError(
                        f"the value compared has type {name_of(ts)}, whose comparison is defined by "
                        "notebook code: the grader does not trust it in a test (compare plain values "
                        "such as numbers, strings, lists or arrays)"
                    )
                if verdict == 2:
                    raise GuardError(
                        f"the value compared has type {name_of(ts)}, whose comparison methods were "
                        "replaced by notebook code: the grader does not trust them in a test"
                    )
                if issubclass(ts, seq_types) or issubclass(ts, set_types):
                    todo.extend([(item, SINGLE) for item in list(side)])
                elif issubclass(ts, dict):
                    todo.extend([(item, SINGLE) for item in list(keys_of(side))])
                    todo.extend([(item, SINGLE) for item in list(values_of(side))])
                elif issubclass(ts, nd) and dtype_kind(nd_dtype(side)) == "O":
                    todo.extend([(item, SINGLE) for item in list(nd_flat(side))])

    def eq(a, b, vet=vet):
        vet(a, b)
        return a == b

    def ne(a, b, vet=vet):
        vet(a, b)
        return a != b

    # ---- what fin and before_test compare with
    def known_modules(registry=registry):
        """name -> (module, callables) of every known module."""
        found = {}
        for chunk in registry():
            for name, module, items in chunk[6]:
                if name not in found:  # the first record of a name stays the reference: none overrides it
                    found[name] = (module, items)
        return found

    def known_paths(registry=registry, id=id):
        """(package, its __path__ list, the entries it had) of every known package (the first record wins)."""
        found = {}
        for chunk in registry():
            for entry in chunk[9]:
                if id(entry[0]) not in found:
                    found[id(entry[0])] = entry
        return found.values()

    def is_library_file(
        path,
        trusted_dirs=trusted_dirs,
        readonly=readonly,
        type=type,
        str=str,
        access=os.access,
        W_OK=os.W_OK,
        rpartition=str.rpartition,
        startswith=str.startswith,
    ):
        """Whether ``path`` is a file of the Python installation / venv (read-only under the sandbox)."""
        if type(path) is not str or not startswith(path, trusted_dirs) or "/../" in path or "/./" in path:
            return False
        if readonly and (access(path, W_OK) or access(rpartition(path, "/")[0] or "/", W_OK)):
            return False
        return True

    def library_origin(
        name,
        modules=_sys.modules,
        find_spec=machinery.PathFinder.find_spec,
        is_library_file=is_library_file,
        roots=root_list,
        rpartition=str.rpartition,
        getattr=getattr,
        list=list,
        Exception=Exception,
    ):
        """The installation's file for the module name ``name`` (top-level names: in its import roots), or None."""
        parent = rpartition(name, ".")[0]
        try:
            path = list(roots)
            if parent:
                holder = modules.get(parent)
                path = getattr(holder, "__path__", None) if holder is not None else None
                if path is None:
                    return None
            spec = find_spec(name, path)
        except Exception:  # noqa: BLE001 - a broken finder or package: not provided
            return None
        if spec is not None and is_library_file(spec.origin):
            return spec.origin
        return None

    def fakes(
        modules=_sys.modules,
        known_modules=known_modules,
        library_origin=library_origin,
        registry=registry,
        list=list,
        id=id,
    ):
        """Names in sys.modules under which stands an object the guard did not load where the installation
        provides a module: not a known module (an alias such as ``distutils`` for setuptools' copy is fine), nor
        the very file this name designates loaded under it (``tlz.curried.operator`` is toolz's file)."""
        known = known_modules()
        named = {id(module) for module, _ in known.values()}
        aliases = {}
        for chunk in registry():
            for module, origin in chunk[8]:
                if id(module) not in aliases:
                    aliases[id(module)] = origin
        found = []
        for name in list(modules):
            if name in known or name == "__main__":
                continue
            oid = id(modules.get(name))
            if oid in named:
                continue
            origin = library_origin(name)
            if origin is not None and aliases.get(oid) != origin:
                found.append(name)
        return found

    def same(a, b, type=type, MethodType=MethodType):
        """Identity, or the same bound method made again (ipykernel rebinds ``input`` for every request)."""
        return a is b or (
            type(a) is MethodType and type(b) is MethodType and a.__self__ is b.__self__ and a.__func__ is b.__func__
        )

    def tampered(
        used,
        modules=_sys.modules,
        bdict=builtins_dict,
        bsnap=builtins_snapshot,
        user_ns=shell.user_ns,
        known_modules=known_modules,
        known_paths=known_paths,
        fakes=fakes,
        same=same,
        mdict_of=mdict_of,
        MISSING=MISSING,
        dict=dict,
        tuple=tuple,
    ):
        """What differs from the snapshot (an empty list when nothing does)."""
        problems = []
        snap = dict(bsnap)
        for name, value in bsnap:
            if not same(bdict.get(name, MISSING), value):
                problems.append(f"builtins.{name} was replaced")
        for name in used:
            current = user_ns.get(name, MISSING)
            if current is not MISSING and not same(current, snap.get(name, MISSING)):
                problems.append(f"the notebook defines {name}, a builtin this test uses")
        for name, (module, items) in known_modules().items():
            if modules.get(name, MISSING) is not module:
                problems.append(f"sys.modules[{name!r}] was replaced")
                continue
            if not items:
                continue
            namespace = mdict_of(module)
            for key, value in items:
                if not same(namespace.get(key, MISSING), value):
                    problems.append(f"{name}.{key} was replaced")
        for module, entries, saved in known_paths():
            if mdict_of(module).get("__path__") is not entries or tuple(entries) != saved:
                problems.append(f"the __path__ of package {module.__name__} was changed")
        for name in fakes():
            problems.append(f"sys.modules[{name!r}] is not the installed module")
        return problems

    def notebook_threads(
        current_frames=_sys._current_frames,
        get_ident=_threading.get_ident,
        registry=registry,
        kernel_threads=kernel_threads,
        guard_codes=guard_codes,
        id=id,
    ):
        """Idents of threads (other than the kernel's own) running code that is not a known library's."""
        found = []
        me = get_ident()
        chunks = registry()
        for ident, frame in current_frames().items():
            if ident == me or ident in kernel_threads:
                continue
            while frame is not None:
                cid = id(frame.f_code)
                if cid not in guard_codes:
                    for chunk in chunks:
                        if cid in chunk[3]:
                            break
                    else:
                        found.append(ident)
                        break
                frame = frame.f_back
        return found

    # ---- the verdict and the final value
    def fin(
        token,
        state=state,
        sys=_sys,
        gettrace=_sys.gettrace,
        getprofile=_sys.getprofile,
        tampered=tampered,
        notebook_threads=notebook_threads,
        CappedStream=_CappedStream,
        GuardError=GuardError,
        type=type,
        len=len,
    ):
        """Write the test's token if nothing was tampered with (see the module docstring), else fail."""
        current = state()
        if current is None:
            raise GuardError("the grader's guard is not running this test")
        problems = []
        if gettrace() is not None or getprofile() is not None:
            problems.append("a trace or profile function is set")
        problems += tampered(current[1])
        threads = notebook_threads()
        if threads:
            problems.append(f"{len(threads)} thread(s) running notebook code during the test")
        if problems:
            raise GuardError(
                "the grader cannot trust this test's result: "
                + "; ".join(problems[:5])
                + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
            )
        state.__defaults__ = ((current[0], current[1], current[2], True, current[4]),)
        out = sys.stdout  # past the output cap: the token must always arrive
        if type(out) is CappedStream:
            out = out._stream
        out.write(token + "\n")

    def hold(value, state=state, GuardError=GuardError):
        current = state()
        if current is None or current[3]:
            raise GuardError("the test's result was set after its verdict")
        state.__defaults__ = ((current[0], current[1], current[2], False, value),)

    def take(state=state):
        current = state()
        return None if current is None else current[4]

    def begin(guard_name, used, stash, state=state, tuple=tuple):
        state.__defaults__ = ((guard_name, tuple(used), stash, False, None),)

    def end(state=state):
        current = state()
        state.__defaults__ = (None,)
        return current

    def compact(registry=registry, frozenset=frozenset, tuple=tuple, len=len, set=set, range=range, id=id):
        """Merge the registry's chunks into one (lookups then cost one set membership each)."""
        chunks = registry()
        if len(chunks) < 2:
            return
        merged = [set(), set(), set(), set(), set(), set()]
        modules, refs, aliases, paths = {}, [], [], {}
        for chunk in chunks:
            for i in range(6):
                merged[i] |= chunk[i]
            for entry in chunk[6]:
                if entry[0] not in modules:
                    modules[entry[0]] = entry
            refs.append(chunk[7])
            aliases += chunk[8]
            for entry in chunk[9]:
                if id(entry[0]) not in paths:
                    paths[id(entry[0])] = entry
        new = (
            frozenset(merged[0]),
            frozenset(merged[1]),
            frozenset(merged[2]),
            frozenset(merged[3]),
            frozenset(merged[4]),
            frozenset(merged[5]),
            tuple(modules.values()),
            tuple(refs),
            tuple(aliases),
            tuple(paths.values()),
        )
        registry.__defaults__ = ((new,),)

    # ---- the compiler used while a test runs
    sentinels = (
        (sentinel + "eq", eq),
        (sentinel + "ne", ne),
        (sentinel + "fin", fin),
        (sentinel + "hold", hold),
        (sentinel + "take", take),
    )

    def rewrite_tree(
        tree,
        name,
        sentinel=sentinel,
        type=type,
        getattr=getattr,
        setattr=setattr,
        list=list,
        len=len,
        enumerate=enumerate,
        isinstance=isinstance,
        Name=ast.Name,
        Attribute=ast.Attribute,
        Constant=ast.Constant,
        Call=ast.Call,
        Expr=ast.Expr,
        Assign=ast.Assign,
        Load=ast.Load,
        AST=ast.AST,
        positions=("lineno", "col_offset", "end_lineno", "end_col_offset"),
    ):
        """Replace the test cell's references to ``name`` by calls of the guard's functions (sentinel constants
        for now: ``finish`` swaps them for the functions). A reference left over stays a name: NameError."""
        stack = [tree]
        while stack:
            node = stack.pop()
            for field in type(node)._fields:
                value = getattr(node, field, None)
                items = value if type(value) is list else [value]
                for i, item in enumerate(items):
                    if not isinstance(item, AST):
                        continue
                    kind, which, args = type(item), None, None
                    if (
                        kind is Assign
                        and len(item.targets) == 1
                        and type(item.targets[0]) is Attribute
                        and item.targets[0].attr == "result"
                        and type(item.targets[0].value) is Name
                        and item.targets[0].value.id == name
                    ):
                        which, args = "hold", [item.value]
                    elif (
                        kind is Call
                        and len(item.args) == 1
                        and len(item.keywords) == 1
                        and item.keywords[0].arg == "file"
                        and type(item.keywords[0].value) is Attribute
                        and item.keywords[0].value.attr == "stdout"
                        and type(item.keywords[0].value.value) is Name
                        and item.keywords[0].value.value.id == name
                    ):
                        which, args = "fin", item.args
                    elif (
                        kind is Attribute
                        and type(item.value) is Name
                        and item.value.id == name
                        and type(item.ctx) is Load
                        and item.attr in ("eq", "ne", "result")
                    ):
                        which = item.attr
                        args = [] if which == "result" else None
                        if which == "result":
                            which = "take"
                    if which is None:
                        stack.append(item)
                        continue
                    new = Attribute(value=Constant(value=sentinel + which), attr="__call__", ctx=Load())
                    parts = [new, new.value]
                    if args is not None:
                        new = Call(func=new, args=args, keywords=[])
                        parts.append(new)
                        stack.extend(args)
                        if kind is Assign:
                            new = Expr(value=new)
                            parts.append(new)
                    for part in parts:
                        for attr in positions:
                            setattr(part, attr, getattr(item, attr, 1))
                    if type(value) is list:
                        value[i] = new
                    else:
                        setattr(node, field, new)
        return tree

    def finish(
        code,
        sentinels=sentinels,
        MARK=MARK,
        CodeType=CodeType,
        type=type,
        tuple=tuple,
        str=str,
        reversed=reversed,
        id=id,
        set=set,
    ):
        """Swap the sentinel constants for the guard's functions and mark every code object as a test's."""
        order, seen, stack = [], set(), [code]
        while stack:
            co = stack.pop()
            if id(co) not in seen:
                seen.add(id(co))
                order.append(co)
                stack.extend([c for c in co.co_consts if type(c) is CodeType])
        done = {}
        for co in reversed(order):  # innermost first
            consts = []
            for c in co.co_consts:
                if type(c) is CodeType:
                    consts.append(done[id(c)])
                elif type(c) is str and c[:1] == "\0":
                    for key, func in sentinels:
                        if c == key:
                            consts.append(func)
                            break
                    else:
                        consts.append(c)
                else:
                    consts.append(c)
            done[id(co)] = co.replace(co_consts=tuple(consts) + (MARK,))
        return done[id(code)]

    def compiler(
        source,
        filename,
        symbol,
        *args,
        real=shell.compile,
        state=state,
        compile=compile,
        rewrite_tree=rewrite_tree,
        finish=finish,
        mask=_FLAG_MASK,
        only_ast=ast.PyCF_ONLY_AST,
        type=type,
        str=str,
        CodeType=CodeType,
        GuardError=GuardError,
        **kwargs,
    ):
        """``shell.compile`` while a test runs: the cell compiled with the guard's functions as constants."""
        current = state()
        if current is None:
            return real(source, filename, symbol, *args, **kwargs)
        flags = real.flags & mask
        tree = source
        if type(source) is str:
            tree = compile(source, filename, symbol, flags | only_ast, True, 0)
        code = compile(rewrite_tree(tree, current[0]), filename, symbol, flags, True, 0)
        if type(code) is not CodeType:
            raise GuardError("the test cell did not compile to code")
        return finish(code)

    # ---- the import recorder
    def recording(getframe=_sys._getframe, codes=record_codes, id=id):
        """Whether ``record`` is running a library module's code on this thread."""
        frame = getframe(1)
        while frame is not None:
            if id(frame.f_code) in codes:
                return True
            frame = frame.f_back
        return False

    def load_code(
        origin,
        sourceless,
        open_code=_io.open_code,
        stat=os.stat,
        loads=marshal.loads,
        compile=compile,
        magic=importlib.util.MAGIC_NUMBER,
        cache_tag=_sys.implementation.cache_tag,
        rpartition=str.rpartition,
        source_hash=_imp.source_hash,
        raw_magic=raw_magic,
        is_library_file=is_library_file,
        from_bytes=int.from_bytes,
        type=type,
        int=int,
        CodeType=CodeType,
        memoryview=memoryview,
        ImportError=ImportError,
        OSError=OSError,
        ValueError=ValueError,
        EOFError=EOFError,
    ):
        """The code object of a library file: its bytecode cache (``__pycache__/<name>.<tag>.pyc`` next to it, a
        library file too) when valid for the source, else the source compiled (never written back)."""
        if sourceless:
            with open_code(origin) as fh:
                data = fh.read()
            if data[:4] != magic:
                raise ImportError(f"bad magic number in {origin}")
            return loads(memoryview(data)[16:])
        source = None
        try:
            folder, _, filename = rpartition(origin, "/")
            cache = f"{folder}/__pycache__/{rpartition(filename, '.')[0]}.{cache_tag}.pyc"
            if is_library_file(cache):
                with open_code(cache) as fh:
                    data = fh.read()
                flags = from_bytes(data[4:8], "little")
                valid = False
                if data[:4] == magic and flags == 0:
                    st = stat(origin)
                    valid = (
                        from_bytes(data[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
                        and from_bytes(data[12:16], "little") == st.st_size & 0xFFFFFFFF
                    )
                elif data[:4] == magic and flags & 1:
                    if flags & 2:
                        with open_code(origin) as fh:
                            source = fh.read()
                        valid = source_hash(raw_magic, source) == data[8:16]
                    else:
                        valid = True
                if valid:
                    code = loads(memoryview(data)[16:])
                    if type(code) is CodeType:
                        return code
        except (OSError, ValueError, EOFError):  # no cache, or a broken one: the source
            pass
        if source is None:
            with open_code(origin) as fh:
                source = fh.read()
        return compile(source, origin, "exec", 0, True, -1)

    def any_known(key, chunks):
        """Whether a module namespace id is a known one (in any chunk)."""
        for chunk in chunks:
            if key in chunk[5]:
                return True
        return False

    def merge(a, b, frozenset=frozenset, tuple=tuple, id=id):
        """One chunk holding chunks ``a`` then ``b`` (records of ``a`` first: the first record of a name wins)."""
        paths = {id(entry[0]): entry for entry in b[9]}
        paths.update({id(entry[0]): entry for entry in a[9]})
        return (
            a[0] | b[0],
            a[1] | b[1],
            a[2] | b[2],
            a[3] | b[3],
            a[4] | b[4],
            a[5] | b[5],
            a[6] + b[6],
            (a[7], b[7]),
            a[8] + b[8],
            tuple(paths.values()),
        )

    def learn(
        name,
        module,
        code,
        ran_in,
        alias_of,
        any_known=any_known,
        registry=registry,
        mdict_of=mdict_of,
        dict_of=dict_of,
        type=type,
        issubclass=issubclass,
        id=id,
        list=list,
        frozenset=frozenset,
        tuple=tuple,
        callable=callable,
        range=range,
        set=set,
        FunctionType=FunctionType,
        CodeType=CodeType,
        ModuleType=ModuleType,
        CHECKED=_CHECKED,
        c_descriptors=c_descriptors,
        plain_data=plain_data,
        staticmethod=staticmethod,
        classmethod=classmethod,
        property=property,
    ):
        """The registry chunk for ``module``, just run by ``record`` in the namespace ``ran_in``: the module as
        the library made it. ``module`` is what the library left in sys.modules: some put another object there
        (pygments.formatters puts a module subclass with a ``__getattr__``), which is then the one recorded.
        ``alias_of``: the file, when the module's name does not designate it (the import system loaded it under
        another package's ``__path__``): its code is trusted, the name is not made known."""
        chunks = registry()
        is_module = issubclass(type(module), ModuleType)
        namespace = mdict_of(module) if is_module else {}
        own_dicts = {id(namespace), id(ran_in)}
        dict_ids = {}  # id of a function's namespace -> whether it is a known module's (memo for this call)
        known_classes = {}
        codes, funcs, classes, triples, refs = {}, {}, {}, set(), []
        stack = [code] if code is not None else []
        while stack:
            co = stack.pop()
            if id(co) not in codes:
                codes[id(co)] = co
                stack.extend([c for c in co.co_consts if type(c) is CodeType])
        values = list(namespace.values())
        level = [v for v in values if issubclass(type(v), type)]
        candidates = list(values)
        for _depth in range(3):  # the module's classes and the classes nested in them
            nested = []
            for cls in level:
                cid = id(cls)
                if cid in classes or cid in known_classes:
                    continue
                for chunk in chunks:
                    if cid in chunk[0]:
                        known_classes[cid] = cls  # already known: its recorded methods stay the reference
                        break
                else:
                    own = dict_of(cls)
                    ok = True
                    for method in CHECKED:
                        if method in own:
                            obj = own[method]
                            kind = type(obj)
                            if kind is FunctionType:
                                gid = id(obj.__globals__)
                                if gid not in dict_ids:
                                    dict_ids[gid] = gid in own_dicts or any_known(gid, chunks)
                            if not (
                                kind in plain_data
                                or (kind in c_descriptors and obj.__objclass__ is cls)
                                or (kind is FunctionType and dict_ids[id(obj.__globals__)])
                            ):
                                ok = False
                    if ok:
                        classes[cid] = cls
                        for method in CHECKED:
                            if method in own:
                                triples.add((cid, method, id(own[method])))
                                refs.append(own[method])
                        candidates += list(own.values())
                    nested += [v for v in list(own.values()) if issubclass(type(v), type)]
            level = nested
        for value in candidates:
            kind = type(value)
            inner = [value]
            if kind is staticmethod or kind is classmethod:
                inner = [value.__func__]
            elif kind is property:
                inner = [value.fget, value.fset, value.fdel]
            for func in inner:
                if type(func) is FunctionType:
                    gid = id(func.__globals__)
                    if gid not in dict_ids:
                        dict_ids[gid] = gid in own_dicts or any_known(gid, chunks)
                    if dict_ids[gid]:
                        funcs[id(func)] = func
                        stack.append(func.__code__)
        while stack:
            co = stack.pop()
            if id(co) not in codes:
                codes[id(co)] = co
                stack.extend([c for c in co.co_consts if type(c) is CodeType])
        items = tuple([(k, v) for k, v in list(namespace.items()) if callable(v)])
        refs += [tuple(classes.values()), tuple(funcs.values()), tuple(codes.values()), module, ran_in]
        path = namespace.get("__path__")
        paths = ((module, path, tuple(path)),) if type(path) is list and alias_of is None else ()
        return (
            frozenset(classes),
            frozenset(triples),
            frozenset(funcs),
            frozenset(codes),
            frozenset([id(module)] if is_module and alias_of is None else []),
            frozenset(own_dicts),
            ((name, module, items),) if alias_of is None else (),
            tuple(refs),
            ((module, alias_of),) if alias_of is not None else (),
            paths,
        )

    import _frozen_importlib
    import _frozen_importlib_external

    load_unlocked = _frozen_importlib._load_unlocked.__code__
    importlib_snapshot = tuple(
        (mod, tuple(vars(mod).items())) for mod in (_frozen_importlib, _frozen_importlib_external, _imp)
    )

    def importlib_intact(snapshot=importlib_snapshot, mdict_of=mdict_of, MISSING=MISSING):
        """Whether the import machinery's functions are those of the snapshot."""
        for module, items in snapshot:
            namespace = mdict_of(module)
            for key, value in items:
                if namespace.get(key, MISSING) is not value:
                    return False
        return True

    def named_by(
        name,
        origin,
        roots=roots,
        str=str,
        type=type,
        len=len,
        rpartition=str.rpartition,
        replace=str.replace,
        endswith=str.endswith,
        startswith=str.startswith,
    ):
        """Whether the library file ``origin`` is the one the module name ``name`` designates: ``a.b`` is
        ``<root>/a/b.py``, ``<root>/a/b/__init__.py`` or ``<root>/a/b.<tag>.so``, ``<root>`` one of the
        installation's import roots (its ``sys.path`` entries at the snapshot). Nobody records a library file
        under another module's name."""
        if type(name) is not str or type(origin) is not str:
            return False
        path = "/" + replace(name, ".", "/")
        folder, _, filename = rpartition(origin, "/")
        if filename in ("__init__.py", "__init__.pyc"):
            return endswith(folder, path) and folder[: len(folder) - len(path)] in roots
        package, _, last = rpartition(path, "/")
        if not (
            filename in (last + ".py", last + ".pyc")
            or (startswith(filename, last + ".") and endswith(filename, (".so", ".pyd")))
        ):
            return False
        return endswith(folder, package) and folder[: len(folder) - len(package)] in roots

    def record(
        loader,
        module,
        source_loader=machinery.SourceFileLoader,
        sourceless_loader=machinery.SourcelessFileLoader,
        extension_loader=machinery.ExtensionFileLoader,
        is_library_file=is_library_file,
        named_by=named_by,
        load_code=load_code,
        learn=learn,
        registry=registry,
        exec_dynamic=_imp.exec_dynamic,
        exec=exec,
        mdict_of=mdict_of,
        modules=_sys.modules,
        MISSING=MISSING,
        ModuleType=ModuleType,
        getframe=_sys._getframe,
        load_unlocked=load_unlocked,
        importlib_intact=importlib_intact,
        merge=merge,
        len=len,
        type=type,
        str=str,
        list=list,
        getattr=getattr,
        keep=frozenset(
            {"__name__", "__doc__", "__package__", "__loader__", "__spec__", "__path__", "__file__", "__cached__"}
        ),
    ):
        """``exec_module`` of a library module's loader: run the library file's own code in a cleared namespace,
        then record what it made (see the module docstring). Anyone may call it: it only ever records what a
        library file's own code makes, in a plain module object, known under the file's own module name (under
        another name it is an alias: see ``learn`` and ``fakes``)."""
        spec = getattr(module, "__spec__", None)
        name, origin = getattr(spec, "name", None), getattr(spec, "origin", None)
        kind = type(loader)
        if (
            type(module) is ModuleType
            and is_library_file(origin)
            and type(name) is str
            and (kind is source_loader or kind is sourceless_loader or kind is extension_loader)
        ):
            alias_of = None if named_by(name, origin) else origin
            namespace = mdict_of(module)
            before = modules.get(name, MISSING)
            if kind is extension_loader:
                # its code is the shared library's; the module object must be the one importlib's own
                # _load_unlocked just made from that file (else it could hold anything)
                caller = getframe(1)
                if (
                    caller.f_code is not load_unlocked
                    or caller.f_locals.get("module") is not module
                    or not importlib_intact()
                ):
                    kind.exec_module(loader, module)
                    return
                code = None
                exec_dynamic(module)
            else:
                code = load_code(origin, kind is sourceless_loader)
                for key in list(namespace):
                    if key not in keep:
                        del namespace[key]
                exec(code, namespace)
            after = modules.get(name, MISSING)
            # a library may put another object in sys.modules while it runs (pygments.formatters does)
            made = after if after is not before and after is not MISSING else module
            chunks = registry() + (learn(name, made, code, namespace, alias_of),)
            while (
                len(chunks) > 2
                and len(chunks[-2][3]) + len(chunks[-2][0]) <= 2 * (len(chunks[-1][3]) + len(chunks[-1][0])) + 64
            ):
                chunks = chunks[:-2] + (merge(chunks[-2], chunks[-1]),)
            registry.__defaults__ = (chunks,)
            return
        kind.exec_module(loader, module)  # not a library file: its loader's own way, nothing recorded

    return {
        "registry": registry,
        "state": state,
        "trust_of": trust_of,
        "vet": vet,
        "eq": eq,
        "ne": ne,
        "known_modules": known_modules,
        "known_paths": known_paths,
        "is_library_file": is_library_file,
        "library_origin": library_origin,
        "fakes": fakes,
        "same": same,
        "tampered": tampered,
        "notebook_threads": notebook_threads,
        "fin": fin,
        "hold": hold,
        "take": take,
        "begin": begin,
        "end": end,
        "compact": compact,
        "rewrite_tree": rewrite_tree,
        "finish": finish,
        "compiler": compiler,
        "recording": recording,
        "load_code": load_code,
        "learn": learn,
        "named_by": named_by,
        "importlib_intact": importlib_intact,
        "merge": merge,
        "any_known": any_known,
        "record": record,
        "MARK": MARK,
        "sentinels": sentinels,
    }


def _make_sentry(registry, mark, guard_codes, holder_codes, updater_codes, ping):
    """The guard's audit hook (see the module docstring). It keeps no state: what it knows is in its defaults."""

    def sentry(
        event,
        args,
        watched=frozenset(
            {
                "object.__setattr__",
                "object.__delattr__",
                "sys.addaudithook",
                "sys.settrace",
                "sys.setprofile",
                "gc.get_objects",
                "gc.get_referrers",
                "gc.get_referents",
                "sys._current_frames",
                "autograder.guard.ping",
            }
        ),
        in_test_events=frozenset(
            {
                "sys.settrace",
                "sys.setprofile",
                "gc.get_objects",
                "gc.get_referrers",
                "gc.get_referents",
                "sys._current_frames",
            }
        ),
        function_attrs=frozenset({"__code__", "__defaults__", "__kwdefaults__"}),
        FunctionType=_types.FunctionType,
        ModuleType=_types.ModuleType,
        registry=registry,
        guard_codes=guard_codes,
        holder_codes=holder_codes,
        updater_codes=updater_codes,
        MARK=mark,
        getframe=_sys._getframe,
        ping=ping,
        type=type,
        id=id,
        len=len,
        issubclass=issubclass,
        RuntimeError=RuntimeError,
    ):
        if event not in watched:
            return
        if event == "autograder.guard.ping":
            if len(args) == 1 and args[0] is ping:
                raise RuntimeError("autograder guard: audit hook installed")
            return
        if event == "sys.addaudithook":
            raise RuntimeError("the grader's kernel accepts no audit hook")
        if event in in_test_events:
            frame = getframe(1)
            if event == "sys._current_frames" and id(frame.f_code) in guard_codes:
                return
            while frame is not None:
                for const in frame.f_code.co_consts:
                    if const is MARK:
                        raise RuntimeError(f"{event} is refused while the grader runs a test")
                frame = frame.f_back
            return
        if len(args) < 2:  # object.__setattr__ / object.__delattr__: (obj, name[, value])
            return
        obj, attr = args[0], args[1]
        if type(obj) is FunctionType and attr in function_attrs:
            cid = id(obj.__code__)
            if cid in guard_codes:
                if attr == "__defaults__" and cid in holder_codes and id(getframe(1).f_code) in updater_codes:
                    return
                raise RuntimeError("the grader's functions cannot be changed")
            fid = id(obj)
            for chunk in registry():
                if fid in chunk[2]:
                    raise RuntimeError(f"{attr} of a library function cannot be changed in the grader's kernel")
            return
        if attr == "__class__" and issubclass(type(obj), ModuleType):
            mid = id(obj)
            for chunk in registry():
                if mid in chunk[4]:
                    raise RuntimeError("the class of a library module cannot be changed in the grader's kernel")

    return sentry


class _ImportRecorder:
    """First finder of ``sys.meta_path``: hands the loading of library modules to the guard's ``record``.

    Not protected itself: removing or patching it only means that later imports are not recorded (their classes
    unknown, their entries in sys.modules fakes), never that anything is trusted.
    """

    def __init__(self, record, recording, is_library_file, loader_types):
        self._record, self._recording, self._is_library_file = record, recording, is_library_file
        self._loader_types = loader_types

    def find_spec(self, name, path=None, target=None):
        import functools

        for finder in list(_sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if isinstance(finder, _ImportRecorder) or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        library = self._is_library_file(spec.origin)
        if library and type(loader) in self._loader_types and getattr(loader, "path", None) == spec.origin:
            loader.exec_module = functools.partial(self._record, loader)
        elif not library and spec.origin not in (None, "built-in", "frozen") and self._recording():
            raise ModuleNotFoundError(
                f"No module named {name!r} (a library being loaded in the grader's kernel "
                "cannot import a module from outside the installation)",
                name=name,
            )
        return spec

    def invalidate_caches(self):
        pass


class Guard:
    """The guard in one kernel: ``Guard(get_ipython(), output_budget)`` (see the module docstring).

    ``install=False`` builds it without touching the process (no audit hook, import recorder or output cap): the
    unit tests use that to exercise the comparison and registry logic in their own process. ``trusted_dirs``
    (default: the installation's prefixes) says where library files live.
    """

    def __init__(self, shell, output_budget=None, *, install=True, trusted_dirs=None):
        import importlib.machinery
        import os
        import secrets

        if install and output_budget:
            budget = [int(output_budget)]
            _sys.stdout = _CappedStream(_sys.stdout, budget)
            _sys.stderr = _CappedStream(_sys.stderr, budget)
        for name in _PRELOAD:  # pre-import common libraries: their classes and functions get a snapshot
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a missing optional library is fine
                pass
        self.shell = shell
        self.kernel = getattr(shell, "kernel", None)
        self.real_compile = shell.compile
        self.builtins = dict(vars(_builtins))
        self.sys_attrs = {
            k: getattr(_sys, k)
            for k in ("excepthook", "displayhook", "breakpointhook", "stdout", "stderr", "stdin")
            if hasattr(_sys, k)
        }
        self.classes = {}
        for obj in (
            shell,
            self.kernel,
            getattr(self.kernel, "session", None),
            getattr(shell, "displayhook", None),
            getattr(shell, "display_pub", None),
            self.real_compile,
            self.stdout,
        ):
            if obj is None:
                continue
            for cls in type(obj).__mro__:
                if cls is not object and cls not in self.classes and cls.__flags__ & (1 << 9):  # heap types
                    self.classes[cls] = dict(vars(cls))
        sh = shell
        self.shell_state = {
            "ast_transformers": list(sh.ast_transformers),
            "input_transformers_post": list(getattr(sh, "input_transformers_post", [])),
            "input_transformers_cleanup": list(getattr(sh.input_transformer_manager, "cleanup_transforms", [])),
            "line_transforms": list(getattr(sh.input_transformer_manager, "line_transforms", [])),
            "token_transformers": list(getattr(sh.input_transformer_manager, "token_transformers", [])),
            "events": {k: list(v) for k, v in sh.events.callbacks.items()},
            "CustomTB": sh.CustomTB,
        }
        self.stashed, self.patched = {}, {}
        if trusted_dirs is None:
            trusted_dirs = {
                q for p in (_sys.prefix, _sys.base_prefix, _sys.exec_prefix) if p for q in (p, os.path.realpath(p))
            }
        trusted_dirs = tuple(sorted({d.rstrip("/") + "/" for d in trusted_dirs}))
        site = next((p for p in _sys.path if p.endswith("site-packages") and p.startswith(trusted_dirs)), None)
        readonly = site is not None and not os.access(site, os.W_OK)  # sandboxed: the installation is read-only
        guard_codes = _guard_codes()
        record_codes = frozenset(i for i, c in guard_codes.items() if c.co_name == "record")
        self.core = core = _make_core(
            shell,
            _snapshot_chunk(),
            tuple(vars(_builtins).items()),
            frozenset(_sys._current_frames()),
            trusted_dirs,
            readonly,
            f"\0autograder:{secrets.token_hex(8)}:",
            frozenset(guard_codes),
            record_codes,
        )
        self.eq, self.ne, self.compiler = core["eq"], core["ne"], core["compiler"]
        self._delegate_compiler()
        holder_codes = frozenset(id(core[n].__code__) for n in ("registry", "state"))
        updater_codes = frozenset(id(core[n].__code__) for n in ("record", "fin", "hold", "begin", "end", "compact"))
        self._ping = object()
        self.sentry = _make_sentry(
            core["registry"], core["MARK"], frozenset(guard_codes), holder_codes, updater_codes, self._ping
        )
        machinery = importlib.machinery
        self.recorder = _ImportRecorder(
            core["record"],
            core["recording"],
            core["is_library_file"],
            (machinery.SourceFileLoader, machinery.SourcelessFileLoader, machinery.ExtensionFileLoader),
        )
        self.installed = install
        if install:
            _sys.addaudithook(self.sentry)
            _sys.meta_path.insert(0, self.recorder)

    def audit_hook_active(self) -> bool:
        """Whether this guard's audit hook is in place (an earlier guard in the same process refuses a second)."""
        try:
            _sys.audit("autograder.guard.ping", self._ping)
        except RuntimeError:
            return True
        return False

    @property
    def stdout(self):
        """The notebook's stdout past the output cap."""
        out = _sys.stdout
        return out._stream if isinstance(out, _CappedStream) else out

    def _delegate_compiler(self):
        """The guard's compiler answers IPython's calls on ``shell.compile`` with the real compiler's methods."""
        for attr in _COMPILER_METHODS:
            if hasattr(self.real_compile, attr):
                setattr(self.compiler, attr, getattr(self.real_compile, attr))
        self.compiler.flags = self.real_compile.flags

    # -- restoring --------------------------------------------------------------------------------------------
    def _restore_hooks(self):
        if _sys.gettrace() is not None:
            _sys.settrace(None)
        if _sys.getprofile() is not None:
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
        for attr, key in (
            ("cleanup_transforms", "input_transformers_cleanup"),
            ("line_transforms", "line_transforms"),
            ("token_transformers", "token_transformers"),
        ):
            if hasattr(itm, attr):
                getattr(itm, attr)[:] = self.shell_state[key]
        sh.events.callbacks.clear()
        sh.events.callbacks.update({k: list(v) for k, v in self.shell_state["events"].items()})
        sh.custom_exceptions = ()
        sh.CustomTB = self.shell_state["CustomTB"]
        for obj, names in (
            (sh, _SHELL_METHODS),
            (self.kernel, ("do_execute", "execute_request", "send_response", "send")),
            (self.real_compile, _COMPILER_METHODS + ("__call__",)),
            (self.stdout, ("write", "writelines", "flush")),
        ):
            for name in names:
                if obj is not None and name in getattr(obj, "__dict__", {}) and name not in ("CustomTB", "events"):
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
        sh.compile = self.real_compile
        self._delegate_compiler()
        if self.installed:
            _sys.meta_path[:] = [self.recorder] + [f for f in _sys.meta_path if not isinstance(f, _ImportRecorder)]

    def _restore_modules(self):
        """``builtins`` and ``sys.modules`` for good; the patched callables of known modules for this test."""
        core = self.core
        vars(_builtins).update(self.builtins)
        known = core["known_modules"]()
        for name, (module, _) in known.items():
            if _sys.modules.get(name) is not module:
                _sys.modules[name] = module
        for module, entries, saved in core["known_paths"]():  # what a package's submodule names designate
            namespace = vars(module)
            if namespace.get("__path__") is not entries:
                namespace["__path__"] = entries
            if tuple(entries) != saved:
                entries[:] = saved
        for name in core["fakes"]():  # the test's import then loads the installed module
            fake = _sys.modules.pop(name, None)
            parent, _, child = name.rpartition(".")
            holder = _sys.modules.get(parent)
            if issubclass(type(holder), _types.ModuleType) and vars(holder).get(child, _MISSING) is fake:
                del vars(holder)[child]
        same = core["same"]
        for name, (module, items) in known.items():
            if not items:
                continue
            namespace = vars(module)
            for key, value in items:
                current = namespace.get(key, _MISSING)
                if not same(current, value):
                    self.patched.setdefault((id(namespace), key), (namespace, key, current))
                    namespace[key] = value
            parent, _, child = name.rpartition(".")  # a package's attribute naming this (known) submodule
            if parent in known and issubclass(type(known[parent][0]), _types.ModuleType):
                holder = vars(known[parent][0])
                if child in holder and holder[child] is not module:
                    self.patched.setdefault((id(holder), child), (holder, child, holder[child]))
                    holder[child] = module

    def before_test(self, guard_name, used_names):
        """Reset what the notebook changed, then let the guard's compiler run the test cell (``guard_name``: the
        name the rewritten cell uses for the guard's functions)."""
        self.after_test(guard_name)  # a test left unfinished is finished first
        self._restore_hooks()
        self.core["compact"]()
        self._restore_modules()
        threads = self.core["notebook_threads"]()
        if threads:
            raise GuardError(
                f"{len(threads)} thread(s) started by notebook code are running: the grader does not "
                "run a test next to them"
            )
        ns = self.shell.user_ns
        self.stashed = {}
        for name in used_names:
            if name in self.builtins and name in ns and ns[name] is not self.builtins[name]:
                self.stashed[name] = ns.pop(name)
        self.core["begin"](guard_name, used_names, self.stashed)
        self.shell.compile = self.compiler

    def after_test(self, guard_name):
        """The notebook's names and patches back (its later cells see what they expect), the shell's compiler
        back."""
        self.core["end"]()
        if self.shell.compile is self.compiler:
            self.shell.compile = self.real_compile
        self.shell.user_ns.update(self.stashed)
        self.stashed = {}
        for holder, key, value in self.patched.values():
            if value is _MISSING:
                holder.pop(key, None)
            else:
                holder[key] = value
        self.patched = {}
