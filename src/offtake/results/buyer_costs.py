"""Every cost term split by buyer (formulation.md, "Cost per buyer"): what each buyer pays for
what it receives, with the shared items (signing costs, prepayments, volume rebates,
prepayment credits, build costs, penalties of rules over several buyers) split by the
documented rule. The shares of a term sum to the term.

Computed from the result tables already assembled (money columns are undiscounted amounts of
a year and scenario; here each is weighted by pi_s delta_t) and the model data. Never touches
Pyomo; called by `results.tables`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import pandas as pd

from offtake.domain.registry import COST_TERMS, RULE_KINDS
from offtake.domain.schema import Instance
from offtake.formulation.data import ModelData
from offtake.results.stockpiles import split_stockpile_costs

Split = dict[str, dict[str, float]]
"""term -> buyer -> expected discounted cost."""


def split_by_buyer(inst: Instance, d: ModelData, v: dict[str, pd.DataFrame],
                   t: dict[str, pd.DataFrame]) -> Split:
    """Each registered cost term split over the instance's buyers (every buyer has an entry,
    0 when it pays nothing of the term)."""
    out: Split = {term: dict.fromkeys(d.BUYERS, 0.0) for term in COST_TERMS}

    def weight(year: int, s: str) -> float:
        return d.probability[s] * d.discount[int(year)]

    def add(term: str, rows: Iterable[tuple[str, int, str, float]]) -> None:
        for b, year, s, amount in rows:
            out[term][b] += weight(year, s) * amount

    c = t["contracts"]
    keys = list(zip(c["buyer"], c["year"], c["scenario"], strict=True))
    add("contract_payments", ((*k, x) for k, x in zip(keys, c["payment"], strict=True)))
    add("take_or_pay_shortfall", ((*k, x) for k, x in zip(keys, c["shortfall_payment"],
                                                           strict=True)))
    add("liquidated_damages", ((*k, -x) for k, x in zip(keys, c["damages"], strict=True)))
    add("tariffs", ((*k, x) for k, x in zip(keys, c["tariff"], strict=True)))
    s = t["spot"]
    add("spot_purchases", zip(s["buyer"], s["year"], s["scenario"], s["cost"], strict=True))
    add("tariffs", zip(s["buyer"], s["year"], s["scenario"], s["tariff"], strict=True))
    f = t["flows"]
    add("freight", zip(f["buyer"], f["year"], f["scenario"], f["freight_cost"], strict=True))
    p = t["production"]
    add("operating_costs", zip(p["buyer"], p["year"], p["scenario"], p["opex_cost"],
                               strict=True))
    r = t["resale"]
    add("resale_credit", zip(r["buyer"], r["year"], r["scenario"], -r["credit"], strict=True))
    h = t["stock"]
    add("holding_costs", zip(h["buyer"], h["year"], h["scenario"], h["holding_cost"],
                             strict=True))
    u = t["unmet"]
    add("unmet_demand_penalty", zip(u["buyer"], u["year"], u["scenario"], u["penalty"],
                                    strict=True))
    split_stockpile_costs(d, t, out)
    e = t.get("emissions")
    if e is not None and d.carbon_price_per_t:
        add("carbon_costs", ((b, y, sc, d.carbon_price_per_t.get(int(y), 0.0) * x)
                             for b, y, sc, x in zip(e["buyer"], e["year"], e["scenario"],
                                                    e["emissions_t"], strict=True)))
    _shared_contract_items(inst, d, v, t, out, weight)
    _build_costs(inst, d, t, out)
    _penalties(inst, d, t, out)
    return out


def share_out(amount: float, weights: Mapping[str, float], fallback: Iterable[str]
              ) -> dict[str, float]:
    """`amount` split in proportion to `weights`; equally over `fallback` when the weights
    sum to nothing."""
    total = sum(x for x in weights.values() if x > 0)
    if total > 0:
        return {b: amount * x / total for b, x in weights.items() if x > 0}
    who = sorted(set(fallback))
    return {b: amount / len(who) for b in who} if who else {}


def _eligible(inst: Instance, d: ModelData) -> dict[str, list[str]]:
    """offer -> buyers who may take volume under it (the instance's list, or every buyer)."""
    return {o.id: list(o.buyers) if o.buyers is not None else list(d.BUYERS)
            for o in inst.offers}


def _shared_contract_items(inst: Instance, d: ModelData, v: dict[str, pd.DataFrame],
                           t: dict[str, pd.DataFrame], out: Split, weight) -> None:
    """Signing costs and prepayments (by each buyer's contracted volume under the offer over
    the horizon), volume rebates (by contracted volume in the year), prepayment credits (by
    delivered volume in the year and scenario); equally over the eligible buyers when the
    offer carries no volume."""
    eligible = _eligible(inst, d)
    vol = v["volume"]
    total: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    yearly: dict[tuple[str, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for o, b, y, q in zip(vol["offer_id"], vol["buyer"], vol["year"], vol["volume_t"],
                          strict=True):
        total[o][b] += q
        yearly[(o, int(y))][b] += q
    offers = t["offers"]
    for o, z, year in zip(offers["offer_id"], offers["signed"], offers["signing_year"],
                          strict=True):
        if not z:
            continue
        when = d.discount[int(year)]
        for term, amount in (("signing_costs", d.offer_signing_cost[o]),
                             ("prepayments", d.offer_prepayment[o])):
            if amount > 0:
                for b, x in share_out(when * amount, total[o], eligible[o]).items():
                    out[term][b] += x
    tiers = t["tiers"]
    for o, y, sc, rebate in zip(tiers["offer_id"], tiers["year"], tiers["scenario"],
                                tiers["rebate"], strict=True):
        for b, x in share_out(-weight(y, sc) * rebate, yearly[(o, int(y))],
                              eligible[o]).items():
            out["volume_rebates"][b] += x
    c = t["contracts"]
    delivered: dict[tuple[str, int, str], dict[str, float]] = defaultdict(dict)
    for o, b, y, sc, x in zip(c["offer_id"], c["buyer"], c["year"], c["scenario"],
                              c["delivered_t"], strict=True):
        delivered[(o, int(y), sc)][b] = x
    credits = t["credits"]
    for o, y, sc, credit in zip(credits["offer_id"], credits["year"], credits["scenario"],
                                credits["credit"], strict=True):
        for b, x in share_out(-weight(y, sc) * credit, delivered[(o, int(y), sc)],
                              eligible[o]).items():
            out["prepayment_credits"][b] += x


def _build_costs(inst: Instance, d: ModelData, t: dict[str, pd.DataFrame], out: Split
                 ) -> None:
    """A built option the buyers pay for: delta_{t^c} C split by each buyer's committed
    offtake at its facility over the horizon (theta q: take-or-pay share x contracted volume,
    or the contracted volume); equally over every buyer when nobody commits to it."""
    builds = t["builds"]
    c = t["contracts"]
    first = c.drop_duplicates(["offer_id", "buyer", "year"]) if not c.empty else c
    committed: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for o, b, q in zip(first["offer_id"], first["buyer"], first["volume_t"], strict=True):
        committed[d.offer_supplier[o]][b] += d.offer_top_share.get(o, 1.0) * q
    for j, f, built in zip(builds["build_id"], builds["facility"], builds["built"],
                           strict=True):
        if built and d.build_paid_by_buyers[j]:
            amount = d.discount[d.build_cost_year[j]] * d.build_cost[j]
            for b, x in share_out(amount, committed[f], d.BUYERS).items():
                out["build_costs"][b] += x


def row_buyers(rule, label: str, buyers: Iterable[str]) -> list[str]:
    """The buyers a rule row is about: the buyer that starts its label (rules that hold per
    buyer), else the rule's scoped buyers (pooled rows, supplier counts, offtake and
    bankability rows)."""
    known = list(buyers)
    head = label.split("|")[0] if label else ""
    if head in known:
        return [head]
    return sorted(rule.scope.buyers) if rule.scope.buyers is not None else known


def _penalties(inst: Instance, d: ModelData, t: dict[str, pd.DataFrame], out: Split) -> None:
    """A soft row's penalty split equally over the row's buyers (`row_buyers`); counts once
    (undiscounted) for supplier counts, delta_t once for rows in expectation or of the
    portfolio alone, pi_s delta_t for a row of scenario s."""
    rules = {r.id: r for r in inst.rules}
    table = t["rules"]
    for rid, label, year, sc, viol in zip(table["rule_id"], table["row"], table["year"],
                                          table["scenario"], table["violation"], strict=True):
        rule = rules[rid]
        if rule.hard or not viol or viol <= 0:
            continue
        cost = (rule.penalty_per_unit or 0.0) * viol
        if RULE_KINDS[rule.kind].form == "count" or pd.isna(year):
            amount = cost
        elif sc in d.probability:
            amount = d.probability[sc] * d.discount[int(year)] * cost
        else:  # in expectation, or of the portfolio alone: once in every scenario
            amount = d.discount[int(year)] * cost
        who = row_buyers(rule, str(label or ""), d.BUYERS)
        for b in who:
            out["rule_violation_penalties"][b] += amount / len(who)
