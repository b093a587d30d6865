"""A portfolio's cost in each of many scenarios, without building a model per scenario.

Once the first stage is fixed (which offers are signed, when they start, the contracted
volumes, tiers and prepayments), the scenarios no longer interact: each one is an LP of its
own. Building that LP in Pyomo costs about a third of a second on the medium instance, so
1,000 scenarios would spend minutes in model building alone. Instead:

1. the one-scenario model is built once from `data.parametric_view`, where every number a
   scenario changes (capacities, demands, prices, spot availabilities, rule right-hand
   sides) is a mutable parameter;
2. `linear.compile_linear` turns it into arrays affine in those numbers (checked);
3. each scenario is its data vector put into the arrays, handed to one HiGHS instance per
   worker (`ScenarioSolver`), with the plan fixed by column bounds. The scenarios go in
   chunks to an executor (`offtake.runtime`: serial, a process pool or Dask) that keeps
   each worker's HiGHS instance warm across chunks and calls (`solve_scenarios`).

The cost of scenario s is exactly what the extensive form with the same plan fixed would
give for s (tests compare them). Rules that hold in expectation couple the scenarios and are
refused. Used for the EEV of `pipeline.stochastic_value` and for out-of-sample evaluation of
a portfolio on a large scenario sample.

Orchestrates data -> model -> linear -> solve -> runtime; adds no constraint family of its
own and starts no process itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyomo.core as pyo

from offtake.domain.risk import summary
from offtake.domain.schema import Instance
from offtake.formulation.data import ModelData, build_data, parametric_view
from offtake.formulation.model import PLAN, build_model
from offtake.results.tables import read_plan
from offtake.runtime import Executor, highs_threads, make_executor, worker_cache
from offtake.solvers.highs import ArrayLp, objective_scale_for
from offtake.solvers.linear import compile_linear

if TYPE_CHECKING:
    from offtake.pipeline.diagnose import Diagnosis


class EvaluationError(RuntimeError):
    pass


@dataclass
class PlanEvaluation:
    cost: dict[str, float]
    """Discounted cost of the plan in each scenario where it is feasible."""
    status: dict[str, str]
    """'optimal', or HiGHS's status where the plan cannot be carried out (e.g. 'Infeasible'
    when a capacity cut or a hard rule leaves no way to take the contracted volumes)."""
    probability: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)
    size: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    """Scenarios that were not evaluated (status 'failed' or 'timeout': their task's worker
    died twice, raised or ran out of time), with the reason."""
    executor: dict = field(default_factory=dict)
    """How the scenarios were run (`Executor.describe`)."""

    @property
    def expected(self) -> float | None:
        """Probability-weighted cost, None when the plan fails in some scenario."""
        if any(v != "optimal" for v in self.status.values()):
            return None
        return sum(self.probability[s] * c for s, c in self.cost.items())


def evaluate_plan(d: ModelData, plan: dict[str, dict], *, workers: int = 1,
                  executor: Executor | None = None) -> PlanEvaluation:
    """The cost of `plan` (values of the `model.PLAN` variables, missing ones 0) in every
    scenario of `d`, on `executor` (the caller's, left open), or else serially (`workers`
    = 1) or in a pool of `workers` processes."""
    start = time.perf_counter()
    if any(d.rule_in_expectation.values()):
        raise EvaluationError("rules that hold in expectation couple the scenarios; "
                              "evaluate the plan in the extensive form")
    d = replace(d, cvar_weight=0.0, elastic=False)
    _check_plan(d, plan)
    scenarios = list(d.SCENARIOS)
    with _executor(executor, workers) as ex:  # first: a new pool starts while this compiles
        template = ScenarioLp(d, scenarios)
        out, errors = solve_scenarios(ex, template, plan_vector(template.plan_keys, plan),
                                      scenarios)
        runtime = ex.describe()
    cost = {s: value / template.scale + template.offset(s)
            for s, (st, value, _) in out.items() if st == "optimal"}
    status = {s: out[s][0] if s in out else errors[s][0] for s in scenarios}
    return PlanEvaluation({s: cost[s] for s in scenarios if s in cost}, status,
                          dict(d.probability), {"total": time.perf_counter() - start},
                          template.size, {s: e[1] for s, e in errors.items()}, runtime)


@contextmanager
def _executor(executor: Executor | None, workers: int) -> Iterator[Executor]:
    """The caller's executor (not closed here), or one for `workers`."""
    if executor is not None:
        yield executor
        return
    with make_executor("serial" if workers <= 1 else "process", workers=workers,
                       preload=WORKER_MODULES) as ex:
        yield ex


WORKER_MODULES = (__name__,)
"""What the tasks of `solve_scenarios` import in a worker (`make_executor`'s preload)."""
CHUNKS_PER_WORKER = 4
"""Tasks per worker in one `solve_scenarios` call: enough to balance the load, few enough
that each worker's HiGHS instance re-solves a run of similar scenarios."""


def solve_scenarios(ex: Executor, template: ScenarioLp, x: np.ndarray, who: list[str], *,
                    elastic_fallback: bool = False, gradients: bool = False,
                    ) -> tuple[dict, dict[str, tuple[str, str]]]:
    """Scenarios `who` with the plan vector `x` fixed, in chunks of consecutive scenarios
    on `ex` (one chunk when serial): {s: (status, value, reduced costs or None)} as
    `ScenarioSolver.evaluate` gives them, and {s: (task status, error)} for the scenarios
    whose task failed. Each worker keeps its `ScenarioSolver` (and so its HiGHS instance
    and the scenarios' last bases) for later chunks and later calls on the same executor
    with the same template."""
    k = 1 if ex.kind == "serial" else min(len(who), ex.workers * CHUNKS_PER_WORKER)
    chunks = [list(c) for c in np.array_split(np.array(who, dtype=object), max(k, 1))
              if len(c)]
    tasks = [(x, c, elastic_fallback, gradients) for c in chunks]
    out: dict = {}
    errors: dict[str, tuple[str, str]] = {}
    for chunk, res in zip(chunks, ex.map(_solve_chunk, tasks, shared=template), strict=True):
        if res.ok:
            out.update(res.value or {})
        else:
            errors.update(dict.fromkeys(chunk, (res.status, res.error)))
    return out, errors


def _solve_chunk(template: ScenarioLp, task: tuple) -> dict:
    """A task of `solve_scenarios`, in a worker: the worker's solver (built once) on a chunk
    of scenarios."""
    x, who, elastic_fallback, gradients = task
    cache = worker_cache()
    solver = cache.get(("solver", elastic_fallback))
    if solver is None:
        solver = ScenarioSolver(template, list(template.thetas), elastic_fallback)
        cache[("solver", elastic_fallback)] = solver
    return solver.evaluate(x, set(who), gradients)


class ScenarioLp:
    """The one-scenario LP with the plan's columns, as arrays affine in the scenario data
    (built and compiled once; read-only and picklable: it is the executor's shared object,
    sent once to each worker)."""

    def __init__(self, d: ModelData, scenarios: list[str]):
        holder = pyo.ConcreteModel()
        holder.p = pyo.Param(pyo.Any, mutable=True, initialize={}, within=pyo.Reals)

        def slot(i: int):
            holder.p[i] = 0.0
            return holder.p[i]

        view = parametric_view(d, "s", slot)
        m = build_model(view.data)
        params = [holder.p[i] for i in range(len(view.slots))]
        plan_vars = {id(v) for name in PLAN for v in getattr(m, name).values()}
        # every row stays, those on the plan alone too: a capacity cut in a scenario can
        # make contracted volumes undeliverable, and HiGHS then reports the scenario
        # infeasible
        a = compile_linear(m, params)
        self.plan_cols = np.array([j for j, v in enumerate(a.columns) if id(v) in plan_vars],
                                  dtype=np.int64)
        self.plan_keys = [(v.parent_component().local_name, v.index())
                          for v in (a.columns[j] for j in self.plan_cols)]
        # the Pyomo components stay behind (ranges keep the shape): the template is pickled
        self.arrays = a = replace(a, columns=range(a.shape[1]), rows=range(a.shape[0]))
        self.thetas = {s: np.asarray(view.values[s]) for s in scenarios}
        self.max_cost = d.max_cost_coefficient()
        self.scale = 2.0 ** (objective_scale_for(self.max_cost) or 0)
        self.dynamic = {"cost": a.cost.dynamic,
                        "cols": np.union1d(a.col_lb.dynamic, a.col_ub.dynamic),
                        "rows": np.union1d(a.row_lb.dynamic, a.row_ub.dynamic),
                        "a": a.a_val.dynamic}
        self.size = {"rows": a.shape[0], "columns": a.shape[1], "nonzeros": len(a.a_rows),
                     "scenario_numbers": len(params),
                     "changing_entries": int(sum(len(v) for v in self.dynamic.values()))}

    def highs(self, s: str) -> ArrayLp:
        """A HiGHS instance holding scenario s (one thread in a worker process)."""
        a, th = self.arrays, self.thetas[s]
        lp = ArrayLp(a.cost.at(th) * self.scale, a.col_lb.at(th), a.col_ub.at(th),
                     a.row_lb.at(th), a.row_ub.at(th), a.matrix(th))
        threads = highs_threads()
        if threads is not None:
            lp.set_option("threads", threads)
        return lp

    def load(self, lp: ArrayLp, s: str) -> None:
        """Put scenario s's numbers into `lp` (only those that change between scenarios)."""
        a, th, dyn = self.arrays, self.thetas[s], self.dynamic
        lp.set_costs(dyn["cost"], a.cost.at(th)[dyn["cost"]] * self.scale)
        cols, rows, k = dyn["cols"], dyn["rows"], dyn["a"]
        if len(cols):
            lp.set_col_bounds(cols, a.col_lb.at(th)[cols], a.col_ub.at(th)[cols])
        if len(rows):
            lp.set_row_bounds(rows, a.row_lb.at(th)[rows], a.row_ub.at(th)[rows])
        if len(k):
            lp.set_coefficients(a.a_rows[k], a.a_cols[k], a.a_val.at(th)[k])

    def offset(self, s: str) -> float:
        """Scenario s's objective constant (currency)."""
        return float(self.arrays.offset.at(self.thetas[s])[0])


class ScenarioSolver:
    """One HiGHS instance re-solved scenario after scenario with a plan fixed by column
    bounds. Values are in HiGHS's units (costs x template.scale, without the constant).

    A verdict of infeasibility gets a second opinion (from scratch, no presolve, primal
    tolerance 1e-6). With `elastic_fallback` (the decomposition), a plan still infeasible
    is priced by the LP with an elastic column on each loose side of every row that holds
    a plan column, at twice the largest cost coefficient per unit: a finite under-estimate
    of the cost, so a valid cut, reported with status 'elastic' and never as a plan's cost.
    """

    def __init__(self, template: ScenarioLp, scenarios: list[str],
                 elastic_fallback: bool = False):
        self.t = template
        self.scenarios = scenarios
        self.lp = template.highs(scenarios[0])
        self.elastic_fallback = elastic_fallback
        self.elastic: ArrayLp | None = None
        self.bases: dict = {}

    def evaluate(self, x: np.ndarray, who, gradients: bool = False) -> dict:
        """{s: (status, value, reduced costs of the plan columns or None)} for the solver's
        scenarios in `who`, each starting from its own last basis."""
        t = self.t
        self.lp.set_col_bounds(t.plan_cols, x, x)
        out = {}
        for s in (s for s in self.scenarios if s in who):
            lp = self.lp
            t.load(lp, s)
            if s in self.bases:
                lp.set_basis(self.bases[s])
            status, value, _ = lp.run()
            if status == "Infeasible":
                self.bases.pop(s, None)
                status, value = _second_opinion(lp)
            if status == "optimal":
                self.bases[s] = lp.basis()
            elif status == "Infeasible" and self.elastic_fallback:
                lp = self._elastic()
                lp.set_col_bounds(t.plan_cols, x, x)
                t.load(lp, s)
                status, value, _ = lp.run()
                status = "elastic" if status == "optimal" else status
            ok = status in ("optimal", "elastic")
            grad = lp.reduced_costs()[t.plan_cols] if ok and gradients else None
            out[s] = (status, float(value) if ok and value is not None else float("nan"), grad)
        return out

    def _elastic(self) -> ArrayLp:
        if self.elastic is None:
            a, t = self.t.arrays, self.t
            self.elastic = t.highs(self.scenarios[0])
            is_plan = np.zeros(a.shape[1], dtype=bool)
            is_plan[t.plan_cols] = True
            rows = np.unique(a.a_rows[is_plan[a.a_cols]])
            lower = np.isfinite(a.row_lb.base[rows]) | np.isin(rows, a.row_lb.dynamic)
            upper = np.isfinite(a.row_ub.base[rows]) | np.isin(rows, a.row_ub.dynamic)
            idx = np.concatenate([rows[lower], rows[upper]])
            val = np.concatenate([np.ones(lower.sum()), -np.ones(upper.sum())])
            self.elastic.add_cols(np.full(len(idx), 2.0 * t.max_cost * t.scale),
                                  np.zeros(len(idx)), np.full(len(idx), np.inf),
                                  np.arange(len(idx)), idx, val)
        return self.elastic


def _second_opinion(lp: ArrayLp, tolerance: float = 1e-6) -> tuple[str, float | None]:
    """Re-solve from scratch, without presolve and with primal feasibility tolerance
    `tolerance` (HiGHS's default is 1e-7): for a plan a master LP put at the edge of a
    capacity."""
    lp.clear()
    lp.set_option("presolve", "off")
    lp.set_option("primal_feasibility_tolerance", tolerance)
    try:
        status, value, _ = lp.run()
        return status, value
    finally:
        lp.set_option("presolve", "choose")
        lp.set_option("primal_feasibility_tolerance", 1e-7)


def _check_plan(d: ModelData, plan: dict[str, dict]) -> None:
    """A plan names only decisions this instance has (a plan from another instance, or a
    typo, is refused rather than silently read as zeros)."""
    unknown_vars = sorted(set(plan) - set(PLAN))
    if unknown_vars:
        raise EvaluationError(f"the plan has unknown decisions {unknown_vars}; "
                              f"expected some of {list(PLAN)}")
    known: dict[str, set] = {"v_signed": set(d.OFFERS), "v_start": set(d.OFFER_STARTS),
             "v_volume_t": set(d.OFFER_BUYER_YEARS), "v_built": set(d.BUILDS)}
    for name, keys in known.items():
        extra = [k for k, v in plan.get(name, {}).items() if k not in keys and v]
        if extra:
            raise EvaluationError(f"the plan's {name} names {len(extra)} entries this "
                                  f"instance does not have, e.g. {extra[0]!r} (an offer, "
                                  "buyer or year outside it)")


def plan_vector(keys: list, plan: dict[str, dict]) -> np.ndarray:
    return np.array([float(plan.get(name, {}).get(k) or 0.0) for name, k in keys])


def evaluate_portfolio(inst: Instance, plan_path: str | Path, workers: int = 1,
                       alpha: float = 0.95, *,
                       executor: Executor | None = None) -> tuple[pd.DataFrame, dict]:
    """A saved portfolio (plan.json) priced in every scenario of `inst`: a table (scenario,
    probability, status, cost) and a report (expected cost and its distribution, the
    scenarios where the portfolio cannot be carried out, those not evaluated and why,
    seconds, the executor)."""

    d = build_data(inst)
    res = evaluate_plan(d, read_plan(Path(plan_path)), workers=workers, executor=executor)
    table = pd.DataFrame([{"scenario": s, "probability": d.probability[s],
                           "status": res.status[s].lower(), "cost": res.cost.get(s)}
                          for s in d.SCENARIOS])
    failed = [s for s in d.SCENARIOS if res.status[s] != "optimal" and s not in res.errors]
    risk = {}
    if not failed and not res.errors:
        risk = summary([res.cost[s] for s in d.SCENARIOS],
                       [d.probability[s] for s in d.SCENARIOS], alpha)
    report = {"scenarios": len(d.SCENARIOS), "expected_cost": res.expected,
              "risk": risk, "infeasible_in": failed, "not_evaluated": res.errors,
              "seconds": res.seconds, "template": res.size, "executor": res.executor}
    return table, report


EXPLAINED_SCENARIOS = 20
"""At most this many of the scenarios where a plan fails are diagnosed (`explain_plan`)."""


def explain_plan(inst: Instance, plan_path: str | Path, scenarios: list[str]
                 ) -> Diagnosis:
    """Why a saved portfolio cannot be carried out: the hard rules that must move, and by
    how much, in the scenarios where it fails (the first EXPLAINED_SCENARIOS of them, their
    probabilities scaled to sum to 1), by the elastic re-solve of `offtake solve` with the
    plan's first-stage decisions held (`pipeline.diagnose.explain_infeasibility`)."""
    from offtake.domain.transforms import from_data, to_data
    from offtake.pipeline.diagnose import explain_infeasibility

    keep = list(dict.fromkeys(scenarios))[:EXPLAINED_SCENARIOS]
    raw = to_data(inst)
    chosen = [sc for sc in raw.get("scenarios") or [] if sc["id"] in keep]
    total = sum(float(sc["probability"]) for sc in chosen)
    for sc in chosen:
        sc["probability"] = (float(sc["probability"]) / total if total > 0
                             else 1.0 / len(chosen))
    raw["scenarios"] = chosen
    diag = explain_infeasibility(from_data(raw), fixed=read_plan(Path(plan_path)))
    if len(set(scenarios)) > len(keep):
        diag.note = (diag.note + "; " if diag.note else "") + (
            f"diagnosed in the first {len(keep)} of {len(set(scenarios))} scenarios where "
            "the plan fails")
    return diag
