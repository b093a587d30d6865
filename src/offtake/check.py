"""Independent checker: recompute every rule of the model from the instance and result tables.

Owns `check_tables` / `check_folder`, which read the result tables described in
`models/formulation.md` ("Result tables"), re-derive the allowed arcs, the origin tags, every
constraint family, every procurement-rule row and every cost term from the instance (schema
objects) alone, and report each violation by the component name the formulation uses
(`facility_capacity_max`, `demand_balance`, `country_share_max`, ...). Problems that are not a
broken constraint are reported as `table` (a table disagrees with the instance or with another
table) or `origin_tag` (a tag that is not canonical or that its node cannot carry).

It must stay independent of the model: it imports only the schema, findings, `network.at`,
io (for loading), pandas, numpy and the standard library; never `model`, `data`, `solve`,
`results`, `origin`, `ruledata` or `pipeline` (a test parses this file's imports to make sure).
The tag text, the tag predicates and every rule row are recomputed here from formulation.md.
No Pyomo.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from offtake.network import at
from offtake.schema import Instance, Offer

KG_PER_T = 1000.0

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "offers": ("offer_id", "supplier", "material", "signed", "signing_cost", "signing_year"),
    "contracts": ("offer_id", "supplier", "company", "material", "buyer", "year", "signed",
                  "volume_t", "price_per_kg", "payment", "tag"),
    "flows": ("buyer", "from_node", "to_node", "material", "tag", "year", "scenario", "flow_t",
              "freight_per_kg", "freight_cost"),
    "production": ("facility", "buyer", "inputs", "tag", "year", "scenario", "production_t",
                   "opex_per_kg", "opex_cost"),
    "spot": ("market", "material", "origin", "tag", "buyer", "to_node", "year", "scenario",
             "volume_t", "price_per_kg", "cost"),
    "unmet": ("buyer", "material", "year", "scenario", "demand_t", "delivered_t", "unmet_t",
              "penalty_per_kg", "penalty"),
    "origin": ("buyer", "material", "year", "scenario", "stage", "country", "tonnes", "share"),
    "costs": ("term", "value"),
    "rules": ("rule_id", "kind", "row", "year", "scenario", "sense", "lhs", "bound", "slack",
              "violation", "binding", "hard", "unit", "share", "share_bound", "base_t",
              "shadow_price", "shadow_price_per_pp", "dual_basis"),
}
"""Columns of each result table (file stem -> columns), as in formulation.md."""

TEXT_COLUMNS = frozenset({
    "offer_id", "supplier", "company", "material", "buyer", "from_node", "to_node",
    "facility", "market", "origin", "scenario", "term", "rule_id", "kind", "binding", "hard",
    "tag", "inputs", "row", "sense", "unit", "stage", "country", "dual_basis",
    "shadow_price", "shadow_price_per_pp",
})
"""Columns read as text (IDs keep their spelling: 'NA', '007'; the empty tag stays ''); all
others are numbers. Shadow prices are text here: they must be a number or empty."""

REQUIRED_NUMBERS: dict[str, tuple[str, ...]] = {
    "offers": ("signed",),
    "contracts": ("year", "signed", "volume_t"),
    "flows": ("year", "flow_t"),
    "production": ("year", "production_t"),
    "spot": ("year", "volume_t"),
    "unmet": ("year", "demand_t", "delivered_t", "unmet_t"),
    "origin": ("year", "tonnes", "share"),
    "costs": ("value",),
    "rules": (),
}
"""Numbers a row cannot do without; a row missing one is reported and dropped."""

QUANTITY_COLUMNS = frozenset({"volume_t", "flow_t", "production_t", "unmet_t", "demand_t",
                              "delivered_t", "tonnes"})
"""Tonnes: never negative."""

STAGE_ORDER = ("MINE", "CRACK", "SEP_L", "SEP_H", "METAL", "MAGNET", "RECYCLE", "OTHER")
"""Stage order of a canonical origin tag (formulation.md, "Origin tags")."""

RULE_COMPONENT = {
    "max_suppliers": "suppliers_max", "min_suppliers": "suppliers_min",
    "max_supplier_share": "supplier_share_max", "max_country_share": "country_share_max",
    "min_content_share": "content_share_min", "exclusion": "excluded_content_max",
    "min_recycled_share": "recycled_share_min", "max_offtake_share": "offtake_share_max",
}
"""Component name of each rule kind's rows (formulation.md, "Procurement rules")."""

COUNT_KINDS = frozenset({"max_suppliers", "min_suppliers"})

COST_TERMS = ("contract_payments", "signing_costs", "spot_purchases", "freight",
              "operating_costs", "unmet_demand_penalty", "rule_violation_penalties")
"""The registered cost terms of formulation.md's Objective table, in its order."""


# --- public types ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Violation:
    """One broken rule: the formulation's component name, the index, and by how much."""

    constraint: str
    index: str
    amount: float
    message: str

    def __str__(self) -> str:
        return f"{self.constraint}[{self.index}]: {self.message} (by {self.amount:g})"


@dataclass
class CheckReport:
    """Violations found, plus the objective and cost terms recomputed from the tables."""

    violations: list[Violation]
    objective: float
    cost_terms: dict[str, float]

    @property
    def ok(self) -> bool:
        return not self.violations

    def of(self, constraint: str) -> list[Violation]:
        """The violations of one constraint family / component."""
        return [v for v in self.violations if v.constraint == constraint]


# --- context: instance lookups, tolerances, the violation list -------------------------------
def _key(*parts: object) -> str:
    return ",".join(str(p) for p in parts)


@dataclass
class _Ctx:
    inst: Instance
    tol: float
    violations: list[Violation] = field(default_factory=list)

    def __post_init__(self) -> None:
        inst = self.inst
        self.years = inst.horizon.years
        self.facilities = {f.id: f for f in inst.facilities}
        self.buyers = {b.id: b for b in inst.buyers}
        self.offers = {o.id: o for o in inst.offers}
        self.markets = {k.id: k for k in inst.spot_markets}
        self.materials = {m.id: m for m in inst.materials}
        self.probability = {s.id: s.probability for s in inst.scenarios}
        self.rules = {r.id: r for r in inst.rules}
        self.sender_material = {f.id: f.product for f in inst.facilities}
        self.sender_material.update({k.id: k.material for k in inst.spot_markets})
        base = inst.horizon.base_year or inst.horizon.first_year
        rate = inst.horizon.discount_rate
        self.delta = {t: (1.0 + rate) ** -(t - base) for t in self.years}
        self.groups = {g.id: set(g.members) for g in inst.country_groups}
        self.own_tag = {f.id: tag_text(_feed_steps(f.feed_origin) | {_step(f.stage, f.country)})
                        for f in inst.facilities}
        """Own-feed tag of each facility: feed_origin plus its own (stage, country)."""
        self.spot_tag = {k.id: tag_text(_feed_steps(k.feed_origin)) for k in inst.spot_markets}
        """Tag of each spot market's material: its feed_origin."""

    def flag(self, constraint: str, index: str, amount: float, message: str) -> None:
        self.violations.append(Violation(constraint, index, float(amount), message))

    def slack(self, rhs: float) -> float:
        return self.tol * max(1.0, abs(rhs))

    def at_most(self, constraint: str, index: str, lhs: float, rhs: float, what: str) -> None:
        if lhs - rhs > self.slack(rhs):
            self.flag(constraint, index, lhs - rhs, f"{what}: {lhs:.10g} > {rhs:.10g}")

    def equal(self, constraint: str, index: str, lhs: float, rhs: float, what: str) -> None:
        if not abs(lhs - rhs) <= self.slack(rhs):  # also catches NaN
            self.flag(constraint, index, abs(lhs - rhs), f"{what}: {lhs:.10g} != {rhs:.10g}")

    def modelled_years(self, o: Offer) -> list[int]:
        return [t for t in self.years if o.first_year <= t <= o.last_year]

    def eligible(self, o: Offer) -> set[str]:
        return set(self.buyers) if o.buyers is None else set(o.buyers)

    def countries(self, groups: Iterable[str], countries: Iterable[str]) -> set[str]:
        """Union of the members of `groups` and `countries`."""
        out = set(countries)
        for g in groups:
            out |= self.groups.get(g, set())
        return out


# --- origin tags -----------------------------------------------------------------------------
Step = tuple[str, str]
"""(stage, country) of one step of a chain."""


def _step(stage: object, country: str) -> Step:
    return (str(stage), country)


def _feed_steps(feed_origin: dict) -> set[Step]:
    return {_step(stage, country) for stage, country in feed_origin.items()}


def tag_text(steps: Iterable[Step]) -> str:
    """Canonical tag: stages in STAGE_ORDER, then countries alphabetically, `STAGE:CC` joined
    by `|`; the empty set is ''."""
    order = {stage: n for n, stage in enumerate(STAGE_ORDER)}
    ordered = sorted(set(steps), key=lambda sc: (order.get(sc[0], len(order)), sc[0], sc[1]))
    return "|".join(f"{stage}:{country}" for stage, country in ordered)


_STEP_TEXT = re.compile(r"^([A-Z_]+):([A-Z]{2})$")


def parse_tag(text: str) -> frozenset[Step] | None:
    """The steps of a canonical tag, or None when `text` is not canonical."""
    if text == "":
        return frozenset()
    steps = []
    for part in text.split("|"):
        m = _STEP_TEXT.match(part)
        if m is None or m.group(1) not in STAGE_ORDER:
            return None
        steps.append((m.group(1), m.group(2)))
    return frozenset(steps) if tag_text(steps) == text else None


def combination_text(inputs: dict[str, str]) -> str:
    """A combination `k1=tag1;k2=tag2`, inputs sorted by material id."""
    return ";".join(f"{k}={inputs[k]}" for k in sorted(inputs))


def parse_combination(text: str) -> dict[str, str] | None:
    """Input material -> input tag of a combination, or None when it is malformed (a part
    without '=', a repeated material, materials out of order)."""
    if text == "":
        return {}
    out: dict[str, str] = {}
    for part in text.split(";"):
        k, sep, tag = part.partition("=")
        if not sep or not k or k in out:
            return None
        out[k] = tag
    return out if combination_text(out) == text else None


def output_tag(c: _Ctx, f: str, inputs: dict[str, str]) -> str | None:
    """Tag of what processor f makes from a combination: its own step plus every input tag's
    steps; None when an input tag is not canonical."""
    fac = c.facilities[f]
    steps = {_step(fac.stage, fac.country)}
    for tag in inputs.values():
        parsed = parse_tag(tag)
        if parsed is None:
            return None
        steps |= parsed
    return tag_text(steps)


def has_step_in(steps: frozenset[Step], stages: set[str], countries: set[str]) -> bool:
    """Predicate 1: a step at one of `stages` in one of `countries`."""
    return any(s in stages and cc in countries for s, cc in steps)


def all_steps_in(steps: frozenset[Step], stages: set[str], countries: set[str]) -> bool:
    """Predicate 2: a step at every listed stage, and all steps at those stages in
    `countries`."""
    at_stages = [(s, cc) for s, cc in steps if s in stages]
    return ({s for s, _ in at_stages} >= stages) and all(cc in countries for _, cc in at_stages)


def is_recycled(steps: frozenset[Step]) -> bool:
    """Predicate 3: a RECYCLE step (a tonne counts whole when any input branch was recycled)."""
    return any(s == "RECYCLE" for s, _ in steps)


# --- reading the tables ----------------------------------------------------------------------
@dataclass
class _Plan:
    """The decisions read from the tables, summed over duplicate rows."""

    signed: dict[str, int] = field(default_factory=dict)
    volume: dict[tuple[str, str, int], float] = field(default_factory=lambda: defaultdict(float))
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


def _rows(df: pd.DataFrame) -> Iterable[tuple[int, dict]]:
    """(1-based row number, row as a dict) for each row."""
    return enumerate(df.to_dict("records"), start=1)


def _normalize_table(c: _Ctx, name: str, df: pd.DataFrame | None) -> pd.DataFrame:
    """Columns present, types fixed, rows with missing numbers or years outside the horizon
    reported and dropped, negative tonnes reported."""
    columns = TABLE_COLUMNS[name]
    if df is None:
        c.flag("table", f"{name}.csv", 1.0, f"table '{name}' is missing")
        return pd.DataFrame(columns=list(columns))
    missing = [col for col in columns if col not in df.columns]
    if missing:
        c.flag("table", f"{name}.csv", float(len(missing)), f"missing columns {missing}")
        return pd.DataFrame(columns=list(columns))
    df = df.loc[:, list(columns)].reset_index(drop=True).copy()
    for col in columns:
        if col in TEXT_COLUMNS:
            df[col] = df[col].map(_text)
        else:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    keep = np.ones(len(df), dtype=bool)
    for pos, row in _rows(df):
        keep[pos - 1] = _row_ok(c, name, pos, row)
    return df.loc[keep].reset_index(drop=True)


def _text(v: object) -> str:
    """A text cell: None and a float NaN (a blank cell of a numeric frame) become ''."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return str(v)


def _row_ok(c: _Ctx, name: str, pos: int, row: dict) -> bool:
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
    return _ids_ok(c, name, where, row)


def _ids_ok(c: _Ctx, name: str, where: str, row: dict) -> bool:
    known = {
        "offer_id": c.offers, "buyer": c.buyers, "facility": c.facilities,
        "market": c.markets, "rule_id": c.rules,
    }
    for col, ids in known.items():
        if col in row and row[col] not in ids:
            c.flag("table", where, 1.0, f"unknown {col} '{row[col]}'")
            return False
    if name != "flows" and "material" in row and row["material"] not in c.materials:
        c.flag("table", where, 1.0, f"unknown material '{row['material']}'")
        return False
    return True  # flows: nodes and material are judged by check_arc_allowed


def _read_plan(c: _Ctx, t: dict[str, pd.DataFrame]) -> _Plan:
    plan = _Plan()
    for pos, r in _rows(t["offers"]):
        if r["offer_id"] in plan.signed:
            c.flag("table", f"offers.csv row {pos}", 1.0, f"offer '{r['offer_id']}' repeated")
        plan.signed[r["offer_id"]] = _binary(c, f"offers.csv row {pos}", r["signed"])
    for _, r in _rows(t["contracts"]):
        plan.volume[(r["offer_id"], r["buyer"], int(r["year"]))] += r["volume_t"]
    for _, r in _rows(t["flows"]):
        key = (r["buyer"], r["from_node"], r["to_node"], r["tag"], int(r["year"]), r["scenario"])
        plan.flow[key] += r["flow_t"]
    for _, r in _rows(t["production"]):
        f, comb = r["facility"], r["inputs"]
        plan.production[(f, r["buyer"], comb, int(r["year"]), r["scenario"])] += r["production_t"]
        inputs = parse_combination(comb)
        computed = output_tag(c, f, inputs) if inputs is not None else None
        plan.production_tag.setdefault((f, comb), r["tag"] if computed is None else computed)
    for _, r in _rows(t["unmet"]):
        plan.unmet[(r["buyer"], r["material"], int(r["year"]), r["scenario"])] += r["unmet_t"]
    for _, r in _rows(t["spot"]):
        key = (r["market"], r["buyer"], r["to_node"], r["tag"], int(r["year"]), r["scenario"])
        plan.spot[key] += r["volume_t"]
    return plan


def _binary(c: _Ctx, where: str, value: float) -> int:
    z = int(round(value))
    if z not in (0, 1) or abs(value - z) > c.tol:
        c.flag("table", where, abs(value - z) or 1.0, f"signed must be 0 or 1, got {value:g}")
    return 1 if z >= 1 else 0


# --- offers and contracts: first-stage decisions ---------------------------------------------
def check_offer_rows(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan) -> None:
    """offers.csv: a row per modelled offer, supplier, material and signing cost/year match."""
    for o in c.inst.offers:
        years = c.modelled_years(o)
        if years and o.id not in plan.signed:
            c.flag("table", f"offers.csv,{o.id}", 1.0, f"modelled offer '{o.id}' has no row")
        if not years and plan.signed.get(o.id):
            c.flag("table", f"offers.csv,{o.id}", 1.0,
                   f"offer '{o.id}' is signed but has no year in the horizon")
    for pos, r in _rows(t["offers"]):
        o = c.offers[r["offer_id"]]
        where = f"offers.csv row {pos}"
        _same_text(c, where, "supplier", r["supplier"], o.supplier)
        _same_text(c, where, "material", r["material"], o.material)
        years = c.modelled_years(o)
        if plan.signed.get(o.id) and years:  # unsigned rows may show the cost or nothing
            c.equal("table", where, r["signing_cost"], o.signing_cost, "signing_cost")
            c.equal("table", where, r["signing_year"], years[0], "signing_year")


def check_contract_rows(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan) -> None:
    """contracts.csv: columns agree with the instance and with offers.csv."""
    for pos, r in _rows(t["contracts"]):
        o = c.offers[r["offer_id"]]
        where = f"contracts.csv row {pos}"
        year = int(r["year"])
        _same_text(c, where, "supplier", r["supplier"], o.supplier)
        _same_text(c, where, "material", r["material"], o.material)
        if o.supplier in c.facilities:
            _same_text(c, where, "company", r["company"], c.facilities[o.supplier].company)
        c.equal("table", where, r["signed"], plan.signed.get(o.id, 0), "signed vs offers.csv")
        price = at(o.price_per_kg, year)
        c.equal("table", where, r["price_per_kg"], price, "price_per_kg")
        c.equal("table", where, r["payment"], KG_PER_T * price * r["volume_t"], "payment")


def check_contract_volume(c: _Ctx, plan: _Plan) -> None:
    """contract_volume_min/max: z*min <= sum over eligible buyers of q <= z*max, per (o, t);
    no volume for ineligible buyers, outside the window, or on an unsigned offer."""
    total: dict[tuple[str, int], float] = defaultdict(float)
    for (o_id, b, year), q in plan.volume.items():
        o = c.offers[o_id]
        if b in c.eligible(o):
            total[(o_id, year)] += q
        else:
            c.at_most("contract_volume_max", _key(o_id, b, year), q, 0.0,
                      f"volume for buyer '{b}', who is not eligible under '{o_id}'")
    for o in c.inst.offers:
        z = plan.signed.get(o.id, 0) if c.modelled_years(o) else 0
        for year in c.years:
            q = total.get((o.id, year), 0.0)
            if not o.first_year <= year <= o.last_year:
                c.at_most("contract_volume_max", _key(o.id, year), q, 0.0,
                          "volume outside the offer window")
                continue
            state = "signed" if z else "unsigned"
            c.at_most("contract_volume_max", _key(o.id, year), q, o.max_t_per_year * z,
                      f"volume on {state} offer above its maximum")
            if z and o.min_t_per_year - q > c.slack(o.min_t_per_year):
                c.flag("contract_volume_min", _key(o.id, year), o.min_t_per_year - q,
                       f"signed offer below its minimum: {q:.10g} < {o.min_t_per_year:.10g}")


# --- network flows ---------------------------------------------------------------------------
Arcs = dict[tuple[str, str], float]
"""(from node, to node) -> freight per kg."""


def allowed_arcs(inst: Instance) -> Arcs:
    """Every allowed arc (from, to) -> freight per kg, recomputed from formulation.md:
    listed arcs, plus (default_arcs) each facility/spot market -> facility/buyer taking its
    material; a listed arc sets the freight, others carry the default; no self-loops."""
    sends = {f.id: f.product for f in inst.facilities}
    sends.update({k.id: k.material for k in inst.spot_markets})
    takes = {f.id: set(f.recipe) for f in inst.facilities}
    takes.update({b.id: set(b.demand_t) for b in inst.buyers})
    arcs: Arcs = {}
    if inst.network.default_arcs:
        for i, material in sends.items():
            for j, accepted in takes.items():
                if i != j and material in accepted:
                    arcs[(i, j)] = inst.network.default_freight_per_kg
    for a in inst.network.arcs:
        if a.from_ != a.to and a.from_ in sends and sends[a.from_] in takes.get(a.to, set()):
            arcs[(a.from_, a.to)] = a.freight_per_kg
    return arcs


def check_arc_allowed(c: _Ctx, t: dict[str, pd.DataFrame], arcs: Arcs) -> None:
    """arc_allowed: each flow on an allowed arc, carrying the sender's material, for the buyer
    it arrives at; its freight is the arc's."""
    for pos, r in _rows(t["flows"]):
        i, j, b = r["from_node"], r["to_node"], r["buyer"]
        where = _key(b, i, j, int(r["year"]), r["scenario"])
        if (i, j) not in arcs:
            c.flag("arc_allowed", where, r["flow_t"], f"no arc {i} -> {j} in the network")
            continue
        if j in c.buyers and j != b:
            c.flag("arc_allowed", where, r["flow_t"], f"buyer '{b}''s material delivered to '{j}'")
        if r["material"] != c.sender_material[i]:
            c.flag("arc_allowed", where, r["flow_t"],
                   f"material '{r['material']}' but '{i}' sends '{c.sender_material[i]}'")
        row = f"flows.csv row {pos}"
        c.equal("table", row, r["freight_per_kg"], arcs[(i, j)], "freight_per_kg")
        c.equal("table", row, r["freight_cost"],
                     KG_PER_T * arcs[(i, j)] * r["flow_t"], "freight_cost")


def _contract_from(c: _Ctx, plan: _Plan) -> dict[tuple[str, str, int], float]:
    """Contract volume bought from each facility by each buyer per year: (f, b, t) -> t."""
    out: dict[tuple[str, str, int], float] = defaultdict(float)
    for (o_id, b, year), q in plan.volume.items():
        out[(c.offers[o_id].supplier, b, year)] += q
    return out


def check_facility_output_balance(c: _Ctx, plan: _Plan) -> None:
    """facility_output_balance: per (f,b,tag,t,s), outflow = production into that tag +
    (tag = own-feed tag) contract volume bought from f."""
    outflow: dict[tuple[str, str, str, int, str], float] = defaultdict(float)
    for (b, i, _j, tag, year, s), x in plan.flow.items():
        if i in c.facilities:
            outflow[(i, b, tag, year, s)] += x
    made: dict[tuple[str, str, str, int, str], float] = defaultdict(float)
    for (f, b, comb, year, s), p in plan.production.items():
        made[(f, b, plan.production_tag[(f, comb)], year, s)] += p
    bought = {(f, b, c.own_tag[f], year, s): q
              for (f, b, year), q in _contract_from(c, plan).items() for s in c.probability}
    for key in sorted(set(outflow) | set(made) | set(bought)):
        c.equal("facility_output_balance", _key(*key), outflow.get(key, 0.0),
                made.get(key, 0.0) + bought.get(key, 0.0),
                "outflow vs production into the tag + contract volume (own-feed tag)")


def check_facility_input_balance(c: _Ctx, plan: _Plan) -> None:
    """facility_input_balance: per (f,b,k,tag,t,s), inflow of input k with that tag =
    recipe[k] x production of the combinations whose input k has that tag; no production
    where the recipe is empty."""
    inflow: dict[tuple[str, str, str, str, int, str], float] = defaultdict(float)
    for (b, i, j, tag, year, s), x in plan.flow.items():
        if j in c.facilities and i in c.sender_material:
            inflow[(j, b, c.sender_material[i], tag, year, s)] += x
    used: dict[tuple[str, str, str, str, int, str], float] = defaultdict(float)
    own_feed: dict[tuple[str, str, int, str], float] = defaultdict(float)
    for (f, b, comb, year, s), p in plan.production.items():
        recipe = c.facilities[f].recipe
        if not recipe:
            own_feed[(f, b, year, s)] += p
            continue
        inputs = parse_combination(comb) or {}
        for k, a in recipe.items():
            if k in inputs:
                used[(f, b, k, inputs[k], year, s)] += a * p
    for key, p in sorted(own_feed.items()):
        c.at_most("facility_input_balance", _key(*key), p, 0.0,
                  f"production at '{key[0]}', which has no recipe (own feed only)")
    for key in sorted(set(inflow) | set(used)):
        c.equal("facility_input_balance", _key(*key), inflow.get(key, 0.0), used.get(key, 0.0),
                f"inflow of {key[2]} with tag '{key[3]}' vs recipe x production")


def check_facility_capacity(c: _Ctx, plan: _Plan) -> None:
    """facility_capacity_max: contract volume sold + production <= capacity, per (f,t,s)."""
    sold: dict[tuple[str, int], float] = defaultdict(float)
    for (f, _b, year), q in _contract_from(c, plan).items():
        sold[(f, year)] += q
    made: dict[tuple[str, int, str], float] = defaultdict(float)
    for (f, _b, _comb, year, s), p in plan.production.items():
        made[(f, year, s)] += p
    keys = set(made) | {(f, year, s) for (f, year) in sold for s in c.probability}
    for f, year, s in sorted(keys):
        used = sold.get((f, year), 0.0) + made.get((f, year, s), 0.0)
        c.at_most("facility_capacity_max", _key(f, year, s), used,
                  at(c.facilities[f].capacity_t, year), "contract sales + production")


def check_production_rows(c: _Ctx, t: dict[str, pd.DataFrame]) -> None:
    """production.csv: opex per kg from the instance and the undiscounted opex cost."""
    for pos, r in _rows(t["production"]):
        opex = at(c.facilities[r["facility"]].opex_per_kg, int(r["year"]))
        where = f"production.csv row {pos}"
        c.equal("table", where, r["opex_per_kg"], opex, "opex_per_kg")
        c.equal("table", where, r["opex_cost"], KG_PER_T * opex * r["production_t"],
                     "opex_cost")


# --- origin tags on the tables ---------------------------------------------------------------
def check_tag_text(c: _Ctx, t: dict[str, pd.DataFrame]) -> None:
    """origin_tag: every tag in flows, contracts, spot and production is canonical."""
    for name in ("flows", "contracts", "spot", "production"):
        for pos, r in _rows(t[name]):
            if parse_tag(r["tag"]) is None:
                c.flag("origin_tag", f"{name}.csv row {pos}", 1.0,
                       f"tag '{r['tag']}' is not canonical (want e.g. 'MINE:AU|SEP_L:MY')")


def check_contract_tags(c: _Ctx, t: dict[str, pd.DataFrame]) -> None:
    """origin_tag: a contract's tag is its supplier's own-feed tag."""
    for pos, r in _rows(t["contracts"]):
        supplier = c.offers[r["offer_id"]].supplier
        if supplier in c.own_tag and r["tag"] != c.own_tag[supplier]:
            c.flag("origin_tag", f"contracts.csv row {pos}", 1.0,
                   f"tag '{r['tag']}', expected own-feed tag '{c.own_tag[supplier]}'")


def check_spot_tags(c: _Ctx, t: dict[str, pd.DataFrame]) -> None:
    """origin_tag: a spot purchase's tag is its market's feed_origin."""
    for pos, r in _rows(t["spot"]):
        if r["tag"] != c.spot_tag[r["market"]]:
            c.flag("origin_tag", f"spot.csv row {pos}", 1.0,
                   f"tag '{r['tag']}', expected the market's '{c.spot_tag[r['market']]}'")


def check_production_tags(c: _Ctx, t: dict[str, pd.DataFrame]) -> None:
    """origin_tag: a production row's combination names exactly the recipe inputs (sorted,
    canonical tags) and its output tag is the processor's step plus the input tags."""
    for pos, r in _rows(t["production"]):
        where, f = f"production.csv row {pos}", r["facility"]
        inputs = parse_combination(r["inputs"])
        recipe = sorted(c.facilities[f].recipe)
        if inputs is None or sorted(inputs) != recipe:
            c.flag("origin_tag", where, 1.0, f"combination '{r['inputs']}' does not name the "
                   f"recipe inputs {recipe} as 'k=tag' joined by ';' in material order")
            continue
        want = output_tag(c, f, inputs)
        if want is None:
            c.flag("origin_tag", where, 1.0, f"combination '{r['inputs']}' has a tag that is "
                   "not canonical")
        elif r["tag"] != want:
            c.flag("origin_tag", where, 1.0, f"output tag '{r['tag']}', expected '{want}'")


def check_flow_tags(c: _Ctx, plan: _Plan) -> None:
    """origin_tag: a flow leaves a spot market with the market's tag, and a facility with a
    tag it emits for that buyer (own-feed tag if the buyer bought under an offer there, or an
    output tag of its production for the buyer)."""
    emits: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (f, b, _year), q in _contract_from(c, plan).items():
        if q > c.tol:
            emits[(f, b)].add(c.own_tag[f])
    for (f, b, comb, _year, _s), p in plan.production.items():
        if p > c.tol:
            emits[(f, b)].add(plan.production_tag[(f, comb)])
    for (b, i, j, tag, year, s), x in sorted(plan.flow.items()):
        where = _key(b, i, j, tag, year, s)
        if i in c.markets and tag != c.spot_tag[i]:
            c.flag("origin_tag", where, x, f"spot market '{i}' sells tag '{c.spot_tag[i]}'")
        elif i in c.facilities and x > c.tol and tag not in emits[(i, b)]:
            c.flag("origin_tag", where, x, f"'{i}' emits no tag '{tag}' for buyer '{b}' "
                   f"(it emits {sorted(emits[(i, b)])})")


# --- spot markets ----------------------------------------------------------------------------
def _spot_flows(c: _Ctx, plan: _Plan) -> dict[tuple[str, str, str, str, int, str], float]:
    """Flows leaving spot markets: (market, buyer, to, tag, t, s) -> t."""
    out: dict[tuple[str, str, str, str, int, str], float] = defaultdict(float)
    for (b, i, j, tag, year, s), x in plan.flow.items():
        if i in c.markets:
            out[(i, b, j, tag, year, s)] += x
    return out


def check_spot_availability(c: _Ctx, plan: _Plan) -> None:
    """spot_availability_max: purchases from a limited market <= availability, per (k,t,s)."""
    bought: dict[tuple[str, int, str], float] = defaultdict(float)
    for (k, _b, _j, _tag, year, s), x in _spot_flows(c, plan).items():
        bought[(k, year, s)] += x
    for (k, year, s), x in sorted(bought.items()):
        market = c.markets[k]
        if not market.unlimited:
            c.at_most("spot_availability_max", _key(k, year, s), x,
                      at(market.availability_t, year), "spot purchases")


def check_spot_table(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan) -> None:
    """spot.csv: the same volumes as the flows leaving spot markets, instance prices."""
    flows = _spot_flows(c, plan)
    for key in sorted(set(flows) | set(plan.spot)):
        c.equal("table", "spot.csv," + _key(*key), plan.spot.get(key, 0.0),
                flows.get(key, 0.0), "spot.csv volume vs flows from the market")
    for pos, r in _rows(t["spot"]):
        market = c.markets[r["market"]]
        where = f"spot.csv row {pos}"
        price = at(market.price_per_kg, int(r["year"]))
        _same_text(c, where, "material", r["material"], market.material)
        _same_text(c, where, "origin", r["origin"], market.origin)
        c.equal("table", where, r["price_per_kg"], price, "price_per_kg")
        c.equal("table", where, r["cost"], KG_PER_T * price * r["volume_t"], "cost")


# --- demand and deliveries -------------------------------------------------------------------
Deliveries = dict[tuple[str, str, str, int, str], float]
"""A_{bk tag t s}: (buyer, material, tag, year, scenario) -> t arriving at the buyer."""


def deliveries(c: _Ctx, plan: _Plan) -> Deliveries:
    """What reaches each buyer on arcs into it, by material of the sending node and tag."""
    out: Deliveries = defaultdict(float)
    for (b, i, j, tag, year, s), x in plan.flow.items():
        if j == b and i in c.sender_material:
            out[(b, c.sender_material[i], tag, year, s)] += x
    return out


def _arrivals(c: _Ctx, arrived: Deliveries) -> dict[tuple[str, str, int, str], float]:
    """Deliveries of any origin: (b, material, t, s) -> t."""
    out: dict[tuple[str, str, int, str], float] = defaultdict(float)
    for (b, k, _tag, year, s), x in arrived.items():
        out[(b, k, year, s)] += x
    return out


def _demand(c: _Ctx) -> dict[tuple[str, str, int, str], float]:
    """D_{bkt} for every (b, k, t, s)."""
    return {(b.id, k, year, s): at(series, year) for b in c.inst.buyers
            for k, series in b.demand_t.items() for year in c.years for s in c.probability}


def check_demand_balance(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan,
                         arrived_by_tag: Deliveries) -> None:
    """demand_balance: arrivals + unmet >= demand and 0 <= unmet <= demand, per (b,k,t,s);
    unmet.csv has a row for every positive demand."""
    arrived = _arrivals(c, arrived_by_tag)
    have_row = set(plan.unmet)
    demand = _demand(c)
    for key in sorted(set(demand) | have_row):
        d, u = demand.get(key, 0.0), plan.unmet.get(key, 0.0)
        index = _key(*key)
        if d > 0 and key not in have_row:
            c.flag("table", "unmet.csv," + index, 1.0, "no row for a positive demand")
        if d - arrived.get(key, 0.0) - u > c.slack(d):
            c.flag("demand_balance", index, d - arrived.get(key, 0.0) - u,
                   f"delivered {arrived.get(key, 0.0):.10g} + unmet {u:.10g} < demand {d:.10g}")
        c.at_most("demand_balance", index, u, d, "unmet above demand")
    for pos, r in _rows(t["unmet"]):
        key = (r["buyer"], r["material"], int(r["year"]), r["scenario"])
        where = f"unmet.csv row {pos}"
        rho = c.materials[r["material"]].unmet_penalty_per_kg
        c.equal("table", where, r["demand_t"], demand.get(key, 0.0), "demand_t")
        c.equal("table", where, r["delivered_t"], arrived.get(key, 0.0), "delivered_t")
        c.equal("table", where, r["penalty_per_kg"], rho, "penalty_per_kg")
        c.equal("table", where, r["penalty"], KG_PER_T * rho * r["unmet_t"], "penalty")


def check_origin_table(c: _Ctx, t: dict[str, pd.DataFrame], arrived: Deliveries) -> None:
    """origin.csv: per (b,k,t,s,stage,country), tonnes delivered with a step there and their
    share of all deliveries; every row matches and no delivered step is missing."""
    total = _arrivals(c, arrived)
    tonnes: dict[tuple[str, str, int, str, str, str], float] = defaultdict(float)
    for (b, k, tag, year, s), x in arrived.items():
        for stage, country in parse_tag(tag) or ():
            tonnes[(b, k, year, s, stage, country)] += x
    seen = set()
    for pos, r in _rows(t["origin"]):
        key = (r["buyer"], r["material"], int(r["year"]), r["scenario"], r["stage"],
               r["country"])
        where = f"origin.csv row {pos}"
        if key in seen:
            c.flag("table", where, 1.0, f"row {_key(*key)} repeated")
        seen.add(key)
        want = tonnes.get(key, 0.0)
        den = total.get(key[:4], 0.0)
        c.equal("table", where, r["tonnes"], want, "tonnes delivered with that step")
        if den > c.tol:
            c.equal("table", where, r["share"], want / den, "share of deliveries")
    for key, x in sorted(tonnes.items()):
        if key not in seen and x > c.slack(0.0):
            c.flag("table", "origin.csv," + _key(*key), x, f"no row for {x:.10g} t delivered")


# --- rules: recomputing every row ------------------------------------------------------------
@dataclass
class RuleRow:
    """One rule row as formulation.md defines it: num (lhs) against a bound."""

    rule: Any
    label: str
    year: int | None
    scenario: str
    sense: str
    lhs: float
    bound: float
    base: float | None = None
    """base_t: the denominator (caps) or the demand (shares of demand); None if undefined."""
    share: float | None = None
    """The rule's share s (share_bound); None for count and exclusion rows."""

    @property
    def key(self) -> tuple[str, str, int | None, str]:
        return (self.rule.id, self.label, self.year, self.scenario)

    @property
    def slack(self) -> float:
        return self.bound - self.lhs if self.sense == "le" else self.lhs - self.bound

    @property
    def violation(self) -> float:
        return max(0.0, -self.slack)

    def matters(self, tol: float) -> bool:
        """Must be in rules.csv: a count row, a cap whose num is positive, or a share of
        demand with a positive bound. Other rows hold for any plan and may be left out."""
        if self.year is None:
            return True
        return (self.lhs if self.sense == "le" else self.bound) > tol


def _scoped_buyers(c: _Ctx, rule) -> list[str]:
    scoped = rule.scope.buyers
    return [b for b in c.buyers if scoped is None or b in scoped]


def _scoped_years(c: _Ctx, rule) -> list[int]:
    scoped = rule.scope.years
    return [t for t in c.years if scoped is None or t in scoped]


def _demanded(c: _Ctx, buyers: Iterable[str]) -> list[str]:
    """Materials the buyers demand (the default material scope)."""
    return sorted({k for b in buyers for k in c.buyers[b].demand_t})


def _scoped_materials(c: _Ctx, rule, buyers: list[str]) -> list[str]:
    return sorted(rule.scope.materials) if rule.scope.materials is not None else _demanded(
        c, buyers)


def _groups(rule, buyers: list[str]) -> list[tuple[str, list[str]]]:
    """(label, buyers) of each group: every buyer alone, or 'pooled'."""
    if getattr(rule, "pooled", False):
        return [("pooled", buyers)]
    return [(b, [b]) for b in buyers]


@dataclass
class _Facts:
    """What rule rows read from the plan, indexed once."""

    plan: _Plan
    delivered: dict[tuple[str, str, int, str], list[tuple[frozenset[Step], float]]]
    """(b, k, t, s) -> (steps of the tag, t delivered) for each tag: A_{bk tag ts}."""
    spot: dict[tuple[str, str, int, str], float]
    """(b, k, t, s) -> spot purchases of k by b (flows out of markets, to any node)."""
    volume: dict[tuple[str, int], list[tuple[Offer, float]]]
    """(b, t) -> (offer, t contracted) for b."""
    processed: dict[tuple[str, int, str], dict[str, float]]
    """(f, t, s) -> buyer -> t made by f for the buyer."""
    demand: dict[tuple[str, str, int, str], float]


def _facts(c: _Ctx, plan: _Plan, arrived: Deliveries) -> _Facts:
    delivered: dict = defaultdict(list)
    for (b, k, tag, year, s), x in arrived.items():
        delivered[(b, k, year, s)].append((parse_tag(tag) or frozenset(), x))
    spot: dict = defaultdict(float)
    for (k, b, _j, _tag, year, s), x in _spot_flows(c, plan).items():
        spot[(b, c.markets[k].material, year, s)] += x
    volume: dict = defaultdict(list)
    for (o_id, b, year), q in plan.volume.items():
        volume[(b, year)].append((c.offers[o_id], q))
    processed: dict = defaultdict(lambda: defaultdict(float))
    for (f, b, _comb, year, s), p in plan.production.items():
        processed[(f, year, s)][b] += p
    return _Facts(plan, delivered, spot, volume, processed, _demand(c))


def _delivered(d: _Facts, group: list[str], k: str, year: int, s: str,
               counts=lambda steps: True) -> float:
    """Sum of A_{bk tag t s} over b in the group and the tags whose steps `counts` accepts."""
    return sum(x for b in group for steps, x in d.delivered.get((b, k, year, s), ())
               if counts(steps))


def _offer_in_scope(c: _Ctx, rule, o: Offer) -> bool:
    """An offer is in a count rule's scope when one of its eligible buyers, its material and
    one of its modelled years are in the scope. Without `scope.materials` offers of every
    material count (formulation.md, max_suppliers)."""
    buyers = _scoped_buyers(c, rule)
    materials = rule.scope.materials
    years = set(_scoped_years(c, rule))
    return (bool(c.eligible(o) & set(buyers)) and (materials is None or o.material in materials)
            and bool(set(c.modelled_years(o)) & years))


def supplier_units(c: _Ctx, rule, plan: _Plan) -> set[str]:
    """Distinct facilities (or companies) with a signed offer in the rule's scope."""
    units = set()
    for o in c.inst.offers:
        if plan.signed.get(o.id) and c.modelled_years(o) and _offer_in_scope(c, rule, o):
            fac = c.facilities[o.supplier]
            units.add(fac.company if rule.count == "company" else fac.id)
    return units


def rows_max_suppliers(c: _Ctx, rule, d: _Facts) -> list[RuleRow]:
    """suppliers_max: distinct supplier units signed in scope <= max_count."""
    return [RuleRow(rule, "", None, "", "le", len(supplier_units(c, rule, d.plan)),
                    rule.max_count)]


def rows_min_suppliers(c: _Ctx, rule, d: _Facts) -> list[RuleRow]:
    """suppliers_min: distinct supplier units signed in scope >= min_count."""
    return [RuleRow(rule, "", None, "", "ge", len(supplier_units(c, rule, d.plan)),
                    rule.min_count)]


def _unit(c: _Ctx, o: Offer, by: str) -> str:
    fac = c.facilities[o.supplier]
    return fac.company if by == "company" else fac.id


def rows_max_supplier_share(c: _Ctx, rule, d: _Facts) -> list[RuleRow]:
    """supplier_share_max, label group|unit|material: contract volume from one unit <=
    s x (contracts + spot purchases) of the material, per group, year and scenario. Materials
    default to what is offered to the scoped buyers; units are those offering it to them."""
    buyers = _scoped_buyers(c, rule)
    offers = [o for o in c.inst.offers if c.modelled_years(o) and c.eligible(o) & set(buyers)]
    materials = (sorted(rule.scope.materials) if rule.scope.materials is not None
                 else sorted({o.material for o in offers}))
    rows = []
    for label, group in _groups(rule, buyers):
        for k in materials:
            units = sorted({_unit(c, o, rule.by) for o in offers if o.material == k})
            for year in _scoped_years(c, rule):
                bought = _bought_by_unit(c, rule.by, d, group, k, year)
                for s in c.probability:
                    den = sum(bought.values()) + sum(d.spot.get((b, k, year, s), 0.0)
                                                     for b in group)
                    rows += [RuleRow(rule, f"{label}|{n}|{k}", year, s, "le",
                                     bought.get(n, 0.0), rule.max_share * den, den,
                                     rule.max_share) for n in units]
    return rows


def _bought_by_unit(c: _Ctx, by: str, d: _Facts, group: list[str], k: str,
                    year: int) -> dict[str, float]:
    """Contract volume of material k bought by the group in a year, per supplier unit."""
    out: dict[str, float] = defaultdict(float)
    for b in group:
        for o, q in d.volume.get((b, year), ()):
            if o.material == k:
                out[_unit(c, o, by)] += q
    return out


def _instance_steps(c: _Ctx) -> set[Step]:
    """Every (stage, country) a tag can contain in this instance."""
    steps = {_step(f.stage, f.country) for f in c.inst.facilities}
    for node in (*c.inst.facilities, *c.inst.spot_markets):
        steps |= _feed_steps(node.feed_origin)
    return steps


def rows_max_country_share(c: _Ctx, rule, d: _Facts) -> list[RuleRow]:
    """country_share_max, label group|S|C|material: deliveries with a step at S in C <=
    s x demand, for each listed stage S and non-exempt country C, where demand is positive."""
    buyers = _scoped_buyers(c, rule)
    exempt = c.countries(rule.exempt_groups, rule.exempt_countries)
    stages = [str(st) for st in rule.stages]
    pairs = sorted((st, cc) for st, cc in _instance_steps(c) if st in stages and cc not in exempt)
    rows = []
    for label, group in _groups(rule, buyers):
        for k in _scoped_materials(c, rule, buyers):
            for year in _scoped_years(c, rule):
                for s in c.probability:
                    dem = sum(d.demand.get((b, k, year, s), 0.0) for b in group)
                    if dem <= 0:
                        continue
                    for st, cc in pairs:
                        num = _delivered(d, group, k, year, s,
                                         lambda steps, p=(st, cc): p in steps)
                        rows.append(RuleRow(rule, f"{label}|{st}|{cc}|{k}", year, s, "le", num,
                                            rule.max_share * dem, dem, rule.max_share))
    return rows


def rows_min_content_share(c: _Ctx, rule, d: _Facts) -> list[RuleRow]:
    """content_share_min, label group|material: qualifying deliveries >= s_t x demand, where
    demand and share are positive."""
    buyers = _scoped_buyers(c, rule)
    stages = {str(st) for st in rule.stages}
    qualifying = c.countries(rule.groups, rule.countries)
    rows = []
    for label, group in _groups(rule, buyers):
        for k in _scoped_materials(c, rule, buyers):
            for year in _scoped_years(c, rule):
                share = at(rule.min_share, year)
                for s in c.probability:
                    dem = sum(d.demand.get((b, k, year, s), 0.0) for b in group)
                    if dem <= 0 or share <= 0:
                        continue
                    num = _delivered(d, group, k, year, s,
                                     lambda steps: all_steps_in(steps, stages, qualifying)
                                     or (rule.recycled_qualifies and any(
                                         st == "RECYCLE" and cc in qualifying
                                         for st, cc in steps)))
                    rows.append(RuleRow(rule, f"{label}|{k}", year, s, "ge", num, share * dem, dem,
                                        share))
    return rows


def rows_exclusion(c: _Ctx, rule, d: _Facts) -> list[RuleRow]:
    """excluded_content_max, label buyer|material: from from_year, deliveries with a step at
    a listed stage in an excluded country <= 0."""
    stages = {str(st) for st in rule.stages}
    excluded = c.countries(rule.groups, rule.countries)
    years = [t for t in _scoped_years(c, rule) if rule.from_year is None or t >= rule.from_year]
    buyers = _scoped_buyers(c, rule)
    rows = []
    for b in buyers:
        for k in _scoped_materials(c, rule, buyers):
            for year in years:
                for s in c.probability:
                    num = _delivered(d, [b], k, year, s,
                                     lambda steps: has_step_in(steps, stages, excluded))
                    rows.append(RuleRow(rule, f"{b}|{k}", year, s, "le", num, 0.0))
    return rows


def rows_min_recycled_share(c: _Ctx, rule, d: _Facts) -> list[RuleRow]:
    """recycled_share_min, label group|material: deliveries with a RECYCLE step >= s_t x
    demand."""
    buyers = _scoped_buyers(c, rule)
    rows = []
    for label, group in _groups(rule, buyers):
        for k in _scoped_materials(c, rule, buyers):
            for year in _scoped_years(c, rule):
                share = at(rule.min_share, year)
                for s in c.probability:
                    dem = sum(d.demand.get((b, k, year, s), 0.0) for b in group)
                    num = _delivered(d, group, k, year, s, is_recycled)
                    rows.append(RuleRow(rule, f"{label}|{k}", year, s, "ge", num, share * dem, dem,
                                        share))
    return rows


def rows_max_offtake_share(c: _Ctx, rule, d: _Facts) -> list[RuleRow]:
    """offtake_share_max, label facility: what buyers of the class take from the facility
    (contract sales + processing) <= s x what all buyers take, per scoped year and scenario.
    The class is every scoped buyer with that buyer_class (formulation.md, B_c)."""
    scoped = set(_scoped_buyers(c, rule))
    cls = {b.id for b in c.inst.buyers if b.buyer_class == rule.buyer_class and b.id in scoped}
    sold = _contract_from(c, d.plan)
    rows = []
    for f in rule.facilities:
        for year in _scoped_years(c, rule):
            for s in c.probability:
                made = d.processed.get((f, year, s), {})
                taken = {b: sold.get((f, b, year), 0.0) + made.get(b, 0.0) for b in c.buyers}
                den = sum(taken.values())
                rows.append(RuleRow(rule, f, year, s, "le", sum(taken[b] for b in cls),
                                    rule.max_share * den, den, rule.max_share))
    return rows


RULE_ROWS = {
    "max_suppliers": rows_max_suppliers, "min_suppliers": rows_min_suppliers,
    "max_supplier_share": rows_max_supplier_share, "max_country_share": rows_max_country_share,
    "min_content_share": rows_min_content_share, "exclusion": rows_exclusion,
    "min_recycled_share": rows_min_recycled_share, "max_offtake_share": rows_max_offtake_share,
}
"""Row builder of each rule kind."""


# --- rules: holding, priced, reported --------------------------------------------------------
def _rule_index(row: RuleRow) -> str:
    if row.year is None:
        return row.rule.id
    return _key(row.rule.id, row.label, row.year, row.scenario)


def check_rule_rows_hold(c: _Ctx, rows: list[RuleRow]) -> None:
    """Each hard row holds (component named after the rule kind, amount = the violation)."""
    for row in rows:
        if row.rule.hard and row.violation > c.slack(row.bound):
            op = "<=" if row.sense == "le" else ">="
            c.flag(RULE_COMPONENT[row.rule.kind], _rule_index(row), row.violation,
                   f"{row.rule.kind} {row.label or row.rule.id}: lhs {row.lhs:.10g} "
                   f"{op} {row.bound:.10g} fails")


def rule_penalty(c: _Ctx, rows: list[RuleRow]) -> float:
    """rule_violation_penalties: sum of penalty x violation for soft count rules plus
    sum of pi_s delta_t penalty x violation for soft rows (tonnes)."""
    total = 0.0
    for row in rows:
        if row.rule.hard:
            continue
        weight = 1.0 if row.year is None else c.probability[row.scenario] * c.delta[row.year]
        total += weight * (row.rule.penalty_per_unit or 0.0) * row.violation
    return total


def _table_key(r: dict) -> tuple[str, str, int | None, str]:
    year = int(r["year"]) if np.isfinite(r["year"]) else None
    return (r["rule_id"], r["row"], year, r["scenario"])


def check_rules_table(c: _Ctx, t: dict[str, pd.DataFrame], rows: list[RuleRow]) -> None:
    """rules.csv: a row for every row that matters, each equal to its recomputation."""
    mine = {row.key: row for row in rows}
    seen = set()
    for pos, r in _rows(t["rules"]):
        where, key = f"rules.csv row {pos}", _table_key(r)
        if key in seen:
            c.flag("table", where, 1.0, f"rule row {key} repeated")
        seen.add(key)
        row = mine.get(key)
        if row is None:
            c.flag("table", where, 1.0, f"rule '{r['rule_id']}' has no row '{r['row']}' in "
                   f"year {key[2]}, scenario '{r['scenario']}' (or it is out of its scope)")
            continue
        _check_rule_table_row(c, where, r, row)
    for key, row in mine.items():
        if key not in seen and row.matters(c.tol):
            c.flag("table", "rules.csv," + _rule_index(row), 1.0,
                   f"no row for rule '{row.rule.id}' row '{row.label}' (lhs {row.lhs:.10g}, "
                   f"bound {row.bound:.10g})")


def _check_rule_table_row(c: _Ctx, where: str, r: dict, row: RuleRow) -> None:
    """One rules.csv row against its recomputation."""
    rule = row.rule
    _same_text(c, where, "kind", r["kind"], rule.kind)
    _same_text(c, where, "sense", r["sense"], row.sense)
    _same_text(c, where, "hard", r["hard"].lower(), str(rule.hard).lower())
    _same_text(c, where, "unit", r["unit"], "suppliers" if rule.kind in COUNT_KINDS else "t")
    c.equal("table", where, r["lhs"], row.lhs, "lhs")
    c.equal("table", where, r["bound"], row.bound, "bound")
    c.equal("table", where, r["slack"], row.slack, "slack")
    if not rule.hard:
        c.equal("table", where, r["violation"], row.violation, "violation = max(0, -slack)")
    if row.base is not None:
        c.equal("table", where, r["base_t"], row.base, "base_t")
        if row.base > c.tol:
            c.equal("table", where, r["share"], row.lhs / row.base, "share = lhs / base_t")
    if row.share is not None:
        c.equal("table", where, r["share_bound"], row.share, "share_bound")
    for col in ("shadow_price", "shadow_price_per_pp"):
        if r[col] != "" and not np.isfinite(pd.to_numeric(r[col], errors="coerce")):
            c.flag("table", where, 1.0, f"{col} '{r[col]}' is neither a number nor empty")


def check_rules(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan, arrived: Deliveries) -> float:
    """Every procurement rule: rows recomputed per kind, hard rows hold, rules.csv matches.
    Returns rule_violation_penalties."""
    facts = _facts(c, plan, arrived)
    rows: list[RuleRow] = []
    for rule in c.inst.rules:
        rows += RULE_ROWS[rule.kind](c, rule, facts)
    check_rule_rows_hold(c, rows)
    check_rules_table(c, t, rows)
    return rule_penalty(c, rows)


# --- objective -------------------------------------------------------------------------------
def cost_terms(c: _Ctx, plan: _Plan, arcs: Arcs, rule_penalty: float) -> dict[str, float]:
    """Each registered cost term, discounted and probability-weighted, from the plan."""
    d, pi, kg = c.delta, c.probability, KG_PER_T
    terms = dict.fromkeys(COST_TERMS, 0.0)
    for (o_id, _b, year), q in plan.volume.items():
        terms["contract_payments"] += d[year] * kg * at(c.offers[o_id].price_per_kg, year) * q
    for o in c.inst.offers:
        years = c.modelled_years(o)
        if plan.signed.get(o.id) and years:
            terms["signing_costs"] += d[years[0]] * o.signing_cost
    for (_b, i, j, _tag, year, s), x in plan.flow.items():
        terms["freight"] += pi[s] * d[year] * kg * arcs.get((i, j), 0.0) * x
        if i in c.markets:
            terms["spot_purchases"] += pi[s] * d[year] * kg * at(c.markets[i].price_per_kg,
                                                                 year) * x
    for (f, _b, _comb, year, s), p in plan.production.items():
        terms["operating_costs"] += pi[s] * d[year] * kg * at(c.facilities[f].opex_per_kg,
                                                              year) * p
    for (_b, k, year, s), u in plan.unmet.items():
        terms["unmet_demand_penalty"] += pi[s] * d[year] * kg * c.materials[
            k].unmet_penalty_per_kg * u
    terms["rule_violation_penalties"] = rule_penalty
    return terms


def check_cost_terms(c: _Ctx, terms: dict[str, float], reported: dict[str, float]) -> None:
    """cost_term: each reported term equals its recomputation; no unknown terms."""
    for name, value in reported.items():
        if name not in terms and abs(value) > c.tol:
            c.flag("cost_term", name, abs(value), f"unknown cost term '{name}'")
    for name, value in terms.items():
        c.equal("cost_term", name, reported.get(name, 0.0), value,
                     "reported vs recomputed")


def check_objective(c: _Ctx, objective: float, reported: float) -> None:
    """objective: the reported objective equals the sum of the recomputed terms."""
    c.equal("objective", "objective", reported, objective, "reported vs recomputed")


def _same_text(c: _Ctx, where: str, col: str, got: str, want: str) -> None:
    if got != want:
        c.flag("table", where, 1.0, f"{col} is '{got}', expected '{want}'")


# --- entry points ----------------------------------------------------------------------------
def check_tables(
    inst: Instance,
    tables: dict[str, pd.DataFrame],
    reported_objective: float | None,
    reported_costs: dict[str, float] | None,
    tol: float = 1e-6,
) -> CheckReport:
    """Check result tables against the instance; see the module docstring.

    `reported_costs` defaults to the `costs` table; None for the objective skips that check.
    """
    c = _Ctx(inst, tol)
    t = {name: _normalize_table(c, name, tables.get(name)) for name in TABLE_COLUMNS}
    plan = _read_plan(c, t)
    arcs = allowed_arcs(inst)
    check_offer_rows(c, t, plan)
    check_contract_rows(c, t, plan)
    check_contract_volume(c, plan)
    check_arc_allowed(c, t, arcs)
    check_tag_text(c, t)
    check_contract_tags(c, t)
    check_spot_tags(c, t)
    check_production_tags(c, t)
    check_flow_tags(c, plan)
    check_facility_output_balance(c, plan)
    check_facility_input_balance(c, plan)
    check_facility_capacity(c, plan)
    check_production_rows(c, t)
    check_spot_availability(c, plan)
    check_spot_table(c, t, plan)
    arrived = deliveries(c, plan)
    check_demand_balance(c, t, plan, arrived)
    check_origin_table(c, t, arrived)
    penalty = check_rules(c, t, plan, arrived)
    terms = cost_terms(c, plan, arcs, penalty)
    if reported_costs is None:
        reported_costs = {r["term"]: r["value"] for _, r in _rows(t["costs"])}
    check_cost_terms(c, terms, reported_costs)
    objective = sum(terms.values())
    if reported_objective is not None:
        check_objective(c, objective, reported_objective)
    return CheckReport(c.violations, objective, terms)


def read_tables(out_dir: Path) -> dict[str, pd.DataFrame]:
    """The result CSVs of an output folder, every cell read as text (IDs such as 'NA' kept);
    a missing file is left out (and reported by the checker), a blank one is an empty table."""
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


def check_folder(inst: Instance, out_dir: Path, tol: float = 1e-6) -> CheckReport:
    """Check an output folder (result CSVs + summary.json) against the instance."""
    out_dir = Path(out_dir)
    tables = read_tables(out_dir)
    summary_path = out_dir / "summary.json"
    objective = None
    if summary_path.exists():
        objective = json.loads(summary_path.read_text(encoding="utf-8")).get("objective")
    report = check_tables(inst, tables, objective, None, tol)
    if not summary_path.exists():
        report.violations.append(Violation("table", "summary.json", 1.0, "summary.json missing"))
    return report
