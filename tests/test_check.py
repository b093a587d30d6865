"""The independent checker (`offtake.check`) on result tables built by hand.

The plans below are derived by hand, never solved: the tiny instance's optimum is in
`instances/tiny_two_offers.yaml` (sign OFF-B, 100 t/yr from SUP-B, 50 t spot in 2027,
objective 20,250,000 USD). The diamond network (two separators in AU and CN feeding one magnet
maker in JP, plus a US recycler) carries origin tags and every procurement rule kind. Each
mutation breaks one rule and the test asserts that the checker names it with the formulation's
component name and the right amount. The contract-economics cases (an `ECON` instance: one US
buyer, magnet makers in AU, CN and DE, a Chinese spot market) hand-derive each price term,
tier, take-or-pay, credit, resale, stock, tariff, fiscal and risk figure. One test runs the
real solver, only through the CLI.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from offtake.check import Violation, check_folder, check_tables
from offtake.check.objective import COST_CHECKS, cvar
from offtake.check.rules import RULE_CHECKS
from offtake.check.tables import TABLE_COLUMNS
from offtake.domain.network import at
from offtake.domain.registry import COST_TERMS, RULE_KINDS
from offtake.domain.schema import Instance
from offtake.io.loader import load_instance, read_yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "instances" / "tiny_two_offers.yaml"
CHECK_DIR = ROOT / "src" / "offtake" / "check"

TINY_COSTS = {"contract_payments": 14_000_000.0, "signing_costs": 1_500_000.0,
              "spot_purchases": 4_750_000.0}
"""Hand-derived optimum: 200 t x 70 USD/kg, OFF-B signing 1.5M, 50 t x 95 USD/kg spot."""

TINY_FLOWS = [("OEM", "SUP-B", "OEM", 2026, 100.0), ("OEM", "SUP-B", "OEM", 2027, 100.0),
              ("OEM", "SPOT", "OEM", 2027, 50.0)]
TINY_VOLUME = {("OFF-B", "OEM", 2026): 100.0, ("OFF-B", "OEM", 2027): 100.0}

STAGES = ("MINE", "CRACK", "SEP_L", "SEP_H", "METAL", "MAGNET", "RECYCLE", "OTHER")
"""Stage order of a canonical tag, copied from formulation.md for building tables by hand."""


# --- origin tags, by hand --------------------------------------------------------------------
def tag(*steps: str) -> str:
    """Canonical tag of 'STAGE:CC' steps (stage order, then country)."""
    return "|".join(sorted(set(steps), key=lambda st: (STAGES.index(st.split(":")[0]), st)))


def steps_of(feed: dict) -> list[str]:
    return [f"{stage}:{cc}" for stage, cc in feed.items()]


def own_tag(inst: Instance, f: str) -> str:
    fac = {x.id: x for x in inst.facilities}[f]
    return tag(*steps_of(fac.feed_origin), f"{fac.stage}:{fac.country}")


def spot_tag(inst: Instance, k: str) -> str:
    return tag(*steps_of({m.id: m for m in inst.spot_markets}[k].feed_origin))


def made_tag(inst: Instance, f: str, inputs: dict[str, str]) -> str:
    fac = {x.id: x for x in inst.facilities}[f]
    return tag(f"{fac.stage}:{fac.country}", *[s for t in inputs.values() if t
                                                for s in t.split("|")])


def combination(inputs: dict[str, str]) -> str:
    return ";".join(f"{k}={inputs[k]}" for k in sorted(inputs))


# --- building tables by hand -----------------------------------------------------------------
def tiny_raw() -> dict:
    return read_yaml(TINY)


def make(raw: dict) -> Instance:
    return Instance.model_validate(copy.deepcopy(raw))


def frame(name: str, rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS[name]))


def sender(inst: Instance, node: str) -> str:
    nodes = {f.id: f.product for f in inst.facilities}
    nodes.update({k.id: k.material for k in inst.spot_markets})
    return nodes[node]


Flow = tuple  # (buyer, from, to, year, t) or (buyer, from, to, year, t, tag)
Made = tuple  # (facility, buyer, year, t) or (facility, buyer, year, t, {input: tag})


def node_tag(inst: Instance, node: str, b: str, year: int, flows: list[Flow]) -> str:
    """Default tag of what `node` sends for buyer b: a market's or own-feed tag, or (one
    chain per processor) its step plus the tags of what flows into it."""
    if node in {k.id for k in inst.spot_markets}:
        return spot_tag(inst, node)
    fac = {x.id: x for x in inst.facilities}[node]
    if not fac.recipe:
        return own_tag(inst, node)
    return made_tag(inst, node, default_inputs(inst, node, b, year, flows))


def default_inputs(inst: Instance, f: str, b: str, year: int, flows: list[Flow]) -> dict:
    inputs = {}
    for fl in flows:
        if fl[0] == b and fl[2] == f and fl[3] == year:
            inputs[sender(inst, fl[1])] = flow_tag(inst, fl, flows)
    return inputs


def flow_tag(inst: Instance, fl: Flow, flows: list[Flow]) -> str:
    return fl[5] if len(fl) > 5 else node_tag(inst, fl[1], fl[0], fl[3], flows)


def tables(
    inst: Instance,
    signed: dict[str, int],
    volume: dict[tuple[str, str, int], float],
    flows: list[Flow] | dict[str, list[Flow]],
    costs: dict[str, float],
    production: list[Made] = (),
    freight: dict[tuple[str, str], float] | None = None,
    rules: list[dict] = (),
    *,
    prices: dict[tuple, tuple] | None = None,
    rows: dict[tuple, dict] | None = None,
    start: dict[str, int] | None = None,
    tiers: list[tuple] = (),
    credits: list[tuple] = (),
    resale: list[tuple] = (),
    stock: list[tuple] = (),
    rates: dict[tuple[str, int], float] | None = None,
    fiscal: dict[str, float] | None = None,
    spot_prices: dict[tuple[str, int, str], float] | None = None,
    demand: dict[tuple[str, str, int, str], float] | None = None,
    risk: float | None = None,
    scenario_costs: dict[tuple[str, str], float] | None = None,
) -> dict[str, pd.DataFrame]:
    """Result tables of a plan, written as the solver writes them, from hand-derived numbers.

    `flows` is the same list for every scenario, or one list per scenario. Contracts: one row
    per (offer, buyer, window year, scenario); volume_t from `volume` (first stage), delivered
    = volume unless `rows` says otherwise.
    prices: (offer, year, scenario or '*') -> (P, term) or (P, term, payer, fiscal per kg);
      fixed-price offers default to their price and 'fixed'; rows of an index-linked offer
      without a price (and without volume) are left out.
    rows: (offer, buyer, year, scenario or '*') -> contracts.csv column overrides
      (delivered_t, shortfall_t, tier, ...); payment, shortfall_payment, tariff and fiscal_cost
      follow the row's numbers unless overridden too.
    start: offer -> start_year (default: first_year when signed).
    rates: (offer or market, year) -> stacked tariff rate (default 0).
    tiers: (offer, year, tier, t, discount, P) for every scenario.
    credits: (offer, year, scenario, credit).
    resale: (buyer, market, year, t, net price) and stock: (buyer, material, year, t,
      holding cost per kg), both for every scenario.
    fiscal: payer -> fiscal_floor_support (not in the objective).
    spot_prices: (market, year, scenario) -> a scenario's spot price (default: the base one).
    demand: (buyer, material, year, scenario) -> a scenario's demand (default: the base one).
    risk: the risk_cvar row (payer 'risk'); scenario_costs: (scenario, term) -> value.
    """
    freight, prices, rows, rates = freight or {}, prices or {}, rows or {}, rates or {}
    start, spot_prices = start or {}, spot_prices or {}
    scenarios = [s.id for s in inst.scenarios]
    by_s = flows if isinstance(flows, dict) else {s: flows for s in scenarios}
    offers = [{"offer_id": o.id, "supplier": o.supplier, "material": o.material,
               "signed": signed.get(o.id, 0),
               "start_year": start.get(o.id, o.first_year) if signed.get(o.id) else None,
               "signing_cost": o.signing_cost, "prepayment": o.prepayment,
               "signing_year": start.get(o.id, max(o.first_year, inst.horizon.first_year))}
              for o in inst.offers]
    company = {f.id: f.company for f in inst.facilities}
    contracts = []
    for o in inst.offers:
        for b in inst.buyers:
            for t in range(max(o.first_year, inst.horizon.first_year),
                           min(o.last_year, inst.horizon.last_year) + 1):
                for s in scenarios:
                    q = volume.get((o.id, b.id, t), 0.0)
                    price = prices.get((o.id, t, s), prices.get((o.id, t, "*")))
                    if price is None and o.index is None:
                        price = (at(o.price_per_kg, t), "fixed")
                    if price is None and q == 0:
                        continue
                    p, term, payer, fiscal_kg = (*price, "", 0.0)[:4]
                    row = {"offer_id": o.id, "supplier": o.supplier,
                           "company": company[o.supplier], "material": o.material,
                           "buyer": b.id, "year": t, "scenario": s,
                           "signed": signed.get(o.id, 0), "volume_t": q, "delivered_t": q,
                           "shortfall_t": 0.0, "price_per_kg": p, "price_term": term,
                           "tier": "", "tariff_rate": rates.get((o.id, t), 0.0),
                           "fiscal_payer": payer, "fiscal_per_kg": fiscal_kg,
                           "tag": own_tag(inst, o.supplier), "curtailed_t": 0.0,
                           "damages": 0.0}
                    row.update(rows.get((o.id, b.id, t, "*"), {}))
                    row.update(rows.get((o.id, b.id, t, s), {}))
                    d = row["delivered_t"]
                    phi = o.shortfall_fraction if o.take_or_pay_share is not None else 0.0
                    money = {"payment": 1000 * p * d,
                             "shortfall_payment": 1000 * phi * p * row["shortfall_t"],
                             "tariff": 1000 * row["tariff_rate"] * p * d,
                             "fiscal_cost": 1000 * row["fiscal_per_kg"] * d}
                    contracts.append({**money, **row})
    flow_rows, spot_rows = [], []
    markets = {k.id: k for k in inst.spot_markets}
    for s in scenarios:
        for fl in by_s[s]:
            b, i, j, t, x = fl[:5]
            fr, tg = freight.get((i, j), 0.0), flow_tag(inst, fl, by_s[s])
            flow_rows.append({"buyer": b, "from_node": i, "to_node": j,
                              "material": sender(inst, i), "tag": tg, "year": t, "scenario": s,
                              "flow_t": x, "freight_per_kg": fr, "freight_cost": 1000 * fr * x})
            if i in markets:
                price = spot_prices.get((i, t, s), at(markets[i].price_per_kg, t))
                rate = rates.get((i, t), 0.0)
                spot_rows.append({"market": i, "material": markets[i].material,
                                  "origin": markets[i].origin, "tag": tg, "buyer": b,
                                  "to_node": j, "year": t, "scenario": s, "volume_t": x,
                                  "price_per_kg": price, "cost": 1000 * price * x,
                                  "tariff_rate": rate, "tariff": 1000 * rate * price * x})
    cost_rows = [{"term": k, "value": v, "payer": "buyer", "in_objective": True}
                 for k, v in costs.items()]
    cost_rows += [{"term": "fiscal_floor_support", "value": v, "payer": payer,
                   "in_objective": False} for payer, v in (fiscal or {}).items()]
    if risk is not None:
        cost_rows.append({"term": "risk_cvar", "value": risk, "payer": "risk",
                          "in_objective": True})
    probability = {x.id: x.probability for x in inst.scenarios}
    return {
        "offers": frame("offers", offers),
        "contracts": frame("contracts", contracts),
        "tiers": frame("tiers", [
            {"offer_id": o, "year": t, "scenario": s, "tier": str(k), "volume_t": v,
             "discount": disc, "price_per_kg": p, "rebate": 1000 * p * disc * v}
            for o, t, k, v, disc, p in tiers for s in scenarios]),
        "credits": frame("credits", [{"offer_id": o, "year": t, "scenario": s, "credit": x}
                                     for o, t, s, x in credits]),
        "flows": frame("flows", flow_rows),
        "production": frame("production", production_rows(inst, production, by_s, scenarios)),
        "spot": frame("spot", spot_rows),
        "resale": frame("resale", [
            {"buyer": b, "market": k, "material": markets[k].material, "year": t,
             "scenario": s, "volume_t": x, "price_per_kg": p, "credit": 1000 * p * x}
            for b, k, t, x, p in resale for s in scenarios]),
        "stock": frame("stock", [
            {"buyer": b, "material": k, "year": t, "scenario": s, "stock_t": x,
             "holding_cost_per_kg": h, "holding_cost": 1000 * h * x}
            for b, k, t, x, h in stock for s in scenarios]),
        "unmet": frame("unmet", unmet_rows(inst, by_s, scenarios, resale, stock, demand)),
        "origin": frame("origin", origin_rows(flow_rows)),
        "costs": frame("costs", cost_rows),
        "scenario_costs": frame("scenario_costs", [
            {"scenario": sc, "probability": probability[sc], "term": term, "value": v}
            for (sc, term), v in (scenario_costs or {}).items()]),
        "rules": frame("rules", list(rules)),
    }


def production_rows(inst: Instance, production: list[Made], flows: dict[str, list[Flow]],
                    scenarios: list[str]) -> list[dict]:
    facilities = {f.id: f for f in inst.facilities}
    rows = []
    for s in scenarios:
        for made in production:
            f, b, t, p = made[:4]
            inputs = made[4] if len(made) > 4 else default_inputs(inst, f, b, t, flows[s])
            opex = at(facilities[f].opex_per_kg, t)
            rows.append({"facility": f, "buyer": b, "inputs": combination(inputs),
                         "tag": made_tag(inst, f, inputs), "year": t, "scenario": s,
                         "production_t": p, "opex_per_kg": opex, "opex_cost": 1000 * opex * p})
    return rows


def unmet_rows(inst: Instance, flows: dict[str, list[Flow]], scenarios: list[str],
               resale: list[tuple] = (), stock: list[tuple] = (),
               demand: dict[tuple, float] | None = None) -> list[dict]:
    """One row per positive demand; unmet = demand - delivered - stock in + stock out +
    resold (never below zero)."""
    rows = []
    penalty = {m.id: m.unmet_penalty_per_kg for m in inst.materials}
    market = {k.id: k.material for k in inst.spot_markets}
    for s in scenarios:
        for b in inst.buyers:
            for k, series in b.demand_t.items():
                for t in inst.horizon.years:
                    d = (demand or {}).get((b.id, k, t, s), at(series, t))
                    got = sum(fl[4] for fl in flows[s]
                              if fl[0] == b.id and fl[2] == b.id and fl[3] == t
                              and sender(inst, fl[1]) == k)
                    held = {y: sum(x for bb, kk, yy, x, _h in stock
                                   if (bb, kk, yy) == (b.id, k, y)) for y in (t - 1, t)}
                    sold = sum(x for bb, kk, yy, x, _p in resale
                               if (bb, market[kk], yy) == (b.id, k, t))
                    u = max(0.0, d - got - held[t - 1] + held[t] + sold)
                    if d > 0:
                        rows.append({"buyer": b.id, "material": k, "year": t, "scenario": s,
                                     "demand_t": d, "delivered_t": got, "unmet_t": u,
                                     "penalty_per_kg": penalty[k],
                                     "penalty": 1000 * penalty[k] * u})
    return rows


def origin_rows(flow_rows: list[dict]) -> list[dict]:
    """origin.csv of the flows into buyers: tonnes with a step at (stage, country), share."""
    total: dict[tuple, float] = {}
    tonnes: dict[tuple, float] = {}
    for r in flow_rows:
        if r["to_node"] != r["buyer"]:
            continue
        key = (r["buyer"], r["material"], r["year"], r["scenario"])
        total[key] = total.get(key, 0.0) + r["flow_t"]
        for st in filter(None, r["tag"].split("|")):
            stage, cc = st.split(":")
            tonnes[(*key, stage, cc)] = tonnes.get((*key, stage, cc), 0.0) + r["flow_t"]
    return [{"buyer": k[0], "material": k[1], "year": k[2], "scenario": k[3], "stage": k[4],
             "country": k[5], "tonnes": x, "share": x / total[k[:4]]}
            for k, x in tonnes.items()]


GE_KINDS = {"min_suppliers", "min_content_share", "min_recycled_share"}


def rule_row(inst: Instance, rule_id: str, row: str = "", year: int | None = None,
             scenario: str = "", lhs: float = 0.0, bound: float = 0.0,
             base: float | None = None, share: float | None = None) -> dict:
    """A rules.csv row as formulation.md describes it, from hand-derived lhs and bound."""
    rule = {r.id: r for r in inst.rules}[rule_id]
    sense = "ge" if rule.kind in GE_KINDS else "le"
    slack = bound - lhs if sense == "le" else lhs - bound
    count = rule.kind in {"max_suppliers", "min_suppliers"}
    return {"rule_id": rule_id, "kind": rule.kind, "row": row, "year": year,
            "scenario": scenario, "sense": sense, "lhs": lhs, "bound": bound, "slack": slack,
            "violation": max(0.0, -slack), "hard": rule.hard,
            # formulation.md: tight, and more than 0 <= 0 (no shadow price here)
            "binding": abs(slack) <= 1e-6 and (count or lhs > 1e-6 or bound > 1e-6),
            "unit": "suppliers" if count else "t", "share": lhs / base if base else None,
            "share_bound": share, "base_t": base, "shadow_price": 0.0,
            "shadow_price_per_pp": "" if count else 0.0, "dual_basis": "by hand"}


def tiny_optimum(inst: Instance | None = None) -> dict[str, pd.DataFrame]:
    inst = inst or load_instance(TINY).instance
    return tables(inst, {"OFF-B": 1}, TINY_VOLUME, TINY_FLOWS, TINY_COSTS)


def found(report, constraint: str, index: str) -> Violation:
    hits = [v for v in report.violations if v.constraint == constraint and v.index == index]
    assert hits, f"no {constraint}[{index}] among {[str(v) for v in report.violations]}"
    return hits[0]


def kinds(report) -> set[str]:
    return {v.constraint for v in report.violations}


# --- the optimum passes ----------------------------------------------------------------------
def test_hand_derived_optimum_passes():
    inst = load_instance(TINY).instance
    report = check_tables(inst, tiny_optimum(inst), 20_250_000.0, None)
    assert report.violations == []
    assert report.ok
    assert report.objective == pytest.approx(20_250_000.0)
    assert report.cost_terms["contract_payments"] == pytest.approx(14_000_000.0)
    assert report.cost_terms["spot_purchases"] == pytest.approx(4_750_000.0)
    assert report.cost_terms["signing_costs"] == pytest.approx(1_500_000.0)


def test_tiny_tags_by_hand():
    """SUP-B (MAGNET, DE, no feed_origin) sells 'MAGNET:DE'; SPOT has no feed_origin: ''."""
    t = tiny_optimum()
    assert set(t["flows"]["tag"]) == {"MAGNET:DE", ""}
    assert set(t["origin"]["stage"] + ":" + t["origin"]["country"]) == {"MAGNET:DE"}


def test_discounting_and_scenarios():
    """r = 10 %, base year 2026: 7M + 7M/1.1 + 1.5M + 4.75M/1.1 = 8.5M + 11.75M/1.1.
    Two scenarios with the same second-stage plan weigh to the same expected cost."""
    raw = tiny_raw()
    raw["horizon"]["discount_rate"] = 0.1
    raw["scenarios"] = [{"id": "low", "probability": 0.3}, {"id": "high", "probability": 0.7}]
    inst = make(raw)
    costs = {"contract_payments": 7e6 + 7e6 / 1.1, "signing_costs": 1.5e6,
             "spot_purchases": 4.75e6 / 1.1}
    t = tables(inst, {"OFF-B": 1}, TINY_VOLUME, TINY_FLOWS, costs)
    report = check_tables(inst, t, 8.5e6 + 11.75e6 / 1.1, None)
    assert report.violations == []
    assert report.objective == pytest.approx(19_181_818.1818, abs=1e-3)



@pytest.mark.parametrize(("offer", "decision", "flagged"), [
    ("OFF-A", "forced", True), ("OFF-B", "forbidden", True),
    ("OFF-B", "forced", False), ("OFF-A", "forbidden", False)])
def test_offer_decision_is_checked_against_the_signed_column(offer, decision, flagged):
    """The tiny optimum signs OFF-B and not OFF-A (formulation.md, offer_decision: a forced
    offer is signed, a forbidden one is not)."""
    inst = load_instance(TINY).instance
    offers = [o.model_copy(update={"decision": decision}) if o.id == offer else o
              for o in inst.offers]
    decided = inst.model_copy(update={"offers": offers})
    report = check_tables(decided, tiny_optimum(inst), 20_250_000.0, None)
    if flagged:
        assert kinds(report) == {"offer_decision"}
        found(report, "offer_decision", offer)
    else:
        assert report.violations == []

# --- mutations -------------------------------------------------------------------------------
def test_capacity_exceeded():
    raw = tiny_raw()
    raw["facilities"][1]["capacity_t"] = 80  # SUP-B: 100 t/yr sold under OFF-B
    inst = make(raw)
    report = check_tables(inst, tiny_optimum(inst), 20_250_000.0, None)
    assert found(report, "facility_capacity_max", "SUP-B,2026,base").amount == pytest.approx(20)
    assert found(report, "facility_capacity_max", "SUP-B,2027,base").amount == pytest.approx(20)
    assert kinds(report) == {"facility_capacity_max"}


def test_volume_on_unsigned_offer():
    """Take 50 t from OFF-A in 2027 instead of spot, without signing OFF-A."""
    inst = load_instance(TINY).instance
    volume = {**TINY_VOLUME, ("OFF-A", "OEM", 2027): 50.0}
    flows = TINY_FLOWS[:2] + [("OEM", "SUP-A", "OEM", 2027, 50.0)]
    costs = {"contract_payments": 18_000_000.0, "signing_costs": 1_500_000.0}
    report = check_tables(inst, tables(inst, {"OFF-B": 1}, volume, flows, costs), 19.5e6, None)
    v = found(report, "contract_volume_max", "OFF-A,2027")
    assert v.amount == pytest.approx(50)
    assert "unsigned" in v.message
    assert kinds(report) == {"contract_volume_max"}


def test_volume_for_ineligible_buyer():
    raw = tiny_raw()
    raw["buyers"].append({"id": "OEM2", "country": "JP", "demand_t": {"MAGNET": 0}})
    raw["offers"][1]["buyers"] = ["OEM2"]
    inst = make(raw)
    report = check_tables(inst, tiny_optimum(inst), 20_250_000.0, None)
    assert found(report, "contract_volume_max", "OFF-B,OEM,2026").amount == pytest.approx(100)


def test_min_volume_not_met():
    """OFF-B now has a 100 t/yr minimum; the plan takes 60 t in 2026 and 40 t spot."""
    raw = tiny_raw()
    raw["offers"][1]["min_t_per_year"] = 100
    inst = make(raw)
    volume = {("OFF-B", "OEM", 2026): 60.0, ("OFF-B", "OEM", 2027): 100.0}
    flows = [("OEM", "SUP-B", "OEM", 2026, 60.0), ("OEM", "SPOT", "OEM", 2026, 40.0)]
    flows += TINY_FLOWS[1:]
    costs = {"contract_payments": 11_200_000.0, "signing_costs": 1_500_000.0,
             "spot_purchases": 8_550_000.0}
    report = check_tables(inst, tables(inst, {"OFF-B": 1}, volume, flows, costs), 21.25e6, None)
    assert found(report, "contract_volume_min", "OFF-B,2026").amount == pytest.approx(40)
    assert kinds(report) == {"contract_volume_min"}


def test_demand_not_met_without_unmet_row():
    inst = load_instance(TINY).instance
    costs = {k: v for k, v in TINY_COSTS.items() if k != "spot_purchases"}
    t = tables(inst, {"OFF-B": 1}, TINY_VOLUME, TINY_FLOWS[:2], costs)
    t["unmet"] = t["unmet"][t["unmet"]["year"] != 2027]
    report = check_tables(inst, t, 15_500_000.0, None)
    assert found(report, "demand_balance", "OEM,MAGNET,2027,base").amount == pytest.approx(50)
    found(report, "table", "unmet.csv,OEM,MAGNET,2027,base")
    assert kinds(report) == {"demand_balance", "table"}


def test_unmet_above_demand():
    inst = load_instance(TINY).instance
    t = tiny_optimum(inst)
    t["unmet"].loc[0, ["unmet_t", "penalty"]] = [120.0, 1.2e9]
    report = check_tables(inst, t, None, None)
    assert found(report, "demand_balance", "OEM,MAGNET,2026,base").amount == pytest.approx(20)


def test_flow_on_nonexistent_arc():
    """SUP-B has an empty recipe: it takes nothing, so SUP-A -> SUP-B is not an arc."""
    inst = load_instance(TINY).instance
    t = tiny_optimum(inst)
    extra = t["flows"].iloc[[0]].assign(from_node="SUP-A", to_node="SUP-B", flow_t=10.0)
    t["flows"] = pd.concat([t["flows"], extra], ignore_index=True)
    report = check_tables(inst, t, 20_250_000.0, None)
    assert found(report, "arc_allowed", "OEM,SUP-A,SUP-B,2026,base").amount == pytest.approx(10)


def test_listed_arcs_only_and_their_freight():
    """default_arcs off: only SUP-B -> OEM (1 USD/kg) and SPOT -> OEM exist. The optimum
    pays 200 t x 1,000 USD/t freight more; a flow from SUP-A to OEM is not on an arc."""
    raw = tiny_raw()
    raw["network"] = {"default_arcs": False, "arcs": [
        {"from": "SUP-B", "to": "OEM", "freight_per_kg": 1.0}, {"from": "SPOT", "to": "OEM"}]}
    inst = make(raw)
    fr = {("SUP-B", "OEM"): 1.0}
    costs = {**TINY_COSTS, "freight": 200_000.0}
    good = tables(inst, {"OFF-B": 1}, TINY_VOLUME, TINY_FLOWS, costs, freight=fr)
    report = check_tables(inst, good, 20_450_000.0, None)
    assert report.violations == []
    assert report.cost_terms["freight"] == pytest.approx(200_000.0)

    volume = {**TINY_VOLUME, ("OFF-A", "OEM", 2027): 50.0}
    flows = TINY_FLOWS[:2] + [("OEM", "SUP-A", "OEM", 2027, 50.0)]
    bad = tables(inst, {"OFF-A": 1, "OFF-B": 1}, volume, flows, {}, freight=fr)
    report = check_tables(inst, bad, None, None)
    assert found(report, "arc_allowed", "OEM,SUP-A,OEM,2027,base").amount == pytest.approx(50)


def test_wrong_cost_term():
    inst = load_instance(TINY).instance
    t = tiny_optimum(inst)
    t["costs"].loc[t["costs"]["term"] == "contract_payments", "value"] = 14_100_000.0
    report = check_tables(inst, t, 20_250_000.0, None)
    assert report.violations == [found(report, "cost_term", "contract_payments")]
    assert report.violations[0].amount == pytest.approx(100_000)


def test_wrong_objective():
    inst = load_instance(TINY).instance
    report = check_tables(inst, tiny_optimum(inst), 20_000_000.0, None)
    assert report.violations == [found(report, "objective", "objective")]
    assert report.violations[0].amount == pytest.approx(250_000)


# --- max_suppliers rules on the tiny instance ------------------------------------------------
def two_supplier_plan(inst: Instance, penalty: float = 0.0,
                      lhs: int = 2) -> dict[str, pd.DataFrame]:
    """Sign both offers; OFF-A covers the 50 t gap in 2027 (the 21.5M plan of the yaml)."""
    volume = {**TINY_VOLUME, ("OFF-A", "OEM", 2027): 50.0}
    flows = TINY_FLOWS[:2] + [("OEM", "SUP-A", "OEM", 2027, 50.0)]
    costs = {"contract_payments": 18_000_000.0, "signing_costs": 3_500_000.0,
             "rule_violation_penalties": penalty}
    rule = inst.rules[0]
    bound = rule.max_count if rule.kind == "max_suppliers" else rule.min_count
    rows = [rule_row(inst, rule.id, lhs=lhs, bound=bound)]
    return tables(inst, {"OFF-A": 1, "OFF-B": 1}, volume, flows, costs, rules=rows)


def with_rule(**rule) -> Instance:
    """The tiny instance with one supplier-count rule R1 (default: at most 1 supplier)."""
    raw = tiny_raw()
    default = {} if "kind" in rule else {"kind": "max_suppliers", "max_count": 1}
    raw["rules"] = [{"id": "R1", **default, **rule}]
    return make(raw)


def test_hard_max_suppliers_broken():
    inst = with_rule()
    report = check_tables(inst, two_supplier_plan(inst), 21_500_000.0, None)
    assert report.violations == [found(report, "suppliers_max", "R1")]
    assert report.violations[0].amount == pytest.approx(1)


def test_soft_max_suppliers_is_priced():
    inst = with_rule(hard=False, penalty_per_unit=1_000_000)
    report = check_tables(inst, two_supplier_plan(inst, 1_000_000.0), 22_500_000.0, None)
    assert report.violations == []
    assert report.cost_terms["rule_violation_penalties"] == pytest.approx(1_000_000)


def test_max_suppliers_counts_companies():
    raw = tiny_raw()
    raw["facilities"][1]["company"] = "Alpha Magnets"
    raw["rules"] = [{"id": "R1", "kind": "max_suppliers", "max_count": 1, "count": "company"}]
    inst = make(raw)
    assert check_tables(inst, two_supplier_plan(inst, lhs=1), 21_500_000.0, None).ok


def test_max_suppliers_scope_years():
    """OFF-A runs in 2027 only; a rule on 2026 does not see it."""
    raw = tiny_raw()
    raw["offers"][0]["first_year"] = 2027
    raw["rules"] = [{"id": "R1", "kind": "max_suppliers", "max_count": 1,
                     "scope": {"years": [2026]}}]
    inst = make(raw)
    assert check_tables(inst, two_supplier_plan(inst, lhs=1), 21_500_000.0, None).ok
    raw["rules"][0]["scope"] = {"years": [2027]}
    inst = make(raw)
    report = check_tables(inst, two_supplier_plan(inst), 21_500_000.0, None)
    assert found(report, "suppliers_max", "R1").amount == pytest.approx(1)


def test_min_suppliers_hard_and_soft():
    """Two suppliers signed: min 2 holds; min 3 is short by one (hard: suppliers_min; soft:
    priced undiscounted at 400,000 per supplier)."""
    inst = with_rule(kind="min_suppliers", min_count=2)
    assert check_tables(inst, two_supplier_plan(inst), 21_500_000.0, None).ok
    inst = with_rule(kind="min_suppliers", min_count=3)
    report = check_tables(inst, two_supplier_plan(inst), 21_500_000.0, None)
    assert report.violations == [found(report, "suppliers_min", "R1")]
    assert report.violations[0].amount == pytest.approx(1)
    inst = with_rule(kind="min_suppliers", min_count=3, hard=False, penalty_per_unit=400_000)
    report = check_tables(inst, two_supplier_plan(inst, 400_000.0), 21_900_000.0, None)
    assert report.violations == []


def test_rules_table_must_match():
    """rules.csv: a wrong lhs, a wrong soft violation, a missing row are all reported."""
    inst = with_rule(hard=False, penalty_per_unit=1_000_000)
    t = two_supplier_plan(inst, 1_000_000.0)
    t["rules"].loc[0, "lhs"] = 3.0
    report = check_tables(inst, t, 22_500_000.0, None)
    assert "lhs" in found(report, "table", "rules.csv row 1").message
    t = two_supplier_plan(inst, 1_000_000.0)
    t["rules"].loc[0, "violation"] = 0.0
    report = check_tables(inst, t, 22_500_000.0, None)
    assert found(report, "table", "rules.csv row 1").amount == pytest.approx(1)
    t = two_supplier_plan(inst, 1_000_000.0)
    t["rules"] = t["rules"].iloc[0:0]
    found(check_tables(inst, t, 22_500_000.0, None), "table", "rules.csv,R1")


def test_max_supplier_share_counts_spot_in_the_base():
    """SUP-B's share of OEM's purchases: 2026 100/100, 2027 100/(100 + 50 spot). Cap 0.6:
    bounds 60 and 90, violations 40 and 10; SUP-A (offered, not bought) rows hold."""
    raw = tiny_raw()
    raw["rules"] = [{"id": "R", "kind": "max_supplier_share", "max_share": 0.6}]
    inst = make(raw)
    rows = [rule_row(inst, "R", "OEM|SUP-B|MAGNET", 2026, "base", 100, 60, 100, 0.6),
            rule_row(inst, "R", "OEM|SUP-B|MAGNET", 2027, "base", 100, 90, 150, 0.6),
            rule_row(inst, "R", "OEM|SUP-A|MAGNET", 2027, "base", 0, 90, 150, 0.6)]
    t = tables(inst, {"OFF-B": 1}, TINY_VOLUME, TINY_FLOWS, TINY_COSTS, rules=rows)
    report = check_tables(inst, t, 20_250_000.0, None)
    assert kinds(report) == {"supplier_share_max"}
    assert found(report, "supplier_share_max",
                 "R,OEM|SUP-B|MAGNET,2026,base").amount == pytest.approx(40)
    assert found(report, "supplier_share_max",
                 "R,OEM|SUP-B|MAGNET,2027,base").amount == pytest.approx(10)
    raw["rules"][0]["max_share"] = 1.0
    inst = make(raw)
    rows = [rule_row(inst, "R", "OEM|SUP-B|MAGNET", 2026, "base", 100, 100, 100, 1.0),
            rule_row(inst, "R", "OEM|SUP-B|MAGNET", 2027, "base", 100, 150, 150, 1.0)]
    t = tables(inst, {"OFF-B": 1}, TINY_VOLUME, TINY_FLOWS, TINY_COSTS, rules=rows)
    assert check_tables(inst, t, 20_250_000.0, None).ok


# --- a processing chain ----------------------------------------------------------------------
CHAIN = {
    "meta": {"name": "chain", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2026},
    "materials": [{"id": "OXIDE", "form": "oxide"}, {"id": "MAGNET", "form": "magnet"}],
    "facilities": [
        {"id": "OX", "company": "Ox Co", "country": "AU", "stage": "SEP_L", "product": "OXIDE",
         "capacity_t": 1000},
        {"id": "MAG", "company": "Mag Co", "country": "JP", "stage": "MAGNET",
         "product": "MAGNET", "capacity_t": 1000, "recipe": {"OXIDE": 0.5}, "opex_per_kg": 10},
    ],
    "buyers": [{"id": "OEM", "country": "US", "demand_t": {"MAGNET": 100}}],
    "offers": [{"id": "OFF-OX", "supplier": "OX", "material": "OXIDE", "first_year": 2026,
                "last_year": 2026, "max_t_per_year": 200, "price_per_kg": 50}],
}


def chain_plan(inst: Instance, oxide_t: float) -> dict[str, pd.DataFrame]:
    """Buy `oxide_t` of oxide, send it to MAG, make 100 t of magnet for OEM.
    Right plan (0.5 t oxide per t magnet): 50 t x 50,000 + 100 t x 10,000 = 3.5M."""
    flows = [("OEM", "OX", "MAG", 2026, oxide_t), ("OEM", "MAG", "OEM", 2026, 100.0)]
    costs = {"contract_payments": 50_000.0 * oxide_t, "operating_costs": 1_000_000.0}
    return tables(inst, {"OFF-OX": 1}, {("OFF-OX", "OEM", 2026): oxide_t}, flows, costs,
                  production=[("MAG", "OEM", 2026, 100.0)])


def test_processing_chain_passes():
    inst = make(CHAIN)
    t = chain_plan(inst, 50.0)
    assert list(t["production"][["inputs", "tag"]].iloc[0]) == ["OXIDE=SEP_L:AU",
                                                                 "SEP_L:AU|MAGNET:JP"]
    report = check_tables(inst, t, 3_500_000.0, None)
    assert report.violations == []
    assert report.cost_terms["operating_costs"] == pytest.approx(1_000_000)


def test_processing_chain_wrong_recipe_ratio():
    inst = make(CHAIN)
    report = check_tables(inst, chain_plan(inst, 100.0), 6_000_000.0, None)
    v = found(report, "facility_input_balance", "MAG,OEM,OXIDE,SEP_L:AU,2026,base")
    assert v.amount == pytest.approx(50)
    assert kinds(report) == {"facility_input_balance"}


def test_production_without_inputs_and_at_own_feed_facility():
    """OX has no recipe: its 'production' (combination '', tag = its own-feed tag) breaks the
    input balance; the 100 t it adds to OX's own-feed output may stay at the gate (free
    disposal: outflow <= made + bought), but 10 t more leaving OX than it made and sold is
    flagged by that amount."""
    inst = make(CHAIN)
    t = chain_plan(inst, 50.0)
    extra = t["production"].iloc[[0]].assign(facility="OX", inputs="", tag="SEP_L:AU",
                                             opex_per_kg=0.0, opex_cost=0.0)
    t["production"] = pd.concat([t["production"], extra], ignore_index=True)
    report = check_tables(inst, t, None, None)
    assert found(report, "facility_input_balance", "OX,OEM,2026,base").amount == 100
    assert not [v for v in report.violations if v.constraint == "facility_output_balance"]
    t = chain_plan(inst, 50.0)
    out_of_ox = t["flows"].index[t["flows"]["from_node"] == "OX"][0]
    t["flows"].loc[out_of_ox, "flow_t"] += 10
    report = check_tables(inst, t, None, None)
    assert found(report, "facility_output_balance", "OX,OEM,SEP_L:AU,2026,base").amount \
        == pytest.approx(10)


def test_flow_material_must_be_the_senders():
    inst = make(CHAIN)
    t = chain_plan(inst, 50.0)
    t["flows"].loc[0, "material"] = "MAGNET"  # OX sends OXIDE
    report = check_tables(inst, t, 3_500_000.0, None)
    assert report.violations == [found(report, "arc_allowed", "OEM,OX,MAG,2026,base")]


# --- the diamond: origin tags ----------------------------------------------------------------
DIAMOND = {
    "meta": {"name": "diamond", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2026},
    "country_groups": [{"id": "FOC", "members": ["CN", "RU"]}],
    "materials": [{"id": "OXIDE", "form": "oxide"}, {"id": "MAGNET", "form": "magnet"}],
    "facilities": [
        {"id": "SEP-AU", "company": "Aus Sep", "country": "AU", "stage": "SEP_L",
         "product": "OXIDE", "capacity_t": 1000, "feed_origin": {"MINE": "AU"}},
        {"id": "SEP-CN", "company": "Cn Sep", "country": "CN", "stage": "SEP_L",
         "product": "OXIDE", "capacity_t": 1000, "feed_origin": {"MINE": "CN"}},
        {"id": "REC-US", "company": "Rec Co", "country": "US", "stage": "RECYCLE",
         "product": "OXIDE", "capacity_t": 100},
        {"id": "MAG", "company": "Mag Co", "country": "JP", "stage": "MAGNET",
         "product": "MAGNET", "capacity_t": 1000, "recipe": {"OXIDE": 0.5}, "opex_per_kg": 10},
    ],
    "buyers": [{"id": "OEM", "country": "US", "demand_t": {"MAGNET": 100}},
               {"id": "DEF", "country": "US", "buyer_class": "defense",
                "demand_t": {"MAGNET": 0}}],
    "offers": [
        {"id": "O-AU", "supplier": "SEP-AU", "material": "OXIDE", "first_year": 2026,
         "last_year": 2026, "max_t_per_year": 200, "price_per_kg": 50},
        {"id": "O-CN", "supplier": "SEP-CN", "material": "OXIDE", "first_year": 2026,
         "last_year": 2026, "max_t_per_year": 200, "price_per_kg": 40},
        {"id": "O-REC", "supplier": "REC-US", "material": "OXIDE", "first_year": 2026,
         "last_year": 2026, "max_t_per_year": 10, "price_per_kg": 60},
    ],
}
OX_AU, OX_CN, OX_REC = "MINE:AU|SEP_L:AU", "MINE:CN|SEP_L:CN", "RECYCLE:US"
MAG_AU, MAG_CN = "MINE:AU|SEP_L:AU|MAGNET:JP", "MINE:CN|SEP_L:CN|MAGNET:JP"
MAG_REC = "MAGNET:JP|RECYCLE:US"
OFFER = {"SEP-AU": "O-AU", "SEP-CN": "O-CN", "REC-US": "O-REC"}
PRICE = {"SEP-AU": 50, "SEP-CN": 40, "REC-US": 60}


def diamond(rules: list[dict] = (), **changes) -> Instance:
    raw = copy.deepcopy(DIAMOND)
    raw["rules"] = list(rules)
    raw.update(changes)
    return make(raw)


def diamond_plan(inst: Instance, buys: dict[str, dict[str, float]] | None = None,
                 rules: list[dict] = (), penalty: float = 0.0) -> dict[str, pd.DataFrame]:
    """Each buyer buys oxide (t) from separators / the recycler; MAG turns every origin into
    magnet separately (0.5 t oxide per t), which goes to the buyer with its own tag. Default:
    OEM buys 30 t from SEP-AU (60 t magnet) and 20 t from SEP-CN (40 t magnet):
    30 x 50,000 + 20 x 40,000 = 2.3M contracts + 100 t x 10,000 opex = 3.3M."""
    buys = buys if buys is not None else {"OEM": {"SEP-AU": 30.0, "SEP-CN": 20.0}}
    volume, flows, made, pay, opex = {}, [], [], 0.0, 0.0
    for b, bought in buys.items():
        for sep, x in bought.items():
            ox, mag = own_tag(inst, sep), made_tag(inst, "MAG", {"OXIDE": own_tag(inst, sep)})
            volume[(OFFER[sep], b, 2026)] = x
            flows += [(b, sep, "MAG", 2026, x, ox), (b, "MAG", b, 2026, 2 * x, mag)]
            made.append(("MAG", b, 2026, 2 * x, {"OXIDE": ox}))
            pay += 1000 * PRICE[sep] * x
            opex += 10_000 * 2 * x
    delta = {y: (1 + inst.horizon.discount_rate) ** -(y - (inst.horizon.base_year or 2026))
             for y in (2026,)}
    costs = {"contract_payments": pay * delta[2026], "operating_costs": opex * delta[2026],
             "rule_violation_penalties": penalty}
    signed = {OFFER[sep]: 1 for bought in buys.values() for sep in bought}
    return tables(inst, signed, volume, flows, costs, production=made, rules=rules)


def test_diamond_tags_by_hand():
    """Two separators, one magnet maker: the magnet keeps each chain's origin apart."""
    inst = diamond()
    t = diamond_plan(inst)
    assert set(t["contracts"]["tag"]) == {OX_AU, OX_CN, OX_REC}
    assert sorted(t["production"]["tag"]) == [MAG_AU, MAG_CN]
    assert sorted(t["production"]["inputs"]) == [f"OXIDE={OX_AU}", f"OXIDE={OX_CN}"]
    origin = {(r["stage"], r["country"]): (r["tonnes"], r["share"])
              for r in t["origin"].to_dict("records")}
    assert origin == {("MINE", "AU"): (60, 0.6), ("SEP_L", "AU"): (60, 0.6),
                      ("MINE", "CN"): (40, 0.4), ("SEP_L", "CN"): (40, 0.4),
                      ("MAGNET", "JP"): (100, 1.0)}
    report = check_tables(inst, t, 3_300_000.0, None)
    assert report.violations == []


def test_diamond_mixed_origin_on_a_flow():
    """Averaging origins (a tag with both chains on MAG's 60 t) breaks the per-tag output
    balance twice and MAG cannot emit that tag."""
    inst = diamond()
    t = diamond_plan(inst)
    mixed = tag(*MAG_AU.split("|"), *MAG_CN.split("|"))
    row = t["flows"].index[(t["flows"]["tag"] == MAG_AU) & (t["flows"]["to_node"] == "OEM")]
    t["flows"].loc[row, "tag"] = mixed
    report = check_tables(inst, t, 3_300_000.0, None)
    assert found(report, "facility_output_balance",
                 f"MAG,OEM,{MAG_AU},2026,base").amount == pytest.approx(60)
    assert found(report, "facility_output_balance",
                 f"MAG,OEM,{mixed},2026,base").amount == pytest.approx(60)
    assert found(report, "origin_tag", f"OEM,MAG,OEM,{mixed},2026,base").amount == 60
    assert kinds(report) == {"facility_output_balance", "origin_tag", "table"}  # origin.csv


def test_diamond_wrong_production_output_tag():
    """The output of OXIDE=MINE:AU|SEP_L:AU at MAG must keep the MINE step."""
    inst = diamond()
    t = diamond_plan(inst)
    t["production"].loc[0, "tag"] = "SEP_L:AU|MAGNET:JP"
    report = check_tables(inst, t, 3_300_000.0, None)
    assert report.violations == [found(report, "origin_tag", "production.csv row 1")]


def test_diamond_combination_must_name_the_recipe():
    inst = diamond()
    t = diamond_plan(inst)
    t["production"].loc[0, "inputs"] = f"MAGNET={OX_AU}"
    report = check_tables(inst, t, 3_300_000.0, None)
    found(report, "origin_tag", "production.csv row 1")


def test_diamond_production_from_the_wrong_origin():
    """Production claims to use AU oxide for all 100 t: AU inflow 30 vs 50, CN inflow 20 vs 0,
    and the 40 t of CN-tagged magnet were never made."""
    inst = diamond()
    t = diamond_plan(inst)
    t["production"]["inputs"] = f"OXIDE={OX_AU}"
    t["production"]["tag"] = MAG_AU
    report = check_tables(inst, t, 3_300_000.0, None)
    assert found(report, "facility_input_balance",
                 f"MAG,OEM,OXIDE,{OX_AU},2026,base").amount == pytest.approx(20)
    assert found(report, "facility_input_balance",
                 f"MAG,OEM,OXIDE,{OX_CN},2026,base").amount == pytest.approx(20)
    assert found(report, "facility_output_balance",
                 f"MAG,OEM,{MAG_CN},2026,base").amount == pytest.approx(40)


def test_tag_text_must_be_canonical_and_own_feed():
    inst = diamond()
    t = diamond_plan(inst)
    t["flows"].loc[0, "tag"] = "SEP_L:AU|MINE:AU"  # stage order broken
    t["contracts"].loc[0, "tag"] = "SEP_L:AU"  # SEP-AU's own-feed tag has MINE:AU
    report = check_tables(inst, t, 3_300_000.0, None)
    found(report, "origin_tag", "flows.csv row 1")
    found(report, "origin_tag", "contracts.csv row 1")


def test_spot_flow_carries_the_markets_tag():
    """Tiny: SPOT has no feed_origin, so its tag is ''; 'MAGNET:CN' is not its tag."""
    inst = load_instance(TINY).instance
    t = tiny_optimum(inst)
    t["flows"].loc[2, "tag"] = "MAGNET:CN"
    t["spot"].loc[0, "tag"] = "MAGNET:CN"
    report = check_tables(inst, t, 20_250_000.0, None)
    assert found(report, "origin_tag", "OEM,SPOT,OEM,MAGNET:CN,2027,base").amount == 50
    found(report, "origin_tag", "spot.csv row 1")


def test_origin_table_row_wrong_or_missing():
    inst = diamond()
    t = diamond_plan(inst)
    rows = t["origin"]
    au = rows.index[(rows["stage"] == "MINE") & (rows["country"] == "AU")][0]
    t["origin"].loc[au, ["tonnes", "share"]] = [50.0, 0.5]
    report = check_tables(inst, t, 3_300_000.0, None)
    assert found(report, "table", f"origin.csv row {au + 1}").amount == pytest.approx(10)
    t = diamond_plan(inst)
    cn = t["origin"].index[(t["origin"]["stage"] == "MINE") & (t["origin"]["country"] == "CN")]
    t["origin"] = t["origin"].drop(index=cn).reset_index(drop=True)
    report = check_tables(inst, t, 3_300_000.0, None)
    assert report.violations == [found(report, "table", "origin.csv,OEM,MAGNET,2026,base,MINE,CN")]
    assert report.violations[0].amount == pytest.approx(40)


# --- the diamond: one satisfied and one violated plan per rule kind --------------------------
def check_rule(rule: dict, rows: list[tuple], buys=None, objective=3_300_000.0, penalty=0.0,
               **changes):
    """Check the diamond plan under one rule R; rows are (label, year, lhs, bound, base, s)
    for scenario 'base' (None year: a count row)."""
    inst = diamond([{"id": "R", **rule}], **changes)
    table = [rule_row(inst, "R", label, year, "base" if year else "", lhs, bound, base, s)
             for label, year, lhs, bound, base, s in rows]
    return check_tables(inst, diamond_plan(inst, buys, table, penalty), objective + penalty,
                        None)


def only(report, component: str, index: str, amount: float) -> None:
    assert report.violations == [found(report, component, index)]
    assert report.violations[0].amount == pytest.approx(amount)


def test_rule_max_suppliers():
    rule = {"kind": "max_suppliers", "max_count": 2, "scope": {"materials": ["OXIDE"]}}
    assert check_rule(rule, [("", None, 2, 2, None, None)]).ok
    rule["max_count"] = 1
    only(check_rule(rule, [("", None, 2, 1, None, None)]), "suppliers_max", "R", 1)


def test_rule_min_suppliers():
    rule = {"kind": "min_suppliers", "min_count": 2, "scope": {"materials": ["OXIDE"]}}
    assert check_rule(rule, [("", None, 2, 2, None, None)]).ok
    rule["min_count"] = 3
    only(check_rule(rule, [("", None, 2, 3, None, None)]), "suppliers_min", "R", 1)


def test_count_rule_default_materials_are_every_material():
    """formulation.md (max_suppliers): without scope.materials, offers of every material
    count, so the two signed oxide suppliers break a limit of one by one supplier."""
    rule = {"kind": "max_suppliers", "max_count": 1}
    only(check_rule(rule, [("", None, 2, 1, None, None)]), "suppliers_max", "R", 1)


def test_rule_max_supplier_share():
    """OEM buys 30 t from SEP-AU and 20 t from SEP-CN (no spot): base 50 t. Cap 0.6 -> 30 t
    holds; cap 0.5 -> 25 t: SEP-AU is 5 t over."""
    rule = {"kind": "max_supplier_share", "max_share": 0.6}
    rows = [("OEM|SEP-AU|OXIDE", 2026, 30, 30, 50, 0.6),
            ("OEM|SEP-CN|OXIDE", 2026, 20, 30, 50, 0.6)]
    assert check_rule(rule, rows).ok
    rule["max_share"] = 0.5
    rows = [("OEM|SEP-AU|OXIDE", 2026, 30, 25, 50, 0.5),
            ("OEM|SEP-CN|OXIDE", 2026, 20, 25, 50, 0.5)]
    only(check_rule(rule, rows), "supplier_share_max", "R,OEM|SEP-AU|OXIDE,2026,base", 5)


def test_rule_max_supplier_share_by_company():
    """SEP-CN belongs to 'Aus Sep' too: the company supplies 50 of 50 t, cap 0.6 -> 20 over."""
    facilities = copy.deepcopy(DIAMOND["facilities"])
    facilities[1]["company"] = "Aus Sep"
    rule = {"kind": "max_supplier_share", "max_share": 0.6, "by": "company"}
    report = check_rule(rule, [("OEM|Aus Sep|OXIDE", 2026, 50, 30, 50, 0.6)],
                        facilities=facilities)
    only(report, "supplier_share_max", "R,OEM|Aus Sep|OXIDE,2026,base", 20)


def test_rule_max_country_share():
    """Separation in AU 60 of 100 t, in CN 40: cap 0.6 holds, cap 0.5 -> AU 10 t over; with AU
    exempt only the CN row exists (40 <= 50), and an AU row in rules.csv is reported."""
    rule = {"kind": "max_country_share", "max_share": 0.6, "stages": ["SEP_L"]}
    rows = [("OEM|SEP_L|AU|MAGNET", 2026, 60, 60, 100, 0.6),
            ("OEM|SEP_L|CN|MAGNET", 2026, 40, 60, 100, 0.6)]
    assert check_rule(rule, rows).ok
    rule["max_share"] = 0.5
    rows = [("OEM|SEP_L|AU|MAGNET", 2026, 60, 50, 100, 0.5),
            ("OEM|SEP_L|CN|MAGNET", 2026, 40, 50, 100, 0.5)]
    only(check_rule(rule, rows), "country_share_max", "R,OEM|SEP_L|AU|MAGNET,2026,base", 10)
    rule["exempt_countries"] = ["AU"]
    assert check_rule(rule, rows[1:]).ok
    only(check_rule(rule, rows), "table", "rules.csv row 1", 1)


def test_rule_max_country_share_soft_is_discounted_and_weighted():
    """Soft cap 0.5 at 1,000 per t, base year 2025 at 10 %, scenarios 0.25 / 0.75: 10 t over
    in each scenario -> penalty (0.25 + 0.75) x 1,000 x 10 / 1.1."""
    changes = {"horizon": {"first_year": 2026, "last_year": 2026, "discount_rate": 0.1,
                           "base_year": 2025},
               "scenarios": [{"id": "lo", "probability": 0.25},
                             {"id": "hi", "probability": 0.75}]}
    inst = diamond([{"id": "R", "kind": "max_country_share", "max_share": 0.5,
                     "stages": ["SEP_L"], "hard": False, "penalty_per_unit": 1000}], **changes)
    rows = [rule_row(inst, "R", f"OEM|SEP_L|{cc}|MAGNET", 2026, s, x, 50, 100, 0.5)
            for s in ("lo", "hi") for cc, x in (("AU", 60), ("CN", 40))]
    penalty = 10_000 / 1.1
    t = diamond_plan(inst, rules=rows, penalty=penalty)
    report = check_tables(inst, t, 3_300_000 / 1.1 + penalty, None)
    assert report.violations == []
    assert report.cost_terms["rule_violation_penalties"] == pytest.approx(9_090.909090909)


def test_rule_min_content_share():
    """Qualifying (MINE and SEP_L in AU): 60 of 100 t. 0.6 holds; a 0.7 ramp is 10 t short;
    requiring a METAL step too, nothing qualifies (60 t short of 0.6)."""
    rule = {"kind": "min_content_share", "min_share": 0.6, "stages": ["MINE", "SEP_L"],
            "countries": ["AU"]}
    assert check_rule(rule, [("OEM|MAGNET", 2026, 60, 60, 100, 0.6)]).ok
    rule["min_share"] = {2026: 0.7}
    only(check_rule(rule, [("OEM|MAGNET", 2026, 60, 70, 100, 0.7)]),
         "content_share_min", "R,OEM|MAGNET,2026,base", 10)
    rule.update(min_share=0.6, stages=["SEP_L", "METAL"], countries=["AU", "JP"])
    only(check_rule(rule, [("OEM|MAGNET", 2026, 0, 60, 100, 0.6)]),
         "content_share_min", "R,OEM|MAGNET,2026,base", 60)


def test_rule_min_content_share_pooled_groups():
    """Pooled OEM + DEF (DEF demands nothing): one row 'pooled|MAGNET'; the group FOC makes
    the CN chain qualify as well: 100 of 100 t."""
    rule = {"kind": "min_content_share", "min_share": 0.9, "stages": ["SEP_L"],
            "countries": ["AU"], "groups": ["FOC"], "pooled": True}
    assert check_rule(rule, [("pooled|MAGNET", 2026, 100, 90, 100, 0.9)]).ok


def test_rule_exclusion():
    """No MINE or SEP_L step in FOC countries: the CN chain puts 40 t of excluded content at
    OEM; an all-AU plan (50 t oxide, 3.5M) holds, as does a rule from 2027."""
    rule = {"kind": "exclusion", "stages": ["MINE", "SEP_L"], "groups": ["FOC"]}
    only(check_rule(rule, [("OEM|MAGNET", 2026, 40, 0, None, None)]),
         "excluded_content_max", "R,OEM|MAGNET,2026,base", 40)
    assert check_rule(rule, [("OEM|MAGNET", 2026, 0, 0, None, None)],
                      buys={"OEM": {"SEP-AU": 50.0}}, objective=3_500_000.0).ok
    assert check_rule({**rule, "from_year": 2027}, []).ok


def test_rule_min_recycled_share():
    """10 % recycled: the default plan has none (10 t short); buying 5 t from REC-US (10 t of
    magnet 'MAGNET:JP|RECYCLE:US') instead of 5 t from SEP-AU holds."""
    rule = {"kind": "min_recycled_share", "min_share": 0.1}
    only(check_rule(rule, [("OEM|MAGNET", 2026, 0, 10, 100, 0.1)]),
         "recycled_share_min", "R,OEM|MAGNET,2026,base", 10)
    buys = {"OEM": {"SEP-AU": 25.0, "SEP-CN": 20.0, "REC-US": 5.0}}
    assert check_rule(rule, [("OEM|MAGNET", 2026, 10, 10, 100, 0.1)], buys=buys,
                      objective=3_350_000.0).ok


def test_rule_max_offtake_share():
    """DEF (class defense, 20 t) and OEM (100 t) both have magnet made at MAG: defense takes
    20 of 120 t. Cap 0.25 -> 30 holds; cap 0.1 -> 12: 8 t over."""
    buyers = copy.deepcopy(DIAMOND["buyers"])
    buyers[1]["demand_t"] = {"MAGNET": 20}
    buys = {"OEM": {"SEP-AU": 30.0, "SEP-CN": 20.0}, "DEF": {"SEP-AU": 10.0}}
    rule = {"kind": "max_offtake_share", "facilities": ["MAG"], "buyer_class": "defense",
            "max_share": 0.25}
    assert check_rule(rule, [("MAG", 2026, 20, 30, 120, 0.25)], buys=buys,
                      objective=4_000_000.0, buyers=buyers).ok
    rule["max_share"] = 0.1
    only(check_rule(rule, [("MAG", 2026, 20, 12, 120, 0.1)], buys=buys, objective=4_000_000.0,
                    buyers=buyers), "offtake_share_max", "R,MAG,2026,base", 8)


# --- contract economics: one correct and one mutated plan per term ---------------------------
ECON = {
    "meta": {"name": "econ", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2027},
    "country_groups": [{"id": "FOC", "members": ["CN", "RU"]}],
    "materials": [{"id": "MAGNET", "form": "magnet"}],
    "facilities": [
        {"id": f"F-{cc}", "company": f"{cc} Co", "country": cc, "stage": "MAGNET",
         "product": "MAGNET", "capacity_t": 1000} for cc in ("AU", "CN", "DE")],
    "buyers": [{"id": "OEM", "country": "US", "demand_t": {"MAGNET": 100}}],
    "spot_markets": [{"id": "SPOT", "material": "MAGNET", "origin": "CN", "price_per_kg": 95,
                      "unlimited": True}],
}
"""One US buyer of 100 t/yr of magnets, three own-feed magnet makers (AU, CN, DE) and a
Chinese spot market at 95 USD/kg; no freight, no discounting unless a test says so."""


def offer(oid: str, supplier: str = "F-DE", **terms) -> dict:
    return {"id": oid, "supplier": supplier, "material": "MAGNET", "first_year": 2026,
            "last_year": 2027, "max_t_per_year": 100, **terms}


def econ(offers: list[dict], **changes) -> Instance:
    raw = copy.deepcopy(ECON)
    raw["offers"] = offers
    for key, value in changes.items():
        raw[key] = value
    return make(raw)


def econ_plan(inst: Instance, takes: dict[tuple[str, int], float], costs: dict[str, float],
              spot: dict[int, float] | None = None,
              delivered: dict[tuple[str, int], float] | None = None,
              **kw) -> dict[str, pd.DataFrame]:
    """OEM commits `takes` (offer, year) -> t, takes delivery of them (or of `delivered`) and
    buys `spot` year -> t, in every scenario; every offer with a commitment is signed."""
    suppliers = {o.id: o.supplier for o in inst.offers}
    delivered = {**takes, **(delivered or {})}
    flows = [("OEM", suppliers[o], "OEM", t, x) for (o, t), x in delivered.items() if x > 0]
    flows += [("OEM", "SPOT", "OEM", t, x) for t, x in (spot or {}).items() if x > 0]
    extra = kw.pop("rows", {})
    rows = {(o, "OEM", t, "*"): {"delivered_t": x, **extra.get((o, t), {})}
            for (o, t), x in delivered.items()}
    signed = kw.pop("signed", {o: 1 for (o, _t), q in takes.items() if q > 0})
    volume = {(o, "OEM", t): q for (o, t), q in takes.items()}
    return tables(inst, signed, volume, flows, costs, rows=rows, **kw)


INDEX = {"id": "IDX", "price_per_kg": {2026: 50, 2027: 80}}
FULL = {("O", 2026): 100.0, ("O", 2027): 100.0}


def test_index_price_floor_binds_in_one_year_only():
    """p = I x 1.1 - 3: 2026 52 < floor 60 -> the buyer pays the floor (term 'floor');
    2027 85 -> 'index'. 100 t/yr: 6.0M + 8.5M. Writing 52 'index' for 2026 (floor ignored) is
    caught on the row's price, term and payment and on contract_payments."""
    inst = econ([offer("O", index="IDX", premium=0.1, adder_per_kg=-3, floor_per_kg=60)],
                price_indices=[INDEX])
    prices = {("O", 2026, "*"): (60.0, "floor"), ("O", 2027, "*"): (85.0, "index")}
    costs = {"contract_payments": 14_500_000.0}
    report = check_tables(inst, econ_plan(inst, FULL, costs, prices=prices), 14.5e6, None)
    assert report.violations == []
    prices[("O", 2026, "*")] = (52.0, "index")
    report = check_tables(inst, econ_plan(inst, FULL, costs, prices=prices), 14.5e6, None)
    messages = [v.message for v in report.of("table") if v.index == "contracts.csv row 1"]
    assert any("price_per_kg" in m for m in messages)
    assert any("price_term is 'index'" in m and "'floor'" in m for m in messages)
    assert any(m.startswith("payment") for m in messages)
    assert kinds(report) == {"table"}
    costs = {"contract_payments": 13_700_000.0}  # the plan's own (wrong) payments
    report = check_tables(inst, econ_plan(inst, FULL, costs, prices=prices), 13.7e6, None)
    assert found(report, "cost_term", "contract_payments").amount == pytest.approx(800_000)


def test_collar_upside_and_scenario_paths():
    """Floor 60, ceiling 100, 30 % of the index above 80 back to the buyer (who pays the
    floor). 'lo' follows the base path (70: 'index'), 'hi' its own: 2026 120 -> ceiling
    100 - 0.3 x 40 = 88 'ceiling+upside'; 2027 90 -> 90 - 3 = 87 'index+upside'.
    Expected payments 0.5 x 14M + 0.5 x (8.8M + 8.7M) = 15.75M."""
    scenarios = [{"id": "lo", "probability": 0.5}, {"id": "hi", "probability": 0.5}]
    index = {"id": "IDX", "price_per_kg": 70, "by_scenario": {"hi": {2026: 120, 2027: 90}}}
    inst = econ([offer("O", index="IDX", floor_per_kg=60, ceiling_per_kg=100,
                       upside_share=0.3, upside_above_per_kg=80)],
                price_indices=[index], scenarios=scenarios)
    prices = {("O", 2026, "lo"): (70.0, "index"), ("O", 2027, "lo"): (70.0, "index"),
              ("O", 2026, "hi"): (88.0, "ceiling+upside"),
              ("O", 2027, "hi"): (87.0, "index+upside")}
    costs = {"contract_payments": 15_750_000.0}
    report = check_tables(inst, econ_plan(inst, FULL, costs, prices=prices), 15.75e6, None)
    assert report.violations == []
    prices[("O", 2026, "hi")] = (100.0, "ceiling")  # upside forgotten under the ceiling
    t = econ_plan(inst, FULL, {"contract_payments": 16_350_000.0}, prices=prices)
    report = check_tables(inst, t, 16.35e6, None)
    row = t["contracts"].index[(t["contracts"]["year"] == 2026)
                               & (t["contracts"]["scenario"] == "hi")][0] + 1
    assert found(report, "table", f"contracts.csv row {row}").amount == pytest.approx(12)
    assert found(report, "cost_term", "contract_payments").amount == pytest.approx(600_000)


def test_third_party_floor_fiscal_cost():
    """Floor 60 paid by DOE, half the index above 70 returned to DOE. 2026: index 50 -> the
    buyer pays 50 and DOE 10/kg ('floor (third party)'); 2027: 80 -> the buyer pays 80 and
    DOE gets 5/kg back ('index+upside'). 100 t/yr: payments 13M (the objective); DOE's fiscal
    cost 1M - 0.5M = 0.5M, outside the objective."""
    inst = econ([offer("O", index="IDX", floor_per_kg=60, floor_paid_by="DOE",
                       upside_share=0.5, upside_above_per_kg=70)], price_indices=[INDEX])
    prices = {("O", 2026, "*"): (50.0, "floor (third party)", "DOE", 10.0),
              ("O", 2027, "*"): (80.0, "index+upside", "DOE", -5.0)}
    costs = {"contract_payments": 13_000_000.0}
    good = econ_plan(inst, FULL, costs, prices=prices, fiscal={"DOE": 500_000.0})
    report = check_tables(inst, good, 13e6, None)
    assert report.violations == []
    assert report.fiscal_costs == {"DOE": pytest.approx(500_000)}
    bad = econ_plan(inst, FULL, costs, prices=prices, fiscal={"DOE": 1_000_000.0})
    only(check_tables(inst, bad, 13e6, None), "fiscal_cost", "DOE", 500_000)
    report = check_tables(inst, good, 13.5e6, None)  # fiscal cost put in the objective
    only(report, "objective", "objective", 500_000)
    prices[("O", 2026, "*")] = (60.0, "floor")  # the buyer made to pay the floor
    report = check_tables(inst, econ_plan(inst, FULL, costs, prices=prices,
                                          fiscal={"DOE": 500_000.0}), 13e6, None)
    assert any("price_term" in v.message for v in report.of("table"))
    assert any("fiscal_payer" in v.message for v in report.of("table"))


ALL_UNITS = [{"from_t": 0, "discount": 0.0}, {"from_t": 50, "discount": 0.1}]


def test_all_units_tier():
    """All-units: 10 % off every tonne from 50 t. 60 t/yr at 70 (band 1) + 40 t spot:
    payments 8.4M, rebates 2 x 60 x 7,000 = 0.84M, spot 7.6M. Splitting 50 t into band 0 and
    10 t into band 1 spreads one year over two bands; tier label 0 does not hold 60 t."""
    inst = econ([offer("O", price_per_kg=70, tiers=ALL_UNITS)])
    takes = {("O", 2026): 60.0, ("O", 2027): 60.0}
    costs = {"contract_payments": 8_400_000.0, "volume_rebates": -840_000.0,
             "spot_purchases": 7_600_000.0}
    rows = {("O", t): {"tier": "1"} for t in (2026, 2027)}
    good = econ_plan(inst, takes, costs, spot={2026: 40.0, 2027: 40.0}, rows=dict(rows),
                     tiers=[("O", t, 1, 60.0, 0.1, 70.0) for t in (2026, 2027)])
    report = check_tables(inst, good, 15_160_000.0, None)
    assert report.violations == []
    assert report.cost_terms["volume_rebates"] == pytest.approx(-840_000)
    split = [("O", 2026, 0, 50.0, 0.0, 70.0), ("O", 2026, 1, 10.0, 0.1, 70.0),
             ("O", 2027, 1, 60.0, 0.1, 70.0)]
    costs = {**costs, "volume_rebates": -490_000.0}
    bad = econ_plan(inst, takes, costs, spot={2026: 40.0, 2027: 40.0}, rows=dict(rows),
                    tiers=split)
    report = check_tables(inst, bad, 15_510_000.0, None)
    assert kinds(report) == {"volume_tier_link"}
    assert [v.amount for v in report.violations] == pytest.approx([10, 40])  # spread; 10 < 50
    rows[("O", 2026)] = {"tier": "0"}
    report = check_tables(inst, econ_plan(inst, takes, costs, spot={2026: 40.0, 2027: 40.0},
                                          rows=rows, tiers=split), 15_510_000.0, None)
    assert "tier 0 covers 0-50 t" in found(report, "table", "contracts.csv row 1").message


def test_incremental_tier():
    """Incremental 0 / 10 % from 40 t / 20 % from 60 t, one year: 80 t fill bands 40, 20,
    20: rebate 70,000 x (0.1 x 20 + 0.2 x 20) = 420,000; payments 5.6M, spot 20 t 1.9M.
    Bands 30, 30, 20 use band 1 before band 0 is full and overfill band 1 (width 20)."""
    tiers = [{"from_t": 0, "discount": 0.0}, {"from_t": 40, "discount": 0.1},
             {"from_t": 60, "discount": 0.2}]
    inst = econ([offer("O", price_per_kg=70, tiers=tiers, tier_mode="incremental")],
                horizon={"first_year": 2026, "last_year": 2026})
    costs = {"contract_payments": 5_600_000.0, "volume_rebates": -420_000.0,
             "spot_purchases": 1_900_000.0}
    bands = [("O", 2026, 0, 40.0, 0.0, 70.0), ("O", 2026, 1, 20.0, 0.1, 70.0),
             ("O", 2026, 2, 20.0, 0.2, 70.0)]
    kw = {"spot": {2026: 20.0}, "rows": {("O", 2026): {"tier": "2"}}}
    good = econ_plan(inst, {("O", 2026): 80.0}, costs, tiers=bands, **copy.deepcopy(kw))
    assert check_tables(inst, good, 7_080_000.0, None).violations == []
    bands[0:2] = [("O", 2026, 0, 30.0, 0.0, 70.0), ("O", 2026, 1, 30.0, 0.1, 70.0)]
    costs["volume_rebates"] = -490_000.0
    bad = econ_plan(inst, {("O", 2026): 80.0}, costs, tiers=bands, **copy.deepcopy(kw))
    report = check_tables(inst, bad, 7_010_000.0, None)
    assert kinds(report) == {"volume_tier_link"}
    assert [v.amount for v in report.violations] == pytest.approx([10, 10])
    assert any("before band 0 is full" in v.message for v in report.violations)


def test_take_or_pay_shortfall():
    """Commit 100 t (minimum 100), take-or-pay 80 % with half the price per tonne short:
    take 50 t (3.5M), short 80 - 50 = 30 t (0.5 x 70,000 x 30 = 1.05M), 50 t spot (4.75M).
    F-DE's capacity of 60 t holds: delivered volume counts. A shortfall of 20 t is 10 t too
    little; delivering 110 t of a 100 t commitment is 10 t too much."""
    facilities = copy.deepcopy(ECON["facilities"])
    facilities[2]["capacity_t"] = 60
    inst = econ([offer("O", price_per_kg=70, min_t_per_year=100, take_or_pay_share=0.8,
                       shortfall_fraction=0.5)],
                horizon={"first_year": 2026, "last_year": 2026}, facilities=facilities)
    costs = {"contract_payments": 3_500_000.0, "take_or_pay_shortfall": 1_050_000.0,
             "spot_purchases": 4_750_000.0}
    plan = {"spot": {2026: 50.0}, "delivered": {("O", 2026): 50.0}}
    good = econ_plan(inst, {("O", 2026): 100.0}, costs,
                     rows={("O", 2026): {"shortfall_t": 30.0}}, **plan)
    report = check_tables(inst, good, 9_300_000.0, None)
    assert report.violations == []
    costs["take_or_pay_shortfall"] = 700_000.0
    bad = econ_plan(inst, {("O", 2026): 100.0}, costs,
                    rows={("O", 2026): {"shortfall_t": 20.0}}, **plan)
    only(check_tables(inst, bad, 8_950_000.0, None), "take_or_pay_shortfall_min",
         "O,OEM,2026,base", 10)
    t = copy.deepcopy(good)
    t["contracts"].loc[0, "delivered_t"] = 110.0
    report = check_tables(inst, t, None, None)
    assert found(report, "take_or_pay_delivery_max", "O,OEM,2026,base").amount == 10


def test_take_or_pay_only_where_agreed():
    """An offer without take-or-pay delivers what it commits where no scenario cuts its
    supplier (force_majeure_delivery with a = 1): 50 t of 100 is reported."""
    inst = econ([offer("O", price_per_kg=70)], horizon={"first_year": 2026, "last_year": 2026})
    costs = {"contract_payments": 3_500_000.0, "spot_purchases": 4_750_000.0}
    t = econ_plan(inst, {("O", 2026): 100.0}, costs, spot={2026: 50.0},
                  delivered={("O", 2026): 50.0})
    only(check_tables(inst, t, 8_250_000.0, None), "force_majeure_delivery", "O,OEM,2026,base",
         50)


def test_resale():
    """A 120 t minimum against 100 t of demand: the 20 t surplus is resold on SPOT at
    95 x (1 - 0.2) = 76: credit 1.52M against 8.4M of payments. Reselling 30 t leaves the
    buyer 10 t short; a market that takes no resale cannot be sold into."""
    markets = copy.deepcopy(ECON["spot_markets"])
    markets[0]["resale_haircut"] = 0.2
    markets.append({"id": "SPOT2", "material": "MAGNET", "origin": "JP", "price_per_kg": 90,
                    "unlimited": True})
    inst = econ([offer("O", price_per_kg=70, min_t_per_year=120, max_t_per_year=120)],
                horizon={"first_year": 2026, "last_year": 2026}, spot_markets=markets)
    costs = {"contract_payments": 8_400_000.0, "resale_credit": -1_520_000.0}
    good = econ_plan(inst, {("O", 2026): 120.0}, costs, resale=[("OEM", "SPOT", 2026, 20, 76)])
    report = check_tables(inst, good, 6_880_000.0, None)
    assert report.violations == []
    costs["resale_credit"] = -2_280_000.0
    bad = econ_plan(inst, {("O", 2026): 120.0}, costs, resale=[("OEM", "SPOT", 2026, 30, 76)])
    bad["unmet"][["unmet_t", "penalty"]] = 0.0  # the 10 t short are not owned up to
    only(check_tables(inst, bad, 6_120_000.0, None), "demand_balance", "OEM,MAGNET,2026,base",
         10)
    costs["resale_credit"] = -1_800_000.0
    bad = econ_plan(inst, {("O", 2026): 120.0}, costs, resale=[("OEM", "SPOT2", 2026, 20, 90)])
    only(check_tables(inst, bad, 6_600_000.0, None), "resale_allowed", "OEM,SPOT2,2026,base",
         20)


def test_stock():
    """The offer runs in 2026 only: buy 200 t then, hold 100 t into 2027 at 2 USD/kg-year:
    payments 14M + holding 0.2M. Holding 110 t leaves 2026 10 t short; a material without a
    holding cost cannot be stocked."""
    materials = [{"id": "MAGNET", "form": "magnet", "holding_cost_per_kg_year": 2}]
    inst = econ([offer("O", price_per_kg=70, last_year=2026, max_t_per_year=200)],
                materials=materials)
    costs = {"contract_payments": 14_000_000.0, "holding_costs": 200_000.0}
    good = econ_plan(inst, {("O", 2026): 200.0}, costs, stock=[("OEM", "MAGNET", 2026, 100, 2)])
    report = check_tables(inst, good, 14_200_000.0, None)
    assert report.violations == []
    costs["holding_costs"] = 220_000.0
    bad = econ_plan(inst, {("O", 2026): 200.0}, costs, stock=[("OEM", "MAGNET", 2026, 110, 2)])
    bad["unmet"][["unmet_t", "penalty"]] = 0.0
    only(check_tables(inst, bad, 14_220_000.0, None), "demand_balance", "OEM,MAGNET,2026,base",
         10)
    inst = econ([offer("O", price_per_kg=70, last_year=2026, max_t_per_year=200)])
    report = check_tables(inst, good, 14_200_000.0, None)
    assert found(report, "stock_allowed", "OEM,MAGNET,2026,base").amount == 100


def test_prepayment_credit_caps():
    """Prepayment 1M, half creditable: credits 0.3M (2026) + 0.2M (2027) reach the cap.
    0.3M + 0.3M exceed it by 0.1M. With 5 t taken in 2027 (payments 0.35M) a 0.4M credit
    exceeds that year's payments by 50,000."""
    inst = econ([offer("O", price_per_kg=70, prepayment=1_000_000,
                       prepayment_credit_share=0.5)])
    costs = {"contract_payments": 14_000_000.0, "prepayments": 1_000_000.0,
             "prepayment_credits": -500_000.0}
    good = econ_plan(inst, FULL, costs,
                     credits=[("O", 2026, "base", 300_000.0), ("O", 2027, "base", 200_000.0)])
    assert check_tables(inst, good, 14_500_000.0, None).violations == []
    costs["prepayment_credits"] = -600_000.0
    bad = econ_plan(inst, FULL, costs,
                    credits=[("O", 2026, "base", 300_000.0), ("O", 2027, "base", 300_000.0)])
    only(check_tables(inst, bad, 14_400_000.0, None), "prepayment_credit_total", "O,base",
         100_000)
    costs = {"contract_payments": 7_350_000.0, "prepayments": 1_000_000.0,
             "prepayment_credits": -500_000.0, "spot_purchases": 9_025_000.0}
    bad = econ_plan(inst, {("O", 2026): 100.0, ("O", 2027): 5.0}, costs, spot={2027: 95.0},
                    credits=[("O", 2026, "base", 100_000.0), ("O", 2027, "base", 400_000.0)])
    only(check_tables(inst, bad, 16_875_000.0, None), "prepayment_credit_max", "O,2027,base",
         50_000)


def test_start_window_and_term():
    """May start in 2026 or 2027 and runs one year; signed to start in 2027 at 10 % (base
    year 2026): 100 t x 70,000 / 1.1 + signing 100,000 / 1.1, 2026 from spot (9.5M).
    Taking volume in 2026 as well runs the contract outside its term; a start year outside
    the window or on an unsigned offer breaks contract_start_link."""
    inst = econ([offer("O", price_per_kg=70, start_years=[2026, 2027], term_years=1,
                       signing_cost=100_000)],
                horizon={"first_year": 2026, "last_year": 2027, "discount_rate": 0.1})
    costs = {"contract_payments": 7_000_000 / 1.1, "signing_costs": 100_000 / 1.1,
             "spot_purchases": 9_500_000.0}
    objective = 9_500_000 + 7_100_000 / 1.1
    good = econ_plan(inst, {("O", 2027): 100.0}, costs, spot={2026: 100.0}, start={"O": 2027})
    assert check_tables(inst, good, objective, None).violations == []
    costs = {"contract_payments": 7_000_000 * (1 + 1 / 1.1), "signing_costs": 100_000 / 1.1}
    bad = econ_plan(inst, FULL, costs, start={"O": 2027})
    report = check_tables(inst, bad, sum(costs.values()), None)
    only(report, "contract_volume_max", "O,2026", 100)
    assert "not running" in report.violations[0].message
    t = copy.deepcopy(good)
    t["offers"].loc[0, "start_year"] = 2025
    assert found(check_tables(inst, t, None, None), "contract_start_link", "O").amount == 1
    t = econ_plan(inst, {}, {"spot_purchases": 19_000_000 / 1.1 + 9_500_000 * (1 - 1 / 1.1)},
                  spot={2026: 100.0, 2027: 100.0}, signed={})
    t["offers"].loc[0, "start_year"] = 2026
    found(check_tables(inst, t, None, None), "contract_start_link", "O")


def test_stacked_tariffs():
    """FOC origin 25 % everywhere, plus CN -> US magnets 10 % in 2027 only (missing years 0),
    plus DE -> JP 50 % (not this buyer). 100 t from F-CN at 40 in 2026, 50 t in 2027 and
    50 t spot (CN) at 95: rates 0.25 then 0.35. Tariffs 0.25 x 4M + 0.35 x (2M + 4.75M)."""
    tariffs = [{"id": "T-FOC", "origin_groups": ["FOC"], "rate": 0.25},
               {"id": "T-CN", "origins": ["CN"], "destinations": ["US"],
                "materials": ["MAGNET"], "rate": {2027: 0.1}},
               {"id": "T-DE", "origins": ["DE"], "destinations": ["JP"], "rate": 0.5}]
    inst = econ([offer("O", "F-CN", price_per_kg=40), offer("D", price_per_kg=70)],
                tariffs=tariffs)
    costs = {"contract_payments": 6_000_000.0, "spot_purchases": 4_750_000.0,
             "tariffs": 3_362_500.0}
    rates = {("O", 2026): 0.25, ("O", 2027): 0.35, ("SPOT", 2027): 0.35}
    takes = {("O", 2026): 100.0, ("O", 2027): 50.0}
    good = econ_plan(inst, takes, costs, spot={2027: 50.0}, rates=rates)
    report = check_tables(inst, good, 14_112_500.0, None)
    assert report.violations == []
    rates = {("O", 2026): 0.25, ("O", 2027): 0.25, ("SPOT", 2027): 0.25}
    bad = econ_plan(inst, takes, {**costs, "tariffs": 2_687_500.0}, spot={2027: 50.0},
                    rates=rates)
    report = check_tables(inst, bad, 13_437_500.0, None)
    assert any("tariff_rate" in v.message for v in report.of("table")
               if v.index.startswith("contracts.csv"))
    assert any("tariff_rate" in v.message for v in report.of("table")
               if v.index == "spot.csv row 1")
    assert found(report, "cost_term", "tariffs").amount == pytest.approx(675_000)


def test_new_tables_may_be_missing_only_without_their_feature(tmp_path):
    """An older folder without tiers/credits/resale/stock files passes when the instance has
    none of those features; with tiers, a missing tiers.csv is reported."""
    inst = load_instance(TINY).instance
    write_folder(tmp_path / "old", tiny_optimum(inst), 20_250_000.0)
    for name in ("tiers", "credits", "resale", "stock"):
        (tmp_path / "old" / f"{name}.csv").unlink()
    assert check_folder(inst, tmp_path / "old").violations == []
    raw = tiny_raw()
    raw["offers"][0]["tiers"] = ALL_UNITS
    found(check_folder(make(raw), tmp_path / "old"), "table", "tiers.csv")


def test_committed_volume_is_first_stage():
    """volume_t is a commitment: different values in two scenarios are reported."""
    scenarios = [{"id": "lo", "probability": 0.5}, {"id": "hi", "probability": 0.5}]
    inst = econ([offer("O", price_per_kg=70)], scenarios=scenarios)
    t = econ_plan(inst, FULL, {"contract_payments": 14_000_000.0})
    hi = t["contracts"].index[t["contracts"]["scenario"] == "hi"][0]
    t["contracts"].loc[hi, "volume_t"] = 90.0
    found(check_tables(inst, t, None, None), "nonanticipativity", "O,OEM,2026")



# --- scenario data and risk ------------------------------------------------------------------
CUT = [{"id": "calm", "probability": 0.5},
       {"id": "cut", "probability": 0.5, "demand": [{"from_year": 2027, "multiplier": 1.5}],
        "spot": [{"origins": ["CN"], "from_year": 2027, "price_multiplier": 2}],
        "index_paths": {"IDX": 70}}]
"""From 2027 in 'cut', demand is half as large again and Chinese spot costs twice as much;
the index follows its own path there (70, over the index's by_scenario 60)."""


def cut_plan(inst: Instance, costs: dict[str, float], spot_price: float = 190.0,
             cut_spot: float = 50.0, **kw) -> dict[str, pd.DataFrame]:
    """100 t/yr from O (F-CN, 40 USD/kg) in both scenarios; in 'cut' 2027 also `cut_spot` t
    of spot at `spot_price`. Offer X (index-linked) is priced but not taken."""
    base = [("OEM", "F-CN", "OEM", t, 100.0) for t in (2026, 2027)]
    flows = {"calm": base, "cut": base + [("OEM", "SPOT", "OEM", 2027, cut_spot)]}
    prices = {("X", t, "calm"): (50.0, "index") for t in (2026, 2027)}
    prices |= {("X", t, "cut"): (70.0, "index") for t in (2026, 2027)}
    return tables(inst, {"O": 1}, {("O", "OEM", t): 100.0 for t in (2026, 2027)}, flows,
                  costs, prices={**prices, **kw.pop("prices", {})},
                  spot_prices={("SPOT", 2027, "cut"): spot_price},
                  demand={("OEM", "MAGNET", 2027, "cut"): 150.0}, **kw)


def test_scenario_changes_scale_demand_spot_capacity_and_index():
    """Contracts 8M; spot 0.5 x 50 t x 190,000 = 4.75M. Pricing the cut-scenario spot at the
    base 95, buying no spot for the larger demand, or the old index path, are caught; a
    capacity cut to 5 % for covered (FOC) origins from 2027 curtails F-CN's contract to 5 t in
    'cut' (force_majeure): delivering its 100 t is reported three ways (the delivery, the
    curtailed tonnes, and 50 t above F-CN's capacity)."""
    index = {"id": "IDX", "price_per_kg": 50, "by_scenario": {"cut": 60}}
    offers = [offer("O", "F-CN", price_per_kg=40), offer("X", index="IDX")]
    inst = econ(offers, scenarios=CUT, price_indices=[index])
    costs = {"contract_payments": 8_000_000.0, "spot_purchases": 4_750_000.0}
    report = check_tables(inst, cut_plan(inst, costs), 12_750_000.0, None)
    assert report.violations == []
    assert report.scenario_costs == {"calm": pytest.approx(8e6), "cut": pytest.approx(17.5e6)}
    t = cut_plan(inst, {**costs, "spot_purchases": 2_375_000.0}, spot_price=95.0)
    report = check_tables(inst, t, 10_375_000.0, None)
    assert "price_per_kg" in found(report, "table", "spot.csv row 1").message
    assert found(report, "cost_term", "spot_purchases").amount == pytest.approx(2_375_000)
    t = cut_plan(inst, {"contract_payments": 8_000_000.0}, cut_spot=0.0)
    t["unmet"][["unmet_t", "penalty"]] = 0.0
    only(check_tables(inst, t, 8e6, None), "demand_balance", "OEM,MAGNET,2027,cut", 50)
    t = cut_plan(inst, costs, prices={("X", 2026, "cut"): (60.0, "index")})
    only(check_tables(inst, t, 12_750_000.0, None), "table", "contracts.csv row 6", 10)
    cut = copy.deepcopy(CUT)
    cut[1]["capacity"] = [{"groups": ["FOC"], "from_year": 2027, "multiplier": 0.05}]
    inst = econ(offers, scenarios=cut, price_indices=[index])
    report = check_tables(inst, cut_plan(inst, costs), 12_750_000.0, None)
    assert kinds(report) == {"force_majeure_delivery", "table", "facility_capacity_max"}
    assert found(report, "force_majeure_delivery", "O,OEM,2027,cut").amount == pytest.approx(95)
    assert "curtailed_t" in found(report, "table", "contracts.csv row 4").message
    assert found(report, "facility_capacity_max", "F-CN,2027,cut").amount == pytest.approx(50)


def test_scenario_costs_table():
    """scenario_costs.csv: each term in each scenario (discounted, not weighted)."""
    index = {"id": "IDX", "price_per_kg": 50}
    inst = econ([offer("O", "F-CN", price_per_kg=40), offer("X", index="IDX")], scenarios=CUT,
                price_indices=[index])
    costs = {"contract_payments": 8_000_000.0, "spot_purchases": 4_750_000.0}
    rows = {(s, "contract_payments"): 8e6 for s in ("calm", "cut")}
    rows |= {("calm", "spot_purchases"): 0.0, ("cut", "spot_purchases"): 9_500_000.0}
    assert check_tables(inst, cut_plan(inst, costs, scenario_costs=rows), 12.75e6,
                        None).violations == []
    rows[("cut", "spot_purchases")] = 4_750_000.0
    only(check_tables(inst, cut_plan(inst, costs, scenario_costs=rows), 12.75e6, None),
         "scenario_cost", "cut,spot_purchases", 4_750_000)


def test_cvar_of_a_discrete_distribution():
    """Costs 3 and 13 with probability 1/2: CVaR_0.5 = 13; CVaR_0.25 = (0.5 x 13 + 0.25 x 3)
    / 0.75."""
    p = {"a": 0.5, "b": 0.5}
    assert cvar({"a": 3.0, "b": 13.0}, p, 0.5) == pytest.approx(13)
    assert cvar({"a": 3.0, "b": 13.0}, p, 0.25) == pytest.approx(7.25 / 0.75)


def test_risk_cvar_term():
    """Demand 50 or 150 t; commit 150 t take-or-pay (all of it, at full price): each scenario
    costs 9M (50 t taken + 100 t short, or 150 t taken). E = 9M, CVaR_0.5 = 9M; lambda = 1
    -> objective 18M. A risk term of 8M is 1M off; without lambda it is taken as reported."""
    scenarios = [{"id": "low", "probability": 0.5, "demand": [{"multiplier": 0.5}]},
                 {"id": "high", "probability": 0.5, "demand": [{"multiplier": 1.5}]}]
    inst = econ([offer("O", price_per_kg=60, max_t_per_year=500, take_or_pay_share=1.0)],
                horizon={"first_year": 2026, "last_year": 2026}, scenarios=scenarios)
    flows = {s: [("OEM", "F-DE", "OEM", 2026, x)] for s, x in (("low", 50.0), ("high", 150.0))}
    rows = {("O", "OEM", 2026, "low"): {"delivered_t": 50.0, "shortfall_t": 100.0}}
    costs = {"contract_payments": 6_000_000.0, "take_or_pay_shortfall": 3_000_000.0}

    def plan(risk: float) -> dict[str, pd.DataFrame]:
        return tables(inst, {"O": 1}, {("O", "OEM", 2026): 150.0}, flows, costs, rows=rows,
                      risk=risk, demand={("OEM", "MAGNET", 2026, "low"): 50.0,
                                         ("OEM", "MAGNET", 2026, "high"): 150.0})

    report = check_tables(inst, plan(9e6), 18e6, None, cvar_weight=1.0, cvar_alpha=0.5)
    assert report.violations == []
    assert report.cost_terms["risk_cvar"] == pytest.approx(9e6)
    only(check_tables(inst, plan(8e6), 18e6, None, cvar_weight=1.0, cvar_alpha=0.5),
         "cost_term", "risk_cvar", 1e6)
    assert check_tables(inst, plan(8e6), 17e6, None).violations == []


def test_cost_terms_follow_the_formulation_table():
    report = check_tables(load_instance(TINY).instance, tiny_optimum(), 20_250_000.0, None)
    assert tuple(report.cost_terms) == COST_TERMS


def test_every_registered_kind_and_term_has_a_checker_function():
    assert set(RULE_CHECKS) == set(RULE_KINDS)
    assert set(COST_CHECKS) == set(COST_TERMS)


def test_a_cost_term_without_a_checker_function_is_an_internal_error(monkeypatch):
    monkeypatch.delitem(COST_CHECKS, "freight")
    report = check_tables(load_instance(TINY).instance, tiny_optimum(), 20_250_000.0, None)
    assert report.violations == [found(report, "internal_error", "freight")]
    assert "freight" not in report.cost_terms


def test_a_rule_kind_without_a_checker_function_is_an_internal_error(monkeypatch):
    inst = with_rule()
    monkeypatch.delitem(RULE_CHECKS, "max_suppliers")
    report = check_tables(inst, two_supplier_plan(inst), 21_500_000.0, None)
    assert "no checker function" in found(report, "internal_error", "R1").message
    assert not report.of("suppliers_max")



# --- tables and folders ----------------------------------------------------------------------
def test_missing_column_and_negative_flow():
    inst = load_instance(TINY).instance
    t = tiny_optimum(inst)
    t["production"] = t["production"].drop(columns=["opex_cost"])
    t["flows"].loc[2, "flow_t"] = -5.0
    report = check_tables(inst, t, None, None)
    assert "opex_cost" in found(report, "table", "production.csv").message
    assert found(report, "nonnegativity", "flows.csv row 3").amount == pytest.approx(5)


def write_folder(out: Path, t: dict[str, pd.DataFrame], objective: float) -> None:
    """The tables, a summary, the plan.json that says what the tables say, and the marker of
    a finished run."""
    out.mkdir()
    for name, df in t.items():
        df.to_csv(out / f"{name}.csv", index=False)
    (out / "summary.json").write_text(json.dumps({"status": "optimal", "objective": objective}))
    (out / "plan.json").write_text(json.dumps(plan_of(t)))
    (out / "COMPLETE").write_text("{}\n")  # written last, as a finished run does


def plan_of(t: dict[str, pd.DataFrame]) -> dict[str, list]:
    offers, contracts = t.get("offers", pd.DataFrame()), t.get("contracts", pd.DataFrame())
    signed = [{"index": [o], "value": float(z)}
              for o, z in zip(offers.get("offer_id", []), offers.get("signed", []), strict=True)]
    volume = {(o, b, int(y)): float(q) for o, b, y, q in zip(
        contracts.get("offer_id", []), contracts.get("buyer", []), contracts.get("year", []),
        contracts.get("volume_t", []), strict=True)}
    return {"v_signed": signed,
            "v_volume_t": [{"index": list(k), "value": q} for k, q in volume.items()]}


def test_folder_round_trip_keeps_na_ids(tmp_path):
    """Buyer 'NA' and spot origin 'NA' (Namibia) must not turn into missing values, nor may
    the empty tag of a market without feed_origin."""
    raw = tiny_raw()
    raw["buyers"][0]["id"] = "NA"
    raw["spot_markets"][0]["origin"] = "NA"
    inst = make(raw)
    volume = {(o, "NA", t): v for (o, _b, t), v in TINY_VOLUME.items()}
    flows = [("NA", i, "NA", t, x) for _b, i, _j, t, x in TINY_FLOWS]
    write_folder(tmp_path / "out", tables(inst, {"OFF-B": 1}, volume, flows, TINY_COSTS),
                 20_250_000.0)
    report = check_folder(inst, tmp_path / "out")
    assert report.violations == []
    assert report.objective == pytest.approx(20_250_000.0)


def test_folder_with_missing_table(tmp_path):
    inst = load_instance(TINY).instance
    write_folder(tmp_path / "out", tiny_optimum(inst), 20_250_000.0)
    (tmp_path / "out" / "spot.csv").unlink()
    report = check_folder(inst, tmp_path / "out")
    found(report, "table", "spot.csv")
    found(report, "table", "spot.csv,SPOT,OEM,OEM,,2027,base")


def test_a_damaged_summary_is_one_clear_finding_not_a_crash(tmp_path):
    inst = load_instance(TINY).instance
    write_folder(tmp_path / "out", tiny_optimum(inst), 20_250_000.0)
    summary = tmp_path / "out" / "summary.json"
    summary.write_text(summary.read_text() + "}")
    report = check_folder(inst, tmp_path / "out")
    assert report.status == "unreadable" and kinds(report) == {"summary"}
    assert "not readable JSON" in report.note


def test_a_folder_of_another_instance_is_one_mismatch(tmp_path):
    inst = load_instance(TINY).instance
    write_folder(tmp_path / "out", tiny_optimum(inst), 20_250_000.0)
    summary = tmp_path / "out" / "summary.json"
    data = json.loads(summary.read_text())
    summary.write_text(json.dumps({**data, "instance_sha256": "a" * 64}))
    report = check_folder(inst, tmp_path / "out", sha256="b" * 64)
    assert report.status == "other_instance" and len(report.violations) == 1
    assert check_folder(inst, tmp_path / "out", sha256="a" * 64).violations == []


def test_a_folder_without_a_plan_says_so(tmp_path):
    inst = load_instance(TINY).instance
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.json").write_text(json.dumps(
        {"status": "no_solution", "objective": None, "message": "stopped by the time limit"}))
    (tmp_path / "out" / "COMPLETE").write_text("{}")
    report = check_folder(inst, tmp_path / "out")
    assert report.status == "no_plan" and report.violations == []
    assert "no plan" in report.note and "time limit" in report.note


def test_summary_numbers_are_checked(tmp_path):
    """A minimisation's bound above its objective, a gap that is not theirs, and 'optimal'
    with a gap above the one asked for are each reported."""
    inst = load_instance(TINY).instance
    write_folder(tmp_path / "out", tiny_optimum(inst), 20_250_000.0)
    summary = tmp_path / "out" / "summary.json"
    base_ = json.loads(summary.read_text())
    summary.write_text(json.dumps({**base_, "bound": 20_300_000.0, "mip_gap": 0.5,
                                   "options": {"mip_gap": 1e-6}}))
    report = check_folder(inst, tmp_path / "out")
    assert {v.index for v in report.of("summary")} == {
        "summary.json,bound", "summary.json,mip_gap", "summary.json,status"}
    summary.write_text(json.dumps({**base_, "bound": 20_250_000.0 - 1.0, "mip_gap": 1 / 20_250_000,
                                   "options": {"mip_gap": 1e-6}}))
    assert check_folder(inst, tmp_path / "out").of("summary") == []


def test_plan_json_must_say_what_the_tables_say(tmp_path):
    """evaluate reads plan.json: an offer signed in the tables but not there, or another
    volume, is a violation; a missing plan.json too."""
    inst = load_instance(TINY).instance
    write_folder(tmp_path / "out", tiny_optimum(inst), 20_250_000.0)
    path = tmp_path / "out" / "plan.json"
    plan = json.loads(path.read_text())
    plan["v_signed"] = [{**e, "value": 0.0} for e in plan["v_signed"]]
    plan["v_volume_t"][0]["value"] += 5
    path.write_text(json.dumps(plan))
    report = check_folder(inst, tmp_path / "out")
    assert kinds(report) == {"plan.json"}
    assert any(v.index == "plan.json,v_signed[OFF-B]" for v in report.violations)
    assert any(v.index.startswith("plan.json,v_volume_t[") for v in report.violations)
    path.unlink()
    assert {v.index for v in check_folder(inst, tmp_path / "out").violations} == {"plan.json"}


def test_folder_of_the_diamond_with_rules(tmp_path):
    inst = diamond([{"id": "R", "kind": "max_country_share", "max_share": 0.6,
                     "stages": ["SEP_L"]}])
    rows = [rule_row(inst, "R", "OEM|SEP_L|AU|MAGNET", 2026, "base", 60, 60, 100, 0.6),
            rule_row(inst, "R", "OEM|SEP_L|CN|MAGNET", 2026, "base", 40, 60, 100, 0.6)]
    write_folder(tmp_path / "out", diamond_plan(inst, rules=rows), 3_300_000.0)
    assert check_folder(inst, tmp_path / "out").violations == []


# --- the real solver, through the CLI only ---------------------------------------------------
CLI_INSTANCE = {
    **copy.deepcopy(DIAMOND),
    "horizon": {"first_year": 2026, "last_year": 2027, "discount_rate": 0.05},
    "buyers": [{"id": "OEM", "country": "US", "demand_t": {"MAGNET": 100}},
               {"id": "DEF", "country": "US", "buyer_class": "defense",
                "demand_t": {"MAGNET": 20}}],
    "offers": [{**o, "last_year": 2027} for o in DIAMOND["offers"]] + [
        {"id": "O-IDX", "supplier": "SEP-AU", "material": "OXIDE", "first_year": 2026,
         "last_year": 2027, "max_t_per_year": 40, "index": "NDPR", "premium": 0.05,
         "floor_per_kg": 38, "ceiling_per_kg": 60, "upside_share": 0.2,
         "upside_above_per_kg": 50},
        {"id": "O-3P", "supplier": "SEP-CN", "material": "OXIDE", "first_year": 2026,
         "last_year": 2027, "max_t_per_year": 30, "index": "NDPR", "adder_per_kg": -15,
         "floor_per_kg": 42, "floor_paid_by": "DOE", "upside_share": 0.5,
         "upside_above_per_kg": 60},
        {"id": "O-TIER", "supplier": "SEP-AU", "material": "OXIDE", "first_year": 2026,
         "last_year": 2027, "max_t_per_year": 60, "price_per_kg": 54,
         "tiers": [{"from_t": 0, "discount": 0.0}, {"from_t": 20, "discount": 0.1}],
         "start_years": [2026, 2027], "term_years": 1, "signing_cost": 10000},
    ],
    "price_indices": [{"id": "NDPR", "price_per_kg": {2026: 35, 2027: 40},
                       "by_scenario": {"hi": {2026: 60, 2027: 75}}}],
    "tariffs": [{"id": "T-FOC", "origin_groups": ["FOC"], "rate": 0.25},
                {"id": "T-CN", "origins": ["CN"], "destinations": ["US"], "rate": {2027: 0.1}}],
    "spot_markets": [{"id": "SPOT", "material": "MAGNET", "origin": "CN", "price_per_kg": 26,
                      "unlimited": True, "resale_haircut": 0.5,
                      "feed_origin": {"MINE": "CN", "SEP_L": "CN", "MAGNET": "CN"}}],
    "scenarios": [{"id": "lo", "probability": 0.5}, {"id": "hi", "probability": 0.5}],
    "rules": [
        {"id": "NS", "kind": "max_suppliers", "max_count": 3,
         "scope": {"materials": ["OXIDE", "MAGNET"]}},
        {"id": "SS", "kind": "max_supplier_share", "max_share": 0.8, "hard": False,
         "penalty_per_unit": 500},
        {"id": "CS", "kind": "max_country_share", "max_share": 0.7, "stages": ["SEP_L"],
         "pooled": True, "hard": False, "penalty_per_unit": 3000},
        {"id": "MC", "kind": "min_content_share", "min_share": {2026: 0.3, 2027: 0.5},
         "stages": ["MINE", "SEP_L"], "countries": ["AU", "US"], "scope": {"buyers": ["OEM"]}},
        {"id": "EX", "kind": "exclusion", "stages": ["MINE", "SEP_L", "MAGNET"],
         "groups": ["FOC"], "scope": {"buyers": ["DEF"]}},
        {"id": "RC", "kind": "min_recycled_share", "min_share": 0.05, "hard": False,
         "penalty_per_unit": 20000},
        {"id": "OT", "kind": "max_offtake_share", "facilities": ["MAG"],
         "buyer_class": "defense", "max_share": 0.5},
    ],
}
"""Every rule kind on the diamond, with all demand servable (no semantics the formulation
leaves open: count rules name their materials, no unmet demand under a country cap), plus
contract economics: an index-linked offer with a collar and upside (scenario paths), one
whose floor a third party pays, a tiered offer with a start window, stacked tariffs on
Chinese supply and resale into the spot market."""


def test_cli_solution_passes_the_checker(tmp_path):
    exe = Path(sys.executable).parent / "offtake"
    if not exe.exists() and shutil.which("offtake") is None:
        pytest.skip("the offtake CLI is not installed")
    path = tmp_path / "inst.yaml"
    path.write_text(yaml.safe_dump(CLI_INSTANCE, sort_keys=False))
    out = tmp_path / "out"
    run = subprocess.run([str(exe if exe.exists() else "offtake"), "solve", str(path), "--out",
                          str(out)], capture_output=True, text=True, timeout=600)
    assert (out / "rules.csv").exists(), run.stdout + run.stderr
    inst = load_instance(path).instance
    report = check_folder(inst, out)
    assert report.violations == [], [str(v) for v in report.violations]
    flows = pd.read_csv(out / "flows.csv", dtype=str, keep_default_na=False)
    assert set(flows["tag"]) <= {OX_AU, OX_CN, OX_REC, MAG_AU, MAG_CN, MAG_REC,
                                 "MINE:CN|SEP_L:CN|MAGNET:CN"}
    assert set(pd.read_csv(out / "rules.csv")["rule_id"]) >= {"NS", "MC", "OT"}
    contracts = pd.read_csv(out / "contracts.csv", keep_default_na=False)
    taken = contracts[contracts["delivered_t"] > 0]
    assert {"fixed", "index"} <= {term.split("+")[0] for term in taken["price_term"]}
    assert any(term.startswith("floor") for term in taken["price_term"])
    tariff = contracts["tariff"].sum() + pd.read_csv(out / "spot.csv")["tariff"].sum()
    assert tariff > 0 and report.cost_terms["tariffs"] > 0


# --- independence ----------------------------------------------------------------------------
ALLOWED_IMPORTS = {"offtake.domain.schema", "offtake.domain.findings", "offtake.io.loader",
                   "offtake.domain.network", "offtake.domain.registry"}
ALLOWED_THIRD_PARTY = {"pandas", "numpy"}


def forbidden_imports(source: str) -> list[str]:
    """Imports in `source` outside schema, findings, io, network.at, the registry, the
    checker's own modules (imported absolutely), pandas, numpy and the stdlib."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [("." * node.level + (node.module or ""), [a.name for a in node.names])]
        else:
            continue
        for module, names in modules:
            top = module.split(".")[0]
            if top == "offtake" or module.startswith("."):
                own = module == "offtake.check" or module.startswith("offtake.check.")
                ok = own or (module in ALLOWED_IMPORTS
                             and (module != "offtake.domain.network" or names == ["at"]))
            else:
                ok = top in ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names
            if not ok:
                bad.append(f"{module} {names or ''}".strip())
    return bad


def test_checker_is_independent_of_the_model():
    """The checker package imports only schema, findings, io, network.at, the registry, its
    own modules, pandas, numpy and the stdlib, and names none of the model's modules (not even
    in a string)."""
    files = sorted(CHECK_DIR.glob("*.py"))
    assert files
    model_side = r"(formulation|solvers|results|pipeline|analysis|runtime|report|apps)"
    for path in files:
        source = path.read_text(encoding="utf-8")
        assert forbidden_imports(source) == [], path.name
        assert re.findall(rf"offtake[./]{model_side}\b|domain[./](origin|economics)\b"
                          rf"|\b(model|data|highs|ruledata|economics|origin)\.py\b",
                          source) == [], path.name


@pytest.mark.parametrize("line", [
    "from offtake.formulation.model import build_model", "import offtake.formulation.data",
    "import offtake.results.tables as results", "from offtake.domain.network import effective_arcs",
    "from .solve import solve", "import pyomo.environ as pyo",
    "from offtake.domain.origin import canonical_tag", "import offtake.domain.origin",
    "from offtake.formulation.ruledata import rule_rows",
    "from offtake.formulation import ruledata",
    "from .origin import tags", "from offtake.pipeline.run import solve_instance",
    "from offtake.domain.economics import unit_price", "import offtake.domain.economics",
    "from offtake.domain import economics", "from .economics import tariff_rate",
])
def test_import_guard_catches(line):
    assert forbidden_imports(line) != []


def test_binding_flags_and_shadow_price_signs_are_checked(tmp_path):
    """rules.csv's binding column follows formulation.md (slack 0 and more than 0 <= 0, or a
    price), and a shadow price is never negative: a flipped flag and a negative price are
    each reported; the table as written passes."""
    inst = diamond([{"id": "R", "kind": "max_country_share", "max_share": 0.6,
                     "stages": ["SEP_L"]}])
    rows = [rule_row(inst, "R", "OEM|SEP_L|AU|MAGNET", 2026, "base", 60, 60, 100, 0.6),
            rule_row(inst, "R", "OEM|SEP_L|CN|MAGNET", 2026, "base", 40, 60, 100, 0.6)]
    assert rows[0]["binding"] and not rows[1]["binding"]
    write_folder(tmp_path / "ok", diamond_plan(inst, rules=rows), 3_300_000.0)
    assert check_folder(inst, tmp_path / "ok").violations == []
    rows[0]["binding"], rows[1]["shadow_price"] = False, -5.0
    write_folder(tmp_path / "bad", diamond_plan(inst, rules=rows), 3_300_000.0)
    messages = [v.message for v in check_folder(inst, tmp_path / "bad").violations]
    assert any("binding is False" in m for m in messages), messages
    assert any("shadow_price -5 is negative" in m for m in messages), messages
