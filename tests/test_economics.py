"""Layer 2 for contract economics: each price and contract term on a tiny instance whose
optimum is derived by hand in the docstring. Buyer B (US) needs magnets; 1 t = 1,000 kg."""

from __future__ import annotations

import copy

from conftest import approx, instance, solve_checked


def market(**offer_terms) -> dict:
    """One supplier S-US (US) with offer O1, a dear CN spot market (200 USD/kg), 2026-2027,
    demand 100 t a year, no discounting."""
    offer = {"id": "O1", "supplier": "S-US", "material": "MAG", "first_year": 2026,
             "last_year": 2027, "max_t_per_year": 500, **offer_terms}
    if "price_per_kg" not in offer and "index" not in offer:
        offer["price_per_kg"] = 100
    return {
        "meta": {"name": "econ", "currency": "USD", "price_year": 2025},
        "horizon": {"first_year": 2026, "last_year": 2027},
        "materials": [{"id": "MAG", "form": "magnet"}],
        "facilities": [{"id": "S-US", "company": "S", "country": "US", "stage": "MAGNET",
                        "product": "MAG", "capacity_t": 1000}],
        "buyers": [{"id": "B", "country": "US", "demand_t": {"MAG": 100}}],
        "offers": [offer],
        "spot_markets": [{"id": "SPOT", "material": "MAG", "origin": "CN", "price_per_kg": 200,
                          "unlimited": True}],
        "price_indices": [{"id": "IDX", "material": "MAG",
                           "price_per_kg": {2026: 60, 2027: 100}}],
    }


def terms(res) -> dict[int, str]:
    c = res.tables["contracts"]
    return dict(zip(c["year"], c["price_term"], strict=True))


def test_buyer_paid_floor_binds_in_one_year_only(tmp_path):
    """Index 60 (2026) and 100 (2027), floor 80 paid by the buyer: 80 then 100 USD/kg:
    100 t x 80,000 + 100 t x 100,000 = 18.0M."""
    res = solve_checked(instance(market(index="IDX", floor_per_kg=80)), tmp_path)
    assert res.objective == approx(18_000_000)
    assert terms(res) == {2026: "floor", 2027: "index"}


def test_collar(tmp_path):
    """Floor 70, ceiling 90 around an index of 60 / 100: 70 then 90: 7.0M + 9.0M = 16.0M."""
    res = solve_checked(instance(market(index="IDX", floor_per_kg=70, ceiling_per_kg=90)),
                        tmp_path)
    assert res.objective == approx(16_000_000)
    assert terms(res) == {2026: "floor", 2027: "ceiling"}


def test_government_paid_floor_same_deliveries_fiscal_cost_appears(tmp_path):
    """Floor 80 paid by 'US DoD': the buyer pays the index (6.0M + 10.0M = 16.0M) and DoD tops
    up 20 USD/kg in 2026: 2.0M; with 30 % of the upside above 90 returned to DoD in 2027
    (0.3 x 10 x 100,000 = 0.3M) DoD's net cost is 1.7M. Buyer-paid, the same terms cost the
    buyer 8.0M + (100 - 3) x 100,000 = 17.7M and no fiscal cost."""
    gov = solve_checked(instance(market(index="IDX", floor_per_kg=80, floor_paid_by="US DoD",
                                        upside_share=0.3, upside_above_per_kg=90)),
                        tmp_path / "gov")
    assert gov.objective == approx(16_000_000)
    assert gov.fiscal_costs() == {"US DoD": approx(1_700_000)}
    own = solve_checked(instance(market(index="IDX", floor_per_kg=80, upside_share=0.3,
                                        upside_above_per_kg=90)), tmp_path / "own")
    assert own.objective == approx(17_700_000)
    assert own.fiscal_costs() == {}
    assert terms(own)[2027] == "index+upside"


def test_index_premium_adder_and_scenario_paths(tmp_path):
    """Price = index x 1.1 + 2: 2026 68, 2027 112 in scenario 'base' (p = 0.5); in 'spike'
    (p = 0.5) the index path is 60 / 140: 68, 156. Expected: 6.8M + 0.5 x (11.2M + 15.6M)
    = 20.2M."""
    raw = market(index="IDX", premium=0.1, adder_per_kg=2)
    raw["scenarios"] = [{"id": "base", "probability": 0.5}, {"id": "spike", "probability": 0.5}]
    raw["price_indices"][0]["by_scenario"] = {"spike": {2026: 60, 2027: 140}}
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(20_200_000)


def test_all_units_tier_makes_overbuying_optimal(tmp_path):
    """100 USD/kg, 20 % off every tonne from 120 t a year: 100 t cost 10.0M, 120 t cost
    120 x 80,000 = 9.6M, so buy 120 t a year (20 t surplus): 19.2M for two years."""
    res = solve_checked(instance(market(tiers=[{"from_t": 0, "discount": 0},
                                               {"from_t": 120, "discount": 0.2}])), tmp_path)
    assert res.objective == approx(19_200_000)
    costs = res.cost_terms()
    assert costs["contract_payments"] == approx(24_000_000)
    assert costs["volume_rebates"] == approx(-4_800_000)
    assert set(res.tables["contracts"]["tier"]) == {"1"}


def test_surplus_resold_at_a_haircut(tmp_path):
    """As above, with resale into the CN spot market at 200 x (1 - 0.775) = 45 USD/kg: the
    20 t surplus earns 0.9M a year: 2 x (9.6M - 0.9M) = 17.4M. Buying more to resell does not
    pay (80 > 45)."""
    raw = market(tiers=[{"from_t": 0, "discount": 0}, {"from_t": 120, "discount": 0.2}])
    raw["spot_markets"][0]["resale_haircut"] = 0.775
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(17_400_000)
    assert res.tables["resale"]["volume_t"].sum() == approx(40)


def test_incremental_tier(tmp_path):
    """100 USD/kg; 10 % off tonnes 50-80, 30 % off tonnes from 80: 100 t cost
    50 x 100,000 + 30 x 90,000 + 20 x 70,000 = 9.1M a year; 18.2M."""
    res = solve_checked(instance(market(
        tier_mode="incremental", tiers=[{"from_t": 0, "discount": 0},
                                        {"from_t": 50, "discount": 0.1},
                                        {"from_t": 80, "discount": 0.3}])), tmp_path)
    assert res.objective == approx(18_200_000)


def _take_or_pay(**extra) -> dict:
    """One year. Offer at 50 USD/kg with a 150 t minimum and 80 % take-or-pay (120 t); demand
    100 t; spot at 100."""
    raw = market(price_per_kg=50, min_t_per_year=150, take_or_pay_share=0.8, **extra)
    raw["horizon"]["last_year"] = 2026
    raw["offers"][0]["last_year"] = 2026
    raw["price_indices"] = []
    raw["spot_markets"][0]["price_per_kg"] = 100
    return raw


def test_take_or_pay_shortfall(tmp_path):
    """Shortfall at half price: taking d in [100, 120] costs 50,000 d + 25,000 (120 - d), least
    at d = 100: 5.0M + 0.5M = 5.5M (spot alone: 10.0M)."""
    res = solve_checked(instance(_take_or_pay(shortfall_fraction=0.5)), tmp_path)
    assert res.objective == approx(5_500_000)
    c = res.tables["contracts"].iloc[0]
    assert c["volume_t"] == approx(150) and c["delivered_t"] == approx(100)
    assert c["shortfall_t"] == approx(20)


def test_take_or_pay_take_and_resell_beats_shortfall(tmp_path):
    """Full shortfall price, resale at 100 x (1 - 0.6) = 40: taking d in [100, 120] costs
    6.0M - 40,000 (d - 100), least at d = 120 (above 120 each tonne costs 50 - 40 more):
    6.0M - 0.8M = 5.2M."""
    raw = _take_or_pay()
    raw["spot_markets"][0]["resale_haircut"] = 0.6
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(5_200_000)
    assert res.tables["contracts"].iloc[0]["delivered_t"] == approx(120)


def test_stacked_tariffs_switch_the_supplier(tmp_path):
    """A CN supplier at 60 vs the US one at 70 (100 t, one year). 10 % duty: CN costs 66 ->
    6.6M. 25 % + 10 % stacked: CN costs 81 > 70 -> the US offer: 7.0M."""
    raw = market(price_per_kg=70)
    raw["horizon"]["last_year"] = 2026
    raw["offers"][0]["last_year"] = 2026
    raw["price_indices"] = []
    raw["facilities"].append({"id": "S-CN", "company": "C", "country": "CN", "stage": "MAGNET",
                              "product": "MAG", "capacity_t": 1000})
    raw["offers"].append({"id": "O-CN", "supplier": "S-CN", "material": "MAG",
                          "first_year": 2026, "last_year": 2026, "max_t_per_year": 500,
                          "price_per_kg": 60})
    raw["tariffs"] = [{"id": "IEEPA", "origins": ["CN"], "destinations": ["US"], "rate": 0.1}]
    res = solve_checked(instance(raw), tmp_path / "one")
    assert res.objective == approx(6_600_000)
    assert res.cost_terms()["tariffs"] == approx(600_000)
    raw = copy.deepcopy(raw)
    raw["tariffs"].append({"id": "S301", "origins": ["CN"], "destinations": ["US"],
                           "materials": ["MAG"], "rate": {2026: 0.25}})
    res = solve_checked(instance(raw), tmp_path / "two")
    assert res.objective == approx(7_000_000)


def test_prepayment_credited_against_purchases(tmp_path):
    """One year: 80 USD/kg with a 1.0M prepayment, half creditable, vs spot at 90:
    8.0M + 1.0M - 0.5M = 8.5M < 9.0M."""
    raw = market(price_per_kg=80, prepayment=1_000_000, prepayment_credit_share=0.5)
    raw["horizon"]["last_year"] = 2026
    raw["offers"][0]["last_year"] = 2026
    raw["price_indices"] = []
    raw["spot_markets"][0]["price_per_kg"] = 90
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(8_500_000)
    assert res.cost_terms()["prepayment_credits"] == approx(-500_000)


def test_start_window_and_term(tmp_path):
    """Demand 0 t in 2026, 100 t in 2027. A one-year contract at 50 USD/kg with a 100 t
    minimum may start in 2026 or 2027; spot costs 80. Starting in 2027: 5.0M (starting in 2026
    would waste 5.0M and leave 2027 to spot)."""
    raw = market(price_per_kg=50, min_t_per_year=100, start_years=[2026, 2027], term_years=1)
    raw["buyers"][0]["demand_t"]["MAG"] = {2026: 0, 2027: 100}
    raw["spot_markets"][0]["price_per_kg"] = 80
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(5_000_000)
    assert res.tables["offers"].iloc[0]["start_year"] == 2027


def test_stock_carries_cheap_volume_forward(tmp_path):
    """Price 50 (2026) then 100 (2027), holding 5 USD/kg a year; demand 10 t then 100 t:
    buy 110 t in 2026 and hold 100 t: 5.5M + 0.5M = 6.0M (buying in 2027: 10.5M)."""
    raw = market(price_per_kg={2026: 50, 2027: 100})
    raw["materials"][0]["holding_cost_per_kg_year"] = 5
    raw["buyers"][0]["demand_t"]["MAG"] = {2026: 10, 2027: 100}
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(6_000_000)
    assert res.tables["stock"]["stock_t"].sum() == approx(100)
