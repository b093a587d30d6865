"""The bankability rule (formulation.md, bankability): a plant is built only if committed
offtake covers a share of its ramped nameplate in its first years. Hand-derived optima on one
instance: buyer B1 needs 60 t of MAG in 2026 and 2027; S1 sells at 80 USD/kg (1,000 t/yr);
candidate plant NEW (100 t nameplate, paid for by its supplier) would sell at 70 USD/kg (O3,
up to 100 t/yr). Without the plant: 2 x 60 t x 80,000 = 9.6M; with it: 2 x 60 t x 70,000 =
8.4M. A bankability rule with share s asks for 100 s t committed to NEW in each year."""

from __future__ import annotations

import pytest
from conftest import approx, check, instance, only, solve_checked

from offtake.check import check_tables
from offtake.check.tables import read_tables


def plant(share: float | None = 0.6, years: int = 2, take_or_pay: float | None = None,
          **rule) -> dict:
    raw = {
        "meta": {"name": "bankable", "currency": "USD", "price_year": 2025},
        "horizon": {"first_year": 2026, "last_year": 2027},
        "materials": [{"id": "MAG", "form": "magnet"}],
        "facilities": [
            {"id": "S1", "company": "One", "country": "US", "stage": "MAGNET",
             "product": "MAG", "capacity_t": 1000},
            {"id": "NEW", "company": "Cons", "country": "US", "stage": "MAGNET",
             "product": "MAG", "capacity_t": 0, "candidate": True,
             "builds": [{"id": "NEW-B", "nameplate_t": 100}]}],
        "buyers": [{"id": "B1", "country": "US", "demand_t": {"MAG": 60}}],
        "offers": [
            {"id": "O1", "supplier": "S1", "material": "MAG", "first_year": 2026,
             "last_year": 2027, "max_t_per_year": 1000, "price_per_kg": 80},
            {"id": "O3", "supplier": "NEW", "material": "MAG", "first_year": 2026,
             "last_year": 2027, "max_t_per_year": 100, "price_per_kg": 70}],
    }
    if take_or_pay is not None:
        raw["offers"][1]["take_or_pay_share"] = take_or_pay
    if share is not None:
        raw["rules"] = [{"id": "BANK", "kind": "bankability", "facilities": ["NEW"],
                         "min_share": share, "first_years": years, **rule}]
    return raw


def built(res) -> int:
    return int(res.tables["builds"].set_index("build_id").loc["NEW-B", "built"])


def rows(res):
    r = res.tables["rules"]
    return r[r["kind"] == "bankability"].set_index("year")


@pytest.mark.parametrize(("share", "is_built", "objective"), [
    (None, 1, 8_400_000), (0.6, 1, 8_400_000), (0.68, 1, 9_520_000), (0.69, 0, 9_600_000)])
def test_the_build_turns_off_exactly_at_its_threshold(tmp_path, share, is_built, objective):
    """Built, B1 must commit max(60, 100 s) t a year to NEW at 70 USD/kg (a surplus above its
    demand is kept): 2 x 70,000 x max(60, 100 s). That beats 9.6M while 70 x 100 s < 80 x 60,
    s < 0.6857: at s = 0.68, 2 x 70,000 x 68 = 9.52M (built, 8 t surplus a year); at s = 0.69
    it would cost 9.66M, so NEW is not built and B1 buys from S1: 9.6M. Up to s = 0.6 the
    demand alone covers it: 8.4M, as without the rule."""
    res = solve_checked(instance(plant(share)), tmp_path, mip_gap=1e-9)
    assert res.objective == approx(objective)
    assert built(res) == is_built
    if share is not None and is_built:
        r = rows(res)
        assert list(r.index) == [2026, 2027]
        assert r["lhs"].tolist() == [approx(max(60, 100 * share))] * 2
        assert r["bound"].tolist() == [approx(100 * share)] * 2
        assert set(r["scenario"]) == {""} and r["base_t"].tolist() == [approx(100)] * 2


def test_a_binding_row_has_the_price_of_a_committed_tonne(tmp_path):
    """At s = 0.65 B1 commits 65 t (5 t above demand): one tonne less required saves
    70,000 USD in that year; both rows bind with that shadow price (no discounting)."""
    res = solve_checked(instance(plant(0.65)), tmp_path)
    r = rows(res)
    assert r["binding"].tolist() == [True, True]
    assert r["shadow_price"].tolist() == [approx(70_000), approx(70_000)]


def test_take_or_pay_counts_its_share_of_the_contracted_volume(tmp_path):
    """O3 with take_or_pay_share 0.5: committed offtake is 0.5 q. At s = 0.5, contracting
    the whole 100 t (the plant's capacity bounds q) commits 50 t; B1 takes 60 t (no shortfall
    below 50): 8.4M, built. At s = 0.61 it would need q >= 122 > 100: NEW cannot be made
    bankable and is not built (9.6M), although an ordinary offer would be built at that share
    (2 x 70,000 x 61 = 8.54M)."""
    half = solve_checked(instance(plant(0.5, take_or_pay=0.5)), tmp_path / "half")
    assert half.objective == approx(8_400_000) and built(half) == 1
    assert rows(half)["lhs"].tolist() == [approx(50), approx(50)]
    short = solve_checked(instance(plant(0.61, take_or_pay=0.5)), tmp_path / "short")
    assert short.objective == approx(9_600_000) and built(short) == 0
    plain = solve_checked(instance(plant(0.61)), tmp_path / "plain")
    assert plain.objective == approx(8_540_000) and built(plain) == 1


def test_only_the_first_years_of_operation_are_covered(tmp_path):
    """first_years 1: only 2026 has a row. At s = 0.68: 68 t in 2026, 60 t in 2027:
    70,000 x 128 = 8.96M."""
    res = solve_checked(instance(plant(0.68, years=1)), tmp_path)
    assert res.objective == approx(8_960_000)
    assert list(rows(res).index) == [2026]


def test_a_soft_row_pays_its_penalty_once_in_every_scenario(tmp_path):
    """Soft at 1,000 USD per tonne short, s = 0.9: committing 90 t would cost 30 t x 70,000 a
    year; leaving 30 t short costs 30,000: 2 x (4.2M + 30,000) = 8.46M. With two equally
    likely identical scenarios the row (first stage) is one row, its penalty counted in
    each: still 8.46M."""
    raw = plant(0.9, hard=False, penalty_per_unit=1000)
    raw["scenarios"] = [{"id": "a", "probability": 0.5}, {"id": "b", "probability": 0.5}]
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(8_460_000)
    r = rows(res)
    assert r["violation"].tolist() == [approx(30), approx(30)]
    assert res.cost_terms()["rule_violation_penalties"] == approx(60_000)


def test_the_checker_recomputes_the_rows(tmp_path):
    """Committed volume of O3 cut to 50 t in 2026 (all scenarios) in the tables: the
    bankability row (50 < 60) is broken, and rules.csv no longer matches."""
    inst = instance(plant(0.6))
    res = solve_checked(inst, tmp_path)
    bad = read_tables(tmp_path)
    c = bad["contracts"]
    pick = (c["offer_id"] == "O3") & (c["year"] == "2026")
    c.loc[pick, "volume_t"] = "50"
    report = check_tables(inst, bad, res.objective, None)
    broken = [v for v in report.violations if v.constraint == "bankability_min"]
    assert broken and broken[0].index == "BANK,NEW,2026," and broken[0].amount == approx(10)


def test_bankability_names_a_facility_with_build_options():
    raw = plant(0.6)
    raw["rules"][0]["facilities"] = ["S1"]
    f = only(check(raw), "bankability_without_build")
    assert f.location.endswith("facilities[0]") and "S1" in f.message and f.hint


@pytest.mark.parametrize("change", [{"min_share": 1.2}, {"first_years": 0},
                                    {"in_expectation": True}, {"facilities": []}])
def test_the_schema_rejects_bad_bankability_fields(change):
    raw = plant(0.6)
    raw["rules"][0].update(change)
    assert not check(raw).ok
