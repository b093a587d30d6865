"""Layer 2: tiny instances whose optimum is derived by hand (derivation in each docstring).

Every solve goes through the pipeline and the independent checker (conftest.solve_checked).
"""

from __future__ import annotations

import pytest
from conftest import INSTANCES, approx, base, instance, solve_checked

from offtake.io.loader import load_or_raise


def signed(res) -> set[str]:
    o = res.tables["offers"]
    return set(o.loc[o["signed"] == 1, "offer_id"])


def test_tiny_two_offers_shipped_instance(tmp_path):
    """Derivation in instances/tiny_two_offers.yaml: sign OFF-B (100 t/yr at 70 USD/kg,
    1.5M signing), buy 50 t spot at 95 in 2027: 14.0M + 1.5M + 4.75M = 20.25M."""
    res = solve_checked(load_or_raise(INSTANCES / "tiny_two_offers.yaml"), tmp_path)
    assert res.status == "optimal"
    assert res.objective == approx(20_250_000)
    assert signed(res) == {"OFF-B"}
    costs = res.cost_terms()
    assert costs["contract_payments"] == approx(14_000_000)
    assert costs["signing_costs"] == approx(1_500_000)
    assert costs["spot_purchases"] == approx(4_750_000)
    assert sum(costs.values()) == approx(res.objective)
    spot = res.tables["spot"]
    assert list(spot["year"]) == [2027] and spot["volume_t"].iloc[0] == approx(50)


def test_base_cheapest_supplier_up_to_capacity(tmp_path):
    """base(): demand 60 t (2026), 90 t (2027). O2 (S2) costs 70/72 USD/kg with capacity 50/80,
    O1 (S1) 80 USD/kg, no signing costs, no spot. O2 takes its capacity, O1 the rest:
    2026: 50 x 70,000 + 10 x 80,000 = 4.3M; 2027: 80 x 72,000 + 10 x 80,000 = 6.56M.
    Total 10.86M."""
    res = solve_checked(instance(base()), tmp_path)
    assert res.objective == approx(10_860_000)
    c = res.tables["contracts"].set_index(["offer_id", "year"])["volume_t"]
    assert c["O2", 2026] == approx(50) and c["O2", 2027] == approx(80)


def _tolling() -> dict:
    """Buyer buys NdPr oxide and has it tolled into magnets (0.5 t oxide per t magnet)."""
    raw = base()
    raw["horizon"]["last_year"] = 2026
    raw["materials"] = [{"id": "OXIDE", "form": "oxide"}, {"id": "MAG", "form": "magnet"}]
    raw["facilities"] = [
        {"id": "SEP", "company": "Sep Co", "country": "AU", "stage": "SEP_L",
         "product": "OXIDE", "capacity_t": 1000},
        {"id": "MAGCO", "company": "Mag Co", "country": "US", "stage": "MAGNET",
         "product": "MAG", "capacity_t": 70, "recipe": {"OXIDE": 0.5}, "opex_per_kg": 10},
    ]
    raw["network"] = {"arcs": [{"from": "SEP", "to": "MAGCO", "freight_per_kg": 1.0}]}
    raw["buyers"] = [{"id": "B1", "country": "US", "demand_t": {"MAG": 100}}]
    raw["offers"] = [{"id": "OX", "supplier": "SEP", "material": "OXIDE", "first_year": 2026,
                      "last_year": 2026, "max_t_per_year": 100, "price_per_kg": 80}]
    raw["spot_markets"] = [{"id": "SPOT", "material": "MAG", "origin": "CN",
                            "price_per_kg": 60, "availability_t": 30}]
    return raw


def test_tolling_chain_recipe_capacity_and_freight(tmp_path):
    """A tolled magnet costs 0.5 x (80 + 1 freight) + 10 = 50.5 USD/kg < 60 spot, so the
    magnet maker runs at its 70 t capacity: oxide 35 t x 80,000 = 2.8M, freight 35 t x 1,000
    = 35,000, toll 70 t x 10,000 = 0.7M; the other 30 t come from spot: 1.8M.
    Total 5,335,000."""
    res = solve_checked(instance(_tolling()), tmp_path)
    assert res.objective == approx(5_335_000)
    costs = res.cost_terms()
    assert costs["operating_costs"] == approx(700_000)
    assert costs["freight"] == approx(35_000)
    p = res.tables["production"]
    assert p["production_t"].sum() == approx(70)
    c = res.tables["contracts"]
    assert c["volume_t"].sum() == approx(35)


def test_tolling_without_capacity_limit_uses_no_spot(tmp_path):
    """Magnet maker capacity 200: all 100 t tolled: 50 t oxide (4.0M) + freight 50,000 +
    toll 1.0M = 5,050,000."""
    raw = _tolling()
    raw["facilities"][1]["capacity_t"] = 200
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(5_050_000)
    assert res.tables["spot"].empty


def test_discounting(tmp_path):
    """Only spot at 50 USD/kg, 100 t in each of 2026 and 2027, r = 10 %:
    5.0M + 5.0M / 1.1 = 9,545,454.545..."""
    raw = base()
    raw["horizon"]["discount_rate"] = 0.10
    raw["buyers"][0]["demand_t"]["MAG"] = 100
    raw["offers"] = []
    raw["spot_markets"] = [{"id": "SPOT", "material": "MAG", "origin": "CN",
                            "price_per_kg": 50, "unlimited": True}]
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(5_000_000 + 5_000_000 / 1.1)


def test_minimum_volume_makes_surplus_optimal(tmp_path):
    """Offer O1 at 40 USD/kg with a 120 t/yr minimum vs spot at 50 for a 100 t/yr demand:
    signing costs 120 x 40,000 = 4.8M/yr < 5.0M/yr spot, so sign and take 20 t surplus.
    Two years: 9.6M."""
    raw = base()
    raw["buyers"][0]["demand_t"]["MAG"] = 100
    raw["facilities"][0]["capacity_t"] = 500
    raw["offers"] = [{"id": "O1", "supplier": "S1", "material": "MAG", "first_year": 2026,
                      "last_year": 2027, "min_t_per_year": 120, "max_t_per_year": 300,
                      "price_per_kg": 40}]
    raw["spot_markets"] = [{"id": "SPOT", "material": "MAG", "origin": "CN",
                            "price_per_kg": 50, "unlimited": True}]
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(9_600_000)
    u = res.tables["unmet"]
    assert list(u["delivered_t"]) == [approx(120), approx(120)]


def test_unmet_demand_penalised_and_reported(tmp_path):
    """Spot limited to 40 t/yr at 50 USD/kg, no offer, demand 100 t/yr, penalty 1,000 USD/kg:
    per year 40 x 50,000 + 60 x 1,000,000 = 62.0M; two years 124.0M."""
    raw = base()
    raw["materials"][0]["unmet_penalty_per_kg"] = 1000
    raw["buyers"][0]["demand_t"]["MAG"] = 100
    raw["offers"] = []
    raw["spot_markets"] = [{"id": "SPOT", "material": "MAG", "origin": "CN",
                            "price_per_kg": 50, "availability_t": 40}]
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(124_000_000)
    assert res.cost_terms()["unmet_demand_penalty"] == approx(120_000_000)
    assert res.tables["unmet"]["unmet_t"].sum() == approx(120)


def test_capacity_shared_between_buyers(tmp_path):
    """One supplier (S1, 100 t/yr, 80 USD/kg) eligible to two buyers who each want 60 t/yr;
    spot at 90 fills the gap: per year 100 x 80,000 + 20 x 90,000 = 9.8M; two years 19.6M."""
    raw = base()
    raw["facilities"] = raw["facilities"][:1]
    raw["buyers"] = [{"id": "B1", "country": "US", "demand_t": {"MAG": 60}},
                     {"id": "B2", "country": "DE", "demand_t": {"MAG": 60}}]
    raw["offers"] = raw["offers"][:1]
    raw["spot_markets"] = [{"id": "SPOT", "material": "MAG", "origin": "CN",
                            "price_per_kg": 90, "unlimited": True}]
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(19_600_000)


def _three_suppliers(rule: dict | None) -> dict:
    """Three suppliers, each cheapest for one of three buyers (cost 1 vs 3 elsewhere per kg,
    via freight), no signing costs; each buyer needs 1 t in one year."""
    raw = base()
    raw["horizon"]["last_year"] = 2026
    raw["facilities"] = [
        {"id": f"F{i}", "company": "Same" if i < 3 else "Other", "country": "US",
         "stage": "MAGNET", "product": "MAG", "capacity_t": 10} for i in (1, 2, 3)]
    raw["buyers"] = [{"id": f"B{i}", "country": "US", "demand_t": {"MAG": 1}} for i in (1, 2, 3)]
    raw["offers"] = [{"id": f"O{i}", "supplier": f"F{i}", "material": "MAG",
                      "first_year": 2026, "last_year": 2026, "max_t_per_year": 10,
                      "price_per_kg": 0} for i in (1, 2, 3)]
    raw["network"] = {"default_arcs": False, "arcs": [
        {"from": f"F{i}", "to": f"B{j}", "freight_per_kg": 1 if i == j else 3}
        for i in (1, 2, 3) for j in (1, 2, 3)]}
    raw["materials"][0].pop("typical_price_per_kg")
    raw["rules"] = [rule] if rule else []
    return raw


@pytest.mark.parametrize(
    ("rule", "expected", "n_signed"),
    [
        # no rule: every buyer from its own supplier: 3 x 1,000 = 3,000
        (None, 3_000, 3),
        # at most 2 suppliers: one buyer pays 3,000 instead of 1,000: 5,000
        ({"id": "R", "kind": "max_suppliers", "max_count": 2}, 5_000, 2),
        # at most 1: two buyers pay 3,000: 7,000
        ({"id": "R", "kind": "max_suppliers", "max_count": 1}, 7_000, 1),
        # at most 1 company: F1 and F2 are one company ("Same"): drop F3: 5,000
        ({"id": "R", "kind": "max_suppliers", "max_count": 1, "count": "company"}, 5_000, 2),
        # soft, 1,500 per extra supplier: keeping a 3rd saves 2,000 > 1,500: 3,000 + 1,500
        ({"id": "R", "kind": "max_suppliers", "max_count": 2, "hard": False,
          "penalty_per_unit": 1_500}, 4_500, 3),
        # soft, 2,500 per extra supplier: cheaper to drop one: 5,000
        ({"id": "R", "kind": "max_suppliers", "max_count": 2, "hard": False,
          "penalty_per_unit": 2_500}, 5_000, 2),
        # scoped to B1 only: offers eligible to B1 = all three (buyers None): same as max 2
        ({"id": "R", "kind": "max_suppliers", "max_count": 2, "scope": {"buyers": ["B1"]}},
         5_000, 2),
    ],
)
def test_max_suppliers(tmp_path, rule, expected, n_signed):
    res = solve_checked(instance(_three_suppliers(rule)), tmp_path)
    assert res.objective == approx(expected)
    assert len(signed(res)) == n_signed
    if rule:
        row = res.tables["rules"].iloc[0]
        assert row["rule_id"] == "R"


def test_two_scenarios_without_changes_equal_one(tmp_path):
    """Scenarios that change nothing give the deterministic objective (probabilities sum to 1)."""
    one = solve_checked(instance(base()), tmp_path / "one")
    raw = base()
    raw["scenarios"] = [{"id": "low", "probability": 0.3}, {"id": "high", "probability": 0.7}]
    two = solve_checked(instance(raw), tmp_path / "two")
    assert two.objective == approx(one.objective)
    assert set(two.tables["flows"]["scenario"]) == {"low", "high"}


def test_external_x1_williams_distribution(tmp_path):
    """External check X1 (H. P. Williams, Distribution 1): published optimum 198,500."""
    inst = load_or_raise(INSTANCES / "external" / "x1_williams_distribution.yaml")
    res = solve_checked(inst, tmp_path)
    assert res.status == "optimal"
    assert res.objective == approx(198_500)


def test_external_x2_pyomo_warehouse(tmp_path):
    """External check X2 (Pyomo book warehouse location, P = 2): published optimum 2,745."""
    inst = load_or_raise(INSTANCES / "external" / "x2_pyomo_warehouse.yaml")
    res = solve_checked(inst, tmp_path)
    assert res.status == "optimal"
    assert res.objective == approx(2_745)
    assert signed(res) and len(signed(res)) == 2


def test_external_x2_with_one_warehouse_binds_the_rule(tmp_path):
    """X2 with P = 1 (the published P = 2 does not bind: each customer's nearest warehouse is
    Harlingen or Ashland anyway). One warehouse serving all four customers:
    Harlingen 1956+1606+1410+330 = 5302; Memphis 1096+1792+531+567 = 3986;
    Ashland 485+2322+324+1236 = 4367. Optimum: Memphis, 3,986."""
    import yaml

    from offtake.io.loader import validate_mapping

    raw = yaml.safe_load((INSTANCES / "external" / "x2_pyomo_warehouse.yaml").read_text())
    raw["rules"][0]["max_count"] = 1
    res = solve_checked(validate_mapping(raw).instance, tmp_path)
    assert res.objective == approx(3_986)
    assert len(signed(res)) == 1
    assert res.tables["rules"].iloc[0]["binding"]


def _spot_and_two_offers() -> dict:
    """base() with an unlimited spot market at 60 USD/kg, a 30 t/yr minimum on O2 and a
    signing cost of 10,000 USD on each offer."""
    raw = base()
    raw["offers"][1]["min_t_per_year"] = 30
    for o in raw["offers"]:
        o["signing_cost"] = 10_000
    raw["spot_markets"] = [{"id": "SPOT", "material": "MAG", "origin": "CN",
                            "price_per_kg": 60, "unlimited": True}]
    return raw


@pytest.mark.parametrize(("offer", "decision", "expected", "signed"), [
    ("O2", "free", 9_000_000, {"O1": 0, "O2": 0}),
    ("O2", "forced", 9_670_000, {"O1": 0, "O2": 1}),
    ("O1", "forced", 9_010_000, {"O1": 1, "O2": 0}),
])
def test_offer_decision_forced(tmp_path, offer, decision, expected, signed):
    """Spot at 60 USD/kg is cheaper than O1 (80) and O2 (70/72), so the free optimum buys all
    150 t spot: 150 x 60,000 = 9.0M, nothing signed (signing costs 10,000).
    Forcing O2 (30 t/yr minimum) buys 30 t/yr from it and the rest spot:
    2026: 30 x 70,000 + 30 x 60,000 = 3.9M; 2027: 30 x 72,000 + 60 x 60,000 = 5.76M;
    plus its signing cost: 9.67M.
    Forcing O1 (no minimum) pays its signing cost and leaves it unused: 9.01M."""
    raw = _spot_and_two_offers()
    next(o for o in raw["offers"] if o["id"] == offer)["decision"] = decision
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(expected)
    got = dict(zip(res.tables["offers"]["offer_id"], res.tables["offers"]["signed"],
                   strict=True))
    assert got == signed
    if decision == "forced" and offer == "O2":
        c = res.tables["contracts"].set_index(["offer_id", "year"])["volume_t"]
        assert c["O2", 2026] == approx(30) and c["O2", 2027] == approx(30)


def test_offer_decision_forbidden(tmp_path):
    """base() without spot: the free optimum signs both (10.86M, see
    test_base_cheapest_supplier_up_to_capacity). Forbidding O2 leaves O1 (80 USD/kg, capacity
    100) for all 60 + 90 t: 150 x 80,000 = 12.0M."""
    raw = base()
    raw["offers"][1]["decision"] = "forbidden"
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(12_000_000)
    got = dict(zip(res.tables["offers"]["offer_id"], res.tables["offers"]["signed"],
                   strict=True))
    assert got == {"O1": 1, "O2": 0}
