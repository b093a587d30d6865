"""Independent checker: recompute every rule of the model from the instance and result tables.

Owns `check_tables` / `check_folder`, which read the result tables the solver writes
(`models/formulation.md`, "Result tables"), re-derive the allowed arcs, the origin tags, every
constraint family, every procurement-rule row, every unit price (fixed, index-linked with its
collar, floor payer and upside share), tariff, fiscal cost and cost term (in each scenario,
and the CVaR risk term) from the instance (schema objects, with each scenario's changes to
demand, capacity, spot markets and index paths) alone, and report each violation by the
component name the formulation uses (`facility_capacity_max`, `demand_balance`,
`take_or_pay_shortfall_min`, ...). Problems that are not a broken constraint are reported as
`table` (a table disagrees with the instance or with another table), `origin_tag` (a tag that
is not canonical or that its node cannot carry), `nonanticipativity` (a first-stage decision
that differs between scenarios), `resale_allowed` / `stock_allowed` (a resale or stock the
instance does not allow), `cost_term` / `scenario_cost` / `fiscal_cost` / `objective` (money
that does not add up).

It must stay independent of the model: it imports only the schema, findings, `network.at`,
io (for loading), pandas, numpy and the standard library; never `model`, `data`, `solve`,
`results`, `origin`, `ruledata`, `pipeline` or `economics` (a test parses this file's imports
to make sure). The tag text, the tag predicates, the prices and every rule row are recomputed
here from formulation.md. No Pyomo.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from offtake.domain.network import at
from offtake.domain.schema import Instance, Offer

KG_PER_T = 1000.0

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "offers": ("offer_id", "supplier", "material", "signed", "start_year", "signing_cost",
               "prepayment", "signing_year"),
    "contracts": ("offer_id", "supplier", "company", "material", "buyer", "year", "scenario",
                  "signed", "volume_t", "delivered_t", "shortfall_t", "price_per_kg",
                  "price_term", "tier", "payment", "shortfall_payment", "tariff_rate", "tariff",
                  "fiscal_payer", "fiscal_per_kg", "fiscal_cost", "tag"),
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
    "costs": ("term", "value", "payer", "in_objective"),
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
}
"""Tables older folders do not have: a missing one is empty unless the instance has the
feature that fills it (then it is reported missing)."""


def _third_party(inst: Instance) -> bool:
    return any(o.floor_paid_by != "buyer" for o in inst.offers)


OPTIONAL_COLUMNS: dict[tuple[str, str], tuple[str | float, Callable[[Instance], bool]]] = {
    ("offers", "start_year"): ("", lambda inst: any(o.start_years for o in inst.offers)),
    ("offers", "prepayment"): (0.0, lambda inst: any(o.prepayment > 0 for o in inst.offers)),
    ("spot", "tariff_rate"): (0.0, lambda inst: bool(inst.tariffs)),
    ("spot", "tariff"): (0.0, lambda inst: bool(inst.tariffs)),
    ("costs", "payer"): ("buyer", _third_party),
    ("costs", "in_objective"): ("True", _third_party),
}
"""Columns older folders do not have: (default, does the instance need the column?)."""

TEXT_COLUMNS = frozenset({
    "offer_id", "supplier", "company", "material", "buyer", "from_node", "to_node",
    "facility", "market", "origin", "scenario", "term", "rule_id", "kind", "binding", "hard",
    "tag", "inputs", "row", "sense", "unit", "stage", "country", "dual_basis",
    "shadow_price", "shadow_price_per_pp", "price_term", "tier", "fiscal_payer", "payer",
    "in_objective",
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
    "costs": ("value",),
    "scenario_costs": ("value",),
    "rules": (),
}
"""Numbers a row cannot do without; a row missing one is reported and dropped."""

QUANTITY_COLUMNS = frozenset({"volume_t", "flow_t", "production_t", "unmet_t", "demand_t",
                              "delivered_t", "shortfall_t", "stock_t", "tonnes", "credit"})
"""Tonnes (and credits): never negative."""

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

COST_TERMS = ("contract_payments", "volume_rebates", "take_or_pay_shortfall", "tariffs",
              "signing_costs", "prepayments", "prepayment_credits", "spot_purchases", "freight",
              "operating_costs", "resale_credit", "holding_costs", "unmet_demand_penalty",
              "rule_violation_penalties")
"""The registered cost terms of formulation.md's Objective table, in its order."""

RISK_TERM = "risk_cvar"
"""costs.csv term lambda CVaR_alpha (payer 'risk', in the objective; formulation.md, cvar)."""

FISCAL_TERM = "fiscal_floor_support"
"""costs.csv term of a third party's expected fiscal cost (payer = the third party, not in the
objective)."""


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
    """Violations found, plus the objective, cost terms and each third party's fiscal cost
    recomputed from the tables."""

    violations: list[Violation]
    objective: float
    cost_terms: dict[str, float]
    fiscal_costs: dict[str, float] = field(default_factory=dict)
    scenario_costs: dict[str, float] = field(default_factory=dict)
    """C_s: the sum of the cost terms in each scenario (discounted, not weighted)."""

    @property
    def ok(self) -> bool:
        return not self.violations

    def of(self, constraint: str) -> list[Violation]:
        """The violations of one constraint family / component."""
        return [v for v in self.violations if v.constraint == constraint]


# --- context: instance lookups, tolerances, the violation list -------------------------------
def _key(*parts: object) -> str:
    return ",".join(str(p) for p in parts)


@dataclass(frozen=True)
class UnitPrice:
    """What the buyer pays per kg under an offer in one (year, scenario), recomputed from the
    price terms (formulation.md, "Contract economics")."""

    price: float
    """P_ots: the buyer's unit price before tier rebates."""
    terms: frozenset[str]
    """Acceptable `price_term` labels (two when the index sits on a collar or upside edge)."""
    fiscal_per_kg: float
    """Third party's cost per kg delivered: floor top-up minus upside returned."""
    payer: str
    """The third party that pays the floor, or '' when the buyer does."""


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
        self.indices = {x.id: x for x in inst.price_indices}
        self.probability = {s.id: s.probability for s in inst.scenarios}
        self.rules = {r.id: r for r in inst.rules}
        self.sender_material = {f.id: f.product for f in inst.facilities}
        self.sender_material.update({k.id: k.material for k in inst.spot_markets})
        self.base_year = inst.horizon.base_year or inst.horizon.first_year
        self.delta = {t: self.discount(t) for t in self.years}
        self.groups = {g.id: set(g.members) for g in inst.country_groups}
        self.own_tag = {f.id: tag_text(_feed_steps(f.feed_origin) | {_step(f.stage, f.country)})
                        for f in inst.facilities}
        """Own-feed tag of each facility: feed_origin plus its own (stage, country)."""
        self.spot_tag = {k.id: tag_text(_feed_steps(k.feed_origin)) for k in inst.spot_markets}
        """Tag of each spot market's material: its feed_origin."""
        self.scenarios = {s.id: s for s in inst.scenarios}
        self._prices: dict[tuple[str, int, str], UnitPrice] = {}
        self._rates: dict[tuple[str, str, str, int], float] = {}

    def discount(self, year: int) -> float:
        """delta_t = (1 + r)^-(t - t0)."""
        return (1.0 + self.inst.horizon.discount_rate) ** -(year - self.base_year)

    def flag(self, constraint: str, index: str, amount: float, message: str) -> None:
        self.violations.append(Violation(constraint, index, float(amount), message))

    def slack(self, rhs: float) -> float:
        return self.tol * max(1.0, abs(rhs))

    def at_most(self, constraint: str, index: str, lhs: float, rhs: float, what: str) -> None:
        if lhs - rhs > self.slack(rhs):
            self.flag(constraint, index, lhs - rhs, f"{what}: {lhs:.10g} > {rhs:.10g}")

    def at_least(self, constraint: str, index: str, lhs: float, rhs: float, what: str) -> None:
        if rhs - lhs > self.slack(rhs):
            self.flag(constraint, index, rhs - lhs, f"{what}: {lhs:.10g} < {rhs:.10g}")

    def equal(self, constraint: str, index: str, lhs: float, rhs: float, what: str) -> None:
        if not abs(lhs - rhs) <= self.slack(rhs):  # also catches NaN
            self.flag(constraint, index, abs(lhs - rhs), f"{what}: {lhs:.10g} != {rhs:.10g}")

    # offers: windows, starts, running years
    def modelled_years(self, o: Offer) -> list[int]:
        """The offer's window clipped to the horizon (the years rules scope on)."""
        return [t for t in self.years if o.first_year <= t <= o.last_year]

    def run_from(self, o: Offer, start: int) -> list[int]:
        """Horizon years an offer started in `start` runs: term_years from the start (or to
        last_year), never past last_year."""
        end = o.last_year if o.term_years is None else min(o.last_year,
                                                           start + o.term_years - 1)
        return [t for t in self.years if start <= t <= end]

    def possible_years(self, o: Offer) -> list[int]:
        """Horizon years the offer can run in, over every allowed start."""
        starts = o.start_years or [o.first_year]
        return sorted({t for y0 in starts for t in self.run_from(o, y0)})

    def running_years(self, o: Offer, signed: int, start: int | None) -> list[int]:
        """alpha_ot = 1: a signed offer runs from its start (the chosen one of a window, else
        first_year) for its term; an unknown start of a window is not held against the
        volumes (contract_start_link reports it)."""
        if not signed:
            return []
        if o.start_years:
            return self.run_from(o, start) if start in o.start_years else self.possible_years(o)
        return self.run_from(o, o.first_year)

    def signing_year(self, o: Offer, start: int | None) -> int:
        """t_o: the chosen start of a window, else the first year of the offer in the horizon."""
        if o.start_years:
            return start if start in o.start_years else min(o.start_years)
        return max(o.first_year, self.inst.horizon.first_year)

    def eligible(self, o: Offer) -> set[str]:
        return set(self.buyers) if o.buyers is None else set(o.buyers)

    def countries(self, groups: Iterable[str], countries: Iterable[str]) -> set[str]:
        """Union of the members of `groups` and `countries`."""
        out = set(countries)
        for g in groups:
            out |= self.groups.get(g, set())
        return out

    # scenario data: each scenario's changes scale the base data from their year on
    def demand(self, b: str, k: str, year: int, s: str) -> float:
        """D_bkt in scenario s: the base demand times every matching demand change."""
        value = at(self.buyers[b].demand_t.get(k), year)
        for ch in self.scenarios[s].demand:
            if (_from(ch, year) and (ch.buyers is None or b in ch.buyers)
                    and (ch.materials is None or k in ch.materials)):
                value *= ch.multiplier
        return value

    def capacity(self, f: str, year: int, s: str) -> float:
        """K_ft in scenario s: the base capacity times every matching capacity change (the
        facility's country among `countries` and the members of `groups`, when any)."""
        fac = self.facilities[f]
        value = at(fac.capacity_t, year)
        for ch in self.scenarios[s].capacity:
            where = self.countries(ch.groups, ch.countries)
            if (_from(ch, year) and (ch.facilities is None or f in ch.facilities)
                    and (not where or fac.country in where)
                    and (ch.stages is None or str(fac.stage) in {str(x) for x in ch.stages})):
                value *= ch.multiplier
        return value

    def _spot_changes(self, k: str, year: int, s: str) -> Iterable[Any]:
        origin = self.markets[k].origin
        return [ch for ch in self.scenarios[s].spot
                if _from(ch, year) and (ch.markets is None or k in ch.markets)
                and (not ch.origins or origin in ch.origins)]

    def spot_price(self, k: str, year: int, s: str) -> float:
        """P_kt in scenario s: the base price times every matching price multiplier."""
        value = at(self.markets[k].price_per_kg, year)
        for ch in self._spot_changes(k, year, s):
            value *= ch.price_multiplier
        return value

    def spot_availability(self, k: str, year: int, s: str) -> float:
        """A_kt in scenario s: the base availability times every matching multiplier."""
        value = at(self.markets[k].availability_t, year)
        for ch in self._spot_changes(k, year, s):
            value *= ch.availability_multiplier
        return value

    def index_value(self, index_id: str, year: int, s: str) -> float:
        """I_ts: the scenario's index path (`index_paths`), else the index's `by_scenario`
        path, else its base path."""
        index = self.indices[index_id]
        path = self.scenarios[s].index_paths.get(index_id)
        if path is None:
            path = index.by_scenario.get(s, index.price_per_kg)
        return at(path, year)

    # prices and tariffs
    def price(self, o_id: str, year: int, scenario: str) -> UnitPrice:
        key = (o_id, year, scenario)
        if key not in self._prices:
            self._prices[key] = unit_price(self, self.offers[o_id], year, scenario)
        return self._prices[key]

    def tariff_rate(self, seller_country: str, buyer: str, material: str, year: int) -> float:
        """rho: the rates of every tariff on this (origin, destination, material), stacked."""
        key = (seller_country, buyer, material, year)
        if key not in self._rates:
            self._rates[key] = sum(
                at(tr.rate, year) for tr in self.inst.tariffs
                if tariff_applies(self, tr, seller_country, self.buyers[buyer].country,
                                  material))
        return self._rates[key]


def _from(change: Any, year: int) -> bool:
    """A scenario change applies from its from_year on (always without one)."""
    return change.from_year is None or year >= change.from_year


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


def _rows(df: pd.DataFrame) -> Iterable[tuple[int, dict]]:
    """(1-based row number, row as a dict) for each row."""
    return enumerate(df.to_dict("records"), start=1)


def _normalize_table(c: _Ctx, name: str, df: pd.DataFrame | None) -> pd.DataFrame:
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
    for pos, row in _rows(df):
        keep[pos - 1] = _row_ok(c, name, pos, row)
    return df.loc[keep].reset_index(drop=True)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
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
    if name == "tiers" and _tier_number(row["tier"]) is None:
        c.flag("table", where, 1.0, f"tier '{row['tier']}' is not a tier number")
        return False
    return _ids_ok(c, name, where, row)


def _tier_number(text: str) -> int | None:
    """A tier number written as text ('2', '2.0'), or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if np.isfinite(value) and value == int(value) and value >= 0 else None


def _ids_ok(c: _Ctx, name: str, where: str, row: dict) -> bool:
    known: dict[str, Mapping[str, Any]] = {
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
        where = f"offers.csv row {pos}"
        if r["offer_id"] in plan.signed:
            c.flag("table", where, 1.0, f"offer '{r['offer_id']}' repeated")
        plan.signed[r["offer_id"]] = _binary(c, where, r["signed"])
        start = r["start_year"]
        plan.start[r["offer_id"]] = int(start) if np.isfinite(start) else None
    _read_contracts(c, t, plan)
    for pos, r in _rows(t["tiers"]):
        tier = _tier_number(r["tier"])
        if tier is None:
            c.flag("table", f"tiers.csv row {pos}", 1.0, f"tier '{r['tier']}' is not a number")
            continue
        plan.tiers[(r["offer_id"], int(r["year"]), r["scenario"], tier)] += r["volume_t"]
    for _, r in _rows(t["credits"]):
        plan.credits[(r["offer_id"], int(r["year"]), r["scenario"])] += r["credit"]
    for _, r in _rows(t["flows"]):
        fkey = (r["buyer"], r["from_node"], r["to_node"], r["tag"], int(r["year"]), r["scenario"])
        plan.flow[fkey] += r["flow_t"]
    for _, r in _rows(t["production"]):
        f, comb = r["facility"], r["inputs"]
        plan.production[(f, r["buyer"], comb, int(r["year"]), r["scenario"])] += r["production_t"]
        inputs = parse_combination(comb)
        computed = output_tag(c, f, inputs) if inputs is not None else None
        plan.production_tag.setdefault((f, comb), r["tag"] if computed is None else computed)
    for _, r in _rows(t["unmet"]):
        plan.unmet[(r["buyer"], r["material"], int(r["year"]), r["scenario"])] += r["unmet_t"]
    for _, r in _rows(t["spot"]):
        skey = (r["market"], r["buyer"], r["to_node"], r["tag"], int(r["year"]), r["scenario"])
        plan.spot[skey] += r["volume_t"]
    for _, r in _rows(t["resale"]):
        plan.resale[(r["buyer"], r["market"], int(r["year"]), r["scenario"])] += r["volume_t"]
    for _, r in _rows(t["stock"]):
        plan.stock[(r["buyer"], r["material"], int(r["year"]), r["scenario"])] += r["stock_t"]
    return plan


def _read_contracts(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan) -> None:
    """contracts.csv: one row per (offer, buyer, year, scenario); volume_t is the commitment
    q_obt (the same in every scenario: first stage), delivered_t and shortfall_t are d, f."""
    seen = set()
    for pos, r in _rows(t["contracts"]):
        key = (r["offer_id"], r["buyer"], int(r["year"]), r["scenario"])
        if key in seen:
            c.flag("table", f"contracts.csv row {pos}", 1.0, f"row {_key(*key)} repeated")
        seen.add(key)
        by_s = plan.volume_by_scenario[key[:3]]
        by_s[key[3]] = by_s.get(key[3], 0.0) + r["volume_t"]
        plan.delivered[key] += r["delivered_t"]
        plan.shortfall[key] += r["shortfall_t"]
    for vkey, by_s in plan.volume_by_scenario.items():
        first = next(s for s in c.probability if s in by_s)
        plan.volume[vkey] = by_s[first]


def _binary(c: _Ctx, where: str, value: float) -> int:
    z = int(round(value))
    if z not in (0, 1) or abs(value - z) > c.tol:
        c.flag("table", where, abs(value - z) or 1.0, f"signed must be 0 or 1, got {value:g}")
    return 1 if z >= 1 else 0


# --- contract economics: unit prices, tariffs, fiscal cost -----------------------------------
def index_price(c: _Ctx, o: Offer, year: int, scenario: str) -> float:
    """p = max(0, I_ts (1 + premium) + adder), I_ts the scenario's path of the index."""
    assert o.index is not None, "only index-linked offers have an index price"
    return max(0.0, c.index_value(o.index, year, scenario) * (1.0 + o.premium)
               + o.adder_per_kg)


def collar(o: Offer, p: float) -> tuple[float, float, str]:
    """(buyer's price before upside, third party's top-up per kg, term) for index price p:
    above the ceiling the buyer pays the ceiling; below the floor the buyer pays the floor, or
    pays p while the third party tops the seller up to the floor."""
    if o.ceiling_per_kg is not None and p > o.ceiling_per_kg:
        return o.ceiling_per_kg, 0.0, "ceiling"
    if o.floor_per_kg is not None and p < o.floor_per_kg:
        if o.floor_paid_by == "buyer":
            return o.floor_per_kg, 0.0, "floor"
        return p, o.floor_per_kg - p, "floor (third party)"
    return p, 0.0, "index"


def upside(o: Offer, p: float) -> float:
    """beta (p - L) per kg returned to whoever pays the floor, when p > L."""
    if o.upside_share <= 0 or o.upside_above_per_kg is None or p <= o.upside_above_per_kg:
        return 0.0
    return o.upside_share * (p - o.upside_above_per_kg)


def price_term(o: Offer, p: float) -> str:
    """The price_term label of index price p: collar term, '+upside' when upside is shared."""
    return collar(o, p)[2] + ("+upside" if upside(o, p) > 0 else "")


def unit_price(c: _Ctx, o: Offer, year: int, scenario: str) -> UnitPrice:
    """P_ots, its label(s), and the third party's fiscal cost per kg (formulation.md,
    "Contract economics"). Labels: every label of a price within tolerance of p, so a price
    sitting on the floor, ceiling or upside threshold may carry either."""
    if o.index is None:
        return UnitPrice(at(o.price_per_kg, year), frozenset({"fixed"}), 0.0, "")
    p = index_price(c, o, year, scenario)
    base, top_up, _ = collar(o, p)
    up = upside(o, p)
    eps = c.tol * max(1.0, abs(p))
    terms = frozenset(price_term(o, x) for x in (p - eps, p, p + eps))
    if o.floor_paid_by == "buyer":
        return UnitPrice(max(0.0, base - up), terms, 0.0, "")
    return UnitPrice(base, terms, top_up - up, o.floor_paid_by)


def tariff_applies(c: _Ctx, tariff: Any, seller_country: str, buyer_country: str,
                   material: str) -> bool:
    """The seller's country is an origin, the buyer's a destination (none listed: all) and the
    material one of the tariff's (None: all)."""
    if seller_country not in c.countries(tariff.origin_groups, tariff.origins):
        return False
    destinations = c.countries(tariff.destination_groups, tariff.destinations)
    everywhere = not tariff.destinations and not tariff.destination_groups
    if not everywhere and buyer_country not in destinations:
        return False
    return tariff.materials is None or material in tariff.materials


def contract_tariff_rate(c: _Ctx, o: Offer, buyer: str, year: int) -> float:
    """rho_obt: seller = the supplier facility's country."""
    return c.tariff_rate(c.facilities[o.supplier].country, buyer, o.material, year)


def spot_tariff_rate(c: _Ctx, market: str, buyer: str, year: int) -> float:
    """rho_kappa bt: seller = the market's origin."""
    k = c.markets[market]
    return c.tariff_rate(k.origin, buyer, k.material, year)


# --- offers and contracts: first-stage decisions ---------------------------------------------
def check_contract_start(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan) -> None:
    """contract_start_link: a signed offer with a window starts in exactly one of its
    start_years, an unsigned one has no start. offers.csv: a row per modelled offer;
    supplier, material, signing cost, prepayment and signing year (= start year, or the
    offer's first year in the horizon without a window) of signed offers."""
    for o in c.inst.offers:
        years = c.possible_years(o)
        if years and o.id not in plan.signed:
            c.flag("table", f"offers.csv,{o.id}", 1.0, f"modelled offer '{o.id}' has no row")
        if not years and plan.signed.get(o.id):
            c.flag("table", f"offers.csv,{o.id}", 1.0,
                   f"offer '{o.id}' is signed but cannot run in the horizon")
    for pos, r in _rows(t["offers"]):
        o = c.offers[r["offer_id"]]
        where = f"offers.csv row {pos}"
        _same_text(c, where, "supplier", r["supplier"], o.supplier)
        _same_text(c, where, "material", r["material"], o.material)
        z, start = plan.signed[o.id], plan.start.get(o.id)
        if not z:
            if start is not None and o.start_years:
                c.flag("contract_start_link", o.id, 1.0,
                       f"unsigned offer has a start year ({start})")
            continue  # unsigned rows may show the costs or nothing
        if o.start_years and start not in o.start_years:
            c.flag("contract_start_link", o.id, 1.0, f"signed offer starts in {start}, not in "
                   f"exactly one of its start_years {o.start_years}")
        elif not o.start_years and start is not None and start not in (
                o.first_year, c.signing_year(o, None)):
            c.flag("contract_start_link", o.id, 1.0,
                   f"offer without a start window starts in {start}, not {o.first_year}")
        c.equal("table", where, r["signing_cost"], o.signing_cost, "signing_cost")
        c.equal("table", where, r["prepayment"], o.prepayment, "prepayment")
        c.equal("table", where, r["signing_year"], c.signing_year(o, start), "signing_year")


def check_contract_volume(c: _Ctx, plan: _Plan) -> None:
    """contract_volume_min/max: min alpha_ot <= sum over eligible buyers of q <= max alpha_ot
    per (o, t), alpha_ot = 1 in the years a signed offer runs (from its start, for its term);
    no volume for ineligible buyers. The commitment is first stage: the same in every
    scenario (nonanticipativity)."""
    total: dict[tuple[str, int], float] = defaultdict(float)
    for (o_id, b, year), q in plan.volume.items():
        o = c.offers[o_id]
        values = plan.volume_by_scenario[(o_id, b, year)].values()
        if max(values) - min(values) > c.slack(max(values)):
            c.flag("nonanticipativity", _key(o_id, b, year), max(values) - min(values),
                   f"committed volume_t differs between scenarios: {sorted(values)}")
        if b in c.eligible(o):
            total[(o_id, year)] += q
        else:
            c.at_most("contract_volume_max", _key(o_id, b, year), q, 0.0,
                      f"volume for buyer '{b}', who is not eligible under '{o_id}'")
    for o in c.inst.offers:
        z = plan.signed.get(o.id, 0) if c.possible_years(o) else 0
        running = c.running_years(o, z, plan.start.get(o.id))
        for year in c.years:
            q = total.get((o.id, year), 0.0)
            if year not in running:
                why = ("unsigned offer" if not z else "outside the offer window"
                       if not o.first_year <= year <= o.last_year else "offer not running "
                       f"(start {plan.start.get(o.id)}, term {o.term_years})")
                c.at_most("contract_volume_max", _key(o.id, year), q, 0.0, f"volume on {why}")
                continue
            c.at_most("contract_volume_max", _key(o.id, year), q, o.max_t_per_year,
                      "volume on signed offer above its maximum")
            c.at_least("contract_volume_min", _key(o.id, year), q, o.min_t_per_year,
                       "signed offer below its minimum")


def check_take_or_pay(c: _Ctx, plan: _Plan) -> None:
    """take_or_pay_delivery_max: d_obts <= q_obt; take_or_pay_shortfall_min: f_obts >=
    theta q_obt - d_obts. Offers without take-or-pay deliver what they commit (d = q, no
    shortfall), in every scenario."""
    keys = {(o, b, t) for (o, b, t) in plan.volume}
    keys |= {(o, b, t) for (o, b, t, _s) in plan.delivered}
    for o_id, b, year in sorted(keys):
        o, q = c.offers[o_id], plan.volume.get((o_id, b, year), 0.0)
        for s in c.probability:
            index = _key(o_id, b, year, s)
            d = plan.delivered.get((o_id, b, year, s), 0.0)
            f = plan.shortfall.get((o_id, b, year, s), 0.0)
            c.at_most("take_or_pay_delivery_max", index, d, q, "delivered above committed")
            if o.take_or_pay_share is None:
                c.equal("table", "contracts.csv," + index, d, q,
                        "delivered_t vs volume_t (offer without take-or-pay)")
                c.at_most("table", "contracts.csv," + index, f, 0.0,
                          "shortfall_t on an offer without take-or-pay")
            else:
                c.at_least("take_or_pay_shortfall_min", index, f, o.take_or_pay_share * q - d,
                           f"shortfall below {o.take_or_pay_share:g} x committed - delivered")


def tier_bands(c: _Ctx, o: Offer) -> list[tuple[float, float]]:
    """[lo_k, hi_k] of each tier: from_t to the next tier's from_t; the last band ends at
    max_t_per_year (annual) or max_t_per_year x the window length in the horizon (total)."""
    cap = o.max_t_per_year * (len(c.modelled_years(o)) if o.tier_basis == "total" else 1)
    starts = [tier.from_t for tier in o.tiers]
    return [(lo, starts[k + 1] if k + 1 < len(starts) else max(cap, lo))
            for k, lo in enumerate(starts)]


def check_volume_tiers(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan) -> None:
    """volume_tier_link: band volumes sum to the year's committed volume; all-units annual:
    one band holds all the volume and it lies within the band; incremental: bands fill in
    order, each within its width; total basis: one band for the whole contract, the total
    within it. Band volumes are first stage (the same in every scenario). tiers.csv rows:
    discount, the offer's unit price and the rebate."""
    for (o_id, year, s, k), v in sorted(plan.tiers.items()):
        if k >= len(c.offers[o_id].tiers):
            c.flag("volume_tier_link", _key(o_id, year, s, k), v,
                   f"offer '{o_id}' has {len(c.offers[o_id].tiers)} tier(s), no tier {k}")
    for o_id, year, k in sorted({(o, y, k) for (o, y, _s, k) in plan.tiers}):
        vs = [plan.tiers.get((o_id, year, s, k), 0.0) for s in c.probability]
        if max(vs) - min(vs) > c.slack(max(vs)):
            c.flag("nonanticipativity", _key(o_id, year, k), max(vs) - min(vs),
                   f"band volume differs between scenarios: {vs}")
    for o in c.inst.offers:
        if not o.tiers:
            continue
        bands = tier_bands(c, o)
        for s in c.probability:
            band = {(year, k): plan.tiers.get((o.id, year, s, k), 0.0)
                    for year in c.years for k in range(len(bands))}
            for year in c.years:
                vs = [band[(year, k)] for k in range(len(bands))]
                index = _key(o.id, year, s)
                c.equal("volume_tier_link", index, sum(vs), plan.committed(o.id, year),
                        "band volumes vs committed volume")
                if o.tier_mode == "incremental":
                    _incremental(c, index, vs, bands)
                elif o.tier_basis == "annual":
                    _all_units(c, index, vs, bands, "the year's")
            if o.tier_mode == "all_units" and o.tier_basis == "total":
                totals = [sum(band[(year, k)] for year in c.years) for k in range(len(bands))]
                _all_units(c, _key(o.id, s), totals, bands, "the contract's")
    for pos, r in _rows(t["tiers"]):
        o = c.offers[r["offer_id"]]
        tier = _tier_number(r["tier"])
        where = f"tiers.csv row {pos}"
        if tier is None or tier >= len(o.tiers):
            c.flag("table", where, 1.0, f"offer '{o.id}' has no tier '{r['tier']}'")
            continue
        price = c.price(o.id, int(r["year"]), r["scenario"]).price
        c.equal("table", where, r["discount"], o.tiers[tier].discount, "discount")
        c.equal("table", where, r["price_per_kg"], price, "price_per_kg")
        c.equal("table", where, r["rebate"], KG_PER_T * price * o.tiers[tier].discount
                * r["volume_t"], "rebate = price x discount x volume x 1000")


def _all_units(c: _Ctx, index: str, vs: list[float], bands: list[tuple[float, float]],
               whose: str) -> None:
    used = [k for k, v in enumerate(vs) if v > c.slack(0.0)]
    if len(used) > 1:
        c.flag("volume_tier_link", index, sum(vs) - max(vs),
               f"all-units tiers: {whose} volume spread over bands {used}")
    for k in used:
        lo, hi = bands[k]
        c.at_least("volume_tier_link", index, vs[k], lo, f"all-units band {k} below its start")
        c.at_most("volume_tier_link", index, vs[k], hi, f"all-units band {k} above its end")


def _incremental(c: _Ctx, index: str, vs: list[float], bands: list[tuple[float, float]]) -> None:
    for k, (lo, hi) in enumerate(bands):
        c.at_most("volume_tier_link", index, vs[k], hi - lo, f"incremental band {k} over its width")
        if k + 1 < len(vs) and vs[k + 1] > c.slack(0.0):
            c.at_least("volume_tier_link", index, vs[k], hi - lo,
                       f"incremental band {k + 1} used before band {k} is full")


def active_tier_ok(c: _Ctx, o: Offer, plan: _Plan, year: int, label: str) -> str | None:
    """Why contracts.csv's `tier` label is wrong, or None: '' without tiers (or without
    volume); else a tier whose band holds the year's (total basis: the contract's) volume."""
    if not o.tiers:
        return None if label == "" else f"tier '{label}' on an offer without tiers"
    volume = (sum(plan.committed(o.id, y) for y in c.years) if o.tier_basis == "total"
              else plan.committed(o.id, year))
    if label == "":
        return None if volume <= c.slack(0.0) else f"no tier for {volume:g} t"
    k = _tier_number(label)
    bands = tier_bands(c, o)
    if k is None or k >= len(bands):
        return f"tier '{label}' does not exist"
    lo, hi = bands[k]
    if volume < lo - c.slack(lo) or volume > hi + c.slack(hi):
        return f"tier {k} covers {lo:g}-{hi:g} t, the volume is {volume:g} t"
    return None


def check_prepayment_credit(c: _Ctx, plan: _Plan) -> None:
    """prepayment_credit_max: c_ots <= 1000 P_ots sum_b d_obts (that year's payments under the
    offer); prepayment_credit_total: sum_t c_ots <= kappa Pi z_o."""
    total: dict[tuple[str, str], float] = defaultdict(float)
    for (o_id, year, s), credit in sorted(plan.credits.items()):
        paid = KG_PER_T * c.price(o_id, year, s).price * plan.delivered_total(o_id, year, s)
        c.at_most("prepayment_credit_max", _key(o_id, year, s), credit, paid,
                  "credit above the year's payments under the offer")
        total[(o_id, s)] += credit
    for (o_id, s), credit in sorted(total.items()):
        o = c.offers[o_id]
        cap = o.prepayment_credit_share * o.prepayment * plan.signed.get(o_id, 0)
        c.at_most("prepayment_credit_total", _key(o_id, s), credit, cap,
                  f"credits above {o.prepayment_credit_share:g} x prepayment (signed: "
                  f"{plan.signed.get(o_id, 0)})")


def check_contract_rows(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan) -> None:
    """contracts.csv: each row agrees with the instance and offers.csv, and its price, label,
    active tier, payment, shortfall payment, tariff and fiscal columns are recomputed."""
    for pos, r in _rows(t["contracts"]):
        o = c.offers[r["offer_id"]]
        where = f"contracts.csv row {pos}"
        year, s, d = int(r["year"]), r["scenario"], r["delivered_t"]
        _same_text(c, where, "supplier", r["supplier"], o.supplier)
        _same_text(c, where, "material", r["material"], o.material)
        if o.supplier in c.facilities:
            _same_text(c, where, "company", r["company"], c.facilities[o.supplier].company)
        c.equal("table", where, r["signed"], plan.signed.get(o.id, 0), "signed vs offers.csv")
        up = c.price(o.id, year, s)
        c.equal("table", where, r["price_per_kg"], up.price, "price_per_kg")
        if r["price_term"] not in up.terms:
            c.flag("table", where, 1.0, f"price_term is '{r['price_term']}', expected "
                   f"{' or '.join(repr(x) for x in sorted(up.terms))}")
        problem = active_tier_ok(c, o, plan, year, r["tier"])
        if problem:
            c.flag("table", where, 1.0, problem)
        c.equal("table", where, r["payment"], KG_PER_T * up.price * d, "payment")
        phi = o.shortfall_fraction if o.take_or_pay_share is not None else 0.0
        c.equal("table", where, r["shortfall_payment"],
                KG_PER_T * phi * up.price * r["shortfall_t"], "shortfall_payment")
        rho = contract_tariff_rate(c, o, r["buyer"], year)
        c.equal("table", where, r["tariff_rate"], rho, "tariff_rate")
        c.equal("table", where, r["tariff"], KG_PER_T * rho * up.price * d, "tariff")
        if r["fiscal_payer"] != up.payer and not (r["fiscal_payer"] == ""
                                                  and abs(up.fiscal_per_kg) <= c.tol):
            c.flag("table", where, 1.0, f"fiscal_payer is '{r['fiscal_payer']}', expected "
                   f"'{up.payer}'")
        c.equal("table", where, r["fiscal_per_kg"], up.fiscal_per_kg, "fiscal_per_kg")
        c.equal("table", where, r["fiscal_cost"], KG_PER_T * up.fiscal_per_kg * d,
                "fiscal_cost")


def check_credit_rows(c: _Ctx, t: dict[str, pd.DataFrame]) -> None:
    """credits.csv: one row per (offer, year, scenario)."""
    seen = set()
    for pos, r in _rows(t["credits"]):
        key = (r["offer_id"], int(r["year"]), r["scenario"])
        if key in seen:
            c.flag("table", f"credits.csv row {pos}", 1.0, f"row {_key(*key)} repeated")
        seen.add(key)


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


def _contract_from(c: _Ctx, plan: _Plan) -> dict[tuple[str, str, int, str], float]:
    """Contract volume delivered from each facility to each buyer: (f, b, t, s) -> t
    (formulation.md, take_or_pay: the delivered volume is what counts)."""
    out: dict[tuple[str, str, int, str], float] = defaultdict(float)
    for (o_id, b, year, s), d in plan.delivered.items():
        out[(c.offers[o_id].supplier, b, year, s)] += d
    return out


def check_facility_output_balance(c: _Ctx, plan: _Plan) -> None:
    """facility_output_balance: per (f,b,tag,t,s), outflow = production into that tag +
    (tag = own-feed tag) contract volume delivered from f."""
    outflow: dict[tuple[str, str, str, int, str], float] = defaultdict(float)
    for (b, i, _j, tag, year, s), x in plan.flow.items():
        if i in c.facilities:
            outflow[(i, b, tag, year, s)] += x
    made: dict[tuple[str, str, str, int, str], float] = defaultdict(float)
    for (f, b, comb, year, s), p in plan.production.items():
        made[(f, b, plan.production_tag[(f, comb)], year, s)] += p
    bought = {(f, b, c.own_tag[f], year, s): d
              for (f, b, year, s), d in _contract_from(c, plan).items()}
    for key in sorted(set(outflow) | set(made) | set(bought)):
        c.equal("facility_output_balance", _key(*key), outflow.get(key, 0.0),
                made.get(key, 0.0) + bought.get(key, 0.0),
                "outflow vs production into the tag + contract deliveries (own-feed tag)")


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
    for okey, p in sorted(own_feed.items()):
        c.at_most("facility_input_balance", _key(*okey), p, 0.0,
                  f"production at '{okey[0]}', which has no recipe (own feed only)")
    for key in sorted(set(inflow) | set(used)):
        c.equal("facility_input_balance", _key(*key), inflow.get(key, 0.0), used.get(key, 0.0),
                f"inflow of {key[2]} with tag '{key[3]}' vs recipe x production")


def check_facility_capacity(c: _Ctx, plan: _Plan) -> None:
    """facility_capacity_max: contract volume delivered + production <= capacity, per
    (f,t,s)."""
    used: dict[tuple[str, int, str], float] = defaultdict(float)
    for (f, _b, year, s), d in _contract_from(c, plan).items():
        used[(f, year, s)] += d
    for (f, _b, _comb, year, s), p in plan.production.items():
        used[(f, year, s)] += p
    for (f, year, s), x in sorted(used.items()):
        c.at_most("facility_capacity_max", _key(f, year, s), x,
                  c.capacity(f, year, s), "contract deliveries + production")


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
    tag it emits for that buyer (own-feed tag if the buyer took delivery under an offer there,
    or an output tag of its production for the buyer)."""
    emits: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (f, b, _year, _s), d in _contract_from(c, plan).items():
        if d > c.tol:
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
                      c.spot_availability(k, year, s), "spot purchases")


def check_spot_table(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan) -> None:
    """spot.csv: the same volumes as the flows leaving spot markets, instance prices, the
    stacked tariff rate (seller = the market's origin) and the tariff."""
    flows = _spot_flows(c, plan)
    for key in sorted(set(flows) | set(plan.spot)):
        c.equal("table", "spot.csv," + _key(*key), plan.spot.get(key, 0.0),
                flows.get(key, 0.0), "spot.csv volume vs flows from the market")
    for pos, r in _rows(t["spot"]):
        market = c.markets[r["market"]]
        where = f"spot.csv row {pos}"
        price = c.spot_price(market.id, int(r["year"]), r["scenario"])
        _same_text(c, where, "material", r["material"], market.material)
        _same_text(c, where, "origin", r["origin"], market.origin)
        c.equal("table", where, r["price_per_kg"], price, "price_per_kg")
        c.equal("table", where, r["cost"], KG_PER_T * price * r["volume_t"], "cost")
        rho = spot_tariff_rate(c, r["market"], r["buyer"], int(r["year"]))
        c.equal("table", where, r["tariff_rate"], rho, "tariff_rate")
        c.equal("table", where, r["tariff"], KG_PER_T * rho * price * r["volume_t"], "tariff")


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
    """D_{bkt} in each scenario, for every (b, k, t, s)."""
    return {(b.id, k, year, s): c.demand(b.id, k, year, s) for b in c.inst.buyers
            for k in b.demand_t for year in c.years for s in c.probability}


def resale_price(c: _Ctx, market: str, year: int, s: str) -> float:
    """P_kappa t (1 - haircut): what a resold kg fetches (the scenario's market price)."""
    return c.spot_price(market, year, s) * (1.0 - (c.markets[market].resale_haircut or 0.0))


def check_resale_and_stock(c: _Ctx, t: dict[str, pd.DataFrame]) -> None:
    """resale_allowed: resale only into a market with a resale_haircut, of its material;
    stock_allowed: stock only of a material with a holding cost. resale.csv and stock.csv
    prices and money columns."""
    for pos, r in _rows(t["resale"]):
        k, where = c.markets[r["market"]], f"resale.csv row {pos}"
        index = _key(r["buyer"], r["market"], int(r["year"]), r["scenario"])
        if k.resale_haircut is None:
            c.flag("resale_allowed", index, r["volume_t"],
                   f"market '{k.id}' does not accept resale (no resale_haircut)")
        _same_text(c, where, "material", r["material"], k.material)
        price = resale_price(c, k.id, int(r["year"]), r["scenario"])
        c.equal("table", where, r["price_per_kg"], price, "price_per_kg (net of haircut)")
        c.equal("table", where, r["credit"], KG_PER_T * price * r["volume_t"], "credit")
    seen = set()
    for pos, r in _rows(t["stock"]):
        m, where = c.materials[r["material"]], f"stock.csv row {pos}"
        key = (r["buyer"], r["material"], int(r["year"]), r["scenario"])
        if key in seen:
            c.flag("table", where, 1.0, f"row {_key(*key)} repeated")
        seen.add(key)
        if m.holding_cost_per_kg_year is None and r["stock_t"] > c.tol:
            c.flag("stock_allowed", _key(*key), r["stock_t"],
                   f"material '{m.id}' cannot be stocked (no holding_cost_per_kg_year)")
        h = m.holding_cost_per_kg_year or 0.0
        c.equal("table", where, r["holding_cost_per_kg"], h, "holding_cost_per_kg")
        c.equal("table", where, r["holding_cost"], KG_PER_T * h * r["stock_t"], "holding_cost")


def _resold(c: _Ctx, plan: _Plan) -> dict[tuple[str, str, int, str], float]:
    """sum over markets of the material of r_b kappa ts: (b, k, t, s) -> t."""
    out: dict[tuple[str, str, int, str], float] = defaultdict(float)
    for (b, market, year, s), r in plan.resale.items():
        out[(b, c.markets[market].material, year, s)] += r
    return out


def check_demand_balance(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan,
                         arrived_by_tag: Deliveries) -> None:
    """demand_balance: arrivals + unmet + stock_{t-1} - stock_t - resale >= demand and
    0 <= unmet <= demand, per (b,k,t,s) (no stock before the first year); unmet.csv has a
    row for every positive demand, its delivered_t = arrivals."""
    arrived = _arrivals(c, arrived_by_tag)
    resold = _resold(c, plan)
    have_row = set(plan.unmet)
    demand = _demand(c)
    for key in sorted(set(demand) | have_row | set(resold) | set(plan.stock)):
        b, k, year, s = key
        d, u = demand.get(key, 0.0), plan.unmet.get(key, 0.0)
        index = _key(*key)
        if d > 0 and key not in have_row:
            c.flag("table", "unmet.csv," + index, 1.0, "no row for a positive demand")
        got, sold = arrived.get(key, 0.0), resold.get(key, 0.0)
        before, after = plan.stock.get((b, k, year - 1, s), 0.0), plan.stock.get(key, 0.0)
        lhs = got + u + before - after - sold
        if d - lhs > c.slack(d):
            c.flag("demand_balance", index, d - lhs,
                   f"delivered {got:.10g} + unmet {u:.10g} + stock in {before:.10g} - stock out "
                   f"{after:.10g} - resold {sold:.10g} < demand {d:.10g}")
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
    volume: dict[tuple[str, int, str], list[tuple[Offer, float]]]
    """(b, t, s) -> (offer, t delivered under it) for b (take_or_pay: delivered counts)."""
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
    for (o_id, b, year, s), x in plan.delivered.items():
        volume[(b, year, s)].append((c.offers[o_id], x))
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
    """supplier_share_max, label group|unit|material: contract deliveries from one unit <=
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
                for s in c.probability:
                    bought = _bought_by_unit(c, rule.by, d, group, k, year, s)
                    den = sum(bought.values()) + sum(d.spot.get((b, k, year, s), 0.0)
                                                     for b in group)
                    rows += [RuleRow(rule, f"{label}|{n}|{k}", year, s, "le",
                                     bought.get(n, 0.0), rule.max_share * den, den,
                                     rule.max_share) for n in units]
    return rows


def _bought_by_unit(c: _Ctx, by: str, d: _Facts, group: list[str], k: str,
                    year: int, s: str) -> dict[str, float]:
    """Contract deliveries of material k to the group in a year and scenario, per supplier
    unit."""
    out: dict[str, float] = defaultdict(float)
    for b in group:
        for o, q in d.volume.get((b, year, s), ()):
            if o.material == k:
                out[_unit(c, o, by)] += q
    return out


def _instance_steps(c: _Ctx) -> set[Step]:
    """Every (stage, country) a tag can contain in this instance."""
    steps = {_step(f.stage, f.country) for f in c.inst.facilities}
    for f in c.inst.facilities:
        steps |= _feed_steps(f.feed_origin)
    for k in c.inst.spot_markets:
        steps |= _feed_steps(k.feed_origin)
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


def _demand_share_rows(c: _Ctx, rule, d: _Facts, counts) -> list[RuleRow]:
    """Rows 'deliveries whose tag `counts` accepts >= s_t x demand', label group|material,
    where demand and share are positive (content_share_min, recycled_share_min)."""
    buyers = _scoped_buyers(c, rule)
    rows = []
    for label, group in _groups(rule, buyers):
        for k in _scoped_materials(c, rule, buyers):
            for year in _scoped_years(c, rule):
                share = at(rule.min_share, year)
                for s in c.probability:
                    dem = sum(d.demand.get((b, k, year, s), 0.0) for b in group)
                    if dem <= 0 or share <= 0:
                        continue
                    num = _delivered(d, group, k, year, s, counts)
                    rows.append(RuleRow(rule, f"{label}|{k}", year, s, "ge", num, share * dem, dem,
                                        share))
    return rows


def rows_min_content_share(c: _Ctx, rule, d: _Facts) -> list[RuleRow]:
    """content_share_min: every step at the listed stages in a qualifying country (or, with
    recycled_qualifies, a RECYCLE step in one)."""
    stages = {str(st) for st in rule.stages}
    qualifying = c.countries(rule.groups, rule.countries)

    def counts(steps) -> bool:
        recycled = rule.recycled_qualifies and any(
            st == "RECYCLE" and cc in qualifying for st, cc in steps)
        return recycled or all_steps_in(steps, stages, qualifying)

    return _demand_share_rows(c, rule, d, counts)


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
    """recycled_share_min: deliveries with a RECYCLE step."""
    return _demand_share_rows(c, rule, d, is_recycled)


def rows_max_offtake_share(c: _Ctx, rule, d: _Facts) -> list[RuleRow]:
    """offtake_share_max, label facility: what buyers of the class take from the facility
    (contract deliveries + processing) <= s x what all buyers take, per scoped year and scenario.
    The class is every scoped buyer with that buyer_class (formulation.md, B_c)."""
    scoped = set(_scoped_buyers(c, rule))
    cls = {b.id for b in c.inst.buyers if b.buyer_class == rule.buyer_class and b.id in scoped}
    sold = _contract_from(c, d.plan)
    rows = []
    for f in rule.facilities:
        for year in _scoped_years(c, rule):
            for s in c.probability:
                made = d.processed.get((f, year, s), {})
                taken = {b: sold.get((f, b, year, s), 0.0) + made.get(b, 0.0)
                         for b in c.buyers}
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


EXPECTED = "expected"
"""Scenario label of the rows of a rule that holds in expectation (formulation.md)."""


def _in_expectation(c: _Ctx, rows: list[RuleRow]) -> list[RuleRow]:
    """One row per (label, year) whose lhs, bound and base are the probability-weighted
    averages of the per-scenario rows (a rule with in_expectation: true)."""
    groups: dict[tuple[str, int | None], list[RuleRow]] = defaultdict(list)
    for row in rows:
        groups[(row.label, row.year)].append(row)
    out = []
    for (label, year), members in groups.items():
        p = [c.probability[r.scenario] for r in members]
        avg = {f: sum(w * (getattr(r, f) or 0.0) for w, r in zip(p, members, strict=True))
               for f in ("lhs", "bound", "base")}
        first = members[0]
        out.append(RuleRow(first.rule, label, year, EXPECTED, first.sense, avg["lhs"],
                           avg["bound"], avg["base"] if first.base is not None else None,
                           first.share))
    return out


def check_rules(c: _Ctx, t: dict[str, pd.DataFrame], plan: _Plan,
                arrived: Deliveries) -> list[RuleRow]:
    """Every procurement rule: rows recomputed per kind, hard rows hold, rules.csv matches.
    Returns the rows (rule_violation_penalties prices the soft ones)."""
    facts = _facts(c, plan, arrived)
    rows: list[RuleRow] = []
    for rule in c.inst.rules:
        made = RULE_ROWS[rule.kind](c, rule, facts)
        rows += _in_expectation(c, made) if rule.in_expectation else made
    check_rule_rows_hold(c, rows)
    check_rules_table(c, t, rows)
    return rows


# --- objective: one function per cost term (formulation.md, Objective) -----------------------
PerScenario = dict[str, float]
"""A cost term in each scenario: discounted, not probability-weighted (first-stage costs in
every scenario)."""


def _per(c: _Ctx) -> PerScenario:
    return dict.fromkeys(c.probability, 0.0)


def contract_payments(c: _Ctx, plan: _Plan) -> PerScenario:
    """delta_t 1000 P_ots d_obts."""
    out = _per(c)
    for (o, _b, year, s), d in plan.delivered.items():
        out[s] += c.delta[year] * KG_PER_T * c.price(o, year, s).price * d
    return out


def volume_rebates(c: _Ctx, plan: _Plan) -> PerScenario:
    """-delta_t 1000 P_ots disc_k v_otk."""
    out = _per(c)
    for (o, year, s, k), v in plan.tiers.items():
        tiers = c.offers[o].tiers
        if k < len(tiers):
            out[s] -= c.delta[year] * KG_PER_T * c.price(o, year, s).price * tiers[k].discount * v
    return out


def take_or_pay_shortfall(c: _Ctx, plan: _Plan) -> PerScenario:
    """delta_t phi_o 1000 P_ots f_obts (take-or-pay offers)."""
    out = _per(c)
    for (o, _b, year, s), f in plan.shortfall.items():
        offer = c.offers[o]
        if offer.take_or_pay_share is not None:
            out[s] += (c.delta[year] * offer.shortfall_fraction * KG_PER_T
                       * c.price(o, year, s).price * f)
    return out


def tariffs(c: _Ctx, plan: _Plan) -> PerScenario:
    """delta_t rho 1000 P d (contracts, before rebates) + the same on spot flows."""
    out = _per(c)
    for (o, b, year, s), d in plan.delivered.items():
        out[s] += (c.delta[year] * contract_tariff_rate(c, c.offers[o], b, year) * KG_PER_T
                   * c.price(o, year, s).price * d)
    for (k, b, _j, _tag, year, s), x in _spot_flows(c, plan).items():
        out[s] += (c.delta[year] * spot_tariff_rate(c, k, b, year) * KG_PER_T
                   * c.spot_price(k, year, s) * x)
    return out


def _signed_offers(c: _Ctx, plan: _Plan) -> Iterable[tuple[Offer, int]]:
    """(offer, t_o) of each signed offer that can run in the horizon."""
    for o in c.inst.offers:
        if plan.signed.get(o.id) and c.possible_years(o):
            yield o, c.signing_year(o, plan.start.get(o.id))


def signing_costs(c: _Ctx, plan: _Plan) -> PerScenario:
    """delta_{t_o} S_o z_o (first stage: the same in every scenario)."""
    value = sum(c.discount(t_o) * o.signing_cost for o, t_o in _signed_offers(c, plan))
    return dict.fromkeys(c.probability, value)


def prepayments(c: _Ctx, plan: _Plan) -> PerScenario:
    """delta_{t_o} Pi_o z_o (first stage)."""
    value = sum(c.discount(t_o) * o.prepayment for o, t_o in _signed_offers(c, plan))
    return dict.fromkeys(c.probability, value)


def prepayment_credits(c: _Ctx, plan: _Plan) -> PerScenario:
    """-delta_t c_ots."""
    out = _per(c)
    for (_o, year, s), x in plan.credits.items():
        out[s] -= c.delta[year] * x
    return out


def spot_purchases(c: _Ctx, plan: _Plan) -> PerScenario:
    """delta_t 1000 P_kt x (flows leaving spot markets)."""
    out = _per(c)
    for (k, _b, _j, _tag, year, s), x in _spot_flows(c, plan).items():
        out[s] += c.delta[year] * KG_PER_T * c.spot_price(k, year, s) * x
    return out


def freight(c: _Ctx, plan: _Plan, arcs: Arcs) -> PerScenario:
    """delta_t 1000 F_ij x."""
    out = _per(c)
    for (_b, i, j, _tag, year, s), x in plan.flow.items():
        out[s] += c.delta[year] * KG_PER_T * arcs.get((i, j), 0.0) * x
    return out


def operating_costs(c: _Ctx, plan: _Plan) -> PerScenario:
    """delta_t 1000 c_ft p."""
    out = _per(c)
    for (f, _b, _comb, year, s), p in plan.production.items():
        out[s] += c.delta[year] * KG_PER_T * at(c.facilities[f].opex_per_kg, year) * p
    return out


def resale_credit(c: _Ctx, plan: _Plan) -> PerScenario:
    """-delta_t 1000 P_kappa t (1 - haircut) r."""
    out = _per(c)
    for (_b, k, year, s), r in plan.resale.items():
        out[s] -= c.delta[year] * KG_PER_T * resale_price(c, k, year, s) * r
    return out


def holding_costs(c: _Ctx, plan: _Plan) -> PerScenario:
    """delta_t 1000 H_k h."""
    out = _per(c)
    for (_b, k, year, s), h in plan.stock.items():
        out[s] += (c.delta[year] * KG_PER_T * (c.materials[k].holding_cost_per_kg_year or 0.0)
                   * h)
    return out


def unmet_demand_penalty(c: _Ctx, plan: _Plan) -> PerScenario:
    """delta_t 1000 rho_k u."""
    out = _per(c)
    for (_b, k, year, s), u in plan.unmet.items():
        out[s] += c.delta[year] * KG_PER_T * c.materials[k].unmet_penalty_per_kg * u
    return out


def rule_violation_penalties(c: _Ctx, rows: list[RuleRow]) -> PerScenario:
    """penalty x violation of soft count rules (first stage, in every scenario) plus
    delta_t penalty x violation of each soft row in its scenario."""
    out = _per(c)
    for row in rows:
        if row.rule.hard:
            continue
        cost = (row.rule.penalty_per_unit or 0.0) * row.violation
        if row.year is None:
            for s in out:
                out[s] += cost
        elif row.scenario == EXPECTED:  # violated once, whatever happens
            for s in out:
                out[s] += c.delta[row.year] * cost
        else:
            out[row.scenario] += c.delta[row.year] * cost
    return out


def fiscal_costs(c: _Ctx, plan: _Plan) -> dict[str, float]:
    """Each third party's sum pi_s delta_t 1000 (top-up - upside returned) d (not in the
    objective)."""
    out: dict[str, float] = {o.floor_paid_by: 0.0 for o in c.inst.offers
                             if o.floor_paid_by != "buyer"}
    for (o, _b, year, s), d in plan.delivered.items():
        up = c.price(o, year, s)
        if up.payer:
            out[up.payer] += c.probability[s] * c.delta[year] * KG_PER_T * up.fiscal_per_kg * d
    return out


def scenario_terms(c: _Ctx, plan: _Plan, arcs: Arcs,
                   rows: list[RuleRow]) -> dict[str, PerScenario]:
    """Each registered cost term in each scenario."""
    return {
        "contract_payments": contract_payments(c, plan),
        "volume_rebates": volume_rebates(c, plan),
        "take_or_pay_shortfall": take_or_pay_shortfall(c, plan),
        "tariffs": tariffs(c, plan),
        "signing_costs": signing_costs(c, plan),
        "prepayments": prepayments(c, plan),
        "prepayment_credits": prepayment_credits(c, plan),
        "spot_purchases": spot_purchases(c, plan),
        "freight": freight(c, plan, arcs),
        "operating_costs": operating_costs(c, plan),
        "resale_credit": resale_credit(c, plan),
        "holding_costs": holding_costs(c, plan),
        "unmet_demand_penalty": unmet_demand_penalty(c, plan),
        "rule_violation_penalties": rule_violation_penalties(c, rows),
    }


def expected(c: _Ctx, per: PerScenario) -> float:
    """sum_s pi_s (term in s)."""
    return sum(c.probability[s] * v for s, v in per.items())


def cvar(costs: dict[str, float], probability: dict[str, float], alpha: float) -> float:
    """CVaR_alpha of a discrete cost distribution: the mean of its worst (1 - alpha)
    probability mass (formulation.md, cvar)."""
    tail, left, total = 1.0 - alpha, 1.0 - alpha, 0.0
    for s in sorted(costs, key=lambda x: -costs[x]):
        take = min(probability[s], left)
        total += take * costs[s]
        left -= take
        if left <= 0:
            break
    return total / tail


def risk_cvar(c: _Ctx, per_term: dict[str, PerScenario], weight: float, alpha: float) -> float:
    """lambda CVaR_alpha of the scenario cost C_s = sum of the terms in s."""
    totals = {s: sum(per[s] for per in per_term.values()) for s in c.probability}
    return weight * cvar(totals, c.probability, alpha)


def _flag_text(text: str) -> bool | None:
    low = text.strip().lower()
    if low in ("true", "1", "1.0", "yes"):
        return True
    if low in ("false", "0", "0.0", "no"):
        return False
    return None


@dataclass
class _Reported:
    """costs.csv split by payer: the buyer's terms, the risk term, third parties' costs."""

    buyer: dict[str, float] = field(default_factory=dict)
    risk: float | None = None
    fiscal: dict[str, float] = field(default_factory=dict)


def reported_costs_of(c: _Ctx, t: dict[str, pd.DataFrame]) -> _Reported:
    """costs.csv: buyer rows have payer 'buyer' and in_objective true, `risk_cvar` has payer
    'risk' and is in the objective; the others must be fiscal_floor_support rows named after
    their payer."""
    out = _Reported()
    for pos, r in _rows(t["costs"]):
        where = f"costs.csv row {pos}"
        in_objective = _flag_text(r["in_objective"])
        if in_objective is None:
            c.flag("table", where, 1.0, f"in_objective '{r['in_objective']}' is not true/false")
            continue
        if in_objective and r["term"] == RISK_TERM:
            if out.risk is not None:
                c.flag("table", where, 1.0, f"cost row '{RISK_TERM}' repeated")
            out.risk = (out.risk or 0.0) + r["value"]
            continue
        if in_objective:
            if r["payer"] not in ("buyer", ""):
                c.flag("table", where, 1.0, f"term '{r['term']}' in the objective is paid by "
                       f"'{r['payer']}', not the buyer")
            target, name = out.buyer, r["term"]
        else:
            if r["term"] != FISCAL_TERM or r["payer"] in ("buyer", "", "risk"):
                c.flag("table", where, 1.0, f"only '{FISCAL_TERM}' rows of a third party are "
                       f"outside the objective, not '{r['term']}' paid by '{r['payer']}'")
                continue
            target, name = out.fiscal, r["payer"]
        if name in target:
            c.flag("table", where, 1.0, f"cost row '{r['term']}' ({r['payer']}) repeated")
        target[name] = target.get(name, 0.0) + r["value"]
    return out


def check_cost_terms(c: _Ctx, terms: dict[str, float], reported: dict[str, float]) -> None:
    """cost_term: each reported term equals its recomputation; no unknown terms."""
    for name, value in reported.items():
        if name not in terms and abs(value) > c.tol:
            c.flag("cost_term", name, abs(value), f"unknown cost term '{name}'")
    for name, value in terms.items():
        c.equal("cost_term", name, reported.get(name, 0.0), value, "reported vs recomputed")


def check_scenario_costs(c: _Ctx, t: dict[str, pd.DataFrame],
                         per_term: dict[str, PerScenario]) -> None:
    """scenario_costs.csv: each (scenario, term) is the term recomputed in that scenario, with
    the scenario's probability."""
    seen = set()
    for pos, r in _rows(t["scenario_costs"]):
        where = f"scenario_costs.csv row {pos}"
        key = (r["scenario"], r["term"])
        if key in seen:
            c.flag("table", where, 1.0, f"row {_key(*key)} repeated")
        seen.add(key)
        c.equal("table", where, r["probability"], c.probability[r["scenario"]], "probability")
        if r["term"] not in per_term:
            if abs(r["value"]) > c.tol:
                c.flag("scenario_cost", _key(*key), abs(r["value"]),
                       f"unknown cost term '{r['term']}'")
            continue
        c.equal("scenario_cost", _key(*key), r["value"], per_term[r["term"]][r["scenario"]],
                "reported vs recomputed")
    if seen:
        for term, per in per_term.items():
            for s, value in per.items():
                if (s, term) not in seen and abs(value) > c.slack(0.0):
                    c.flag("scenario_cost", _key(s, term), abs(value),
                           f"no row for {value:.10g}")


def check_fiscal_costs(c: _Ctx, fiscal: dict[str, float], reported: dict[str, float]) -> None:
    """fiscal_cost: each third party's reported fiscal_floor_support equals its
    recomputation; no payer that pays no floor."""
    for payer, value in reported.items():
        if payer not in fiscal and abs(value) > c.tol:
            c.flag("fiscal_cost", payer, abs(value), f"'{payer}' pays no floor in the instance")
    for payer, value in fiscal.items():
        c.equal("fiscal_cost", payer, reported.get(payer, 0.0), value,
                f"{FISCAL_TERM} of '{payer}': reported vs recomputed")


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
    cvar_weight: float | None = None,
    cvar_alpha: float | None = None,
) -> CheckReport:
    """Check result tables against the instance; see the module docstring.

    `reported_costs` (the buyer's terms) defaults to the `costs` table; None for the objective
    skips that check. Third parties' fiscal costs are always read from the `costs` table.
    `cvar_weight` / `cvar_alpha` are the solve options of the risk term; without them a
    reported `risk_cvar` is taken as it is (it cannot be recomputed).
    """
    c = _Ctx(inst, tol)
    t = {name: _normalize_table(c, name, tables.get(name)) for name in TABLE_COLUMNS}
    plan = _read_plan(c, t)
    arcs = allowed_arcs(inst)
    # first stage: offers, starts, volumes, tiers; then deliveries, payments, credits
    check_contract_start(c, t, plan)
    check_contract_volume(c, plan)
    check_take_or_pay(c, plan)
    check_volume_tiers(c, t, plan)
    check_prepayment_credit(c, plan)
    check_contract_rows(c, t, plan)
    check_credit_rows(c, t)
    # the network
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
    # demand, origin, rules
    arrived = deliveries(c, plan)
    check_resale_and_stock(c, t)
    check_demand_balance(c, t, plan, arrived)
    check_origin_table(c, t, arrived)
    rows = check_rules(c, t, plan, arrived)
    # money
    per_term = scenario_terms(c, plan, arcs, rows)
    terms = {name: expected(c, per) for name, per in per_term.items()}
    check_scenario_costs(c, t, per_term)
    reported = reported_costs_of(c, t)
    check_cost_terms(c, terms, reported.buyer if reported_costs is None else reported_costs)
    if cvar_weight is not None and cvar_alpha is not None and cvar_weight > 0:
        terms[RISK_TERM] = risk_cvar(c, per_term, cvar_weight, cvar_alpha)
        c.equal("cost_term", RISK_TERM, reported.risk or 0.0, terms[RISK_TERM],
                f"reported vs recomputed {cvar_weight:g} x CVaR_{cvar_alpha:g}")
    elif reported.risk is not None:
        if cvar_weight == 0:
            c.at_most("cost_term", RISK_TERM, abs(reported.risk), 0.0, "risk term without risk")
        terms[RISK_TERM] = reported.risk  # lambda and alpha unknown: taken as reported
    fiscal = fiscal_costs(c, plan)
    check_fiscal_costs(c, fiscal, reported.fiscal)
    objective = sum(terms.values())
    if reported_objective is not None:
        check_objective(c, objective, reported_objective)
    totals = {s: sum(per[s] for per in per_term.values()) for s in c.probability}
    return CheckReport(c.violations, objective, terms, fiscal, totals)


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


def check_folder(inst: Instance, out_dir: Path, tol: float = 1e-6) -> CheckReport:
    """Check an output folder (result CSVs + summary.json, whose options give the risk
    term's weight and alpha) against the instance."""
    out_dir = Path(out_dir)
    tables = read_tables(out_dir)
    summary_path = out_dir / "summary.json"
    summary: dict = {}
    if summary_path.exists():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    options = summary.get("options") or {}
    report = check_tables(inst, tables, summary.get("objective"), None, tol,
                          options.get("cvar_weight"), options.get("cvar_alpha"))
    if not summary_path.exists():
        report.violations.append(Violation("table", "summary.json", 1.0, "summary.json missing"))
    return report
