"""The value of modelling uncertainty: RP, EV, EEV, WS, VSS and EVPI of a scenario set."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pyomo.environ import value as pyo_value

from offtake.analysis.evaluate import evaluate_plan
from offtake.domain.schema import Instance
from offtake.formulation.data import ModelData, build_data, scenario_view
from offtake.formulation.model import build_model, first_stage_values, fix_first_stage
from offtake.solvers.highs import SolveOptions, objective_scale_for, solve


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
    status: dict[str, str] = {}

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
    eev_value: float | None = None
    eev_costs: dict[str, float] = {}
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
