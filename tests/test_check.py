"""The independent checker (`offtake.check`) on result tables built by hand.

The plans below are derived by hand, never solved: the tiny instance's optimum is in
`instances/tiny_two_offers.yaml` (sign OFF-B, 100 t/yr from SUP-B, 50 t spot in 2027,
objective 20,250,000 USD). The diamond network (two separators in AU and CN feeding one magnet
maker in JP, plus a US recycler) carries origin tags and every procurement rule kind. Each
mutation breaks one rule and the test asserts that the checker names it with the formulation's
component name and the right amount. One test runs the real solver, only through the CLI.
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

from offtake.check import TABLE_COLUMNS, Violation, check_folder, check_tables
from offtake.io import load_instance, read_yaml
from offtake.network import at
from offtake.schema import Instance

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "instances" / "tiny_two_offers.yaml"
CHECK_PY = ROOT / "src" / "offtake" / "check.py"

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
    flows: list[Flow],
    costs: dict[str, float],
    production: list[Made] = (),
    freight: dict[tuple[str, str], float] | None = None,
    rules: list[dict] = (),
) -> dict[str, pd.DataFrame]:
    """Result tables of a plan, for every scenario of `inst` (the same plan in each)."""
    freight = freight or {}
    scenarios = [s.id for s in inst.scenarios]
    offers = [{"offer_id": o.id, "supplier": o.supplier, "material": o.material,
               "signed": signed.get(o.id, 0), "signing_cost": o.signing_cost,
               "signing_year": o.first_year} for o in inst.offers]
    company = {f.id: f.company for f in inst.facilities}
    contracts = [{"offer_id": o.id, "supplier": o.supplier, "company": company[o.supplier],
                  "material": o.material, "buyer": b.id, "year": t, "signed": signed.get(o.id, 0),
                  "volume_t": volume.get((o.id, b.id, t), 0.0),
                  "price_per_kg": at(o.price_per_kg, t),
                  "payment": 1000 * at(o.price_per_kg, t) * volume.get((o.id, b.id, t), 0.0),
                  "tag": own_tag(inst, o.supplier)}
                 for o in inst.offers for b in inst.buyers
                 for t in range(o.first_year, o.last_year + 1)]
    flow_rows, spot_rows = [], []
    markets = {k.id: k for k in inst.spot_markets}
    for s in scenarios:
        for fl in flows:
            b, i, j, t, x = fl[:5]
            fr, tg = freight.get((i, j), 0.0), flow_tag(inst, fl, flows)
            flow_rows.append({"buyer": b, "from_node": i, "to_node": j,
                              "material": sender(inst, i), "tag": tg, "year": t, "scenario": s,
                              "flow_t": x, "freight_per_kg": fr, "freight_cost": 1000 * fr * x})
            if i in markets:
                price = at(markets[i].price_per_kg, t)
                spot_rows.append({"market": i, "material": markets[i].material,
                                  "origin": markets[i].origin, "tag": tg, "buyer": b,
                                  "to_node": j, "year": t, "scenario": s, "volume_t": x,
                                  "price_per_kg": price, "cost": 1000 * price * x})
    return {
        "offers": frame("offers", offers),
        "contracts": frame("contracts", contracts),
        "flows": frame("flows", flow_rows),
        "production": frame("production", production_rows(inst, production, flows, scenarios)),
        "spot": frame("spot", spot_rows),
        "unmet": frame("unmet", unmet_rows(inst, flows, scenarios)),
        "origin": frame("origin", origin_rows(flow_rows)),
        "costs": frame("costs", [{"term": k, "value": v} for k, v in costs.items()]),
        "rules": frame("rules", list(rules)),
    }


def production_rows(inst: Instance, production: list[Made], flows: list[Flow],
                    scenarios: list[str]) -> list[dict]:
    facilities = {f.id: f for f in inst.facilities}
    rows = []
    for s in scenarios:
        for made in production:
            f, b, t, p = made[:4]
            inputs = made[4] if len(made) > 4 else default_inputs(inst, f, b, t, flows)
            opex = at(facilities[f].opex_per_kg, t)
            rows.append({"facility": f, "buyer": b, "inputs": combination(inputs),
                         "tag": made_tag(inst, f, inputs), "year": t, "scenario": s,
                         "production_t": p, "opex_per_kg": opex, "opex_cost": 1000 * opex * p})
    return rows


def unmet_rows(inst: Instance, flows: list, scenarios: list[str]) -> list[dict]:
    """One row per positive demand; unmet = demand - delivered (never below zero)."""
    rows = []
    penalty = {m.id: m.unmet_penalty_per_kg for m in inst.materials}
    for s in scenarios:
        for b in inst.buyers:
            for k, series in b.demand_t.items():
                for t in inst.horizon.years:
                    d = at(series, t)
                    got = sum(fl[4] for fl in flows
                              if fl[0] == b.id and fl[2] == b.id and fl[3] == t
                              and sender(inst, fl[1]) == k)
                    u = max(0.0, d - got)
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
            "violation": max(0.0, -slack), "binding": abs(slack) < 1e-9, "hard": rule.hard,
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
    input balance and adds 100 t to its own-feed outflow."""
    inst = make(CHAIN)
    t = chain_plan(inst, 50.0)
    extra = t["production"].iloc[[0]].assign(facility="OX", inputs="", tag="SEP_L:AU",
                                             opex_per_kg=0.0, opex_cost=0.0)
    t["production"] = pd.concat([t["production"], extra], ignore_index=True)
    report = check_tables(inst, t, None, None)
    assert found(report, "facility_input_balance", "OX,OEM,2026,base").amount == 100
    assert found(report, "facility_output_balance", "OX,OEM,SEP_L:AU,2026,base").amount == 100


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
    out.mkdir()
    for name, df in t.items():
        df.to_csv(out / f"{name}.csv", index=False)
    (out / "summary.json").write_text(json.dumps({"status": "optimal", "objective": objective}))


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
    "offers": [{**o, "last_year": 2027} for o in DIAMOND["offers"]],
    "spot_markets": [{"id": "SPOT", "material": "MAGNET", "origin": "CN", "price_per_kg": 45,
                      "unlimited": True,
                      "feed_origin": {"MINE": "CN", "SEP_L": "CN", "MAGNET": "CN"}}],
    "scenarios": [{"id": "lo", "probability": 0.5}, {"id": "hi", "probability": 0.5}],
    "rules": [
        {"id": "NS", "kind": "max_suppliers", "max_count": 2,
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
leaves open: count rules name their materials, no unmet demand under a country cap)."""


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


# --- independence ----------------------------------------------------------------------------
ALLOWED_IMPORTS = {"offtake.schema", "offtake.findings", "offtake.io", "offtake.network"}
ALLOWED_THIRD_PARTY = {"pandas", "numpy"}


def forbidden_imports(source: str) -> list[str]:
    """Imports in `source` outside schema, findings, io, network.at, pandas, numpy, stdlib."""
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
                ok = module in ALLOWED_IMPORTS and (module != "offtake.network" or names == ["at"])
            else:
                ok = top in ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names
            if not ok:
                bad.append(f"{module} {names or ''}".strip())
    return bad


def test_check_py_is_independent_of_the_model():
    """check.py imports only schema, findings, io, network.at, pandas, numpy and the stdlib,
    and names none of the model's modules (not even in a string)."""
    source = CHECK_PY.read_text(encoding="utf-8")
    assert forbidden_imports(source) == []
    model_side = "(model|data|solve|results|origin|ruledata|pipeline)"
    assert re.findall(rf"offtake[./]{model_side}\b|\b{model_side}\.py\b", source) == []


@pytest.mark.parametrize("line", [
    "from offtake.model import build_model", "import offtake.data",
    "from offtake import results", "from offtake.network import effective_arcs",
    "from .solve import solve", "import pyomo.environ as pyo",
    "from offtake.origin import canonical_tag", "import offtake.origin",
    "from offtake.ruledata import rule_rows", "from offtake import ruledata",
    "from .origin import tags", "from offtake.pipeline import solve_instance",
])
def test_import_guard_catches(line):
    assert forbidden_imports(line) != []
