"""The one-way pipeline as functions: instance -> data -> model -> solve -> results -> check,
with the infeasibility diagnosis and rule relaxation around it.

Used by the CLI, the tests and the benchmarks so that all of them run exactly the same steps.
Knows the order of the stages and nothing of their insides.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
from pyomo.environ import value as pyo_value

from offtake.analysis.evaluate import evaluate_plan
from offtake.check import CheckReport, check_folder
from offtake.domain.findings import Finding, nearest
from offtake.domain.schema import Instance
from offtake.formulation.data import ModelData, build_data, scenario_view
from offtake.formulation.model import (
    build_model,
    first_stage_values,
    fix_first_stage,
    fix_integers,
    has_integers,
    rule_duals,
    solution_values,
)
from offtake.formulation.ruledata import origin_gaps
from offtake.io.loader import LoadResult, load_instance
from offtake.pipeline.diagnose import Diagnosis, explain_infeasibility, rule_conflicts
from offtake.results.tables import Results, assemble
from offtake.solvers.highs import (
    SolveOptions,
    SolveOutcome,
    objective_scale_for,
    solve,
    solve_duals,
)


def relax_rules(inst: Instance, rule_ids: list[str]) -> Instance:
    """The instance without the named rules (ValueError naming an unknown ID)."""
    known = {r.id for r in inst.rules}
    for rid in rule_ids:
        if rid not in known:
            raise ValueError(f"unknown rule '{rid}' to relax; {nearest(rid, known)}".rstrip())
    return inst.model_copy(update={"rules": [r for r in inst.rules if r.id not in rule_ids]})


def solve_instance(inst: Instance, options: SolveOptions | None = None, *,
                   sha256: str = "", data: ModelData | None = None) -> Results:
    """Build and solve; the Results hold tables only when HiGHS returned a solution."""
    options = options or SolveOptions()
    start = time.perf_counter()
    data = data or build_data(inst, cvar_weight=options.cvar_weight,
                              cvar_alpha=options.cvar_alpha)
    if options.objective_scale is None:
        options = replace(options,
                          objective_scale=objective_scale_for(data.max_cost_coefficient()))
    model = build_model(data)
    build_seconds = time.perf_counter() - start
    outcome = solve(model, options)
    values, plan = None, {}
    if outcome.has_solution:
        values = solution_values(model, data)
        plan = first_stage_values(model)  # before the duals' LP changes the integers
        if data.rule_rows or data.RULE_SUPPLIER_OFFERS:
            values["rule_duals"] = _rule_duals(model, options)
    res = assemble(inst, data, outcome, values, build_seconds=build_seconds, sha256=sha256,
                   options=_options_dict(options))
    res.plan = plan
    return res


def _options_dict(options: SolveOptions) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}


def _rule_duals(model, options: SolveOptions):
    """Shadow prices of the rules: from the LP, or for a MIP from the LP with the integer
    decisions fixed at their optimum (a shadow price is then conditional on that portfolio)."""
    basis = "LP"
    if has_integers(model):
        fix_integers(model)
        basis = "LP with integer decisions fixed at the optimum"
    duals = solve_duals(model, options)
    return rule_duals(model, duals or {}, basis)


@dataclass
class Run:
    load: LoadResult
    results: Results | None = None
    check: CheckReport | None = None
    diagnosis: Diagnosis | None = None
    warnings: list[Finding] = field(default_factory=list)
    """Warnings found once the network is known (e.g. chains an origin rule cannot see)."""


def run(path: str | Path, out_dir: str | Path, options: SolveOptions | None = None,
        relax: list[str] | None = None) -> Run:
    """Load, prove rule conflicts, solve, write the output folder, check it independently
    from the folder, and explain an infeasible outcome."""
    options = options or SolveOptions()
    loaded = load_instance(path)
    if loaded.instance is None:
        return Run(loaded)
    inst = relax_rules(loaded.instance, relax or [])
    start = time.perf_counter()
    data = build_data(inst, cvar_weight=options.cvar_weight, cvar_alpha=options.cvar_alpha)
    gaps = origin_gaps(inst, data)
    conflicts = rule_conflicts(data)
    if conflicts:
        diagnosis = Diagnosis("presolve", conflicts, note="proved from the data before solving")
        outcome = SolveOutcome("infeasible", None, None, None, "highs", "", 0.0, None,
                               "not solved", None, "rules conflict (proved before solving)")
        results = assemble(inst, data, outcome, None, sha256=loaded.sha256,
                           build_seconds=time.perf_counter() - start,
                           options=_options_dict(options))
        return _finish(Run(loaded, results, None, diagnosis, gaps), out_dir, relax)
    results = solve_instance(inst, options, sha256=loaded.sha256, data=data)
    diagnosis = explain_infeasibility(inst, options) if results.status == "infeasible" else None
    run_ = _finish(Run(loaded, results, None, diagnosis, gaps), out_dir, relax)
    if results.has_solution:
        run_.check = check_folder(inst, Path(out_dir))
        results.violations = len(run_.check.violations)
        results.write(out_dir)
    return run_


def _finish(run_: Run, out_dir: str | Path, relax: list[str] | None) -> Run:
    run_.results.options["relaxed_rules"] = list(relax or [])
    run_.results.write(out_dir)
    stale = Path(out_dir) / "infeasibility.json"
    if run_.diagnosis is not None:
        run_.diagnosis.write(out_dir)
    elif stale.exists():
        stale.unlink()
    return run_


def compare(inst: Instance, rule_ids: list[str], options: SolveOptions | None = None
            ) -> pd.DataFrame:
    """Cost of compliance: the objective with every rule, and without each named rule (and
    without all of them when several are named)."""
    base = solve_instance(inst, options)
    variants = [[r] for r in rule_ids] + ([rule_ids] if len(rule_ids) > 1 else [])
    rows = []
    for ids in variants:
        res = solve_instance(relax_rules(inst, ids), options)
        cost = (None if base.objective is None or res.objective is None
                else base.objective - res.objective)
        rows.append({"relaxed": "+".join(ids), "status_with": base.status,
                     "objective_with": base.objective, "status_without": res.status,
                     "objective_without": res.objective, "cost_of_compliance": cost})
    return pd.DataFrame(rows)


@dataclass
class StochasticValue:
    """Value of modelling uncertainty (all costs expected, discounted; lambda = 0):
    RP (recourse problem: the stochastic optimum), EV (expected-value problem), EEV (the EV
    portfolio evaluated over the scenarios), WS (wait-and-see: each scenario solved with
    perfect foresight), VSS = EEV - RP and EVPI = RP - WS."""

    rp: float | None
    ev: float | None
    eev: float | None
    ws: float | None
    status: dict[str, str]
    probability: dict[str, float] = field(default_factory=dict)
    rp_costs: dict[str, float] = field(default_factory=dict)
    """Cost of the stochastic (RP) portfolio in each scenario."""
    eev_costs: dict[str, float] = field(default_factory=dict)
    """Cost of the expected-value portfolio in each scenario."""

    @property
    def vss(self) -> float | None:
        return None if self.eev is None or self.rp is None else self.eev - self.rp

    @property
    def evpi(self) -> float | None:
        return None if self.rp is None or self.ws is None else self.rp - self.ws

    def as_dict(self) -> dict:
        return {"RP": self.rp, "EV": self.ev, "EEV": self.eev, "WS": self.ws, "VSS": self.vss,
                "EVPI": self.evpi, "status": self.status}


def stochastic_value(inst: Instance, options: SolveOptions | None = None) -> StochasticValue:
    """RP, EV, EEV, WS, VSS and EVPI of an instance's scenario set (see StochasticValue)."""
    options = replace(options or SolveOptions(), cvar_weight=0.0)
    d = build_data(inst)
    status = {}

    def run_(data, fixed=None):
        m = build_model(data)
        if fixed is not None:
            fix_first_stage(m, fixed)
        opts = replace(options, objective_scale=objective_scale_for(data.max_cost_coefficient()))
        out = solve(m, opts)
        return out, m

    rp, rp_model = run_(d)
    ev, ev_model = run_(scenario_view(d, d.probability, "expected"))
    status.update(RP=rp.status, EV=ev.status)
    eev_value, eev_costs = None, {}
    if ev.has_solution:
        eev_value, eev_costs, status["EEV"] = _eev(d, first_stage_values(ev_model), run_)
    ws_total, ws_ok = 0.0, True
    for s in d.SCENARIOS:
        out, _ = run_(scenario_view(d, {s: 1.0}, s))
        status[f"WS[{s}]"] = out.status
        ws_ok &= out.has_solution
        ws_total += d.probability[s] * (out.objective or 0.0)
    return StochasticValue(rp.objective, ev.objective, eev_value,
                           ws_total if ws_ok else None, status, dict(d.probability),
                           _scenario_costs(rp_model) if rp.has_solution else {}, eev_costs)


def _eev(d: ModelData, plan: dict, run_) -> tuple[float | None, dict[str, float], str]:
    """The EV plan's expected cost over the scenarios: one LP per scenario from a compiled
    template (offtake.analysis.evaluate); with rules in expectation, which couple the scenarios, the
    extensive form with the plan fixed."""
    if any(d.rule_in_expectation.values()):
        out, model = run_(d, plan)
        costs = _scenario_costs(model) if out.has_solution else {}
        return out.objective, costs, out.status
    res = evaluate_plan(d, plan)
    failed = sorted(s for s, st in res.status.items() if st != "optimal")
    status = "optimal" if not failed else f"infeasible in {', '.join(failed)}"
    return res.expected, res.cost, status


def _scenario_costs(model) -> dict[str, float]:
    return {s: float(pyo_value(model.scenario_cost[s])) for s in model.SCENARIOS}


def efficient_frontier(inst: Instance, lambdas: list[float], alpha: float,
                       options: SolveOptions | None = None) -> pd.DataFrame:
    """Expected cost and CVaR_alpha of the optimal portfolio for each risk weight lambda."""
    rows = []
    for lam in lambdas:
        res = solve_instance(inst, replace(options or SolveOptions(), cvar_weight=lam,
                                           cvar_alpha=alpha))
        risk = res.risk or {}
        rows.append({"lambda": lam, "status": res.status, "objective": res.objective,
                     "expected_cost": risk.get("mean"), "cvar": risk.get("cvar"),
                     "worst": risk.get("worst")})
    return pd.DataFrame(rows)


def evaluate_portfolio(inst: Instance, plan_path: str | Path, workers: int = 1,
                       alpha: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """A saved portfolio (plan.json) priced in every scenario of `inst`: a table (scenario,
    probability, status, cost) and a report (expected cost and its distribution, the
    scenarios where the portfolio cannot be carried out, seconds)."""
    from offtake.domain.risk import summary
    from offtake.results.tables import read_plan

    d = build_data(inst)
    res = evaluate_plan(d, read_plan(Path(plan_path)), workers=workers)
    table = pd.DataFrame([{"scenario": s, "probability": d.probability[s],
                           "status": res.status[s], "cost": res.cost.get(s)}
                          for s in d.SCENARIOS])
    failed = [s for s in d.SCENARIOS if res.status[s] != "optimal"]
    risk = {}
    if not failed:
        risk = summary([res.cost[s] for s in d.SCENARIOS],
                       [d.probability[s] for s in d.SCENARIOS], alpha)
    report = {"scenarios": len(d.SCENARIOS), "expected_cost": res.expected,
              "risk": risk, "infeasible_in": failed, "seconds": res.seconds,
              "template": res.size}
    return table, report


def decompose_instance(inst: Instance, out_dir: str | Path, options=None, *,
                       cvar_weight: float = 0.0, cvar_alpha: float = 0.95):
    """Solve by decomposition (offtake.analysis.decompose) and write decomposition.json, plan.json
    and scenario_costs.csv (scenario, probability, cost) to `out_dir`."""
    import json

    from offtake.analysis.decompose import DecomposeOptions, solve_decomposed
    from offtake.results.tables import write_plan

    d = build_data(inst, cvar_weight=cvar_weight, cvar_alpha=cvar_alpha)
    res = solve_decomposed(d, options or DecomposeOptions())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {"status": res.status, "objective": res.objective, "bound": res.bound,
              "gap": res.gap, "iterations": res.iterations, "cvar_weight": cvar_weight,
              "cvar_alpha": cvar_alpha, "representatives": res.representatives,
              "seconds": res.seconds, "size": res.size,
              "currency": inst.meta.currency, "instance_name": inst.meta.name,
              "history": res.history}
    (out / "decomposition.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    write_plan(out / "plan.json", res.plan)
    table = pd.DataFrame([{"scenario": s, "probability": d.probability[s],
                           "cost": res.scenario_cost[s]} for s in d.SCENARIOS])
    table.to_csv(out / "scenario_costs.csv", index=False)
    return res, table

