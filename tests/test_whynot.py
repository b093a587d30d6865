"""Why not signed, why not built (offtake.analysis.whynot, `offtake why-not`): the cost of
forcing an item in and its break-even price or build cost. Hand-derived on the bankability
instance of tests/test_bankability.py: B1 needs 60 t in 2026 and 2027; S1 sells at 80
USD/kg; candidate NEW (100 t, supplier-paid) would sell O3 at 70 USD/kg."""

from __future__ import annotations

import pytest
from conftest import approx, dump, instance
from test_bankability import plant

from offtake.analysis.whynot import why_not
from offtake.pipeline.solve import solve_instance


def table(raw: dict, **kwargs):
    inst = instance(raw)
    res = solve_instance(inst)
    signed = dict(zip(res.tables["offers"]["offer_id"], res.tables["offers"]["signed"],
                      strict=True))
    built = dict(zip(res.tables["builds"]["build_id"], res.tables["builds"]["built"],
                     strict=True))
    return res, why_not(inst, res.objective, signed, built, **kwargs).set_index("id")


def test_a_plant_just_above_its_threshold():
    """Bankability 0.69: NEW is not built (9.6M). Forced (NEW-B, or its offer O3, which
    needs it), B1 commits 69 t a year at 70 USD/kg: 2 x 69 x 70,000 = 9.66M, so forcing costs
    60,000. O3's price base B = 1000 x (69 + 69) t = 138,000 per USD/kg: the break-even
    price is 70 - 60,000 / 138,000 = 69.5652 USD/kg (2 x 69 x 69,565.2 = 9.6M). The plant's
    cost is its supplier's: forcing it costs the buyers 60,000, the subsidy that would bring
    it in."""
    res, t = table(plant(0.69))
    assert res.objective == approx(9_600_000)
    assert set(t.index) == {"O3", "NEW-B"}
    assert t.loc["O3", "cost_of_forcing"] == approx(60_000)
    assert t.loc["O3", "forced_volume_t"] == approx(138)
    assert t.loc["O3", "break_even_price_per_kg"] == approx(70 - 60_000 / 138_000)
    assert t.loc["NEW-B", "cost_of_forcing"] == approx(60_000)
    assert "subsidy" in t.loc["NEW-B", "note"] and "60,000" in t.loc["NEW-B", "note"]


def test_a_build_the_buyers_pay_for_has_a_break_even_cost():
    """Same, the plant costing the buyers 100,000 (paid in 2026): forcing it costs 160,000;
    it enters at a build cost of 100,000 - 160,000 = -60,000: a 60,000 subsidy even if free."""
    raw = plant(0.69)
    raw["facilities"][1]["builds"][0].update(cost=100_000, paid_by="buyers")
    _, t = table(raw, only=["NEW-B"])
    assert list(t.index) == ["NEW-B"]
    assert t.loc["NEW-B", "cost_of_forcing"] == approx(160_000)
    assert t.loc["NEW-B", "break_even_build_cost"] == approx(-60_000)


def test_an_item_that_cannot_be_forced_names_the_rule():
    """O3 limited to the 60 t B1 needs, lenders asking 90 t: the plant cannot be made
    bankable; forcing it is infeasible and the elastic re-solve names the bankability rows,
    30 t short in each year."""
    raw = plant(0.9)
    raw["offers"][1]["max_t_per_year"] = 60
    _, t = table(raw, only=["NEW-B"])
    assert t.loc["NEW-B", "status"] == "infeasible"
    note = t.loc["NEW-B", "note"]
    assert note.startswith("cannot be forced in") and "BANK" in note and "30" in note


def test_the_command_writes_why_not_csv(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from offtake.apps.cli import app

    path = tmp_path / "plant.yaml"
    path.write_text(dump(plant(0.69)))
    res = CliRunner().invoke(app, ["why-not", str(path), "--out", str(tmp_path / "out"),
                                   "--executor", "serial"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(tmp_path / "out" / "why_not.csv").set_index("id")
    assert t.loc["O3", "break_even_price_per_kg"] == pytest.approx(69.5652, abs=1e-4)
    assert (tmp_path / "out" / "summary.json").exists()


def test_offers_without_volume_tiers_beside_tiered_ones_and_a_failed_item_exits_non_zero(
        tmp_path, monkeypatch):
    """us_ev_oem_small.yaml: OFF-SGI-VN has volume tiers, the four unsigned offers have
    none. Their empty rows of the tiers table once kept a text dtype under pandas 3 and every
    forced solve failed ("Can only string multiply by an integer") while the command exited
    0. Each of the four now has a cost of forcing; a forced solve that fails makes the
    command exit 4 with the count named."""
    from pathlib import Path

    import pandas as pd
    from typer.testing import CliRunner

    import offtake.analysis.whynot as whynot_module
    from offtake.apps.cli import app

    small = Path(__file__).resolve().parents[1] / "instances" / "us_ev_oem_small.yaml"
    runner = CliRunner()
    res = runner.invoke(app, ["why-not", str(small), "--out", str(tmp_path / "a"),
                              "--executor", "serial"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(tmp_path / "a" / "why_not.csv").set_index("id")
    assert set(t.index) == {"OFF-MP-10X", "OFF-USAR", "OFF-NOVEON", "OFF-JLMAG"}
    assert (t["status"] == "optimal").all() and (t["cost_of_forcing"] > 0).all()

    def broken(*args, **kwargs):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(whynot_module, "_price_base", broken)
    res = runner.invoke(app, ["why-not", str(small), "--out", str(tmp_path / "b"),
                              "--executor", "serial", "--only", "OFF-NOVEON"])
    assert res.exit_code == 4 and "1 of 1 forced solves failed" in res.output, res.output
