"""`results.xlsx`: the report frames of one solve as a workbook a spreadsheet user can read.

Renders the frames of `offtake.report.tables` (run information, the plan as offer x year,
costs by term and by buyer, binding rules with shadow prices, origin shares, concentration,
scenario costs, fiscal cost) one per sheet: title and caption above the table, units in the
headers, numbers formatted. Computes nothing of its own. openpyxl is loaded here only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from offtake.report import tables

if TYPE_CHECKING:
    from offtake.results.tables import Results

FIRST_ROW = 4
"""The table's header row (title in row 1, caption in row 2)."""


def result_frames(r: Results) -> dict[str, pd.DataFrame]:
    """The sheets of results.xlsx: name -> frame."""
    makers: dict[str, Callable[[Results], pd.DataFrame]] = {
        "run": tables.run_summary_frame, "contracts": tables.contracts_frame,
        "plan": tables.plan_frame,
        "costs": tables.costs_frame, "costs_by_buyer": tables.buyer_costs_frame,
        "rules": tables.rules_frame, "origin": tables.origin_frame,
        "concentration": tables.concentration_frame,
        "concentration_by_buyer": tables.concentration_by_group_frame,
        "emissions": tables.emissions_frame,
        "scenario_costs": tables.scenario_costs_frame, "fiscal": tables.fiscal_frame,
        "stockpiles": tables.stockpiles_frame,
    }
    return {name: make(r) for name, make in makers.items()}


def number_format(column: str, currency: str, title: str = "") -> str | None:
    """Excel number format of a column, from its name (and the frame's title: in a frame
    titled in money, e.g. 'Cost by buyer (USD, ...)', every other number is money)."""
    name = column.lower()
    if "share" in name:
        return "0.0%"
    if name == "relative":  # a share of a reference (SAA rounds: gap over in-sample cost)
        return "0.000%"
    if name == "hhi":
        return "0.000"
    if name in ("probability",):
        return "0.000"
    if currency.lower() in name or "cost" in name or "price" in name \
            or f"({currency}".lower() in title.lower():
        return "#,##0"
    return None


def _cell(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        return str(v)
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    return v


def write_results_workbook(r: Results, path: str | Path) -> Path:
    """results.xlsx from the report frames of `r`."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)
    fill = PatternFill("solid", fgColor="DDEBF7")
    for name, frame in result_frames(r).items():
        ws = wb.create_sheet(name)
        ws["A1"] = frame.attrs.get("title", name)
        ws["A1"].font = Font(bold=True, size=13)
        if frame.attrs.get("caption"):
            ws["A2"] = frame.attrs["caption"]
        if frame.empty and not len(frame.columns):
            ws.cell(FIRST_ROW, 1, "(nothing to show)")
            continue
        record = list(frame.columns) == tables.RECORD_COLUMNS
        for c, col in enumerate(frame.columns, start=1):
            head = ws.cell(FIRST_ROW, c, col if isinstance(col, str) else int(col))
            head.font = Font(bold=True)
            head.fill = fill
            fmt = None if record else number_format(str(col), r.currency,
                                                    frame.attrs.get("title", ""))
            if isinstance(col, int):  # a year: tonnes
                fmt = "#,##0.0"
            for i, v in enumerate(frame[col].tolist(), start=FIRST_ROW + 1):
                cell = ws.cell(i, c, _cell(v))
                if record and isinstance(cell.value, float):
                    unit = str(frame["unit"].iloc[i - FIRST_ROW - 1])
                    fmt_r = "0.00E+00" if unit == "relative" else (
                        "#,##0" if unit == r.currency else "0.00")
                    cell.number_format = fmt_r
                elif fmt and isinstance(cell.value, int | float):
                    cell.number_format = fmt
                elif isinstance(cell.value, float):
                    cell.number_format = "#,##0.0"
            width = max([len(str(col))] + [len(str(x)) for x in frame[col].head(200)])
            ws.column_dimensions[get_column_letter(c)].width = min(max(width + 2, 9), 50)
        ws.freeze_panes = ws.cell(FIRST_ROW + 1, 1)
    path = Path(path)
    wb.save(path)
    return path
