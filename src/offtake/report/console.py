"""What a person reads in the terminal: findings, the run summary, costs and contracts, rules,
risk, and the analyses' reports.

The data of each report is a DataFrame from `offtake.report.tables`; this module only renders
such frames with Rich (`render` for row tables, `render_record` for measure/value records):
which columns to show under which header, how each value is written (thousands separators,
percentages, '-' for none), styles. It computes nothing of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.console import Console, JustifyMethod
from rich.table import Table

from offtake.domain.findings import Finding
from offtake.report import tables

if TYPE_CHECKING:  # result types only: importing them would load Pyomo into `validate`
    from offtake.analysis.decompose import DecomposeResult
    from offtake.analysis.saa import SaaResult
    from offtake.analysis.stochastic import StochasticValue
    from offtake.check import CheckReport
    from offtake.pipeline.diagnose import Diagnosis
    from offtake.results.tables import Results

Format = Callable[[Any], str]
"""Writes one value of a column (or of a record's measure) as text."""
RowFormat = Callable[[pd.Series], str]
"""Writes one cell from a whole row (for cells that combine columns)."""
Line = tuple[str, Sequence[str], str]
"""A record line: label, the measures it shows, the separator between them."""


# --- rendering any frame of offtake.report.tables --------------------------------------------
def _missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):  # lists and other containers
        return False


def text(x: Any) -> str:
    """Default writing of a value: '' for none, thousands separators for numbers, whole
    numbers from 100 up (amounts), four significant digits below 100 where the fraction
    matters (a probability of 0.65 is not 1), and never '-0'."""
    if _missing(x):
        return ""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x == 0:
            return "0"  # also -0.0
        return f"{x:.4g}" if abs(x) < 100 and x != round(x) else f"{x:,.0f}"
    return str(x)


def render(frame: pd.DataFrame, *, title: str | None = None, caption: str | None = None,
           columns: Mapping[str, Any] | None = None,
           formats: Mapping[Any, Format] | None = None, right: Collection[str] = (),
           row_style: Callable[[pd.Series], str | None] | None = None,
           overflow: str | None = None, limit: int | None = None) -> Table:
    """A row table as a Rich table.

    `columns`: header -> frame column, or a function of the row (a `RowFormat`: a cell that
    combines columns); default every column under its own name. `formats`: frame column -> how its
    values are written (default `text`). `right`: headers justified right. `row_style`: a
    Rich style for a row. `limit`: show only the first rows. Title and caption default to the
    frame's `attrs`.
    """
    t = Table(title=title if title is not None else frame.attrs.get("title"),
              caption=(caption if caption is not None else frame.attrs.get("caption")) or None)
    spec: Mapping[str, Any] = columns or {str(c): c for c in frame.columns}
    formats = formats or {}
    for header in spec:
        kwargs: dict[str, Any] = {"justify": "right" if header in right else "left"}
        if overflow:
            kwargs["overflow"] = overflow
        t.add_column(header, **kwargs)
    shown = frame if limit is None else frame.head(limit)
    for _, row in shown.iterrows():
        cells = []
        for source in spec.values():
            if callable(source):
                cells.append(source(row))
            else:
                cells.append(formats.get(source, text)(row[source]))
        t.add_row(*cells, style=row_style(row) if row_style else None)
    return t


def render_record(frame: pd.DataFrame, *, lines: Sequence[Line] | None = None,
                  formats: Mapping[str, Format] | None = None,
                  justify: JustifyMethod = "right",
                  title: str | None = None, caption: str | None = None) -> Table:
    """A measure/value record as a two-column Rich table without header.

    `lines`: the lines to show (label, measures, separator), a line whose measures are not all
    in the record being left out; default one line per measure, labelled by its name.
    `formats`: measure -> how its value is written (default `text`).
    """
    t = Table(title=title if title is not None else frame.attrs.get("title"),
              caption=(caption if caption is not None else frame.attrs.get("caption")) or None,
              show_header=False)
    t.add_column("measure", style="bold")
    t.add_column("value", justify=justify)
    values = dict(zip(frame["measure"], frame["value"], strict=True))
    formats = formats or {}
    for text_, measures, sep in lines or [(m, [m], "") for m in values]:
        if all(m in values for m in measures):
            t.add_row(text_, sep.join(formats.get(m, text)(values[m]) for m in measures))
    return t


# --- how values are written --------------------------------------------------------------------
def gap_text(g: float | None) -> str:
    """A relative MIP gap in percent, to four decimals (1e-6 is 0.0001 %)."""
    return "-" if g is None else f"{g:.4%}".replace("%", " %")


def _money(x: float | None, currency: str) -> str:
    return "-" if x is None else f"{x:,.0f} {currency}"


def _num(x: Any) -> str:
    return "" if _missing(x) else f"{x:,.0f}"


def _amount(currency: str = "") -> Format:
    return lambda x: _money(x, currency)


# --- the reports ---------------------------------------------------------------------------------
def findings_table(findings: Sequence[Finding], title: str = "Findings") -> Table:
    def severity(s: str) -> str:
        return f"[{'red' if s == 'error' else 'yellow'}]{s}[/]"

    frame = tables.findings_frame(findings, title)
    columns: dict[str, Any] = {c: c for c in ("severity", "code", "location", "message", "hint")}
    if (frame["cell"] != "").any():  # a spreadsheet: the cell first
        columns = {"severity": "severity", "code": "code", "cell": "cell",
                   "location": "location", "message": "message", "hint": "hint"}
    return render(frame, columns=columns, formats={"severity": severity}, overflow="fold")


def summary_table(r: Results) -> Table:
    return render_record(
        tables.run_summary_frame(r), justify="left",
        lines=[("status", ["status", "message"], ""), ("objective", ["objective"], ""),
               ("bound / gap", ["bound", "MIP gap"], " / "),
               ("solver", ["solver", "solver version"], " "),
               ("build / solve", ["build time", "solve time"], " / "),
               ("model size", ["model rows", "model columns", "model nonzeros",
                               "model binaries"], ", "),
               ("checker", ["checker violations"], "")],
        formats={
            "message": lambda m: f" ({m})" if m else "",
            "objective": _amount(r.currency), "bound": _amount(r.currency),
            "MIP gap": gap_text,
            "build time": lambda s: f"{s:.2f} s", "solve time": lambda s: f"{s:.2f} s",
            "model rows": lambda n: f"{n} rows", "model columns": lambda n: f"{n} columns",
            "model nonzeros": lambda n: f"{n} nonzeros",
            "model binaries": lambda n: f"{n} binaries",
            "checker violations": lambda n: "no violations" if n == 0
            else f"[red]{n} violation(s)[/]",
        })


def costs_table(r: Results) -> Table:
    frame = tables.costs_frame(r)
    money = f"cost ({r.currency})"
    styles = {"total": "bold", "risk": "italic", "objective": "bold", "third party": "dim"}

    def term(row: pd.Series) -> str:
        return row["term"] + (" (not in objective)" if row["line"] == "third party" else "")

    return render(frame, columns={"term": term, r.currency: money}, right=[r.currency],
                  formats={money: lambda x: f"{x:,.0f}"},
                  row_style=lambda row: styles.get(row["line"]))


def buyer_costs_table(r: Results) -> Table:
    frame = tables.buyer_costs_frame(r)
    money = [c for c in frame.columns if c != "buyer"]
    return render(frame, right=money, formats=dict.fromkeys(money, lambda x: f"{x:,.0f}"),
                  row_style=lambda row: "bold" if row["buyer"] == tables.TOTAL else None)


def contracts_table(r: Results) -> Table:
    frame = tables.contracts_frame(r)
    years = [c for c in frame.columns if isinstance(c, int)]
    return render(frame, columns={str(c): c for c in frame.columns},
                  formats={y: lambda v: f"{v:,.0f}" for y in years},
                  right=[str(y) for y in years])


def violations_table(report: CheckReport) -> Table:
    return render(tables.violations_frame(report), formats={"amount": lambda x: f"{x:.6g}"},
                  overflow="fold", limit=50)


def print_run(console: Console, r: Results, report: CheckReport | None,
              rows: int | None = 20) -> None:
    """The run summary, costs, contracts, rules (the first `rows`, None: all) and risk."""
    console.print(summary_table(r))
    if r.has_solution:
        console.print(costs_table(r))
        if len(r.buyer_costs()) > 1:
            console.print(buyer_costs_table(r))
        console.print(contracts_table(r))
        unmet = r.tables.get("unmet")
        if unmet is not None and (unmet["unmet_t"] > 0).any():
            total = unmet["unmet_t"].sum()
            console.print(f"[red]Unmet demand: {total:,.1f} t (see unmet.csv)[/]")
        stock = tables.stockpiles_frame(r)
        if not stock.empty:
            tonnes = ["bought (t)", "released (t)", "end level (t)"]
            console.print(render(stock, right=tonnes,
                                 formats=dict.fromkeys(tonnes, lambda x: f"{x:,.1f}")))
        console.print(rules_table(r, rows))
        if r.risk and r.tables.get("scenario_costs") is not None and \
                r.tables["scenario_costs"]["scenario"].nunique() > 1:
            console.print(risk_table(r))
    if report is not None and report.violations:
        console.print(violations_table(report))


def diagnosis_table(diag: Diagnosis) -> Table:
    def move_by(row: pd.Series) -> str:
        pp = row["move by (pp)"]
        return f"{row['move by']:,.1f} {row['unit']}" + (
            "" if _missing(pp) else f" ({pp:.1f} pp)")

    return render(tables.diagnosis_frame(diag),
                  columns={"rule": "rule", "kind": "kind", "row": "row", "year": "year",
                           "move by": move_by, "message": "message"},
                  formats={"year": lambda y: "" if _missing(y) else str(y)}, overflow="fold")


def compare_table(frame: pd.DataFrame, currency: str) -> Table:
    data = tables.compare_frame(frame, currency)
    return render(data, columns={"relaxed rule(s)": "relaxed rule(s)",
                                 "with": f"with ({currency})",
                                 "without": f"without ({currency})",
                                 "cost of compliance": f"cost of compliance ({currency})"},
                  formats={c: _amount() for c in data.columns if c.endswith(f"({currency})")},
                  right=["with", "without", "cost of compliance"])


def rules_table(r: Results, limit: int | None = 20) -> Table:
    """Binding or violated rule rows, dearest first, with their shadow prices; the first
    `limit` rows (None: all), with a scenario column when rows differ by scenario."""
    frame = tables.rules_frame(r)
    if frame.empty and not len(frame.columns):
        return render(frame)
    per_unit = f"shadow price per unit ({r.currency})"
    per_pp = f"shadow price per pp ({r.currency})"
    columns: dict[str, Any] = {"rule": "rule", "row": "row", "year": "year"}
    if frame["scenario"].nunique() > 1:
        columns["scenario"] = "scenario"
    columns |= {"lhs / bound": lambda row: f"{row['lhs']:,.1f} / {row['bound']:,.1f}",
                "share": "share", "per unit": per_unit, "per pp": per_pp}
    shown = len(frame) if limit is None else min(limit, len(frame))
    caption = frame.attrs.get("caption", "")
    if shown < len(frame):
        caption += f"; first {shown} shown (--rows all for every row)"
    return render(
        frame, limit=limit, right=["year", "lhs / bound", "share", "per unit", "per pp"],
        caption=caption, columns=columns,
        formats={"year": lambda y: "" if _missing(y) else str(int(y)),
                 "share": lambda s: "" if _missing(s) else f"{s:.1%}",
                 per_unit: _num, per_pp: _num})


def risk_table(r: Results) -> Table:
    """The distribution of the scenario cost of the chosen portfolio."""
    frame = tables.risk_frame(r)
    return render_record(frame, formats={m: lambda x: f"{x:,.0f}" for m in frame["measure"]})


def value_table(v: StochasticValue, currency: str) -> Table:
    frame = tables.value_frame(v, currency)
    return render_record(frame, formats={m: _amount() for m in frame["measure"]})


def evaluation_table(report: dict, currency: str) -> Table:
    def scenarios(names: list[str]) -> str:
        more = len(names) - 5
        return ", ".join(names[:5]) + (f" (+{more} more)" if more > 0 else "")

    frame = tables.evaluation_frame(report, currency)
    formats: dict[str, Format] = {m: _amount() for m in frame["measure"]}
    formats["cannot be carried out in"] = scenarios
    return render_record(frame, formats=formats)  # 'VaR 95%', as the solve's risk table


def saa_table(res: SaaResult, currency: str) -> Table:
    frame = tables.saa_frame(res, currency)
    formats: dict[str, Format] = {m: _amount() for m in frame["measure"]}
    for m in frame["measure"]:
        if m.endswith("relative"):
            formats[m] = lambda x: "" if x is None else f"{x:.3%}"
        elif m.startswith("seconds"):
            formats[m] = lambda x: "" if x is None else f"{x:,.1f}"
    formats["replications x scenarios"] = str
    return render_record(frame, formats=formats)


def decomposition_table(res: DecomposeResult, currency: str) -> Table:
    return render_record(tables.decomposition_frame(res, currency), formats={
        "objective": _amount(), "lower bound": _amount(), "gap": gap_text,
        "iterations": str, "scenario groups in the master": str})
