"""Uncertainty: scenario changes, the two-stage portfolio, CVaR, and the value of the
stochastic solution and of perfect information, on instances derived by hand."""

from __future__ import annotations

import copy

import pytest
from conftest import approx, instance, solve_checked

from offtake.analysis.stochastic import stochastic_value
from offtake.domain.risk import cvar, summary, value_at_risk
from offtake.io.loader import validate_mapping


def test_cvar_of_a_known_distribution():
    """Costs 10/20/30/40 with probabilities 0.1/0.2/0.3/0.4. At alpha 0.5 the worst half of
    the mass is 0.4 at 40 and 0.1 at 30: (16 + 3) / 0.5 = 38; VaR = 30. At 0.8: 40."""
    costs, probs = [10, 20, 30, 40], [0.1, 0.2, 0.3, 0.4]
    assert value_at_risk(costs, probs, 0.5) == 30
    assert cvar(costs, probs, 0.5) == pytest.approx(38)
    assert cvar(costs, probs, 0.8) == pytest.approx(40)
    s = summary(costs, probs, 0.5)
    assert s["mean"] == pytest.approx(30) and s["std"] == pytest.approx(10)
    assert s["worst"] == 40 and s["best"] == 10


TWO_STAGE = {
    "meta": {"name": "two-stage", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2026},
    "materials": [{"id": "MAG", "form": "magnet"}],
    "facilities": [{"id": "S", "company": "S", "country": "US", "stage": "MAGNET",
                    "product": "MAG", "capacity_t": 1000}],
    "buyers": [{"id": "B", "country": "US", "demand_t": {"MAG": 100}}],
    "offers": [{"id": "O", "supplier": "S", "material": "MAG", "first_year": 2026,
                "last_year": 2026, "max_t_per_year": 500, "price_per_kg": 60,
                "take_or_pay_share": 1.0}],
    "spot_markets": [{"id": "SPOT", "material": "MAG", "origin": "CN", "price_per_kg": 100,
                      "unlimited": True}],
    "scenarios": [
        {"id": "low", "probability": 0.5, "demand": [{"multiplier": 0.5}]},
        {"id": "high", "probability": 0.5, "demand": [{"multiplier": 1.5}]},
    ],
}
"""Commit q t now at 60 USD/kg (paid in full whatever is taken); demand turns out 50 or 150 t
(p = 1/2 each); the rest comes from spot at 100. Per kg: E[cost](q) = 10,000 - 40 q for
q <= 50 and 7,500 + 10 q for 50 <= q <= 150, so q* = 50 t and RP = 8.0M. The EV problem
(demand 100) commits 100 t: EV = 6.0M; that plan costs 6.0M or 11.0M: EEV = 8.5M. With
foresight: 3.0M or 9.0M: WS = 6.0M. VSS = 0.5M, EVPI = 2.0M."""


def test_two_stage_portfolio_hedges_demand(tmp_path):
    res = solve_checked(instance(TWO_STAGE), tmp_path)
    assert res.objective == approx(8_000_000)
    c = res.tables["contracts"]
    assert list(c["volume_t"]) == [approx(50)] * len(c)
    sc = res.tables["scenario_costs"].groupby("scenario")["value"].sum()
    assert sc["low"] == approx(3_000_000) and sc["high"] == approx(13_000_000)
    assert res.risk["mean"] == approx(8_000_000) and res.risk["std"] == approx(5_000_000)


def test_value_of_the_stochastic_solution_and_of_perfect_information():
    v = stochastic_value(instance(TWO_STAGE))
    assert v.rp == approx(8_000_000)
    assert v.ev == approx(6_000_000)
    assert v.eev == approx(8_500_000)
    assert v.ws == approx(6_000_000)
    assert v.vss == approx(500_000) and v.evpi == approx(2_000_000)


def test_a_vss_made_of_unmet_demand_says_so():
    """TWO_STAGE without the spot market, unmet demand at 200 USD/kg. The EV plan commits
    the average demand, 100 t: low pays 100 t x 60 = 6.0M, high adds 50 t unmet x 200,000 =
    10.0M: EEV = 11.0M, of which 5.0M unmet-demand penalty. RP: for 50 <= q <= 150 the
    expected cost per kg is 60 q + 100 (150 - q), falling to 9.0M at q = 150, nothing unmet.
    VSS = 2.0M, less than the 5.0M of penalty in EEV: the value table says VSS rests on the
    penalty."""
    from offtake.report import tables

    raw = copy.deepcopy(TWO_STAGE)
    raw["spot_markets"] = []
    raw["materials"][0]["unmet_penalty_per_kg"] = 200
    v = stochastic_value(instance(raw))
    assert v.eev == approx(11_000_000) and v.rp == approx(9_000_000)
    assert v.eev_unmet == approx(5_000_000) and v.rp_unmet == approx(0)
    assert v.as_dict()["unmet_penalty_in_EEV"] == approx(5_000_000)
    frame = tables.value_frame(v, "USD")
    assert "it is only as real as that penalty" in frame.attrs["caption"]
    plain = tables.value_frame(stochastic_value(instance(TWO_STAGE)), "USD")
    assert "penalty" not in plain.attrs["caption"]  # spot covers the gap: no unmet demand


def test_cvar_weight_buys_protection(tmp_path):
    """lambda = 1, alpha = 0.5: CVaR is the high-demand cost 15,000 - 40 q per kg for
    50 <= q <= 150, so E + CVaR = 22,500 - 30 q: commit 150 t; expected cost 9.0M, CVaR 9.0M,
    objective 18.0M. lambda = 0.2 keeps q = 50 (10,500 + 2 q): 10.6M."""
    res = solve_checked(instance(TWO_STAGE), tmp_path / "a", cvar_weight=1.0, cvar_alpha=0.5)
    assert res.objective == approx(18_000_000)
    assert list(res.tables["contracts"]["volume_t"]) == [approx(150)] * 2
    assert sum(res.cost_terms().values()) == approx(18_000_000)
    res = solve_checked(instance(TWO_STAGE), tmp_path / "b", cvar_weight=0.2, cvar_alpha=0.5)
    assert res.objective == approx(10_600_000)


def test_a_cvar_limit_buys_protection_at_least_expected_cost(tmp_path):
    """The epsilon constraint of the risk front (formulation.md, cvar_limit), alpha = 0.5.
    For 50 <= q <= 150 t (from the derivation above, per tonne x 1,000): E = 7.5M + 10,000 q
    and CVaR_0.5 = the high-demand cost = 15M - 40,000 q (it is the costlier scenario while
    q <= 150); below 50 t CVaR is the same line and E falls with q, so q < 50 never helps.
    Unbounded, q = 50: E = 8.0M, CVaR = 13.0M. With L = 11M: q >= 100, E least at q = 100:
    8.5M with CVaR exactly 11M. L = 14M binds nothing (8.0M). Above 150 t both scenarios
    cost 60,000 q, so the least CVaR is 9.0M (q = 150): L = 8.9M is infeasible. The checker
    recomputes CVaR from the plan's scenario costs: the 11M plan read against L = 10.5M is a
    cvar_limit violation of 0.5M."""
    import json

    from offtake.check import check_folder

    res = solve_checked(instance(TWO_STAGE), tmp_path / "a", cvar_limit=11_000_000,
                        cvar_alpha=0.5)
    assert res.objective == approx(8_500_000)
    assert list(res.tables["contracts"]["volume_t"]) == [approx(100)] * 2
    assert res.risk["cvar"] == approx(11_000_000)
    assert "risk_cvar" not in res.cost_terms() or res.cost_terms()["risk_cvar"] == approx(0)
    loose = solve_checked(instance(TWO_STAGE), tmp_path / "b", cvar_limit=14_000_000,
                          cvar_alpha=0.5)
    assert loose.objective == approx(8_000_000)
    tight = solve_checked(instance(TWO_STAGE), tmp_path / "c", cvar_limit=8_900_000,
                          cvar_alpha=0.5)
    assert tight.status == "infeasible"
    summary_path = tmp_path / "a" / "summary.json"
    summary = json.loads(summary_path.read_text())
    assert summary["options"]["cvar_limit"] == 11_000_000
    summary["options"]["cvar_limit"] = 10_500_000
    summary_path.write_text(json.dumps(summary))
    [bad] = check_folder(instance(TWO_STAGE), tmp_path / "a").violations
    assert bad.constraint == "cvar_limit" and bad.amount == approx(500_000)


def test_one_scenario_equals_the_deterministic_model(tmp_path):
    raw = copy.deepcopy(TWO_STAGE)
    raw["scenarios"] = [{"id": "only", "probability": 1.0, "demand": [{"multiplier": 1.5}]}]
    det = copy.deepcopy(TWO_STAGE)
    del det["scenarios"]
    det["buyers"][0]["demand_t"]["MAG"] = 150
    a = solve_checked(instance(raw), tmp_path / "a")
    b = solve_checked(instance(det), tmp_path / "b")
    assert a.objective == approx(b.objective) == approx(9_000_000)


def test_scenario_spec_expands_factors_and_samples():
    """Two independent factors (2 x 2 levels) give 4 scenarios with product probabilities;
    sampling 3 index paths per combination gives 12, each with probability split evenly."""
    raw = copy.deepcopy(TWO_STAGE)
    del raw["scenarios"]
    raw["price_indices"] = [{"id": "IDX", "price_per_kg": 100}]
    raw["scenario_spec"] = {
        "factors": [
            {"id": "demand", "levels": [
                {"id": "low", "probability": 0.3, "demand": [{"multiplier": 0.5}]},
                {"id": "high", "probability": 0.7, "demand": [{"multiplier": 1.5}]}]},
            {"id": "china", "levels": [
                {"id": "open", "probability": 0.8},
                {"id": "ban", "probability": 0.2,
                 "spot": [{"origins": ["CN"], "availability_multiplier": 0}]}]},
        ],
        "sampling": {"index": "IDX", "n": 3, "volatility": 0.3, "seed": 7},
    }
    res = validate_mapping(raw)
    assert res.ok, [str(f) for f in res.findings]
    sc = res.instance.scenarios
    assert len(sc) == 12
    assert sum(s.probability for s in sc) == pytest.approx(1)
    first = sc[0]
    assert first.id == "demand.low__china.open-s0"
    assert first.probability == pytest.approx(0.3 * 0.8 / 3)
    assert set(first.index_paths) == {"IDX"}
    again = validate_mapping(copy.deepcopy(raw)).instance.scenarios
    assert [s.index_paths for s in again] == [s.index_paths for s in sc]  # seeded


def test_capacity_cut_from_a_year_by_country_group():
    """A covered-nation export cut to 30 % from 2027 scales CN capacity in that year only."""
    from offtake.formulation.data import build_data

    raw = copy.deepcopy(TWO_STAGE)
    raw["horizon"]["last_year"] = 2027
    raw["offers"][0]["last_year"] = 2027
    raw["facilities"][0]["country"] = "CN"
    raw["country_groups"] = [{"id": "COVERED", "members": ["CN", "RU"]}]
    raw["scenarios"] = [
        {"id": "calm", "probability": 0.5},
        {"id": "cut", "probability": 0.5,
         "capacity": [{"groups": ["COVERED"], "from_year": 2027, "multiplier": 0.3}]}]
    d = build_data(instance(raw))
    assert d.capacity_t["S", 2026, "cut"] == 1000 and d.capacity_t["S", 2027, "cut"] == 300
    assert d.capacity_t["S", 2027, "calm"] == 1000


def test_unknown_name_in_a_scenario_change_is_rejected():
    raw = copy.deepcopy(TWO_STAGE)
    raw["scenarios"][0]["demand"] = [{"buyers": ["BB"], "multiplier": 0.5}]
    res = validate_mapping(raw)
    assert not res.ok
    f = next(f for f in res.findings if f.code == "unknown_reference")
    assert f.location == "scenarios[low].demand[0].buyers" and "'B'" in f.hint


def test_the_report_shows_value_json_only_beside_the_run_it_was_computed_for(tmp_path):
    """`offtake value --out DIR` into a solved folder: the HTML report shows VSS 0.5M (the
    derivation above). The folder solved again with another demand (--set): value.json,
    computed for the old instance, is left out with a note instead of standing beside the
    new plan (found trying the tool as a new user)."""
    import yaml
    from typer.testing import CliRunner

    from offtake.apps.cli import app
    from offtake.report.html import build_report

    path = tmp_path / "two_stage.yaml"
    path.write_text(yaml.safe_dump(TWO_STAGE))
    out = tmp_path / "run"
    runner = CliRunner()
    assert runner.invoke(app, ["solve", str(path), "--out", str(out)]).exit_code == 0
    assert runner.invoke(app, ["value", str(path), "--out", str(out)]).exit_code == 0
    page = build_report(out).html
    assert "saves 0.5 million USD (VSS)" in page
    res = runner.invoke(app, ["solve", str(path), "--out", str(out), "--set",
                              "buyers.B.demand_t.MAG=120"])
    assert res.exit_code == 0, res.output
    page = build_report(out).html
    assert "(VSS)" not in page
    assert "value.json is left out: it was computed for another instance or other" in page


def test_cli_value_and_frontier_write_their_files(tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from offtake.apps.cli import app

    path = tmp_path / "two_stage.yaml"
    path.write_text(yaml.safe_dump(TWO_STAGE))
    runner = CliRunner()
    res = runner.invoke(app, ["value", str(path), "--out", str(tmp_path / "v")])
    assert res.exit_code == 0, res.output
    v = json.loads((tmp_path / "v" / "value.json").read_text())
    assert v["VSS"] == approx(500_000) and v["EVPI"] == approx(2_000_000)
    assert (tmp_path / "v" / "cost_distribution.png").stat().st_size > 1000
    res = runner.invoke(app, ["frontier", str(path), "--lambdas", "0,1", "--cvar-alpha", "0.5",
                              "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    import pandas as pd

    f = pd.read_csv(tmp_path / "f" / "frontier.csv")
    assert list(f["expected_cost"]) == [approx(8_000_000), approx(9_000_000)]
    assert list(f["cvar"]) == [approx(13_000_000), approx(9_000_000)]
    # the front read back from its store (the dashboard's view): both lambdas, though
    # their records share one point_id (no changes; lambda is a solve option)
    from offtake.analysis.pareto import front_frame, read_front
    from offtake.analysis.store import SweepStore

    back = front_frame(read_front(SweepStore(tmp_path / "f" / "store", create=False)
                                  .frame(latest=False), "pareto-cvar"))
    assert sorted(back["cost"]) == [approx(8_000_000), approx(9_000_000)]


def test_rule_in_every_scenario_or_in_expectation(tmp_path):
    """Spot only: US-made magnets at 80 USD/kg, Chinese at 50 (100 in 'high', where demand is
    150 t; 50 t in 'low'; p = 1/2). At least 60 % of demand must be US-made.
    In every scenario: low 30 t US + 20 t CN = 3.4M; high all 150 t US (cheaper) = 12.0M;
    expected 7.7M. In expectation: 0.5 A_low + 0.5 A_high >= 0.6 x 100 = 60, met by the
    high scenario alone (75), so low buys all CN (2.5M): expected 7.25M."""
    raw = {
        "meta": {"name": "expectation", "currency": "USD", "price_year": 2025},
        "horizon": {"first_year": 2026, "last_year": 2026},
        "materials": [{"id": "MAG", "form": "magnet"}],
        "buyers": [{"id": "B", "country": "US", "demand_t": {"MAG": 100}}],
        "spot_markets": [
            {"id": "US-SPOT", "material": "MAG", "origin": "US", "price_per_kg": 80,
             "unlimited": True, "feed_origin": {"MAGNET": "US"}},
            {"id": "CN-SPOT", "material": "MAG", "origin": "CN", "price_per_kg": 50,
             "unlimited": True, "feed_origin": {"MAGNET": "CN"}}],
        "scenarios": [
            {"id": "low", "probability": 0.5, "demand": [{"multiplier": 0.5}]},
            {"id": "high", "probability": 0.5, "demand": [{"multiplier": 1.5}],
             "spot": [{"markets": ["CN-SPOT"], "price_multiplier": 2}]}],
        "rules": [{"id": "US60", "kind": "min_content_share", "min_share": 0.6,
                   "stages": ["MAGNET"], "countries": ["US"]}],
    }
    every = solve_checked(instance(raw), tmp_path / "every")
    assert every.objective == approx(7_700_000)
    raw["rules"][0]["in_expectation"] = True
    exp = solve_checked(instance(raw), tmp_path / "exp")
    assert exp.objective == approx(7_250_000)
    (row,) = exp.tables["rules"].itertuples(index=False)
    assert row.scenario == "expected" and row.lhs == approx(75) and row.bound == approx(60)


FLOORED: dict = {
    "meta": {"name": "floored", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2026},
    "materials": [{"id": "MAG", "form": "magnet"}],
    "facilities": [{"id": "S", "company": "S", "country": "US", "stage": "MAGNET",
                    "product": "MAG", "capacity_t": 1000}],
    "buyers": [{"id": "B", "country": "US", "demand_t": {"MAG": 100}}],
    "price_indices": [{"id": "IDX", "price_per_kg": 100,
                       "by_scenario": {"low": 50, "high": 150}}],
    "offers": [{"id": "O", "supplier": "S", "material": "MAG", "first_year": 2026,
                "last_year": 2026, "max_t_per_year": 500, "index": "IDX",
                "floor_per_kg": 100}],
    "spot_markets": [{"id": "SPOT", "material": "MAG", "origin": "CN", "price_per_kg": 110,
                      "unlimited": True}],
    "scenarios": [{"id": "low", "probability": 0.5}, {"id": "high", "probability": 0.5}],
}


def test_the_two_definitions_of_the_expected_value_problem():
    """An index-linked offer with a buyer-paid floor of 100 USD/kg on an index at 50 or 150
    (probability 1/2 each); spot at 110. Averaging the data, the offer costs (100 + 150) / 2 =
    125 in the EV problem: spot wins, EV = 100 t x 110,000 = 11.0M. Averaging the index (100),
    the offer costs max(100, 100) = 100: EV = 10.0M. Either way the EV plan is then evaluated
    over the scenarios: the data plan (spot) costs 11.0M; the parameters plan (the offer, at 100
    or 150) costs 12.5M. RP = 11.0M (spot), so VSS is 0 or 1.5M depending on the definition."""
    data = stochastic_value(instance(FLOORED))
    params = stochastic_value(instance(FLOORED), ev="parameters")
    assert data.ev == approx(11_000_000) and params.ev == approx(10_000_000)
    assert data.eev == approx(11_000_000) and params.eev == approx(12_500_000)
    assert data.rp == params.rp == approx(11_000_000)
    assert data.as_dict()["EV_definition"] == "data" and params.vss == approx(1_500_000)
    with pytest.raises(ValueError, match="parameters"):
        stochastic_value(instance(FLOORED), ev="textbook")


def test_tied_expected_value_optima_are_found_and_both_evaluated():
    """Demand 50 or 150 t (probability 1/2 each: 100 in the EV problem); two offers at 100
    USD/kg with a 1,000 USD signing cost, O2 with take-or-pay on half its volume; spot at 110.
    In the EV problem both contract 100 t for 10,001,000: a tie. Over the scenarios O1's 100 t
    are paid in full in 'low' (10.0M) and topped up with 50 t spot in 'high' (15.5M): EEV
    12,751,000; O2 takes 50 t in 'low' without shortfall (5.0M): EEV 10,251,000. Both EV
    optima are found and evaluated, whichever the solver returns first."""
    raw = copy.deepcopy(FLOORED)
    del raw["price_indices"]
    raw["facilities"].append({"id": "S2", "company": "S2", "country": "DE",
                              "stage": "MAGNET", "product": "MAG", "capacity_t": 1000})
    raw["offers"] = [
        {"id": "O1", "supplier": "S", "material": "MAG", "first_year": 2026,
         "last_year": 2026, "max_t_per_year": 500, "price_per_kg": 100,
         "signing_cost": 1000},
        {"id": "O2", "supplier": "S2", "material": "MAG", "first_year": 2026,
         "last_year": 2026, "max_t_per_year": 500, "price_per_kg": 100,
         "signing_cost": 1000, "take_or_pay_share": 0.5}]
    raw["scenarios"] = [{"id": "low", "probability": 0.5, "demand": [{"multiplier": 0.5}]},
                        {"id": "high", "probability": 0.5, "demand": [{"multiplier": 1.5}]}]
    v = stochastic_value(instance(raw))
    assert v.ev == approx(10_001_000)
    assert v.eev_alternative is not None
    assert sorted([v.eev, v.eev_alternative]) == [approx(10_251_000), approx(12_751_000)]
