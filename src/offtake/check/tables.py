"""Reading the result tables: their columns, normalising them, and the plan they hold.

Owns `TABLE_COLUMNS` (the columns of each result table, as the solver writes them) and the
rules for older folders (tables and columns that may be missing), `read_tables` (the CSVs of
an output folder as text), `normalize_table` (columns present, types fixed, rows with missing
numbers, unknown IDs, years outside the horizon or unknown scenarios reported and dropped,
negative tonnes reported) and `Plan` / `read_plan`: the decisions the tables hold, summed over
duplicate rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from offtake.check.context import Ctx, index_of, numbered
from offtake.check.tags import output_tag, parse_combination
from offtake.domain.schema import Instance

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "offers": ("offer_id", "supplier", "material", "signed", "start_year", "signing_cost",
               "prepayment", "signing_year"),
    "contracts": ("offer_id", "supplier", "company", "material", "buyer", "year", "scenario",
                  "signed", "volume_t", "delivered_t", "shortfall_t", "price_per_kg",
                  "price_term", "tier", "payment", "shortfall_payment", "tariff_rate", "tariff",
                  "fiscal_payer", "fiscal_per_kg", "fiscal_cost", "tag", "curtailed_t",
                  "damages"),
    "tiers": ("offer_id", "year", "scenario", "tier", "volume_t", "discount", "price_per_kg",
              "rebate"),
    "credits": ("offer_id", "year", "scenario", "credit"),
    "flows": ("buyer", "from_node", "to_node", "material", "tag", "year", "scenario", "flow_t",
              "freight_per_kg", "freight_cost"),
    "production": ("facility", "buyer", "inputs", "tag", "year", "scenario", "production_t",
                   "opex_per_kg", "opex_cost"),
    "spot": ("market", "material", "origin", "tag", "buyer", "to_node", "year", "scenario",
             "volume_t", "price_per_kg", "cost", "tariff_rate", "tariff"),
    "resale": ("buyer", "market", "material", "year", "scenario", "volume_t", "price_per_kg",
               "credit"),
    "stock": ("buyer", "material", "year", "scenario", "stock_t", "holding_cost_per_kg",
              "holding_cost"),
    "unmet": ("buyer", "material", "year", "scenario", "demand_t", "delivered_t", "unmet_t",
              "penalty_per_kg", "penalty"),
    "origin": ("buyer", "material", "year", "scenario", "stage", "country", "tonnes", "share"),
    "emissions": ("buyer", "material", "tag", "year", "scenario", "delivered_t", "emissions_t",
                  "intensity_kg_per_kg"),
    "concentration": ("group", "material", "stage", "over", "year", "scenario", "tonnes", "hhi",
                      "largest", "largest_share", "count"),
    "builds": ("build_id", "facility", "built", "start_year", "nameplate_t", "cost",
               "cost_year", "paid_by", "in_objective"),
    "stockpiles": ("stockpile", "holder", "material", "tag", "year", "scenario", "purchased_t",
                   "released_t", "level_t", "release_allowed", "holding_cost_per_kg",
                   "holding_cost"),
    "stockpile_purchases": ("stockpile", "market", "tag", "year", "scenario", "volume_t",
                            "price_per_kg", "cost"),
    "costs": ("term", "value", "payer", "in_objective", "buyer"),
    "scenario_costs": ("scenario", "probability", "term", "value"),
    "rules": ("rule_id", "kind", "row", "year", "scenario", "sense", "lhs", "bound", "slack",
              "violation", "binding", "hard", "unit", "share", "share_bound", "base_t",
              "shadow_price", "shadow_price_per_pp", "dual_basis"),
}
"""Columns of each result table (file stem -> columns), as the solver writes them."""

NEW_TABLES: dict[str, Callable[[Instance], bool]] = {
    "tiers": lambda inst: any(o.tiers for o in inst.offers),
    "credits": lambda inst: any(o.prepayment > 0 and o.prepayment_credit_share > 0
                                for o in inst.offers),
    "resale": lambda inst: any(k.resale_haircut is not None for k in inst.spot_markets),
    "stock": lambda inst: any(m.holding_cost_per_kg_year is not None for m in inst.materials),
    "scenario_costs": lambda inst: False,
    "builds": lambda inst: any(f.builds for f in inst.facilities),
    "stockpiles": lambda inst: bool(inst.stockpiles),
    "stockpile_purchases": lambda inst: any(sp.markets for sp in inst.stockpiles),
    "emissions": lambda inst: _emits(inst),
    "concentration": lambda inst: False,
}
"""Tables older folders do not have: a missing one is empty unless the instance has the
feature that fills it (then it is reported missing)."""


def _emits(inst: Instance) -> bool:
    """Some emission factor is set (emissions.csv must then be there)."""
    return (any(f.emission_kg_per_kg or f.feed_emission_kg_per_kg for f in inst.facilities)
            or any(k.emission_kg_per_kg for k in inst.spot_markets)
            or any(a.emission_kg_per_kg for a in inst.network.arcs)
            or inst.network.default_emission_kg_per_kg > 0
            or any(sp.emission_kg_per_kg or sp.release_emission_kg_per_kg
                   for sp in inst.stockpiles))


def _cuts(inst: Instance) -> bool:
    """Some scenario cuts some capacity (contracts may be curtailed: force_majeure)."""
    return any(ch.multiplier < 1 for sc in inst.scenarios for ch in sc.capacity)


def _third_party(inst: Instance) -> bool:
    return any(o.floor_paid_by != "buyer" for o in inst.offers)


OPTIONAL_COLUMNS: dict[tuple[str, str], tuple[str | float, Callable[[Instance], bool]]] = {
    ("offers", "start_year"): ("", lambda inst: any(o.start_years for o in inst.offers)),
    ("offers", "prepayment"): (0.0, lambda inst: any(o.prepayment > 0 for o in inst.offers)),
    ("spot", "tariff_rate"): (0.0, lambda inst: bool(inst.tariffs)),
    ("spot", "tariff"): (0.0, lambda inst: bool(inst.tariffs)),
    ("costs", "payer"): ("buyer", _third_party),
    ("costs", "in_objective"): ("True", _third_party),
    ("costs", "buyer"): ("", lambda inst: False),
    ("contracts", "curtailed_t"): (0.0, lambda inst: _cuts(inst)),
    ("contracts", "damages"): (0.0, lambda inst: _cuts(inst) and any(
        o.liquidated_damages_per_kg > 0 for o in inst.offers)),
}
"""Columns older folders do not have: (default, does the instance need the column?)."""

TEXT_COLUMNS = frozenset({
    "offer_id", "supplier", "company", "material", "buyer", "from_node", "to_node",
    "facility", "market", "origin", "scenario", "term", "rule_id", "kind", "binding", "hard",
    "tag", "inputs", "row", "sense", "unit", "stage", "country", "dual_basis",
    "shadow_price", "shadow_price_per_pp", "price_term", "tier", "fiscal_payer", "payer",
    "in_objective", "build_id", "paid_by", "stockpile", "holder", "group", "over", "largest",
})
"""Columns read as text (IDs keep their spelling: 'NA', '007'; the empty tag stays ''); all
others are numbers. Shadow prices are text here: they must be a number or empty. `tier` is
text ('' when no tier is active) and parsed where it must be a number."""

REQUIRED_NUMBERS: dict[str, tuple[str, ...]] = {
    "offers": ("signed",),
    "contracts": ("year", "signed", "volume_t", "delivered_t", "shortfall_t"),
    "tiers": ("year", "volume_t"),
    "credits": ("year", "credit"),
    "flows": ("year", "flow_t"),
    "production": ("year", "production_t"),
    "spot": ("year", "volume_t"),
    "resale": ("year", "volume_t"),
    "stock": ("year", "stock_t"),
    "unmet": ("year", "demand_t", "delivered_t", "unmet_t"),
    "origin": ("year", "tonnes", "share"),
    "emissions": ("year", "delivered_t", "emissions_t"),
    "concentration": ("year", "tonnes", "hhi", "largest_share", "count"),
    "builds": ("built",),
    "stockpiles": ("year", "purchased_t", "released_t", "level_t", "release_allowed"),
    "stockpile_purchases": ("year", "volume_t"),
    "costs": ("value",),
    "scenario_costs": ("value",),
    "rules": (),
}
"""Numbers a row cannot do without; a row missing one is reported and dropped."""

QUANTITY_COLUMNS = frozenset({"volume_t", "flow_t", "production_t", "unmet_t", "demand_t",
                              "delivered_t", "shortfall_t", "stock_t", "tonnes", "credit",
                              "curtailed_t", "purchased_t", "released_t", "level_t"})
"""Tonnes (and credits): never negative."""


# --- reading and normalising the tables --------------------------------------------------------
def read_tables(out_dir: Path) -> dict[str, pd.DataFrame]:
    """The result CSVs of an output folder, every cell read as text (IDs such as 'NA' kept);
    a missing file is left out (the checker decides whether it may be), a blank one is an
    empty table."""
    tables = {}
    for name in TABLE_COLUMNS:
        path = Path(out_dir) / f"{name}.csv"
        if not path.exists():
            continue
        try:
            tables[name] = pd.read_csv(path, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:  # pandas writes an empty table as a blank file
            tables[name] = pd.DataFrame(columns=list(TABLE_COLUMNS[name]))
    return tables


def normalize_table(c: Ctx, name: str, df: pd.DataFrame | None) -> pd.DataFrame:
    """Columns present, types fixed, rows with missing numbers or years outside the horizon
    reported and dropped, negative tonnes reported. A missing new table (or new column) is
    empty (or defaulted) when the instance has no feature that needs it."""
    columns = TABLE_COLUMNS[name]
    if df is None:
        if name in NEW_TABLES and not NEW_TABLES[name](c.inst):
            return _typed(pd.DataFrame(columns=list(columns)))
        c.flag("table", f"{name}.csv", 1.0, f"table '{name}' is missing")
        return _typed(pd.DataFrame(columns=list(columns)))
    df = df.copy()
    for col in columns:
        default = OPTIONAL_COLUMNS.get((name, col))
        if col not in df.columns and default is not None and not default[1](c.inst):
            df[col] = default[0]
    missing = [col for col in columns if col not in df.columns]
    if missing:
        c.flag("table", f"{name}.csv", float(len(missing)), f"missing columns {missing}")
        return _typed(pd.DataFrame(columns=list(columns)))
    df = _typed(df.loc[:, list(columns)].reset_index(drop=True).copy())
    keep = np.ones(len(df), dtype=bool)
    for pos, row in numbered(df):
        keep[pos - 1] = _row_ok(c, name, pos, row)
    return df.loc[keep].reset_index(drop=True)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Text columns as text, all others as numbers (NaN where a cell is not a number)."""
    for col in df.columns:
        if col in TEXT_COLUMNS:
            df[col] = df[col].map(_text).astype(object)
        else:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df


def _text(v: object) -> str:
    """A text cell: None and a float NaN (a blank cell of a numeric frame) become ''."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return str(v)


def _row_ok(c: Ctx, name: str, pos: int, row: dict) -> bool:
    """Whether a row is kept: its required numbers, year, scenario, tier and IDs are known
    (negative tonnes are reported, the row kept)."""
    where = f"{name}.csv row {pos}"
    bad = [col for col in REQUIRED_NUMBERS[name] if not np.isfinite(row[col])]
    if bad:
        c.flag("table", where, 1.0, f"no number in {bad}")
        return False
    for col in QUANTITY_COLUMNS & set(row):
        if row[col] < -c.tol:
            c.flag("nonnegativity", where, -row[col], f"{col} is negative ({row[col]:g})")
    if "year" in REQUIRED_NUMBERS[name] and int(row["year"]) not in c.delta:
        c.flag("table", where, 1.0, f"year {row['year']:g} outside the horizon")
        return False
    if "scenario" in row and name != "rules" and row["scenario"] not in c.probability:
        c.flag("table", where, 1.0, f"unknown scenario '{row['scenario']}'")
        return False
    if name == "tiers" and tier_number(row["tier"]) is None:
        c.flag("table", where, 1.0, f"tier '{row['tier']}' is not a tier number")
        return False
    return _ids_ok(c, name, where, row)


def tier_number(text: str) -> int | None:
    """A tier number written as text ('2', '2.0'), or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if np.isfinite(value) and value == int(value) and value >= 0 else None


def _ids_ok(c: Ctx, name: str, where: str, row: dict) -> bool:
    """Every ID in the row names something of the instance."""
    known: dict[str, Mapping[str, Any]] = {
        "offer_id": c.offers, "buyer": c.buyers, "facility": c.facilities,
        "market": c.markets, "rule_id": c.rules, "build_id": c.build_options,
        "stockpile": c.stockpiles,
    }
    for col, ids in known.items():
        if name == "costs" and col == "buyer" and row[col] == "":
            continue  # a term's total (older folders), the risk term, a third party's cost
        if col in row and row[col] not in ids:
            c.flag("table", where, 1.0, f"unknown {col} '{row[col]}'")
            return False
    if name != "flows" and "material" in row and row["material"] not in c.materials:
        c.flag("table", where, 1.0, f"unknown material '{row['material']}'")
        return False
    return True  # flows: nodes and material are judged by check_arc_allowed


# --- the plan the tables hold ----------------------------------------------------------------
@dataclass
class Plan:
    """The decisions read from the tables, summed over duplicate rows."""

    signed: dict[str, int] = field(default_factory=dict)
    start: dict[str, int | None] = field(default_factory=dict)
    """offers.csv start_year (None when blank)."""
    volume: dict[tuple[str, str, int], float] = field(default_factory=dict)
    """q_obt: (offer, buyer, year) -> t committed (first stage)."""
    volume_by_scenario: dict[tuple[str, str, int], dict[str, float]] = field(
        default_factory=lambda: defaultdict(dict))
    delivered: dict[tuple[str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    """d_obts: (offer, buyer, year, scenario) -> t delivered."""
    shortfall: dict[tuple[str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    """f_obts: (offer, buyer, year, scenario) -> t of take-or-pay shortfall."""
    tiers: dict[tuple[str, int, str, int], float] = field(
        default_factory=lambda: defaultdict(float))
    """v_otk per scenario: (offer, year, scenario, tier) -> t in the band."""
    credits: dict[tuple[str, int, str], float] = field(default_factory=lambda: defaultdict(float))
    """c_ots: (offer, year, scenario) -> prepayment credited."""
    flow: dict[tuple[str, str, str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    """(buyer, from, to, tag, year, scenario) -> t."""
    production: dict[tuple[str, str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    """(facility, buyer, combination, year, scenario) -> t."""
    production_tag: dict[tuple[str, str], str] = field(default_factory=dict)
    """(facility, combination) -> output tag (recomputed; the table's when not computable)."""
    unmet: dict[tuple[str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    spot: dict[tuple[str, str, str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    """(market, buyer, to, tag, year, scenario) -> t."""
    resale: dict[tuple[str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    """r_b kappa ts: (buyer, market, year, scenario) -> t resold."""
    stock: dict[tuple[str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    """h_bkts: (buyer, material, year, scenario) -> t held from year t to t + 1."""
    built: dict[str, int] = field(default_factory=dict)
    """b_j: build option -> 1 if built (builds.csv; options without a row are not built)."""
    stockpile_purchase: dict[tuple[str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    """y_pkt(s): (stockpile, market, year, scenario) -> t bought (stockpile_purchases.csv)."""
    stockpile_level: dict[tuple[str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    """L_p tag ts: (stockpile, tag, year, scenario) -> t at the end of the year (stockpiles.csv;
    tags without a row hold nothing)."""

    def committed(self, o_id: str, year: int) -> float:
        """sum_b q_obt (over every buyer with a row)."""
        if not hasattr(self, "_committed"):
            self._committed: dict[tuple[str, int], float] = defaultdict(float)
            for (o, _b, t), q in self.volume.items():
                self._committed[(o, t)] += q
        return self._committed.get((o_id, year), 0.0)

    def delivered_total(self, o_id: str, year: int, s: str) -> float:
        """sum_b d_obts."""
        if not hasattr(self, "_delivered"):
            self._delivered: dict[tuple[str, int, str], float] = defaultdict(float)
            for (o, _b, t, sc), d in self.delivered.items():
                self._delivered[(o, t, sc)] += d
        return self._delivered.get((o_id, year, s), 0.0)


def read_plan(c: Ctx, t: dict[str, pd.DataFrame]) -> Plan:
    """The plan of the normalised tables, summed over duplicate rows (a repeated offer or
    contract row and a `signed` that is not 0 or 1 are reported)."""
    plan = Plan()
    for pos, r in numbered(t["offers"]):
        where = f"offers.csv row {pos}"
        if r["offer_id"] in plan.signed:
            c.flag("table", where, 1.0, f"offer '{r['offer_id']}' repeated")
        plan.signed[r["offer_id"]] = _binary(c, where, r["signed"], "signed")
        start = r["start_year"]
        plan.start[r["offer_id"]] = int(start) if np.isfinite(start) else None
    _read_contracts(c, t, plan)
    for pos, r in numbered(t["tiers"]):
        tier = tier_number(r["tier"])
        if tier is None:
            c.flag("table", f"tiers.csv row {pos}", 1.0, f"tier '{r['tier']}' is not a number")
            continue
        plan.tiers[(r["offer_id"], int(r["year"]), r["scenario"], tier)] += r["volume_t"]
    for _, r in numbered(t["credits"]):
        plan.credits[(r["offer_id"], int(r["year"]), r["scenario"])] += r["credit"]
    for _, r in numbered(t["flows"]):
        fkey = (r["buyer"], r["from_node"], r["to_node"], r["tag"], int(r["year"]), r["scenario"])
        plan.flow[fkey] += r["flow_t"]
    for _, r in numbered(t["production"]):
        f, comb = r["facility"], r["inputs"]
        plan.production[(f, r["buyer"], comb, int(r["year"]), r["scenario"])] += r["production_t"]
        inputs = parse_combination(comb)
        computed = output_tag(c.facilities[f], inputs) if inputs is not None else None
        plan.production_tag.setdefault((f, comb), r["tag"] if computed is None else computed)
    for _, r in numbered(t["unmet"]):
        plan.unmet[(r["buyer"], r["material"], int(r["year"]), r["scenario"])] += r["unmet_t"]
    for _, r in numbered(t["spot"]):
        skey = (r["market"], r["buyer"], r["to_node"], r["tag"], int(r["year"]), r["scenario"])
        plan.spot[skey] += r["volume_t"]
    for _, r in numbered(t["resale"]):
        plan.resale[(r["buyer"], r["market"], int(r["year"]), r["scenario"])] += r["volume_t"]
    for _, r in numbered(t["stock"]):
        plan.stock[(r["buyer"], r["material"], int(r["year"]), r["scenario"])] += r["stock_t"]
    for pos, r in numbered(t["builds"]):
        where = f"builds.csv row {pos}"
        if r["build_id"] in plan.built:
            c.flag("table", where, 1.0, f"build option '{r['build_id']}' repeated")
        plan.built[r["build_id"]] = _binary(c, where, r["built"], "built")
    for _, r in numbered(t["stockpile_purchases"]):
        plan.stockpile_purchase[(r["stockpile"], r["market"], int(r["year"]),
                                 r["scenario"])] += r["volume_t"]
    for _, r in numbered(t["stockpiles"]):
        plan.stockpile_level[(r["stockpile"], r["tag"], int(r["year"]),
                              r["scenario"])] += r["level_t"]
    return plan


def _read_contracts(c: Ctx, t: dict[str, pd.DataFrame], plan: Plan) -> None:
    """contracts.csv: one row per (offer, buyer, year, scenario); volume_t is the commitment
    q_obt (the same in every scenario: first stage), delivered_t and shortfall_t are d, f."""
    seen = set()
    for pos, r in numbered(t["contracts"]):
        key = (r["offer_id"], r["buyer"], int(r["year"]), r["scenario"])
        if key in seen:
            c.flag("table", f"contracts.csv row {pos}", 1.0, f"row {index_of(*key)} repeated")
        seen.add(key)
        by_s = plan.volume_by_scenario[key[:3]]
        by_s[key[3]] = by_s.get(key[3], 0.0) + r["volume_t"]
        plan.delivered[key] += r["delivered_t"]
        plan.shortfall[key] += r["shortfall_t"]
    for vkey, by_s in plan.volume_by_scenario.items():
        first = next(s for s in c.probability if s in by_s)
        plan.volume[vkey] = by_s[first]


def _binary(c: Ctx, where: str, value: float, col: str) -> int:
    """A binary decision of a `signed` or `built` cell: reported unless it is 0 or 1 (within
    tolerance); 1 when it rounds to 1 or more."""
    z = int(round(value))
    if z not in (0, 1) or abs(value - z) > c.tol:
        c.flag("table", where, abs(value - z) or 1.0, f"{col} must be 0 or 1, got {value:g}")
    return 1 if z >= 1 else 0
