"""concentration.csv, recomputed from the instance and the plan (formulation.md, Emissions
and concentration): for each buyer (and `pooled`, all buyers, when there are several), year,
scenario, stage and material, the supply made at that stage for the group (contract
deliveries from the facility's own feed, processing, spot purchases, stockpile releases) by
country and by company, its HHI, largest share and number of units.

Owns `check_concentration_table`. Never imports the formulation or the results.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from offtake.check.context import Ctx, index_of, numbered
from offtake.check.network import contract_from
from offtake.check.spot import spot_flows
from offtake.check.tables import Plan
from offtake.check.tags import parse_tag
from offtake.domain.schema import Stage

_ORDER = {str(st): n for n, st in enumerate(Stage)}


def _units(c: Ctx) -> dict[str, tuple[str, str, str, str]]:
    """Supply node -> (material, stage, country, company): a facility's own; a spot market's
    material, the last stage of its feed_origin (SPOT without one), origin, 'spot:<id>'."""
    out = {f.id: (f.product, str(f.stage), f.country, f.company) for f in c.inst.facilities}
    for k in c.inst.spot_markets:
        stages = sorted((str(st) for st in k.feed_origin), key=lambda st: _ORDER[st])
        out[k.id] = (k.material, stages[-1] if stages else "SPOT", k.origin, f"spot:{k.id}")
    return out


def supply_by_unit(c: Ctx, plan: Plan) -> dict[tuple, dict[str, float]]:
    """(group, material, stage, over, year, scenario) -> unit -> tonnes supplied."""
    node = _units(c)
    pooled = len(c.buyers) > 1
    out: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(n: str, b: str, year: int, s: str, x: float) -> None:
        mat, stage, country, company = node[n]
        for g in (b, "pooled") if pooled else (b,):
            out[(g, mat, stage, "country", year, s)][country] += x
            out[(g, mat, stage, "company", year, s)][company] += x

    for (f, b, year, s), x in contract_from(c, plan).items():
        add(f, b, year, s, x)
    for (f, b, _comb, year, s), p in plan.production.items():
        add(f, b, year, s, p)
    for (k, b, _j, _tag, year, s), x in spot_flows(c, plan).items():
        add(k, b, year, s, x)
    for (b, i, _j, tag, year, s), x in plan.flow.items():
        if i in c.stockpiles:  # a release: supply at the last stage of its tag
            found = parse_tag(tag) or frozenset()
            last = max((st for st, _ in found), key=lambda st: _ORDER[st], default="STOCK")
            countries = sorted(cc for st, cc in found if st == last) or [""]
            for country in countries:
                node[f"{i}@{country}"] = (c.stockpiles[i].material, last, country,
                                          f"stockpile:{i}")
                add(f"{i}@{country}", b, year, s, x / len(countries))
    return out


def check_concentration_table(c: Ctx, t: dict[str, pd.DataFrame], plan: Plan) -> None:
    """concentration.csv: tonnes, HHI (sum of squared shares), the largest share, a unit that
    has it, and the count of units of every row as recomputed; no supply left out (unless the
    table is absent or empty: folders written before it existed)."""
    want = {k: {u: x for u, x in v.items() if x > c.tol} for k, v in
            supply_by_unit(c, plan).items()}
    seen = set()
    for pos, r in numbered(t["concentration"]):
        key = (r["group"], r["material"], r["stage"], r["over"], int(r["year"]),
               r["scenario"])
        where = f"concentration.csv row {pos}"
        if key in seen:
            c.flag("table", where, 1.0, f"row {index_of(*key)} repeated")
        seen.add(key)
        by = want.get(key, {})
        total = sum(by.values())
        c.equal("table", where, r["tonnes"], total, "tonnes supplied")
        if total <= c.tol:
            continue
        shares = {u: x / total for u, x in by.items()}
        top = max(shares.values())
        c.equal("table", where, r["hhi"], sum(x * x for x in shares.values()), "HHI")
        c.equal("table", where, r["largest_share"], top, "largest share")
        c.equal("table", where, r["count"], len(shares), "number of units")
        if shares.get(r["largest"], -1.0) < top - c.slack(top):
            c.flag("table", where, 1.0, f"'{r['largest']}' does not have the largest share")
    if not seen:
        return  # no table: a folder written before concentration.csv existed
    for key, by in sorted(want.items()):
        total = sum(by.values())
        if key not in seen and total > c.slack(0.0):
            c.flag("table", "concentration.csv," + index_of(*key), total,
                   f"no row for {total:.10g} t supplied")
