"""A portfolio's cost in each of many scenarios, without building a model per scenario.

Once the first stage is fixed (which offers are signed, when they start, the contracted
volumes, tiers and prepayments), the scenarios no longer interact: each one is an LP of its
own. Building that LP in Pyomo costs about a third of a second on the medium instance, so
1,000 scenarios would spend minutes in model building alone. Instead:

1. the one-scenario model is built once from `data.parametric_view`, where every number a
   scenario changes (capacities, demands, prices, spot availabilities, rule right-hand
   sides) is a mutable parameter;
2. `linear.compile_linear` turns it into arrays affine in those numbers (checked);
3. each scenario is its data vector put into the arrays, handed to one HiGHS instance
   that keeps its basis from scenario to scenario, with the plan fixed by column bounds.

The cost of scenario s is exactly what the extensive form with the same plan fixed would
give for s (tests compare them). Rules that hold in expectation couple the scenarios and are
refused. Used for the EEV of `pipeline.stochastic_value` and for out-of-sample evaluation of
a portfolio on a large scenario sample.

Orchestrates data -> model -> linear -> solve; adds no constraint family of its own.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pyomo.environ as pyo

from offtake.data import ModelData, parametric_view
from offtake.linear import compile_linear
from offtake.model import PLAN, build_model
from offtake.solve import ArrayLp, objective_scale_for


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

    @property
    def expected(self) -> float | None:
        """Probability-weighted cost, None when the plan fails in some scenario."""
        if any(v != "optimal" for v in self.status.values()):
            return None
        return sum(self.probability[s] * c for s, c in self.cost.items())


def evaluate_plan(d: ModelData, plan: dict[str, dict], *, workers: int = 1) -> PlanEvaluation:
    """The cost of `plan` (values of the `model.PLAN` variables, missing ones 0) in every
    scenario of `d`; `workers` > 1 splits the scenarios over processes."""
    start = time.perf_counter()
    if any(d.rule_in_expectation.values()):
        raise EvaluationError("rules that hold in expectation couple the scenarios; "
                              "evaluate the plan in the extensive form")
    d = replace(d, cvar_weight=0.0, elastic=False)
    _check_plan(d, plan)
    chunks = [c for c in (list(d.SCENARIOS[i::max(1, workers)])
                          for i in range(max(1, workers))) if c]
    if len(chunks) == 1:
        out = _evaluate_chunk(d, plan, chunks[0])
    else:
        out = _in_processes(d, plan, chunks)
    cost = {s: c for s, (st, c, _) in out.items() if st == "optimal"}
    status = {s: st for s, (st, _, _) in out.items()}
    size = next(iter(out.values()))[2]
    return PlanEvaluation({s: cost[s] for s in d.SCENARIOS if s in cost},
                          {s: status[s] for s in d.SCENARIOS}, dict(d.probability),
                          {"total": time.perf_counter() - start}, size)


class ScenarioLp:
    """The one-scenario LP with the plan's columns, as arrays affine in the scenario data,
    loaded into one HiGHS instance that is re-solved scenario after scenario."""

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
        self.arrays = a = compile_linear(m, params)
        self.plan_cols = np.array([j for j, v in enumerate(a.columns) if id(v) in plan_vars],
                                  dtype=np.int64)
        self.plan_keys = [(v.parent_component().local_name, v.index())
                          for v in (a.columns[j] for j in self.plan_cols)]
        self.thetas = {s: np.asarray(view.values[s]) for s in scenarios}
        self.max_cost = d.max_cost_coefficient()
        self.scale = 2.0 ** (objective_scale_for(self.max_cost) or 0)
        self.lp = self._highs(scenarios[0])
        self.dynamic = {"cost": a.cost.dynamic,
                        "cols": np.union1d(a.col_lb.dynamic, a.col_ub.dynamic),
                        "rows": np.union1d(a.row_lb.dynamic, a.row_ub.dynamic),
                        "a": a.a_val.dynamic}
        self.size = {"rows": a.shape[0], "columns": a.shape[1], "nonzeros": len(a.a_rows),
                     "scenario_numbers": len(params),
                     "changing_entries": int(sum(len(v) for v in self.dynamic.values()))}

    def _highs(self, s: str) -> ArrayLp:
        a, th = self.arrays, self.thetas[s]
        return ArrayLp(a.cost.at(th) * self.scale, a.col_lb.at(th), a.col_ub.at(th),
                       a.row_lb.at(th), a.row_ub.at(th), a.matrix(th))

    def fresh(self) -> ScenarioLp:
        """A copy sharing the compiled arrays with a HiGHS instance of its own (e.g. in a
        worker process)."""
        import copy

        other = copy.copy(self)
        other.lp = other._highs(next(iter(self.thetas)))
        return other

    def load(self, s: str) -> None:
        """Put scenario s's numbers into the HiGHS instance (only those that change)."""
        a, th, dyn = self.arrays, self.thetas[s], self.dynamic
        self.lp.set_costs(dyn["cost"], a.cost.at(th)[dyn["cost"]] * self.scale)
        cols, rows, k = dyn["cols"], dyn["rows"], dyn["a"]
        if len(cols):
            self.lp.set_col_bounds(cols, a.col_lb.at(th)[cols], a.col_ub.at(th)[cols])
        if len(rows):
            self.lp.set_row_bounds(rows, a.row_lb.at(th)[rows], a.row_ub.at(th)[rows])
        if len(k):
            self.lp.set_coefficients(a.a_rows[k], a.a_cols[k], a.a_val.at(th)[k])

    def fix(self, values: np.ndarray) -> None:
        self.lp.set_col_bounds(self.plan_cols, values, values)

    def solve(self, s: str) -> tuple[str, float]:
        """Scenario s's cost (currency) with the plan fixed; s must be loaded."""
        status, value = self.solve_scaled(s)
        if status != "optimal":
            return status, float("nan")
        return status, value / self.scale + float(self.arrays.offset.at(self.thetas[s])[0])

    def solve_cold(self, s: str, tolerance: float = 1e-6) -> tuple[str, float]:
        """solve_scaled from scratch, without presolve and with a primal feasibility
        tolerance of `tolerance` instead of HiGHS's 1e-7 (a second opinion on a verdict of
        infeasibility for a plan that a master LP put at the edge of a capacity)."""
        self.lp.h.clearSolver()
        self.lp.set_option("presolve", "off")
        self.lp.set_option("primal_feasibility_tolerance", tolerance)
        try:
            return self.solve_scaled(s)
        finally:
            self.lp.set_option("presolve", "choose")
            self.lp.set_option("primal_feasibility_tolerance", 1e-7)

    def solve_scaled(self, s: str, bases: dict | None = None) -> tuple[str, float]:
        """The loaded scenario's LP value in HiGHS's units (costs x scale, no constant);
        with `bases`, start from s's own last basis and keep the new one there (re-solves of
        the same scenario at a nearby plan)."""
        if bases is not None and s in bases:
            self.lp.set_basis(bases[s])
        status, value, _ = self.lp.run()
        if bases is not None and status == "optimal":
            bases[s] = self.lp.basis()
        return status, (float(value) if value is not None else float("nan"))


def _check_plan(d: ModelData, plan: dict[str, dict]) -> None:
    """A plan names only decisions this instance has (a plan from another instance, or a
    typo, is refused rather than silently read as zeros)."""
    unknown_vars = sorted(set(plan) - set(PLAN))
    if unknown_vars:
        raise EvaluationError(f"the plan has unknown decisions {unknown_vars}; "
                              f"expected some of {list(PLAN)}")
    known = {"v_signed": set(d.OFFERS), "v_start": set(d.OFFER_STARTS),
             "v_volume_t": set(d.OFFER_BUYER_YEARS)}
    for name, keys in known.items():
        extra = [k for k, v in plan.get(name, {}).items() if k not in keys and v]
        if extra:
            raise EvaluationError(f"the plan's {name} names {len(extra)} entries this "
                                  f"instance does not have, e.g. {extra[0]!r} (an offer, "
                                  "buyer or year outside it)")


def plan_vector(keys: list, plan: dict[str, dict]) -> np.ndarray:
    return np.array([float(plan.get(name, {}).get(k) or 0.0) for name, k in keys])


def _evaluate_chunk(d: ModelData, plan: dict[str, dict], scenarios: list[str]) -> dict:
    lp = ScenarioLp(d, scenarios)
    lp.fix(plan_vector(lp.plan_keys, plan))
    out = {}
    for s in scenarios:
        lp.load(s)
        status, value = lp.solve(s)
        out[s] = (status, value, lp.size)
    return out


def _worker(conn, d: ModelData, plan: dict[str, dict], scenarios: list[str]) -> None:
    try:
        conn.send(("ok", _evaluate_chunk(d, plan, scenarios)))
    except Exception as exc:  # the parent raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _in_processes(d: ModelData, plan: dict[str, dict], chunks: list[list[str]]) -> dict:
    ctx = mp.get_context("fork")
    procs, conns = [], []
    for chunk in chunks:
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker, args=(child, d, plan, chunk), daemon=True)
        p.start()
        child.close()
        procs.append(p)
        conns.append(parent)
    out: dict = {}
    errors = []
    for conn in conns:
        msg, arg = conn.recv()
        if msg == "ok":
            out.update(arg)
        else:
            errors.append(arg)
    for p in procs:
        p.join()
    if errors:
        raise EvaluationError("; ".join(errors))
    return out
