"""Reports as data (offtake.report.tables: DataFrames with clear columns and units), rendered
by offtake.report.console, and figures (offtake.report.plots: Figures with titles, built
without pyplot). Expected values are derived by hand in the instances' docstrings."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest import INSTANCES, ROOT, approx, instance, solve_checked
from matplotlib.figure import Figure
from rich.console import Console
from test_rules import with_rules
from test_uncertainty import TWO_STAGE

from offtake.analysis.decompose import DecomposeResult
from offtake.analysis.stochastic import StochasticValue
from offtake.check import CheckReport, Violation, check_folder
from offtake.domain.findings import Finding
from offtake.io.loader import load_or_raise
from offtake.pipeline.diagnose import Conflict, Diagnosis
from offtake.report import console, plots, tables

TINY = INSTANCES / "tiny_two_offers.yaml"


def _record(frame: pd.DataFrame) -> dict:
    assert list(frame.columns) == ["measure", "value", "unit"]
    return {m: (v, u) for m, v, u in frame.itertuples(index=False)}


def _rendered(table) -> str:
    out = Console(width=140, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    out.print(table)
    return out.export_text()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """tiny_two_offers: sign OFF-B (100 t/yr at 70 USD/kg, signing 1.5M), 50 t spot in 2027 at
    95: 14.0M + 4.75M + 1.5M = 20.25M (see the file's header)."""
    return solve_checked(load_or_raise(TINY), tmp_path_factory.mktemp("tiny"))


def test_run_summary_is_a_record_with_units(tiny):
    rec = _record(tables.run_summary_frame(tiny))
    assert rec["status"] == ("optimal", "")
    assert rec["objective"][0] == approx(20_250_000) and rec["objective"][1] == "USD"
    assert rec["bound"][1] == "USD" and rec["build time"][1] == "s"
    assert {"model rows", "model columns", "model nonzeros", "model binaries"} <= set(rec)
    assert "checker violations" not in rec  # not checked through the pipeline
    assert tables.run_summary_frame(tiny).attrs["title"] == "offtake: tiny-two-offers"


def test_costs_by_term_with_their_total(tiny):
    frame = tables.costs_frame(tiny)
    assert list(frame.columns) == ["term", "line", "cost (USD)"]
    cost = dict(zip(frame["term"], frame["cost (USD)"], strict=True))
    assert cost["contract_payments"] == approx(14_000_000)
    assert cost["spot_purchases"] == approx(4_750_000)
    assert cost["signing_costs"] == approx(1_500_000)
    others = set(frame.loc[frame["line"] == "term", "term"]) - {
        "contract_payments", "spot_purchases", "signing_costs"}
    assert all(cost[t] == pytest.approx(0, abs=1e-6) for t in others)
    assert frame.iloc[-1].tolist()[:2] == [tables.TOTAL, "total"]
    assert cost[tables.TOTAL] == approx(20_250_000)
    assert set(frame["line"]) == {"term", "total"}  # no third party pays anything here


def test_signed_contracts_by_year(tiny):
    frame = tables.contracts_frame(tiny)
    assert list(frame.columns) == ["offer", "supplier", "buyer", 2026, 2027]
    assert frame.values.tolist() == [["OFF-B", "SUP-B", "OEM", approx(100), approx(100)]]
    assert frame.attrs["title"] == "Signed contracts (contracted t per year)"  # one scenario


def test_no_rules_and_no_violations_are_empty_frames(tiny, tmp_path):
    rules = tables.rules_frame(tiny)
    assert rules.empty and rules.attrs["caption"] == "no rules"
    tiny.write(tmp_path)
    found = tables.violations_frame(check_folder(load_or_raise(TINY), tmp_path))
    assert found.empty and list(found.columns) == ["constraint", "index", "amount", "message"]


def test_binding_rule_rows_with_shadow_prices(tmp_path):
    """At most 60 % from one supplier (test_rules): 60 t F-CN binds; a tonne more allowance
    saves 70 - 50 = 20 USD/kg = 20,000 USD, and a percentage point of 100 t is a tonne."""
    cap = {"id": "CAP", "kind": "max_supplier_share", "max_share": 0.6}
    res = solve_checked(instance(with_rules(cap)), tmp_path)
    frame = tables.rules_frame(res)
    assert list(frame.columns) == [
        "rule", "row", "year", "scenario", "lhs", "bound", "unit", "share",
        "shadow price per unit (USD)", "shadow price per pp (USD)"]
    assert set(frame["scenario"]) == {"base"}
    top = frame.iloc[0]
    assert (top["rule"], top["row"], top["year"], top["unit"]) == ("CAP", "B|F-CN|MAG", 2026,
                                                                    "t")
    assert top["lhs"] == approx(60) and top["bound"] == approx(60)
    assert top["share"] == approx(0.6)
    assert top["shadow price per unit (USD)"] == approx(20_000)
    assert top["shadow price per pp (USD)"] == approx(20_000)
    assert frame.attrs["caption"].startswith(f"{len(frame)} binding or violated of ")
    text = " ".join(_rendered(console.rules_table(res)).split())
    assert "│ CAP │ B|F-CN|MAG │ 2026 │ 60.0 / 60.0 │ 60.0% │ 20,000 │ 20,000 │" in text


def test_risk_of_the_two_stage_portfolio(tmp_path):
    """q* = 50 t: 3.0M (low) or 13.0M (high), p = 1/2 each: mean 8.0M, std 5.0M; at 95 % the
    VaR and CVaR are the high cost."""
    res = solve_checked(instance(TWO_STAGE), tmp_path)
    rec = _record(tables.risk_frame(res))
    assert list(rec) == ["mean", "std", "VaR 95%", "CVaR 95%", "best", "worst"]
    expected = [8e6, 5e6, 13e6, 13e6, 3e6, 13e6]
    assert [v for v, _ in rec.values()] == [approx(x) for x in expected]
    assert {u for _, u in rec.values()} == {"USD"}


def test_value_of_uncertainty_keeps_none_where_a_solve_failed():
    v = StochasticValue(8e6, 6e6, None, 6e6, {"RP": "optimal"})
    frame = tables.value_frame(v, "EUR")
    rec = _record(frame)
    assert list(rec) == ["RP", "EV", "EEV", "WS", "VSS", "EVPI"]
    assert rec["EEV"] == (None, "EUR") and rec["VSS"] == (None, "EUR")
    assert rec["EVPI"] == (2e6, "EUR")
    assert frame.attrs["caption"] == ("VSS = EEV - RP; EVPI = RP - WS; EV problem: averaged "
                                      "model data")


def test_evaluation_and_decomposition_records():
    report = {"scenarios": 7, "expected_cost": 9e6,
              "risk": {"mean": 9e6, "std": 1e6, "alpha": 0.9, "var": 1.1e7, "cvar": 1.2e7,
                       "best": 8e6, "worst": 1.2e7},
              "infeasible_in": ["s1", "s2"], "seconds": {"total": 2.25}}
    frame = tables.evaluation_frame(report, "USD")
    rec = _record(frame)
    assert list(rec) == ["expected cost", "std", "VaR 90%", "CVaR 90%", "best", "worst",
                         "cannot be carried out in"]
    assert rec["cannot be carried out in"] == (["s1", "s2"], "scenarios")
    assert frame.attrs == {"title": "Portfolio over 7 scenarios (USD, discounted)",
                           "caption": "evaluated in 2.2 s"}
    text = _rendered(console.evaluation_table(report, "USD"))
    assert "VaR 90%" in text and "CVaR 90%" in text and "cannot be carried out in" in text
    assert "s1, s2" in text

    res = DecomposeResult("optimal", 8e6, 7.99e6, 3, {}, {}, ["low", "high"],
                          {"total": 1.5}, {})
    rec = _record(tables.decomposition_frame(res, "USD"))
    assert rec["gap"][0] == approx(0.00125)            # (8.00 - 7.99) / 8.00
    assert rec["lower bound"] == (7.99e6, "USD")
    assert rec["scenario groups in the master"][0] == 2


def test_findings_diagnosis_violations_and_compare_frames():
    f = Finding("unknown_id", "error", "rules.CAP5", "unknown rule 'CAP5'",
                "did you mean 'CAP'?", "x.yaml")
    frame = tables.findings_frame([f], "Findings in x.yaml")
    assert frame.values.tolist() == [["error", "unknown_id", "rules.CAP5", "unknown rule 'CAP5'",
                                      "did you mean 'CAP'?", "x.yaml", ""]]
    assert frame.attrs["title"] == "Findings in x.yaml"

    diag = Diagnosis("elastic", [
        Conflict("CAP", "max_supplier_share", "B|F|M", 2027, "base", 6.9, "t", 6.9, "m"),
        Conflict("N", "max_suppliers", "N", None, "base", 1.0, "suppliers", None, "n")])
    frame = tables.diagnosis_frame(diag)
    assert list(frame.columns) == ["rule", "kind", "row", "year", "move by", "unit",
                                   "move by (pp)", "message"]
    assert frame["year"].tolist()[0] == 2027 and pd.isna(frame["year"].tolist()[1])
    text = _rendered(console.diagnosis_table(diag))
    assert "6.9 t (6.9 pp)" in text and "1.0 suppliers " in text and "nan" not in text

    report = CheckReport([Violation("demand_balance", "B|M|2026", 2.5, "short")], 0.0, {})
    frame = tables.violations_frame(report)
    assert frame.values.tolist() == [["demand_balance", "B|M|2026", 2.5, "short"]]

    raw = pd.DataFrame([{"relaxed": "CAP", "status_with": "optimal", "objective_with": 5.8e6,
                         "status_without": "optimal", "objective_without": 5.0e6,
                         "cost_of_compliance": 0.8e6}])
    frame = tables.compare_frame(raw, "USD")
    assert list(frame.columns) == ["relaxed rule(s)", "with (USD)", "without (USD)",
                                   "cost of compliance (USD)", "status with", "status without"]
    assert frame.iloc[0]["cost of compliance (USD)"] == 0.8e6


# --- figures ---------------------------------------------------------------------------------
def test_cost_distribution_is_a_titled_figure_that_says_where_a_plan_fails(tmp_path):
    """The plan fails in 'cut' (p = 0.25): its curve stops at 0.75 and the figure says so."""
    prob = {"open": 0.75, "cut": 0.25}
    fig = plots.cost_distribution(prob, {"robust": {"open": 2e6, "cut": 3e6},
                                         "cheap": {"open": 1e6}, "broken": {}}, "USD",
                                  "Scenario cost")
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_title() == "Scenario cost"
    assert ax.get_xlabel() == "scenario cost (million USD, discounted)"
    assert ax.get_ylabel() == "cumulative probability"
    labels = ax.get_legend_handles_labels()[1]
    assert labels[0] == "robust"
    assert labels[1] == "cheap - cannot be carried out in 1 of 2 scenarios (p = 25.0%)"
    steps = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    assert max(steps["robust"]) == approx(1.0) and max(steps[labels[1]]) == approx(0.75)
    notes = [t.get_text() for t in ax.texts]
    assert notes == ["cannot be carried out in any scenario: broken"]
    fig.savefig(tmp_path / "cdf.png")
    assert (tmp_path / "cdf.png").read_bytes()[:4] == b"\x89PNG"


def test_frontier_is_a_titled_figure_naming_lambdas_without_solution():
    table = pd.DataFrame({"lambda": [0.0, 1.0, 2.0], "expected_cost": [8e6, 9e6, None],
                          "cvar": [13e6, 9e6, None]})
    fig = plots.frontier(table, "USD", 0.95)
    (ax,) = fig.axes
    assert ax.get_title() == "Efficient frontier: expected cost against CVaR 95%"
    assert "million USD" in ax.get_xlabel() and "million USD" in ax.get_ylabel()
    assert [t.get_text() for t in ax.texts if "no solution" in t.get_text()] == [
        "no solution for λ = 2"]


def test_plots_need_no_pyplot_and_leave_the_backend_alone(tmp_path):
    code = ("import sys, matplotlib\n"
            "import offtake.report.plots as p\n"
            "fig = p.cost_distribution({'a': 1.0}, {'x': {'a': 1e6}}, 'USD')\n"
            f"fig.savefig(r'{tmp_path / 'a.png'}')\n"
            "print('matplotlib.pyplot' in sys.modules,"
            " dict.__getitem__(matplotlib.rcParams, 'backend'))")
    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env, cwd=ROOT)
    assert out.stdout.split() == ["False", "svg"], out.stderr
