"""Independent checker: recompute every rule of the model from the instance and result tables.

Owns `check_tables` / `check_folder`, which read the result tables described in
`models/formulation.md` ("Result tables"), re-derive the allowed arcs, every constraint family
and every cost term from the instance (schema objects) alone, and report each violation by the
component name the formulation uses (`facility_capacity_max`, `demand_balance`, ...).

It must stay independent of the model: it imports only the schema, findings, `network.at`,
io (for loading), pandas, numpy and the standard library; never `model`, `data`, `solve` or
`results` (a test parses this file's imports to make sure). No Pyomo.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from offtake.network import at
from offtake.schema import Instance, MaxSuppliersRule, Offer

KG_PER_T = 1000.0

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "offers": ("offer_id", "supplier", "material", "signed", "signing_cost", "signing_year"),
    "contracts": ("offer_id", "supplier", "company", "material", "buyer", "year", "signed",
                  "volume_t", "price_per_kg", "payment"),
    "flows": ("buyer", "from_node", "to_node", "material", "year", "scenario", "flow_t",
              "freight_per_kg", "freight_cost"),
    "production": ("facility", "buyer", "year", "scenario", "production_t", "opex_per_kg",
                   "opex_cost"),
    "spot": ("market", "material", "origin", "buyer", "to_node", "year", "scenario", "volume_t",
             "price_per_kg", "cost"),
    "unmet": ("buyer", "material", "year", "scenario", "demand_t", "delivered_t", "unmet_t",
              "penalty_per_kg", "penalty"),
    "costs": ("term", "value"),
    "rules": ("rule_id", "kind", "year", "scenario", "lhs", "bound", "slack", "violation",
              "binding", "hard"),
}
"""Columns of each result table (file stem -> columns), as in formulation.md."""

TEXT_COLUMNS = frozenset({
    "offer_id", "supplier", "company", "material", "buyer", "from_node", "to_node",
    "facility", "market", "origin", "scenario", "term", "rule_id", "kind", "binding", "hard",
})
"""Columns read as text (IDs keep their spelling: 'NA', '007'); all others are numbers."""

REQUIRED_NUMBERS: dict[str, tuple[str, ...]] = {
    "offers": ("signed",),
    "contracts": ("year", "signed", "volume_t"),
    "flows": ("year", "flow_t"),
    "production": ("year", "production_t"),
    "spot": ("year", "volume_t"),
    "unmet": ("year", "demand_t", "delivered_t", "unmet_t"),
    "costs": ("value",),
    "rules": (),
}
"""Numbers a row cannot do without; a row missing one is reported and dropped."""

QUANTITY_COLUMNS = frozenset({"volume_t", "flow_t", "production_t", "unmet_t", "demand_t",
                              "delivered_t"})
"""Tonnes: never negative."""

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


# --- reading the tables ----------------------------------------------------------------------
@dataclass
class _Plan:
    """The decisions read from the tables, summed over duplicate rows."""

    signed: dict[str, int] = field(default_factory=dict)
    volume: dict[tuple[str, str, int], float] = field(default_factory=lambda: defaultdict(float))
    flow: dict[tuple[str, str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    production: dict[tuple[str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    unmet: dict[tuple[str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))
    spot: dict[tuple[str, str, str, int, str], float] = field(
        default_factory=lambda: defaultdict(float))


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
            df[col] = df[col].map(lambda v: "" if v is None else str(v))
        else:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    keep = np.ones(len(df), dtype=bool)
    for pos, row in _rows(df):
        keep[pos - 1] = _row_ok(c, name, pos, row)
    return df.loc[keep].reset_index(drop=True)


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
        key = (r["buyer"], r["from_node"], r["to_node"], int(r["year"]), r["scenario"])
        plan.flow[key] += r["flow_t"]
    for _, r in _rows(t["production"]):
        key = (r["facility"], r["buyer"], int(r["year"]), r["scenario"])
        plan.production[key] += r["production_t"]
    for _, r in _rows(t["unmet"]):
        plan.unmet[(r["buyer"], r["material"], int(r["year"]), r["scenario"])] += r["unmet_t"]
    for _, r in _rows(t["spot"]):
        key = (r["market"], r["buyer"], r["to_node"], int(r["year"]), r["scenario"])
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
    """facility_output_balance: outflow = production + contract volume bought, per (f,b,t,s)."""
    outflow: dict[tuple[str, str, int, str], float] = defaultdict(float)
    for (b, i, _j, year, s), x in plan.flow.items():
        if i in c.facilities:
            outflow[(i, b, year, s)] += x
    bought = _contract_from(c, plan)
    keys = set(outflow) | set(plan.production)
    keys |= {(f, b, year, s) for (f, b, year) in bought for s in c.probability}
    for f, b, year, s in sorted(keys):
        rhs = plan.production.get((f, b, year, s), 0.0) + bought.get((f, b, year), 0.0)
        c.equal("facility_output_balance", _key(f, b, year, s), outflow.get((f, b, year, s), 0.0),
                rhs, "outflow vs production + contract volume")


def check_facility_input_balance(c: _Ctx, plan: _Plan) -> None:
    """facility_input_balance: inflow of each recipe input k = recipe[k] * production, per
    (f,b,k,t,s); no production where the recipe is empty."""
    inflow: dict[tuple[str, str, str, int, str], float] = defaultdict(float)
    for (b, i, j, year, s), x in plan.flow.items():
        if j in c.facilities and i in c.sender_material:
            inflow[(j, b, c.sender_material[i], year, s)] += x
    keys = set(plan.production) | {(f, b, year, s) for (f, b, _k, year, s) in inflow}
    for f, b, year, s in sorted(keys):
        p = plan.production.get((f, b, year, s), 0.0)
        recipe = c.facilities[f].recipe
        if not recipe:
            c.at_most("facility_input_balance", _key(f, b, year, s), p, 0.0,
                      f"production at '{f}', which has no recipe (own feed only)")
        for k, a in sorted(recipe.items()):
            c.equal("facility_input_balance", _key(f, b, k, year, s),
                    inflow.get((f, b, k, year, s), 0.0), a * p,
                    f"inflow of {k} vs {a:g} x production")


def check_facility_capacity(c: _Ctx, plan: _Plan) -> None:
    """facility_capacity_max: contract volume sold + production <= capacity, per (f,t,s)."""
    sold: dict[tuple[str, int], float] = defaultdict(float)
    for (f, _b, year), q in _contract_from(c, plan).items():
        sold[(f, year)] += q
    made: dict[tuple[str, int, str], float] = defaultdict(float)
    for (f, _b, year, s), p in plan.production.items():
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


# --- spot markets ----------------------------------------------------------------------------
def _spot_flows(c: _Ctx, plan: _Plan) -> dict[tuple[str, str, str, int, str], float]:
    """Flows leaving spot markets: (market, buyer, to, t, s) -> t."""
    out: dict[tuple[str, str, str, int, str], float] = defaultdict(float)
    for (b, i, j, year, s), x in plan.flow.items():
        if i in c.markets:
            out[(i, b, j, year, s)] += x
    return out


def check_spot_availability(c: _Ctx, plan: _Plan) -> None:
    """spot_availability_max: purchases from a limited market <= availability, per (k,t,s)."""
    bought: dict[tuple[str, int, str], float] = defaultdict(float)
    for (k, _b, _j, year, s), x in _spot_flows(c, plan).items():
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


# --- demand ----------------------------------------------------------------------------------
def _arrivals(c: _Ctx, plan: _Plan) -> dict[tuple[str, str, int, str], float]:
    """What reaches each buyer: (b, material, t, s) -> t (material of the sending node)."""
    out: dict[tuple[str, str, int, str], float] = defaultdict(float)
    for (b, i, j, year, s), x in plan.flow.items():
        if j == b and i in c.sender_material:
            out[(b, c.sender_material[i], year, s)] += x
    return out


def check_demand_balance(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan) -> None:
    """demand_balance: arrivals + unmet >= demand and 0 <= unmet <= demand, per (b,k,t,s);
    unmet.csv has a row for every positive demand."""
    arrived = _arrivals(c, plan)
    have_row = set(plan.unmet)
    demand = {(b.id, k, year, s): at(series, year) for b in c.inst.buyers
              for k, series in b.demand_t.items() for year in c.years for s in c.probability}
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


# --- rules -----------------------------------------------------------------------------------
def _in_scope(c: _Ctx, rule: MaxSuppliersRule, o: Offer) -> bool:
    scope = rule.scope
    buyers_ok = scope.buyers is None or bool(c.eligible(o) & set(scope.buyers))
    material_ok = scope.materials is None or o.material in scope.materials
    years_ok = scope.years is None or bool(set(c.modelled_years(o)) & set(scope.years))
    return buyers_ok and material_ok and years_ok


def supplier_units(c: _Ctx, rule: MaxSuppliersRule, plan: _Plan) -> set[str]:
    """Distinct facilities (or companies) with a signed offer in the rule's scope."""
    units = set()
    for o in c.inst.offers:
        if plan.signed.get(o.id) and c.modelled_years(o) and _in_scope(c, rule, o):
            fac = c.facilities[o.supplier]
            units.add(fac.company if rule.count == "company" else fac.id)
    return units


def check_max_suppliers(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan) -> float:
    """max_suppliers_max: distinct supplier units <= max_count (+ violation for soft rules).
    Returns the penalty of the soft rules' violations (undiscounted, as in formulation.md)."""
    penalty = 0.0
    reported = {r["rule_id"] for _, r in _rows(t["rules"])}
    for rule in c.inst.rules:
        count = len(supplier_units(c, rule, plan))
        excess = max(0.0, count - rule.max_count)
        if rule.id not in reported:
            c.flag("table", f"rules.csv,{rule.id}", 1.0, f"rule '{rule.id}' has no row")
        if rule.hard:
            c.at_most("max_suppliers_max", rule.id, count, rule.max_count,
                      f"{count} distinct {rule.count} suppliers signed in scope")
        else:
            penalty += (rule.penalty_per_unit or 0.0) * excess
    return penalty


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
    for (_b, i, j, year, s), x in plan.flow.items():
        terms["freight"] += pi[s] * d[year] * kg * arcs.get((i, j), 0.0) * x
        if i in c.markets:
            terms["spot_purchases"] += pi[s] * d[year] * kg * at(c.markets[i].price_per_kg,
                                                                 year) * x
    for (f, _b, year, s), p in plan.production.items():
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
    check_facility_output_balance(c, plan)
    check_facility_input_balance(c, plan)
    check_facility_capacity(c, plan)
    check_production_rows(c, t)
    check_spot_availability(c, plan)
    check_spot_table(c, t, plan)
    check_demand_balance(c, t, plan)
    rule_penalty = check_max_suppliers(c, t, plan)
    terms = cost_terms(c, plan, arcs, rule_penalty)
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
