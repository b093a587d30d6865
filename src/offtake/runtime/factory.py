"""`make_executor`: the one place that chooses a back-end of `runtime.executor`, and the
place of the rule of one level of parallelism (in a worker, every executor is serial).

Owns the choice only; must not touch anything of offtake outside `runtime`.
"""

from __future__ import annotations

from collections.abc import Sequence

from offtake.runtime.executor import Executor, SerialExecutor, default_workers, log, worker_reason

KINDS: tuple[str, ...] = ("serial", "process", "dask")


def make_executor(kind: str = "serial", workers: int | None = None,
                  scheduler: str | None = None, timeout: float | None = None,
                  preload: Sequence[str] = ()) -> Executor:
    """An executor of `kind`: 'serial' (this process), 'process' (a local pool of `workers`
    spawned processes, default one per core, a hard `timeout` in seconds per task, a task
    whose worker dies retried once) or 'dask' (a Dask cluster at `scheduler`, or a local
    one of `workers` processes). In a worker process it is always serial, and says why
    (`Executor.note`). `preload`: modules the process pool's workers import as they start
    (made early, the pool gets ready while the caller prepares its tasks)."""
    if kind not in KINDS:
        raise ValueError(f"unknown executor {kind!r}; expected one of {', '.join(KINDS)}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive, not {timeout}")
    if scheduler is not None and kind != "dask":
        raise ValueError("a scheduler address needs the dask executor")
    if kind != "serial":
        reason = worker_reason()
        if reason is not None:
            note = f"runs serially: {reason} (one level of parallelism)"
            log.info("%s executor requested; %s", kind, note)
            return SerialExecutor(1, timeout, requested=kind, note=note)
    if kind == "serial":
        return SerialExecutor(1, timeout)
    if kind == "process":
        from offtake.runtime.pool import ProcessExecutor

        return ProcessExecutor(workers or default_workers(), timeout, tuple(preload))
    from offtake.runtime.cluster import DaskExecutor

    return DaskExecutor(workers, scheduler, timeout)
