"""Contract economics as data: the unit price a buyer pays under an offer's price terms, the
third-party fiscal cost of a floor, stacked tariff rates, and contract timing.

Index prices are data per year and scenario, so every price term (index x (1 + premium) +
adder, floor, ceiling, who pays the floor, upside sharing) is a number per (offer, year,
scenario) and the model stays linear in volumes. Pure functions over the schema; no Pyomo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from offtake.domain.network import at

BUYER = "buyer"


@dataclass(frozen=True)
class UnitPrice:
    """What one kg costs under an offer in a year and scenario."""

    buyer_per_kg: float
    """Paid by the buyer, before volume-tier rebates."""
    term: str
    """Which price term set it: fixed, index, floor, ceiling (+upside when shared)."""
    fiscal_per_kg: float = 0.0
    """Paid by a third party (floor top-up net of upside returned to it)."""
    payer: str = ""


def unit_price(offer: Any, index_paths: dict[str, Any], year: int) -> UnitPrice:
    """Apply an offer's price terms (see formulation.md, "Contract economics"); `index_paths`
    maps index id -> the price series of the scenario at hand."""
    if offer.index is None:
        return UnitPrice(at(offer.price_per_kg, year), "fixed")
    p = at(index_paths[offer.index], year) * (1 + offer.premium)
    p += offer.adder_per_kg
    p = max(p, 0.0)
    buyer, term, fiscal = p, "index", 0.0
    third = offer.floor_paid_by != BUYER
    if offer.ceiling_per_kg is not None and p > offer.ceiling_per_kg:
        buyer, term = offer.ceiling_per_kg, "ceiling"
    if offer.floor_per_kg is not None and p < offer.floor_per_kg:
        if third:
            fiscal, term = offer.floor_per_kg - p, "floor (third party)"
        else:
            buyer, term = offer.floor_per_kg, "floor"
    if offer.upside_share > 0 and p > offer.upside_above_per_kg:
        returned = offer.upside_share * (p - offer.upside_above_per_kg)
        if third:
            fiscal -= returned
        else:
            buyer = max(buyer - returned, 0.0)
        term += "+upside"
    return UnitPrice(buyer, term, fiscal)


def floor_payer(offer: Any) -> str:
    """The third party that tops the seller up to the floor, or '' (none, or the buyer)."""
    if offer.floor_per_kg is None or offer.floor_paid_by == BUYER:
        return ""
    return offer.floor_paid_by


def tariff_rate(inst: Any, origin: str, destination: str, material: str, year: int) -> float:
    """Sum of the ad valorem rates of every tariff that matches (stacked duties)."""
    groups = {g.id: set(g.members) for g in inst.country_groups}
    total = 0.0
    for t in inst.tariffs:
        origins = set(t.origins).union(*(groups[g] for g in t.origin_groups))
        dests = set(t.destinations).union(*(groups[g] for g in t.destination_groups))
        if origin not in origins or (dests and destination not in dests):
            continue
        if t.materials is not None and material not in t.materials:
            continue
        total += at(t.rate, year)
    return total


def active_years(offer: Any, start: int, horizon: list[int]) -> list[int]:
    """Years a contract started in `start` runs, inside its window and the horizon."""
    end = offer.last_year if offer.term_years is None else min(
        offer.last_year, start + offer.term_years - 1)
    return [y for y in horizon if start <= y <= end]


def start_options(offer: Any) -> list[int]:
    """Years the contract may start: its start window, or its first year (which may lie
    before the horizon: the contract is then already running)."""
    return sorted(offer.start_years) if offer.start_years is not None else [offer.first_year]
