"""What a person reads in the terminal: findings, the run summary, costs and contracts.

Reads only `Results`, `CheckReport` and `Finding`s; renders with rich.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from rich.console import Console
from rich.table import Table

from offtake.check import CheckReport
from offtake.domain.findings import Finding
from offtake.pipeline.diagnose import Diagnosis
from offtake.results.tables import Results


def findings_table(findings: Sequence[Finding], title: str = "Findings") -> Table:
    t = Table(title=title, show_lines=False)
    for col in ("severity", "code", "location", "message", "hint"):
        t.add_column(col, overflow="fold")
    for f in findings:
        style = "red" if f.severity == "error" else "yellow"
        t.add_row(f"[{style}]{f.severity}[/]", f.code, f.location, f.message, f.hint)
    return t


def _money(x: float | None, currency: str) -> str:
    return "-" if x is None else f"{x:,.0f} {currency}"


def summary_table(r: Results) -> Table:
    t = Table(title=f"offtake: {r.instance_name}", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    t.add_row("status", r.status + (f" ({r.message})" if r.message else ""))
    t.add_row("objective", _money(r.objective, r.currency))
    t.add_row("bound / gap", f"{_money(r.bound, r.currency)} / "
              + ("-" if r.mip_gap is None else f"{r.mip_gap:.2e}"))
    t.add_row("solver", f"{r.solver} {r.solver_version}")
    t.add_row("build / solve", f"{r.build_seconds:.2f} s / {r.solve_seconds:.2f} s")
    if r.model_size:
        s = r.model_size
        t.add_row("model size", f"{s['rows']} rows, {s['columns']} columns, {s['nonzeros']} "
                  f"nonzeros, {s['binaries']} binaries")
    if r.violations is not None:
        t.add_row("checker", "no violations" if r.violations == 0
                  else f"[red]{r.violations} violation(s)[/]")
    return t


def costs_table(r: Results) -> Table:
    t = Table(title="Cost by term (discounted, expected)")
    t.add_column("term")
    t.add_column(f"{r.currency}", justify="right")
    for term, value in r.cost_terms().items():
        t.add_row(term, f"{value:,.0f}")
    t.add_row("[bold]buyer total[/]", f"[bold]{sum(r.cost_terms().values()):,.0f}[/]")
    for payer, value in r.fiscal_costs().items():
        t.add_row(f"[dim]fiscal floor support paid by {payer} (not in objective)[/]",
                  f"[dim]{value:,.0f}[/]")
    return t


def contracts_table(r: Results) -> Table:
    t = Table(title="Signed contracts (t per year)")
    c = r.tables.get("contracts")
    if c is None or c.empty:
        return t
    c = c[c["signed"] == 1]
    pivot = c.pivot_table(index=["offer_id", "supplier", "buyer"], columns="year",
                          values="volume_t", aggfunc="sum")
    t.add_column("offer")
    t.add_column("supplier")
    t.add_column("buyer")
    for y in pivot.columns:
        t.add_column(str(y), justify="right")
    for (o, s, b), row in pivot.iterrows():
        t.add_row(o, s, b, *(f"{v:,.0f}" for v in row))
    return t


def violations_table(report: CheckReport) -> Table:
    t = Table(title="Checker violations")
    for col in ("constraint", "index", "amount", "message"):
        t.add_column(col, overflow="fold")
    for v in report.violations[:50]:
        t.add_row(v.constraint, v.index, f"{v.amount:.6g}", v.message)
    return t


def print_run(console: Console, r: Results, report: CheckReport | None) -> None:
    console.print(summary_table(r))
    if r.has_solution:
        console.print(costs_table(r))
        console.print(contracts_table(r))
        unmet = r.tables.get("unmet")
        if unmet is not None and (unmet["unmet_t"] > 0).any():
            total = unmet["unmet_t"].sum()
            console.print(f"[red]Unmet demand: {total:,.1f} t (see unmet.csv)[/]")
        console.print(rules_table(r))
        if r.risk and r.tables.get("scenario_costs") is not None and \
                r.tables["scenario_costs"]["scenario"].nunique() > 1:
            console.print(risk_table(r))
    if report is not None and report.violations:
        console.print(violations_table(report))


def diagnosis_table(diag: Diagnosis) -> Table:
    title = ("Rules that cannot all hold (proved from the data)" if diag.stage == "presolve"
             else "Rules that must move (least total violation)")
    t = Table(title=title, caption=diag.note or None)
    for col in ("rule", "kind", "row", "year", "move by", "message"):
        t.add_column(col, overflow="fold")
    for c in diag.conflicts:
        amount = f"{c.amount:,.1f} {c.unit}" + (
            f" ({c.percentage_points:.1f} pp)" if c.percentage_points is not None else "")
        t.add_row(c.rule_id, c.kind, c.row, "" if c.year is None else str(c.year), amount,
                  c.message)
    return t


def compare_table(frame: pd.DataFrame, currency: str) -> Table:
    t = Table(title=f"Cost of compliance ({currency}, discounted, expected)")
    for col in ("relaxed rule(s)", "with", "without", "cost of compliance"):
        t.add_column(col, justify="right" if col != "relaxed rule(s)" else "left")
    for row in frame.itertuples(index=False):
        t.add_row(row.relaxed, _money(row.objective_with, ""), _money(row.objective_without, ""),
                  _money(row.cost_of_compliance, ""))
    return t


def rules_table(r: Results, limit: int = 20) -> Table:
    """Binding or violated rule rows, dearest first, with their shadow prices."""
    t = Table(title=f"Binding rules (shadow price, {r.currency})")
    rules = r.tables.get("rules")
    if rules is None or rules.empty:
        t.caption = "no rules"
        return t
    hot = rules[(rules["binding"].astype(str) == "True") | (rules["violation"] > 1e-6)]
    hot = hot.assign(_p=hot["shadow_price"].fillna(0).abs()).sort_values("_p", ascending=False)
    for col in ("rule", "row", "year", "lhs / bound", "share", "per unit", "per pp"):
        t.add_column(col, justify="left" if col in ("rule", "row") else "right")
    for row in hot.head(limit).itertuples(index=False):
        share = "" if pd.isna(row.share) else f"{row.share:.1%}"
        year = "" if pd.isna(row.year) or row.year == "" else str(int(row.year))
        t.add_row(row.rule_id, str(row.row), year, f"{row.lhs:,.1f} / {row.bound:,.1f}", share,
                  _num(row.shadow_price), _num(row.shadow_price_per_pp))
    t.caption = (f"{len(hot)} binding or violated of {len(rules)} rows; shadow prices from "
                 f"{_basis(rules)}")
    return t


def _num(x) -> str:
    return "" if x is None or pd.isna(x) else f"{x:,.0f}"


def _basis(rules: pd.DataFrame) -> str:
    bases = [b for b in rules["dual_basis"].dropna().unique() if b]
    return bases[0] if bases else "-"


def risk_table(r: Results) -> Table:
    """The distribution of the scenario cost of the chosen portfolio."""
    k = r.risk
    t = Table(title=f"Scenario cost distribution ({r.currency}, discounted)", show_header=False)
    t.add_column("measure", style="bold")
    t.add_column("value", justify="right")
    for label, key in (("mean", "mean"), ("std", "std"), (f"VaR {k['alpha']:.0%}", "var"),
                       (f"CVaR {k['alpha']:.0%}", "cvar"), ("best", "best"),
                       ("worst", "worst")):
        t.add_row(label, f"{k[key]:,.0f}")
    return t


def value_table(v, currency: str) -> Table:
    t = Table(title=f"Value of modelling uncertainty ({currency}, expected, discounted)",
              show_header=False)
    t.add_column("measure", style="bold")
    t.add_column("value", justify="right")
    for key, value in v.as_dict().items():
        if key != "status":
            t.add_row(key, _money(value, ""))
    t.caption = "VSS = EEV - RP; EVPI = RP - WS"
    return t


def evaluation_table(report: dict, currency: str) -> Table:
    t = Table(title=f"Portfolio over {report['scenarios']} scenarios ({currency}, discounted)",
              show_header=False)
    t.add_column("measure", style="bold")
    t.add_column("value", justify="right")
    t.add_row("expected cost", _money(report["expected_cost"], ""))
    for key in ("std", "var", "cvar", "best", "worst"):
        if key in report["risk"]:
            t.add_row(key, _money(report["risk"][key], ""))
    if report["infeasible_in"]:
        shown = ", ".join(report["infeasible_in"][:5])
        more = len(report["infeasible_in"]) - 5
        t.add_row("cannot be carried out in", shown + (f" (+{more} more)" if more > 0 else ""))
    t.caption = f"evaluated in {report['seconds']['total']:.1f} s"
    return t


def decomposition_table(res, currency: str) -> Table:
    t = Table(title=f"Decomposition ({currency}, expected, discounted)", show_header=False)
    t.add_column("measure", style="bold")
    t.add_column("value", justify="right")
    t.add_row("status", res.status)
    t.add_row("objective", _money(res.objective, ""))
    t.add_row("lower bound", _money(res.bound, ""))
    t.add_row("gap", f"{res.gap:.2e}")
    t.add_row("iterations", str(res.iterations))
    t.add_row("scenario groups in the master", str(len(res.representatives)))
    t.caption = f"{res.seconds['total']:.1f} s"
    return t

