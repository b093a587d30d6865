"""The objective: one function per cost term, each in each scenario, and the risk term.

Owns `COST_CHECKS`, the checker function of each cost term of `offtake.domain.registry`'s
`COST_TERMS` (filled by `@cost_check("<term>")`, all with the signature
`(c, plan, extra: TermInputs)`; a term without one is reported as an `internal_error`),
`scenario_terms` (every term in every scenario, in registry order), `expected` and `cvar` /
`risk_cvar` (formulation.md, "Objective" and cvar).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from offtake.check.builds import REPORTED_PAYERS, cost_year, modelled
from offtake.check.context import KG_PER_T, Ctx, family_check
from offtake.check.network import Arcs
from offtake.check.prices import (
    contract_tariff_rate,
    offer_price,
    resale_price,
    spot_tariff_rate,
)
from offtake.check.rulerows import EXPECTED, RuleRow
from offtake.check.spot import spot_flows
from offtake.check.tables import Plan
from offtake.domain.network import at
from offtake.domain.registry import COST_TERMS, implementation_table
from offtake.domain.schema import Offer

PerScenario = dict[str, float]
"""A cost term in each scenario: discounted, not probability-weighted (first-stage costs in
every scenario)."""


@dataclass(frozen=True)
class TermInputs:
    """What some cost terms read besides the plan (every term function takes it, so that all
    share one signature)."""

    arcs: Arcs
    """Allowed arcs and their freight (freight)."""
    rows: list[RuleRow]
    """Every recomputed rule row (rule_violation_penalties)."""


TermCheck = Callable[[Ctx, Plan, TermInputs], PerScenario]
"""A cost term's checker function: (context, plan, extra inputs) -> the term per scenario."""

COST_CHECKS, cost_check = implementation_table("cost term", lambda: COST_TERMS)
"""Checker function of each registered cost term, filled by `@cost_check("<term>")`."""


def _per(c: Ctx) -> PerScenario:
    """Zero in every scenario."""
    return dict.fromkeys(c.probability, 0.0)


# --- the cost terms, in registry order -------------------------------------------------------
@cost_check("contract_payments")
def contract_payments(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """delta_t 1000 P_ots d_obts."""
    out = _per(c)
    for (o, _b, year, s), d in plan.delivered.items():
        out[s] += c.delta[year] * KG_PER_T * offer_price(c, o, year, s).price * d
    return out


@cost_check("volume_rebates")
def volume_rebates(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """-delta_t 1000 P_ots disc_k v_otk."""
    out = _per(c)
    for (o, year, s, k), v in plan.tiers.items():
        tiers = c.offers[o].tiers
        if k < len(tiers):
            price = offer_price(c, o, year, s).price
            out[s] -= c.delta[year] * KG_PER_T * price * tiers[k].discount * v
    return out


@cost_check("take_or_pay_shortfall")
def take_or_pay_shortfall(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """delta_t phi_o 1000 P_ots f_obts (take-or-pay offers)."""
    out = _per(c)
    for (o, _b, year, s), f in plan.shortfall.items():
        offer = c.offers[o]
        if offer.take_or_pay_share is not None:
            out[s] += (c.delta[year] * offer.shortfall_fraction * KG_PER_T
                       * offer_price(c, o, year, s).price * f)
    return out


@cost_check("tariffs")
def tariffs(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """delta_t rho 1000 P d (contracts, before rebates) + the same on spot flows."""
    out = _per(c)
    for (o, b, year, s), d in plan.delivered.items():
        out[s] += (c.delta[year] * contract_tariff_rate(c, c.offers[o], b, year) * KG_PER_T
                   * offer_price(c, o, year, s).price * d)
    for (k, b, _j, _tag, year, s), x in spot_flows(c, plan).items():
        out[s] += (c.delta[year] * spot_tariff_rate(c, k, b, year) * KG_PER_T
                   * c.spot_price(k, year, s) * x)
    return out


def _signed_offers(c: Ctx, plan: Plan) -> Iterable[tuple[Offer, int]]:
    """(offer, t_o) of each signed offer that can run in the horizon."""
    for o in c.inst.offers:
        if plan.signed.get(o.id) and c.possible_years(o):
            yield o, c.signing_year(o, plan.start.get(o.id))


@cost_check("signing_costs")
def signing_costs(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """delta_{t_o} S_o z_o (first stage: the same in every scenario)."""
    value = sum(c.discount(t_o) * o.signing_cost for o, t_o in _signed_offers(c, plan))
    return dict.fromkeys(c.probability, value)


@cost_check("prepayments")
def prepayments(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """delta_{t_o} Pi_o z_o (first stage)."""
    value = sum(c.discount(t_o) * o.prepayment for o, t_o in _signed_offers(c, plan))
    return dict.fromkeys(c.probability, value)


@cost_check("prepayment_credits")
def prepayment_credits(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """-delta_t c_ots."""
    out = _per(c)
    for (_o, year, s), x in plan.credits.items():
        out[s] -= c.delta[year] * x
    return out


@cost_check("build_costs")
def build_costs(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """delta_{t^c_j} C_j b_j over the built options the buyers pay for (first stage)."""
    value = sum(c.discount(cost_year(c, opt)) * opt.cost
                for j, (opt, _f) in modelled(c).items()
                if plan.built.get(j) and opt.paid_by in REPORTED_PAYERS)
    return dict.fromkeys(c.probability, value)


@cost_check("spot_purchases")
def spot_purchases(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """delta_t 1000 P_kt x (flows leaving spot markets)."""
    out = _per(c)
    for (k, _b, _j, _tag, year, s), x in spot_flows(c, plan).items():
        out[s] += c.delta[year] * KG_PER_T * c.spot_price(k, year, s) * x
    return out


@cost_check("freight")
def freight(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """delta_t 1000 F_ij x."""
    out = _per(c)
    for (_b, i, j, _tag, year, s), x in plan.flow.items():
        out[s] += c.delta[year] * KG_PER_T * extra.arcs.get((i, j), 0.0) * x
    return out


@cost_check("operating_costs")
def operating_costs(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """delta_t 1000 c_ft p."""
    out = _per(c)
    for (f, _b, _comb, year, s), p in plan.production.items():
        out[s] += c.delta[year] * KG_PER_T * at(c.facilities[f].opex_per_kg, year) * p
    return out


@cost_check("resale_credit")
def resale_credit(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """-delta_t 1000 P_kappa t (1 - haircut) r."""
    out = _per(c)
    for (_b, k, year, s), r in plan.resale.items():
        out[s] -= c.delta[year] * KG_PER_T * resale_price(c, k, year, s) * r
    return out


@cost_check("holding_costs")
def holding_costs(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """delta_t 1000 H_k h."""
    out = _per(c)
    for (_b, k, year, s), h in plan.stock.items():
        out[s] += (c.delta[year] * KG_PER_T * (c.materials[k].holding_cost_per_kg_year or 0.0)
                   * h)
    return out


@cost_check("unmet_demand_penalty")
def unmet_demand_penalty(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """delta_t 1000 rho_k u."""
    out = _per(c)
    for (_b, k, year, s), u in plan.unmet.items():
        out[s] += c.delta[year] * KG_PER_T * c.materials[k].unmet_penalty_per_kg * u
    return out


@cost_check("rule_violation_penalties")
def rule_violation_penalties(c: Ctx, plan: Plan, extra: TermInputs) -> PerScenario:
    """penalty x violation of soft count rules (first stage, in every scenario) plus
    delta_t penalty x violation of each soft row in its scenario."""
    out = _per(c)
    for row in extra.rows:
        if row.rule.hard:
            continue
        cost = (row.rule.penalty_per_unit or 0.0) * row.violation
        if row.year is None:
            for s in out:
                out[s] += cost
        elif row.scenario in (EXPECTED, ""):  # violated once, whatever happens
            for s in out:
                out[s] += c.delta[row.year] * cost
        else:
            out[row.scenario] += c.delta[row.year] * cost
    return out


# --- every term, expected value, risk --------------------------------------------------------
def scenario_terms(c: Ctx, plan: Plan, extra: TermInputs) -> dict[str, PerScenario]:
    """Each registered cost term in each scenario, in registry order. A term without a
    checker function is an `internal_error` and left out (it cannot be recomputed)."""
    out: dict[str, PerScenario] = {}
    for name in COST_TERMS:
        check: TermCheck | None = COST_CHECKS.get(name)
        if check is None:
            c.flag("internal_error", name, 1.0, f"cost term '{name}' has no checker function "
                   "registered in COST_CHECKS (offtake.check.objective); term not checked")
            continue
        out[name] = check(c, plan, extra)
    return out


def expected(c: Ctx, per: PerScenario) -> float:
    """sum_s pi_s (term in s)."""
    return sum(c.probability[s] * v for s, v in per.items())


@family_check("cvar")
def cvar(costs: dict[str, float], probability: dict[str, float], alpha: float) -> float:
    """CVaR_alpha of a discrete cost distribution: the mean of its worst (1 - alpha)
    probability mass (formulation.md, cvar)."""
    tail, left, total = 1.0 - alpha, 1.0 - alpha, 0.0
    for s in sorted(costs, key=lambda x: -costs[x]):
        take = min(probability[s], left)
        total += take * costs[s]
        left -= take
        if left <= 0:
            break
    return total / tail


def risk_cvar(c: Ctx, per_term: dict[str, PerScenario], weight: float, alpha: float) -> float:
    """lambda CVaR_alpha of the scenario cost C_s = sum of the terms in s."""
    totals = {s: sum(per[s] for per in per_term.values()) for s in c.probability}
    return weight * cvar(totals, c.probability, alpha)
