"""Constraint families of the physical chain (second stage, per scenario): facility capacity,
output and input balances by origin tag, spot availability, demand balance."""

from __future__ import annotations

import pyomo.core as pyo

from offtake.formulation.data import ModelData
from offtake.formulation.expressions import (
    adding_builds,
    capacity,
    delivered,
    family_builder,
    group_by,
)
from offtake.formulation.stockpiles import stockpile_purchases_by_market


@family_builder("facility_capacity")
def add_facility_capacity(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Contract sales from a facility's own feed plus everything it processes for buyers stay
    within its capacity, in every year and scenario.

    .. math:: \\sum_{o:\\,\\mathrm{supplier}(o)=f}\\ \\sum_b d_{obts} + \\sum_{b,c} p_{fbcts}
        \\;\\le\\; K_{fts} \\qquad \\forall (f,t,s)

    Reads facilities' capacity_t (and what built options add: facility_build). Dual: value of
    one more tonne of capacity (currency per t).
    """
    sales = group_by(d.OFFER_BUYER_YEARS, lambda k: (d.offer_supplier[k[0]], k[2]), lambda k: k)
    made = group_by(m.PRODUCTIONS, lambda k: (k[0], k[3], k[4]), lambda k: k)
    builds = adding_builds(d)
    index = sorted({(f, y, s) for f, y in sales for s in d.SCENARIOS} | set(made))
    m.FACILITY_YEARS = pyo.Set(initialize=index, dimen=3, ordered=True)
    m.facility_capacity_max = pyo.Constraint(
        m.FACILITY_YEARS,
        rule=lambda _, f, y, s:
        sum(delivered(m, o, b, yy, s) for o, b, yy in sales.get((f, y), []))
        + sum(m.v_production_t[k] for k in made.get((f, y, s), []))
        <= capacity(m, d, builds, f, y, s))


@family_builder("facility_output")
def add_facility_output(m: pyo.ConcreteModel, d: ModelData) -> None:
    """What leaves a facility for a buyer, by origin tag, is what it made for that buyer with
    that tag plus (for its own-feed tag) what the buyer bought from it under contract; at
    most that for a product the buyer does not demand (the rest is left unused at the gate:
    free disposal), exactly that for one it demands (a surplus may arrive: demand_balance).

    .. math:: \\sum_{j} x_{b,f\\to j,\\tau,ts} \\;\\le\\; \\sum_{c:\\,\\tau(c)=\\tau} p_{fbcts} +
        [\\tau = \\tau_f] \\sum_{o:\\,\\mathrm{supplier}(o)=f} d_{obts} \\qquad \\forall
        (f,b,\\tau,t,s)

    Reads arcs, offers, recipes. Dual: value of a tonne of the facility's product of that
    origin at its gate, for that buyer (currency per t; 0 where tonnes are left unused).
    """
    out_arcs = group_by(d.BUYER_ARC_TAGS, lambda k: (k[1], k[0], k[3]), lambda k: k[2])
    made = group_by(d.COMBOS, lambda k: (k[0], k[1], d.combo_output[k[0], k[2]]), lambda k: k[2])
    sold = group_by(d.OFFER_BUYER_YEARS, lambda k: (d.offer_supplier[k[0]], k[1], k[2]),
                  lambda k: k[0])
    own = {f: d.offer_tag[o] for o, f in d.offer_supplier.items()}
    m.OUTPUT_YEARS = pyo.Set(initialize=[(f, b, t, y, s) for f, b, t in d.OUTPUT_TAGS
                                         for y in d.YEARS for s in d.SCENARIOS],
                             dimen=5, ordered=True)
    product = {i: k for (i, _j), k in d.arc_material.items()}
    demanded = {(b, k) for b, k, _y, _s in d.DEMANDS}

    def balance(_, f, b, t, y, s):
        out = sum(m.v_flow_t[b, f, j, t, y, s] for j in out_arcs.get((f, b, t), []))
        made_or_bought = (
            sum(m.v_production_t[f, b, c, y, s] for c in made.get((f, b, t), []))
            + (sum(delivered(m, o, b, y, s) for o in sold.get((f, b, y), []))
               if own.get(f) == t else 0))
        if (b, product.get(f)) in demanded:  # a surplus of it may arrive at the buyer
            return out == made_or_bought
        return out <= made_or_bought

    m.facility_output_balance = pyo.Constraint(m.OUTPUT_YEARS, rule=balance)


@family_builder("facility_input")
def add_facility_input(m: pyo.ConcreteModel, d: ModelData) -> None:
    """A processor receives, for each buyer and each recipe input of each origin, what the
    input-tag combinations it runs consume.

    .. math:: \\sum_{i:\\,\\mu(i)=k} x_{b,i\\to f,\\tau,ts} \\;=\\; a_{fk}
        \\sum_{c:\\,c_k=\\tau} p_{fbcts} \\qquad \\forall (f,b,k,\\tau,t,s),\\ k \\in
        \\mathrm{recipe}(f)

    Reads facilities' recipe. Dual: value of a tonne of input k of that origin delivered to f
    (currency per t).
    """
    in_arcs = group_by([k for k in d.BUYER_ARC_TAGS if k[2] in d.recipe],
                     lambda k: (k[2], k[0], d.arc_material[k[1], k[2]], k[3]), lambda k: k[1])
    uses = group_by([(f, b, c, k, t) for f, b, c in d.COMBOS
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


@family_builder("spot_availability")
def add_spot_availability(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Spot purchases from a market, over all buyers and origins, stay within its availability.

    .. math:: \\sum_b \\sum_{j,\\tau} x_{b,k\\to j,\\tau,ts} \\;\\le\\; A_{kts} \\qquad \\forall
        (k,t,s)

    Reads spot_markets' availability_t (unlimited markets have no row); stockpiles' purchases
    on the market count too (stockpile_balance). Dual: scarcity value of spot volume
    (currency per t).
    """
    outs = group_by(m.FLOWS, lambda k: (k[1], k[4], k[5]), lambda k: k)
    stocked = stockpile_purchases_by_market(m, d)
    index = sorted(key for key in set(outs) | set(stocked) if key in d.spot_availability_t)
    m.SPOT_YEARS = pyo.Set(initialize=index, dimen=3, ordered=True)
    m.spot_availability_max = pyo.Constraint(
        m.SPOT_YEARS, rule=lambda _, k, y, s: sum(m.v_flow_t[x] for x in outs.get((k, y, s), []))
        + sum(stocked.get((k, y, s), [])) <= d.spot_availability_t[k, y, s])


@family_builder("demand_balance")
def add_demand_balance(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Each buyer's demand per material, year and scenario is met by deliveries (any origin)
    and stock drawn down, or counted as unmet; stock built up and resales come out of it.

    .. math:: \\sum_{\\tau} A_{bk\\tau ts} + u_{bkts} + h_{bk,t-1,s} - h_{bkts} -
        \\sum_{\\kappa:\\,\\mu(\\kappa)=k} r_{b\\kappa ts} \\;\\ge\\; D_{bkt} \\qquad \\forall
        (b,k,t,s)

    Reads buyers' demand_t. Dual: marginal cost of serving one more tonne (currency per t).
    """
    arrivals = group_by([k for k in d.BUYER_ARC_TAGS if k[2] == k[0]],
                      lambda k: (k[0], d.arc_material[k[1], k[2]]), lambda k: k[1:])
    resold = group_by(d.RESALES, lambda k: (k[0], d.spot_material[k[1]]), lambda k: k[1])
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
