"""How many independent tasks run: serially, in a local process pool or on a Dask cluster.

Every feature that runs many solves (plan evaluation, the decomposition's scenario LPs,
sweeps) hands them to an `Executor` as `ex.map(fn, items, shared)`: `fn(shared, item)` is a
top-level (picklable) function, `shared` a large read-only object that reaches each worker
once, and every item comes back as a `TaskResult` in input order, with a status ('ok',
'failed', 'timeout'), the error text and the number of attempts. Nothing is lost silently.
`on_result(i, result)`, when given, is called in the calling thread as each item finishes
(in the order they finish), so that a caller can save results as they come.

Owns: the `Executor` interface, `TaskResult`, the serial back-end, the
per-worker cache (`worker_cache`), the environment of worker processes (one BLAS/OpenMP
thread, one HiGHS thread: `setup_worker`, `highs_threads`) and the rule of one level of
parallelism: in a worker (of our pool, of a Dask cluster, of a user's `multiprocessing.Pool`)
`runtime.factory.make_executor` returns a serial executor that says why
(`worker_reason`).

Must not touch: models, data, solvers or results. It runs functions it knows nothing about
and imports nothing of offtake; the back-ends live in `runtime.pool` (pebble) and
`runtime.cluster` (Dask), the choice between them in `runtime.factory`.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import threading
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

R = TypeVar("R")
Status = Literal["ok", "failed", "timeout"]

log = logging.getLogger("offtake.runtime")

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
"""Thread pools of numerical libraries, set to 1 in worker processes."""
HIGHS_THREADS = "OFFTAKE_HIGHS_THREADS"
"""HiGHS threads per worker process (read by `highs_threads`)."""
WORKER_VARIABLE = "OFFTAKE_RUNTIME_WORKER"
"""Set in every worker process (and so inherited by anything it starts)."""


@dataclass(frozen=True)
class TaskResult(Generic[R]):
    """What became of one item of `Executor.map`."""

    value: R | None = None
    """fn(shared, item), when status is 'ok'."""
    status: Status = "ok"
    error: str = ""
    """Why it failed: the exception ('ValueError: ...'), the worker's death (exit code or
    signal), or the timeout."""
    attempts: int = 1
    """Runs started: 2 when a worker died under the task and it was retried."""
    trace: str = ""
    """The worker's traceback, when the task raised."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


OnResult = Callable[[int, TaskResult], None]
"""Called as each item of `Executor.map` finishes: (its position, its result)."""


def worker_environment() -> dict[str, str]:
    """Environment variables of a worker process: one thread per library, one for HiGHS."""
    return {**dict.fromkeys(THREAD_VARIABLES, "1"), HIGHS_THREADS: "1"}


_WORKER: str | None = None


def setup_worker(kind: str) -> None:
    """Make this process a worker of `kind` (idempotent): thread variables to 1 (for
    libraries loaded from now on and for any child), the thread pools of those already loaded
    limited to 1 (threadpoolctl), and marked so that it never starts workers of its own."""
    global _WORKER
    if _WORKER is not None:
        return
    os.environ.update(worker_environment())
    os.environ[WORKER_VARIABLE] = kind
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception as exc:  # no BLAS loaded, or an unknown one: the variables still hold
        log.debug("threadpoolctl could not limit thread pools: %s", exc)
    _WORKER = kind


def worker_reason() -> str | None:
    """Why this process must not start worker processes, or None when it may: it is a
    worker of an offtake executor, runs under one, is a Dask worker, or is daemonic (a
    `multiprocessing.Pool` worker, which cannot have children)."""
    if _WORKER is not None:
        return f"this process is a worker of an offtake {_WORKER}"
    if os.environ.get(WORKER_VARIABLE):
        return f"this process runs under a worker of an offtake {os.environ[WORKER_VARIABLE]}"
    if "distributed" in sys.modules:
        from distributed import get_worker

        try:
            get_worker()
            return "this process is a Dask worker"
        except ValueError:
            pass
    if mp.current_process().daemon:
        return ("this process is a daemonic multiprocessing worker (e.g. of a "
                "multiprocessing.Pool), which cannot have children")
    return None


def in_worker() -> bool:
    return worker_reason() is not None


def highs_threads() -> int | None:
    """Threads each HiGHS instance may use here: 1 in a worker process (one level of
    parallelism), None (HiGHS's own choice) elsewhere."""
    if not in_worker():
        return None
    return int(os.environ.get(HIGHS_THREADS) or 1)


# --- the per-worker cache ----------------------------------------------------------------
_CACHES: OrderedDict[tuple[str, str], dict] = OrderedDict()
_CACHES_KEPT = 8
_CACHE_LOCK = threading.Lock()
_current_cache: ContextVar[dict | None] = ContextVar("offtake_runtime_cache", default=None)


def worker_cache() -> dict[Hashable, Any]:
    """Inside a task: a dict private to this worker process, kept across the tasks and the
    `map` calls of one executor with one shared object (e.g. a warm HiGHS instance built
    from the shared template). Outside a task: a new empty dict (nothing is kept)."""
    cache = _current_cache.get()
    return {} if cache is None else cache


def _cache_for(session: str, token: str) -> dict:
    with _CACHE_LOCK:
        cache = _CACHES.pop((session, token), None)
        if cache is None:
            cache = {}
        _CACHES[(session, token)] = cache
        while len(_CACHES) > _CACHES_KEPT:
            _CACHES.popitem(last=False)
        return cache


def forget_session(session: str) -> None:
    """Drop this process's caches of one executor (when it closes)."""
    with _CACHE_LOCK:
        for key in [k for k in _CACHES if k[0] == session]:
            del _CACHES[key]


def run_task(fn: Callable[[Any, Any], Any], shared: Any, item: Any, session: str,
             token: str) -> tuple[str, Any, str]:
    """fn(shared, item) with the worker cache of (session, token) in place: ('ok', value, '')
    or ('failed', 'Type: message', traceback). Runs in the worker (or, serially, here)."""
    reset = _current_cache.set(_cache_for(session, token))
    try:
        return "ok", fn(shared, item), ""
    except Exception as exc:
        return "failed", f"{type(exc).__name__}: {exc}", traceback.format_exc()
    finally:
        _current_cache.reset(reset)


# --- executors -----------------------------------------------------------------------------
class Executor:
    """Runs `fn(shared, item)` for many items; a context manager (`close` on exit).

    kind: the back-end that runs the tasks; requested: the one asked for (they differ when
    a worker runs serially); workers: tasks that run at once; scheduler: the address of the
    Dask scheduler it was given (None: none, or a local cluster of its own); timeout:
    seconds per task (None: no limit; not enforced by the serial back-end); note: why it
    runs as it does."""

    kind: str = "serial"
    scheduler: str | None = None

    def __init__(self, workers: int, timeout: float | None, requested: str | None = None,
                 note: str = ""):
        self.workers = workers
        self.timeout = timeout
        self.requested = requested or self.kind
        self.note = note
        self.session = uuid.uuid4().hex
        self._tokens: dict[int, tuple[Any, str]] = {}

    def map(self, fn: Callable[[Any, R], Any], items: Iterable[R],
            shared: Any = None, on_result: OnResult | None = None) -> list[TaskResult]:
        """fn(shared, item) for every item, results in input order. `shared` is read-only:
        it reaches each worker once per executor and stays there for later calls.
        `on_result(i, result)` is called here as item i finishes; if it raises, the tasks
        still running are cancelled and the exception propagates."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The executor as a report's entry: kind, workers and scheduler always; what was
        requested when it differs from kind, the timeout when there is one, the note."""
        out: dict[str, Any] = {"kind": self.kind, "workers": self.workers,
                               "scheduler": self.scheduler}
        if self.requested != self.kind:
            out["requested"] = self.requested
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.note:
            out["note"] = self.note
        return out

    def close(self) -> None:
        forget_session(self.session)
        self._tokens.clear()

    def _token(self, shared: Any) -> tuple[str, bool]:
        """A name for `shared` in this executor, and whether it is new (the executor holds
        the object, so its id stays unique while it is known)."""
        if shared is None:
            return "none", False
        known = self._tokens.get(id(shared))
        if known is not None and known[0] is shared:
            return known[1], False
        token = uuid.uuid4().hex
        self._tokens[id(shared)] = (shared, token)
        return token, True

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class SerialExecutor(Executor):
    """Every task in this process, one after the other (timeouts are not enforced)."""

    kind = "serial"

    def map(self, fn: Callable[[Any, R], Any], items: Iterable[R],
            shared: Any = None, on_result: OnResult | None = None) -> list[TaskResult]:
        token, _ = self._token(shared)
        out: list[TaskResult] = []
        for i, item in enumerate(items):
            status, value, trace = run_task(fn, shared, item, self.session, token)
            if status == "ok":
                out.append(TaskResult(value))
            else:
                out.append(TaskResult(None, "failed", value, 1, trace))
            if on_result is not None:
                on_result(i, out[-1])
        return out


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
