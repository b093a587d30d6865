"""The command line end to end: validate, solve (files, keys, exit codes), check."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import INSTANCES, base, dump
from typer.testing import CliRunner

import offtake.pipeline.solve as pipeline
from offtake.apps.cli import app
from offtake.solvers.highs import SolveOutcome

runner = CliRunner()
TINY = str(INSTANCES / "tiny_two_offers.yaml")
SUMMARY_KEYS = {"status", "objective", "bound", "mip_gap", "currency", "solver",
                "build_seconds", "solve_seconds", "violations", "instance_sha256"}


def test_validate_valid_and_invalid(tmp_path):
    assert runner.invoke(app, ["validate", TINY]).exit_code == 0
    raw = base()
    raw["offers"][0]["supplier"] = "S7"
    bad = tmp_path / "bad.yaml"
    bad.write_text(dump(raw))
    out = runner.invoke(app, ["validate", str(bad)])
    assert out.exit_code == 1
    assert "offers[O1].supplier" in out.output and "S7" in out.output


def test_solve_writes_summary_and_tables(tmp_path):
    out_dir = tmp_path / "out"
    mps = tmp_path / "model.mps"
    res = runner.invoke(app, ["solve", TINY, "--out", str(out_dir), "--write-model", str(mps)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out_dir / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert summary["status"] == "optimal" and summary["violations"] == 0
    assert abs(summary["objective"] - 20_250_000) < 1e-3
    for name in ("contracts", "flows", "spot", "unmet", "costs"):
        assert (out_dir / f"{name}.csv").exists(), name
    costs = pd.read_csv(out_dir / "costs.csv")
    assert abs(costs["value"].sum() - summary["objective"]) < 1e-3
    assert mps.read_text().startswith("NAME")
    assert "20,250,000" in res.output


def test_solve_invalid_input_exit_1(tmp_path):
    raw = base()
    raw["horizon"]["discount_rate"] = 5
    bad = tmp_path / "bad.yaml"
    bad.write_text(dump(raw))
    res = runner.invoke(app, ["solve", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert not (tmp_path / "o" / "summary.json").exists()


def _fake_outcome(status: str) -> SolveOutcome:
    return SolveOutcome(status, None, None, None, "highs", "x", 0.0, None, status, None, "fake")


def test_exit_codes_for_infeasible_no_solution_and_error(tmp_path, monkeypatch):
    for status, code in (("infeasible", 2), ("no_solution", 3), ("error", 4)):
        monkeypatch.setattr(pipeline.HighsModel, "solve", lambda self, s=status: _fake_outcome(s))
        out_dir = tmp_path / status
        res = runner.invoke(app, ["solve", TINY, "--out", str(out_dir)])
        assert res.exit_code == code, (status, res.output)
        summary = json.loads((out_dir / "summary.json").read_text())
        assert summary["status"] == status and summary["objective"] is None
        assert not (out_dir / "contracts.csv").exists()  # never a plan of zeros


def test_check_catches_a_tampered_plan(tmp_path):
    out_dir = tmp_path / "out"
    assert runner.invoke(app, ["solve", TINY, "--out", str(out_dir)]).exit_code == 0
    assert runner.invoke(app, ["check", TINY, str(out_dir)]).exit_code == 0
    c = pd.read_csv(out_dir / "contracts.csv")
    c.loc[(c["offer_id"] == "OFF-B") & (c["year"] == 2027), "volume_t"] = 130.0
    c.to_csv(out_dir / "contracts.csv", index=False)
    res = runner.invoke(app, ["check", TINY, str(out_dir)])
    assert res.exit_code == 4
    assert "contract_volume_max" in res.output


def test_results_round_trip_through_the_output_folder(tmp_path):
    """Results.write then Results.read give back the same summary and tables (IDs as text)."""
    from offtake.io.loader import load_or_raise
    from offtake.pipeline.solve import solve_instance
    from offtake.results.tables import Results

    res = solve_instance(load_or_raise(TINY))
    res.write(tmp_path)
    back = Results.read(tmp_path)
    assert back.summary() == json.loads(json.dumps(res.summary()))
    for name, frame in res.tables.items():
        got = back.tables[name]
        assert list(got.columns) == list(frame.columns), name
        assert len(got) == len(frame), name
    assert back.cost_terms() == res.cost_terms()


def test_unbounded_is_its_own_exit_code_and_names_the_ray(tmp_path):
    from test_structure import _unbounded

    src = tmp_path / "unbounded.yaml"
    src.write_text(dump(_unbounded()))
    res = runner.invoke(app, ["solve", str(src), "--out", str(tmp_path / "o")])
    assert res.exit_code == 5, res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["status"] == "unbounded" and summary["objective"] is None
    assert "v_resale_t[B1,DEAR" in summary["message"]
    assert not (tmp_path / "o" / "infeasibility.json").exists()


@pytest.mark.parametrize("command", [
    ["solve", TINY], ["compare", TINY, "--rule", "X"], ["value", TINY], ["frontier", TINY],
    ["decompose", TINY], ["evaluate", TINY, "--plan", "plan.json"]])
def test_a_refused_highspy_is_exit_4_on_every_solving_command(command, monkeypatch, tmp_path):
    import offtake.solvers.highs as highs

    monkeypatch.setattr(highs, "highspy_version", lambda: (1, 14, 0))
    res = runner.invoke(app, [*command, "--out", str(tmp_path / "o")])
    assert res.exit_code == 4, res.output
    assert "1.14.0" in res.output and "Traceback" not in res.output


def test_check_of_a_folder_without_a_plan_says_so_and_exits_3(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "summary.json").write_text(json.dumps({"status": "infeasible"}))
    (tmp_path / "o" / "COMPLETE").write_text("{}")
    res = runner.invoke(app, ["check", TINY, str(tmp_path / "o")])
    assert res.exit_code == 3 and "no plan" in res.output
    (tmp_path / "o" / "summary.json").write_text("{")
    res = runner.invoke(app, ["check", TINY, str(tmp_path / "o")])
    assert res.exit_code == 1 and "not readable JSON" in res.output


def test_solve_runs_without_the_garbage_collector_and_turns_it_back_on(tmp_path, monkeypatch):
    """`offtake solve` switches the cyclic collector off for its one solve (0.3-0.4 s of 4 s
    on the medium instance) and on again after, so that a caller that lives on (this test
    process) keeps collecting."""
    import gc

    import offtake.pipeline.run as pipeline_run

    seen = []
    real = pipeline_run.run

    def spy(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_run, "run", spy)
    assert gc.isenabled()
    res = runner.invoke(app, ["solve", TINY, "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert seen == [False] and gc.isenabled()
