"""Hand-derived cases that close gaps a mutation probe found (issue 16): each of these
mutants of the model or the reports survived the suite before.

* a soft rule held in expectation whose penalty is never charged;
* the `binding` flag without its guard against rows that read 0 <= 0;
* CVaR weighted uniformly instead of by the scenario probabilities;
* a contract that runs one year past its term;
* the objective checked as an identity of the code instead of against hand-derived terms.
"""

from __future__ import annotations

import copy

import pytest
from conftest import approx, base, instance, solve_checked

ONE_YEAR: dict = {
    "meta": {"name": "hand", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2026, "discount_rate": 0.0},
    "materials": [{"id": "MAG", "form": "magnet"}],
    "facilities": [
        {"id": "S1", "company": "One", "country": "US", "stage": "MAGNET", "product": "MAG",
         "capacity_t": 200},
        {"id": "S2", "company": "Two", "country": "DE", "stage": "MAGNET", "product": "MAG",
         "capacity_t": 200},
    ],
    "buyers": [{"id": "B1", "country": "US", "demand_t": {"MAG": 100}}],
    "offers": [
        {"id": "O1", "supplier": "S1", "material": "MAG", "first_year": 2026,
         "last_year": 2026, "max_t_per_year": 200, "price_per_kg": 80},
        {"id": "O2", "supplier": "S2", "material": "MAG", "first_year": 2026,
         "last_year": 2026, "max_t_per_year": 200, "price_per_kg": 70},
    ],
}


def test_a_soft_rule_in_expectation_charges_its_penalty(tmp_path):
    """Demand 100 t; O2 at 70 USD/kg, O1 at 80. A soft 50 % single-supplier cap held in
    expectation with a penalty of 5 USD/kg over the cap. With x t from O2 the violation is
    x - 50 and the cost 70,000 x + 80,000 (100 - x) + 5,000 (x - 50) = 7.75M - 5,000 x, least
    at x = 100: 7,000,000 + 250,000 = 7,250,000 (without the penalty: 7.0M)."""
    raw = copy.deepcopy(ONE_YEAR)
    raw["rules"] = [{"id": "CAP-50", "kind": "max_supplier_share", "max_share": 0.5,
                     "hard": False, "penalty_per_unit": 5000, "in_expectation": True}]
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(7_250_000)
    assert res.cost_terms()["rule_violation_penalties"] == approx(250_000)
    rows = res.tables["rules"]
    row = rows[rows["row"].str.contains("S2")].iloc[0]
    assert row["scenario"] == "expected" and row["violation"] == approx(50)


def test_a_row_reading_zero_against_zero_is_not_binding_unless_it_has_a_price(tmp_path):
    """An exclusion of Chinese magnets with a Chinese spot market at 200 USD/kg, dearer than
    either offer: its row reads 0 <= 0 and costs nothing (shadow price 0), so it binds
    nothing. At 50 USD/kg (cheaper than O2 at 70) the row still reads 0 <= 0, but now it holds
    back 100 t that would save 20,000 USD each: shadow price 20,000 per t, binding."""
    raw = copy.deepcopy(ONE_YEAR)
    raw["rules"] = [{"id": "NO-CN", "kind": "exclusion", "stages": ["MAGNET"],
                     "countries": ["CN"]}]
    raw["spot_markets"] = [{"id": "CN-SPOT", "material": "MAG", "origin": "CN",
                            "feed_origin": {"MAGNET": "CN"}, "price_per_kg": 200,
                            "unlimited": True}]
    res = solve_checked(instance(raw), tmp_path / "a")
    row = res.tables["rules"].iloc[0]
    assert row["lhs"] == approx(0) and row["bound"] == approx(0)
    assert row["shadow_price"] == pytest.approx(0, abs=1e-6) and not row["binding"]
    raw["spot_markets"][0]["price_per_kg"] = 50
    res = solve_checked(instance(raw), tmp_path / "b")
    row = res.tables["rules"].iloc[0]
    assert row["lhs"] == approx(0) and row["binding"]
    assert row["shadow_price"] == approx(20_000)


def test_cvar_weighs_scenarios_by_their_probability(tmp_path):
    """Spot only, 100 t at 50 USD/kg; scenario 'spike' (probability 0.1) triples the price.
    Costs: calm 5.0M (p 0.9), spike 15.0M (p 0.1); expected 6.0M. CVaR at alpha 0.8 is the
    mean of the worst 0.2 of the mass: 0.1 at 15M and 0.1 at 5M, so 10.0M; with lambda 1 the
    objective is 16.0M. (Weighted uniformly, 0.5 / 0.5, the worst 0.2 would be spike alone:
    6.0M + 15.0M = 21.0M.)"""
    raw = copy.deepcopy(ONE_YEAR)
    raw["offers"] = []
    raw["spot_markets"] = [{"id": "SPOT", "material": "MAG", "origin": "CN",
                            "price_per_kg": 50, "unlimited": True}]
    raw["scenarios"] = [
        {"id": "calm", "probability": 0.9},
        {"id": "spike", "probability": 0.1, "spot": [{"price_multiplier": 3.0}]}]
    res = solve_checked(instance(raw), tmp_path, cvar_weight=1.0, cvar_alpha=0.8)
    assert res.objective == approx(16_000_000)
    assert res.risk["mean"] == approx(6_000_000)
    assert res.risk["cvar"] == approx(10_000_000)


def test_a_contract_ends_with_its_term(tmp_path):
    """2026-2028, demand 100 t a year; an offer at 50 USD/kg that must start in 2026 and runs
    for 2 years, spot at 90. The contract covers 2026 and 2027 (2 x 5.0M), 2028 is bought
    spot (9.0M): 19.0M. Were it to run a third year it would cost 15.0M."""
    raw = copy.deepcopy(ONE_YEAR)
    raw["horizon"]["last_year"] = 2028
    raw["offers"] = [{"id": "O", "supplier": "S1", "material": "MAG", "first_year": 2026,
                      "last_year": 2028, "max_t_per_year": 200, "price_per_kg": 50,
                      "start_years": [2026], "term_years": 2}]
    raw["spot_markets"] = [{"id": "SPOT", "material": "MAG", "origin": "CN",
                            "price_per_kg": 90, "unlimited": True}]
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(19_000_000)
    c = res.tables["contracts"].groupby("year")["volume_t"].sum()
    assert c.get(2026) == approx(100) and c.get(2027) == approx(100)
    assert c.get(2028, 0.0) == approx(0)


def test_the_objective_is_its_hand_derived_terms(tmp_path):
    """base() with a signing cost of 1M on O1 and freight-free delivery: O2 takes its capacity
    (50 t in 2026 at 70, 80 t in 2027 at 72), O1 the rest (10 + 10 t at 80) once signed.
    contract_payments 3.5M + 5.76M + 0.8M + 0.8M = 10.86M; signing_costs 1.0M (unmet instead
    would cost 20 t x 10,000 USD/kg = 200M); every other term 0. Objective 11.86M."""
    raw = base()
    raw["offers"][0]["signing_cost"] = 1_000_000
    res = solve_checked(instance(raw), tmp_path)
    terms = res.cost_terms()
    assert terms.pop("contract_payments") == approx(10_860_000)
    assert terms.pop("signing_costs") == approx(1_000_000)
    assert all(v == pytest.approx(0, abs=1e-6) for v in terms.values()), terms
    assert res.objective == approx(11_860_000)
