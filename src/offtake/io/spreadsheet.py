"""Instances as spreadsheets: a workbook (`.xlsx`) or a folder of CSV files, one sheet (file)
per table of `offtake.io.layout`, read into the same plain data a YAML file gives and
validated by the same schema; written from an instance (`offtake template`).

Owns cells: reading a workbook (openpyxl, loaded only here) or CSV files, the spreadsheet
quirks, and where each value came from. Nothing is changed silently: a float year (2026.0), a
number where an ID or code belongs (007 typed as a number arrives as 7), a number stored as
text, a date, a blank cell inside a row of years, spaces around a header or sheet name are
findings naming the sheet and cell (`offers!D7`); dates and unknown sheets or headers are
errors, the rest warnings with the value read shown. Every finding about the instance gets its
cell too: `place` maps a location (`offers[3].max_t_per_year`) to its cell.

Must not import Pyomo or anything downstream of the schema.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from offtake.domain.findings import Finding, nearest
from offtake.domain.schema import Instance
from offtake.io.layout import (
    BY_YEAR,
    CURRENCY,
    NONE,
    SERIES_MAPS,
    Column,
    Sheet,
    series_fields,
    sheets,
)

IGNORED_SHEETS = ("notes", "lists")
"""Sheets the writer adds for people and drop-downs; the reader skips them."""
BLANK_TEMPLATE_YEARS = list(range(2026, 2036))
_BLANK = object()
_YEAR_HEADER = re.compile(r"^\s*(\d{4})(\.0+)?\s*(\[[^\]]*\])?\s*$")
_HEADER = re.compile(r"^\s*([^\[\]]*?)\s*(\[([^\]]*)\])?\s*$")


def col_letter(c: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    out = ""
    c += 1
    while c:
        c, rem = divmod(c - 1, 26)
        out = chr(65 + rem) + out
    return out


# --- reading files ---------------------------------------------------------------------------
@dataclass
class Table:
    """One sheet as read: its rows (the first is the header), the file it came from, and
    whether its cells carry types (a workbook) or are all text (CSV)."""

    name: str
    file: str
    rows: list[list[Any]]
    typed: bool


def read_workbook(path: Path) -> list[Table]:
    """Every sheet of a workbook, values as last computed (formulas give their results)."""
    from openpyxl import load_workbook

    wb = load_workbook(path, data_only=True, read_only=True)
    try:
        return [Table(ws.title, str(path),
                      _trim([list(r) for r in ws.iter_rows(values_only=True)]), True)
                for ws in wb.worksheets]
    finally:
        wb.close()


def read_csv_folder(path: Path) -> list[Table]:
    """Every `<sheet>.csv` of a folder, read as text (no NA parsing: 'NA' is Namibia)."""
    out = []
    for f in sorted(path.glob("*.csv")):
        with open(f, encoding="utf-8-sig", newline="") as fh:
            rows: list[list[Any]] = [[c if c != "" else None for c in row]
                                     for row in csv.reader(fh)]
        out.append(Table(f.stem, str(f), _trim(rows), False))
    return out


def _trim(rows: list[list[Any]]) -> list[list[Any]]:
    """Rows without the trailing blank rows and columns spreadsheets keep."""
    def blank(v: Any) -> bool:
        return v is None or (isinstance(v, str) and not v.strip())

    while rows and all(blank(v) for v in rows[-1]):
        rows.pop()
    width = max((i + 1 for r in rows for i, v in enumerate(r) if not blank(v)), default=0)
    return [list(r[:width]) + [None] * (width - len(r)) for r in rows]


# --- the reader ------------------------------------------------------------------------------
@dataclass
class Parsed:
    """The document read from a spreadsheet, the cell of each location, and the reader's own
    findings (located by position; `offtake.io.loader` names them by ID)."""

    raw: dict[str, Any]
    cells: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Location (`offers[3].max_t_per_year`) -> (file, cell)."""
    findings: list[Finding] = field(default_factory=list)

    def place(self, f: Finding) -> Finding:
        """The finding with the file and cell of its location (or of the nearest enclosing
        one: a list element's cell, an item's row)."""
        loc = f.location
        while loc:
            if loc in self.cells:
                file, cell = self.cells[loc]
                message = f.message
                if f.code == "schema.missing" and loc == f.location:
                    message = message.replace(" is missing", " is blank")
                return replace(f, file=file, cell=cell, message=message)
            loc = _parent(loc)
        return f


def _parent(loc: str) -> str:
    """`offers[3].buyers[1]` -> `offers[3].buyers` -> `offers[3]` -> `offers` -> ''."""
    m = re.match(r"^(.*)(\[[^\[\]]*\]|\.[^.\[\]]*)$", loc)
    return m.group(1) if m else ""


class _Reader:
    def __init__(self, tables: list[Table]):
        self.parsed = Parsed({})
        self.raw = self.parsed.raw
        self.tables: dict[str, Table] = {}
        self.layout = {s.name: s for s in sheets()}
        self.pending: dict[tuple[str, int, str], tuple[Table, int, int]] = {}
        """Series cells that said `by year`: (section, item, field) -> where."""
        self.currencies: list[tuple[str, Table, int]] = []
        self._index(tables)

    # findings and cells
    def note(self, code: str, severity: str, loc: str, table: Table, r: int, c: int,
             message: str, hint: str = "") -> None:
        self.parsed.findings.append(Finding(code, severity, loc, message, hint,  # type: ignore[arg-type]
                                            table.file, f"{table.name}!{col_letter(c)}{r + 1}"))

    def cell(self, loc: str, table: Table, r: int, c: int) -> None:
        self.parsed.cells[loc] = (table.file, f"{table.name}!{col_letter(c)}{r + 1}")

    def _index(self, tables: list[Table]) -> None:
        known = [s.name for s in sheets()]
        for t in tables:
            name = t.name.strip()
            if name != t.name:
                self.note("sheet_name_spaces", "warning", name, t, 0, 0,
                          f"sheet name '{t.name}' read as '{name}'", "drop the spaces")
                t.name = name
            if name in IGNORED_SHEETS:
                continue
            if name not in known:
                self.note("unknown_sheet", "error", name, t, 0, 0,
                          f"unknown sheet '{name}'",
                          nearest(name, known) or f"sheets: {', '.join(known)}")
            elif name in self.tables:
                self.note("duplicate_sheet", "error", name, t, 0, 0,
                          f"sheet '{name}' appears twice")
            else:
                self.tables[name] = t

    # headers
    def header(self, sheet: Sheet, t: Table) -> tuple[dict[int, Column], dict[int, int]]:
        """Column index -> layout column, and column index -> year (sheets with years)."""
        cols = {c.name: c for c in sheet.columns}
        found: dict[int, Column] = {}
        years: dict[int, int] = {}
        seen: dict[str, int] = {}
        head = t.rows[0] if t.rows else []
        for c, h in enumerate(head):
            if h is None or (isinstance(h, str) and not h.strip()):
                if any(r[c] is not None for r in t.rows[1:]):
                    self.note("blank_header", "error", sheet.name, t, 0, c,
                              "values under a blank header", "name the column or delete it")
                continue
            if sheet.years:
                year = self._year_header(sheet, t, c, h)
                if year is not None:
                    if year in years.values():
                        self.note("duplicate_column", "error", sheet.name, t, 0, c,
                                  f"year {year} appears twice")
                    years[c] = year
                    continue
            if not isinstance(h, str):
                self.note("unknown_column", "error", sheet.name, t, 0, c,
                          f"header {h!r} is not a column name",
                          f"columns: {', '.join(cols)}")
                continue
            m = _HEADER.match(h)
            name, unit = (m.group(1), m.group(3)) if m else (h.strip(), None)
            if h != h.strip():
                self.note("header_spaces", "warning", sheet.name, t, 0, c,
                          f"header '{h}' read as '{h.strip()}'")
            if name not in cols:
                self.note("unknown_column", "error", sheet.name, t, 0, c,
                          f"unknown column '{name}' on sheet '{sheet.name}'",
                          nearest(name, cols) or f"columns: {', '.join(cols)}")
                continue
            if name in seen:
                self.note("duplicate_column", "error", sheet.name, t, 0, c,
                          f"column '{name}' appears twice (also {col_letter(seen[name])}1)")
                continue
            seen[name] = c
            self._unit(sheet.name, cols[name], unit, t, 0, c)
            found[c] = cols[name]
        return found, years

    def _year_header(self, sheet: Sheet, t: Table, c: int, h: Any) -> int | None:
        if isinstance(h, dt.date | dt.datetime):
            self.note("date_cell", "error", sheet.name, t, 0, c,
                      f"a date ({h}) where a year header belongs",
                      "format the header cell as text or a whole number")
            return None
        if isinstance(h, bool):
            return None
        if isinstance(h, int) and 1000 <= h <= 9999:
            return h
        if isinstance(h, float) and h.is_integer() and 1000 <= h <= 9999:
            self.note("float_year", "warning", sheet.name, t, 0, c,
                      f"year header {h!r} read as {int(h)}", "years are whole numbers")
            return int(h)
        if isinstance(h, str) and (m := _YEAR_HEADER.match(h)):
            if m.group(2):
                self.note("float_year", "warning", sheet.name, t, 0, c,
                          f"year header '{h}' read as {m.group(1)}", "years are whole numbers")
            return int(m.group(1))
        return None

    def _unit(self, where: str, col: Column, unit: str | None, t: Table, r: int, c: int
              ) -> None:
        """A unit written in a header (or a unit cell) must be the column's."""
        if unit is None or not unit.strip():
            return
        unit = unit.strip()
        want = col.unit
        if CURRENCY in want:
            rx = re.escape(want).replace(CURRENCY, "([A-Z]{3})")
            m = re.fullmatch(rx, unit)
            if m:
                self.currencies.append((m.group(1), t, c if r == 0 else r))
                return
        elif unit == want:
            return
        said = want.replace(CURRENCY, "the instance currency") or "no unit"
        self.note("wrong_unit", "error", where, t, r, c, f"'{col.name}' is in {said}, not {unit}",
                  "convert the values; units are fixed per column")

    # cells
    def value(self, col: Column, v: Any, loc: str, t: Table, r: int, c: int,
              kind: str | None = None) -> Any:
        """The value of a cell for its column, with a finding for each quirk; `_BLANK` for a
        blank cell or one that cannot be read (a date)."""
        kind = kind or col.kind
        if v is None:
            return _BLANK
        if isinstance(v, str) and not v.strip():
            self.note("blank_spaces", "warning", loc, t, r, c,
                      "the cell holds only spaces: read as blank")
            return _BLANK
        if isinstance(v, dt.date | dt.datetime | dt.time):
            self.note("date_cell", "error", loc, t, r, c,
                      f"the spreadsheet turned this cell into a date ({v})",
                      "format the column as text and type the value again")
            return _BLANK
        if kind == "series":
            if isinstance(v, str) and v.strip().lower() == BY_YEAR:
                return BY_YEAR
            kind = "num"
        if kind in ("list", "years", "nums"):
            return self._list(col, v, loc, t, r, c, kind)
        if kind in ("text", "enum"):
            if isinstance(v, bool):
                self.note("bool_as_text", "warning", loc, t, r, c,
                          f"a TRUE/FALSE cell where text belongs: read as '{v}'")
                return str(v).upper()
            if isinstance(v, int | float):
                text = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
                self.note("numeric_id", "warning", loc, t, r, c,
                          f"a number where text belongs: read as '{text}'",
                          "spreadsheets drop leading zeros (007 -> 7) and read 1E5 as 100000: "
                          "format ID columns as text")
                return text
            return v
        if kind == "bool":
            if isinstance(v, str) and v.strip().lower() in ("true", "false"):
                return v.strip().lower() == "true"
            return v
        if kind == "int":
            return self._int(v, loc, t, r, c)
        if kind == "num":
            return self._num(v, loc, t, r, c)
        return v

    def _num(self, v: Any, loc: str, t: Table, r: int, c: int) -> Any:
        if isinstance(v, str):
            try:
                x = float(v.strip())
            except ValueError:
                return v  # the schema says what is wrong with it
            x = int(x) if x.is_integer() and re.fullmatch(r"\s*[+-]?\d+\s*", v) else x
            if t.typed:
                self.note("number_as_text", "warning", loc, t, r, c,
                          f"a number stored as text ('{v}'): read as {x}")
            return x
        return v

    def _int(self, v: Any, loc: str, t: Table, r: int, c: int) -> Any:
        if isinstance(v, str) and re.fullmatch(r"\s*[+-]?\d+\.0*\s*", v):
            self.note("float_year" if 1000 <= float(v) <= 9999 else "float_int", "warning",
                      loc, t, r, c, f"'{v.strip()}' read as {int(float(v))}",
                      "years and counts are whole numbers")
            return int(float(v))
        v = self._num(v, loc, t, r, c)
        if isinstance(v, float) and v.is_integer():
            self.note("float_year" if 1000 <= v <= 9999 else "float_int", "warning", loc, t, r,
                      c, f"{v!r} read as {int(v)}", "years and counts are whole numbers")
            return int(v)
        return v

    def _list(self, col: Column, v: Any, loc: str, t: Table, r: int, c: int, kind: str
              ) -> Any:
        if isinstance(v, str):
            if v.strip() == NONE:
                return []
            parts = [p.strip() for p in v.split(",")]
            if any(not p for p in parts):
                self.note("empty_list_item", "warning", loc, t, r, c,
                          f"an empty item in the list '{v}' is left out",
                          "separate items with single commas")
            items: list[Any] = [p for p in parts if p]
        else:
            items = [v]
        item_kind = {"years": "int", "nums": "num"}.get(kind, "text")
        text = replace(t, typed=False) if isinstance(v, str) else t  # items of a text cell
        out = []
        for j, x in enumerate(items):
            got = self.value(col, x, f"{loc}[{j}]", text, r, c, item_kind)
            if got is not _BLANK:
                out.append(got)
        return out

    # sheets
    def read(self) -> Parsed:
        for sheet in self.layout.values():
            t = self.tables.get(sheet.name)
            if t is None:
                continue
            if sheet.kind == "keyvalue":
                self.keyvalue(sheet, t)
            elif sheet.kind == "items":
                self.items(sheet, t)
        for sheet in self.layout.values():
            t = self.tables.get(sheet.name)
            if t is not None and sheet.kind == "child":
                self.child(sheet, t)
        for (section, i, name), (t, r, c) in self.pending.items():
            self.note("by_year_missing", "error", f"{section}[{i}].{name}", t, r, c,
                      f"'{name}' says '{BY_YEAR}' but the by_year sheet has no row for it",
                      f"add a by_year row: table {section}, id, field {name}, then the years")
        self._currency()
        return self.parsed

    def _currency(self) -> None:
        meta = self.raw.get("meta")
        cur = meta.get("currency") if isinstance(meta, dict) else None
        if not isinstance(cur, str):
            return
        for code, t, c in self.currencies:
            if code != cur.strip():
                self.note("wrong_currency", "error", t.name, t, 0, c,
                          f"this column is in {code}; the instance's currency is {cur}",
                          "convert, or correct the header")

    def keyvalue(self, sheet: Sheet, t: Table) -> None:
        cols = {c.name: c for c in sheet.columns}
        section: dict[str, Any] = self.raw.setdefault(sheet.section, {})
        self.cell(sheet.section, t, 0, 0)
        head = [str(h).strip() if h is not None else "" for h in (t.rows[0] if t.rows else [])]
        for want in ("field", "value"):
            if want not in head:
                self.note("missing_column", "error", sheet.section, t, 0, 0,
                          f"sheet '{sheet.name}' needs a '{want}' column",
                          "columns: field, value, unit, about")
                return
        fc, vc = head.index("field"), head.index("value")
        uc = head.index("unit") if "unit" in head else None
        for c, h in enumerate(head):
            if h and h not in ("field", "value", "unit", "about"):
                self.note("unknown_column", "error", sheet.section, t, 0, c,
                          f"unknown column '{h}'", "columns: field, value, unit, about")
        seen: dict[str, int] = {}
        for r, row in enumerate(t.rows[1:], start=1):
            name = row[fc]
            if name is None or (isinstance(name, str) and not name.strip()):
                if row[vc] is not None:
                    self.note("blank_header", "error", sheet.section, t, r, fc,
                              "a value without a field name")
                continue
            name = str(name).strip()
            if name not in cols:
                self.note("unknown_field", "error", f"{sheet.section}.{name}", t, r, fc,
                          f"unknown field '{name}' on sheet '{sheet.name}'",
                          nearest(name, cols) or f"fields: {', '.join(cols)}")
                continue
            loc = f"{sheet.section}.{name}"
            if name in seen:
                self.note("duplicate_field", "error", loc, t, r, fc,
                          f"field '{name}' appears twice (also row {seen[name] + 1})")
                continue
            seen[name] = r
            self.cell(loc, t, r, vc)
            if uc is not None and isinstance(row[uc], str):
                self._unit(loc, cols[name], row[uc], t, r, uc)
            got = self.value(cols[name], row[vc], loc, t, r, vc)
            if got is not _BLANK:
                section[name] = got

    def _rows(self, t: Table) -> Iterable[tuple[int, list[Any]]]:
        """Data rows that hold anything, with their row index."""
        for r, row in enumerate(t.rows[1:], start=1):
            if any(v is not None and not (isinstance(v, str) and not v.strip()) for v in row):
                yield r, row

    def items(self, sheet: Sheet, t: Table) -> None:
        cols, _ = self.header(sheet, t)
        items: list[dict[str, Any]] = []
        self.raw[sheet.section] = items
        self.cell(sheet.section, t, 0, 0)
        for r, row in self._rows(t):
            i = len(items)
            item: dict[str, Any] = {}
            base = f"{sheet.section}[{i}]"
            self.cell(base, t, r, 0)
            for c, col in cols.items():
                loc = f"{base}.{col.name}"
                self.cell(loc, t, r, c)
                got = self.value(col, row[c], loc, t, r, c)
                if got is BY_YEAR:
                    self.pending[(sheet.section, i, col.name)] = (t, r, c)
                elif got is not _BLANK:
                    _put(item, col.name, got)
            items.append(item)

    def _parent(self, sheet: Sheet, t: Table, r: int, c: int, v: Any, section: str
                ) -> int | None:
        """Index of the item a child row belongs to, or None (with a finding)."""
        items = self.raw.get(section)
        loc = f"{sheet.name}"
        got = self.value(Column("parent", "text"), v, loc, t, r, c)
        if got is _BLANK:
            self.note("missing_parent", "error", loc, t, r, c,
                      f"which {section[:-1] if section != 'facilities' else 'facility'} this "
                      "row belongs to is blank")
            return None
        ids = [str(x.get("id", "")).strip() if isinstance(x, dict) else "" for x in items or []]
        if str(got).strip() in ids:
            return ids.index(str(got).strip())
        self.note("unknown_reference", "error", loc, t, r, c,
                  f"no item '{got}' on sheet '{section}'", nearest(str(got), ids))
        return None

    def child(self, sheet: Sheet, t: Table) -> None:
        if sheet.name == "by_year":
            self.by_year(sheet, t)
            return
        cols, years = self.header(sheet, t)
        first = sheet.columns[0].name
        pc = next((c for c, col in cols.items() if col.name == first), None)
        if pc is None and sheet.parent not in ("meta", "network"):
            if any(True for _ in self._rows(t)):
                self.note("missing_column", "error", sheet.name, t, 0, 0,
                          f"sheet '{sheet.name}' needs a '{first}' column")
            return
        counts: dict[tuple[int, str], int] = {}
        for r, row in self._rows(t):
            if sheet.parent == "meta":
                self.source_row(sheet, t, r, row, cols)
                continue
            if sheet.parent == "network":
                arcs = self.raw.setdefault("network", {}).setdefault("arcs", [])
                self.fill(arcs, f"network.arcs[{len(arcs)}]", t, r, row, cols)
                continue
            assert pc is not None
            i = self._parent(sheet, t, r, pc, row[pc], sheet.parent)
            if i is None:
                continue
            item = self.raw[sheet.parent][i]
            base = f"{sheet.parent}[{i}]"
            if sheet.name == "recipes":
                self.recipe_row(item, base, t, r, row, cols)
            elif sheet.name == "demand":
                self.demand_row(item, base, t, r, row, cols, years)
            elif sheet.name == "scenario_changes":
                self.change_row(sheet, item, base, t, r, row, cols, counts, i)
            else:
                lst = item.setdefault(sheet.extra["field"], [])
                self.fill(lst, f"{base}.{sheet.extra['field']}[{len(lst)}]", t, r, row, cols,
                          skip=first)

    def fill(self, lst: list[Any], base: str, t: Table, r: int, row: list[Any],
             cols: dict[int, Column], skip: str = "") -> None:
        """Append the row's non-blank cells as one item of `lst` at location `base`."""
        item: dict[str, Any] = {}
        self.cell(base, t, r, 0)
        for c, col in cols.items():
            if col.name == skip:
                continue
            loc = f"{base}.{col.name}"
            self.cell(loc, t, r, c)
            got = self.value(col, row[c], loc, t, r, c)
            if got is not _BLANK:
                _put(item, col.name, got)
        lst.append(item)

    def source_row(self, sheet: Sheet, t: Table, r: int, row: list[Any],
                   cols: dict[int, Column]) -> None:
        by = {col.name: c for c, col in cols.items()}
        if "id" not in by:
            return
        key = self.value(cols[by["id"]], row[by["id"]], "meta.sources", t, r, by["id"])
        if key is _BLANK:
            self.note("missing_parent", "error", "meta.sources", t, r, by["id"],
                      "a source without an ID")
            return
        loc = f"meta.sources.{key}"
        self.cell(loc, t, r, by["id"])
        text = (self.value(cols[by["description"]], row[by["description"]], loc, t, r,
                           by["description"]) if "description" in by else _BLANK)
        self.raw.setdefault("meta", {}).setdefault("sources", {})[key] = (
            "" if text is _BLANK else text)

    def recipe_row(self, item: dict, base: str, t: Table, r: int, row: list[Any],
                   cols: dict[int, Column]) -> None:
        by = {col.name: c for c, col in cols.items()}
        if "input" not in by or "t_per_t" not in by:
            self.note("missing_column", "error", "recipes", t, 0, 0,
                      "sheet 'recipes' needs columns facility, input and t_per_t")
            return
        key = self.value(cols[by["input"]], row[by["input"]], f"{base}.recipe", t, r,
                         by["input"])
        if key is _BLANK:
            self.note("blank_cell", "error", f"{base}.recipe", t, r, by["input"],
                      "a recipe row without its input material")
            return
        loc = f"{base}.recipe.{key}"
        self.cell(loc, t, r, by["input"])
        ratio = self.value(cols[by["t_per_t"]], row[by["t_per_t"]], loc, t, r, by["t_per_t"])
        recipe = item.setdefault("recipe", {})
        if key in recipe:
            self.note("duplicate_key", "error", loc, t, r, by["input"],
                      f"input '{key}' appears twice in this facility's recipe")
        recipe[key] = None if ratio is _BLANK else ratio

    def _years(self, loc: str, t: Table, r: int, row: list[Any], years: dict[int, int]
               ) -> dict[int, Any]:
        """The filled year cells of a row; a blank between two filled years is an error."""
        filled = [c for c in years if row[c] is not None and not (
            isinstance(row[c], str) and not row[c].strip())]
        out: dict[int, Any] = {}
        if not filled:
            return out
        lo, hi = min(years[c] for c in filled), max(years[c] for c in filled)
        for c, y in sorted(years.items(), key=lambda kv: kv[1]):
            if not lo <= y <= hi:
                continue
            self.cell(f"{loc}[{y}]", t, r, c)
            got = self.value(Column(str(y), "num"), row[c], f"{loc}[{y}]", t, r, c)
            if got is _BLANK:
                self.note("blank_cell", "error", f"{loc}[{y}]", t, r, c,
                          f"blank cell for {y} between filled years",
                          "give a number (0 if none): blank cells are never filled in")
                continue
            out[y] = got
        return out

    def demand_row(self, item: dict, base: str, t: Table, r: int, row: list[Any],
                   cols: dict[int, Column], years: dict[int, int]) -> None:
        by = {col.name: c for c, col in cols.items()}
        if "material" not in by:
            self.note("missing_column", "error", "demand", t, 0, 0,
                      "sheet 'demand' needs columns buyer, material, every_year and years")
            return
        key = self.value(cols[by["material"]], row[by["material"]], f"{base}.demand_t", t, r,
                         by["material"])
        if key is _BLANK:
            self.note("blank_cell", "error", f"{base}.demand_t", t, r, by["material"],
                      "a demand row without its material")
            return
        loc = f"{base}.demand_t.{key}"
        self.cell(loc, t, r, by["material"])
        demand = item.setdefault("demand_t", {})
        if key in demand:
            self.note("duplicate_key", "error", loc, t, r, by["material"],
                      f"material '{key}' appears twice for this buyer")
        self._series(demand, key, loc, t, r, row, by.get("every_year"), cols, years)

    def _series(self, target: dict, key: str, loc: str, t: Table, r: int, row: list[Any],
                ec: int | None, cols: dict[int, Column], years: dict[int, int]) -> None:
        """target[key] = the row's every_year value or its values by year (not both)."""
        const = (self.value(cols[ec], row[ec], loc, t, r, ec) if ec is not None else _BLANK)
        by_year = self._years(loc, t, r, row, years)
        if const is not _BLANK and by_year:
            self.note("constant_and_years", "error", loc, t, r, ec or 0,
                      "both every_year and values by year",
                      "give one: every_year for a constant, or one value per year")
        elif const is not _BLANK:
            target[key] = const
        elif by_year:
            target[key] = by_year
        else:
            self.note("blank_cell", "error", loc, t, r, ec or 0,
                      "no value: every_year and every year are blank",
                      "give every_year or the values by year")

    def change_row(self, sheet: Sheet, item: dict, base: str, t: Table, r: int,
                   row: list[Any], cols: dict[int, Column], counts: dict[tuple[int, str], int],
                   i: int) -> None:
        by = {col.name: c for c, col in cols.items()}
        models = sheet.extra["models"]
        kind = (self.value(cols[by["change"]], row[by["change"]], base, t, r, by["change"])
                if "change" in by else _BLANK)
        if kind not in models:
            self.note("unknown_change", "error", base, t, r, by.get("change", 0),
                      f"change must be one of {', '.join(models)}"
                      + ("" if kind is _BLANK else f", not '{kind}'"),
                      nearest(str(kind), models) if kind is not _BLANK else "")
            return
        j = counts.get((i, str(kind)), 0)
        counts[(i, str(kind))] = j + 1
        lst = item.setdefault(kind, [])
        self.fill(lst, f"{base}.{kind}[{j}]", t, r, row, cols, skip="")
        lst[-1].pop("scenario", None)
        lst[-1].pop("change", None)

    def by_year(self, sheet: Sheet, t: Table) -> None:
        cols, years = self.header(sheet, t)
        by = {col.name: c for c, col in cols.items()}
        if not {"table", "id", "field"} <= set(by):
            if any(True for _ in self._rows(t)):
                self.note("missing_column", "error", "by_year", t, 0, 0,
                          "sheet 'by_year' needs columns table, id, field (then unit, "
                          "every_year and one column per year)")
            return
        fields = series_fields()
        maps = {name for _, name in SERIES_MAPS}
        for r, row in self._rows(t):
            table = self.value(cols[by["table"]], row[by["table"]], "by_year", t, r, by["table"])
            if table not in fields:
                self.note("unknown_table", "error", "by_year", t, r, by["table"],
                          f"no values by year on sheet '{table}'",
                          nearest(str(table), fields) or f"tables: {', '.join(fields)}")
                continue
            i = self._parent(sheet, t, r, by["id"], row[by["id"]], table)
            if i is None:
                continue
            name = self.value(cols[by["field"]], row[by["field"]], "by_year", t, r, by["field"])
            head, _, key = str(name).partition(".")
            if name is _BLANK or head not in fields[table] or (head in maps) != bool(key):
                allowed = [f + (".<id>" if f in maps else "") for f in fields[table]]
                self.note("unknown_field", "error", f"{table}[{i}]", t, r, by["field"],
                          f"'{name}' is not a field of '{table}' given by year",
                          nearest(str(name), allowed) or f"fields: {', '.join(allowed)}")
                continue
            item = self.raw[table][i]
            loc = f"{table}[{i}].{name}"
            col = next(c for s in self.layout.values() if s.name == table
                       for c in s.columns if c.name == head) if head not in maps else None
            unit_col = col or Column(head, "num", "CUR/kg")
            if "unit" in by and isinstance(row[by["unit"]], str):
                self._unit(loc, unit_col, row[by["unit"]], t, r, by["unit"])
            if head in maps:
                target = item.setdefault(head, {})
                if key in target:
                    self.note("duplicate_key", "error", loc, t, r, by["field"],
                              f"'{name}' appears twice")
                self.cell(loc, t, r, by["field"])
                self._series(target, key, loc, t, r, row, by.get("every_year"), cols, years)
                continue
            pending = self.pending.pop((table, i, head), None)
            if pending is None and head in item:
                self.note("constant_and_years", "error", loc, t, r, by["field"],
                          f"'{head}' of {table} row {i + 2} holds a value and has a by_year "
                          "row", f"write '{BY_YEAR}' in the {table} sheet, or delete this row")
                continue
            self.cell(loc, t, r, by["field"])
            holder: dict[str, Any] = {}
            self._series(holder, head, loc, t, r, row, by.get("every_year"), cols, years)
            if head in holder:
                item[head] = holder[head]


def _put(item: dict[str, Any], path: str, value: Any) -> None:
    """item['scope']['buyers'] = value for the column `scope.buyers`."""
    *heads, last = path.split(".")
    for h in heads:
        item = item.setdefault(h, {})
    item[last] = value


def parse_tables(tables: list[Table]) -> Parsed:
    """The document, cells and reader findings of a spreadsheet's sheets."""
    return _Reader(tables).read()


# --- writing ---------------------------------------------------------------------------------
def instance_years(data: dict[str, Any] | None) -> list[int]:
    """The year columns of the demand and by_year sheets: the horizon and every year any
    series names."""
    if data is None:
        return BLANK_TEMPLATE_YEARS
    h = data["horizon"]
    years = set(range(h["first_year"], h["last_year"] + 1))

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            years.update(k for k in x if isinstance(k, int))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(data)
    return sorted(years)


def _out(v: Any, col: Column | None = None) -> Any:
    """A value as written to a cell."""
    if v is None:
        return None
    if hasattr(v, "value") and not isinstance(v, int | float | str):  # enums
        return v.value
    if isinstance(v, list):
        if not v:
            return NONE if col is not None and col.default_none else None
        return ", ".join(str(_out(x)) for x in v)
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return int(v)
    return v


def _get(item: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(item, dict) or part not in item:
            return None
        item = item[part]
    return item


@dataclass
class Grid:
    """One sheet as written: headers, rows, the layout sheet and its columns by position."""

    sheet: Sheet
    header: list[Any]
    rows: list[list[Any]]
    columns: list[Column | None]


def instance_grids(inst: Instance | None) -> list[Grid]:
    """Every sheet of the layout filled from `inst` (headers only for None)."""
    from offtake.domain.transforms import to_data

    data = to_data(inst) if inst is not None else None
    currency = data["meta"]["currency"] if data else "USD"
    years = instance_years(data)
    fields = series_fields()
    maps = {name for _, name in SERIES_MAPS}
    by_year_rows: list[list[Any]] = []
    unit_of = {(s.section, c.name): c.unit for s in sheets() for c in s.columns}
    grids = []
    for sheet in sheets():
        cols = list(sheet.columns)
        if sheet.kind == "keyvalue":
            sec = data[sheet.section] if data else {}
            rows = [[c.name, _out(sec.get(c.name), c), c.unit.replace(CURRENCY, currency),
                     c.about] for c in cols]
            grids.append(Grid(sheet, ["field", "value", "unit", "about"], rows,
                              [None, None, None, None]))
            continue
        header: list[Any] = [c.header(currency) for c in cols]
        colmap: list[Column | None] = list(cols)
        if sheet.years:
            header += [y for y in years]
            colmap += [None] * len(years)
        rows = []
        if data is not None:
            rows = _rows_of(sheet, data, years, fields, maps, by_year_rows, currency, unit_of)
        if sheet.name == "by_year":
            rows = by_year_rows
        grids.append(Grid(sheet, header, rows, colmap))
    return grids


def _rows_of(sheet: Sheet, data: dict[str, Any], years: list[int],
             fields: dict[str, list[str]], maps: set[str], by_year_rows: list[list[Any]],
             currency: str, unit_of: dict[tuple[str, str], str]) -> list[list[Any]]:
    cols = list(sheet.columns)

    def year_cells(series: Any) -> list[Any]:
        if isinstance(series, dict):
            return [None] + [_out(series.get(y)) for y in years]
        return [_out(series)] + [None] * len(years)

    def add_by_year(section: str, item_id: str, name: str, series: Any, unit: str) -> None:
        by_year_rows.append([section, item_id, name, unit.replace(CURRENCY, currency),
                             *year_cells(series)])

    rows: list[list[Any]] = []
    if sheet.kind == "items":
        for item in data[sheet.section]:
            row = []
            for c in cols:
                v = _get(item, c.name)
                if c.kind == "series" and isinstance(v, dict):
                    add_by_year(sheet.section, item["id"], c.name, v, c.unit)
                    v = BY_YEAR
                row.append(_out(v, c))
            rows.append(row)
            for name in fields.get(sheet.section, []):
                if name in maps:
                    for key, series in (item.get(name) or {}).items():
                        add_by_year(sheet.section, item["id"], f"{name}.{key}", series,
                                    unit_of.get((sheet.section, "price_per_kg"), "CUR/kg"))
    elif sheet.name == "sources":
        rows = [[k, v] for k, v in data["meta"].get("sources", {}).items()]
    elif sheet.name == "arcs":
        rows = [[_out(_get(a, c.name), c) for c in cols] for a in data["network"]["arcs"]]
    elif sheet.name == "recipes":
        rows = [[f["id"], m, _out(x)] for f in data["facilities"]
                for m, x in f.get("recipe", {}).items()]
    elif sheet.name == "demand":
        rows = [[b["id"], m, *year_cells(s)] for b in data["buyers"]
                for m, s in b["demand_t"].items()]
    elif sheet.name == "scenario_changes":
        for sc in data["scenarios"]:
            for kind in sheet.extra["models"]:
                for ch in sc.get(kind, []):
                    rows.append([sc["id"], kind] + [_out(ch.get(c.name), c) if c.name in ch
                                                    else None for c in cols[2:]])
    elif "field" in sheet.extra:
        for item in data[sheet.section]:
            for sub in item.get(sheet.extra["field"], []):
                rows.append([item["id"]] + [_out(_get(sub, c.name), c) for c in cols[1:]])
    return rows


def write_csv_folder(path: Path, inst: Instance | None) -> list[Path]:
    """One `<sheet>.csv` per sheet (UTF-8, opens in any spreadsheet)."""
    path.mkdir(parents=True, exist_ok=True)
    written = []
    for g in instance_grids(inst):
        f = path / f"{g.sheet.name}.csv"
        with open(f, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(g.header)
            for row in g.rows:
                w.writerow(["TRUE" if v is True else "FALSE" if v is False else
                            "" if v is None else v for v in row])
        written.append(f)
    return written


NOTES = [
    "How to fill in this workbook",
    "One sheet per table; one row per item; the ID of an item in column A. Column headers "
    "name the field and its unit in brackets ([t/yr], [USD/kg], [fraction]): give values in "
    "that unit (shares as fractions, 0.65 = 65 %).",
    "Blank cells take the schema's default (see the column reference below); a required "
    "field left blank is an error naming its cell. Nothing blank is ever filled in silently.",
    "Lists (buyers of an offer, countries, years) are written in one cell, separated by "
    f"commas. A blank list cell means the default (for buyers, scopes: all); '{NONE}' means "
    "an empty list.",
    f"A value that changes by year: write '{BY_YEAR}' in its cell and give one value per "
    "year on the by_year sheet (table, id, field, then one column per year). Demand is on "
    "the demand sheet: every_year for a constant, or one value per year.",
    "Drop-down lists offer the IDs of other sheets and the allowed values of each "
    "enumeration. Format ID columns as text: spreadsheets turn 007 into 7, 1E5 into 100000 "
    "and MAR-1 into a date; the reader reports each such cell.",
    "Year columns (demand, by_year): one per year of the horizon (and of any contract "
    "window beyond it); add or delete columns as needed.",
    "Check it: offtake validate THIS.xlsx (every finding names its sheet and cell); solve "
    "it: offtake solve THIS.xlsx --out DIR. The sheets 'notes' and 'lists' are not read.",
]


def _validation_lists(grids: list[Grid]) -> dict[str, list[str]]:
    """Values of the drop-downs that are not another sheet's IDs, by list name."""
    from offtake.domain.validation import iso_countries

    out: dict[str, list[str]] = {"countries": sorted(iso_countries()),
                                 "TRUE/FALSE": ["TRUE", "FALSE"],
                                 "tables": list(series_fields())}
    for g in grids:
        for c in g.sheet.columns:
            if c.kind == "enum" and c.choices:
                out.setdefault(f"{g.sheet.name}.{c.name}", list(c.choices))
    return out


def write_workbook(path: Path, inst: Instance | None) -> Path:
    """The instance (or a blank template) as a workbook: a notes sheet, one sheet per table
    with units in the headers, each column's meaning in its header's comment, drop-downs for
    IDs and enumerations, a hidden sheet of the drop-downs' values."""
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.worksheet.datavalidation import DataValidation

    grids = instance_grids(inst)
    wb = Workbook()
    notes = wb.active
    notes.title = "notes"
    title = f"offtake instance: {inst.meta.name}" if inst is not None else \
        "offtake instance template"
    notes.append([title])
    notes["A1"].font = Font(bold=True, size=14)
    if inst is not None and inst.meta.description:
        notes.append([inst.meta.description])
    notes.append([])
    for line in NOTES:
        notes.append([line])
    notes.append([])
    notes.append(["sheet", "column", "unit", "allowed values", "meaning"])
    for cell in notes[notes.max_row]:
        cell.font = Font(bold=True)
    currency = inst.meta.currency if inst is not None else "USD"
    for g in grids:
        for column in g.sheet.columns:
            notes.append([g.sheet.name, column.name, column.unit.replace(CURRENCY, currency),
                          ", ".join(column.choices)
                          or (f"IDs of {column.ref}" if column.ref else ""), column.about])
    notes.column_dimensions["A"].width = 18
    notes.column_dimensions["B"].width = 26
    for row in notes.iter_rows(min_row=1, max_row=len(NOTES) + 4):
        row[0].alignment = Alignment(wrap_text=False)

    lists = _validation_lists(grids)
    ref_of: dict[str, str] = {}
    head_fill = PatternFill("solid", fgColor="DDEBF7")
    for g in grids:
        ws = wb.create_sheet(g.sheet.name)
        ws.append(g.header)
        for row in g.rows:
            ws.append(row)
        for r in ws.iter_rows(min_row=2):
            for cell in r:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    cell.data_type = "s"  # text, not a formula
        for c, cell in enumerate(ws[1]):
            cell.font = Font(bold=True)
            cell.fill = head_fill
            col = g.columns[c] if c < len(g.columns) else None
            if col is not None and col.about:
                cell.comment = Comment(col.about, "offtake", width=320, height=120)
            width = max([len(str(cell.value or ""))] + [len(str(r[c] or ""))
                                                       for r in g.rows[:200] if c < len(r)])
            ws.column_dimensions[cell.column_letter].width = min(max(width + 2, 8), 60)
        ws.freeze_panes = "B2" if g.sheet.kind != "keyvalue" else "A2"
        ref_of[g.sheet.name] = f"{g.sheet.name}!$A$2:$A$2000"
    ws_lists = wb.create_sheet("lists")
    for k, (name, values) in enumerate(lists.items()):
        letter = col_letter(k)
        ws_lists.cell(1, k + 1, name)
        for j, v in enumerate(values):
            ws_lists.cell(j + 2, k + 1, v)
        ref_of[f"list:{name}"] = f"lists!${letter}$2:${letter}${len(values) + 1}"
    ws_lists.sheet_state = "hidden"
    for g in grids:
        ws = wb[g.sheet.name]
        if g.sheet.kind == "keyvalue":
            continue
        for c, col in enumerate(g.columns):
            if col is None:
                continue
            source = None
            if col.kind == "enum" and col.choices:
                source = ref_of.get(f"list:{g.sheet.name}.{col.name}")
            elif col.kind == "bool":
                source = ref_of["list:TRUE/FALSE"]
            elif col.ref == "countries":
                source = ref_of["list:countries"]
            elif col.ref and col.kind == "text":
                source = ref_of.get(col.ref)
            elif g.sheet.name == "by_year" and col.name == "table":
                source = ref_of["list:tables"]
            if source is None:
                continue
            dv = DataValidation(type="list", formula1=f"={source}", allow_blank=True,
                                showErrorMessage=False)
            dv.add(f"{col_letter(c)}2:{col_letter(c)}2000")
            ws.add_data_validation(dv)
    wb.save(path)
    return path
