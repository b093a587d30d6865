"""The objective: one function per cost term, each in each scenario and for each buyer, and
the risk term.

Owns `COST_CHECKS`, the checker function of each cost term of `offtake.domain.registry`'s
`COST_TERMS` (filled by `@cost_check("<term>")`, all with the signature
`(c, plan, extra: TermInputs)`; a term without one is reported as an `internal_error`),
`term_splits` (every term in every scenario, split by buyer: formulation.md, "Cost per
buyer"), `scenario_terms`, `expected` and `cvar` / `risk_cvar` (formulation.md, "Objective"
and cvar).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from offtake.check.builds import REPORTED_PAYERS, cost_year, modelled
from offtake.check.context import KG_PER_T, Ctx, family_check
from offtake.check.emissions import Factors, buyer_emissions
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

ByBuyer = dict[tuple[str, str], float]
"""A cost term in each (scenario, buyer): what the buyer pays of it in that scenario
(discounted, not probability-weighted); shared items split as formulation.md's "Cost per
buyer" says. Summed over the buyers it is the term in the scenario."""


@dataclass(frozen=True)
class TermInputs:
    """What some cost terms read besides the plan (every term function takes it, so that all
    share one signature)."""

    arcs: Arcs
    """Allowed arcs and their freight (freight)."""
    rows: list[RuleRow]
    """Every recomputed rule row (rule_violation_penalties)."""


TermCheck = Callable[[Ctx, Plan, TermInputs], ByBuyer]
"""A cost term's checker function: (context, plan, extra inputs) -> the term per scenario and
buyer."""

COST_CHECKS, cost_check = implementation_table("cost term", lambda: COST_TERMS)
"""Checker function of each registered cost term, filled by `@cost_check("<term>")`."""


def _add(out: ByBuyer, s: str, b: str, amount: float) -> None:
    out[(s, b)] = out.get((s, b), 0.0) + amount


def _everywhere(c: Ctx, out: ByBuyer, b: str, amount: float) -> None:
    """A first-stage amount: the same in every scenario."""
    for s in c.probability:
        _add(out, s, b, amount)


def split(amount: float, weights: dict[str, float], fallback: Iterable[str]
          ) -> dict[str, float]:
    """`amount` in proportion to the positive `weights`; equally over `fallback` when there
    are none (formulation.md, "Cost per buyer")."""
    total = sum(x for x in weights.values() if x > 0)
    if total > 0:
        return {b: amount * x / total for b, x in weights.items() if x > 0}
    who = sorted(set(fallback))
    return {b: amount / len(who) for b in who} if who else {}


def _eligible(c: Ctx, o: Offer) -> set[str]:
    return {b for b in c.eligible(o) if b in c.buyers}


# --- the cost terms, in registry order -------------------------------------------------------
@cost_check("contract_payments")
def contract_payments(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_t 1000 P_ots d_obts, to buyer b."""
    out: ByBuyer = {}
    for (o, b, year, s), d in plan.delivered.items():
        _add(out, s, b, c.delta[year] * KG_PER_T * offer_price(c, o, year, s).price * d)
    return out


@cost_check("volume_rebates")
def volume_rebates(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """-delta_t 1000 P_ots disc_k v_otk, split by the buyers' contracted volume q_obt in the
    year (equally over the eligible buyers when there is none)."""
    out: ByBuyer = {}
    for (o, year, s, k), v in plan.tiers.items():
        tiers = c.offers[o].tiers
        if k < len(tiers):
            price = offer_price(c, o, year, s).price
            amount = -c.delta[year] * KG_PER_T * price * tiers[k].discount * v
            weights = {b: q for (oo, b, t), q in plan.volume.items() if oo == o and t == year}
            for b, x in split(amount, weights, _eligible(c, c.offers[o])).items():
                _add(out, s, b, x)
    return out


@cost_check("take_or_pay_shortfall")
def take_or_pay_shortfall(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_t phi_o 1000 P_ots f_obts (take-or-pay offers), to buyer b."""
    out: ByBuyer = {}
    for (o, b, year, s), f in plan.shortfall.items():
        offer = c.offers[o]
        if offer.take_or_pay_share is not None:
            _add(out, s, b, c.delta[year] * offer.shortfall_fraction * KG_PER_T
                 * offer_price(c, o, year, s).price * f)
    return out


@cost_check("liquidated_damages")
def liquidated_damages(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """-delta_t 1000 L_o g_ots q_obt: what the supplier owes buyer b for the curtailed tonnes
    that its force-majeure clause does not excuse (force_majeure)."""
    out: ByBuyer = {}
    for (o, b, year), q in plan.volume.items():
        offer = c.offers[o]
        if offer.liquidated_damages_per_kg > 0:
            for s in c.probability:
                _a, g = c.curtailment(offer, year, s)
                _add(out, s, b, -c.delta[year] * KG_PER_T * offer.liquidated_damages_per_kg
                     * g * q)
    return out


@cost_check("tariffs")
def tariffs(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_t rho 1000 P d (contracts, before rebates) + the same on spot flows, to the
    buyer that buys."""
    out: ByBuyer = {}
    for (o, b, year, s), d in plan.delivered.items():
        _add(out, s, b, c.delta[year] * contract_tariff_rate(c, c.offers[o], b, year)
             * KG_PER_T * offer_price(c, o, year, s).price * d)
    for (k, b, _j, _tag, year, s), x in spot_flows(c, plan).items():
        _add(out, s, b, c.delta[year] * spot_tariff_rate(c, k, b, year) * KG_PER_T
             * c.spot_price(k, year, s) * x)
    return out


def _signed_offers(c: Ctx, plan: Plan) -> Iterable[tuple[Offer, int]]:
    """(offer, t_o) of each signed offer that can run in the horizon."""
    for o in c.inst.offers:
        if plan.signed.get(o.id) and c.possible_years(o):
            yield o, c.signing_year(o, plan.start.get(o.id))


def _by_contracted_volume(c: Ctx, plan: Plan, field: str) -> ByBuyer:
    """delta_{t_o} x (signing cost or prepayment) of each signed offer, split by the buyers'
    contracted volume under it over the horizon (equally over its eligible buyers when it
    carries none); first stage: in every scenario."""
    out: ByBuyer = {}
    for o, t_o in _signed_offers(c, plan):
        amount = c.discount(t_o) * getattr(o, field)
        if amount:
            weights: dict[str, float] = {}
            for (oo, b, _t), q in plan.volume.items():
                if oo == o.id:
                    weights[b] = weights.get(b, 0.0) + q
            for b, x in split(amount, weights, _eligible(c, o)).items():
                _everywhere(c, out, b, x)
    return out


@cost_check("signing_costs")
def signing_costs(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_{t_o} S_o z_o, split by contracted volume (first stage)."""
    return _by_contracted_volume(c, plan, "signing_cost")


@cost_check("prepayments")
def prepayments(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_{t_o} Pi_o z_o, split by contracted volume (first stage)."""
    return _by_contracted_volume(c, plan, "prepayment")


@cost_check("prepayment_credits")
def prepayment_credits(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """-delta_t c_ots, split by the buyers' delivered volume d_obts under the offer in that
    year and scenario."""
    out: ByBuyer = {}
    for (o, year, s), x in plan.credits.items():
        weights = {b: d for (oo, b, t, ss), d in plan.delivered.items()
                   if oo == o and t == year and ss == s}
        for b, share in split(-c.delta[year] * x, weights,
                              _eligible(c, c.offers[o])).items():
            _add(out, s, b, share)
    return out


@cost_check("build_costs")
def build_costs(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_{t^c_j} C_j b_j over the built options the buyers pay for (first stage), split by
    each buyer's committed offtake at the option's facility over the horizon (theta_o q_obt;
    equally over every buyer when nobody commits to it)."""
    out: ByBuyer = {}
    for j, (opt, f) in modelled(c).items():
        if not plan.built.get(j) or opt.paid_by not in REPORTED_PAYERS:
            continue
        weights: dict[str, float] = {}
        for (o, b, _t), q in plan.volume.items():
            offer = c.offers[o]
            if offer.supplier == f.id:
                theta = 1.0 if offer.take_or_pay_share is None else offer.take_or_pay_share
                weights[b] = weights.get(b, 0.0) + theta * q
        amount = c.discount(cost_year(c, opt)) * opt.cost
        for b, x in split(amount, weights, c.buyers).items():
            _everywhere(c, out, b, x)
    return out


@cost_check("spot_purchases")
def spot_purchases(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_t 1000 P_kt x (flows leaving spot markets), to the buyer that buys."""
    out: ByBuyer = {}
    for (k, b, _j, _tag, year, s), x in spot_flows(c, plan).items():
        _add(out, s, b, c.delta[year] * KG_PER_T * c.spot_price(k, year, s) * x)
    return out


@cost_check("freight")
def freight(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_t 1000 F_ij x, to the buyer whose material moves."""
    out: ByBuyer = {}
    for (b, i, j, _tag, year, s), x in plan.flow.items():
        _add(out, s, b, c.delta[year] * KG_PER_T * extra.arcs.get((i, j), 0.0) * x)
    return out


@cost_check("operating_costs")
def operating_costs(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_t 1000 c_ft p, to the buyer whose material is processed."""
    out: ByBuyer = {}
    for (f, b, _comb, year, s), p in plan.production.items():
        _add(out, s, b, c.delta[year] * KG_PER_T * at(c.facilities[f].opex_per_kg, year) * p)
    return out


@cost_check("carbon_costs")
def carbon_costs(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_t C_t E_bts (carbon_price.per_t_co2e), to the buyer whose chain emits."""
    out: ByBuyer = {}
    price = c.inst.carbon_price.per_t_co2e if c.inst.carbon_price is not None else 0.0
    if not price:
        return out
    for (b, year, s), e in buyer_emissions(c, plan, Factors.of(c)).items():
        _add(out, s, b, c.delta[year] * at(price, year) * e)
    return out


@cost_check("resale_credit")
def resale_credit(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """-delta_t 1000 P_kappa t (1 - haircut) r, to the buyer that resells."""
    out: ByBuyer = {}
    for (b, k, year, s), r in plan.resale.items():
        _add(out, s, b, -c.delta[year] * KG_PER_T * resale_price(c, k, year, s) * r)
    return out


@cost_check("holding_costs")
def holding_costs(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_t 1000 H_k h, to the buyer that holds the stock."""
    out: ByBuyer = {}
    for (b, k, year, s), h in plan.stock.items():
        _add(out, s, b, c.delta[year] * KG_PER_T
             * (c.materials[k].holding_cost_per_kg_year or 0.0) * h)
    return out


@cost_check("unmet_demand_penalty")
def unmet_demand_penalty(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_t 1000 rho_k u, to the buyer left short."""
    out: ByBuyer = {}
    for (b, k, year, s), u in plan.unmet.items():
        _add(out, s, b, c.delta[year] * KG_PER_T * c.materials[k].unmet_penalty_per_kg * u)
    return out


def row_buyers(c: Ctx, row: RuleRow) -> list[str]:
    """The buyers a rule row is about: the buyer its label starts with (rules that hold for
    each buyer), else the rule's scoped buyers (pooled rows, supplier counts, offtake and
    bankability rows)."""
    head = row.label.split("|")[0] if row.label else ""
    if head in c.buyers:
        return [head]
    scoped = row.rule.scope.buyers
    return sorted(b for b in c.buyers if scoped is None or b in scoped)


@cost_check("rule_violation_penalties")
def rule_violation_penalties(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """penalty x violation of soft count rules (first stage, in every scenario) plus
    delta_t penalty x violation of each soft row in its scenario (in every scenario for a row
    in expectation or of the portfolio alone); each split equally over the row's buyers."""
    out: ByBuyer = {}
    for row in extra.rows:
        if row.rule.hard:
            continue
        cost = (row.rule.penalty_per_unit or 0.0) * row.violation
        if not cost:
            continue
        who = row_buyers(c, row)
        for b in who:
            if row.year is None:
                _everywhere(c, out, b, cost / len(who))
            elif row.scenario in (EXPECTED, ""):  # violated once, whatever happens
                _everywhere(c, out, b, c.delta[row.year] * cost / len(who))
            else:
                _add(out, row.scenario, b, c.delta[row.year] * cost / len(who))
    return out


# --- every term, expected value, risk --------------------------------------------------------
def term_splits(c: Ctx, plan: Plan, extra: TermInputs) -> dict[str, ByBuyer]:
    """Each registered cost term in each (scenario, buyer), in registry order. A term without
    a checker function is an `internal_error` and left out (it cannot be recomputed)."""
    out: dict[str, ByBuyer] = {}
    for name in COST_TERMS:
        check: TermCheck | None = COST_CHECKS.get(name)
        if check is None:
            c.flag("internal_error", name, 1.0, f"cost term '{name}' has no checker function "
                   "registered in COST_CHECKS (offtake.check.objective); term not checked")
            continue
        out[name] = check(c, plan, extra)
    return out


def by_scenario(c: Ctx, split_: ByBuyer) -> PerScenario:
    """A term in each scenario: the sum over the buyers."""
    out = dict.fromkeys(c.probability, 0.0)
    for (s, _b), x in split_.items():
        out[s] += x
    return out


def by_buyer(c: Ctx, split_: ByBuyer) -> dict[str, float]:
    """A term's expected value paid by each buyer: sum_s pi_s (its share in s)."""
    out = dict.fromkeys(c.buyers, 0.0)
    for (s, b), x in split_.items():
        out[b] = out.get(b, 0.0) + c.probability[s] * x
    return out


def scenario_terms(c: Ctx, plan: Plan, extra: TermInputs) -> dict[str, PerScenario]:
    """Each registered cost term in each scenario, in registry order (see `term_splits`)."""
    return {name: by_scenario(c, x) for name, x in term_splits(c, plan, extra).items()}


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
