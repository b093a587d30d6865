"""One solve of an instance: derived data -> model -> HiGHS -> typed results (with the rules'
shadow prices). Every feature that needs an optimum calls `solve_instance`; it writes nothing.
Callers that need values only (sweeps over many instances, mapped over an
`offtake.runtime` executor) call `solve_lean`: no tables, no duals, a picklable outcome.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from offtake.domain.schema import Instance
from offtake.formulation.data import ModelData, build_data
from offtake.formulation.model import (
    build_model,
    first_stage_values,
    has_integers,
    rule_duals,
    solution_values,
)
from offtake.pipeline.figures import KeyFigures, key_figures
from offtake.results.tables import Results, assemble
from offtake.runtime import highs_threads, worker_cache
from offtake.solvers.highs import HighsModel, SolveOptions, Status, objective_scale_for


def solve_instance(inst: Instance, options: SolveOptions | None = None, *,
                   sha256: str = "", data: ModelData | None = None) -> Results:
    """Build and solve; the Results hold tables only when HiGHS returned a solution."""
    options = options or SolveOptions()
    clock = _Clock()
    data = data or build_data(inst, cvar_weight=options.cvar_weight,
                              cvar_alpha=options.cvar_alpha, cvar_limit=options.cvar_limit)
    clock.lap("data")
    if options.objective_scale is None:
        options = replace(options,
                          objective_scale=objective_scale_for(data.max_cost_coefficient()))
    model = build_model(data)
    clock.lap("build")
    highs = HighsModel(model, options)
    clock.lap("handover")
    outcome = highs.solve()
    clock.lap("solve")
    values, plan = None, {}
    if outcome.has_solution:
        if data.rule_rows or data.RULE_SUPPLIER_OFFERS:
            duals = _rule_duals(model, highs)
            clock.lap("duals")
        values = solution_values(model, data)
        plan = first_stage_values(model)
        if data.rule_rows or data.RULE_SUPPLIER_OFFERS:
            values["rule_duals"] = duals
    res = assemble(inst, data, outcome, values,
                   build_seconds=clock.laps["data"] + clock.laps["build"], sha256=sha256,
                   options=_options_dict(options))
    clock.lap("results")
    res.plan = plan
    res.timings = clock.laps
    return res


class _Clock:
    """Wall seconds between laps, by stage name."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = self.laps.get(stage, 0.0) + now - self.last
        self.last = now


@dataclass(frozen=True)
class LeanOutcome:
    """The values of one solve (`solve_lean`): plain numbers and the plan, picklable."""

    status: Status
    objective: float | None
    bound: float | None
    gap: float | None
    plan: dict[str, dict] = field(default_factory=dict)
    """First-stage values by variable and index (empty without a solution)."""
    warm: bool = False
    """Solved by changing the previous HiGHS model in place (`WarmSolver`)."""
    seconds: float = 0.0
    """Wall seconds of this solve: data, build, hand-over (or update) and HiGHS (and the
    key figures, when asked for)."""
    figures: KeyFigures | None = None
    """Cost terms, fiscal cost, cost per buyer, content and rule shares, signed offers and
    built plants (`pipeline.figures`), when the solver was asked for them and found a
    solution."""

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible")


def solve_lean(inst: Instance, options: SolveOptions | None = None) -> LeanOutcome:
    """Build and solve like `solve_instance` (same data, objective scale and HiGHS options,
    so the same objective), keeping only status, objective, bound, gap and the plan: no
    result tables, no shadow prices, no checker. In a worker process HiGHS gets one thread
    unless `options.threads` says otherwise."""
    return WarmSolver(options).solve(inst)


class WarmSolver:
    """Solves instances one after another like `solve_lean`, keeping one HiGHS model: when an
    instance has the structure of the previous one and differs only in numbers (a rule's
    share, a price, a capacity, a demand, a forced or forbidden offer), that model is changed
    in place and re-solved from the previous solution (`HighsModel.update`); otherwise a new
    one is built. Same optimum either way (tests/test_warm.py)."""

    def __init__(self, options: SolveOptions | None = None, *, figures: bool = False) -> None:
        self.options = options or SolveOptions()
        self.figures = figures
        """Also read the key figures of each solution (`LeanOutcome.figures`)."""
        self.highs: HighsModel | None = None
        self.fresh = 0
        self.warm = 0

    def solve(self, inst: Instance) -> LeanOutcome:
        start = time.perf_counter()
        options = self.options
        data = build_data(inst, cvar_weight=options.cvar_weight, cvar_alpha=options.cvar_alpha,
                          cvar_limit=options.cvar_limit)
        if options.objective_scale is None:
            options = replace(options,
                              objective_scale=objective_scale_for(data.max_cost_coefficient()))
        if options.threads is None and (threads := highs_threads()) is not None:
            options = replace(options, threads=threads)
        model = build_model(data)
        warm = self.highs is not None and self.highs.update(model, options)
        if warm:
            self.warm += 1
        else:
            self.highs = HighsModel(model, options)
            self.fresh += 1
        assert self.highs is not None
        outcome = self.highs.solve()
        plan = first_stage_values(model) if outcome.has_solution else {}
        figures = (key_figures(model, data, plan) if self.figures and outcome.has_solution
                   else None)
        return LeanOutcome(outcome.status, outcome.objective, outcome.bound, outcome.mip_gap,
                           plan, warm=warm, seconds=time.perf_counter() - start,
                           figures=figures)


def solve_lean_task(options: SolveOptions | None, inst: Instance) -> LeanOutcome:
    """`solve_lean` as an executor task: `ex.map(solve_lean_task, instances, shared=options)`.
    Each worker keeps one `WarmSolver` for the executor's life (`runtime.worker_cache`), so
    consecutive tasks of one structure in a worker are warm re-solves."""
    cache = worker_cache()
    solver = cache.get(("warm-solver", options))
    if solver is None:
        solver = cache[("warm-solver", options)] = WarmSolver(options)
    return solver.solve(inst)


def _options_dict(options: SolveOptions) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}


def _rule_duals(model, highs: HighsModel):
    """Shadow prices of the rules: from the LP, or for a MIP from the LP with the integer
    decisions fixed at their optimum (a shadow price is then conditional on that portfolio),
    re-solved in the HiGHS instance that solved the model."""
    basis = ("LP with integer decisions fixed at the optimum" if has_integers(model)
             else "LP")
    return rule_duals(model, highs.shadow_prices() or {}, basis)
