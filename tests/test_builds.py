"""Build options (formulation.md, facility_build): candidate plants and expansions, ramped
capacity, who pays the build cost, decisions, and the checker on builds.csv. Hand-derived
optima on `conftest.base()`: buyer B1 needs 60 t (2026) and 90 t (2027); O1 sells at 80 USD/kg
(S1, 100 t/yr), O2 at 70 / 72 (S2, 50 / 80 t). Without builds the optimum is 10.86M: 2026 O2 50
t x 70,000 + O1 10 t x 80,000 = 4.3M; 2027 O2 80 t x 72,000 + O1 10 t x 80,000 = 6.56M."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import approx, base, check, codes, instance, only, solve_checked

from offtake.check import check_tables
from offtake.check.tables import read_tables

WITHOUT = 10_860_000.0


def with_candidate(cost: float = 1_000_000.0, paid_by: str = "buyers", **option) -> dict:
    """base() plus candidate plant NEW (US, 100 t nameplate) selling O3 at 40 USD/kg."""
    raw = base()
    raw["facilities"].append({
        "id": "NEW", "company": "Consortium", "country": "US", "stage": "MAGNET",
        "product": "MAG", "capacity_t": 0, "candidate": True,
        "builds": [{"id": "NEW-B", "nameplate_t": 100, "cost": cost, "paid_by": paid_by,
                    **option}]})
    raw["offers"].append({"id": "O3", "supplier": "NEW", "material": "MAG", "first_year": 2026,
                          "last_year": 2027, "max_t_per_year": 100, "price_per_kg": 40})
    return raw


def built(res) -> dict[str, int]:
    return dict(zip(res.tables["builds"]["build_id"], res.tables["builds"]["built"],
                    strict=True))


@pytest.mark.parametrize(("cost", "is_built", "objective"), [
    (4_000_000.0, 1, 10_000_000.0), (5_000_000.0, 0, WITHOUT)])
def test_a_candidate_is_built_when_it_pays(tmp_path, cost, is_built, objective):
    """Built, all 150 t come from NEW at 40 USD/kg: 6M + the build cost. Building pays while
    6M + C < 10.86M, i.e. C < 4.86M: built at C = 4M (10M), not at C = 5M (10.86M)."""
    res = solve_checked(instance(with_candidate(cost)), tmp_path)
    assert res.objective == approx(objective)
    assert built(res) == {"NEW-B": is_built}
    assert res.cost_terms()["build_costs"] == approx(cost * is_built)
    signed = dict(zip(res.tables["offers"]["offer_id"], res.tables["offers"]["signed"],
                      strict=True))
    assert signed["O3"] == is_built


def test_lead_time_and_ramp_limit_the_first_years(tmp_path):
    """Lead time 1 year: NEW operates from 2027, at 50 % of 100 t in its first year. 2026 as
    without (4.3M); 2027: NEW 50 t x 40,000 = 2M, O2 40 t x 72,000 = 2.88M. With the 1M build
    cost: 4.3 + 2 + 2.88 + 1 = 10.18M < 10.86M, so it is built and NEW's capacity row binds at
    50 t in 2027."""
    res = solve_checked(instance(with_candidate(lead_time_years=1, ramp=[0.5, 1.0])), tmp_path)
    assert res.objective == approx(10_180_000)
    row = res.tables["builds"].iloc[0]
    assert (row["start_year"], row["cost_year"], row["built"]) == (2026 + 1, 2026, 1)
    c = res.tables["contracts"]
    assert c[(c["offer_id"] == "O3")].set_index("year")["volume_t"].to_dict() == {
        2026: 0.0, 2027: approx(50)}


def test_a_government_paid_build_is_fiscal_cost_not_objective(tmp_path):
    """A 5M plant the buyers would not build (see above) is built when a government pays:
    the buyers pay 6M for 150 t at 40 USD/kg; costs.csv carries fiscal_build_support 5M for
    'US DoE', outside the objective. A supplier-paid plant: 6M and no fiscal cost."""
    gov = solve_checked(instance(with_candidate(5_000_000, "US DoE")), tmp_path / "gov")
    assert gov.objective == approx(6_000_000) and built(gov) == {"NEW-B": 1}
    assert gov.fiscal_costs() == {"US DoE": approx(5_000_000)}
    assert gov.cost_terms()["build_costs"] == 0
    own = solve_checked(instance(with_candidate(5_000_000, "supplier")), tmp_path / "own")
    assert own.objective == approx(6_000_000) and own.fiscal_costs() == {}


def test_an_expansion_adds_to_an_existing_facility(tmp_path):
    """S2 (O2 up to 200 t/yr) can add 30 t for 0.1M: 2026 60 t from O2 at 70,000 = 4.2M
    (saves 0.1M against O1), 2027 90 t at 72,000 = 6.48M (saves 0.08M). 10.78M with the
    expansion against 10.86M without. Forbidden: 10.86M."""
    raw = base()
    raw["facilities"][1]["builds"] = [{"id": "S2-X", "nameplate_t": 30, "cost": 100_000,
                                       "paid_by": "buyers"}]
    raw["offers"][1]["max_t_per_year"] = 200
    res = solve_checked(instance(raw), tmp_path / "free")
    assert res.objective == approx(10_780_000) and built(res) == {"S2-X": 1}
    raw["facilities"][1]["builds"][0]["decision"] = "forbidden"
    res = solve_checked(instance(raw), tmp_path / "forbidden")
    assert res.objective == approx(WITHOUT) and built(res) == {"S2-X": 0}


def test_a_phase_needs_the_phase_it_requires(tmp_path):
    """Phase 2 (another 50 t, free) requires phase 1 (50 t, 4.9M): building both makes NEW
    100 t: 6M + 4.9M = 10.9M > 10.86M, so neither is built; with phase 1 forced, phase 2
    comes along: 10.9M. With phase 1 forbidden and phase 2 forced: infeasible."""
    raw = with_candidate(4_900_000, nameplate_t=50)
    raw["facilities"][-1]["builds"].append({"id": "NEW-B2", "nameplate_t": 50,
                                            "requires": "NEW-B", "paid_by": "buyers"})
    res = solve_checked(instance(raw), tmp_path / "free")
    assert res.objective == approx(WITHOUT) and built(res) == {"NEW-B": 0, "NEW-B2": 0}
    raw["facilities"][-1]["builds"][0]["decision"] = "forced"
    res = solve_checked(instance(raw), tmp_path / "forced")
    assert res.objective == approx(10_900_000) and built(res) == {"NEW-B": 1, "NEW-B2": 1}
    raw["facilities"][-1]["builds"][0]["decision"] = "free"
    raw["facilities"][-1]["builds"][0]["nameplate_t"] = 1  # keep it in the horizon, useless
    raw["facilities"][-1]["builds"][0]["decision"] = "forbidden"
    raw["facilities"][-1]["builds"][1]["decision"] = "forced"
    assert not check(raw).ok  # validation: a forced option requires a forbidden one
    assert "forced_build_requires_forbidden" in codes(check(raw))


def test_an_offer_of_an_unbuilt_candidate_cannot_be_signed(tmp_path):
    """O3 forced while NEW's only option is forbidden: z_O3 <= b = 0 contradicts z_O3 = 1,
    although O3 has no minimum volume and no signing cost (it could be signed and left
    empty if the link were missing)."""
    raw = with_candidate(decision="forbidden")
    raw["offers"][-1]["decision"] = "forced"
    res = solve_checked(instance(raw), tmp_path)
    assert res.status == "infeasible"


def test_the_checker_reads_builds_csv(tmp_path):
    """A plan that claims the plant is not built but still takes its volume breaks
    facility_capacity_max (150 t on 0 capacity) and build_offer_link; a wrong start year is a
    table violation; a built option the buyers pay for changes the cost term."""
    inst = instance(with_candidate(4_000_000))
    res = solve_checked(inst, tmp_path)
    tables = read_tables(tmp_path)
    bad = {k: v.copy() for k, v in tables.items()}
    bad["builds"].loc[0, "built"] = "0"
    report = check_tables(inst, bad, res.objective, None)
    assert {v.constraint for v in report.violations} >= {
        "facility_capacity_max", "build_offer_link", "cost_term"}
    bad = {k: v.copy() for k, v in tables.items()}
    bad["builds"].loc[0, "start_year"] = "2027"
    only_table = [v for v in check_tables(inst, bad, res.objective, None).violations]
    assert [v.constraint for v in only_table] == ["table"]
    assert "start_year" in only_table[0].message


def test_plan_json_carries_the_build_decision(tmp_path):
    """The portfolio written for `offtake evaluate` holds v_built and evaluation reads it:
    the optimal plan (built, 60 + 90 t from O3) costs 10M in a scenario where the other
    suppliers' capacity is halved (it uses none of it); the same volumes with the plant not
    built cannot be delivered (0 t of capacity): infeasible."""
    from offtake.analysis.evaluate import evaluate_plan
    from offtake.formulation.data import build_data

    raw = with_candidate(4_000_000)
    res = solve_checked(instance(raw), tmp_path)
    assert res.plan["v_built"] == {"NEW-B": 1.0}
    raw["scenarios"] = [{"id": "base", "probability": 0.5},
                        {"id": "cut", "probability": 0.5,
                         "capacity": [{"facilities": ["S1", "S2"], "multiplier": 0.5}]}]
    d = build_data(instance(raw))
    ev = evaluate_plan(d, res.plan)
    assert ev.cost == {"base": approx(10_000_000), "cut": approx(10_000_000)}
    unbuilt = {**res.plan, "v_built": {"NEW-B": 0.0}}
    assert {s.lower() for s in evaluate_plan(d, unbuilt).status.values()} == {"infeasible"}


# --- bad input -------------------------------------------------------------------------------
def _finding(raw: dict, code: str):
    res = check(raw)
    assert not res.ok
    return only(res, code)


def test_a_candidate_needs_a_build_option_and_no_capacity_of_its_own():
    raw = with_candidate()
    raw["facilities"][-1]["builds"] = []
    f = _finding(raw, "candidate_without_build")
    assert f.location.endswith("candidate") and "NEW" in f.message and f.hint
    raw = with_candidate()
    raw["facilities"][-1]["capacity_t"] = 20
    f = _finding(raw, "candidate_with_capacity")
    assert f.location.endswith("capacity_t") and "nameplate_t" in f.hint


def test_a_build_that_cannot_start_in_the_horizon_is_rejected():
    f = _finding(with_candidate(lead_time_years=3), "build_after_horizon")
    assert "2029" in f.message and f.location.endswith("lead_time_years") and f.hint
    f = _finding(with_candidate(earliest_year=2030), "build_after_horizon")
    assert f.location.endswith("earliest_year")


def test_a_late_earliest_year_is_a_warning():
    res = check(with_candidate(earliest_year=2026, lead_time_years=1))
    assert res.ok and "build_start_delayed" in codes(res, "warning")


@pytest.mark.parametrize(("change", "code", "where"), [
    ({"requires": "NOPE"}, "unknown_reference", "requires"),
    ({"requires": "NEW-B"}, "build_requires_itself", "requires"),
    ({"paid_by": "Buyers"}, "ambiguous_payer", "paid_by"),
    ({"id": "O1"}, "duplicate_id", "id"),
])
def test_bad_build_options_are_located(change, code, where):
    raw = with_candidate()
    raw["facilities"][-1]["builds"][0].update(change)
    f = _finding(raw, code)
    assert "builds" in f.location and f.location.endswith(where)


@pytest.mark.parametrize("field,value", [("nameplate_t", 0), ("ramp", []), ("ramp", [1.5]),
                                          ("lead_time_years", -1), ("cost", -5)])
def test_the_schema_rejects_bad_build_fields(field, value):
    raw = with_candidate()
    raw["facilities"][-1]["builds"][0][field] = value
    res = check(raw)
    assert not res.ok
    assert any(field in f.location for f in res.findings), [str(f) for f in res.findings]


def test_builds_table_is_written_and_read_back(tmp_path):
    from offtake.results.tables import Results

    res = solve_checked(instance(with_candidate(4_000_000)), tmp_path)
    back = Results.read(tmp_path)
    pd.testing.assert_frame_equal(back.tables["builds"], res.tables["builds"],
                                  check_dtype=False)
