"""The spreadsheet layout of an instance: which sheet holds which part of the schema, under
which headers, with which units and drop-down lists.

Derived from the schema models (and the registry's rule kinds), so that a field added to the
schema appears in the workbook without further code; a field of a shape this module does not
know fails loudly (`sheets()` raises, and a test calls it). Read by `offtake.io.spreadsheet`
(reading and writing workbooks and CSV folders). Pure Python over the schema: no files.

Sheets (in workbook order):

* key / value sheets `meta`, `horizon`, `network`: columns `field`, `value`, `unit`, `about`;
* item sheets, one row per item of a list section (`materials`, `facilities`, `buyers`,
  `offers`, `spot_markets`, `price_indices`, `tariffs`, `rules`, `scenarios`,
  `country_groups`), the ID in column A;
* child sheets whose rows belong to an item named in their first column: `sources` (of
  meta), `recipes` (a facility's inputs), `arcs` (of the network), `demand` (a buyer's
  demand per material, by year), `tiers` (an offer's volume tiers), `scenario_changes`
  (a scenario's capacity, demand and spot changes), `by_year` (every other value given per
  year: capacities, prices, rates, share ramps, index paths).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from offtake.domain import schema
from offtake.domain.registry import RULE_KINDS

BY_YEAR = "by year"
"""What a main-sheet cell says when its values are on the `by_year` sheet."""
NONE = "(none)"
"""An empty list where a blank cell would mean the default (None: all)."""
CURRENCY = "CUR"
"""Stands for the instance's currency in units (`CUR/kg` is written `USD/kg`)."""


@dataclass(frozen=True)
class Column:
    """One column: its header (a field of the item, or a dotted path into it: `scope.buyers`,
    `feed_origin.MINE`), how its cells are read, unit, drop-down and meaning."""

    name: str
    kind: str
    """text, enum, num, int, bool, list (of text), years (list of years), nums (list of
    numbers), series (a number, or `by year` with the values on the by_year sheet)."""
    unit: str = ""
    choices: tuple[str, ...] = ()
    """Allowed values of an enumeration (a drop-down)."""
    ref: str = ""
    """The sheet whose IDs this column names (a drop-down of that sheet's column A)."""
    default_none: bool = False
    """Blank means None (all); an empty list is written `(none)`."""
    about: str = ""

    def header(self, currency: str = "USD") -> str:
        unit = self.unit.replace(CURRENCY, currency)
        return f"{self.name} [{unit}]" if unit else self.name


@dataclass(frozen=True)
class Sheet:
    """A sheet: `kind` is `keyvalue`, `items` (one item of `section` per row), or `child`
    (rows of items named in the first column, `parent`)."""

    name: str
    kind: str
    section: str
    columns: tuple[Column, ...] = ()
    parent: str = ""
    """For child sheets: the section whose items the first column names."""
    years: bool = False
    """Has one column per year after its columns (demand, by_year)."""
    about: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# --- units and references by field name -----------------------------------------------------
UNITS = {
    "capacity_t": "t/yr", "availability_t": "t/yr", "min_t_per_year": "t/yr",
    "max_t_per_year": "t/yr", "from_t": "t", "every_year": "", "t_per_t": "t/t",
    "holding_cost_per_kg_year": "CUR/kg/yr", "signing_cost": "CUR", "prepayment": "CUR",
    "penalty_per_unit": "CUR/unit", "discount_rate": "fraction", "premium": "fraction",
    "upside_share": "fraction", "take_or_pay_share": "fraction",
    "shortfall_fraction": "fraction", "prepayment_credit_share": "fraction",
    "resale_haircut": "fraction", "discount": "fraction", "rate": "fraction",
    "max_share": "fraction", "min_share": "fraction", "probability": "fraction",
    "multiplier": "x", "availability_multiplier": "x", "price_multiplier": "x",
    "first_year": "year", "last_year": "year", "price_year": "year", "base_year": "year",
    "from_year": "year", "start_years": "year", "scope.years": "year", "term_years": "years",
    "nameplate_t": "t/yr", "cost": "CUR", "earliest_year": "year", "lead_time_years": "years",
    "ramp": "fraction",
}
REFS = {
    "supplier": "facilities", "product": "materials", "material": "materials",
    "index": "price_indices", "buyer": "buyers", "facility": "facilities",
    "input": "materials", "offer": "offers", "scenario": "scenarios",
}
COUNTRY_COLUMNS = {"country", "origin"}
"""Single ISO country code columns (with `feed_origin.<STAGE>`): a drop-down of ISO codes."""


def unit_of(name: str) -> str:
    if name in UNITS:
        return UNITS[name]
    if name.endswith("_per_kg"):
        return "CUR/kg"
    return ""


# --- annotations -> column kinds ------------------------------------------------------------
def _strip(ann: Any) -> tuple[Any, bool]:
    """The annotation without Annotated and None, and whether None was allowed."""
    optional = False
    while True:
        if get_origin(ann) is Annotated:
            ann = get_args(ann)[0]
            continue
        if get_origin(ann) in (Union, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            optional = optional or len(args) < len(get_args(ann))
            if len(args) == 1:
                ann = args[0]
                continue
            return Union[tuple(args)], optional  # noqa: UP007
        return ann, optional


def _scalar(ann: Any) -> tuple[str, tuple[str, ...]] | None:
    """(kind, choices) of a scalar annotation, or None."""
    ann, _ = _strip(ann)
    if get_origin(ann) is Literal:
        return "enum", tuple(str(a) for a in get_args(ann))
    if isinstance(ann, type) and issubclass(ann, Enum):
        return "enum", tuple(str(m.value) for m in ann)
    if ann is bool:
        return "bool", ()
    if ann is int:
        return "int", ()
    if ann is float:
        return "num", ()
    if ann is str:
        return "text", ()
    return None


def _is_series(ann: Any) -> bool:
    """`X | dict[Year, X]` with X a number: a constant or one value per year."""
    ann, _ = _strip(ann)
    if get_origin(ann) not in (Union, types.UnionType):
        return False
    args = [_strip(a)[0] for a in get_args(ann)]
    dicts = [a for a in args if get_origin(a) is dict]
    return (len(args) == 2 and len(dicts) == 1 and _scalar(get_args(dicts[0])[0]) == ("int", ())
            and any(_scalar(a) == ("num", ()) for a in args if a is not dicts[0]))


def _model(ann: Any) -> type[BaseModel] | None:
    ann, _ = _strip(ann)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def column_of(name: str, ann: Any, default: Any) -> Column | None:
    """The column of a field, or None if its shape needs a sheet of its own."""
    bare, optional = _strip(ann)
    unit = unit_of(name)
    ref = REFS.get(name, "")
    if _is_series(bare):
        return Column(name, "series", unit)
    sc = _scalar(bare)
    if sc is not None:
        kind, choices = sc
        if name in COUNTRY_COLUMNS:
            ref = "countries"
        return Column(name, kind, unit, choices, ref)
    if get_origin(bare) is list:
        (item,) = get_args(bare)
        isc = _scalar(item)
        if isc is None:
            return None
        kind = {"int": "years", "num": "nums"}.get(isc[0], "list")
        return Column(name, kind, unit, isc[1], default_none=optional and default is None)
    return None


def _fields(model: type[BaseModel]) -> list[tuple[str, Any, Any]]:
    return [(f.alias or n, f.annotation, f.default) for n, f in model.model_fields.items()]


@cache
def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """The attribute docstrings of a model and its bases (the user's documentation of each
    field in `schema.py`), by field name, on one line."""
    out: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for a, b in zip(body, body[1:], strict=False):
            if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)
                    and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)
                    and isinstance(b.value.value, str)):
                out[a.target.id] = " ".join(b.value.value.split())
    return out


def model_columns(model: type[BaseModel], special: set[str] = frozenset(),  # type: ignore[assignment]
                  prefix: str = "") -> list[Column]:
    """The columns of a model's fields (nested models flattened with a dotted prefix,
    `dict[Stage, CountryCode]` as one column per stage); `special` fields are left to a
    sheet of their own. Raises NotImplementedError for a field of another shape."""
    out: list[Column] = []
    for name, ann, default in _fields(model):
        if name in special:
            continue
        full = prefix + name
        col = column_of(full, ann, default)
        if col is not None:
            doc = field_docs(model).get(name.rstrip("_") if name != "from" else "from_", "")
            out.append(replace(col, about=doc) if doc else col)
            continue
        sub = _model(ann)
        if sub is not None:
            out += model_columns(sub, prefix=full + ".")
            continue
        bare, _ = _strip(ann)
        if get_origin(bare) is dict:
            key, value = get_args(bare)
            key_bare, _ = _strip(key)
            if (isinstance(key_bare, type) and issubclass(key_bare, Enum)
                    and _scalar(value) == ("text", ())):
                out += [Column(f"{full}.{m.value}", "text", ref="countries")
                        for m in key_bare]
                continue
        raise NotImplementedError(f"{model.__name__}.{name}: no spreadsheet column for "
                                  f"{ann!r}; give it a sheet in offtake.io.layout")
    return out


def _rule_columns() -> list[Column]:
    """RuleBase's fields, then `kind`, then every other field of the registered kinds, once."""
    cols = {c.name: c for c in model_columns(schema.RuleBase)}
    kinds = tuple(RULE_KINDS)
    ordered = [cols.pop("id"), Column("kind", "enum", choices=kinds)] + list(cols.values())
    seen = {c.name for c in ordered}
    for entry in RULE_KINDS.values():
        for col in model_columns(entry.model):
            if col.name not in seen:
                seen.add(col.name)
                ordered.append(col)
            elif col.kind == "enum":  # a literal shared by kinds: the union of its values
                i = next(k for k, c in enumerate(ordered) if c.name == col.name)
                merged = tuple(dict.fromkeys(ordered[i].choices + col.choices))
                ordered[i] = Column(col.name, "enum", col.unit, merged)
    return ordered


def _changes() -> dict[str, type[BaseModel]]:
    """Scenario change lists by name (capacity, demand, spot) and their models."""
    out = {}
    for name, ann, _ in _fields(schema.Scenario):
        bare, _ = _strip(ann)
        if get_origin(bare) is list and _model(get_args(bare)[0]) is not None:
            out[name] = _model(get_args(bare)[0])
    return out  # type: ignore[return-value]


def _child_lists(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Fields of a model that are lists of models (an offer's tiers): a child sheet each."""
    out = {}
    for name, ann, _ in _fields(model):
        bare, _ = _strip(ann)
        if get_origin(bare) is list and _model(get_args(bare)[0]) is not None:
            out[name] = _model(get_args(bare)[0])
    return out  # type: ignore[return-value]


SINGULAR = {
    "country_groups": "country_group", "materials": "material", "facilities": "facility",
    "buyers": "buyer", "offers": "offer", "spot_markets": "spot_market",
    "price_indices": "price_index", "tariffs": "tariff", "rules": "rule",
    "scenarios": "scenario", "stockpiles": "stockpile",
}
"""The first column of a child sheet: the item it belongs to."""


def _union(columns: list[Column]) -> list[Column]:
    seen: dict[str, Column] = {}
    for c in columns:
        seen.setdefault(c.name, c)
    return list(seen.values())


ITEM_SPECIAL = {
    "facilities": {"recipe"}, "buyers": {"demand_t"},
    "price_indices": {"by_scenario"}, "scenarios": {"index_paths", *_changes()},
}
"""Fields of list items that live on a sheet of their own, besides lists of models (which get
a child sheet each, named after the field: `tiers`)."""
SERIES_MAPS = {("price_indices", "by_scenario"), ("scenarios", "index_paths")}
"""Mappings of key -> series, on the by_year sheet as field `<name>.<key>`."""


def sheets() -> list[Sheet]:
    """Every sheet of the layout, in workbook order (notes and lists are the writer's)."""
    def items(section: str) -> list[Sheet]:
        """The item sheet of a section, then a child sheet per list of models in its items."""
        model = schema.SECTION_MODELS.get(section, schema.RuleBase)
        lists = {} if section == "rules" else {
            k: v for k, v in _child_lists(model).items()
            if k not in ITEM_SPECIAL.get(section, set())}
        cols = _rule_columns() if section == "rules" else model_columns(
            model, ITEM_SPECIAL.get(section, set()) | set(lists))
        out = [Sheet(section, "items", section, tuple(cols))]
        for name, sub in lists.items():
            out.append(Sheet(name, "child", section,
                             (Column(SINGULAR[section], "text", ref=section),
                              *model_columns(sub)), parent=section, extra={"field": name}))
        return out

    changes = _changes()
    change_cols = _union([c for m in changes.values() for c in model_columns(m)])
    return [
        Sheet("meta", "keyvalue", "meta", tuple(model_columns(schema.Meta, {"sources"}))),
        Sheet("sources", "child", "meta", (Column("id", "text"),
                                           Column("description", "text")), parent="meta"),
        Sheet("horizon", "keyvalue", "horizon", tuple(model_columns(schema.Horizon))),
        *items("country_groups"),
        *items("materials"),
        *items("facilities"),
        Sheet("recipes", "child", "facilities",
              (Column("facility", "text", ref="facilities"),
               Column("input", "text", ref="materials"), Column("t_per_t", "num", "t/t")),
              parent="facilities"),
        Sheet("network", "keyvalue", "network", tuple(model_columns(schema.Network, {"arcs"}))),
        Sheet("arcs", "child", "network", tuple(model_columns(schema.Arc)), parent="network"),
        *items("buyers"),
        Sheet("demand", "child", "buyers",
              (Column("buyer", "text", ref="buyers"), Column("material", "text", ref="materials"),
               Column("every_year", "num", "t/yr")), parent="buyers", years=True),
        *items("offers"),
        *items("spot_markets"),
        *items("price_indices"),
        *items("tariffs"),
        Sheet("carbon_price", "keyvalue", "carbon_price",
              tuple(model_columns(schema.CarbonPrice))),
        *items("rules"),
        *items("stockpiles"),
        *items("scenarios"),
        Sheet("scenario_changes", "child", "scenarios",
              (Column("scenario", "text", ref="scenarios"),
               Column("change", "enum", choices=tuple(changes)), *change_cols),
              parent="scenarios", extra={"models": changes}),
        Sheet("by_year", "child", "", (Column("table", "enum"), Column("id", "text"),
                                        Column("field", "text"), Column("unit", "text"),
                                        Column("every_year", "num")), years=True),
    ]


def series_fields() -> dict[str, list[str]]:
    """Per item sheet, the series columns whose values may be by year (on by_year)."""
    out: dict[str, list[str]] = {}
    for sh in sheets():
        if sh.kind in ("items", "keyvalue"):
            names = [c.name for c in sh.columns if c.kind == "series"]
            names += [name for sec, name in SERIES_MAPS if sec == sh.section]
            if names:
                out[sh.section] = names
    return out
