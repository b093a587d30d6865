"""What every check shares: the report types, the tolerances and the instance lookups.

Owns `Violation` and `CheckReport` (the public result), `UnitPrice` (one offer's unit price in
a year and scenario; computed by `offtake.check.prices`), and `Ctx`: the instance indexed by
ID, the violation list with its tolerance tests (`at_most`, `at_least`, `equal`), offer
windows and running years, and each scenario's demand, capacity, spot prices, availability
and index paths. Also the small helpers the table checks share (`index_of`, `numbered`,
`same_text`). Imports only the schema, `network.at` and `offtake.check.tags`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from offtake.check.tags import feed_steps, step_at, tag_text
from offtake.domain.network import at
from offtake.domain.registry import FAMILIES, RISK_FAMILIES, implementation_table
from offtake.domain.schema import Instance, Offer

FAMILY_CHECKS, family_check = implementation_table(
    "constraint family", lambda: FAMILIES + RISK_FAMILIES)
"""Checker function of each registered constraint family that is not a rule (filled by
`@family_check("<family>")`; the rule kinds have `check.rules.RULE_CHECKS`). The checker calls
them in its own order; the table ties each family of formulation.md to its check."""

KG_PER_T = 1000.0


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
    status: str = "checked"
    """"checked"; or why the tables were not checked: "no_plan" (the run found none),
    "unreadable" (summary.json damaged), "other_instance" (written for another instance),
    "incomplete" (the run that wrote it did not finish)."""
    note: str = ""
    """One line for a folder that was not checked."""

    @property
    def ok(self) -> bool:
        return not self.violations

    def of(self, constraint: str) -> list[Violation]:
        """The violations of one constraint family / component."""
        return [v for v in self.violations if v.constraint == constraint]


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


# --- context: instance lookups, tolerances, the violation list -------------------------------
@dataclass
class Ctx:
    """One check's context: the instance indexed by ID, the tolerance and the violations
    found so far."""

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
        self.build_options = {j.id: (j, f) for f in inst.facilities for j in f.builds}
        """Build option id -> (the option, its facility)."""
        self.sender_material = {f.id: f.product for f in inst.facilities}
        self.sender_material.update({k.id: k.material for k in inst.spot_markets})
        self.stockpiles = {sp.id: sp for sp in inst.stockpiles}
        self.sender_material.update({sp.id: sp.material for sp in inst.stockpiles})
        self.base_year = inst.horizon.base_year or inst.horizon.first_year
        self.delta = {t: self.discount(t) for t in self.years}
        self.groups = {g.id: set(g.members) for g in inst.country_groups}
        self.own_tag = {f.id: tag_text(feed_steps(f.feed_origin) | {step_at(f.stage, f.country)})
                        for f in inst.facilities}
        """Own-feed tag of each facility: feed_origin plus its own (stage, country)."""
        self.spot_tag = {k.id: tag_text(feed_steps(k.feed_origin)) for k in inst.spot_markets}
        """Tag of each spot market's material: its feed_origin."""
        self.scenarios = {s.id: s for s in inst.scenarios}
        self.unit_prices: dict[tuple[str, int, str], UnitPrice] = {}
        """Cache of `offtake.check.prices.offer_price`: (offer, year, scenario) -> price."""
        self.tariff_rates: dict[tuple[str, str, str, int], float] = {}
        """Cache of `offtake.check.prices.stacked_tariff_rate`: (seller country, buyer,
        material, year) -> rate."""

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
        facility's country among `countries` and the members of `groups`, when any). Built
        capacity is added by `offtake.check.builds.built_capacity`."""
        return at(self.facilities[f].capacity_t, year) * self.capacity_factor(f, year, s)

    def capacity_factor(self, f: str, year: int, s: str) -> float:
        """kappa_fts: the product of the scenario's capacity changes that match f in year."""
        value = 1.0
        for ch in self._capacity_changes(f, year, s):
            value *= ch.multiplier
        return value

    def _capacity_changes(self, f: str, year: int, s: str) -> list[Any]:
        fac = self.facilities[f]
        out = []
        for ch in self.scenarios[s].capacity:
            where = self.countries(ch.groups, ch.countries)
            if (_from(ch, year) and (ch.facilities is None or f in ch.facilities)
                    and (not where or fac.country in where)
                    and (ch.stages is None or str(fac.stage) in {str(x) for x in ch.stages})):
                out.append(ch)
        return out

    def curtailment(self, o: Offer, year: int, s: str) -> tuple[float, float]:
        """(a_ots, g_ots) of formulation.md's force_majeure: the share of the contracted
        volume the supplier delivers, min(1, kappa) over every matching capacity change, and
        the share the supplier owes damages on, max(0, min(1, kappa_cov) - a), kappa_cov over
        the changes whose cause the offer's force-majeure clause covers."""
        kappa = kappa_cov = 1.0
        for ch in self._capacity_changes(o.supplier, year, s):
            kappa *= ch.multiplier
            if ch.cause in o.force_majeure:
                kappa_cov *= ch.multiplier
        a = min(1.0, kappa)
        return a, max(0.0, min(1.0, kappa_cov) - a)

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


def _from(change: Any, year: int) -> bool:
    """A scenario change applies from its from_year through its to_year (every year without
    them)."""
    return ((change.from_year is None or year >= change.from_year)
            and (change.to_year is None or year <= change.to_year))


# --- helpers of the table checks --------------------------------------------------------------
def index_of(*parts: object) -> str:
    """The index of a violation: its parts joined by commas."""
    return ",".join(str(p) for p in parts)


def numbered(df: pd.DataFrame) -> Iterable[tuple[int, dict]]:
    """(1-based row number, row as a dict) for each row."""
    return enumerate(df.to_dict("records"), start=1)


def same_text(c: Ctx, where: str, col: str, got: str, want: str) -> None:
    """A text cell equals what the instance says (else a `table` violation)."""
    if got != want:
        c.flag("table", where, 1.0, f"{col} is '{got}', expected '{want}'")
