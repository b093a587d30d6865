"""Contracts under disruption (formulation.md, force_majeure): a scenario that cuts a
supplier's capacity curtails its contracts pro rata; the buyer pays for what is delivered,
is owed liquidated damages when the offer's force-majeure clause does not cover the cut's
cause, and covers the gap elsewhere. Hand-derived optima, solved through the checker."""

from __future__ import annotations

import copy

import pytest
from conftest import approx, instance, solve_checked

from offtake.analysis.evaluate import evaluate_plan
from offtake.analysis.stochastic import stochastic_value
from offtake.check import check_tables
from offtake.formulation.data import build_data

BAN: dict = {
    "meta": {"name": "ban", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2026},
    "materials": [{"id": "MAG", "form": "magnet"}],
    "facilities": [{"id": "CN1", "company": "C", "country": "CN", "stage": "MAGNET",
                    "product": "MAG", "capacity_t": 1000}],
    "buyers": [{"id": "B", "country": "US", "demand_t": {"MAG": 100}}],
    "offers": [{"id": "O", "supplier": "CN1", "material": "MAG", "first_year": 2026,
                "last_year": 2026, "max_t_per_year": 100, "price_per_kg": 60,
                "force_majeure": [], "liquidated_damages_per_kg": 10}],
    "spot_markets": [{"id": "SPOT", "material": "MAG", "origin": "JP", "price_per_kg": 120,
                      "unlimited": True}],
    "scenarios": [
        {"id": "open", "probability": 0.5},
        {"id": "ban", "probability": 0.5,
         "capacity": [{"countries": ["CN"], "multiplier": 0.3, "cause": "export_control"}]},
    ],
}
"""One Chinese offer (60 USD/kg, up to 100 t) against spot at 120; demand 100 t. Scenario
`ban` (p = 1/2) cuts Chinese capacity to 30 % by export controls; the offer has no
force-majeure clause and 10 USD/kg liquidated damages."""


def test_a_curtailed_contract_is_paid_for_what_is_delivered_with_liquidated_damages(tmp_path):
    """Committing q t: `open` costs 60,000 q + 120,000 (100 - q); `ban` delivers 0.3 q
    (pro rata to the capacity left), paid 60,000 x 0.3 q, the gap 100 - 0.3 q from spot at
    120,000, and the supplier, not excused (no force-majeure clause), pays 10,000 per t on
    the 0.7 q curtailed: 12.0M - 25,000 q. E = 12.0M - 42,500 q: q* = 100 t, E = 7.75M;
    open 6.0M, ban 1.8M + 8.4M - 0.7M = 9.5M."""
    res = solve_checked(instance(BAN), tmp_path)
    assert res.objective == approx(7_750_000)
    c = res.tables["contracts"].set_index("scenario")
    assert c.loc["open", "delivered_t"] == approx(100) and c.loc["ban", "delivered_t"] == approx(30)
    assert c.loc["ban", "curtailed_t"] == approx(70) and c.loc["open", "curtailed_t"] == 0
    assert c.loc["ban", "payment"] == approx(1_800_000)
    assert c.loc["ban", "damages"] == approx(700_000) and c.loc["open", "damages"] == 0
    terms = res.tables["scenario_costs"].set_index(["scenario", "term"])["value"]
    assert terms["ban", "contract_payments"] == approx(1_800_000)
    assert terms["ban", "spot_purchases"] == approx(8_400_000)
    assert terms["ban", "liquidated_damages"] == approx(-700_000)
    assert terms["open", "liquidated_damages"] == 0
    assert res.cost_terms()["liquidated_damages"] == approx(-350_000)


def test_force_majeure_excuses_the_supplier(tmp_path):
    """The default clause covers export controls: the same cut owes no damages. ban: 1.8M +
    8.4M = 10.2M; E = 12.0M - 39,000 q, still q = 100: 8.1M. A cut of another cause (an
    outage, not covered) owes them again: 7.75M."""
    raw = copy.deepcopy(BAN)
    del raw["offers"][0]["force_majeure"]
    res = solve_checked(instance(raw), tmp_path / "fm")
    assert res.objective == approx(8_100_000)
    assert res.tables["contracts"]["damages"].sum() == 0
    raw["scenarios"][1]["capacity"][0]["cause"] = "operational"
    assert solve_checked(instance(raw), tmp_path / "outage").objective == approx(7_750_000)


def test_covered_causes_count_first(tmp_path):
    """Export controls (covered) cut to 50 %, an outage (not covered) to 60 % of that:
    a = 0.3 delivered, g = 0.5 - 0.3 = 0.2 of q owes damages: ban costs 1.8M + 8.4M - 0.2M
    = 10.0M at q = 100 (E = 12.0M - 40,000 q, so q = 100): 8.0M."""
    raw = copy.deepcopy(BAN)
    del raw["offers"][0]["force_majeure"]
    raw["scenarios"][1]["capacity"] = [
        {"countries": ["CN"], "multiplier": 0.5, "cause": "export_control"},
        {"facilities": ["CN1"], "multiplier": 0.6, "cause": "operational"}]
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(8_000_000)
    c = res.tables["contracts"].set_index("scenario")
    assert c.loc["ban", "delivered_t"] == approx(30) and c.loc["ban", "damages"] == approx(200_000)


def test_take_or_pay_owes_no_shortfall_on_curtailed_tonnes(tmp_path):
    """Full take-or-pay (theta = 1) on the offer, demand 100 t: in `ban` the buyer takes the
    30 t the supplier can deliver and owes no shortfall on the 70 t it cannot (the shortfall
    is measured against a q = 30 t); same costs as without take-or-pay: 7.75M."""
    raw = copy.deepcopy(BAN)
    raw["offers"][0]["take_or_pay_share"] = 1.0
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(7_750_000)
    c = res.tables["contracts"].set_index("scenario")
    assert c.loc["ban", "delivered_t"] == approx(30) and c.loc["ban", "shortfall_t"] == 0
    assert c.loc["ban", "shortfall_payment"] == 0


def test_the_evaluation_and_eev_are_defined_under_a_cut():
    """A plan of q = 50 t: open 3.0M + 6.0M spot = 9.0M; ban 0.9M + 10.2M - 0.35M = 10.75M:
    expected 9.875M; the EV problem (capacity 65 %, damages on 35 %) also commits 100 t, so
    EEV = RP = 7.75M."""
    d = build_data(instance(BAN))
    res = evaluate_plan(d, {"v_signed": {"O": 1.0}, "v_volume_t": {("O", "B", 2026): 50}})
    assert set(res.status.values()) == {"optimal"}
    assert res.cost == {"open": approx(9_000_000), "ban": approx(10_750_000)}
    assert res.expected == approx(9_875_000)
    v = stochastic_value(instance(BAN))
    assert v.eev == approx(7_750_000) and v.rp == approx(7_750_000) and v.vss == approx(0)


def test_the_checker_catches_a_delivery_that_ignores_the_cut(tmp_path):
    """Contracts that deliver the full 100 t in `ban` (as if nothing were cut), or a
    damages column that forgets the cut, are reported."""
    res = solve_checked(instance(BAN), tmp_path)
    tables = {k: v.copy() for k, v in res.tables.items()}
    c = tables["contracts"]
    ban = c["scenario"] == "ban"
    c.loc[ban, "delivered_t"] = 100.0
    report = check_tables(instance(BAN), tables, res.objective, None)
    assert report.of("force_majeure_delivery")
    tables = {k: v.copy() for k, v in res.tables.items()}
    tables["contracts"].loc[tables["contracts"]["scenario"] == "ban", "damages"] = 0.0
    report = check_tables(instance(BAN), tables, res.objective, None)
    assert any("damages" in v.message for v in report.of("table"))


@pytest.mark.parametrize("bad", [{"liquidated_damages_per_kg": -1},
                                 {"force_majeure": ["earthquake"]}])
def test_the_schema_rejects_bad_terms(bad):
    from conftest import check

    raw = copy.deepcopy(BAN)
    raw["offers"][0].update(bad)
    assert not check(raw).ok


def test_a_capacity_cut_needs_a_known_cause():
    from conftest import check

    raw = copy.deepcopy(BAN)
    raw["scenarios"][1]["capacity"][0]["cause"] = "strike"
    assert not check(raw).ok


def test_no_cut_no_change_of_the_model():
    """Without a capacity cut no contract gets a delivery variable (model sizes of the
    shipped instances are unchanged)."""
    raw = copy.deepcopy(BAN)
    raw["scenarios"] = [{"id": "base", "probability": 1.0}]
    d = build_data(instance(raw))
    assert d.CURTAILED == () and d.offer_available_share == {}


TOLL: dict = {
    "meta": {"name": "toll", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2026},
    "materials": [{"id": "OX", "form": "oxide"}, {"id": "MAG", "form": "magnet"}],
    "facilities": [
        {"id": "SEP", "company": "S", "country": "US", "stage": "SEP_H", "product": "OX",
         "capacity_t": 1000},
        {"id": "TOLL", "company": "T", "country": "US", "stage": "MAGNET", "product": "MAG",
         "capacity_t": 1000, "recipe": {"OX": 1.0}, "opex_per_kg": 10}],
    "buyers": [{"id": "B", "country": "US", "demand_t": {"MAG": 50}}],
    "offers": [{"id": "O", "supplier": "SEP", "material": "OX", "first_year": 2026,
                "last_year": 2026, "max_t_per_year": 100, "price_per_kg": 50}],
    "spot_markets": [{"id": "SPOT", "material": "MAG", "origin": "JP", "price_per_kg": 100,
                      "unlimited": True}],
    "scenarios": [
        {"id": "normal", "probability": 0.9},
        {"id": "outage", "probability": 0.1,
         "capacity": [{"facilities": ["TOLL"], "multiplier": 0, "cause": "other"}]}],
}
"""B needs 50 t of magnets: oxide under contract O (50 USD/kg, delivered in full: SEP is not
cut) tolled at TOLL (10 USD/kg, 1 t oxide per t magnet), or magnets on spot at 100 USD/kg.
In `outage` (p = 0.1) the toll plant is down."""


def test_a_contracted_oxide_that_cannot_be_processed_is_left_unused_not_infeasible(tmp_path):
    """Committing q <= 50 t of oxide: `normal` costs 50,000 q + 10,000 q + 100,000 (50 - q)
    = 5.0M - 40,000 q; in `outage` the q t are paid for but cannot be tolled: they are left
    at SEP's gate (facility_output: outflow <= what B bought) and all 50 t come from spot:
    5.0M + 50,000 q. E = 5.0M - 0.9 x 40,000 q + 0.1 x 50,000 q = 5.0M - 31,000 q, so
    q* = 50 (more oxide would only be left unused): E = 3.45M; normal 3.0M, outage 7.5M.
    Were every bought tonne bound to leave the gate, q > 0 could not be carried out in
    `outage` and the optimum would be q = 0, E = 5.0M. The same plan evaluated alone has a
    cost in both scenarios."""
    res = solve_checked(instance(TOLL), tmp_path)
    assert res.objective == approx(3_450_000)
    costs = res.tables["scenario_costs"].groupby("scenario")["value"].sum()
    assert costs["normal"] == approx(3_000_000) and costs["outage"] == approx(7_500_000)
    flows = res.tables["flows"]
    out_of_sep = flows[(flows["from_node"] == "SEP") & (flows["scenario"] == "outage")]
    assert out_of_sep["flow_t"].sum() == approx(0)
    c = res.tables["contracts"].set_index("scenario")
    assert c.loc["outage", "delivered_t"] == approx(50)
    d = build_data(instance(TOLL))
    ev = evaluate_plan(d, res.plan)
    assert set(ev.status.values()) == {"optimal"} and ev.expected == approx(3_450_000)
    assert ev.cost["outage"] == approx(7_500_000)
