"""One execution layer for everything that runs many solves: serial, a local process pool
(`runtime.pool`) or a Dask cluster (`runtime.cluster`), behind `make_executor` and
`Executor.map` (`runtime.executor`). Imports nothing else of offtake."""

from offtake.runtime.executor import (
    Executor,
    OnResult,
    TaskResult,
    highs_threads,
    in_worker,
    worker_cache,
    worker_reason,
)
from offtake.runtime.factory import KINDS, make_executor

__all__ = ["KINDS", "Executor", "OnResult", "TaskResult", "highs_threads", "in_worker",
           "make_executor", "worker_cache", "worker_reason"]
