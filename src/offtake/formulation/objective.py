"""The objective: registered cost terms (`offtake.domain.registry.COST_TERMS`), each giving its
cost in every scenario, and the CVaR risk term. `add_cost_terms` builds `cost_<term>` (expected
values, summed by the objective), `scenario_cost` and `scenario_term_cost`."""

from __future__ import annotations

import pyomo.core as pyo

from offtake.domain.registry import COST_TERMS as REGISTERED_TERMS
from offtake.domain.registry import implementation_table
from offtake.formulation.data import EXPECTED, FIRST_STAGE_ROW, ModelData
from offtake.formulation.emissions import emission_terms
from offtake.formulation.expressions import delivered

COST_TERMS, cost_term = implementation_table("cost term", lambda: REGISTERED_TERMS)
"""Model expression of each registered cost term: fn(m, d) -> {scenario: expression}."""


def add_cvar(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Risk: lambda x CVaR_alpha of the scenario cost, in the standard linear form (the mean
    of the worst (1 - alpha) probability mass of scenario costs); nothing when lambda = 0.

    .. math:: \\mathrm{CVaR}_\\alpha = \\eta + \\frac{1}{1-\\alpha}\\sum_s \\pi_s \\xi_s,
        \\qquad \\xi_s \\ge C_s - \\eta

    Reads the solve options cvar_weight (lambda) and cvar_alpha. Dual of a tail row: the
    probability weight the scenario gets in the risk measure. The variables are made for a
    CVaR limit too (`add_cvar_limit`), with no term in the objective when lambda = 0.
    """
    if d.cvar_weight <= 0 and d.cvar_limit is None:
        m.cost_risk = pyo.Expression(expr=0.0)
        return
    m.v_var = pyo.Var(domain=pyo.Reals)
    m.v_tail = pyo.Var(m.SCENARIOS, domain=pyo.NonNegativeReals)
    m.cvar_tail = pyo.Constraint(
        m.SCENARIOS, rule=lambda _, s: m.v_tail[s] >= m.scenario_cost[s] - m.v_var)
    m.cvar = pyo.Expression(expr=m.v_var + sum(d.probability[s] * m.v_tail[s]
                                               for s in d.SCENARIOS) / (1 - d.cvar_alpha))
    m.cost_risk = pyo.Expression(expr=d.cvar_weight * m.cvar if d.cvar_weight > 0 else 0.0)


def add_cvar_limit(m: pyo.ConcreteModel, d: ModelData) -> None:
    """The solve option cvar_limit L: CVaR_alpha of the scenario cost at most L, on the
    variables of `add_cvar` (exact: their least value is the CVaR); nothing without L.

    .. math:: \\eta + \\frac{1}{1-\\alpha}\\sum_s \\pi_s \\xi_s \\le L

    Dual: the expected cost saved per unit of CVaR allowed more.
    """
    if d.cvar_limit is not None:
        m.cvar_cap = pyo.Constraint(expr=m.cvar <= d.cvar_limit)


RISK_BUILDERS = {"cvar": add_cvar, "cvar_limit": add_cvar_limit}
"""family -> builder of the risk measure, added in the registry's RISK_FAMILIES order."""


def _per_scenario(d: ModelData, items) -> dict[str, object]:
    """{scenario: sum of the expressions given for it} from (scenario, expression) pairs."""
    parts: dict[str, list] = {s: [] for s in d.SCENARIOS}
    for s, e in items:
        parts[s].append(e)
    return {s: sum(v) for s, v in parts.items()}


def _every_scenario(d: ModelData, expr) -> dict[str, object]:
    return dict.fromkeys(d.SCENARIOS, expr)


@cost_term("contract_payments")
def _contract_payments(m, d):
    return _per_scenario(d, ((s, d.discount[y] * d.offer_price_per_t[o, y, s]
                                 * delivered(m, o, b, y, s))
                             for o, b, y in m.OFFER_BUYER_YEARS for s in d.SCENARIOS))


@cost_term("volume_rebates")
def _volume_rebates(m, d):
    return _per_scenario(d, ((s, -d.discount[y] * d.offer_price_per_t[o, y, s]
                                 * d.tier_discount[o, k] * m.v_tier_t[o, y, k])
                             for o, y, k in m.TIER_VOLUMES if d.tier_discount[o, k] > 0
                             for s in d.SCENARIOS))


@cost_term("take_or_pay_shortfall")
def _take_or_pay_shortfall(m, d):
    return _per_scenario(d, ((s, d.discount[y] * d.offer_shortfall_fraction[o]
                                 * d.offer_price_per_t[o, y, s] * m.v_shortfall_t[o, b, y, s])
                             for o, b, y, s in m.SHORTFALLS))


@cost_term("liquidated_damages")
def _liquidated_damages(m, d):
    return _per_scenario(d, ((s, -d.discount[y] * d.offer_damages_per_t[o, y, s]
                                 * m.v_volume_t[o, b, y])
                             for o, b, y in m.OFFER_BUYER_YEARS for s in d.SCENARIOS
                             if (o, y, s) in d.offer_damages_per_t))


@cost_term("tariffs")
def _tariffs(m, d):
    spots = set(d.SPOTS)
    contracts = ((s, d.discount[y] * d.contract_tariff_rate[o, b, y]
                  * d.offer_price_per_t[o, y, s] * delivered(m, o, b, y, s))
                 for o, b, y in m.OFFER_BUYER_YEARS if d.contract_tariff_rate[o, b, y] > 0
                 for s in d.SCENARIOS)
    spot = ((s, d.discount[y] * d.spot_tariff_rate[i, b, y] * d.spot_price_per_t[i, y, s]
             * m.v_flow_t[b, i, j, t, y, s])
            for b, i, j, t, y, s in m.FLOWS if i in spots and d.spot_tariff_rate[i, b, y] > 0)
    return _per_scenario(d, (*contracts, *spot))


@cost_term("signing_costs")
def _signing_costs(m, d):
    return _every_scenario(d, _at_signing(m, d, d.offer_signing_cost))


@cost_term("prepayments")
def _prepayments(m, d):
    return _every_scenario(d, _at_signing(m, d, d.offer_prepayment))


@cost_term("prepayment_credits")
def _prepayment_credits(m, d):
    return _per_scenario(d, ((s, -d.discount[y] * m.v_credit[o, y, s])
                             for o, y, s in m.CREDITS))


@cost_term("build_costs")
def _build_costs(m, d):
    return _every_scenario(d, sum(d.discount[d.build_cost_year[j]] * d.build_cost[j]
                                  * m.v_built[j] for j in m.BUILDS
                                  if d.build_paid_by_buyers[j] and d.build_cost[j] > 0))


def _at_signing(m, d, amount: dict[str, float]):
    """A one-off amount paid when the contract starts (discounted to that year)."""
    windowed = {o for o, _ in d.OFFER_STARTS}
    fixed = sum(d.discount[d.offer_signing_year[o]] * amount[o] * m.v_signed[o]
                for o in m.OFFERS if amount[o] > 0 and o not in windowed)
    return fixed + sum(d.discount[y0] * amount[o] * m.v_start[o, y0]
                       for o, y0 in m.OFFER_STARTS if amount[o] > 0)


@cost_term("spot_purchases")
def _spot_purchases(m, d):
    spots = set(d.SPOTS)
    return _per_scenario(d, ((s, d.discount[y] * d.spot_price_per_t[i, y, s]
                                 * m.v_flow_t[b, i, j, t, y, s])
                             for b, i, j, t, y, s in m.FLOWS if i in spots))


@cost_term("freight")
def _freight(m, d):
    return _per_scenario(d, ((s, d.discount[y] * d.freight_per_t[i, j]
                                 * m.v_flow_t[b, i, j, t, y, s])
                             for b, i, j, t, y, s in m.FLOWS if d.freight_per_t[i, j] > 0))


@cost_term("operating_costs")
def _operating_costs(m, d):
    return _per_scenario(d, ((s, d.discount[y] * d.opex_per_t[f, y]
                                 * m.v_production_t[f, b, c, y, s])
                             for f, b, c, y, s in m.PRODUCTIONS if d.opex_per_t[f, y] > 0))


@cost_term("carbon_costs")
def _carbon_costs(m, d):
    """delta_t C_t E_bts: the carbon price on the buyers' supply-chain emissions."""
    if not d.carbon_price_per_t:
        return _every_scenario(d, 0.0)
    return _per_scenario(d, ((s, d.discount[y] * d.carbon_price_per_t[y] * e)
                             for (_, y, s), terms in emission_terms(m, d).items()
                             if y in d.carbon_price_per_t for e in terms))


@cost_term("resale_credit")
def _resale_credit(m, d):
    return _per_scenario(d, ((s, -d.discount[y] * d.resale_price_per_t[k, y, s]
                                 * m.v_resale_t[b, k, y, s])
                             for b, k, y, s in m.RESALE_YEARS))


@cost_term("holding_costs")
def _holding_costs(m, d):
    return _per_scenario(d, ((s, d.discount[y] * d.holding_cost_per_t[k]
                                 * m.v_stock_t[b, k, y, s])
                             for b, k, y, s in m.STOCK_YEARS))


@cost_term("unmet_demand_penalty")
def _unmet_demand_penalty(m, d):
    return _per_scenario(d, ((s, d.discount[y] * d.unmet_penalty_per_t[k]
                                 * m.v_unmet_t[b, k, y, s])
                             for b, k, y, s in m.UNMET))


@cost_term("rule_violation_penalties")
def _rule_violation_penalties(m, d):
    rows = {row.row_id: row for kind_rows in d.rule_rows.values() for row in kind_rows}
    counts = sum(d.rule_penalty[r] * m.v_count_violation[r] for r in m.RELAXABLE_COUNT_RULES)
    once_only = (EXPECTED, FIRST_STAGE_ROW)
    per = _per_scenario(d, ((s, d.discount[rows[r].year] * d.rule_penalty[rows[r].rule]
                                * m.v_rule_violation_t[r, s])
                            for r, s in m.RELAXABLE_ROWS if s not in once_only))
    # a row in expectation (or of the portfolio alone) is violated once, whatever happens:
    # count it in every scenario
    once = sum(d.discount[rows[r].year] * d.rule_penalty[rows[r].rule]
               * m.v_rule_violation_t[r, s] for r, s in m.RELAXABLE_ROWS if s in once_only)
    return {s: counts + e + once for s, e in per.items()}
