"""Origin tags on the tables: each tag canonical and one its node can carry, and origin.csv.

Owns the `origin_tag` checks of flows, contracts, spot purchases and production rows (the
tag text itself lives in `offtake.check.tags`) and the check of origin.csv (tonnes delivered
with a step at each stage and country, and their share).
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from offtake.check.context import Ctx, index_of, numbered
from offtake.check.demand import Deliveries, arrivals
from offtake.check.network import contract_from
from offtake.check.tables import Plan
from offtake.check.tags import output_tag, parse_combination, parse_tag


def check_tag_text(c: Ctx, t: dict[str, pd.DataFrame]) -> None:
    """origin_tag: every tag in flows, contracts, spot and production is canonical."""
    for name in ("flows", "contracts", "spot", "production"):
        for pos, r in numbered(t[name]):
            if parse_tag(r["tag"]) is None:
                c.flag("origin_tag", f"{name}.csv row {pos}", 1.0,
                       f"tag '{r['tag']}' is not canonical (want e.g. 'MINE:AU|SEP_L:MY')")


def check_contract_tags(c: Ctx, t: dict[str, pd.DataFrame]) -> None:
    """origin_tag: a contract's tag is its supplier's own-feed tag."""
    for pos, r in numbered(t["contracts"]):
        supplier = c.offers[r["offer_id"]].supplier
        if supplier in c.own_tag and r["tag"] != c.own_tag[supplier]:
            c.flag("origin_tag", f"contracts.csv row {pos}", 1.0,
                   f"tag '{r['tag']}', expected own-feed tag '{c.own_tag[supplier]}'")


def check_spot_tags(c: Ctx, t: dict[str, pd.DataFrame]) -> None:
    """origin_tag: a spot purchase's tag is its market's feed_origin."""
    for pos, r in numbered(t["spot"]):
        if r["tag"] != c.spot_tag[r["market"]]:
            c.flag("origin_tag", f"spot.csv row {pos}", 1.0,
                   f"tag '{r['tag']}', expected the market's '{c.spot_tag[r['market']]}'")


def check_production_tags(c: Ctx, t: dict[str, pd.DataFrame]) -> None:
    """origin_tag: a production row's combination names exactly the recipe inputs (sorted,
    canonical tags) and its output tag is the processor's step plus the input tags."""
    for pos, r in numbered(t["production"]):
        where, f = f"production.csv row {pos}", r["facility"]
        inputs = parse_combination(r["inputs"])
        recipe = sorted(c.facilities[f].recipe)
        if inputs is None or sorted(inputs) != recipe:
            c.flag("origin_tag", where, 1.0, f"combination '{r['inputs']}' does not name the "
                   f"recipe inputs {recipe} as 'k=tag' joined by ';' in material order")
            continue
        want = output_tag(c.facilities[f], inputs)
        if want is None:
            c.flag("origin_tag", where, 1.0, f"combination '{r['inputs']}' has a tag that is "
                   "not canonical")
        elif r["tag"] != want:
            c.flag("origin_tag", where, 1.0, f"output tag '{r['tag']}', expected '{want}'")


def check_flow_tags(c: Ctx, plan: Plan) -> None:
    """origin_tag: a flow leaves a spot market with the market's tag, and a facility with a
    tag it emits for that buyer (own-feed tag if the buyer took delivery under an offer there,
    or an output tag of its production for the buyer)."""
    emits: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (f, b, _year, _s), d in contract_from(c, plan).items():
        if d > c.tol:
            emits[(f, b)].add(c.own_tag[f])
    for (f, b, comb, _year, _s), p in plan.production.items():
        if p > c.tol:
            emits[(f, b)].add(plan.production_tag[(f, comb)])
    for (b, i, j, tag, year, s), x in sorted(plan.flow.items()):
        where = index_of(b, i, j, tag, year, s)
        if i in c.markets and tag != c.spot_tag[i]:
            c.flag("origin_tag", where, x, f"spot market '{i}' sells tag '{c.spot_tag[i]}'")
        elif i in c.facilities and x > c.tol and tag not in emits[(i, b)]:
            c.flag("origin_tag", where, x, f"'{i}' emits no tag '{tag}' for buyer '{b}' "
                   f"(it emits {sorted(emits[(i, b)])})")


def check_origin_table(c: Ctx, t: dict[str, pd.DataFrame], arrived: Deliveries) -> None:
    """origin.csv: per (b,k,t,s,stage,country), tonnes delivered with a step there and their
    share of all deliveries; every row matches and no delivered step is missing."""
    total = arrivals(c, arrived)
    tonnes: dict[tuple[str, str, int, str, str, str], float] = defaultdict(float)
    for (b, k, tag, year, s), x in arrived.items():
        for stage, country in parse_tag(tag) or ():
            tonnes[(b, k, year, s, stage, country)] += x
    seen = set()
    for pos, r in numbered(t["origin"]):
        key = (r["buyer"], r["material"], int(r["year"]), r["scenario"], r["stage"],
               r["country"])
        where = f"origin.csv row {pos}"
        if key in seen:
            c.flag("table", where, 1.0, f"row {index_of(*key)} repeated")
        seen.add(key)
        want = tonnes.get(key, 0.0)
        den = total.get(key[:4], 0.0)
        c.equal("table", where, r["tonnes"], want, "tonnes delivered with that step")
        if den > c.tol:
            c.equal("table", where, r["share"], want / den, "share of deliveries")
    for key, x in sorted(tonnes.items()):
        if key not in seen and x > c.slack(0.0):
            c.flag("table", "origin.csv," + index_of(*key), x, f"no row for {x:.10g} t delivered")
