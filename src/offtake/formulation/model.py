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

from offtake.formulation.data import EXPECTED, ModelData, RuleRow

COST_TERMS: dict[str, Callable[[pyo.ConcreteModel, ModelData], object]] = {}
"""Registered objective terms, in report order. Each gives its cost per scenario; the
`cost_<name>` components (expected values) sum to the objective."""


def cost_term(name: str) -> Callable:
    def register(fn: Callable) -> Callable:
        COST_TERMS[name] = fn
        return fn

    return register


def build_model(d: ModelData) -> pyo.ConcreteModel:
    m = pyo.ConcreteModel(name="offtake")
    add_sets(m, d)
    add_variables(m, d)
    add_contract_start(m, d)
    add_contract_volume(m, d)
    add_take_or_pay(m, d)
    add_volume_tiers(m, d)
    add_prepayment_credit(m, d)
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
    m.SCENARIOS = pyo.Set(initialize=d.SCENARIOS, ordered=True)
    by_scenario = {name: term(m, d) for name, term in COST_TERMS.items()}
    for name, costs in by_scenario.items():
        setattr(m, f"cost_{name}", pyo.Expression(
            expr=sum(d.probability[s] * costs[s] for s in d.SCENARIOS)))
    m.scenario_cost = pyo.Expression(
        m.SCENARIOS, rule=lambda _, s: sum(costs[s] for costs in by_scenario.values()))
    m.scenario_term_cost = pyo.Expression(
        pyo.Set(initialize=[(n, s) for n in COST_TERMS for s in d.SCENARIOS], dimen=2),
        rule=lambda _, n, s: by_scenario[n][s])
    add_cvar(m, d)
    if d.elastic:  # infeasibility diagnosis: least total violation of the hard rules
        m.total_violation = pyo.Objective(expr=_total_violation(m, d), sense=pyo.minimize)
    else:
        m.total_cost = pyo.Objective(
            expr=sum(getattr(m, f"cost_{n}") for n in COST_TERMS) + m.cost_risk,
            sense=pyo.minimize)
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
    m.UNMET = pyo.Set(initialize=d.DEMANDS, dimen=4, ordered=True)
    m.OFFER_STARTS = pyo.Set(initialize=d.OFFER_STARTS, dimen=2, ordered=True)
    top = set(d.TAKE_OR_PAY)
    m.DELIVERIES = pyo.Set(initialize=[(o, b, y, s) for o, b, y in d.OFFER_BUYER_YEARS
                                       if o in top for s in S], dimen=4, ordered=True)
    m.TIER_CHOICES = pyo.Set(initialize=_tier_choices(d), dimen=3, ordered=True)
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
        initialize=[r for r in relaxable if d.rule_kind[r] in ("max_suppliers", "min_suppliers")],
        ordered=True)
    rows = [(row.row_id, s) for kind_rows in d.rule_rows.values() for row in kind_rows
            for s in _row_scenarios(d, row) if row.rule in relaxable]
    m.RELAXABLE_ROWS = pyo.Set(initialize=rows, dimen=2, ordered=True)


def add_variables(m: pyo.ConcreteModel, d: ModelData) -> None:
    m.v_signed = pyo.Var(m.OFFERS, domain=pyo.Binary)
    m.v_volume_t = pyo.Var(m.OFFER_BUYER_YEARS, domain=pyo.NonNegativeReals,
                           bounds=lambda _, o, b, y: (0, d.offer_cap_t[o, y]))
    m.v_flow_t = pyo.Var(m.FLOWS, domain=pyo.NonNegativeReals)
    m.v_production_t = pyo.Var(m.PRODUCTIONS, domain=pyo.NonNegativeReals,
                               bounds=lambda _, f, b, c, y, s: (0, d.capacity_t[f, y, s]))
    m.v_unmet_t = pyo.Var(m.UNMET, domain=pyo.NonNegativeReals,
                          bounds=lambda _, b, mat, y, s: (0, d.demand_t[b, mat, y, s]))
    m.v_start = pyo.Var(m.OFFER_STARTS, domain=pyo.Binary)
    m.v_delivered_t = pyo.Var(m.DELIVERIES, domain=pyo.NonNegativeReals)
    m.v_shortfall_t = pyo.Var(m.DELIVERIES, domain=pyo.NonNegativeReals)
    m.v_tier = pyo.Var(m.TIER_CHOICES, domain=pyo.Binary)
    m.v_tier_t = pyo.Var(m.TIER_VOLUMES, domain=pyo.NonNegativeReals)
    m.v_credit = pyo.Var(m.CREDITS, domain=pyo.NonNegativeReals)
    m.v_resale_t = pyo.Var(m.RESALE_YEARS, domain=pyo.NonNegativeReals)
    m.v_stock_t = pyo.Var(m.STOCK_YEARS, domain=pyo.NonNegativeReals)
    m.v_supplier_used = pyo.Var(m.RULE_SUPPLIERS, domain=pyo.Binary)
    m.v_count_violation = pyo.Var(m.RELAXABLE_COUNT_RULES, domain=pyo.NonNegativeReals)
    m.v_rule_violation_t = pyo.Var(m.RELAXABLE_ROWS, domain=pyo.NonNegativeReals)


def _tier_choices(d: ModelData) -> list[tuple[str, int, int]]:
    """(offer, period, tier): period = year for annual tiers, 0 for tiers on the total."""
    years = _group(d.OFFER_YEARS, lambda k: k[0], lambda k: k[1])
    return [(o, p, k) for o, k in d.TIERS
            for p in (years.get(o, []) if d.offer_tier_basis[o] == "annual" else [0])]


def _active(m: pyo.ConcreteModel, d: ModelData, o: str, y: int):
    """1 if offer o runs in year y: signed (and, with a start window, started in time)."""
    cover = d.offer_start_cover.get((o, y))
    if cover is None:
        return m.v_signed[o]
    return sum(m.v_start[o, y0] for y0 in cover)


def _delivered(m: pyo.ConcreteModel, o: str, b: str, y: int, s: str):
    """Tonnes delivered under o to b in (y, s): the contracted volume, or under take-or-pay
    the (second-stage) delivery."""
    if (o, b, y, s) in m.DELIVERIES:
        return m.v_delivered_t[o, b, y, s]
    return m.v_volume_t[o, b, y]


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
        m.OFFER_YEARS,
        rule=lambda _, o, y: taken(o, y) <= d.offer_cap_t[o, y] * _active(m, d, o, y))
    m.contract_volume_min = pyo.Constraint(
        m.OFFER_YEARS, rule=lambda _, o, y: taken(o, y) >= d.offer_min_t[o] * _active(m, d, o, y))


def add_contract_start(m: pyo.ConcreteModel, d: ModelData) -> None:
    """A signed offer with a start window starts in exactly one of its start years; it then
    runs for its term (see `offer_start_cover`).

    .. math:: \\sum_{y_0} \\sigma_{o y_0} = z_o

    Reads offers' start_years and term_years. Dual: none of business interest.
    """
    starts = _group(d.OFFER_STARTS, lambda k: k[0], lambda k: k[1])
    m.contract_start_link = pyo.Constraint(
        pyo.Set(initialize=sorted(starts), ordered=True),
        rule=lambda _, o: sum(m.v_start[o, y0] for y0 in starts[o]) == m.v_signed[o])


def add_take_or_pay(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Take-or-pay: the buyer takes delivery of at most its contracted volume in each scenario,
    and any delivery below the take-or-pay share of it is a shortfall (paid for).

    .. math:: d_{obts} \\le q_{obt}, \\qquad f_{obts} \\ge \\theta_o q_{obt} - d_{obts}

    Reads take_or_pay_share. Dual (shortfall row): value of taking one more tonne
    (currency per t).
    """
    m.take_or_pay_delivery_max = pyo.Constraint(
        m.DELIVERIES, rule=lambda _, o, b, y, s: m.v_delivered_t[o, b, y, s]
        <= m.v_volume_t[o, b, y])
    m.take_or_pay_shortfall_min = pyo.Constraint(
        m.DELIVERIES, rule=lambda _, o, b, y, s: m.v_shortfall_t[o, b, y, s]
        >= d.offer_top_share[o] * m.v_volume_t[o, b, y] - m.v_delivered_t[o, b, y, s])


def add_volume_tiers(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Volume tiers: the contracted volume is split into tier bands; all-units tiers pick one
    band for the whole volume, incremental tiers fill bands in order (binary per band).

    .. math:: \\sum_k v_{otk} = \\sum_b q_{obt}, \\quad
        \\underline{V}_k w_{opk} \\le v_{\\cdot k} \\le \\overline{V}_k w_{opk}

    Reads tiers, tier_mode, tier_basis. Dual: none of business interest (MIP).
    """
    bought = _group(d.OFFER_BUYER_YEARS, lambda k: (k[0], k[2]), lambda k: k[1])
    tiers = _group(d.TIERS, lambda k: k[0], lambda k: k[1])
    years = _group(d.OFFER_YEARS, lambda k: k[0], lambda k: k[1])
    rows = []
    for o, ks in tiers.items():
        for y in years.get(o, []):
            rows.append(sum(m.v_tier_t[o, y, k] for k in ks)
                        == sum(m.v_volume_t[o, b, y] for b in bought.get((o, y), [])))
        rows += (_annual_tier_rows(m, d, o, ks, years.get(o, []))
                 if d.offer_tier_basis[o] == "annual"
                 else _total_tier_rows(m, d, o, ks, years.get(o, [])))
    m.volume_tier_link = pyo.ConstraintList()
    for row in rows:
        m.volume_tier_link.add(row)


def _annual_tier_rows(m, d: ModelData, o: str, ks: list[int], years: list[int]) -> list:
    rows = []
    for y in years:
        w = [m.v_tier[o, y, k] for k in ks]
        v = [m.v_tier_t[o, y, k] for k in ks]
        lo = [d.tier_from_t[o, k] for k in ks]
        hi = [d.tier_to_t[o, k] for k in ks]
        if d.offer_tier_mode[o] == "all_units":
            rows.append(sum(w) == _active(m, d, o, y))
            rows += [v[i] >= lo[i] * w[i] for i in range(len(ks))]
            rows += [v[i] <= hi[i] * w[i] for i in range(len(ks))]
        else:  # incremental: band i is filled only if band i+1 is used
            rows.append(w[0] == _active(m, d, o, y))
            rows += [v[i] <= (hi[i] - lo[i]) * w[i] for i in range(len(ks))]
            rows += [v[i] >= (hi[i] - lo[i]) * w[i + 1] for i in range(len(ks) - 1)]
            rows += [w[i + 1] <= w[i] for i in range(len(ks) - 1)]
    return rows


def _total_tier_rows(m, d: ModelData, o: str, ks: list[int], years: list[int]) -> list:
    w = {k: m.v_tier[o, 0, k] for k in ks}
    rows = [sum(w.values()) == m.v_signed[o]]
    for k in ks:
        total = sum(m.v_tier_t[o, y, k] for y in years)
        rows += [total >= d.tier_from_t[o, k] * w[k], total <= d.tier_to_t[o, k] * w[k]]
        rows += [m.v_tier_t[o, y, k] <= d.offer_cap_t[o, y] * w[k] for y in years]
    return rows


def add_prepayment_credit(m: pyo.ConcreteModel, d: ModelData) -> None:
    """A prepayment is credited against purchases under its offer: in each year at most that
    year's payments, in total at most the creditable share of the prepayment.

    .. math:: c_{ots} \\le \\sum_b P_{ots} d_{obts}, \\qquad
        \\sum_t c_{ots} \\le \\kappa_o \\Pi_o z_o

    Reads prepayment, prepayment_credit_share. Dual: none of business interest.
    """
    bought = _group(d.OFFER_BUYER_YEARS, lambda k: (k[0], k[2]), lambda k: k[1])
    m.prepayment_credit_max = pyo.Constraint(
        m.CREDITS, rule=lambda _, o, y, s: m.v_credit[o, y, s] <= d.offer_price_per_t[o, y, s]
        * sum(_delivered(m, o, b, y, s) for b in bought.get((o, y), [])))
    per = _group(m.CREDITS, lambda k: (k[0], k[2]), lambda k: k[1])
    m.prepayment_credit_total = pyo.Constraint(
        pyo.Set(initialize=sorted(per), dimen=2, ordered=True),
        rule=lambda _, o, s: sum(m.v_credit[o, y, s] for y in per[o, s])
        <= d.offer_prepayment_credit[o] * m.v_signed[o])


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
        rule=lambda _, f, y, s:
        sum(_delivered(m, o, b, yy, s) for o, b, yy in sales.get((f, y), []))
        + sum(m.v_production_t[k] for k in made.get((f, y, s), [])) <= d.capacity_t[f, y, s])


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
        + (sum(_delivered(m, o, b, y, s) for o in sold.get((f, b, y), [])) if own.get(f) == t
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
    index = sorted(key for key in outs if key in d.spot_availability_t)
    m.SPOT_YEARS = pyo.Set(initialize=index, dimen=3, ordered=True)
    m.spot_availability_max = pyo.Constraint(
        m.SPOT_YEARS, rule=lambda _, k, y, s: sum(m.v_flow_t[x] for x in outs.get((k, y, s), []))
        <= d.spot_availability_t[k, y, s])


def add_demand_balance(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Each buyer's demand per material, year and scenario is delivered (any origin) or
    counted as unmet.

    .. math:: \\sum_{i,\\tau:\\,\\mu(i)=k} x_{b,i\\to b,\\tau,ts} + u_{bkts} \\ge D_{bkt}

    Reads buyers' demand_t. Dual: marginal cost of serving one more tonne (currency per t).
    """
    arrivals = _group([k for k in d.BUYER_ARC_TAGS if k[2] == k[0]],
                      lambda k: (k[0], d.arc_material[k[1], k[2]]), lambda k: k[1:])
    resold = _group(d.RESALES, lambda k: (k[0], d.spot_material[k[1]]), lambda k: k[1])
    stocks = set(d.STOCKS)
    prev = dict(zip(d.YEARS[1:], d.YEARS[:-1], strict=True))

    def stock_change(b, k, y, s):
        if (b, k) not in stocks:
            return 0
        before = m.v_stock_t[b, k, prev[y], s] if y in prev else 0
        return before - m.v_stock_t[b, k, y, s]

    index = sorted(set(m.UNMET) | {(b, k, y, s) for b, k in d.STOCKS for y in d.YEARS
                                   for s in d.SCENARIOS}
                   | {(b, d.spot_material[k], y, s) for b, k, y, s in m.RESALE_YEARS})
    m.BALANCES = pyo.Set(initialize=index, dimen=4, ordered=True)
    m.demand_balance = pyo.Constraint(
        m.BALANCES,
        rule=lambda _, b, k, y, s:
        sum(m.v_flow_t[b, i, j, t, y, s] for i, j, t in arrivals.get((b, k), []))
        + (m.v_unmet_t[b, k, y, s] if (b, k, y, s) in m.UNMET else 0)
        + stock_change(b, k, y, s)
        - sum(m.v_resale_t[b, mk, y, s] for mk in resold.get((b, k), []))
        >= d.demand_t.get((b, k, y, s), 0.0))


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
        return sum(_delivered(m, o, b, y, s) for o, b in keys)

    def made(keys):
        return sum(m.v_production_t[f, b, c, y, s] for f, b in keys
                   for c in m.combos_of[f, b])

    num = flows(row.num_arrivals) + volumes(row.num_volumes) + made(row.num_production)
    den = (flows(row.den_arrivals) + volumes(row.den_volumes) + made(row.den_production)
           + sum(m.v_flow_t[b, k, j, t, y, s] for b, k, j, t in row.den_spot))
    if part:
        return num if part == "num" else den
    return num - row.share * den


def _row_scenarios(d: ModelData, row: RuleRow) -> tuple[str, ...]:
    """Scenarios a rule row is written for: each one, or one row in expectation."""
    return (EXPECTED,) if d.rule_in_expectation.get(row.rule) else d.SCENARIOS


def _row_form(m: pyo.ConcreteModel, d: ModelData, row: RuleRow, s: str, part: str = ""):
    """A row's linear form (or its num / den part) in scenario s, or probability-weighted
    over the scenarios when s is EXPECTED."""
    if s != EXPECTED:
        return _row_expr(m, row, s, m.arrival_terms, part)
    return sum(d.probability[x] * _row_expr(m, row, x, m.arrival_terms, part)
               for x in d.SCENARIOS)


def _row_rhs(d: ModelData, row: RuleRow, s: str) -> float:
    if s != EXPECTED:
        return row.rhs[s]
    return sum(d.probability[x] * row.rhs[x] for x in d.SCENARIOS)


def _add_rule_rows(m: pyo.ConcreteModel, d: ModelData, kind: str, component: str) -> None:
    """Build the rows of one rule kind as constraint `component`, indexed (row_id, scenario);
    a soft (or elastic) row gets the violation variable on its loose side."""
    rows = {row.row_id: row for row in d.rule_rows.get(kind, ())}
    if not hasattr(m, "combos_of"):
        m.combos_of = _group(d.COMBOS, lambda k: (k[0], k[1]), lambda k: k[2])
        m.arrival_terms = _arrival_terms(d)
    index = pyo.Set(initialize=[(r, s) for r, row in rows.items()
                                for s in _row_scenarios(d, row)], dimen=2, ordered=True)
    setattr(m, f"{component.upper()}_ROWS", index)

    def rule(_, r, s):
        row = rows[r]
        expr = _row_form(m, d, row, s)
        slack = m.v_rule_violation_t[r, s] if (r, s) in m.RELAXABLE_ROWS else 0
        if row.sense == "le":
            return expr - slack <= _row_rhs(d, row, s)
        return expr + slack >= _row_rhs(d, row, s)

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


def add_cvar(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Risk: lambda x CVaR_alpha of the scenario cost, in the standard linear form (the mean
    of the worst (1 - alpha) probability mass of scenario costs); nothing when lambda = 0.

    .. math:: \\mathrm{CVaR}_\\alpha = \\eta + \\frac{1}{1-\\alpha}\\sum_s \\pi_s \\xi_s,
        \\quad \\xi_s \\ge C_s - \\eta,\\ \\xi_s \\ge 0

    Reads the solve options cvar_weight (lambda) and cvar_alpha. Dual of a tail row: the
    probability weight the scenario gets in the risk measure.
    """
    if d.cvar_weight <= 0:
        m.cost_risk = pyo.Expression(expr=0.0)
        return
    m.v_var = pyo.Var(domain=pyo.Reals)
    m.v_tail = pyo.Var(m.SCENARIOS, domain=pyo.NonNegativeReals)
    m.cvar_tail = pyo.Constraint(
        m.SCENARIOS, rule=lambda _, s: m.v_tail[s] >= m.scenario_cost[s] - m.v_var)
    m.cvar = pyo.Expression(expr=m.v_var + sum(d.probability[s] * m.v_tail[s]
                                               for s in d.SCENARIOS) / (1 - d.cvar_alpha))
    m.cost_risk = pyo.Expression(expr=d.cvar_weight * m.cvar)


def _total_violation(m: pyo.ConcreteModel, d: ModelData):
    return (sum(m.v_rule_violation_t[k] for k in m.RELAXABLE_ROWS)
            + sum(m.v_count_violation[r] for r in m.RELAXABLE_COUNT_RULES))


# --- objective terms -------------------------------------------------------------------------
# Each term returns its cost in every scenario (discounted, not probability-weighted); the
# term's expected value is what costs.csv reports and the objective sums. First-stage costs
# are the same in every scenario.
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
                                 * _delivered(m, o, b, y, s))
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
                             for o, b, y, s in m.DELIVERIES))


@cost_term("tariffs")
def _tariffs(m, d):
    spots = set(d.SPOTS)
    contracts = ((s, d.discount[y] * d.contract_tariff_rate[o, b, y]
                  * d.offer_price_per_t[o, y, s] * _delivered(m, o, b, y, s))
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
    per = _per_scenario(d, ((s, d.discount[rows[r].year] * d.rule_penalty[rows[r].rule]
                                * m.v_rule_violation_t[r, s])
                            for r, s in m.RELAXABLE_ROWS if s != EXPECTED))
    # a row in expectation is violated once, whatever happens: count it in every scenario
    once = sum(d.discount[rows[r].year] * d.rule_penalty[rows[r].rule]
               * m.v_rule_violation_t[r, s] for r, s in m.RELAXABLE_ROWS if s == EXPECTED)
    return {s: counts + e + once for s, e in per.items()}


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
        "risk": pd.DataFrame({"cvar": [pyo.value(m.cvar) if d.cvar_weight > 0 else None],
                              "cost_risk": [pyo.value(m.cost_risk)]}),
        "scenario_costs": pd.DataFrame(
            [(s, n, pyo.value(m.scenario_term_cost[n, s])) for s in d.SCENARIOS
             for n in COST_TERMS], columns=["scenario", "term", "value"]),
        "count_violation": frame(m.v_count_violation, ["rule_id"], "violation"),
        "row_violation": frame(m.v_rule_violation_t, ["row_id", "scenario"], "violation"),
        "supplier_used": frame(m.v_supplier_used, ["rule_id", "unit"], "used"),
        "rule_rows": _rule_row_values(m, d),
        "start": frame(m.v_start, ["offer_id", "start_year"], "started"),
        "delivered": frame(m.v_delivered_t, ["offer_id", "buyer", "year", "scenario"],
                           "delivered_t"),
        "shortfall": frame(m.v_shortfall_t, ["offer_id", "buyer", "year", "scenario"],
                           "shortfall_t"),
        "tier_choice": frame(m.v_tier, ["offer_id", "period", "tier"], "chosen"),
        "tier_volume": frame(m.v_tier_t, ["offer_id", "year", "tier"], "volume_t"),
        "credit": frame(m.v_credit, ["offer_id", "year", "scenario"], "credit"),
        "resale": frame(m.v_resale_t, ["buyer", "market", "year", "scenario"], "volume_t"),
        "stock": frame(m.v_stock_t, ["buyer", "material", "year", "scenario"], "stock_t"),
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
            for s in _row_scenarios(d, row):
                num = pyo.value(_row_form(m, d, row, s, part="num"))
                den = pyo.value(_row_form(m, d, row, s, part="den"))
                out.append((row.row_id, s, num, den))
    return pd.DataFrame(out, columns=["row_id", "scenario", "num", "den"])


FIRST_STAGE = ("v_signed", "v_start", "v_volume_t", "v_tier", "v_tier_t")
"""Decisions taken now, the same in every scenario (the portfolio)."""
PLAN = (*FIRST_STAGE, "v_supplier_used", "v_count_violation")
"""The first stage plus the supplier-count bookkeeping that follows from it: everything a
scenario needs to know about a portfolio (a soft count rule's violation is paid in each)."""


def first_stage_values(m: pyo.ConcreteModel) -> dict[str, dict]:
    return {name: {k: v.value for k, v in getattr(m, name).items()} for name in PLAN}


def fix_first_stage(m: pyo.ConcreteModel, values: dict[str, dict]) -> None:
    """Fix the portfolio of another solve (e.g. the expected-value plan) in this model;
    decisions this model lacks are left free, missing values count as 0."""
    for name, vals in values.items():
        var = getattr(m, name)
        for k in var:
            x = vals.get(k)
            var[k].fix(round(x) if var[k].is_integer() and x is not None else (x or 0.0))
