"""The network: allowed arcs, facility balances and capacity.

Owns `allowed_arcs` (recomputed from the instance: listed arcs plus the default arcs),
`contract_from` (contract volume delivered from each facility) and the checks of
`arc_allowed`, `facility_output_balance`, `facility_input_balance`, `facility_capacity_max`
and of production.csv's opex columns.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from offtake.check.builds import built_capacity
from offtake.check.context import KG_PER_T, Ctx, family_check, index_of, numbered
from offtake.check.tables import Plan
from offtake.check.tags import parse_combination
from offtake.domain.network import at
from offtake.domain.schema import Instance

Arcs = dict[tuple[str, str], float]
"""(from node, to node) -> freight per kg."""


def allowed_arcs(inst: Instance) -> Arcs:
    """Every allowed arc (from, to) -> freight per kg, recomputed from formulation.md:
    listed arcs, plus (default_arcs) each facility/spot market -> facility/buyer taking its
    material; a listed arc sets the freight, others carry the default; no self-loops."""
    sends = {f.id: f.product for f in inst.facilities}
    sends.update({k.id: k.material for k in inst.spot_markets})
    takes = {f.id: set(f.recipe) for f in inst.facilities}
    takes.update({b.id: set(b.demand_t) for b in inst.buyers})
    arcs: Arcs = {}
    if inst.network.default_arcs:
        for i, material in sends.items():
            for j, accepted in takes.items():
                if i != j and material in accepted:
                    arcs[(i, j)] = inst.network.default_freight_per_kg
    for a in inst.network.arcs:
        if a.from_ != a.to and a.from_ in sends and sends[a.from_] in takes.get(a.to, set()):
            arcs[(a.from_, a.to)] = a.freight_per_kg
    for sp in inst.stockpiles:  # stockpile_balance: one arc, stockpile -> its location
        if sp.material in takes.get(sp.location, set()):
            arcs[(sp.id, sp.location)] = sp.release_freight_per_kg
    return arcs


def check_arc_allowed(c: Ctx, t: dict[str, pd.DataFrame], arcs: Arcs) -> None:
    """arc_allowed: each flow on an allowed arc, carrying the sender's material, for the buyer
    it arrives at; its freight is the arc's."""
    for pos, r in numbered(t["flows"]):
        i, j, b = r["from_node"], r["to_node"], r["buyer"]
        where = index_of(b, i, j, int(r["year"]), r["scenario"])
        if (i, j) not in arcs:
            c.flag("arc_allowed", where, r["flow_t"], f"no arc {i} -> {j} in the network")
            continue
        if j in c.buyers and j != b:
            c.flag("arc_allowed", where, r["flow_t"], f"buyer '{b}''s material delivered to '{j}'")
        if r["material"] != c.sender_material[i]:
            c.flag("arc_allowed", where, r["flow_t"],
                   f"material '{r['material']}' but '{i}' sends '{c.sender_material[i]}'")
        row = f"flows.csv row {pos}"
        c.equal("table", row, r["freight_per_kg"], arcs[(i, j)], "freight_per_kg")
        c.equal("table", row, r["freight_cost"],
                KG_PER_T * arcs[(i, j)] * r["flow_t"], "freight_cost")


def contract_from(c: Ctx, plan: Plan) -> dict[tuple[str, str, int, str], float]:
    """Contract volume delivered from each facility to each buyer: (f, b, t, s) -> t
    (formulation.md, take_or_pay: the delivered volume is what counts)."""
    out: dict[tuple[str, str, int, str], float] = defaultdict(float)
    for (o_id, b, year, s), d in plan.delivered.items():
        out[(c.offers[o_id].supplier, b, year, s)] += d
    return out


@family_check("facility_output")
def check_facility_output_balance(c: Ctx, plan: Plan) -> None:
    """facility_output_balance: per (f,b,tag,t,s), outflow vs production into that tag +
    (tag = own-feed tag) contract volume delivered from f: equal when b demands f's product
    (in some year and scenario), at most that otherwise (the rest is left at the gate)."""
    outflow: dict[tuple[str, str, str, int, str], float] = defaultdict(float)
    for (b, i, _j, tag, year, s), x in plan.flow.items():
        if i in c.facilities:
            outflow[(i, b, tag, year, s)] += x
    made: dict[tuple[str, str, str, int, str], float] = defaultdict(float)
    for (f, b, comb, year, s), p in plan.production.items():
        made[(f, b, plan.production_tag[(f, comb)], year, s)] += p
    bought = {(f, b, c.own_tag[f], year, s): d
              for (f, b, year, s), d in contract_from(c, plan).items()}
    demanded = {(b.id, k) for b in c.inst.buyers for k in b.demand_t
                if any(c.demand(b.id, k, t, s) > 0 for t in c.years for s in c.scenarios)}
    for key in sorted(set(outflow) | set(made) | set(bought)):
        f, b = key[0], key[1]
        test = c.equal if (b, c.facilities[f].product) in demanded else c.at_most
        test("facility_output_balance", index_of(*key), outflow.get(key, 0.0),
             made.get(key, 0.0) + bought.get(key, 0.0),
             "outflow vs production into the tag + contract deliveries (own-feed tag)")


@family_check("facility_input")
def check_facility_input_balance(c: Ctx, plan: Plan) -> None:
    """facility_input_balance: per (f,b,k,tag,t,s), inflow of input k with that tag =
    recipe[k] x production of the combinations whose input k has that tag; no production
    where the recipe is empty."""
    inflow: dict[tuple[str, str, str, str, int, str], float] = defaultdict(float)
    for (b, i, j, tag, year, s), x in plan.flow.items():
        if j in c.facilities and i in c.sender_material:
            inflow[(j, b, c.sender_material[i], tag, year, s)] += x
    used: dict[tuple[str, str, str, str, int, str], float] = defaultdict(float)
    own_feed: dict[tuple[str, str, int, str], float] = defaultdict(float)
    for (f, b, comb, year, s), p in plan.production.items():
        recipe = c.facilities[f].recipe
        if not recipe:
            own_feed[(f, b, year, s)] += p
            continue
        inputs = parse_combination(comb) or {}
        for k, a in recipe.items():
            if k in inputs:
                used[(f, b, k, inputs[k], year, s)] += a * p
    for okey, p in sorted(own_feed.items()):
        c.at_most("facility_input_balance", index_of(*okey), p, 0.0,
                  f"production at '{okey[0]}', which has no recipe (own feed only)")
    for key in sorted(set(inflow) | set(used)):
        c.equal("facility_input_balance", index_of(*key), inflow.get(key, 0.0), used.get(key, 0.0),
                f"inflow of {key[2]} with tag '{key[3]}' vs recipe x production")


@family_check("facility_capacity")
def check_facility_capacity(c: Ctx, plan: Plan) -> None:
    """facility_capacity_max: contract volume delivered + production <= capacity (its own,
    plus what its built options add: facility_build), per (f,t,s)."""
    used: dict[tuple[str, int, str], float] = defaultdict(float)
    for (f, _b, year, s), d in contract_from(c, plan).items():
        used[(f, year, s)] += d
    for (f, _b, _comb, year, s), p in plan.production.items():
        used[(f, year, s)] += p
    for (f, year, s), x in sorted(used.items()):
        c.at_most("facility_capacity_max", index_of(f, year, s), x,
                  c.capacity(f, year, s) + built_capacity(c, plan, f, year, s),
                  "contract deliveries + production")


def check_production_rows(c: Ctx, t: dict[str, pd.DataFrame]) -> None:
    """production.csv: opex per kg from the instance and the undiscounted opex cost."""
    for pos, r in numbered(t["production"]):
        opex = at(c.facilities[r["facility"]].opex_per_kg, int(r["year"]))
        where = f"production.csv row {pos}"
        c.equal("table", where, r["opex_per_kg"], opex, "opex_per_kg")
        c.equal("table", where, r["opex_cost"], KG_PER_T * opex * r["production_t"],
                "opex_cost")
