"""Cost per buyer (formulation.md, "Cost per buyer"): every term split by buyer in costs.csv,
the shares summing to the term and the buyers' rows to the objective; shared items split by
the documented rule; the checker recomputes each share.

The instance (one year, 2026): B1 needs 60 t of MAG, B2 40 t. S1 sells at 80 USD/kg. The
candidate plant NEW (100 t, 1M build cost paid by the buyers) sells O3 at 40 USD/kg with a
50,000 signing cost. Building is worth it: 100 t x 40,000 = 4M + 1M + 0.05M = 5.05M against
100 t x 80,000 = 8M, so both buyers take their demand from O3."""

from __future__ import annotations

import pytest
from conftest import approx, instance, solve_checked

from offtake.check import check_tables
from offtake.check.tables import read_tables


def consortium(**o3) -> dict:
    return {
        "meta": {"name": "split", "currency": "USD", "price_year": 2025},
        "horizon": {"first_year": 2026, "last_year": 2026},
        "materials": [{"id": "MAG", "form": "magnet"}],
        "facilities": [
            {"id": "S1", "company": "One", "country": "US", "stage": "MAGNET",
             "product": "MAG", "capacity_t": 1000},
            {"id": "NEW", "company": "Cons", "country": "US", "stage": "MAGNET",
             "product": "MAG", "capacity_t": 0, "candidate": True,
             "builds": [{"id": "NEW-B", "nameplate_t": 100, "cost": 1_000_000,
                         "paid_by": "consortium"}]}],
        "buyers": [{"id": "B1", "country": "US", "demand_t": {"MAG": 60}},
                   {"id": "B2", "country": "DE", "demand_t": {"MAG": 40}}],
        "offers": [
            {"id": "O1", "supplier": "S1", "material": "MAG", "first_year": 2026,
             "last_year": 2026, "max_t_per_year": 1000, "price_per_kg": 80},
            {"id": "O3", "supplier": "NEW", "material": "MAG", "first_year": 2026,
             "last_year": 2026, "max_t_per_year": 100, "price_per_kg": 40,
             "signing_cost": 50_000, **o3}],
    }


def test_shared_items_follow_the_volumes(tmp_path):
    """B1 takes 60 %, B2 40 % of O3's 100 t: contracts 2.4M / 1.6M; signing cost 30,000 /
    20,000 (contracted volume); build cost 0.6M / 0.4M (committed offtake at NEW). Totals
    3.03M + 2.02M = 5.05M, the objective."""
    res = solve_checked(instance(consortium()), tmp_path)
    assert res.objective == approx(5_050_000)
    by = res.buyer_costs()
    assert by["B1"]["contract_payments"] == approx(2_400_000)
    assert by["B2"]["contract_payments"] == approx(1_600_000)
    assert (by["B1"]["signing_costs"], by["B2"]["signing_costs"]) == (
        approx(30_000), approx(20_000))
    assert (by["B1"]["build_costs"], by["B2"]["build_costs"]) == (
        approx(600_000), approx(400_000))
    assert sum(by["B1"].values()) == approx(3_030_000)
    assert sum(by["B2"].values()) == approx(2_020_000)
    costs = res.tables["costs"]
    assert costs[costs["in_objective"]]["value"].sum() == approx(res.objective)
    assert set(costs["buyer"]) == {"B1", "B2"}


def test_rebates_prepayments_and_credits_are_split(tmp_path):
    """O3 with an all-units tier (10 % off from 50 t), a 100,000 prepayment fully credited:
    rebate 0.1 x 40,000 x 100 t = 400,000 split 240,000 / 160,000 by contracted volume; the
    prepayment 60,000 / 40,000 likewise; the credit of 100,000 by delivered volume, -60,000 /
    -40,000. Objective 4M - 0.4M + 0.05M + 0.1M - 0.1M + 1M = 4.65M: B1 2.79M, B2 1.86M."""
    res = solve_checked(instance(consortium(
        tiers=[{"from_t": 0, "discount": 0.0}, {"from_t": 50, "discount": 0.1}],
        prepayment=100_000, prepayment_credit_share=1.0)), tmp_path)
    assert res.objective == approx(4_650_000)
    by = res.buyer_costs()
    assert (by["B1"]["volume_rebates"], by["B2"]["volume_rebates"]) == (
        approx(-240_000), approx(-160_000))
    assert (by["B1"]["prepayments"], by["B2"]["prepayments"]) == (
        approx(60_000), approx(40_000))
    assert (by["B1"]["prepayment_credits"], by["B2"]["prepayment_credits"]) == (
        approx(-60_000), approx(-40_000))
    assert sum(by["B1"].values()) == approx(2_790_000)
    assert sum(by["B2"].values()) == approx(1_860_000)


def test_an_offer_without_volume_is_split_equally(tmp_path):
    """O1 forced with a 10,000 signing cost and left empty (S1 at 80 is dearer than O3):
    5,000 each. Objective 5.06M."""
    raw = consortium()
    raw["offers"][0].update(decision="forced", signing_cost=10_000)
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(5_060_000)
    by = res.buyer_costs()
    assert (by["B1"]["signing_costs"], by["B2"]["signing_costs"]) == (
        approx(35_000), approx(25_000))  # O1's 5,000 each + O3's 30,000 / 20,000


def test_a_pooled_soft_row_is_split_equally(tmp_path):
    """NEW at 200 t nameplate (O3 up to 200 t), a soft bankability rule over both buyers at
    1,000 USD per tonne short asking for 100 % of nameplate: committing 100 t more would cost
    4M, leaving 100 t short costs 100,000, split 50,000 / 50,000. 5.15M."""
    raw = consortium(max_t_per_year=200)
    raw["facilities"][1]["builds"][0]["nameplate_t"] = 200
    raw["rules"] = [{"id": "BANK", "kind": "bankability", "facilities": ["NEW"],
                     "min_share": 1.0, "first_years": 1, "hard": False,
                     "penalty_per_unit": 1000}]
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(5_150_000)
    by = res.buyer_costs()
    assert (by["B1"]["rule_violation_penalties"], by["B2"]["rule_violation_penalties"]) == (
        approx(50_000), approx(50_000))


def test_the_checker_recomputes_each_share(tmp_path):
    """10,000 of the signing cost moved from B1 to B2 in costs.csv: the term's total still
    matches, each buyer's share does not (buyer_cost, by 10,000 each)."""
    inst = instance(consortium())
    res = solve_checked(inst, tmp_path)
    bad = read_tables(tmp_path)
    c = bad["costs"]
    for b, delta in (("B1", -10_000), ("B2", 10_000)):
        pick = (c["term"] == "signing_costs") & (c["buyer"] == b)
        c.loc[pick, "value"] = str(float(c.loc[pick, "value"].iloc[0]) + delta)
    report = check_tables(inst, bad, res.objective, None)
    assert sorted((v.constraint, v.index) for v in report.violations) == [
        ("buyer_cost", "signing_costs,B1"), ("buyer_cost", "signing_costs,B2")]
    assert all(v.amount == pytest.approx(10_000) for v in report.violations)


def test_a_folder_without_the_buyer_column_still_checks(tmp_path):
    """Older folders: one row per term, no buyer column; totals are checked, nothing split."""
    inst = instance(consortium())
    res = solve_checked(inst, tmp_path)
    t = read_tables(tmp_path)
    c = t["costs"].copy()
    c["value"] = c["value"].astype(float)
    t["costs"] = c.groupby(["term", "payer", "in_objective"], sort=False, as_index=False)[
        "value"].sum()[["term", "value", "payer", "in_objective"]].astype(str)
    assert check_tables(inst, t, res.objective, None).violations == []


def test_the_report_shows_each_buyer_and_the_total(tmp_path):
    """buyer_costs_frame: a row per buyer and a total row equal to the objective."""
    from offtake.report.tables import TOTAL, buyer_costs_frame

    res = solve_checked(instance(consortium()), tmp_path)
    frame = buyer_costs_frame(res).set_index("buyer")
    assert list(frame.index) == ["B1", "B2", TOTAL]
    assert frame.loc["B1", "total"] == approx(3_030_000)
    assert frame.loc[TOTAL, "total"] == approx(res.objective)
    assert "build_costs" in frame.columns and "freight" not in frame.columns
