"""concentration.csv: the Herfindahl-Hirschman index of the supply of each material at each
stage, over countries and over companies, and the largest single share, per buyer and pooled,
year and scenario (formulation.md, Emissions and concentration).

Reads the solved tables (contracts, production, spot) and the instance; never touches Pyomo.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import pandas as pd

from offtake.domain.origin import STAGE_ORDER, steps
from offtake.domain.schema import Instance
from offtake.formulation.data import spot_stage

COLUMNS = ["group", "material", "stage", "over", "year", "scenario", "tonnes", "hhi",
           "largest", "largest_share", "count"]
POOL = "pooled"


def hhi(shares: Sequence[float]) -> float:
    """Sum of squared shares (fractions summing to 1): 1 = a single source."""
    return float(sum(x * x for x in shares))


def release_source(tag: str) -> tuple[str, list[str]]:
    """Stage and countries a stockpile release is supply of: the last stage of its origin tag
    and the countries of the tag's steps there (STOCK and no country for an empty tag)."""
    found = steps(tag)
    if not found:
        return "STOCK", [""]
    last = max((st for st, _ in found), key=lambda st: STAGE_ORDER[st])
    return last, sorted(c for st, c in found if st == last)


def concentration_table(inst: Instance, contracts: pd.DataFrame, production: pd.DataFrame,
                        spot: pd.DataFrame, flows: pd.DataFrame) -> pd.DataFrame:
    """One row per (group, material, stage, over, year, scenario) with supply."""
    fac = {f.id: f for f in inst.facilities}
    markets = {k.id: k for k in inst.spot_markets}
    supply: list[tuple[str, str, str, int, str, str, str, float]] = []
    sold = contracts[contracts["delivered_t"] > 0]
    for f, b, y, s, x in sold[["supplier", "buyer", "year", "scenario",
                               "delivered_t"]].itertuples(index=False):
        ff = fac[f]
        supply.append((b, ff.product, str(ff.stage), int(y), s, ff.country, ff.company,
                       float(x)))
    for f, b, y, s, x in production[["facility", "buyer", "year", "scenario",
                                     "production_t"]].itertuples(index=False):
        ff = fac[f]
        supply.append((b, ff.product, str(ff.stage), int(y), s, ff.country, ff.company,
                       float(x)))
    for k, b, y, s, x in spot[["market", "buyer", "year", "scenario",
                               "volume_t"]].itertuples(index=False):
        mk = markets[k]
        supply.append((b, mk.material, spot_stage(mk.feed_origin), int(y), s, mk.origin,
                       f"spot:{k}", float(x)))
    stocks = {sp.id: sp for sp in inst.stockpiles}
    released = flows[flows["from_node"].isin(list(stocks))]
    for p, b, tag, y, s, x in released[["from_node", "buyer", "tag", "year", "scenario",
                                        "flow_t"]].itertuples(index=False):
        stage, countries = release_source(str(tag))
        for country in countries:  # several countries at the stage: the tonnes split evenly
            supply.append((b, stocks[p].material, stage, int(y), s, country, f"stockpile:{p}",
                           float(x) / len(countries)))
    pooled = len(inst.buyers) > 1
    units: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for b, mat, stage, y, s, country, company, x in supply:
        for g in (b, POOL) if pooled else (b,):
            units[(g, mat, stage, "country", y, s)][country] += x
            units[(g, mat, stage, "company", y, s)][company] += x
    order = {st: n for n, st in enumerate(STAGE_ORDER)}
    rows = []
    for key in sorted(units, key=lambda k: (k[0], k[1], order.get(k[2], len(order)), k[2],
                                            k[3], k[4], k[5])):
        by = {u: x for u, x in units[key].items() if x > 1e-9}
        total = sum(by.values())
        if total <= 0:
            continue
        top = max(sorted(by), key=lambda u: by[u])
        rows.append((*key, total, hhi([x / total for x in by.values()]), top,
                     by[top] / total, len(by)))
    return pd.DataFrame(rows, columns=COLUMNS)
