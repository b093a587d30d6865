"""Rules that cannot all hold: proofs before solving, the elastic explanation after an
infeasible solve, relaxing a rule, and the cost of compliance."""

from __future__ import annotations

import json

import pytest
from conftest import dump, instance
from test_rules import with_rules
from typer.testing import CliRunner

from offtake.analysis.compliance import compare
from offtake.apps.cli import app
from offtake.domain.transforms import relax_rules
from offtake.formulation.data import build_data
from offtake.pipeline.diagnose import explain_infeasibility, rule_conflicts
from offtake.pipeline.solve import solve_instance

runner = CliRunner()
ALLY = {"id": "ALLY", "kind": "min_content_share", "min_share": 0.95, "stages": ["MINE"],
        "groups": ["ALLIED"]}


def test_min_share_above_qualifying_capacity_is_proved_before_solving():
    """Qualifying chains (mined in US or AU): F-JP (AU ore, 1,000 t) and F-US (60 t). With
    F-JP capped at 30 t, at most 90 t qualify; 95 % of 100 t is 95 t: short by 5 t = 5 pp."""
    raw = with_rules(ALLY)
    raw["facilities"][1]["capacity_t"] = 30
    (c,) = rule_conflicts(build_data(instance(raw)))
    assert (c.rule_id, c.row, c.year) == ("ALLY", "B|MAG", 2026)
    assert c.amount == pytest.approx(5) and c.percentage_points == pytest.approx(5)
    assert "90 t" in c.message and "95 t" in c.message


def test_demand_with_no_source_under_an_exclusion_is_proved():
    raw = with_rules({"id": "NOCN", "kind": "exclusion", "stages": ["MINE"],
                      "countries": ["CN", "AU", "US"]})
    raw["facilities"] = raw["facilities"][:3]
    raw["offers"] = raw["offers"][:3]
    (c,) = rule_conflicts(build_data(instance(raw)))
    assert c.rule_id == "NOCN" and c.amount == pytest.approx(100)


def test_satisfiable_rules_raise_no_conflict():
    assert rule_conflicts(build_data(instance(with_rules(ALLY)))) == []


def _joint_conflict() -> dict:
    """80 % of demand must be mined in US/AU (F-JP 30 t + F-US 60 t = 90 t: provable bound
    holds), but no supplier may exceed 35 % of purchases, so qualifying purchases are at most
    30 + 35 = 65 t against 80 t needed: jointly infeasible, invisible to the bounds."""
    raw = with_rules({**ALLY, "min_share": 0.8},
                     {"id": "CAP35", "kind": "max_supplier_share", "max_share": 0.35})
    raw["facilities"][1]["capacity_t"] = 30
    raw["facilities"] = raw["facilities"][:3]
    raw["offers"] = raw["offers"][:3]
    return raw


def test_jointly_infeasible_rules_are_explained_by_an_elastic_resolve():
    inst = instance(_joint_conflict())
    assert rule_conflicts(build_data(inst)) == []
    assert solve_instance(inst).status == "infeasible"
    diag = explain_infeasibility(inst)
    assert diag.stage == "elastic" and diag.conflicts
    assert {c.rule_id for c in diag.conflicts} <= {"ALLY", "CAP35"}
    assert all(c.amount > 0 and c.unit == "t" for c in diag.conflicts)


def test_cli_exit_2_writes_the_explanation(tmp_path):
    path = tmp_path / "conflict.yaml"
    path.write_text(dump(_joint_conflict()))
    res = runner.invoke(app, ["solve", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    info = json.loads((tmp_path / "out" / "infeasibility.json").read_text())
    assert info["stage"] == "elastic" and info["conflicts"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "infeasible" and summary["objective"] is None
    # relaxing the cap makes it solvable; the explanation file of the earlier run is removed
    res = runner.invoke(app, ["solve", str(path), "--out", str(tmp_path / "out"),
                              "--relax", "CAP35"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "out" / "infeasibility.json").exists()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["relaxed_rules"] == ["CAP35"]


def test_relax_unknown_rule_names_the_nearest():
    with pytest.raises(ValueError, match="did you mean 'CAP35'"):
        relax_rules(instance(_joint_conflict()), ["CAP53"])


def test_cost_of_compliance():
    """Supplier cap 60 %: 5.8M with, 5.0M without (see test_rules): compliance costs 0.8M."""
    inst = instance(with_rules({"id": "CAP", "kind": "max_supplier_share", "max_share": 0.6}))
    table = compare(inst, ["CAP"])
    row = table.iloc[0]
    assert row["objective_with"] == pytest.approx(5_800_000)
    assert row["objective_without"] == pytest.approx(5_000_000)
    assert row["cost_of_compliance"] == pytest.approx(800_000)
