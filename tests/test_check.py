"""The independent checker (`offtake.check`) on result tables built by hand.

The plans below are derived by hand, never solved: the tiny instance's optimum is in
`instances/tiny_two_offers.yaml` (sign OFF-B, 100 t/yr from SUP-B, 50 t spot in 2027,
objective 20,250,000 USD). Each mutation breaks one rule and the test asserts that the checker
names it with the formulation's component name and the right amount.
"""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import pandas as pd
import pytest

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


def tables(
    inst: Instance,
    signed: dict[str, int],
    volume: dict[tuple[str, str, int], float],
    flows: list[tuple[str, str, str, int, float]],
    costs: dict[str, float],
    production: list[tuple[str, str, int, float]] = (),
    freight: dict[tuple[str, str], float] | None = None,
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
                  "payment": 1000 * at(o.price_per_kg, t) * volume.get((o.id, b.id, t), 0.0)}
                 for o in inst.offers for b in inst.buyers
                 for t in range(o.first_year, o.last_year + 1)]
    flow_rows, spot_rows = [], []
    markets = {k.id: k for k in inst.spot_markets}
    for s in scenarios:
        for b, i, j, t, x in flows:
            fr = freight.get((i, j), 0.0)
            flow_rows.append({"buyer": b, "from_node": i, "to_node": j,
                              "material": sender(inst, i), "year": t, "scenario": s,
                              "flow_t": x, "freight_per_kg": fr, "freight_cost": 1000 * fr * x})
            if i in markets:
                price = at(markets[i].price_per_kg, t)
                spot_rows.append({"market": i, "material": markets[i].material,
                                  "origin": markets[i].origin, "buyer": b, "to_node": j,
                                  "year": t, "scenario": s, "volume_t": x,
                                  "price_per_kg": price, "cost": 1000 * price * x})
    facilities = {f.id: f for f in inst.facilities}
    prod_rows = [{"facility": f, "buyer": b, "year": t, "scenario": s, "production_t": p,
                  "opex_per_kg": at(facilities[f].opex_per_kg, t),
                  "opex_cost": 1000 * at(facilities[f].opex_per_kg, t) * p}
                 for s in scenarios for f, b, t, p in production]
    return {
        "offers": frame("offers", offers),
        "contracts": frame("contracts", contracts),
        "flows": frame("flows", flow_rows),
        "production": frame("production", prod_rows),
        "spot": frame("spot", spot_rows),
        "unmet": frame("unmet", unmet_rows(inst, flows, scenarios)),
        "costs": frame("costs", [{"term": k, "value": v} for k, v in costs.items()]),
        "rules": frame("rules", [{"rule_id": r.id, "kind": r.kind, "hard": r.hard}
                                 for r in inst.rules]),
    }


def unmet_rows(inst: Instance, flows: list, scenarios: list[str]) -> list[dict]:
    """One row per positive demand; unmet = demand - delivered (never below zero)."""
    rows = []
    penalty = {m.id: m.unmet_penalty_per_kg for m in inst.materials}
    for s in scenarios:
        for b in inst.buyers:
            for k, series in b.demand_t.items():
                for t in inst.horizon.years:
                    d = at(series, t)
                    got = sum(x for bb, i, j, tt, x in flows
                              if bb == b.id and j == b.id and tt == t and sender(inst, i) == k)
                    u = max(0.0, d - got)
                    if d > 0:
                        rows.append({"buyer": b.id, "material": k, "year": t, "scenario": s,
                                     "demand_t": d, "delivered_t": got, "unmet_t": u,
                                     "penalty_per_kg": penalty[k],
                                     "penalty": 1000 * penalty[k] * u})
    return rows


def tiny_optimum(inst: Instance | None = None) -> dict[str, pd.DataFrame]:
    inst = inst or load_instance(TINY).instance
    return tables(inst, {"OFF-B": 1}, TINY_VOLUME, TINY_FLOWS, TINY_COSTS)


def found(report, constraint: str, index: str) -> Violation:
    hits = [v for v in report.violations if v.constraint == constraint and v.index == index]
    assert hits, f"no {constraint}[{index}] among {[str(v) for v in report.violations]}"
    return hits[0]


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
    assert {v.constraint for v in report.violations} == {"facility_capacity_max"}


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
    assert {v.constraint for v in report.violations} == {"contract_volume_max"}


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
    assert {v.constraint for v in report.violations} == {"contract_volume_min"}


def test_demand_not_met_without_unmet_row():
    inst = load_instance(TINY).instance
    costs = {k: v for k, v in TINY_COSTS.items() if k != "spot_purchases"}
    t = tables(inst, {"OFF-B": 1}, TINY_VOLUME, TINY_FLOWS[:2], costs)
    t["unmet"] = t["unmet"][t["unmet"]["year"] != 2027]
    report = check_tables(inst, t, 15_500_000.0, None)
    assert found(report, "demand_balance", "OEM,MAGNET,2027,base").amount == pytest.approx(50)
    found(report, "table", "unmet.csv,OEM,MAGNET,2027,base")
    assert {v.constraint for v in report.violations} == {"demand_balance", "table"}


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


# --- max_suppliers rules ---------------------------------------------------------------------
def two_supplier_plan(inst: Instance, penalty: float = 0.0) -> dict[str, pd.DataFrame]:
    """Sign both offers; OFF-A covers the 50 t gap in 2027 (the 21.5M plan of the yaml)."""
    volume = {**TINY_VOLUME, ("OFF-A", "OEM", 2027): 50.0}
    flows = TINY_FLOWS[:2] + [("OEM", "SUP-A", "OEM", 2027, 50.0)]
    costs = {"contract_payments": 18_000_000.0, "signing_costs": 3_500_000.0,
             "rule_violation_penalties": penalty}
    return tables(inst, {"OFF-A": 1, "OFF-B": 1}, volume, flows, costs)


def with_rule(**rule) -> Instance:
    raw = tiny_raw()
    raw["rules"] = [{"id": "R1", "kind": "max_suppliers", "max_count": 1, **rule}]
    return make(raw)


def test_hard_max_suppliers_broken():
    inst = with_rule()
    report = check_tables(inst, two_supplier_plan(inst), 21_500_000.0, None)
    assert report.violations == [found(report, "max_suppliers_max", "R1")]
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
    assert check_tables(inst, two_supplier_plan(inst), 21_500_000.0, None).ok


def test_max_suppliers_scope_years():
    """OFF-A runs in 2027 only; a rule on 2026 does not see it."""
    raw = tiny_raw()
    raw["offers"][0]["first_year"] = 2027
    raw["rules"] = [{"id": "R1", "kind": "max_suppliers", "max_count": 1,
                     "scope": {"years": [2026]}}]
    inst = make(raw)
    assert check_tables(inst, two_supplier_plan(inst), 21_500_000.0, None).ok
    raw["rules"][0]["scope"] = {"years": [2027]}
    inst = make(raw)
    report = check_tables(inst, two_supplier_plan(inst), 21_500_000.0, None)
    assert found(report, "max_suppliers_max", "R1").amount == pytest.approx(1)


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
    report = check_tables(inst, chain_plan(inst, 50.0), 3_500_000.0, None)
    assert report.violations == []
    assert report.cost_terms["operating_costs"] == pytest.approx(1_000_000)


def test_processing_chain_wrong_recipe_ratio():
    inst = make(CHAIN)
    report = check_tables(inst, chain_plan(inst, 100.0), 6_000_000.0, None)
    v = found(report, "facility_input_balance", "MAG,OEM,OXIDE,2026,base")
    assert v.amount == pytest.approx(50)
    assert {v.constraint for v in report.violations} == {"facility_input_balance"}


def test_production_without_inputs_and_at_own_feed_facility():
    inst = make(CHAIN)
    t = chain_plan(inst, 50.0)
    extra = t["production"].iloc[[0]].assign(facility="OX", opex_per_kg=0.0, opex_cost=0.0)
    t["production"] = pd.concat([t["production"], extra], ignore_index=True)
    report = check_tables(inst, t, None, None)
    assert found(report, "facility_input_balance", "OX,OEM,2026,base").amount == 100
    assert found(report, "facility_output_balance", "OX,OEM,2026,base").amount == 100


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
    """Buyer 'NA' and spot origin 'NA' (Namibia) must not turn into missing values."""
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
    found(report, "table", "spot.csv,SPOT,OEM,OEM,2027,base")


# --- independence ----------------------------------------------------------------------------
ALLOWED_IMPORTS = {"offtake.schema", "offtake.findings", "offtake.io", "offtake.network"}
ALLOWED_THIRD_PARTY = {"pandas", "numpy"}


def forbidden_imports(source: str) -> list[str]:
    """Imports in `source` outside schema, findings, io, network.at, pandas, numpy, stdlib."""
    import sys

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
    """check.py imports only schema, findings, io, network.at, pandas, numpy and the stdlib."""
    assert forbidden_imports(CHECK_PY.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("line", [
    "from offtake.model import build_model", "import offtake.data",
    "from offtake import results", "from offtake.network import effective_arcs",
    "from .solve import solve", "import pyomo.environ as pyo",
])
def test_import_guard_catches(line):
    assert forbidden_imports(line) != []


def test_flow_material_must_be_the_senders():
    inst = make(CHAIN)
    t = chain_plan(inst, 50.0)
    t["flows"].loc[0, "material"] = "MAGNET"  # OX sends OXIDE
    report = check_tables(inst, t, 3_500_000.0, None)
    assert report.violations == [found(report, "arc_allowed", "OEM,OX,MAG,2026,base")]
