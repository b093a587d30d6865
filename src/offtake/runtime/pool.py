"""The local process-pool back-end of `runtime.executor`, on pebble's `ProcessPool`.

Workers are spawned (never forked: HiGHS and BLAS threads of the parent do not survive a
fork), set up by `executor.setup_worker` (one thread per library, one HiGHS thread), and live
as long as the executor. They start when the executor is made and import the `preload`
modules then (a spawned worker needs about a second to import the model code), while the
caller prepares its first tasks.

Each task has a hard wall-clock timeout (pebble stops the worker and starts a new one); a
task whose worker dies (a crash, `os._exit`, the kernel's OOM killer) is retried once and
then reported 'failed' with the exit code or signal. The shared object is pickled once into
a private temporary folder and loaded once per worker process.

Owns the pool and its temporary folder; must not touch anything of offtake beyond
`runtime.executor`.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import pickle
import signal
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

from pebble import ProcessExpired, ProcessPool

from offtake.runtime.executor import (
    Executor,
    OnResult,
    R,
    TaskResult,
    run_task,
    setup_worker,
)

ATTEMPTS = 2
"""Runs of a task whose worker dies: the first and one retry."""

_SHARED: OrderedDict[str, Any] = OrderedDict()
"""In a worker: the shared objects it has loaded, by token (the last few)."""
_SHARED_KEPT = 4


def _init_worker(preload: tuple[str, ...] = ()) -> None:
    setup_worker("process pool")
    for name in preload:
        importlib.import_module(name)


def _started(shared: Any, item: Any) -> None:
    """The task that starts the workers."""


def _load_shared(token: str, path: str | None) -> Any:
    if path is None:
        return None
    if token in _SHARED:
        _SHARED.move_to_end(token)
        return _SHARED[token]
    with open(path, "rb") as f:
        obj = pickle.load(f)
    _SHARED[token] = obj
    while len(_SHARED) > _SHARED_KEPT:
        _SHARED.popitem(last=False)
    return obj


def _pool_task(fn: Callable, item: Any, token: str, path: str | None,
               session: str) -> tuple[str, Any, str]:
    """Runs in a worker: the shared object (loaded once), then the task."""
    return run_task(fn, _load_shared(token, path), item, session, token)


def death(code: int | None) -> str:
    """A worker's exit code in words."""
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class ProcessExecutor(Executor):
    """A pool of `workers` spawned processes (see the module's docstring)."""

    kind = "process"

    def __init__(self, workers: int, timeout: float | None = None,
                 preload: tuple[str, ...] = ()):
        super().__init__(workers, timeout)
        self._pool = ProcessPool(max_workers=workers, initializer=_init_worker,
                                 initargs=(tuple(preload),), context=mp.get_context("spawn"))
        self._folder = tempfile.TemporaryDirectory(prefix="offtake-runtime-")
        self._paths: dict[str, str] = {}
        self._pool.schedule(_started, args=(None, None))  # the pool starts its workers now

    def _publish(self, shared: Any) -> tuple[str, str | None]:
        """The shared object's token and the file its workers load it from."""
        token, new = self._token(shared)
        if shared is None:
            return token, None
        if new or token not in self._paths:
            path = Path(self._folder.name) / f"{token}.pickle"
            with open(path, "wb") as f:
                pickle.dump(shared, f, protocol=pickle.HIGHEST_PROTOCOL)
            self._paths[token] = str(path)
        return token, self._paths[token]

    def map(self, fn: Callable[[Any, R], Any], items: Iterable[R],
            shared: Any = None, on_result: OnResult | None = None) -> list[TaskResult]:
        items = list(items)
        token, path = self._publish(shared)
        results: list[TaskResult | None] = [None] * len(items)
        attempts = [0] * len(items)
        running: dict[Future, int] = {}

        def submit(i: int) -> None:
            attempts[i] += 1
            future = self._pool.schedule(_pool_task, args=(fn, items[i], token, path,
                                                           self.session),
                                         timeout=self.timeout)
            running[future] = i

        for i in range(len(items)):
            submit(i)
        try:
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    i = running.pop(future)
                    outcome = self._outcome(future, attempts[i])
                    if outcome is None:
                        submit(i)
                    else:
                        results[i] = outcome
                        if on_result is not None:
                            on_result(i, outcome)
        except BaseException:
            for future in running:
                future.cancel()
            raise
        return [r for r in results if r is not None]

    def _outcome(self, future: Future, attempts: int) -> TaskResult | None:
        """The task's result, or None to run it again (its worker died, first time)."""
        try:
            status, value, trace = future.result()
        except TimeoutError:
            return TaskResult(None, "timeout",
                              f"no result within {self.timeout:g} s: the worker was stopped",
                              attempts)
        except ProcessExpired as exc:
            if attempts < ATTEMPTS:
                return None
            return TaskResult(None, "failed",
                              f"the worker process died ({death(exc.exitcode)}) in each of "
                              f"{attempts} attempts", attempts)
        except Exception as exc:  # the task or its result could not be pickled, ...
            return TaskResult(None, "failed", f"{type(exc).__name__}: {exc}", attempts)
        if status == "ok":
            return TaskResult(value, "ok", "", attempts)
        return TaskResult(None, "failed", value, attempts, trace)

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()
        self._folder.cleanup()
        self._paths.clear()
        super().close()
