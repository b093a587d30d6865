"""Demand and what reaches the buyers: deliveries, resale, stock, unmet demand.

Owns `deliveries` (what arrives at each buyer by material and tag), `arrivals`, `all_demand`
(each scenario's demand) and the checks of `demand_balance`, `resale_allowed`,
`stock_allowed` and of resale.csv, stock.csv and unmet.csv.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from offtake.check.context import KG_PER_T, Ctx, family_check, index_of, numbered, same_text
from offtake.check.prices import resale_price
from offtake.check.tables import Plan

Deliveries = dict[tuple[str, str, str, int, str], float]
"""A_{bk tag t s}: (buyer, material, tag, year, scenario) -> t arriving at the buyer."""


def deliveries(c: Ctx, plan: Plan) -> Deliveries:
    """What reaches each buyer on arcs into it, by material of the sending node and tag."""
    out: Deliveries = defaultdict(float)
    for (b, i, j, tag, year, s), x in plan.flow.items():
        if j == b and i in c.sender_material:
            out[(b, c.sender_material[i], tag, year, s)] += x
    return out


def arrivals(c: Ctx, arrived: Deliveries) -> dict[tuple[str, str, int, str], float]:
    """Deliveries of any origin: (b, material, t, s) -> t."""
    out: dict[tuple[str, str, int, str], float] = defaultdict(float)
    for (b, k, _tag, year, s), x in arrived.items():
        out[(b, k, year, s)] += x
    return out


def all_demand(c: Ctx) -> dict[tuple[str, str, int, str], float]:
    """D_{bkt} in each scenario, for every (b, k, t, s)."""
    return {(b.id, k, year, s): c.demand(b.id, k, year, s) for b in c.inst.buyers
            for k in b.demand_t for year in c.years for s in c.probability}


def check_resale_and_stock(c: Ctx, t: dict[str, pd.DataFrame]) -> None:
    """resale_allowed: resale only into a market with a resale_haircut, of its material;
    stock_allowed: stock only of a material with a holding cost. resale.csv and stock.csv
    prices and money columns."""
    _check_resale_rows(c, t)
    _check_stock_rows(c, t)


def _check_resale_rows(c: Ctx, t: dict[str, pd.DataFrame]) -> None:
    """resale.csv: resale allowed into the market, its material, price and credit."""
    for pos, r in numbered(t["resale"]):
        k, where = c.markets[r["market"]], f"resale.csv row {pos}"
        index = index_of(r["buyer"], r["market"], int(r["year"]), r["scenario"])
        if k.resale_haircut is None:
            c.flag("resale_allowed", index, r["volume_t"],
                   f"market '{k.id}' does not accept resale (no resale_haircut)")
        same_text(c, where, "material", r["material"], k.material)
        price = resale_price(c, k.id, int(r["year"]), r["scenario"])
        c.equal("table", where, r["price_per_kg"], price, "price_per_kg (net of haircut)")
        c.equal("table", where, r["credit"], KG_PER_T * price * r["volume_t"], "credit")


def _check_stock_rows(c: Ctx, t: dict[str, pd.DataFrame]) -> None:
    """stock.csv: one row per (buyer, material, year, scenario), stock allowed of the
    material, its holding cost."""
    seen = set()
    for pos, r in numbered(t["stock"]):
        m, where = c.materials[r["material"]], f"stock.csv row {pos}"
        key = (r["buyer"], r["material"], int(r["year"]), r["scenario"])
        if key in seen:
            c.flag("table", where, 1.0, f"row {index_of(*key)} repeated")
        seen.add(key)
        if m.holding_cost_per_kg_year is None and r["stock_t"] > c.tol:
            c.flag("stock_allowed", index_of(*key), r["stock_t"],
                   f"material '{m.id}' cannot be stocked (no holding_cost_per_kg_year)")
        h = m.holding_cost_per_kg_year or 0.0
        c.equal("table", where, r["holding_cost_per_kg"], h, "holding_cost_per_kg")
        c.equal("table", where, r["holding_cost"], KG_PER_T * h * r["stock_t"], "holding_cost")


def _resold(c: Ctx, plan: Plan) -> dict[tuple[str, str, int, str], float]:
    """sum over markets of the material of r_b kappa ts: (b, k, t, s) -> t."""
    out: dict[tuple[str, str, int, str], float] = defaultdict(float)
    for (b, market, year, s), r in plan.resale.items():
        out[(b, c.markets[market].material, year, s)] += r
    return out


@family_check("demand_balance")
def check_demand_balance(c: Ctx, t: dict[str, pd.DataFrame], plan: Plan,
                         arrived_by_tag: Deliveries) -> None:
    """demand_balance: arrivals + unmet + stock_{t-1} - stock_t - resale >= demand and
    0 <= unmet <= demand, per (b,k,t,s) (no stock before the first year); unmet.csv has a
    row for every positive demand, its delivered_t = arrivals."""
    arrived = arrivals(c, arrived_by_tag)
    resold = _resold(c, plan)
    have_row = set(plan.unmet)
    demand = all_demand(c)
    for key in sorted(set(demand) | have_row | set(resold) | set(plan.stock)):
        b, k, year, s = key
        d, u = demand.get(key, 0.0), plan.unmet.get(key, 0.0)
        index = index_of(*key)
        if d > 0 and key not in have_row:
            c.flag("table", "unmet.csv," + index, 1.0, "no row for a positive demand")
        got, sold = arrived.get(key, 0.0), resold.get(key, 0.0)
        before, after = plan.stock.get((b, k, year - 1, s), 0.0), plan.stock.get(key, 0.0)
        lhs = got + u + before - after - sold
        if d - lhs > c.slack(d):
            c.flag("demand_balance", index, d - lhs,
                   f"delivered {got:.10g} + unmet {u:.10g} + stock in {before:.10g} - stock out "
                   f"{after:.10g} - resold {sold:.10g} < demand {d:.10g}")
        c.at_most("demand_balance", index, u, d, "unmet above demand")
    _check_unmet_rows(c, t, demand, arrived)


def _check_unmet_rows(c: Ctx, t: dict[str, pd.DataFrame],
                      demand: dict[tuple[str, str, int, str], float],
                      arrived: dict[tuple[str, str, int, str], float]) -> None:
    """unmet.csv: each row's demand, deliveries, penalty per kg and penalty."""
    for pos, r in numbered(t["unmet"]):
        key = (r["buyer"], r["material"], int(r["year"]), r["scenario"])
        where = f"unmet.csv row {pos}"
        rho = c.materials[r["material"]].unmet_penalty_per_kg
        c.equal("table", where, r["demand_t"], demand.get(key, 0.0), "demand_t")
        c.equal("table", where, r["delivered_t"], arrived.get(key, 0.0), "delivered_t")
        c.equal("table", where, r["penalty_per_kg"], rho, "penalty_per_kg")
        c.equal("table", where, r["penalty"], KG_PER_T * rho * r["unmet_t"], "penalty")
