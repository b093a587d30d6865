"""Result tables of strategic stockpiles (formulation.md, "Result tables": stockpiles.csv and
stockpile_purchases.csv), each government holder's fiscal cost (`fiscal_stockpile`) and the
stockpile items of the cost split by buyer.

Built from the solved values (`solution_values`) and the model data; never touches Pyomo.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from offtake.formulation.data import KG_PER_T, ModelData

COLUMNS: dict[str, list[str]] = {
    "stockpiles": ["stockpile", "holder", "material", "tag", "year", "scenario", "purchased_t",
                   "released_t", "level_t", "release_allowed", "holding_cost_per_kg",
                   "holding_cost"],
    "stockpile_purchases": ["stockpile", "market", "tag", "year", "scenario", "volume_t",
                            "price_per_kg", "cost"],
}
FISCAL_TERM = "fiscal_stockpile"
ZERO = 1e-9


def stockpile_tables(d: ModelData, v: dict[str, pd.DataFrame], flows: pd.DataFrame
                     ) -> dict[str, pd.DataFrame]:
    """stockpile_purchases.csv (first-stage purchases repeated in every scenario, at that
    scenario's price) and stockpiles.csv (per stockpile, tag, year and scenario: purchases,
    releases, the end-of-year level, whether it may release, holding cost)."""
    buys: list[tuple] = []
    for p, k, y, x in v["stockpile_order"].itertuples(index=False):
        buys += [(p, k, int(y), s, x) for s in d.SCENARIOS]
    buys += [(p, k, int(y), s, x) for p, k, y, s, x in v["stockpile_buy"].itertuples(index=False)]
    rows = [(p, k, d.stockpile_market_tag[p, k], y, s, x, d.spot_price_per_t[k, y, s] / KG_PER_T,
             d.spot_price_per_t[k, y, s] * x) for p, k, y, s, x in buys if x > ZERO]
    purchases = pd.DataFrame(rows, columns=COLUMNS["stockpile_purchases"])
    bought: dict[tuple, float] = defaultdict(float)
    for p, _k, t, y, s, x, _price, _cost in rows:
        bought[(p, t, y, s)] += x
    released: dict[tuple, float] = defaultdict(float)
    stockpiles = set(d.STOCKPILES)
    for i, t, y, s, x in zip(flows["from_node"], flows["tag"], flows["year"], flows["scenario"],
                             flows["flow_t"], strict=True):
        if i in stockpiles:
            released[(i, t, int(y), s)] += x
    out = []
    for p, t, y, s, level in v["stockpile_level"].itertuples(index=False):
        key = (p, t, int(y), s)
        if max(level, bought.get(key, 0.0), released.get(key, 0.0)) <= ZERO:
            continue
        h = d.stockpile_holding_per_t[p] / KG_PER_T
        out.append((p, d.stockpile_holder[p], _material(d, p), t, int(y), s,
                    bought.get(key, 0.0), released.get(key, 0.0), level,
                    int(d.stockpile_release_cap_t[p, int(y), s] > 0), h, h * level * KG_PER_T))
    return {"stockpiles": pd.DataFrame(out, columns=COLUMNS["stockpiles"]),
            "stockpile_purchases": purchases}


def _material(d: ModelData, p: str) -> str:
    return next((d.arc_material[a] for a in d.ARCS if a[0] == p), "")


def release_payments(d: ModelData, flows: pd.DataFrame) -> list[tuple[str, str, int, str, float]]:
    """(stockpile, buyer, year, scenario, undiscounted payment) for releases of government
    stockpiles with a release price."""
    out = []
    for b, i, y, s, x in zip(flows["buyer"], flows["from_node"], flows["year"],
                             flows["scenario"], flows["flow_t"], strict=True):
        if i in d.stockpile_buyer_held and not d.stockpile_buyer_held[i]:
            price = d.stockpile_release_price_per_t[i, int(y)]
            if price > 0:
                out.append((i, b, int(y), s, price * x))
    return out


def holder_costs(d: ModelData, t: dict[str, pd.DataFrame]
                 ) -> list[tuple[str, str, str, int, str, float]]:
    """(term, stockpile, holder, year, scenario, undiscounted amount): purchases and holding of
    every stockpile, whoever holds it."""
    out = []
    pu = t["stockpile_purchases"]
    for p, y, s, cost in zip(pu["stockpile"], pu["year"], pu["scenario"], pu["cost"],
                             strict=True):
        out.append(("stockpile_purchases", p, d.stockpile_holder[p], int(y), s, cost))
    st = t["stockpiles"]
    for p, y, s, cost in zip(st["stockpile"], st["year"], st["scenario"], st["holding_cost"],
                             strict=True):
        out.append(("stockpile_holding", p, d.stockpile_holder[p], int(y), s, cost))
    return out


def fiscal_stockpile(d: ModelData, t: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Government holder -> its expected discounted fiscal cost: purchases and holding of its
    stockpiles less the release payments buyers make to it."""
    out: dict[str, float] = {}
    for p in d.STOCKPILES:
        if not d.stockpile_buyer_held[p]:
            out.setdefault(d.stockpile_holder[p], 0.0)

    def w(y: int, s: str) -> float:
        return d.probability[s] * d.discount[y]

    for _term, p, holder, y, s, amount in holder_costs(d, t):
        if not d.stockpile_buyer_held[p]:
            out[holder] += w(y, s) * amount
    for p, _b, y, s, amount in release_payments(d, t["flows"]):
        out[d.stockpile_holder[p]] -= w(y, s) * amount
    return out


def split_stockpile_costs(d: ModelData, t: dict[str, pd.DataFrame],
                          out: dict[str, dict[str, float]]) -> None:
    """The stockpile terms by buyer: a buyer-held stockpile's purchases and holding to its
    holder; release payments to the buyer released to."""
    def w(y: int, s: str) -> float:
        return d.probability[s] * d.discount[y]

    for term, p, holder, y, s, amount in holder_costs(d, t):
        if d.stockpile_buyer_held[p]:
            out[term][holder] += w(y, s) * amount
    for _p, b, y, s, amount in release_payments(d, t["flows"]):
        out["stockpile_releases"][b] += w(y, s) * amount
