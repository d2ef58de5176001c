"""Grading engines: where the :class:`~autograder.job.GradeJob` units run (papermill's ``engines.py`` is the model).

An engine has one job: run ``fn(job)`` for every job and hand back each outcome *as it completes*, in whatever
order. It never decides scores and never touches the gradebook (only the grading process writes it). Two engines:

``local``
    a :class:`concurrent.futures.ProcessPoolExecutor` of ``workers`` long-lived processes. Workers are forked from a
    forkserver that has already imported the grading unit, so no job pays for Python start-up or for
    ``import nbformat`` (seconds, most of it jsonschema's dependencies): that, plus running ``workers`` kernels at
    once, is where the speed comes from. A worker process that dies (segfault, OOM killer...) costs an ``error``
    for the job it was running only: the pool is rebuilt and the other jobs are re-run.
``dask``
    a :class:`distributed.Client` connected to a scheduler address; the same jobs go through ``client.map`` and come
    back through ``distributed.as_completed``. Jobs are plain dataclasses, so the workers can be other machines
    (they need this package installed, not the course directory).

``map(fn, jobs)`` yields :class:`Outcome` objects: ``result`` is ``fn(job)``'s return value, or ``error`` holds the
exception (the caller turns it into an ``error`` status: one bad job never stops the batch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from .exceptions import EngineError, WorkerCrashed


@dataclass
class Outcome:
    """One finished job: ``result`` when ``fn(job)`` returned, else ``error`` (the exception, never raised here)."""

    index: int
    job: Any
    result: Any = None
    error: BaseException | None = None


def default_workers() -> int:
    """The machine's cores usable by this process (the ``--workers`` default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Engine:
    """Base class: ``map(fn, jobs)`` -> iterator of :class:`Outcome` as jobs complete. Use as a context manager."""

    name = "base"

    def map(self, fn: Callable, jobs: Iterable) -> Iterator[Outcome]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _run_marked(fn: Callable, job: Any, marker: str):
    """Run ``fn(job)`` in a worker, with ``marker`` existing exactly while it runs (see ``LocalEngine.map``)."""
    open(marker, "w").close()
    try:
        return fn(job)
    finally:
        os.unlink(marker)


def _warm_up() -> None:
    """Pool initializer: import the grading unit once per worker process (not once per job)."""
    try:
        import autograder.unit  # noqa: F401  (nbformat, nbclient, jupyter_client, nbgrader.utils)
    except ImportError:  # the unit is optional for engines running other functions
        pass


class LocalEngine(Engine):
    """``workers`` local processes (``ProcessPoolExecutor``), kept alive across jobs."""

    name = "local"

    def __init__(self, workers: int | None = None, start_method: str = "forkserver"):
        self.workers = max(1, int(workers or default_workers()))
        self.start_method = start_method
        self._pool = None

    def _new_pool(self, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            # The forkserver imports the unit once; every worker is forked from it already warm.
            ctx.set_forkserver_preload(["autograder.unit"])
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_warm_up)

    def map(self, fn: Callable, jobs: Iterable) -> Iterator[Outcome]:
        import tempfile
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        pending = list(enumerate(jobs))
        # When a worker dies, ProcessPoolExecutor fails *every* unfinished future with BrokenProcessPool and cannot
        # say which job was running where. Each job therefore leaves a marker file while it runs: after a crash the
        # marked jobs are the suspects, re-run one at a time in a pool of one (a crash there is that job's error);
        # the jobs that had not started are simply re-queued.
        with tempfile.TemporaryDirectory(prefix="autograder-engine-") as markers:
            while pending:
                self._pool = self._new_pool(min(self.workers, len(pending)))
                futures = {
                    self._pool.submit(_run_marked, fn, job, os.path.join(markers, str(index))): (index, job)
                    for index, job in pending
                }
                pending, suspects = [], []
                try:
                    not_done = set(futures)
                    while not_done:
                        done, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                        broken = False
                        for future in done:
                            index, job = futures[future]
                            try:
                                yield Outcome(index, job, result=future.result())
                            except BrokenProcessPool:
                                broken = True
                                started = os.path.exists(os.path.join(markers, str(index)))
                                (suspects if started else pending).append((index, job))
                            except Exception as exc:  # noqa: BLE001 - a job's failure is that job's error
                                yield Outcome(index, job, error=exc)
                        if broken:
                            for future in not_done:
                                index, job = futures[future]
                                started = os.path.exists(os.path.join(markers, str(index)))
                                (suspects if started else pending).append((index, job))
                            break
                finally:
                    self._pool.shutdown(wait=True, cancel_futures=True)
                    self._pool = None
                for index, job in sorted(suspects, key=lambda p: p[0]):
                    os.unlink(os.path.join(markers, str(index)))
                    with self._new_pool(1) as solo:
                        try:
                            yield Outcome(index, job, result=solo.submit(fn, job).result())
                        except BrokenProcessPool:
                            yield Outcome(
                                index,
                                job,
                                error=WorkerCrashed("the grading worker process died while grading this submission"),
                            )
                        except Exception as exc:  # noqa: BLE001
                            yield Outcome(index, job, error=exc)
                pending.sort(key=lambda p: p[0])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskEngine(Engine):
    """Jobs on a Dask distributed cluster: ``distributed.Client(address)``, ``client.map`` + ``as_completed``."""

    name = "dask"

    def __init__(self, scheduler: str | Any, timeout: float = 30.0, job_timeout: float | None = None):
        #: seconds without any job finishing after which the jobs still out are given up (None: wait forever).
        #: The grader passes the longest a job can take under its limits, so only a hung or lost worker hits it.
        self.job_timeout = job_timeout
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - distributed is a dependency
            raise EngineError("the dask engine needs the 'distributed' package") from exc
        try:
            # ``scheduler`` is an address ("tcp://host:8786") or a cluster object (LocalCluster in tests).
            self.client = Client(scheduler, timeout=timeout)
        except OSError as exc:
            raise EngineError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc

    def map(self, fn: Callable, jobs: Iterable) -> Iterator[Outcome]:
        from distributed import wait

        jobs = list(jobs)
        if not jobs:
            return
        # pure=False: two identical submissions are still two jobs; retries=0 (grading is not idempotent-safe to
        # repeat silently: a crash must be reported). Dask itself reschedules a task whose worker died up to
        # ``distributed.scheduler.allowed-failures`` times, then raises KilledWorker: that job's error only.
        futures = self.client.map(
            fn, jobs, pure=False, key=[f"grade-{i}-{getattr(j, 'student_id', i)}" for i, j in enumerate(jobs)]
        )
        index_of = {f.key: i for i, f in enumerate(futures)}
        pending = set(futures)
        while pending:
            # distributed.as_completed has only a total timeout; what must be bounded is the wait for the NEXT
            # result (a batch may rightly take hours on a small cluster), hence wait(FIRST_COMPLETED) in a loop.
            try:
                done, pending = wait(pending, timeout=self.job_timeout, return_when="FIRST_COMPLETED")
            except TimeoutError:
                for future in sorted(pending, key=lambda f: index_of[f.key]):
                    i = index_of[future.key]
                    future.cancel()
                    yield Outcome(
                        i,
                        jobs[i],
                        error=EngineError(
                            f"no result from the Dask cluster within {self.job_timeout:g} s (a worker hung or the "
                            "cluster lost its workers); the job was cancelled"
                        ),
                    )
                return
            for future in sorted(done, key=lambda f: index_of[f.key]):
                i = index_of[future.key]
                try:
                    yield Outcome(i, jobs[i], result=future.result())
                except Exception as exc:  # noqa: BLE001
                    yield Outcome(i, jobs[i], error=exc)
                finally:
                    future.release()

    def close(self) -> None:
        self.client.close()


#: name -> engine class (the registry; papermill's ``papermill_engines`` is the model).
ENGINES: dict[str, type[Engine]] = {"local": LocalEngine, "dask": DaskEngine}


def add_engine_arguments(parser) -> None:
    """``--workers N`` / ``--scheduler ADDRESS`` (one or the other) on a command's argparse parser: where its jobs
    run. ``grade`` and ``watch`` share them."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="local worker processes grading in parallel (default: the machine's cores)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the jobs on a Dask distributed cluster, e.g. tcp://127.0.0.1:8786 "
        "(workers need this package installed, not the course directory)",
    )


def get_engine(name: str = "local", **kwargs) -> Engine:
    """An engine by registry name: ``get_engine("local", workers=2)``, ``get_engine("dask", scheduler=addr)``."""
    try:
        cls = ENGINES[name]
    except KeyError:
        raise EngineError(f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}") from None
    return cls(**kwargs)
