"""The optimisation model: `build_model` reads like the table of contents of
`models/formulation.md`: sets, variables, one `add_<family>` call per constraint family (the
rule kinds come from the registry), then the registered cost terms whose sum is the objective.
Each builder's name is used for its Pyomo components, its section of the formulation, the
result tables and the checker.

First-stage decisions (signing, contracted volume) have no scenario index; every second-stage
quantity (flows, processing, unmet demand, spot purchases) carries one.

The formulation package is the only code that builds Pyomo components. It reads only
`ModelData`; never the schema, never a solver.
"""

from __future__ import annotations

import pyomo.core as pyo

import offtake.formulation.builds  # noqa: F401  (registers the build options' family)
import offtake.formulation.contracts  # noqa: F401  (registers the contract families)
import offtake.formulation.flows  # noqa: F401  (registers the physical-chain families)
import offtake.formulation.stockpiles  # noqa: F401  (registers the stockpile families)
from offtake.domain.registry import COST_TERMS as TERM_ORDER
from offtake.domain.registry import FAMILIES, RISK_FAMILIES, RULE_KINDS, count_kinds
from offtake.formulation.data import ModelData
from offtake.formulation.expressions import FAMILY_BUILDERS, tier_choices
from offtake.formulation.objective import COST_TERMS, RISK_BUILDERS
from offtake.formulation.readback import (  # noqa: F401  (the model's public read-back API)
    FIRST_STAGE,
    PLAN,
    first_stage_values,
    fix_first_stage,
    fix_integers,
    has_integers,
    rule_duals,
    solution_values,
)
from offtake.formulation.rules import RULE_BUILDERS, row_scenarios, total_violation


def build_model(d: ModelData) -> pyo.ConcreteModel:
    m = pyo.ConcreteModel(name="offtake")
    add_sets(m, d)
    add_variables(m, d)
    for family in FAMILIES:
        FAMILY_BUILDERS[family](m, d)
    for kind in RULE_KINDS:
        RULE_BUILDERS[kind](m, d)
    m.SCENARIOS = pyo.Set(initialize=d.SCENARIOS, ordered=True)
    by_scenario = {name: COST_TERMS[name](m, d) for name in TERM_ORDER}
    for name, costs in by_scenario.items():
        setattr(m, f"cost_{name}", pyo.Expression(
            expr=sum(d.probability[s] * costs[s] for s in d.SCENARIOS)))
    m.scenario_cost = pyo.Expression(
        m.SCENARIOS, rule=lambda _, s: sum(costs[s] for costs in by_scenario.values()))
    m.scenario_term_cost = pyo.Expression(
        pyo.Set(initialize=[(n, s) for n in TERM_ORDER for s in d.SCENARIOS], dimen=2),
        rule=lambda _, n, s: by_scenario[n][s])
    for family in RISK_FAMILIES:
        RISK_BUILDERS[family](m, d)
    if d.elastic:  # infeasibility diagnosis: least total violation of the hard rules
        m.total_violation = pyo.Objective(expr=total_violation(m, d), sense=pyo.minimize)
    else:
        m.total_cost = pyo.Objective(
            expr=sum(getattr(m, f"cost_{n}") for n in TERM_ORDER) + m.cost_risk,
            sense=pyo.minimize)
    return m


def add_sets(m: pyo.ConcreteModel, d: ModelData) -> None:
    S = d.SCENARIOS
    m.OFFERS = pyo.Set(initialize=d.OFFERS, ordered=True)
    m.OFFER_YEARS = pyo.Set(initialize=d.OFFER_YEARS, dimen=2, ordered=True)
    m.OFFER_BUYER_YEARS = pyo.Set(initialize=d.OFFER_BUYER_YEARS, dimen=3, ordered=True)
    m.FLOWS = pyo.Set(initialize=[(b, i, j, t, y, s) for b, i, j, t in d.BUYER_ARC_TAGS
                                  for y in d.YEARS for s in S], dimen=6, ordered=True)
    m.PRODUCTIONS = pyo.Set(initialize=[(f, b, c, y, s) for f, b, c in d.COMBOS
                                        for y in d.YEARS for s in S], dimen=5, ordered=True)
    m.UNMET = pyo.Set(initialize=d.DEMANDS, dimen=4, ordered=True)
    m.OFFER_STARTS = pyo.Set(initialize=d.OFFER_STARTS, dimen=2, ordered=True)
    m.BUILDS = pyo.Set(initialize=d.BUILDS, ordered=True)
    top, curtailed = set(d.TAKE_OR_PAY), set(d.CURTAILED)
    m.DELIVERIES = pyo.Set(initialize=[(o, b, y, s) for o, b, y in d.OFFER_BUYER_YEARS
                                       if o in top or (o, y) in curtailed for s in S],
                           dimen=4, ordered=True)
    m.SHORTFALLS = pyo.Set(initialize=[k for k in m.DELIVERIES if k[0] in top], dimen=4,
                           ordered=True)
    m.TIER_CHOICES = pyo.Set(initialize=tier_choices(d), dimen=3, ordered=True)
    m.TIER_VOLUMES = pyo.Set(initialize=[(o, y, k) for o, k in d.TIERS for oo, y in d.OFFER_YEARS
                                         if oo == o], dimen=3, ordered=True)
    m.CREDITS = pyo.Set(initialize=[(o, y, s) for o, y in d.OFFER_YEARS
                                    if d.offer_prepayment_credit[o] > 0 for s in S],
                        dimen=3, ordered=True)
    m.RESALE_YEARS = pyo.Set(initialize=[(b, k, y, s) for b, k in d.RESALES for y in d.YEARS
                                         for s in S], dimen=4, ordered=True)
    m.STOCK_YEARS = pyo.Set(initialize=[(b, mat, y, s) for b, mat in d.STOCKS for y in d.YEARS
                                        for s in S], dimen=4, ordered=True)
    m.RULE_SUPPLIERS = pyo.Set(
        initialize=sorted({(r, u) for r, u, _ in d.RULE_SUPPLIER_OFFERS}), dimen=2,
        ordered=True)
    relaxable = [r for r in d.RULE_IDS if d.elastic or not d.rule_hard[r]]
    m.RELAXABLE_COUNT_RULES = pyo.Set(
        initialize=[r for r in relaxable if d.rule_kind[r] in count_kinds()],
        ordered=True)
    rows = [(row.row_id, s) for kind_rows in d.rule_rows.values() for row in kind_rows
            for s in row_scenarios(d, row) if row.rule in relaxable]
    m.RELAXABLE_ROWS = pyo.Set(initialize=rows, dimen=2, ordered=True)


def add_variables(m: pyo.ConcreteModel, d: ModelData) -> None:
    m.v_signed = pyo.Var(m.OFFERS, domain=pyo.Binary)
    m.v_volume_t = pyo.Var(m.OFFER_BUYER_YEARS, domain=pyo.NonNegativeReals,
                           bounds=lambda _, o, b, y: (0, d.offer_cap_t[o, y]))
    m.v_flow_t = pyo.Var(m.FLOWS, domain=pyo.NonNegativeReals)
    m.v_built = pyo.Var(m.BUILDS, domain=pyo.Binary)
    most = d.capacity_bounds()
    m.v_production_t = pyo.Var(m.PRODUCTIONS, domain=pyo.NonNegativeReals,
                               bounds=lambda _, f, b, c, y, s: (0, most[f, y, s]))
    m.v_unmet_t = pyo.Var(m.UNMET, domain=pyo.NonNegativeReals,
                          bounds=lambda _, b, mat, y, s: (0, d.demand_t[b, mat, y, s]))
    m.v_start = pyo.Var(m.OFFER_STARTS, domain=pyo.Binary)
    m.v_delivered_t = pyo.Var(m.DELIVERIES, domain=pyo.NonNegativeReals)
    m.v_shortfall_t = pyo.Var(m.SHORTFALLS, domain=pyo.NonNegativeReals)
    m.v_tier = pyo.Var(m.TIER_CHOICES, domain=pyo.Binary)
    m.v_tier_t = pyo.Var(m.TIER_VOLUMES, domain=pyo.NonNegativeReals)
    m.v_credit = pyo.Var(m.CREDITS, domain=pyo.NonNegativeReals)
    m.v_resale_t = pyo.Var(m.RESALE_YEARS, domain=pyo.NonNegativeReals)
    m.v_stock_t = pyo.Var(m.STOCK_YEARS, domain=pyo.NonNegativeReals)
    m.v_supplier_used = pyo.Var(m.RULE_SUPPLIERS, domain=pyo.Binary)
    m.v_count_violation = pyo.Var(m.RELAXABLE_COUNT_RULES, domain=pyo.NonNegativeReals)
    m.v_rule_violation_t = pyo.Var(m.RELAXABLE_ROWS, domain=pyo.NonNegativeReals)
    offtake.formulation.stockpiles.add_stockpile_variables(m, d)
