"""The value of modelling uncertainty: RP, EV, EEV, WS, VSS and EVPI of a scenario set.

Two definitions of the expected-value problem (`ev`): "data" (the default) averages every
scenario-dependent number of the model, so an index-linked price enters as the average of its
prices after floor and ceiling; "parameters" (the textbook one) averages the uncertain
parameters, so such a price is the floor and ceiling applied to the average index (the other
scenario data enter linearly, so both agree on them). When the EV problem has several optimal
portfolios, EEV depends on which one the solver returns: `stochastic_value` looks for a second
EV-optimal portfolio as far from the first as it can be (within the solver's gap) and reports
the EEV of both (`eev_alternative`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pyomo.core import value as pyo_value

from offtake.analysis.evaluate import evaluate_plan
from offtake.domain.schema import Instance
from offtake.formulation.data import KG_PER_T, ModelData, build_data, scenario_view
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
    ev_definition: str = "data"
    """"data" (averaged model data) or "parameters" (averaged price indices): module doc."""
    eev_alternative: float | None = None
    """EEV of a second EV-optimal portfolio that signs different offers (None: none found);
    when it differs from `eev`, EEV (and VSS) depend on which EV optimum is taken."""
    rp_unmet: float | None = None
    """The expected unmet-demand penalty inside RP (None: no RP)."""
    eev_unmet: float | None = None
    """The expected unmet-demand penalty inside EEV: a VSS made mostly of it rests on the
    materials' unmet_penalty_per_kg, which may be a default rather than a real cost."""

    @property
    def vss(self) -> float | None:
        return None if self.eev is None or self.rp is None else self.eev - self.rp

    @property
    def evpi(self) -> float | None:
        return None if self.rp is None or self.ws is None else self.rp - self.ws

    def as_dict(self) -> dict:
        return {"RP": self.rp, "EV": self.ev, "EEV": self.eev, "WS": self.ws, "VSS": self.vss,
                "EVPI": self.evpi, "status": self.status, "EV_definition": self.ev_definition,
                "EEV_alternative": self.eev_alternative, "unmet_penalty_in_RP": self.rp_unmet,
                "unmet_penalty_in_EEV": self.eev_unmet}


def stochastic_value(inst: Instance, options: SolveOptions | None = None,
                     ev: str = "data") -> StochasticValue:
    """RP, EV, EEV, WS, VSS and EVPI of an instance's scenario set (see StochasticValue and
    the module doc for `ev`)."""
    if ev not in ("data", "parameters"):
        raise ValueError(f"ev must be 'data' or 'parameters', not {ev!r}")
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
    ev_data = scenario_view(d, d.probability, "expected")
    if ev == "parameters":
        ev_data = _at_average_indices(inst, ev_data, "expected")
    ev_out, ev_model = run_(ev_data)
    status.update(RP=rp.status, EV=ev_out.status)
    eev_value: float | None = None
    eev_costs: dict[str, float] = {}
    eev_other: float | None = None
    eev_unmet: float | None = None
    if ev_out.has_solution:
        plan = first_stage_values(ev_model)
        eev_value, eev_costs, status["EEV"], eev_unmet = _eev(d, plan, run_, unmet=True)
        other = _other_optimum(ev_data, plan, ev_out.objective, options)
        if other is not None:
            eev_other, _, status["EEV_alternative"], _ = _eev(d, other, run_)
    ws_total, ws_ok = 0.0, True
    for s in d.SCENARIOS:
        out, _ = run_(scenario_view(d, {s: 1.0}, s))
        status[f"WS[{s}]"] = out.status
        ws_ok &= out.has_solution
        ws_total += d.probability[s] * (out.objective or 0.0)
    return StochasticValue(rp.objective, ev_out.objective, eev_value,
                           ws_total if ws_ok else None, status, dict(d.probability),
                           _scenario_costs(rp_model) if rp.has_solution else {}, eev_costs,
                           ev, eev_other,
                           _unmet_penalty(rp_model) if rp.has_solution else None, eev_unmet)


def _at_average_indices(inst: Instance, ev_data: ModelData, label: str) -> ModelData:
    """The EV data with each index-linked offer priced at the probability-weighted average
    of its index path (floors and ceilings applied to that average) instead of the average
    of its scenario prices."""
    from offtake.domain.economics import unit_price
    from offtake.domain.network import at
    from offtake.domain.scenarios import index_path

    years = inst.horizon.years
    mean = {x.id: {y: sum(sc.probability * at(index_path(x, sc), y) for sc in inst.scenarios)
                   for y in years} for x in inst.price_indices}
    price = dict(ev_data.offer_price_per_t)
    fiscal = dict(ev_data.offer_fiscal_per_t)
    term = dict(ev_data.offer_price_term)
    offers = {o.id: o for o in inst.offers}
    for o, y in ev_data.OFFER_YEARS:
        if offers[o].index is None:
            continue
        up = unit_price(offers[o], mean, y)
        price[(o, y, label)] = up.buyer_per_kg * KG_PER_T
        fiscal[(o, y, label)] = up.fiscal_per_kg * KG_PER_T
        term[(o, y, label)] = up.term
    return replace(ev_data, offer_price_per_t=price, offer_fiscal_per_t=fiscal,
                   offer_price_term=term)


def _other_optimum(ev_data: ModelData, plan: dict, ev_objective: float | None,
                   options: SolveOptions) -> dict | None:
    """A second EV-optimal portfolio (cost within the MIP gap of the optimum) that signs as
    many offers differently from `plan` as possible; None when every EV optimum signs the
    same offers."""
    import pyomo.core as pyo

    if ev_objective is None:
        return None
    signed = {k[0] if isinstance(k, tuple) else k: round(v)
              for k, v in plan.get("v_signed", {}).items()}
    if not signed:
        return None
    m = build_model(ev_data)
    m.total_cost.deactivate()
    slack = max(options.mip_gap, 1e-9) * max(1.0, abs(ev_objective))
    m.ev_optimal = pyo.Constraint(expr=m.total_cost.expr <= ev_objective + slack)
    m.distance = pyo.Objective(
        expr=sum((1 - m.v_signed[o]) if z else m.v_signed[o] for o, z in signed.items()
                 if o in m.v_signed), sense=pyo.maximize)
    out = solve(m, replace(options, objective_scale=None))
    if not out.has_solution or (out.objective or 0.0) < 0.5:
        return None
    return first_stage_values(m)


def _eev(d: ModelData, plan: dict, run_, unmet: bool = False
         ) -> tuple[float | None, dict[str, float], str, float | None]:
    """The EV plan's expected cost over the scenarios: one LP per scenario from a compiled
    template (offtake.analysis.evaluate); with rules in expectation, which couple the scenarios, the
    extensive form with the plan fixed. With `unmet`, also the expected unmet-demand penalty
    inside it, read from the extensive form with the plan fixed (solved once either way)."""
    if any(d.rule_in_expectation.values()):
        out, model = run_(d, plan)
        costs = _scenario_costs(model) if out.has_solution else {}
        return out.objective, costs, out.status, (
            _unmet_penalty(model) if unmet and out.has_solution else None)
    res = evaluate_plan(d, plan)
    failed = sorted(s for s, st in res.status.items() if st != "optimal")
    status = "optimal" if not failed else f"infeasible in {', '.join(failed)}"
    penalty = None
    if unmet and res.expected is not None:
        out, model = run_(d, plan)
        penalty = _unmet_penalty(model) if out.has_solution else None
    return res.expected, res.cost, status, penalty


def _unmet_penalty(model) -> float:
    return float(pyo_value(model.cost_unmet_demand_penalty))


def _scenario_costs(model) -> dict[str, float]:
    return {s: float(pyo_value(model.scenario_cost[s])) for s in model.SCENARIOS}
