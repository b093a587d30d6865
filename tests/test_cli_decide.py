"""`offtake solve --buyers / --force / --forbid` and the transform behind them
(`offtake.domain.transforms.decide`). Hand-derived on `conftest.base()` (optimum 10.86M:
2026 O2 50 t x 70,000 + O1 10 t x 80,000 = 4.3M; 2027 O2 80 t x 72,000 + O1 10 t x 80,000 =
6.56M) plus O4: S1 at 90 USD/kg with a 20 t/yr minimum."""

from __future__ import annotations

import json

import pytest
from conftest import approx, base, dump, instance
from typer.testing import CliRunner

from offtake.apps.cli import app
from offtake.domain.findings import InvalidInstance
from offtake.domain.transforms import decide, keep_buyers
from offtake.pipeline.solve import solve_instance

runner = CliRunner()


def with_o4() -> dict:
    raw = base()
    raw["offers"].append({"id": "O4", "supplier": "S1", "material": "MAG", "first_year": 2026,
                          "last_year": 2027, "min_t_per_year": 20, "max_t_per_year": 100,
                          "price_per_kg": 90})
    raw["buyers"].append({"id": "B2", "country": "DE", "demand_t": {"MAG": 10}})
    raw["offers"][1]["buyers"] = ["B1"]  # O2 serves B1 only
    return raw


def solve_cli(tmp_path, *args: str):
    path = tmp_path / "inst.yaml"
    path.write_text(dump(with_o4()))
    out = tmp_path / "out"
    res = runner.invoke(app, ["solve", str(path), "--out", str(out), *args])
    summary = json.loads((out / "summary.json").read_text()) if (
        out / "summary.json").exists() else None
    return res, summary


def test_forced_offer_costs_its_premium(tmp_path):
    """For B1 alone (--buyers B1) the optimum is base()'s 10.86M (O4 at 90 is never taken).
    Forcing O4 (--force O4) takes its 20 t minimum at 90 USD/kg, which displaces the dearest
    tonnes otherwise bought: 2026 O4 20 t + O2 40 t = 1.8M + 2.8M = 4.6M (O1's 10 t and 10 t
    of O2 go); 2027 O4 20 t + O2 70 t = 1.8M + 5.04M = 6.84M. 11.44M: forcing O4 costs
    0.58M."""
    res, summary = solve_cli(tmp_path, "--buyers", "B1")
    assert res.exit_code == 0, res.output
    assert summary["objective"] == approx(10_860_000)
    assert summary["options"]["buyers"] == ["B1"]
    res, forced = solve_cli(tmp_path, "--buyers", "B1", "--force", "O4")
    assert res.exit_code == 0, res.output
    assert forced["objective"] == approx(11_440_000)
    assert forced["options"]["forced"] == ["O4"] and forced["violations"] == 0


def test_a_forbidden_offer_is_replaced(tmp_path):
    """B1 alone without O2: 150 t of O1 at 80,000 = 12M."""
    res, summary = solve_cli(tmp_path, "--buyers", "B1", "--forbid", "O2")
    assert res.exit_code == 0, res.output
    assert summary["objective"] == approx(12_000_000)


def test_buyers_reproduce_the_restricted_instance(tmp_path):
    """--buyers B2 solves exactly keep_buyers(instance, [B2]): 20 t of O1 at 80,000."""
    res, summary = solve_cli(tmp_path, "--buyers", "B2")
    assert res.exit_code == 0, res.output
    alone = solve_instance(keep_buyers(instance(with_o4()), ["B2"]))
    assert summary["objective"] == approx(alone.objective) == approx(1_600_000)


def test_unknown_ids_are_findings_with_a_hint(tmp_path):
    res, _ = solve_cli(tmp_path, "--force", "O5", "--forbid", "O1", "--force", "O1")
    assert res.exit_code == 1
    assert "O5" in res.output and "both forced and forbidden" in res.output
    res, _ = solve_cli(tmp_path, "--buyers", "B9")
    assert res.exit_code == 1 and "B9" in res.output


def test_decide_names_offers_and_build_options():
    raw = with_o4()
    raw["facilities"][0]["builds"] = [{"id": "S1-X", "nameplate_t": 50}]
    inst = decide(instance(raw), force=["S1-X"], forbid=["O4"])
    assert inst.facilities[0].builds[0].decision == "forced"
    assert {o.id: o.decision for o in inst.offers}["O4"] == "forbidden"
    with pytest.raises(InvalidInstance) as err:
        decide(inst, force=["S1-Y"])
    assert err.value.findings[0].hint.startswith("did you mean") or "S1-X" in str(
        err.value.findings[0])
