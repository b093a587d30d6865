"""The optimisation model: the only code that builds Pyomo components.

`build_model` reads like the table of contents of `models/formulation.md`: sets, variables,
one `add_<family>` call per constraint family, then the registered cost terms whose sum is the
objective. Each builder's name is used for its Pyomo components, its section of the
formulation, the result tables and the checker.

First-stage decisions (signing, contracted volume) have no scenario index; every second-stage
quantity (flows, processing, unmet demand, spot purchases) carries one.

Reads only `ModelData`; never reads the schema, never calls a solver.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pandas as pd
import pyomo.environ as pyo

from offtake.data import ModelData, RuleRow

COST_TERMS: dict[str, Callable[[pyo.ConcreteModel, ModelData], object]] = {}
"""Registered objective terms, in report order; `cost_<name>` components sum to the objective."""


def cost_term(name: str) -> Callable:
    def register(fn: Callable) -> Callable:
        COST_TERMS[name] = fn
        return fn

    return register


def build_model(d: ModelData) -> pyo.ConcreteModel:
    m = pyo.ConcreteModel(name="offtake")
    add_sets(m, d)
    add_variables(m, d)
    add_contract_volume(m, d)
    add_facility_capacity(m, d)
    add_facility_output(m, d)
    add_facility_input(m, d)
    add_spot_availability(m, d)
    add_demand_balance(m, d)
    add_max_suppliers(m, d)
    add_min_suppliers(m, d)
    add_max_supplier_share(m, d)
    add_max_country_share(m, d)
    add_min_content_share(m, d)
    add_exclusion(m, d)
    add_min_recycled_share(m, d)
    add_max_offtake_share(m, d)
    for name, term in COST_TERMS.items():
        setattr(m, f"cost_{name}", pyo.Expression(expr=term(m, d)))
    if d.elastic:  # infeasibility diagnosis: least total violation of the hard rules
        m.total_violation = pyo.Objective(expr=_total_violation(m, d), sense=pyo.minimize)
    else:
        m.total_cost = pyo.Objective(
            expr=sum(getattr(m, f"cost_{n}") for n in COST_TERMS), sense=pyo.minimize)
    return m


# --- sets and variables ----------------------------------------------------------------------
def add_sets(m: pyo.ConcreteModel, d: ModelData) -> None:
    S = d.SCENARIOS
    m.OFFERS = pyo.Set(initialize=d.OFFERS, ordered=True)
    m.OFFER_YEARS = pyo.Set(initialize=d.OFFER_YEARS, dimen=2, ordered=True)
    m.OFFER_BUYER_YEARS = pyo.Set(initialize=d.OFFER_BUYER_YEARS, dimen=3, ordered=True)
    m.FLOWS = pyo.Set(initialize=[(b, i, j, t, y, s) for b, i, j, t in d.BUYER_ARC_TAGS
                                  for y in d.YEARS for s in S], dimen=6, ordered=True)
    m.PRODUCTIONS = pyo.Set(initialize=[(f, b, c, y, s) for f, b, c in d.COMBOS
                                        for y in d.YEARS for s in S], dimen=5, ordered=True)
    m.UNMET = pyo.Set(initialize=[(b, mat, y, s) for b, mat, y in d.DEMANDS for s in S],
                      dimen=4, ordered=True)
    m.RULE_SUPPLIERS = pyo.Set(
        initialize=sorted({(r, u) for r, u, _ in d.RULE_SUPPLIER_OFFERS}), dimen=2,
        ordered=True)
    relaxable = [r for r in d.RULE_IDS if d.elastic or not d.rule_hard[r]]
    m.RELAXABLE_COUNT_RULES = pyo.Set(
        initialize=[r for r in relaxable if d.rule_kind[r] in ("max_suppliers", "min_suppliers")],
        ordered=True)
    rows = [(row.row_id, s) for kind_rows in d.rule_rows.values() for row in kind_rows
            for s in S if row.rule in relaxable]
    m.RELAXABLE_ROWS = pyo.Set(initialize=rows, dimen=2, ordered=True)


def add_variables(m: pyo.ConcreteModel, d: ModelData) -> None:
    m.v_signed = pyo.Var(m.OFFERS, domain=pyo.Binary)
    m.v_volume_t = pyo.Var(m.OFFER_BUYER_YEARS, domain=pyo.NonNegativeReals,
                           bounds=lambda _, o, b, y: (0, d.offer_max_t[o]))
    m.v_flow_t = pyo.Var(m.FLOWS, domain=pyo.NonNegativeReals)
    m.v_production_t = pyo.Var(m.PRODUCTIONS, domain=pyo.NonNegativeReals,
                               bounds=lambda _, f, b, c, y, s: (0, d.capacity_t[f, y]))
    m.v_unmet_t = pyo.Var(m.UNMET, domain=pyo.NonNegativeReals,
                          bounds=lambda _, b, mat, y, s: (0, d.demand_t[b, mat, y]))
    m.v_supplier_used = pyo.Var(m.RULE_SUPPLIERS, domain=pyo.Binary)
    m.v_count_violation = pyo.Var(m.RELAXABLE_COUNT_RULES, domain=pyo.NonNegativeReals)
    m.v_rule_violation_t = pyo.Var(m.RELAXABLE_ROWS, domain=pyo.NonNegativeReals)


def _group(keys, key, value) -> dict:
    out: dict = defaultdict(list)
    for k in keys:
        out[key(k)].append(value(k))
    return out


# --- constraint families ---------------------------------------------------------------------
def add_contract_volume(m: pyo.ConcreteModel, d: ModelData) -> None:
    """A signed offer is taken between its minimum and maximum annual volume; an unsigned one
    not at all.

    .. math:: \\underline{q}_o z_o \\le \\sum_b q_{obt} \\le \\overline{q}_o z_o

    Reads offers' min_t_per_year, max_t_per_year. Dual: value (currency per t) of one more
    tonne of the offer's minimum (min row) or maximum (max row) in that year.
    """
    buyers = _group(d.OFFER_BUYER_YEARS, lambda k: (k[0], k[2]), lambda k: k[1])

    def taken(o, y):
        return sum(m.v_volume_t[o, b, y] for b in buyers.get((o, y), []))

    m.contract_volume_max = pyo.Constraint(
        m.OFFER_YEARS, rule=lambda _, o, y: taken(o, y) <= d.offer_max_t[o] * m.v_signed[o])
    m.contract_volume_min = pyo.Constraint(
        m.OFFER_YEARS, rule=lambda _, o, y: taken(o, y) >= d.offer_min_t[o] * m.v_signed[o])


def add_facility_capacity(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Contract sales from a facility's own feed plus everything it processes for buyers stay
    within its capacity, in every year and scenario.

    .. math:: \\sum_{o \\in O(f)} \\sum_b q_{obt} + \\sum_{b,c} p_{fbcts} \\le K_{ft}

    Reads facilities' capacity_t. Dual: value of one more tonne of capacity (currency per t).
    """
    sales = _group(d.OFFER_BUYER_YEARS, lambda k: (d.offer_supplier[k[0]], k[2]), lambda k: k)
    made = _group(m.PRODUCTIONS, lambda k: (k[0], k[3], k[4]), lambda k: k)
    index = sorted({(f, y, s) for f, y in sales for s in d.SCENARIOS} | set(made))
    m.FACILITY_YEARS = pyo.Set(initialize=index, dimen=3, ordered=True)
    m.facility_capacity_max = pyo.Constraint(
        m.FACILITY_YEARS,
        rule=lambda _, f, y, s: sum(m.v_volume_t[k] for k in sales.get((f, y), []))
        + sum(m.v_production_t[k] for k in made.get((f, y, s), [])) <= d.capacity_t[f, y])


def add_facility_output(m: pyo.ConcreteModel, d: ModelData) -> None:
    """What leaves a facility for a buyer, by origin tag, equals what it made for that buyer
    with that tag plus (for its own-feed tag) what the buyer bought from it under contract.

    .. math:: \\sum_j x_{b,f\\to j,\\tau,ts} = \\sum_{c \\to \\tau} p_{fbcts}
        + [\\tau = \\tau_f] \\sum_{o \\in O(f)} q_{obt}

    Reads arcs, offers, recipes. Dual: value of a tonne of the facility's product of that
    origin at its gate, for that buyer (currency per t).
    """
    out_arcs = _group(d.BUYER_ARC_TAGS, lambda k: (k[1], k[0], k[3]), lambda k: k[2])
    made = _group(d.COMBOS, lambda k: (k[0], k[1], d.combo_output[k[0], k[2]]), lambda k: k[2])
    sold = _group(d.OFFER_BUYER_YEARS, lambda k: (d.offer_supplier[k[0]], k[1], k[2]),
                  lambda k: k[0])
    own = {f: d.offer_tag[o] for o, f in d.offer_supplier.items()}
    m.OUTPUT_YEARS = pyo.Set(initialize=[(f, b, t, y, s) for f, b, t in d.OUTPUT_TAGS
                                         for y in d.YEARS for s in d.SCENARIOS],
                             dimen=5, ordered=True)
    m.facility_output_balance = pyo.Constraint(
        m.OUTPUT_YEARS,
        rule=lambda _, f, b, t, y, s:
        sum(m.v_flow_t[b, f, j, t, y, s] for j in out_arcs.get((f, b, t), []))
        == sum(m.v_production_t[f, b, c, y, s] for c in made.get((f, b, t), []))
        + (sum(m.v_volume_t[o, b, y] for o in sold.get((f, b, y), [])) if own.get(f) == t
           else 0))


def add_facility_input(m: pyo.ConcreteModel, d: ModelData) -> None:
    """A processor receives, for each buyer and each recipe input of each origin, what the
    input-tag combinations it runs consume.

    .. math:: \\sum_{i:\\,\\mu(i)=k} x_{b,i\\to f,\\tau,ts}
        = a_{fk} \\sum_{c:\\, c_k = \\tau} p_{fbcts}

    Reads facilities' recipe. Dual: value of a tonne of input k of that origin delivered to f
    (currency per t).
    """
    in_arcs = _group([k for k in d.BUYER_ARC_TAGS if k[2] in d.recipe],
                     lambda k: (k[2], k[0], d.arc_material[k[1], k[2]], k[3]), lambda k: k[1])
    uses = _group([(f, b, c, k, t) for f, b, c in d.COMBOS
                   for k, t in d.combo_inputs[f, c].items()],
                  lambda k: (k[0], k[1], k[3], k[4]), lambda k: k[2])
    m.INPUT_YEARS = pyo.Set(initialize=[(f, b, k, t, y, s) for f, b, k, t in d.INPUT_TAGS
                                        for y in d.YEARS for s in d.SCENARIOS],
                            dimen=6, ordered=True)
    m.facility_input_balance = pyo.Constraint(
        m.INPUT_YEARS,
        rule=lambda _, f, b, k, t, y, s:
        sum(m.v_flow_t[b, i, f, t, y, s] for i in in_arcs.get((f, b, k, t), []))
        == d.recipe[f][k] * sum(m.v_production_t[f, b, c, y, s]
                                for c in uses.get((f, b, k, t), [])))


def add_spot_availability(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Spot purchases from a market, over all buyers and origins, stay within its availability.

    .. math:: \\sum_{b,j,\\tau} x_{b,k\\to j,\\tau,ts} \\le A_{kt}

    Reads spot_markets' availability_t (unlimited markets have no row). Dual: scarcity value
    of spot volume (currency per t).
    """
    outs = _group(m.FLOWS, lambda k: (k[1], k[4], k[5]), lambda k: k)
    index = sorted(key for key in outs if key[:2] in d.spot_availability_t)
    m.SPOT_YEARS = pyo.Set(initialize=index, dimen=3, ordered=True)
    m.spot_availability_max = pyo.Constraint(
        m.SPOT_YEARS, rule=lambda _, k, y, s: sum(m.v_flow_t[x] for x in outs.get((k, y, s), []))
        <= d.spot_availability_t[k, y])


def add_demand_balance(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Each buyer's demand per material, year and scenario is delivered (any origin) or
    counted as unmet.

    .. math:: \\sum_{i,\\tau:\\,\\mu(i)=k} x_{b,i\\to b,\\tau,ts} + u_{bkts} \\ge D_{bkt}

    Reads buyers' demand_t. Dual: marginal cost of serving one more tonne (currency per t).
    """
    arrivals = _group([k for k in d.BUYER_ARC_TAGS if k[2] == k[0]],
                      lambda k: (k[0], d.arc_material[k[1], k[2]]), lambda k: k[1:])
    m.demand_balance = pyo.Constraint(
        m.UNMET,
        rule=lambda _, b, k, y, s:
        sum(m.v_flow_t[b, i, j, t, y, s] for i, j, t in arrivals.get((b, k), []))
        + m.v_unmet_t[b, k, y, s] >= d.demand_t[b, k, y])


def _count_rules(m: pyo.ConcreteModel, d: ModelData, kind: str) -> tuple[list[str], dict]:
    units = _group(m.RULE_SUPPLIERS, lambda k: k[0], lambda k: k[1])
    return [r for r in d.RULE_IDS if d.rule_kind[r] == kind and r in units], units


def _count_slack(m: pyo.ConcreteModel, r: str):
    return m.v_count_violation[r] if r in m.RELAXABLE_COUNT_RULES else 0


def add_max_suppliers(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `max_suppliers`: at most N distinct suppliers (facilities or companies) with a
    signed offer in the rule's scope.

    .. math:: w_{rn} \\ge z_o \\;\\forall o \\in O(r,n), \\quad \\sum_n w_{rn} \\le N_r + e_r

    Reads rules of kind max_suppliers. Dual: value of allowing one more supplier (currency per
    supplier, LP with integer decisions fixed).
    """
    rules, units = _count_rules(m, d, "max_suppliers")
    links = [k for k in d.RULE_SUPPLIER_OFFERS if k[0] in rules]
    m.suppliers_max_link = pyo.Constraint(
        pyo.Set(initialize=links, dimen=3, ordered=True),
        rule=lambda _, r, u, o: m.v_supplier_used[r, u] >= m.v_signed[o])
    m.suppliers_max = pyo.Constraint(
        pyo.Set(initialize=rules, ordered=True),
        rule=lambda _, r: sum(m.v_supplier_used[r, u] for u in units[r])
        <= d.rule_count_bound[r] + _count_slack(m, r))


def add_min_suppliers(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `min_suppliers`: at least N distinct suppliers with a signed offer in scope.

    .. math:: w_{rn} \\le \\sum_{o \\in O(r,n)} z_o, \\quad \\sum_n w_{rn} \\ge N_r - e_r

    Reads rules of kind min_suppliers. Dual: cost of requiring one more supplier (currency per
    supplier, LP with integer decisions fixed).
    """
    rules, units = _count_rules(m, d, "min_suppliers")
    offers = _group([k for k in d.RULE_SUPPLIER_OFFERS if k[0] in rules],
                    lambda k: (k[0], k[1]), lambda k: k[2])
    m.suppliers_min_link = pyo.Constraint(
        pyo.Set(initialize=sorted(offers), dimen=2, ordered=True),
        rule=lambda _, r, u: m.v_supplier_used[r, u] <= sum(m.v_signed[o] for o in offers[r, u]))
    m.suppliers_min = pyo.Constraint(
        pyo.Set(initialize=[r for r in d.RULE_IDS if d.rule_kind[r] == "min_suppliers"],
                ordered=True),
        rule=lambda _, r: sum(m.v_supplier_used[r, u] for u in units.get(r, []))
        + _count_slack(m, r) >= d.rule_count_bound[r])


def _arrival_terms(d: ModelData) -> dict:
    """(buyer, material, tag) -> flow keys (buyer, from, buyer, tag) that deliver it."""
    return _group([k for k in d.BUYER_ARC_TAGS if k[2] == k[0]],
                  lambda k: (k[0], d.arc_material[k[1], k[2]], k[3]), lambda k: k)


def _row_expr(m: pyo.ConcreteModel, row: RuleRow, s: str, arrivals: dict, part: str = ""):
    """num - share * den of a rule row in scenario s (see data.RuleRow); `part` = "num" or
    "den" returns that sum alone."""
    y = row.year

    def flows(keys):
        return sum(m.v_flow_t[b, i, j, t, y, s] for key in keys for b, i, j, t in arrivals[key])

    def volumes(keys):
        return sum(m.v_volume_t[o, b, y] for o, b in keys)

    def made(keys):
        return sum(m.v_production_t[f, b, c, y, s] for f, b in keys
                   for c in m.combos_of[f, b])

    num = flows(row.num_arrivals) + volumes(row.num_volumes) + made(row.num_production)
    den = (flows(row.den_arrivals) + volumes(row.den_volumes) + made(row.den_production)
           + sum(m.v_flow_t[b, k, j, t, y, s] for b, k, j, t in row.den_spot))
    if part:
        return num if part == "num" else den
    return num - row.share * den


def _add_rule_rows(m: pyo.ConcreteModel, d: ModelData, kind: str, component: str) -> None:
    """Build the rows of one rule kind as constraint `component`, indexed (row_id, scenario);
    a soft (or elastic) row gets the violation variable on its loose side."""
    rows = {row.row_id: row for row in d.rule_rows.get(kind, ())}
    if not hasattr(m, "combos_of"):
        m.combos_of = _group(d.COMBOS, lambda k: (k[0], k[1]), lambda k: k[2])
        m.arrival_terms = _arrival_terms(d)
    index = pyo.Set(initialize=[(r, s) for r in rows for s in d.SCENARIOS], dimen=2,
                    ordered=True)
    setattr(m, f"{component.upper()}_ROWS", index)

    def rule(_, r, s):
        row = rows[r]
        expr = _row_expr(m, row, s, m.arrival_terms)
        slack = m.v_rule_violation_t[r, s] if (r, s) in m.RELAXABLE_ROWS else 0
        if row.sense == "le":
            return expr - slack <= row.rhs
        return expr + slack >= row.rhs

    setattr(m, component, pyo.Constraint(index, rule=rule))


def add_max_supplier_share(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `max_supplier_share`: a buyer's (or pooled group's) purchases of a material from one
    supplier unit are at most a share of its purchases (contracts and spot) in a year.

    .. math:: \\sum_{o \\in O(n)} q_{obt} - s_r \\Big(\\sum_o q_{obt}
        + \\sum_{k,j,\\tau} x_{b,k\\to j,\\tau,ts}\\Big) \\le e_{rts}

    Reads max_share, by, pooled, scope. Dual: currency per tonne of extra allowance.
    """
    _add_rule_rows(m, d, "max_supplier_share", "supplier_share_max")


def add_max_country_share(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `max_country_share`: deliveries with a step at stage S in country C are at most a
    share of demand (per stage, per non-exempt country).

    .. math:: \\sum_{\\tau \\ni (S,C)} A_{bk\\tau ts} \\le s_r D_{bkt} + e_{rts}

    Reads max_share, stages, exempt_groups, exempt_countries. Dual: currency per tonne of
    extra allowance (per percentage point in rules.csv).
    """
    _add_rule_rows(m, d, "max_country_share", "country_share_max")


def add_min_content_share(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `min_content_share`: deliveries whose every step at the listed stages lies in the
    qualifying countries cover at least a share of demand.

    .. math:: \\sum_{\\tau\\ \\mathrm{qualifying}} A_{bk\\tau ts} \\ge s_{rt} D_{bkt} - e_{rts}

    Reads min_share (constant or ramp), stages, groups, countries. Dual: currency per tonne of
    required content (per percentage point in rules.csv).
    """
    _add_rule_rows(m, d, "min_content_share", "content_share_min")


def add_exclusion(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `exclusion`: from its first year, no delivery may have a step at a listed stage in
    an excluded country.

    .. math:: \\sum_{\\tau:\\,\\exists (S,C) \\in \\tau,\\, S \\in \\mathcal{S}_r,
        C \\in \\mathcal{C}_r} A_{bk\\tau ts} \\le e_{rts}

    Reads stages, groups, countries, from_year. Dual: currency per tonne of excluded content
    that would be allowed.
    """
    _add_rule_rows(m, d, "exclusion", "excluded_content_max")


def add_min_recycled_share(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `min_recycled_share`: deliveries with a RECYCLE step cover at least a share of
    demand.

    .. math:: \\sum_{\\tau \\ni \\mathrm{RECYCLE}} A_{bk\\tau ts} \\ge s_{rt} D_{bkt} - e_{rts}

    Reads min_share. Dual: currency per tonne of required recycled content.
    """
    _add_rule_rows(m, d, "min_recycled_share", "recycled_share_min")


def add_max_offtake_share(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `max_offtake_share`: buyers of one class take at most a share of a facility's
    output (contract sales and tolling) in a year.

    .. math:: \\sum_{b \\in \\mathcal{B}_c} (q_{fbt} + p_{fbts}) - s_r \\sum_b (q_{fbt} + p_{fbts})
        \\le e_{rts}

    Reads facilities, buyer_class, max_share. Dual: currency per tonne of extra allowance.
    """
    _add_rule_rows(m, d, "max_offtake_share", "offtake_share_max")


def _total_violation(m: pyo.ConcreteModel, d: ModelData):
    return (sum(m.v_rule_violation_t[k] for k in m.RELAXABLE_ROWS)
            + sum(m.v_count_violation[r] for r in m.RELAXABLE_COUNT_RULES))


# --- objective terms -------------------------------------------------------------------------
def _expected(d: ModelData, s: str, y: int) -> float:
    return d.probability[s] * d.discount[y]


@cost_term("contract_payments")
def _contract_payments(m, d):
    return sum(d.discount[y] * d.offer_price_per_t[o, y] * m.v_volume_t[o, b, y]
               for o, b, y in m.OFFER_BUYER_YEARS)


@cost_term("signing_costs")
def _signing_costs(m, d):
    return sum(d.discount[d.offer_signing_year[o]] * d.offer_signing_cost[o] * m.v_signed[o]
               for o in m.OFFERS if d.offer_signing_cost[o] > 0)


@cost_term("spot_purchases")
def _spot_purchases(m, d):
    spots = set(d.SPOTS)
    return sum(_expected(d, s, y) * d.spot_price_per_t[i, y] * m.v_flow_t[b, i, j, t, y, s]
               for b, i, j, t, y, s in m.FLOWS if i in spots)


@cost_term("freight")
def _freight(m, d):
    return sum(_expected(d, s, y) * d.freight_per_t[i, j] * m.v_flow_t[b, i, j, t, y, s]
               for b, i, j, t, y, s in m.FLOWS if d.freight_per_t[i, j] > 0)


@cost_term("operating_costs")
def _operating_costs(m, d):
    return sum(_expected(d, s, y) * d.opex_per_t[f, y] * m.v_production_t[f, b, c, y, s]
               for f, b, c, y, s in m.PRODUCTIONS if d.opex_per_t[f, y] > 0)


@cost_term("unmet_demand_penalty")
def _unmet_demand_penalty(m, d):
    return sum(_expected(d, s, y) * d.unmet_penalty_per_t[k] * m.v_unmet_t[b, k, y, s]
               for b, k, y, s in m.UNMET)


@cost_term("rule_violation_penalties")
def _rule_violation_penalties(m, d):
    rows = {row.row_id: row for kind_rows in d.rule_rows.values() for row in kind_rows}
    return (sum(d.rule_penalty[r] * m.v_count_violation[r] for r in m.RELAXABLE_COUNT_RULES)
            + sum(_expected(d, s, rows[r].year) * d.rule_penalty[rows[r].rule]
                  * m.v_rule_violation_t[r, s] for r, s in m.RELAXABLE_ROWS))


# --- reading a solution back -----------------------------------------------------------------
RULE_COMPONENTS = {
    "max_suppliers": "suppliers_max", "min_suppliers": "suppliers_min",
    "max_supplier_share": "supplier_share_max", "max_country_share": "country_share_max",
    "min_content_share": "content_share_min", "exclusion": "excluded_content_max",
    "min_recycled_share": "recycled_share_min", "max_offtake_share": "offtake_share_max",
}
"""Constraint component of each rule kind (one row per rule for supplier counts)."""


def fix_integers(m: pyo.ConcreteModel) -> None:
    """Fix every integer variable at its (rounded) value and make it continuous, so that the
    model left is an LP whose duals are shadow prices given that portfolio."""
    for v in m.component_data_objects(pyo.Var):
        if v.is_integer() and v.value is not None:
            value = round(v.value)
            v.domain = pyo.Reals
            v.fix(value)


def rule_duals(m: pyo.ConcreteModel, duals: dict, basis: str) -> pd.DataFrame:
    """Shadow price of every rule row: objective change per unit of relaxation (>= 0 when the
    rule binds), from the duals of an LP (`basis` says which: the LP itself, or the MIP's LP
    with integer decisions fixed at their optimum)."""
    rows = []
    for comp in RULE_COMPONENTS.values():
        con = getattr(m, comp, None)
        if con is None:
            continue
        for key, cd in con.items():
            dual = duals.get(cd)
            if dual is None:
                continue
            le = cd.has_ub() and not cd.has_lb()
            row_id, scenario = (key, "") if isinstance(key, str) else key
            rows.append((row_id, scenario, -dual if le else dual, basis))
    return pd.DataFrame(rows, columns=["row_id", "scenario", "shadow_price", "basis"])


def has_integers(m: pyo.ConcreteModel) -> bool:
    return any(v.is_integer() for v in m.component_data_objects(pyo.Var))


def solution_values(m: pyo.ConcreteModel, d: ModelData) -> dict[str, pd.DataFrame]:
    """Variable values, cost terms and rule rows as tidy frames (called only when a solution
    is loaded)."""

    def frame(var, cols, value_col):
        rows = [(*(k if isinstance(k, tuple) else (k,)), var[k].value or 0.0) for k in var]
        return pd.DataFrame(rows, columns=[*cols, value_col])

    _snap(m)
    signed = {o: round(m.v_signed[o].value or 0.0) for o in m.OFFERS}
    return {
        "signed": pd.DataFrame({"offer_id": list(signed), "signed": list(signed.values())}),
        "volume": frame(m.v_volume_t, ["offer_id", "buyer", "year"], "volume_t"),
        "flows": frame(m.v_flow_t, ["buyer", "from_node", "to_node", "tag", "year", "scenario"],
                       "flow_t"),
        "production": frame(m.v_production_t, ["facility", "buyer", "combo", "year",
                                               "scenario"], "production_t"),
        "unmet": frame(m.v_unmet_t, ["buyer", "material", "year", "scenario"], "unmet_t"),
        "costs": pd.DataFrame({"term": list(COST_TERMS),
                               "value": [pyo.value(getattr(m, f"cost_{n}")) for n in COST_TERMS]}),
        "count_violation": frame(m.v_count_violation, ["rule_id"], "violation"),
        "row_violation": frame(m.v_rule_violation_t, ["row_id", "scenario"], "violation"),
        "supplier_used": frame(m.v_supplier_used, ["rule_id", "unit"], "used"),
        "rule_rows": _rule_row_values(m, d),
    }


def _snap(m: pyo.ConcreteModel, zero: float = 1e-9) -> None:
    """Round integer variables and zero out solver noise (|x| < 1e-9), so that the cost terms
    and the tables written from them describe exactly the same plan."""
    for v in m.component_data_objects(pyo.Var):
        if v.value is None or v.fixed:
            continue
        if v.is_integer():
            v.set_value(round(v.value), skip_validation=True)
        elif abs(v.value) < zero:
            v.set_value(0.0, skip_validation=True)


def _rule_row_values(m: pyo.ConcreteModel, d: ModelData) -> pd.DataFrame:
    out = []
    for rows in d.rule_rows.values():
        for row in rows:
            for s in d.SCENARIOS:
                num = pyo.value(_row_expr(m, row, s, m.arrival_terms, part="num"))
                den = pyo.value(_row_expr(m, row, s, m.arrival_terms, part="den"))
                out.append((row.row_id, s, num, den))
    return pd.DataFrame(out, columns=["row_id", "scenario", "num", "den"])
