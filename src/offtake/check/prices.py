"""Contract economics: unit prices, tariffs and the resale price (formulation.md, "Contract
economics").

Owns `unit_price` (fixed or index-linked with its collar, floor payer and upside share; the
third party's fiscal cost per kg), `offer_price` (the same, cached per offer, year and
scenario), the stacked tariff rate of a contract or spot purchase, and `resale_price`.
"""

from __future__ import annotations

from offtake.check.context import Ctx, UnitPrice
from offtake.domain.network import at
from offtake.domain.schema import Offer, Tariff


def index_price(c: Ctx, o: Offer, year: int, scenario: str) -> float:
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


def unit_price(c: Ctx, o: Offer, year: int, scenario: str) -> UnitPrice:
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


def offer_price(c: Ctx, o_id: str, year: int, scenario: str) -> UnitPrice:
    """`unit_price` of offer `o_id`, computed once per (offer, year, scenario) of a check."""
    key = (o_id, year, scenario)
    if key not in c.unit_prices:
        c.unit_prices[key] = unit_price(c, c.offers[o_id], year, scenario)
    return c.unit_prices[key]


def tariff_applies(c: Ctx, tariff: Tariff, seller_country: str, buyer_country: str,
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


def stacked_tariff_rate(c: Ctx, seller_country: str, buyer: str, material: str,
                        year: int) -> float:
    """rho: the rates of every tariff on this (origin, destination, material), stacked."""
    key = (seller_country, buyer, material, year)
    if key not in c.tariff_rates:
        c.tariff_rates[key] = sum(
            at(tr.rate, year) for tr in c.inst.tariffs
            if tariff_applies(c, tr, seller_country, c.buyers[buyer].country, material))
    return c.tariff_rates[key]


def contract_tariff_rate(c: Ctx, o: Offer, buyer: str, year: int) -> float:
    """rho_obt: seller = the supplier facility's country."""
    return stacked_tariff_rate(c, c.facilities[o.supplier].country, buyer, o.material, year)


def spot_tariff_rate(c: Ctx, market: str, buyer: str, year: int) -> float:
    """rho_kappa bt: seller = the market's origin."""
    k = c.markets[market]
    return stacked_tariff_rate(c, k.origin, buyer, k.material, year)


def resale_price(c: Ctx, market: str, year: int, s: str) -> float:
    """P_kappa t (1 - haircut): what a resold kg fetches (the scenario's market price)."""
    return c.spot_price(market, year, s) * (1.0 - (c.markets[market].resale_haircut or 0.0))
