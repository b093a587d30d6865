"""Whole-instance checks that a single field cannot make on its own.

`check_instance` returns every finding at once (errors and warnings): unknown country codes,
duplicate IDs, references to unknown IDs (with the nearest known ID), time series that do not
match the horizon or contract window, inverted windows, min above max, probabilities that do
not sum to one, mixed currencies, implausible prices, cycles in the processing chain, demand
that no supplier can serve, orphan suppliers and empty instances.

It works on an `Instance` or on any object with the same section attributes (the loader passes
the parts of a file that parsed, so that all problems are reported in one run). Pure Python:
no Pyomo, nothing downstream of the schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pycountry

from offtake.domain.builds import start_year
from offtake.domain.findings import Finding, nearest
from offtake.domain.network import (
    active_nodes,
    at,
    effective_arcs,
    find_cycle,
    node_inputs,
    node_products,
)
from offtake.domain.stockpiles import check_stockpiles

PROBABILITY_TOL = 1e-9
_NUMERIC_LOOKING = re.compile(r"^[0-9]+([eE][0-9]+)?$|^[0-9]+\.[0-9]+$")


@lru_cache(maxsize=1)
def iso_countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


class _Collector:
    def __init__(self, unparsed_ids: frozenset[str] = frozenset()) -> None:
        self.items: list[Finding] = []
        self.unparsed_ids = unparsed_ids
        """IDs of items that failed field validation: references to them are not reported."""

    def error(self, code: str, loc: str, msg: str, hint: str = "") -> None:
        self.items.append(Finding(code, "error", loc, msg, hint))

    def warn(self, code: str, loc: str, msg: str, hint: str = "") -> None:
        self.items.append(Finding(code, "warning", loc, msg, hint))


def check_instance(inst: Any, partial: bool = False) -> list[Finding]:
    """Every whole-instance finding for `inst` (see module docstring).

    `partial`: some items failed field validation and are missing, so checks of the network
    as a whole (cycles, unservable demand, emptiness) would report false problems: skip them.
    """
    c = _Collector(frozenset(getattr(inst, "unparsed_ids", ())))
    _check_ids(inst, c)
    _check_countries(inst, c)
    _check_references(inst, c)
    _check_years(inst, c)
    _check_offers(inst, c)
    _check_builds(inst, c)
    _check_scenarios(inst, c)
    check_stockpiles(inst, c)
    _check_prices(inst, c)
    _check_magnitudes(inst, c)
    if not partial and not any(f.severity == "error" for f in c.items):
        _check_network(inst, c)
    return c.items


def check_references(inst: Any, unparsed_ids: Iterable[str] = ()) -> list[Finding]:
    """Only the reference checks of `check_instance` (unknown IDs with the nearest known
    one); references to `unparsed_ids` are not reported. The loader runs them on the items
    that failed field validation, with the failing fields left out, so that a row with a bad
    number and an unknown supplier reports both."""
    c = _Collector(frozenset(unparsed_ids))
    _check_references(inst, c)
    return c.items


# --- identifiers -----------------------------------------------------------------------------
def _check_ids(inst: Any, c: _Collector) -> None:
    namespaces = {
        "materials": inst.materials,
        "country_groups": inst.country_groups,
        # offers and build options: one namespace (--force / --forbid name either)
        "offers and build options": [("offers", i, x) for i, x in enumerate(inst.offers)]
        + [(f"facilities[{i}].builds", k, j) for i, f in enumerate(inst.facilities)
           for k, j in enumerate(getattr(f, "builds", ()))],
        "rules": inst.rules,
        "scenarios": inst.scenarios,
        "price_indices": inst.price_indices,
        "tariffs": inst.tariffs,
        # facilities, buyers and spot markets are all nodes of the network: one namespace
        "nodes": [("facilities", i, x) for i, x in enumerate(inst.facilities)]
        + [("buyers", i, x) for i, x in enumerate(inst.buyers)]
        + [("spot_markets", i, x) for i, x in enumerate(inst.spot_markets)]
        + [("stockpiles", i, x) for i, x in enumerate(getattr(inst, "stockpiles", None) or [])],
    }
    for space, items in namespaces.items():
        rows = items if space in ("nodes", "offers and build options") else [
            (space, i, x) for i, x in enumerate(items)]
        seen: dict[str, str] = {}
        for section, i, x in rows:
            loc = f"{section}[{i}].id"
            key = x.id.lower()
            if key in seen:
                same = ("the same ID" if seen[key].endswith(f"'{x.id}'")
                        else "an ID differing only in case")
                c.error("duplicate_id", loc, f"'{x.id}' repeats {same} at {seen[key]}",
                        "IDs must be unique (case-insensitive) within " + space)
            else:
                seen[key] = f"{loc} '{x.id}'"
            if _NUMERIC_LOOKING.match(x.id):
                c.warn("numeric_looking_id", loc, f"ID '{x.id}' looks like a number",
                       "spreadsheets turn such IDs into numbers (007 -> 7, 1E5 -> 100000); "
                       "prefer a letter prefix")


COUNTRY_ALIASES = {"UK": "GB", "EL": "GR"}
"""Codes in common use that ISO 3166-1 spells otherwise (the EU writes UK and EL). A nearest
code by spelling would mislead: every two-letter code is close to many others."""


WORLD_MAGNET_T = 310_000.0
"""Global rare-earth permanent magnet output, t/yr, 2025 [S82 of the team's fact sheet]; world
mined rare-earth oxide is about 390,000 t (2025e) [S91]."""
FAR_ABOVE_WORLD = 500_000.0
"""A buyer's demand or a plant's capacity above this in one year is beyond the whole world's
magnet (and oxide) output: almost surely kilograms typed as tonnes."""
TINY_T = 1e-3
"""A positive quantity below 1 kg is almost surely a unit slip, and sits at the solver's
feasibility tolerance once costs are in millions."""
MAX_RANGE = 1e12
"""Largest money figure over smallest positive tonnage beyond which HiGHS's tolerances
(about 1e-7 relative) can no longer tell the small quantity from zero."""


def _check_magnitudes(inst: Any, c: _Collector) -> None:
    """Warnings for quantities far outside this market's sourced ranges and for a numeric
    range the solver cannot resolve (both are usually unit slips)."""
    years = inst.horizon.years
    tonnes: list[tuple[float, str, str]] = []  # (t, location, what it is)
    for i, b in enumerate(inst.buyers):
        for m, series in b.demand_t.items():
            for y in years:
                tonnes.append((at(series, y), f"buyers[{i}].demand_t.{m}.{y}",
                               f"demand of {b.id} for {m} in {y}"))
    for i, f in enumerate(inst.facilities):
        for y in years:
            tonnes.append((at(f.capacity_t, y), f"facilities[{i}].capacity_t.{y}",
                           f"capacity of {f.id} in {y}"))
    seen: set[tuple[str, str]] = set()  # one warning of a kind per series
    for x, loc, _ in tonnes:
        base = loc.rsplit(".", 1)[0]
        if x > FAR_ABOVE_WORLD and (base, "far") not in seen:
            seen.add((base, "far"))
            c.warn("far_above_world_output", loc,
                   f"{x:,.0f} t in a year is beyond the world's whole magnet output (about "
                   f"{WORLD_MAGNET_T:,.0f} t in 2025)", "quantities are in tonnes: was it kg?")
        elif 0 < x < TINY_T and (base, "tiny") not in seen:
            seen.add((base, "tiny"))
            c.warn("tiny_quantity", loc, f"{x:g} t is less than 1 kg",
                   "quantities are in tonnes (1 kg = 0.001 t)")
    money = [(o.signing_cost, f"offers[{i}].signing_cost") for i, o in enumerate(inst.offers)]
    money += [(o.prepayment, f"offers[{i}].prepayment") for i, o in enumerate(inst.offers)]
    positive = [(x, what) for x, _, what in tonnes if x > 0]
    if positive and money:
        small, small_what = min(positive)
        big, big_at = max(money)
        if big > 0 and big / small > MAX_RANGE:
            c.warn("numeric_range", big_at,
                   f"{big:,.0f} against {small:g} t ({small_what}): a range of "
                   f"{big / small:.1e}, beyond what the solver resolves (about {MAX_RANGE:.0e})",
                   "check the units of both; the solve may treat the small quantity as zero")


def _check_countries(inst: Any, c: _Collector) -> None:
    iso = iso_countries()

    def one(code: str, loc: str) -> None:
        if code not in iso:
            alias = COUNTRY_ALIASES.get(code)
            c.error("unknown_country", loc, f"'{code}' is not an ISO 3166-1 alpha-2 code",
                    f"did you mean '{alias}'?" if alias else
                    "use two-letter ISO 3166-1 codes, e.g. US, CN, AU, GB, JP, KR, DE")

    for i, f in enumerate(inst.facilities):
        one(f.country, f"facilities[{i}].country")
        for stage, code in f.feed_origin.items():
            one(code, f"facilities[{i}].feed_origin.{stage.value}")
    for i, b in enumerate(inst.buyers):
        one(b.country, f"buyers[{i}].country")
    for i, k in enumerate(inst.spot_markets):
        one(k.origin, f"spot_markets[{i}].origin")
    for i, g in enumerate(inst.country_groups):
        for j, code in enumerate(g.members):
            one(code, f"country_groups[{i}].members[{j}]")
    for i, t in enumerate(inst.tariffs):
        for field in ("origins", "destinations"):
            for j, code in enumerate(getattr(t, field)):
                one(code, f"tariffs[{i}].{field}[{j}]")


# --- references ------------------------------------------------------------------------------
def _ref(c: _Collector, value: str, known: Iterable[str], loc: str, what: str) -> bool:
    known = list(known)
    if value in known or value in c.unparsed_ids:
        return True
    c.error("unknown_reference", loc, f"unknown {what} '{value}'", nearest(value, known))
    return False


@dataclass(frozen=True)
class _Known:
    """The IDs that references may name, by namespace."""

    materials: list[str]
    facilities: dict[str, Any]
    buyers: list[str]
    spot_markets: list[str]
    groups: list[str]
    indices: list[str]
    scenarios: list[str]

    @classmethod
    def of(cls, inst: Any) -> _Known:
        return cls([m.id for m in inst.materials], {f.id: f for f in inst.facilities},
                   [b.id for b in inst.buyers], [k.id for k in inst.spot_markets],
                   [g.id for g in inst.country_groups], [x.id for x in inst.price_indices],
                   [x.id for x in inst.scenarios])


def _check_references(inst: Any, c: _Collector) -> None:
    known = _Known.of(inst)
    _check_material_refs(inst, c, known)
    _check_offer_refs(inst, c, known)
    _check_arc_refs(inst, c, known)
    _check_price_and_tariff_refs(inst, c, known)
    _check_scenario_refs(inst, c, known)
    _check_rule_refs(inst, c, known)


def _check_material_refs(inst: Any, c: _Collector, known: _Known) -> None:
    """Products, recipe inputs, demands and spot materials name known materials."""
    mats = known.materials
    for i, f in enumerate(inst.facilities):
        _ref(c, f.product, mats, f"facilities[{i}].product", "material")
        for m in f.recipe:
            _ref(c, m, mats, f"facilities[{i}].recipe.{m}", "material")
        if f.product in f.recipe and len(f.recipe) > 1:
            c.warn("recipe_self_input", f"facilities[{i}].recipe",
                   f"'{f.id}' consumes its own product '{f.product}' among other inputs")
    for i, b in enumerate(inst.buyers):
        for m in b.demand_t:
            _ref(c, m, mats, f"buyers[{i}].demand_t.{m}", "material")
    for i, k in enumerate(inst.spot_markets):
        _ref(c, k.material, mats, f"spot_markets[{i}].material", "material")


def _check_offer_refs(inst: Any, c: _Collector, known: _Known) -> None:
    """An offer's supplier, material (the supplier's product) and eligible buyers."""
    facs = known.facilities
    for i, o in enumerate(inst.offers):
        ok = _ref(c, o.supplier, facs, f"offers[{i}].supplier", "facility")
        found = _ref(c, o.material, known.materials, f"offers[{i}].material", "material") and ok
        if found and o.supplier in facs and facs[o.supplier].product != o.material:
            c.error("offer_material_mismatch", f"offers[{i}].material",
                    f"offer '{o.id}' sells '{o.material}' but facility '{o.supplier}' "
                    f"makes '{facs[o.supplier].product}'",
                    "an offer sells the product of its supplier facility")
        for j, b in enumerate(o.buyers or []):
            _ref(c, b, known.buyers, f"offers[{i}].buyers[{j}]", "buyer")


def _check_arc_refs(inst: Any, c: _Collector, known: _Known) -> None:
    senders = list(known.facilities) + known.spot_markets
    receivers = list(known.facilities) + known.buyers
    for i, a in enumerate(inst.network.arcs):
        _ref(c, a.from_, senders, f"network.arcs[{i}].from", "facility or spot market")
        _ref(c, a.to, receivers, f"network.arcs[{i}].to", "facility or buyer")


def _check_price_and_tariff_refs(inst: Any, c: _Collector, known: _Known) -> None:
    """Offers' price indices, the indices' materials and scenario paths, tariffs' groups and
    materials."""
    for i, o in enumerate(inst.offers):
        if o.index is not None:
            _ref(c, o.index, known.indices, f"offers[{i}].index", "price index")
    for i, x in enumerate(inst.price_indices):
        if x.material is not None:
            _ref(c, x.material, known.materials, f"price_indices[{i}].material", "material")
        for sc in x.by_scenario:
            _ref(c, sc, known.scenarios, f"price_indices[{i}].by_scenario.{sc}", "scenario")
    for i, t in enumerate(inst.tariffs):
        for field in ("origin_groups", "destination_groups"):
            for j, g in enumerate(getattr(t, field)):
                _ref(c, g, known.groups, f"tariffs[{i}].{field}[{j}]", "country group")
        for j, m in enumerate(t.materials or []):
            _ref(c, m, known.materials, f"tariffs[{i}].materials[{j}]", "material")


def _check_scenario_refs(inst: Any, c: _Collector, known: _Known) -> None:
    """What each scenario's index paths and capacity, demand and spot changes name."""
    for i, sc in enumerate(inst.scenarios):
        loc = f"scenarios[{i}]"
        for x in sc.index_paths:
            _ref(c, x, known.indices, f"{loc}.index_paths.{x}", "price index")
        for j, ch in enumerate(sc.capacity):
            for f in ch.facilities or []:
                _ref(c, f, known.facilities, f"{loc}.capacity[{j}].facilities", "facility")
            for g in ch.groups:
                _ref(c, g, known.groups, f"{loc}.capacity[{j}].groups", "country group")
        for j, ch in enumerate(sc.demand):
            for b in ch.buyers or []:
                _ref(c, b, known.buyers, f"{loc}.demand[{j}].buyers", "buyer")
            for m in ch.materials or []:
                _ref(c, m, known.materials, f"{loc}.demand[{j}].materials", "material")
        for j, ch in enumerate(sc.spot):
            for k in ch.markets or []:
                _ref(c, k, known.spot_markets, f"{loc}.spot[{j}].markets", "spot market")


def _check_rule_refs(inst: Any, c: _Collector, known: _Known) -> None:
    """A rule's scope, country groups and facilities; a buyer class no buyer has."""
    for i, r in enumerate(inst.rules):
        for j, b in enumerate(r.scope.buyers or []):
            _ref(c, b, known.buyers, f"rules[{i}].scope.buyers[{j}]", "buyer")
        for j, m in enumerate(r.scope.materials or []):
            _ref(c, m, known.materials, f"rules[{i}].scope.materials[{j}]", "material")
        for field in ("groups", "exempt_groups"):
            for j, g in enumerate(getattr(r, field, [])):
                _ref(c, g, known.groups, f"rules[{i}].{field}[{j}]", "country group")
        for j, f in enumerate(getattr(r, "facilities", [])):
            _ref(c, f, known.facilities, f"rules[{i}].facilities[{j}]", "facility")
        if r.kind == "bankability":
            builds = {f.id for f in inst.facilities if getattr(f, "builds", ())}
            for j, f in enumerate(r.facilities):
                if f in known.facilities and f not in builds:
                    c.error("bankability_without_build", f"rules[{i}].facilities[{j}]",
                            f"rule '{r.id}': facility '{f}' has no build option, so nothing "
                            "is financed there", "list facilities with builds (candidate "
                            "plants or expansions)")
        if getattr(r, "buyer_class", None) is not None and r.buyer_class not in {
                b.buyer_class for b in inst.buyers}:
            c.warn("unused_buyer_class", f"rules[{i}].buyer_class",
                   f"no buyer has class '{r.buyer_class}': rule '{r.id}' never binds",
                   f"classes present: {sorted({b.buyer_class for b in inst.buyers})}")


# --- years -----------------------------------------------------------------------------------
def _series_years(c: _Collector, series: Any, wanted: list[int], loc: str, what: str) -> None:
    if not isinstance(series, Mapping):
        return
    got = set(series)
    missing = sorted(set(wanted) - got)
    extra = sorted(got - set(wanted))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing years {missing}")
        if extra:
            parts.append(f"extra years {extra}")
        c.error("misaligned_years", loc, f"{what}: {'; '.join(parts)}",
                f"give one value per year {wanted[0]}-{wanted[-1]}, or a single constant")


def _check_years(inst: Any, c: _Collector) -> None:
    years = inst.horizon.years
    h = inst.horizon
    if h.base_year is not None and not (h.first_year <= h.base_year <= h.last_year):
        c.warn("base_year_outside_horizon", "horizon.base_year",
               f"base year {h.base_year} lies outside {h.first_year}-{h.last_year}")
    for i, f in enumerate(inst.facilities):
        _series_years(c, f.capacity_t, years, f"facilities[{i}].capacity_t", "capacity")
        _series_years(c, f.opex_per_kg, years, f"facilities[{i}].opex_per_kg", "opex")
    for i, b in enumerate(inst.buyers):
        for m, s in b.demand_t.items():
            _series_years(c, s, years, f"buyers[{i}].demand_t.{m}", "demand")
    for i, k in enumerate(inst.spot_markets):
        _series_years(c, k.price_per_kg, years, f"spot_markets[{i}].price_per_kg", "price")
        _series_years(c, k.availability_t, years, f"spot_markets[{i}].availability_t",
                      "availability")
    for i, sc in enumerate(inst.scenarios):
        for x, series in sc.index_paths.items():
            _series_years(c, series, years, f"scenarios[{i}].index_paths.{x}", "index path")
    for i, x in enumerate(inst.price_indices):
        _series_years(c, x.price_per_kg, years, f"price_indices[{i}].price_per_kg", "index")
        for sc, series in x.by_scenario.items():
            _series_years(c, series, years, f"price_indices[{i}].by_scenario.{sc}",
                          "index path")
    for i, t in enumerate(inst.tariffs):
        if isinstance(t.rate, Mapping):
            for y in t.rate:
                if y not in years:
                    c.error("year_outside_horizon", f"tariffs[{i}].rate.{y}",
                            f"year {y} is outside the horizon {years[0]}-{years[-1]}")
    for i, r in enumerate(inst.rules):
        for j, y in enumerate(r.scope.years or []):
            if y not in years:
                c.error("year_outside_horizon", f"rules[{i}].scope.years[{j}]",
                        f"year {y} is outside the horizon {years[0]}-{years[-1]}")
        share = getattr(r, "min_share", None)
        if isinstance(share, Mapping):
            _series_years(c, share, r.scope.years or years, f"rules[{i}].min_share",
                          "share ramp over the rule's years")
        cap = getattr(r, "max_kg_per_kg", None)
        if isinstance(cap, Mapping):
            _series_years(c, cap, r.scope.years or years, f"rules[{i}].max_kg_per_kg",
                          "intensity cap over the rule's years")
    carbon = getattr(inst, "carbon_price", None)
    if carbon is not None and isinstance(carbon.per_t_co2e, Mapping):
        for y in carbon.per_t_co2e:
            if y not in years:
                c.error("year_outside_horizon", f"carbon_price.per_t_co2e.{y}",
                        f"year {y} is outside the horizon {years[0]}-{years[-1]}")


def _check_offers(inst: Any, c: _Collector) -> None:
    years = inst.horizon.years
    currency = getattr(inst.meta, "currency", None) if inst.meta is not None else None
    for i, o in enumerate(inst.offers):
        loc = f"offers[{i}]"
        if o.last_year < o.first_year:
            c.error("inverted_window", f"{loc}.last_year",
                    f"offer '{o.id}' ends ({o.last_year}) before it starts ({o.first_year})")
            continue
        window = list(range(o.first_year, o.last_year + 1))
        _series_years(c, o.price_per_kg, window, f"{loc}.price_per_kg",
                      f"price over the contract window {o.first_year}-{o.last_year}")
        for j, y in enumerate(o.start_years or []):
            if not (o.first_year <= y <= o.last_year and y in years):
                c.error("start_outside_window", f"{loc}.start_years[{j}]",
                        f"offer '{o.id}' cannot start in {y}: outside its window "
                        f"{o.first_year}-{o.last_year} or the horizon")
        inside = [y for y in window if y in years]
        if not inside and o.decision == "forced":
            c.error("forced_offer_outside_horizon", f"{loc}.decision",
                    f"offer '{o.id}' is forced, but its window {o.first_year}-{o.last_year} "
                    f"lies wholly outside the horizon {years[0]}-{years[-1]}: it cannot be "
                    "signed", "set decision: free, or extend the horizon")
        elif not inside:
            c.warn("window_outside_horizon", loc,
                   f"offer '{o.id}' ({o.first_year}-{o.last_year}) lies wholly outside the "
                   f"horizon {years[0]}-{years[-1]}; it cannot be signed")
        elif len(inside) < len(window):
            c.warn("window_clipped", loc,
                   f"offer '{o.id}' runs {o.first_year}-{o.last_year}; only {inside[0]}-"
                   f"{inside[-1]} fall inside the horizon and are modelled")
        if o.min_t_per_year > o.max_t_per_year:
            c.error("min_above_max", f"{loc}.min_t_per_year",
                    f"offer '{o.id}': min {o.min_t_per_year:g} t/yr > max "
                    f"{o.max_t_per_year:g} t/yr")
        if o.currency is not None and currency is not None and o.currency != currency:
            c.error("mixed_currency", f"{loc}.currency",
                    f"offer '{o.id}' is in {o.currency}, the instance in {currency}",
                    f"convert to {currency} at the instance's price year")


PAYER_WORDS = {"buyer": "buyers", "buyers": "buyers", "consortium": "consortium",
               "supplier": "supplier", "suppliers": "supplier"}
"""Spellings of the reserved payers of a build cost, to the reserved word."""


def _check_builds(inst: Any, c: _Collector) -> None:
    """Candidates and build options: a candidate has build options and no capacity of its
    own; each option starts within the horizon, requires another option of its facility (no
    cycle), and names its payer without a near-miss of a reserved word."""
    years = inst.horizon.years
    for i, f in enumerate(inst.facilities):
        builds = list(getattr(f, "builds", ()))
        loc = f"facilities[{i}]"
        if getattr(f, "candidate", False):
            if not builds:
                c.error("candidate_without_build", f"{loc}.candidate",
                        f"candidate plant '{f.id}' has no build option: it can never exist",
                        "add builds: [{id, nameplate_t, ...}], or set candidate: false")
            if any(at(f.capacity_t, y) > 0 for y in years):
                c.error("candidate_with_capacity", f"{loc}.capacity_t",
                        f"candidate plant '{f.id}' has capacity before it is built",
                        "set capacity_t: 0 and give the plant's capacity as "
                        "builds[].nameplate_t")
        ids = [j.id for j in builds]
        for k, j in enumerate(builds):
            where = f"{loc}.builds[{k}]"
            start = start_year(j, years[0])
            if start > years[-1]:
                field = "lead_time_years" if j.earliest_year is None or (
                    j.earliest_year < start) else "earliest_year"
                c.error("build_after_horizon", f"{where}.{field}",
                        f"build option '{j.id}' of '{f.id}' could operate from {start} at the "
                        f"earliest, after the horizon's last year {years[-1]}",
                        "bring earliest_year forward, shorten lead_time_years or extend "
                        "the horizon")
            elif j.earliest_year is not None and j.earliest_year < start:
                c.warn("build_start_delayed", f"{where}.earliest_year",
                       f"build option '{j.id}' cannot operate in {j.earliest_year}: with a "
                       f"lead time of {j.lead_time_years} year(s) from {years[0]} it starts "
                       f"in {start}")
            if j.requires is not None:
                if j.requires == j.id:
                    c.error("build_requires_itself", f"{where}.requires",
                            f"build option '{j.id}' requires itself")
                else:
                    _ref(c, j.requires, ids, f"{where}.requires",
                         f"build option of facility '{f.id}'")
            word = PAYER_WORDS.get(j.paid_by.strip().lower())
            if word is not None and j.paid_by != word:
                c.error("ambiguous_payer", f"{where}.paid_by",
                        f"paid_by '{j.paid_by}' is neither a reserved payer nor clearly a "
                        "government's name", f"write '{word}'")
        _check_build_chain(c, loc, builds)


def _check_build_chain(c: _Collector, loc: str, builds: list[Any]) -> None:
    """`requires` links among one facility's options form no cycle; a forced option does not
    require a forbidden one."""
    by_id = {j.id: j for j in builds}
    for k, j in enumerate(builds):
        seen, at_ = {j.id}, j
        while at_.requires in by_id and at_.requires != at_.id:
            at_ = by_id[at_.requires]
            if at_.id in seen:
                c.error("build_requires_cycle", f"{loc}.builds[{k}].requires",
                        f"build option '{j.id}' requires a chain that leads back to itself")
                break
            seen.add(at_.id)
            if j.decision == "forced" and at_.decision == "forbidden":
                c.error("forced_build_requires_forbidden", f"{loc}.builds[{k}].decision",
                        f"build option '{j.id}' is forced but requires '{at_.id}', which is "
                        "forbidden", "free one of the two decisions")


def _check_scenarios(inst: Any, c: _Collector) -> None:
    if not inst.scenarios:
        if "scenarios" not in getattr(inst, "failed_sections", ()):  # else already reported
            c.error("no_scenario", "scenarios", "at least one scenario is needed")
        return
    total = sum(s.probability for s in inst.scenarios)
    if abs(total - 1.0) > PROBABILITY_TOL:
        c.error("probabilities_not_one", "scenarios",
                f"scenario probabilities sum to {total:.12g}, not 1")


def _check_prices(inst: Any, c: _Collector) -> None:
    ranges = {m.id: m.typical_price_per_kg for m in inst.materials if m.typical_price_per_kg}

    def one(material: str, series: Any, loc: str) -> None:
        rng = ranges.get(material)
        if rng is None:
            return
        values = series.values() if isinstance(series, Mapping) else [series]
        bad = [v for v in values if not rng[0] <= v <= rng[1]]
        if bad:
            c.warn("implausible_price", loc,
                   f"price(s) {bad} per kg of '{material}' outside the typical "
                   f"{rng[0]:g}-{rng[1]:g}", "check units: per kg, not per t; oxide vs metal")

    for i, o in enumerate(inst.offers):
        if o.price_per_kg is not None:
            one(o.material, o.price_per_kg, f"offers[{i}].price_per_kg")
    for i, x in enumerate(inst.price_indices):
        if x.material is not None:
            one(x.material, x.price_per_kg, f"price_indices[{i}].price_per_kg")
    for i, k in enumerate(inst.spot_markets):
        one(k.material, k.price_per_kg, f"spot_markets[{i}].price_per_kg")


# --- network ---------------------------------------------------------------------------------
def _check_network(inst: Any, c: _Collector) -> None:
    products, inputs = node_products(inst), node_inputs(inst)
    for i, a in enumerate(inst.network.arcs):
        if a.from_ in products and a.to in inputs and products[a.from_] not in inputs[a.to]:
            c.error("arc_material_mismatch", f"network.arcs[{i}]",
                    f"'{a.from_}' sends '{products[a.from_]}', which '{a.to}' does not take",
                    f"'{a.to}' takes {sorted(inputs[a.to])}")
    arcs = effective_arcs(inst)
    cycle = find_cycle(arcs)
    if cycle:
        c.error("cycle", "network", "processing chain has a cycle: " + " -> ".join(cycle),
                "remove an arc of the cycle; with network.default_arcs, list arcs explicitly")
        return
    demand = [(i, b, m, y, at(s, y)) for i, b in enumerate(inst.buyers)
              for m, s in b.demand_t.items() for y in inst.horizon.years]
    if sum(d[-1] for d in demand) <= 0:
        c.error("empty_instance", "buyers", "no buyer demands anything: nothing to optimise")
        return
    used: set[str] = set()
    for i, b in enumerate(inst.buyers):
        short: dict[str, list[int]] = {}
        for y in inst.horizon.years:
            active = active_nodes(inst, arcs, b.id, y)
            delivered = {a.material for a in arcs if a.to_node == b.id and a.from_node in active}
            used |= active
            for m, s in b.demand_t.items():
                if at(s, y) > 0 and m not in delivered:
                    short.setdefault(m, []).append(y)
        for m, yrs in short.items():
            c.error("unservable_demand", f"buyers[{i}].demand_t.{m}",
                    f"buyer '{b.id}' demands '{m}' in {yrs}, but no offer, spot market or "
                    "processing chain can deliver it in those years",
                    "add an eligible offer or spot market, or fix the arcs")
    for i, f in enumerate(inst.facilities):
        if f.id not in used:
            c.warn("orphan_facility", f"facilities[{i}]",
                   f"facility '{f.id}' can deliver to no buyer (no eligible offer or input)")

