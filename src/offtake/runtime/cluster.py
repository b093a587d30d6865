"""The Dask back-end of `runtime.executor` (`dask.distributed`, the optional `cluster` extra).

With a scheduler address it runs on that cluster; without, on a `LocalCluster` of its own
(`local_cluster`: worker processes with one thread each, the worker environment of
`executor.worker_environment`, a task whose worker dies retried once). The shared object is
scattered to every worker once (broadcast) and kept for later calls of the same executor.

On a cluster: tasks of one worker process run one at a time (HiGHS is not safe in threads of
one process), whatever the workers' thread count; a task whose worker dies is retried as
often as the scheduler's `allowed-failures` says (1 on the local cluster); a timeout is
counted from the moment the task starts (an event its worker sends), and the worker that
runs past it is restarted, since a thread cannot be stopped.

Owns the client and, without a scheduler address, the cluster; must not touch anything of
offtake beyond `runtime.executor`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from offtake.runtime.executor import (
    Executor,
    OnResult,
    R,
    TaskResult,
    default_workers,
    forget_session,
    run_task,
    setup_worker,
    worker_environment,
)

TOPIC = "offtake-runtime-start"
"""The event a worker sends when it starts a task (for timeouts)."""
POLL = 0.05
"""Seconds between checks for finished and timed-out tasks (with a timeout)."""
CONNECT_SECONDS = 10.0
"""How long to try reaching a --scheduler before giving up (Dask's own default is 30 s)."""
LOST_RESUBMITS = 3
"""Submissions again of a task the cluster lost (not counted as attempts of the task)."""

_TASK_LOCK = threading.Lock()
"""One task at a time per worker process."""


def local_cluster(workers: int | None = None, **kwargs: Any) -> Any:
    """A `distributed.LocalCluster` for the executor: `workers` processes (default one per
    core) with one thread each, the worker environment, no dashboard, a task whose worker
    dies retried once. `kwargs` go to LocalCluster."""
    import dask
    from distributed import LocalCluster

    options: dict[str, Any] = {"n_workers": workers or default_workers(),
                               "threads_per_worker": 1, "processes": True,
                               "dashboard_address": None, "env": worker_environment(),
                               # the scheduler's HTTP endpoint (health, metrics) runs even
                               # without a dashboard: on a free port, not 8787, which a
                               # second cluster (or anything else) may hold
                               "scheduler_kwargs": {"dashboard_address": ":0"}}
    options.update(kwargs)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        return LocalCluster(**options)


def _dask_task(fn: Callable, item: Any, shared: Any, session: str, token: str, key: str,
               report_start: bool) -> tuple[str, Any, str]:
    """Runs in a Dask worker: one task at a time per process, its start reported."""
    from distributed import get_worker

    with _TASK_LOCK:
        setup_worker("Dask cluster")
        if report_start:
            worker = get_worker()
            worker.log_event(TOPIC, {"key": key, "worker": worker.address})
        return run_task(fn, shared, item, session, token)


class DaskExecutor(Executor):
    """Tasks on a Dask cluster (see the module's docstring)."""

    kind = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 timeout: float | None = None):
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - the dev extra installs it
            raise ImportError("the dask executor needs dask.distributed: "
                              "pip install 'offtake[cluster]'") from exc
        if scheduler is not None:
            from distributed.comm import resolve_address

            # a bad address raises here (ValueError, OSError), not in Client(), whose
            # half-made object would hang for a minute when it is garbage collected
            resolve_address(scheduler)
        self._cluster = local_cluster(workers) if scheduler is None else None
        # Dask's own connect timeout for a local cluster; passing None is refused by
        # distributed >= 2026 ("None is an invalid value for global client timeout")
        connect = {"timeout": CONNECT_SECONDS} if scheduler is not None else {}
        self._client = Client(self._cluster if scheduler is None else scheduler,
                              set_as_default=False, **connect)
        nthreads = self._client.nthreads()
        super().__init__(max(1, sum(nthreads.values())), timeout,
                         note="a local cluster of its own" if scheduler is None else "")
        self.scheduler = scheduler
        self._scattered: dict[str, Any] = {}
        self._started: dict[str, tuple[float, str]] = {}
        if timeout is not None:
            self._client.subscribe_topic(TOPIC, self._on_start)

    def _on_start(self, event: tuple[float, dict]) -> None:
        _, msg = event
        self._started[msg["key"]] = (time.monotonic(), msg["worker"])

    def _publish(self, shared: Any) -> tuple[str, Any]:
        token, new = self._token(shared)
        if shared is None:
            return token, None
        future = self._scattered.get(token)
        if new or future is None or future.status != "finished":
            # in a list: a dict or a list would be scattered element by element
            [future] = self._client.scatter([shared], broadcast=True, hash=False)
            self._scattered[token] = future
        return token, future

    def map(self, fn: Callable[[Any, R], Any], items: Iterable[R],
            shared: Any = None, on_result: OnResult | None = None) -> list[TaskResult]:
        from distributed import as_completed

        items = list(items)
        run = uuid.uuid4().hex[:12]
        keys = [""] * len(items)
        resubmits = [0] * len(items)
        results: list[TaskResult | None] = [None] * len(items)
        pending: dict[Any, int] = {}

        def submit(i: int) -> Any:
            token, data = self._publish(shared)
            keys[i] = f"offtake-{run}-{i}-{resubmits[i]}"
            future = self._client.submit(_dask_task, fn, items[i], data, self.session, token,
                                         keys[i], self.timeout is not None, key=keys[i],
                                         pure=False)
            pending[future] = i
            return future

        for i in range(len(items)):
            submit(i)
        # as_completed yields cancelled futures too (distributed.wait raises on them)
        finished = as_completed(list(pending), loop=self._client.loop)
        try:
            while pending:
                if self.timeout is None:
                    batch = [next(finished)]
                else:
                    batch = finished.next_batch(block=False)
                    if not batch:
                        self._stop_late(pending, keys, results, on_result)
                        time.sleep(POLL)
                        continue
                for future in batch:
                    if future not in pending:
                        continue  # cancelled here after its timeout
                    i = pending.pop(future)
                    outcome = self._outcome(future)
                    if outcome is None:
                        resubmits[i] += 1
                        if resubmits[i] <= LOST_RESUBMITS:
                            finished.add(submit(i))
                            continue
                        outcome = TaskResult(None, "failed", "the cluster lost the task or "
                                             f"its shared data {resubmits[i]} times")
                    results[i] = outcome
                    if on_result is not None:
                        on_result(i, outcome)
        except BaseException:
            self._client.cancel(list(pending), force=True)
            raise
        finally:
            for key in keys:
                self._started.pop(key, None)
        return [r for r in results if r is not None]

    def _outcome(self, future: Any) -> TaskResult | None:
        """The task's result, or None when the cluster lost it (its result, or the shared
        data it needs, went with a worker that died): then it is submitted again."""
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        try:
            status, value, trace = future.result()
        except KilledWorker as exc:
            n = exc.allowed_failures + 1
            return TaskResult(None, "failed", f"the worker process died in each of {n} "
                              f"attempts (last on {exc.last_worker.address})", n)
        except FutureCancelledError:
            return None
        except Exception as exc:  # e.g. the result could not be unpickled here
            return TaskResult(None, "failed", f"{type(exc).__name__}: {exc}")
        if status == "ok":
            return TaskResult(value)
        return TaskResult(None, "failed", value, 1, trace)

    def _stop_late(self, pending: dict, keys: list[str], results: list,
                   on_result: OnResult | None = None) -> None:
        """Tasks that started more than `timeout` seconds ago: reported, cancelled, and
        their workers restarted (the only way to stop a running task)."""
        limit = self.timeout if self.timeout is not None else float("inf")
        now, late, workers = time.monotonic(), [], set()
        late_items: list[int] = []
        for future, i in pending.items():
            started = self._started.get(keys[i])
            if started is not None and now - started[0] > limit:
                late.append(future)
                late_items.append(i)
                workers.add(started[1])
                results[i] = TaskResult(None, "timeout", f"no result within {self.timeout:g} "
                                        f"s: its worker {started[1]} was restarted")
        if not late:
            return
        for future in late:
            del pending[future]
        self._client.cancel(late, force=True)
        self._client.restart_workers(sorted(workers), raise_for_error=False)
        if on_result is not None:
            for i in late_items:
                on_result(i, results[i])

    def close(self) -> None:
        try:
            if self._client.status == "running":
                self._client.run(forget_session, self.session)
        finally:
            self._scattered.clear()
            self._client.close()
            if self._cluster is not None:
                self._cluster.close()
            super().close()
