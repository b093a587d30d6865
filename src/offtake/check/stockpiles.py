"""Strategic stockpiles, recomputed from formulation.md (stockpile_balance, stockpile_level,
stockpile_release) and the result tables: the stock balance per origin tag, the capacity,
minimum level and purchase bounds, first-stage purchases the same in every scenario, releases
only where the scenario data allow them (and only to the buyers allowed, with a tag the stock
holds), stockpiles.csv and stockpile_purchases.csv, the three cost terms and each government
holder's fiscal cost.

Written from the formulation document; never imports the model code (nor
offtake.domain.stockpiles: the release condition and the stock's tags are recomputed here).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pandas as pd

from offtake.check.context import KG_PER_T, Ctx, family_check, index_of, numbered, same_text
from offtake.check.objective import ByBuyer, TermInputs, cost_check
from offtake.check.tables import Plan
from offtake.check.tags import feed_steps, tag_text
from offtake.domain.network import at

FISCAL_TERM = "fiscal_stockpile"
"""costs.csv term of a government's expected fiscal cost of its stockpiles (not in the
objective)."""


def rho(c: Ctx, sp: Any, year: int, s: str) -> bool:
    """rho_pts: `release: any_time`, or a release window of scenario s naming the stockpile
    (or naming none) covers the year."""
    if sp.release == "any_time":
        return True
    scenario = next(x for x in c.inst.scenarios if x.id == s)
    return any((w.stockpiles is None or sp.id in w.stockpiles)
               and (w.from_year is None or year >= w.from_year)
               and (w.to_year is None or year <= w.to_year) for w in scenario.releases)


def buyer_held(c: Ctx, sp: Any) -> bool:
    return sp.holder in c.buyers


def allowed_buyers(c: Ctx, sp: Any) -> set[str]:
    """Buyers it may release to: release_to, else the holder (a buyer's stock) or every buyer
    (a government's); only the location when that is a buyer."""
    if sp.release_to is not None:
        out = set(sp.release_to)
    elif buyer_held(c, sp):
        out = {sp.holder}
    else:
        out = set(c.buyers)
    return {sp.location} & out if sp.location in c.buyers else out


def market_tag(c: Ctx, k: str) -> str:
    return c.spot_tag[k]


def tags_of(c: Ctx, sp: Any) -> set[str]:
    """T_p: the initial stock's tag (when there is one) and the tags of its markets."""
    out = {market_tag(c, k) for k in sp.markets if k in c.markets}
    if sp.initial_t > 0:
        out.add(tag_text(feed_steps(sp.initial_origin)))
    return out


def released(c: Ctx, plan: Plan) -> dict[tuple[str, str, int, str], float]:
    """(stockpile, tag, year, scenario) -> t released (flows leaving the stockpile)."""
    out: dict[tuple[str, str, int, str], float] = defaultdict(float)
    for (_b, i, _j, tag, year, s), x in plan.flow.items():
        if i in c.stockpiles:
            out[(i, tag, year, s)] += x
    return out


def bought_by_tag(c: Ctx, plan: Plan) -> dict[tuple[str, str, int, str], float]:
    """(stockpile, tag, year, scenario) -> t bought on markets of that tag."""
    out: dict[tuple[str, str, int, str], float] = defaultdict(float)
    for (p, k, year, s), y in plan.stockpile_purchase.items():
        if p in c.stockpiles and k in c.markets:
            out[(p, market_tag(c, k), year, s)] += y
    return out


@family_check("stockpile_balance")
def check_stockpile_balance(c: Ctx, plan: Plan) -> None:
    """stockpile_balance: per (p, tag, t, s), L = L_{t-1} (the initial stock in the first
    year, for its tag) + purchases of that tag - releases of that tag; purchases only on the
    stockpile's markets; releases only to the buyers allowed and with a tag the stock holds."""
    out = released(c, plan)
    inn = bought_by_tag(c, plan)
    for (p, k, year, s), y in sorted(plan.stockpile_purchase.items()):
        if y > c.tol and k not in c.stockpiles[p].markets:
            c.flag("stockpile_balance", index_of(p, k, year, s), y,
                   f"'{p}' buys on '{k}', not one of its markets")
    for (b, i, j, tag, year, s), x in sorted(plan.flow.items()):
        if i in c.stockpiles and x > c.tol:
            sp = c.stockpiles[i]
            if b not in allowed_buyers(c, sp):
                c.flag("stockpile_balance", index_of(b, i, j, tag, year, s), x,
                       f"'{i}' may not release to buyer '{b}'")
            if tag not in tags_of(c, sp):
                c.flag("origin_tag", index_of(b, i, j, tag, year, s), x,
                       f"stockpile '{i}' holds no tag '{tag}' (it holds {sorted(tags_of(c, sp))})")
    for p, sp in c.stockpiles.items():
        init = tag_text(feed_steps(sp.initial_origin))
        tags = tags_of(c, sp) | {t for (q, t, _y, _s) in plan.stockpile_level if q == p}
        for s in c.probability:
            for tag in sorted(tags):
                before = sp.initial_t if (tag == init and sp.initial_t > 0) else 0.0
                for year in c.years:
                    key = (p, tag, year, s)
                    level = plan.stockpile_level.get(key, 0.0)
                    c.equal("stockpile_balance", index_of(*key), level,
                            before + inn.get(key, 0.0) - out.get(key, 0.0),
                            "level vs last year's + purchases - releases")
                    before = level


@family_check("stockpile_level")
def check_stockpile_level(c: Ctx, plan: Plan) -> None:
    """stockpile_level: sum over tags of L <= C_p; >= (1 - rho_pts) M_pt; purchases of a year
    within purchase_min_t and purchase_max_t; first-stage purchases the same in every
    scenario."""
    level: dict[tuple[str, int, str], float] = defaultdict(float)
    for (p, _tag, year, s), x in plan.stockpile_level.items():
        level[(p, year, s)] += x
    buys: dict[tuple[str, int, str], float] = defaultdict(float)
    by_market: dict[tuple[str, str, int], dict[str, float]] = defaultdict(dict)
    for (p, k, year, s), y in plan.stockpile_purchase.items():
        buys[(p, year, s)] += y
        by_market[(p, k, year)][s] = y
    for p, sp in c.stockpiles.items():
        for year in c.years:
            for s in c.probability:
                key = (p, year, s)
                where = index_of(*key)
                c.at_most("stockpile_level_max", where, level.get(key, 0.0), sp.capacity_t,
                          "level vs capacity")
                floor = at(sp.min_level_t, year) * (0 if rho(c, sp, year, s) else 1)
                if floor > 0:
                    c.at_least("stockpile_level_min", where, level.get(key, 0.0), floor,
                               "level vs minimum (no release allowed)")
                c.at_least("stockpile_purchase_min", where, buys.get(key, 0.0),
                           at(sp.purchase_min_t, year), "purchases vs purchase_min_t")
                if sp.purchase_max_t is not None:
                    c.at_most("stockpile_purchase_max", where, buys.get(key, 0.0),
                              at(sp.purchase_max_t, year), "purchases vs purchase_max_t")
        if sp.purchase_stage == "first":
            for (q, k, year), per in sorted(by_market.items()):
                if q != p:
                    continue
                values = [per.get(s, 0.0) for s in c.probability]
                if max(values) - min(values) > c.slack(max(values)):
                    c.flag("stockpile_level", index_of(p, k, year), max(values) - min(values),
                           "first-stage purchases differ between scenarios")


@family_check("stockpile_release")
def check_stockpile_release(c: Ctx, plan: Plan) -> None:
    """stockpile_release_max: releases of (p, t, s) <= rho_pts C_p: nothing where the scenario
    data allow no release."""
    out: dict[tuple[str, int, str], float] = defaultdict(float)
    for (p, _tag, year, s), x in released(c, plan).items():
        out[(p, year, s)] += x
    for (p, year, s), x in sorted(out.items()):
        sp = c.stockpiles[p]
        c.at_most("stockpile_release_max", index_of(p, year, s), x,
                  sp.capacity_t if rho(c, sp, year, s) else 0.0,
                  "releases (allowed only where a disruption hits)" if sp.release == "disruption"
                  else "releases vs capacity")


def check_stockpile_tables(c: Ctx, t: dict[str, pd.DataFrame], plan: Plan) -> None:
    """stockpiles.csv and stockpile_purchases.csv: holder, material, purchases and releases
    by tag as the plan says, release_allowed = rho_pts, holding cost; purchase prices are the
    market's, tags the market's, costs price x volume."""
    inn, out = bought_by_tag(c, plan), released(c, plan)
    for pos, r in numbered(t["stockpiles"]):
        sp = c.stockpiles[r["stockpile"]]
        where = f"stockpiles.csv row {pos}"
        key = (sp.id, r["tag"], int(r["year"]), r["scenario"])
        same_text(c, where, "holder", r["holder"], sp.holder)
        same_text(c, where, "material", r["material"], sp.material)
        c.equal("table", where, r["purchased_t"], inn.get(key, 0.0), "purchased_t")
        c.equal("table", where, r["released_t"], out.get(key, 0.0), "released_t")
        c.equal("table", where, r["release_allowed"],
                float(rho(c, sp, int(r["year"]), r["scenario"])), "release_allowed")
        c.equal("table", where, r["holding_cost_per_kg"], sp.holding_cost_per_kg_year,
                "holding_cost_per_kg")
        c.equal("table", where, r["holding_cost"],
                KG_PER_T * sp.holding_cost_per_kg_year * r["level_t"], "holding_cost")
    for pos, r in numbered(t["stockpile_purchases"]):
        where = f"stockpile_purchases.csv row {pos}"
        k = r["market"]
        price = c.spot_price(k, int(r["year"]), r["scenario"])
        same_text(c, where, "tag", r["tag"], market_tag(c, k))
        c.equal("table", where, r["price_per_kg"], price, "price_per_kg")
        c.equal("table", where, r["cost"], KG_PER_T * price * r["volume_t"], "cost")


def _add(out: ByBuyer, s: str, b: str, amount: float) -> None:
    out[(s, b)] = out.get((s, b), 0.0) + amount


def _purchases(c: Ctx, plan: Plan, buyers: bool):
    """(stockpile, scenario, discounted purchase cost) of stockpiles held by buyers (or
    not)."""
    for (p, k, year, s), y in plan.stockpile_purchase.items():
        sp = c.stockpiles[p]
        if buyer_held(c, sp) == buyers:
            yield sp, s, c.delta[year] * KG_PER_T * c.spot_price(k, year, s) * y


def _holding(c: Ctx, plan: Plan, buyers: bool):
    for (p, _tag, year, s), x in plan.stockpile_level.items():
        sp = c.stockpiles[p]
        if buyer_held(c, sp) == buyers:
            yield sp, s, c.delta[year] * KG_PER_T * sp.holding_cost_per_kg_year * x


def _release_payments(c: Ctx, plan: Plan):
    """(stockpile, buyer, scenario, discounted payment) for releases of government
    stockpiles."""
    for (b, i, _j, _tag, year, s), x in plan.flow.items():
        if i in c.stockpiles and not buyer_held(c, c.stockpiles[i]):
            price = at(c.stockpiles[i].release_price_per_kg, year)
            yield c.stockpiles[i], b, s, c.delta[year] * KG_PER_T * price * x


@cost_check("stockpile_purchases")
def stockpile_purchases(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_t 1000 P_kappa ts y over buyer-held stockpiles, to the holder."""
    out: ByBuyer = {}
    for sp, s, amount in _purchases(c, plan, True):
        _add(out, s, sp.holder, amount)
    return out


@cost_check("stockpile_holding")
def stockpile_holding(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_t 1000 H_p L over buyer-held stockpiles, to the holder."""
    out: ByBuyer = {}
    for sp, s, amount in _holding(c, plan, True):
        _add(out, s, sp.holder, amount)
    return out


@cost_check("stockpile_releases")
def stockpile_releases(c: Ctx, plan: Plan, extra: TermInputs) -> ByBuyer:
    """delta_t 1000 R_pt x over releases of government stockpiles, to the buyer released to."""
    out: ByBuyer = {}
    for _sp, b, s, amount in _release_payments(c, plan):
        _add(out, s, b, amount)
    return out


def stockpile_fiscal(c: Ctx, plan: Plan) -> dict[tuple[str, str], float]:
    """(fiscal_stockpile, government) -> sum pi_s of its purchases and holding less the
    release payments it receives (discounted)."""
    out: dict[tuple[str, str], float] = {
        (FISCAL_TERM, sp.holder): 0.0 for sp in c.stockpiles.values() if not buyer_held(c, sp)}
    for sp, s, amount in [*_purchases(c, plan, False), *_holding(c, plan, False)]:
        out[(FISCAL_TERM, sp.holder)] += c.probability[s] * amount
    for sp, _b, s, amount in _release_payments(c, plan):
        out[(FISCAL_TERM, sp.holder)] -= c.probability[s] * amount
    return out
