"""Sweeps: many solves of one instance with a few numbers changed, run on an
`offtake.runtime` executor, one record per point saved in a results store as it finishes.

`run_sweep(loaded_spec, store, executor)` solves the points of a spec (`analysis.spec`) that
the store does not hold yet (or that failed or timed out before) and returns a
`SweepReport`; `run_points` does the same for points made in code (Pareto fronts). Each point
is the base instance changed by `apply_sets` in a worker (a refused change is recorded with
status 'invalid'), solved by the worker's `WarmSolver` (consecutive points of one structure
are re-solved in place) with its key figures (`pipeline.figures`). A point whose solve
raises or passes the executor's wall-clock limit is recorded as 'failed' or 'timeout' and
the others go on; a worker that dies is retried once by the executor.

A record (`point_record`) holds: the key and what it is made of (instance hash, the point's
changes, the options, `code_version()`), the axis values (one column per axis, named by
`axes`, a JSON list; None where a one-at-a-time point leaves the axis at its base), status,
message, objective, bound, gap, seconds, whether it was a warm re-solve, attempts, worker,
the currency; `cost:<term>`,
`expected_cost`, `risk:<measure>`, `scenario_cost:<scenario>`, `fiscal:<payer>` (and
`fiscal:<payer>:<scenario>`), `fiscal_total`, `direct_cost:<buyer>` (and `direct_cost:shared`),
`content:<material>:<stage>:<country>`, `largest_country_share:<material>:<stage>` (with
`largest_country:...`), `recycled_share:<material>`, `delivered_t:<material>`,
`rule_share:<rule>` (the binding side: highest share of a cap, lowest of a floor; with
`rule_share_low:` and `rule_share_high:`), `signed` and `built` (IDs joined by ', '),
`n_signed`; `emissions_t` (t CO2e, expected, all buyers and years; `emissions_t:<buyer>`),
`emission_intensity` (those t CO2e per t delivered, = kg per kg), `hhi:<material>:<stage>:<over>`
and `largest_share:<material>:<stage>:<over>` (`over` country or company; formulation.md,
Emissions and concentration). Money is discounted, in the instance's currency; shares are
fractions.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import offtake
from offtake.analysis.spec import LoadedSpec, Point, check_paths
from offtake.analysis.store import FAILED, SweepStore
from offtake.domain.findings import InvalidInstance, errors
from offtake.domain.schema import Instance
from offtake.domain.transforms import apply_sets
from offtake.io.loader import load_instance
from offtake.pipeline.figures import KeyFigures
from offtake.pipeline.solve import LeanOutcome, WarmSolver
from offtake.runtime import Executor, TaskResult, worker_cache
from offtake.solvers.options import SolveOptions

WORKER_MODULES = (__name__,)
"""What the sweep's tasks import in a worker (`make_executor`'s preload)."""
SEP = ", "
"""Joins the IDs of signed offers and built plants in a record."""


NUMBER_SOURCES = ("domain", "io", "formulation", "solvers", "pipeline", "results",
                  "analysis/spec.py", "analysis/sweep.py")
"""The parts of the package whose code decides a record's numbers (not the checker, the
reports, the CLI or the executors)."""


@functools.cache
def code_version() -> str:
    """The version of the code a record was computed with: offtake's version, a hash of the
    source files that decide a record's numbers (`NUMBER_SOURCES`) and HiGHS's version (once
    per process)."""
    root = Path(offtake.__file__).resolve().parent
    digest = hashlib.sha256()
    files = [p for part in NUMBER_SOURCES for p in
             ([root / part] if part.endswith(".py") else (root / part).rglob("*.py"))]
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    try:
        highs = metadata.version("highspy")
    except metadata.PackageNotFoundError:  # pragma: no cover
        highs = "?"
    return f"offtake {offtake.__version__}+{digest.hexdigest()[:12]}; highspy {highs}"


# --- the task ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PointTask:
    """What a worker needs for one point besides the base instance."""

    index: int
    sets: tuple[str, ...]
    options: SolveOptions
    warm: bool = True
    """Re-solve in place when the worker's previous point had the same structure (False:
    build every point afresh, for comparison)."""


@dataclass(frozen=True)
class PointOutcome:
    """What a worker returns for one point."""

    status: str
    message: str
    lean: LeanOutcome | None
    worker: str


def sweep_task(base: Instance, task: PointTask) -> PointOutcome:
    """One point: the base instance changed by the point's `sets` (validated again), solved
    by this worker's `WarmSolver` with key figures (`runtime.worker_cache`: kept across the
    points of one executor, so points of one structure are warm re-solves)."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        inst = apply_sets(base, task.sets)
    except InvalidInstance as exc:
        return PointOutcome("invalid", "; ".join(str(f) for f in errors(exc.findings)), None,
                            worker)
    cache = worker_cache() if task.warm else {}
    solver = cache.get(("sweep-solver", task.options))
    if solver is None:
        solver = cache[("sweep-solver", task.options)] = WarmSolver(task.options, figures=True)
    out = solver.solve(inst)
    return PointOutcome(out.status, "", out, worker)


# --- records -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """What every record of one run shares."""

    sweep: str
    instance: str
    instance_sha256: str
    currency: str = "USD"
    code: str = field(default_factory=code_version)


def options_dict(options: SolveOptions) -> dict[str, Any]:
    """The options that change a solve's numbers (not threads or files)."""
    out = asdict(options)
    for k in ("threads", "write_model", "objective_scale"):
        out.pop(k, None)
    return out


def point_key(run: Run, point: Point, options: SolveOptions) -> str:
    text = json.dumps({"instance": run.instance_sha256, "sets": list(point.sets),
                       "options": options_dict(options), "code": run.code}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def point_record(run: Run, point: Point, options: SolveOptions, result: TaskResult
                 ) -> dict[str, Any]:
    """The store's record of one point from the executor's result."""
    rec: dict[str, Any] = {
        "key": point_key(run, point, options), "point_id": point.point_id,
        "sweep": run.sweep, "index": point.index, "instance": run.instance,
        "instance_sha256": run.instance_sha256, "currency": run.currency,
        "code_version": run.code,
        "options": json.dumps(options_dict(options), sort_keys=True),
        "sets": json.dumps(list(point.sets)),
        "axes": json.dumps(list(point.values)),
    }
    rec.update(point.values)
    out: PointOutcome | None = result.value if result.ok else None
    lean = out.lean if out is not None else None
    rec.update({
        "status": out.status if out is not None else result.status,
        "message": out.message if out is not None else result.error,
        "objective": lean.objective if lean else None,
        "bound": lean.bound if lean else None,
        "gap": lean.gap if lean else None,
        "seconds": lean.seconds if lean else None,
        "warm": lean.warm if lean else None,
        "attempts": result.attempts,
        "worker": out.worker if out is not None else None,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
    })
    if lean is not None and lean.figures is not None:
        rec.update(figure_columns(lean.figures))
    return rec


def figure_columns(f: KeyFigures) -> dict[str, Any]:
    """A point's key figures as flat record columns (see the module's docstring)."""
    rec: dict[str, Any] = {f"cost:{k}": v for k, v in f.cost_terms.items()}
    rec["expected_cost"] = sum(f.cost_terms.values())
    rec.update({f"risk:{k}": v for k, v in f.risk.items()})
    rec.update({f"scenario_cost:{s}": v for s, v in f.scenario_costs.items()})
    rec.update({f"fiscal:{p}": v for p, v in sorted(f.fiscal.items())})
    rec.update({f"fiscal:{p}:{s}": v for (p, s), v in sorted(f.fiscal_by_scenario.items())})
    rec["fiscal_total"] = sum(f.fiscal.values())
    rec.update({f"direct_cost:{b}": v for b, v in f.buyer_cost.items()})
    rec.update({f"content:{m}:{st}:{c}": v for (m, st, c), v in sorted(f.content.items())})
    largest: dict[tuple[str, str], tuple[float, str]] = {}
    for (m, st, c), v in sorted(f.content.items()):
        if (m, st) not in largest or v > largest[m, st][0]:
            largest[m, st] = (v, c)
    for (m, st), (v, c) in largest.items():
        rec[f"largest_country_share:{m}:{st}"] = v
        rec[f"largest_country:{m}:{st}"] = c
    rec.update({f"recycled_share:{m}": v for m, v in f.recycled.items()})
    rec.update({f"delivered_t:{m}": v for m, v in f.delivered_t.items()})
    for rule, (low, high) in f.rule_shares.items():
        rec[f"rule_share:{rule}"] = f.rule_share(rule)
        rec[f"rule_share_low:{rule}"] = low
        rec[f"rule_share_high:{rule}"] = high
    rec["emissions_t"] = sum(f.emissions_t.values())
    rec.update({f"emissions_t:{b}": v for b, v in f.emissions_t.items()})
    received = sum(f.delivered_t.values())
    rec["emission_intensity"] = rec["emissions_t"] / received if received > 0 else None
    for (m, st, over), (h, top) in sorted(f.concentration.items()):
        rec[f"hhi:{m}:{st}:{over}"] = h
        rec[f"largest_share:{m}:{st}:{over}"] = top
    rec["signed"] = SEP.join(f.signed)
    rec["n_signed"] = len(f.signed)
    rec["built"] = SEP.join(f.built)
    return rec


# --- running -----------------------------------------------------------------------------
@dataclass
class SweepReport:
    """What a run did: points in the sweep, already in the store, solved now (by status),
    seconds, and the executor (`Executor.describe`)."""

    total: int
    skipped: int
    statuses: dict[str, int]
    seconds: float
    executor: dict[str, Any]
    keys: list[str]
    """Every point's key, in the sweep's order."""

    @property
    def ran(self) -> int:
        return sum(self.statuses.values())


OnPoint = Callable[[dict[str, Any], int, int], None]
"""Called as each point is saved: (its record, points saved in this run, points to run)."""


def run_sweep(loaded: LoadedSpec, store: SweepStore, executor: Executor,
              on_point: OnPoint | None = None, on_start: Callable[[int, int], None] | None
              = None, warm: bool = True, fresh: bool = False) -> SweepReport:
    """Solve the points of a spec into the store (see the module's docstring); `fresh`
    solves every point again, each new record replacing the stored one of its key. The base
    instance is loaded and each axis's path checked first (`InvalidInstance` with located
    findings); `on_start(points to run, points in the sweep)` is called before the first
    solve, `on_point` after each point is saved."""
    spec = loaded.spec
    base_load = load_instance(loaded.instance_path)
    if base_load.instance is None:
        raise InvalidInstance(base_load.findings)
    check_paths(loaded, base_load.instance)
    store.save_spec(loaded.path.read_text(encoding="utf-8"))
    s = spec.options
    options = SolveOptions(time_limit=s.time_limit, mip_gap=s.mip_gap,
                           cvar_weight=s.cvar_weight, cvar_alpha=s.cvar_alpha)
    run = Run(spec.name or loaded.path.stem, base_load.instance.meta.name, base_load.sha256,
              base_load.instance.meta.currency)
    return run_points(run, base_load.instance, [(p, options) for p in spec.points()], store,
                      executor, on_point=on_point, on_start=on_start, warm=warm, fresh=fresh)


def run_points(run: Run, base: Instance, points: Sequence[tuple[Point, SolveOptions]],
               store: SweepStore, executor: Executor, on_point: OnPoint | None = None,
               on_start: Callable[[int, int], None] | None = None, warm: bool = True,
               fresh: bool = False) -> SweepReport:
    """Solve the points (each with its options) that the store does not hold, or holds as
    failed or timed out; save each record (and plan) as it finishes. `warm=False` builds
    every point afresh (the same numbers, for comparison); `fresh=True` solves every point,
    stored or not."""
    start = time.perf_counter()
    with store.lock():
        done = {} if fresh else store.statuses()
        keys = [point_key(run, p, o) for p, o in points]
        todo: list[int] = []
        queued: set[str] = set()
        for i, key in enumerate(keys):
            if (key not in done or done[key] in FAILED) and key not in queued:
                todo.append(i)
                queued.add(key)
        if on_start is not None:
            on_start(len(todo), len(points))
        statuses: dict[str, int] = {}

        def save(j: int, result: TaskResult) -> None:
            point, options = points[todo[j]]
            record = point_record(run, point, options, result)
            out = result.value if result.ok else None
            plan = out.lean.plan if out is not None and out.lean is not None else None
            store.write(record, plan)
            statuses[record["status"]] = statuses.get(record["status"], 0) + 1
            if on_point is not None:
                on_point(record, sum(statuses.values()), len(todo))

        tasks = [PointTask(points[i][0].index, points[i][0].sets, points[i][1], warm)
                 for i in todo]
        executor.map(sweep_task, tasks, shared=base, on_result=save)
    return SweepReport(len(points), len(points) - len(todo), statuses,
                       time.perf_counter() - start, executor.describe(), keys)
