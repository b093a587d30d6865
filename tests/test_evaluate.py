"""Evaluating a fixed portfolio in many scenarios from one compiled template
(offtake.analysis.evaluate): hand-derived costs, agreement with the extensive form scenario by
scenario, curtailed contracts priced, scenarios a hard rule makes infeasible reported, and
the affinity guard of offtake.linear."""

from __future__ import annotations

import copy
from pathlib import Path

import pyomo.environ as pyo
import pytest
from conftest import approx, instance
from test_uncertainty import TWO_STAGE

from offtake.analysis.evaluate import EvaluationError, evaluate_plan
from offtake.formulation.data import build_data
from offtake.formulation.model import build_model, first_stage_values, fix_first_stage
from offtake.io.loader import load_instance
from offtake.solvers.highs import SolveOptions, solve
from offtake.solvers.linear import NotAffineError, compile_linear

ROOT = Path(__file__).resolve().parents[1]


def _plan(q: float) -> dict:
    return {"v_signed": {"O": 1.0}, "v_volume_t": {("O", "B", 2026): q}}


def test_hand_derived_costs_of_two_portfolios():
    """TWO_STAGE (see test_uncertainty): committing q = 50 t costs 3.0M (demand 50: 50 t at
    60) or 13.0M (demand 150: 3.0M + 100 t spot at 100); committing 100 t (the EV plan)
    costs 6.0M or 11.0M, so EEV = 8.5M."""
    d = build_data(instance(TWO_STAGE))
    rp = evaluate_plan(d, _plan(50))
    assert rp.cost == {"low": approx(3_000_000), "high": approx(13_000_000)}
    assert rp.expected == approx(8_000_000)
    ev = evaluate_plan(d, _plan(100))
    assert ev.cost == {"low": approx(6_000_000), "high": approx(11_000_000)}
    assert ev.expected == approx(8_500_000)


def test_a_plan_under_a_capacity_cut_is_curtailed_and_priced():
    """A scenario that cuts the supplier to 10 % of 1,000 t curtails the contracted 200 t to
    20 t (force_majeure, pro rata), paid 1.2M; the other 80 t of demand come from spot at
    100: 8.0M, so 'cut' costs 9.2M and the expected cost is (12.0M + 9.2M) / 2 = 10.6M.
    (Before contracts could be curtailed this scenario was infeasible for the plan.)"""
    raw = copy.deepcopy(TWO_STAGE)
    del raw["offers"][0]["take_or_pay_share"]
    raw["scenarios"] = [
        {"id": "open", "probability": 0.5},
        {"id": "cut", "probability": 0.5,
         "capacity": [{"facilities": ["S"], "multiplier": 0.1}]},
    ]
    res = evaluate_plan(build_data(instance(raw)), _plan(200))
    assert res.status == {"open": "optimal", "cut": "optimal"}
    assert res.cost == {"open": approx(12_000_000), "cut": approx(9_200_000)}
    assert res.expected == approx(10_600_000)


def _capped_two_suppliers() -> dict:
    """TWO_STAGE without take-or-pay or spot, a second supplier T (offer P) and a 60 % cap
    on any supplier's share of purchases; scenario 'cut' leaves T 10 % of its capacity."""
    raw = copy.deepcopy(TWO_STAGE)
    del raw["offers"][0]["take_or_pay_share"]
    raw["facilities"].append({"id": "T", "company": "T", "country": "US", "stage": "MAGNET",
                              "product": "MAG", "capacity_t": 1000})
    raw["offers"].append({**raw["offers"][0], "id": "P", "supplier": "T"})
    raw["spot_markets"] = []
    raw["rules"] = [{"id": "CAP", "kind": "max_supplier_share", "max_share": 0.6}]
    raw["scenarios"] = [
        {"id": "open", "probability": 0.5},
        {"id": "cut", "probability": 0.5,
         "capacity": [{"facilities": ["T"], "multiplier": 0.1}]},
    ]
    return raw


def test_a_scenario_a_hard_rule_makes_infeasible_is_reported_not_priced():
    """What can still make a fixed plan impossible in a scenario is a hard rule: a 60 %
    cap on the supplier's share of purchases, with the other supplier cut to 10 % and no
    spot, leaves the 100 t from S at 100 % of purchases in 'cut'."""
    raw = _capped_two_suppliers()
    plan = {"v_signed": {"O": 1.0, "P": 1.0},
            "v_volume_t": {("O", "B", 2026): 50, ("P", "B", 2026): 50}}
    res = evaluate_plan(build_data(instance(raw)), plan)
    assert res.status["open"] == "optimal" and res.cost["open"] == approx(6_000_000)
    assert res.status["cut"] == "Infeasible" and "cut" not in res.cost
    assert res.expected is None


def test_evaluate_names_the_rule_that_breaks_the_plan_and_by_how_much(tmp_path):
    """The instance above through `offtake evaluate`: in 'cut' the plan's 50 t from S must
    be delivered (contracted volumes are), and P is curtailed pro rata with T's capacity
    (formulation.md, force_majeure: a = min(1, 0.1)), 5 t; S holds 50 of 55 t purchased,
    where the 60 % cap allows 0.6 x 55 = 33 t: CAP must move by 17 t, in 'cut' only. Exit
    2, the rule named on the console and in infeasibility.json; evaluation.csv's statuses in
    lower case."""
    import json

    import yaml
    from typer.testing import CliRunner

    from offtake.apps.cli import app
    from offtake.results.tables import plan_to_json

    raw = _capped_two_suppliers()
    src = tmp_path / "cap.yaml"
    src.write_text(yaml.safe_dump(raw, sort_keys=False))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plan_to_json({
        "v_signed": {"O": 1.0, "P": 1.0},
        "v_volume_t": {("O", "B", 2026): 50.0, ("P", "B", 2026): 50.0}})))
    res = CliRunner().invoke(app, ["evaluate", str(src), "--plan", str(plan), "--out",
                                   str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert "CAP" in res.output
    diag = json.loads((tmp_path / "out" / "infeasibility.json").read_text())
    [conflict] = diag["conflicts"]
    assert conflict["rule_id"] == "CAP" and conflict["scenario"] == "cut"
    assert conflict["amount"] == approx(17.0)
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "evaluation.csv")
    assert set(table["status"]) == {"optimal", "infeasible"}


def _small_with_scenarios(paths: int = 2) -> dict:
    """The small US instance under 4 x `paths` scenarios that change capacities by country,
    spot availability, demand and the NdPr index path (the template must follow all of
    them)."""
    from offtake.io.loader import read_yaml

    path = ROOT / "instances" / "us_ev_oem_small.yaml"
    raw = read_yaml(path)
    raw["include"] = [str(path.parent / e) if isinstance(e, str)
                      else {**e, "pack": str(path.parent / e["pack"])}
                      for e in raw.get("include", [])]
    raw.pop("scenarios", None)
    index = raw["price_indices"][0]["id"]
    raw["scenario_spec"] = {
        "factors": [
            {"id": "china", "levels": [
                {"id": "open", "probability": 0.6},
                {"id": "cut", "probability": 0.4,
                 "capacity": [{"countries": ["CN"], "from_year": 2027, "multiplier": 0.3}],
                 "spot": [{"origins": ["CN"], "from_year": 2027,
                           "availability_multiplier": 0.3, "price_multiplier": 1.5}]}]},
            {"id": "demand", "levels": [
                {"id": "base", "probability": 0.5},
                {"id": "up", "probability": 0.5, "demand": [{"multiplier": 1.2}]}]}],
        "sampling": {"index": index, "n": paths, "volatility": 0.3, "seed": 3},
    }
    return raw


def _small_instance(tmp_path: Path, paths: int = 2):
    """`_small_with_scenarios` written out and loaded (as a user's file would be)."""
    import yaml

    path = tmp_path / "small_scenarios.yaml"
    path.write_text(yaml.safe_dump(_small_with_scenarios(paths), sort_keys=False))
    loaded = load_instance(path)
    assert loaded.ok, [str(f) for f in loaded.findings][:3]
    return loaded.instance


def test_costs_equal_the_extensive_form_with_the_same_plan_scenario_by_scenario(tmp_path):
    d = build_data(_small_instance(tmp_path))
    assert len(d.SCENARIOS) == 8
    m = build_model(d)
    assert solve(m, SolveOptions(mip_gap=1e-4)).has_solution
    plan = first_stage_values(m)
    ef = build_model(d)
    fix_first_stage(ef, plan)
    assert solve(ef).status == "optimal"
    res = evaluate_plan(d, plan)
    assert set(res.status.values()) == {"optimal"}
    for s in d.SCENARIOS:
        assert res.cost[s] == approx(pyo.value(ef.scenario_cost[s])), s
    assert res.size["changing_entries"] > 0
    in_two = evaluate_plan(d, plan, workers=2)
    assert in_two.cost == pytest.approx(res.cost, rel=1e-9)


def test_rules_in_expectation_are_refused():
    from dataclasses import replace

    d = replace(build_data(instance(TWO_STAGE)), rule_in_expectation={"R": True})
    with pytest.raises(EvaluationError, match="expectation"):
        evaluate_plan(d, _plan(50))


def test_compile_refuses_a_number_that_is_not_affine_in_the_scenario_data():
    m = pyo.ConcreteModel()
    m.p = pyo.Param(mutable=True, initialize=2.0)
    m.x = pyo.Var(bounds=(0, 10))
    m.c = pyo.Constraint(expr=m.p * m.x <= 4 * m.p)
    m.o = pyo.Objective(expr=m.p * m.x)
    arrays = compile_linear(m, [m.p])
    import numpy as np

    assert arrays.row_ub.at(np.array([3.0]))[0] == 12.0
    assert arrays.a_val.at(np.array([3.0]))[0] == 3.0
    m.c.set_value(m.p * m.p * m.x <= 4)
    with pytest.raises(NotAffineError):
        compile_linear(m, [m.p])


def test_cli_solve_writes_the_plan_and_evaluate_prices_it_under_new_scenarios(tmp_path):
    """Solve TWO_STAGE (q* = 50 t, plan.json), then price that portfolio under three demand
    levels 50 / 100 / 150 t (p = 0.2 / 0.5 / 0.3): 3.0M, 3.0M + 50 t x 100 = 8.0M and
    13.0M; expected 0.6 + 4.0 + 3.9 = 8.5M, worst 13.0M. A plan from another instance is
    refused with the offer it names."""
    import json

    import yaml
    from typer.testing import CliRunner

    from offtake.apps.cli import app

    src = tmp_path / "two_stage.yaml"
    src.write_text(yaml.safe_dump(TWO_STAGE, sort_keys=False))
    runner = CliRunner()
    solved = runner.invoke(app, ["solve", str(src), "--out", str(tmp_path / "rp")])
    assert solved.exit_code == 0, solved.output
    plan = json.loads((tmp_path / "rp" / "plan.json").read_text())
    assert {"index": ["O", "B", 2026], "value": pytest.approx(50)} in plan["v_volume_t"]

    raw = copy.deepcopy(TWO_STAGE)
    raw["scenarios"] = [
        {"id": "d50", "probability": 0.2, "demand": [{"multiplier": 0.5}]},
        {"id": "d100", "probability": 0.5},
        {"id": "d150", "probability": 0.3, "demand": [{"multiplier": 1.5}]},
    ]
    three = tmp_path / "three.yaml"
    three.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = tmp_path / "eval"
    res = runner.invoke(app, ["evaluate", str(three), "--plan",
                              str(tmp_path / "rp" / "plan.json"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "evaluation.json").read_text())
    assert report["expected_cost"] == approx(8_500_000)
    assert report["risk"]["worst"] == approx(13_000_000)
    import pandas as pd

    table = pd.read_csv(out / "evaluation.csv")
    assert list(table["cost"]) == [approx(3_000_000), approx(8_000_000), approx(13_000_000)]
    assert (out / "evaluation.png").stat().st_size > 0

    other = copy.deepcopy(plan)
    other["v_volume_t"][0]["index"] = ["ELSEWHERE", "B", 2026]
    (tmp_path / "other.json").write_text(json.dumps(other))
    bad = runner.invoke(app, ["evaluate", str(three), "--plan", str(tmp_path / "other.json"),
                              "--out", str(out)])
    assert bad.exit_code == 1 and "ELSEWHERE" in bad.output
    (tmp_path / "broken.json").write_text('{"v_volume_t": [{"index": "O"}]}')
    broken = runner.invoke(app, ["evaluate", str(three), "--plan",
                                 str(tmp_path / "broken.json"), "--out", str(out)])
    assert broken.exit_code == 1 and "v_volume_t[0]" in broken.output


# --- the decomposition (offtake.analysis.decompose) ------------------------------------
def test_decomposition_of_the_hand_derived_two_stage_instance():
    """TWO_STAGE's scenarios differ in demand, so each is its own group and sits whole in the
    master: the answer is the hand-derived RP (q* = 50 t, 8.0M)."""
    from offtake.analysis.decompose import DecomposeOptions, solve_decomposed

    res = solve_decomposed(build_data(instance(TWO_STAGE)), DecomposeOptions(workers=1))
    assert res.status == "optimal"
    assert res.objective == approx(8_000_000) and res.bound <= res.objective + 1e-6
    assert res.plan["v_volume_t"][("O", "B", 2026)] == pytest.approx(50)
    assert res.scenario_cost == {"low": approx(3_000_000), "high": approx(13_000_000)}


PRICES_ONLY = copy.deepcopy(TWO_STAGE)
PRICES_ONLY["scenarios"] = [
    {"id": f"p{int(m * 100)}", "probability": 0.25,
     "spot": [{"markets": ["SPOT"], "price_multiplier": m}]} for m in (0.5, 1.0, 1.5, 2.0)]
"""Demand 100 t in every scenario, spot at 50 / 100 / 150 / 200 USD/kg: one constraint group,
so one representative in the master and three scenarios priced by cuts. Committing q t at
60 costs 60 q + P_s (100 - q) (thousand USD), expected 60 q + 125 (100 - q): q* = 100 t and
6.0M in every scenario."""


@pytest.mark.parametrize("clusters", [None, 1])
def test_scenarios_that_differ_in_prices_only_are_priced_by_cuts(clusters):
    """One cost variable per scenario, or one for the three together (aggregated cuts):
    the same optimum."""
    from offtake.analysis.decompose import DecomposeOptions, solve_decomposed

    res = solve_decomposed(build_data(instance(PRICES_ONLY)),
                           DecomposeOptions(workers=1, cost_clusters=clusters))
    assert res.status == "optimal" and len(res.representatives) == 1
    assert res.size["cost_variables"] == (3 if clusters is None else 1)
    assert res.objective == approx(6_000_000)
    assert res.plan["v_volume_t"][("O", "B", 2026)] == pytest.approx(100)
    assert res.iterations > 1  # the cuts did the work


def test_cost_clusters_group_scenarios_of_one_constraint_group_by_cost():
    from offtake.analysis.decompose import cost_clusters

    groups = [["a", "b", "c", "d", "e"], ["f", "g", "h"]]
    cost = {"b": 5.0, "c": 1.0, "d": 4.0, "e": 2.0, "g": 9.0, "h": 3.0}
    assert cost_clusters(groups, ["a", "f"], cost, None) == [[s] for s in "bcdegh"]
    assert cost_clusters(groups, ["a", "f"], cost, 3) == [["c", "e"], ["d", "b"], ["h", "g"]]
    assert cost_clusters(groups, ["a", "f"], cost, 99) == [[s] for s in "bcdegh"]


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_decomposition_reaches_the_extensive_form_optimum(tmp_path, lam):
    """The small US instance under 16 scenarios (4 constraint groups, 12 scenarios by cuts,
    aggregated into 4 clusters without CVaR): the same objective as the extensive form, with
    and without a CVaR term."""
    from offtake.analysis.decompose import DecomposeOptions, solve_decomposed
    from offtake.pipeline.solve import solve_instance

    inst = _small_instance(tmp_path, paths=4)
    ef = solve_instance(inst, SolveOptions(cvar_weight=lam, cvar_alpha=0.8))
    d = build_data(inst, cvar_weight=lam, cvar_alpha=0.8)
    res = solve_decomposed(d, DecomposeOptions(workers=2, cost_clusters=4))
    assert res.status == "optimal" and len(res.representatives) == 4
    assert res.size["cost_variables"] == (4 if lam == 0 else 12)  # CVaR: one per scenario
    assert res.objective == pytest.approx(ef.objective, rel=2e-6)
    again = evaluate_plan(d, res.plan)
    assert again.cost == pytest.approx(res.scenario_cost, rel=1e-9)


def test_decomposition_refuses_what_it_cannot_do():
    from dataclasses import replace

    from offtake.analysis.decompose import DecomposeOptions, DecompositionError, solve_decomposed

    d = build_data(instance(TWO_STAGE))
    with pytest.raises(DecompositionError, match="max_groups"):
        solve_decomposed(d, DecomposeOptions(workers=1, max_groups=1))
    with pytest.raises(DecompositionError, match="expectation"):
        solve_decomposed(replace(d, rule_in_expectation={"R": True}))
    with pytest.raises(DecompositionError, match="cost_clusters must be at least 1"):
        solve_decomposed(d, DecomposeOptions(workers=1, cost_clusters=0))


def test_cli_decompose_writes_the_plan_and_the_scenario_costs(tmp_path):
    import json

    import pandas as pd
    import yaml
    from typer.testing import CliRunner

    from offtake.apps.cli import app

    src = tmp_path / "prices.yaml"
    src.write_text(yaml.safe_dump(PRICES_ONLY, sort_keys=False))
    out = tmp_path / "dec"
    res = CliRunner().invoke(app, ["decompose", str(src), "--out", str(out), "--workers", "1",
                                   "--cost-clusters", "1"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "decomposition.json").read_text())
    assert report["status"] == "optimal" and report["objective"] == approx(6_000_000)
    assert report["size"]["cost_variables"] == 1
    costs = pd.read_csv(out / "scenario_costs.csv")
    assert list(costs["cost"]) == [approx(6_000_000)] * 4
    again = CliRunner().invoke(app, ["evaluate", str(src), "--plan", str(out / "plan.json"),
                                     "--out", str(tmp_path / "ev")])
    assert again.exit_code == 0, again.output


def test_an_undeliverable_plan_gets_an_elastic_cut_never_a_cost():
    """The decomposition's last resort when a scenario LP calls a master plan infeasible:
    the elastic LP prices the 50 t above a 100 t capacity (a finite under-estimate, so the
    cut stays valid) and marks the scenario 'elastic', which is never an upper bound."""
    from offtake.analysis.evaluate import ScenarioLp, ScenarioSolver, plan_vector

    raw = copy.deepcopy(TWO_STAGE)
    del raw["offers"][0]["take_or_pay_share"]
    raw["facilities"][0]["capacity_t"] = 100
    d = build_data(instance(raw))
    template = ScenarioLp(d, list(d.SCENARIOS))
    x = plan_vector(template.plan_keys, _plan(150))
    exact = ScenarioSolver(template, list(d.SCENARIOS)).evaluate(x, set(d.SCENARIOS))
    assert {st for st, _, _ in exact.values()} == {"Infeasible"}
    out = ScenarioSolver(template, list(d.SCENARIOS), elastic_fallback=True).evaluate(
        x, set(d.SCENARIOS), gradients=True)
    for status, value, grad in out.values():
        assert status == "elastic"
        assert value / template.scale > 150 * 60_000  # the contract alone costs 9.0M
        assert grad is not None and len(grad) == len(template.plan_keys)


def test_the_time_limit_reaches_into_a_master_mip(tmp_path):
    """A master MIP can take minutes (medium x 100: 200-500 s each): the remaining time is
    handed to HiGHS, and a MIP cut short ends the loop instead of failing it."""
    from offtake.analysis.decompose import (
        DecomposeOptions,
        DecompositionError,
        _OutOfTime,
        _prepare,
        solve_decomposed,
    )

    d = build_data(_small_instance(tmp_path, paths=4))
    _, _, master = _prepare(d, max_groups=8)
    master.lp.set_option("time_limit", 0.0)
    with pytest.raises(_OutOfTime):
        master.solve(integer=True)
    with pytest.raises(DecompositionError, match="time or iteration limit"):
        solve_decomposed(d, DecomposeOptions(workers=1, time_limit=1e-9))


def test_a_plan_value_a_hair_outside_its_bound_is_held_at_the_bound():
    """HiGHS returns volumes like -3.6e-15 for 0: holding such a plan fixes the variable at
    its bound (Pyomo warned W1001 for every one of them in `offtake evaluate`); a value
    clearly outside stays as it is, for the model to refuse."""
    from offtake.formulation.readback import _within_bounds

    assert _within_bounds(-3.6e-15, 0.0, None) == 0.0
    assert _within_bounds(500.0 + 1e-8, 0.0, 500.0) == 500.0
    assert _within_bounds(-0.5, 0.0, None) == -0.5
    assert _within_bounds(7.25, 0.0, 10.0) == 7.25
