"""Spot markets: purchases against availability, and spot.csv.

Owns `spot_flows` (the flows leaving spot markets) and the checks of `spot_availability_max`
and of spot.csv's volumes, prices and tariffs.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from offtake.check.context import KG_PER_T, Ctx, family_check, index_of, numbered, same_text
from offtake.check.prices import spot_tariff_rate
from offtake.check.tables import Plan


def spot_flows(c: Ctx, plan: Plan) -> dict[tuple[str, str, str, str, int, str], float]:
    """Flows leaving spot markets: (market, buyer, to, tag, t, s) -> t."""
    out: dict[tuple[str, str, str, str, int, str], float] = defaultdict(float)
    for (b, i, j, tag, year, s), x in plan.flow.items():
        if i in c.markets:
            out[(i, b, j, tag, year, s)] += x
    return out


@family_check("spot_availability")
def check_spot_availability(c: Ctx, plan: Plan) -> None:
    """spot_availability_max: purchases from a limited market <= availability, per (k,t,s);
    stockpiles' purchases there count too."""
    bought: dict[tuple[str, int, str], float] = defaultdict(float)
    for (k, _b, _j, _tag, year, s), x in spot_flows(c, plan).items():
        bought[(k, year, s)] += x
    for (_p, k, year, s), x in plan.stockpile_purchase.items():
        if k in c.markets:
            bought[(k, year, s)] += x
    for (k, year, s), x in sorted(bought.items()):
        market = c.markets[k]
        if not market.unlimited:
            c.at_most("spot_availability_max", index_of(k, year, s), x,
                      c.spot_availability(k, year, s), "spot and stockpile purchases")


def check_spot_table(c: Ctx, t: dict[str, pd.DataFrame], plan: Plan) -> None:
    """spot.csv: the same volumes as the flows leaving spot markets, instance prices, the
    stacked tariff rate (seller = the market's origin) and the tariff."""
    flows = spot_flows(c, plan)
    for key in sorted(set(flows) | set(plan.spot)):
        c.equal("table", "spot.csv," + index_of(*key), plan.spot.get(key, 0.0),
                flows.get(key, 0.0), "spot.csv volume vs flows from the market")
    for pos, r in numbered(t["spot"]):
        market = c.markets[r["market"]]
        where = f"spot.csv row {pos}"
        price = c.spot_price(market.id, int(r["year"]), r["scenario"])
        same_text(c, where, "material", r["material"], market.material)
        same_text(c, where, "origin", r["origin"], market.origin)
        c.equal("table", where, r["price_per_kg"], price, "price_per_kg")
        c.equal("table", where, r["cost"], KG_PER_T * price * r["volume_t"], "cost")
        rho = spot_tariff_rate(c, r["market"], r["buyer"], int(r["year"]))
        c.equal("table", where, r["tariff_rate"], rho, "tariff_rate")
        c.equal("table", where, r["tariff"], KG_PER_T * rho * price * r["volume_t"], "tariff")
