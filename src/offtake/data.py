"""Derived, Pyomo-free model data: sparse index sets and coefficients in model units.

Owns the translation from the user's schema (tonnes, money per kg, series by year) to what the
model needs: sorted sparse index sets named after their dimensions, per-tonne coefficients,
discount factors and scenario probabilities. Which flow variables exist is decided here, from
the network: an arc is modelled for a buyer only if material can reach its tail (from an
eligible offer or a spot market) and its head leads on to that buyer.

Index order is fixed project-wide: offer/facility/node first, then buyer, material, year,
scenario. Must not import Pyomo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from offtake.network import (
    ArcSpec,
    active_nodes,
    at,
    effective_arcs,
    offer_eligible,
    upstream_of,
)
from offtake.schema import Instance, MaxSuppliersRule

KG_PER_T = 1000.0


@dataclass(frozen=True)
class ModelData:
    """Everything `model.build_model` reads. Money coefficients are per tonne."""

    currency: str
    YEARS: tuple[int, ...]
    SCENARIOS: tuple[str, ...]
    probability: dict[str, float]
    discount: dict[int, float]
    BUYERS: tuple[str, ...]
    MATERIALS: tuple[str, ...]
    FACILITIES: tuple[str, ...]
    SPOTS: tuple[str, ...]
    OFFERS: tuple[str, ...]
    offer_supplier: dict[str, str]
    offer_material: dict[str, str]
    offer_min_t: dict[str, float]
    offer_max_t: dict[str, float]
    offer_signing_cost: dict[str, float]
    offer_signing_year: dict[str, int]
    OFFER_YEARS: tuple[tuple[str, int], ...]
    OFFER_BUYER_YEARS: tuple[tuple[str, str, int], ...]
    offer_price_per_t: dict[tuple[str, int], float]
    capacity_t: dict[tuple[str, int], float]
    recipe: dict[str, dict[str, float]]
    opex_per_t: dict[tuple[str, int], float]
    ARCS: tuple[tuple[str, str], ...]
    arc_material: dict[tuple[str, str], str]
    freight_per_t: dict[tuple[str, str], float]
    BUYER_ARCS: tuple[tuple[str, str, str], ...]
    """(buyer, from, to): arcs on which the buyer's material may move."""
    PROCESSOR_BUYERS: tuple[tuple[str, str], ...]
    """(facility, buyer): facilities that may process inputs owned by the buyer."""
    NODE_BUYERS: tuple[tuple[str, str], ...]
    """(facility, buyer): facilities where the buyer's material enters or is made."""
    INPUT_BUYERS: tuple[tuple[str, str, str], ...]
    """(facility, buyer, material): recipe inputs of processors, per buyer."""
    spot_material: dict[str, str]
    spot_price_per_t: dict[tuple[str, int], float]
    spot_availability_t: dict[tuple[str, int], float]
    """Only for limited markets; unlimited ones have no entry."""
    DEMANDS: tuple[tuple[str, str, int], ...]
    demand_t: dict[tuple[str, str, int], float]
    unmet_penalty_per_t: dict[str, float]
    MAX_SUPPLIER_RULES: tuple[str, ...] = ()
    rule_max_count: dict[str, int] = field(default_factory=dict)
    rule_hard: dict[str, bool] = field(default_factory=dict)
    rule_penalty: dict[str, float] = field(default_factory=dict)
    RULE_SUPPLIER_OFFERS: tuple[tuple[str, str, str], ...] = ()
    """(rule, supplier unit, offer): offers in a max_suppliers rule's scope, by supplier."""


def build_data(inst: Instance) -> ModelData:
    years = tuple(inst.horizon.years)
    base = inst.horizon.base_year or inst.horizon.first_year
    rate = inst.horizon.discount_rate
    fac = {f.id: f for f in inst.facilities}
    buyers = tuple(sorted(b.id for b in inst.buyers))

    arcs = effective_arcs(inst)
    relevant = _relevant_nodes(inst, arcs)
    buyer_arcs = tuple(sorted(
        (b, a.from_node, a.to_node) for a in arcs for b in buyers
        if a.from_node in relevant[b] and (a.to_node == b or a.to_node in relevant[b])
    ))

    offer_years, obys, price = [], [], {}
    for o in inst.offers:
        for y in years:
            if o.first_year <= y <= o.last_year:
                offer_years.append((o.id, y))
                price[(o.id, y)] = at(o.price_per_kg, y) * KG_PER_T
                obys += [(o.id, b, y) for b in buyers
                         if offer_eligible(o, b) and o.supplier in relevant[b]]
    processors = {f.id for f in inst.facilities if f.recipe}
    proc_buyers = tuple(sorted((f, b) for b in buyers for f in relevant[b] if f in processors))
    supplier = {o.id: o.supplier for o in inst.offers}
    node_buyers = tuple(sorted(set(proc_buyers) | {(supplier[o], b) for o, b, _ in obys}))
    demands = {(b.id, m, y): at(s, y) for b in inst.buyers for m, s in b.demand_t.items()
               for y in years}
    rules = [r for r in inst.rules if isinstance(r, MaxSuppliersRule)]
    return ModelData(
        currency=inst.meta.currency,
        YEARS=years,
        SCENARIOS=tuple(s.id for s in inst.scenarios),
        probability={s.id: s.probability for s in inst.scenarios},
        discount={y: (1.0 + rate) ** -(y - base) for y in years},
        BUYERS=buyers,
        MATERIALS=tuple(sorted(m.id for m in inst.materials)),
        FACILITIES=tuple(sorted(fac)),
        SPOTS=tuple(sorted(k.id for k in inst.spot_markets)),
        OFFERS=tuple(sorted({o for o, _ in offer_years})),
        offer_supplier=supplier,
        offer_material={o.id: o.material for o in inst.offers},
        offer_min_t={o.id: o.min_t_per_year for o in inst.offers},
        offer_max_t={o.id: o.max_t_per_year for o in inst.offers},
        offer_signing_cost={o.id: o.signing_cost for o in inst.offers},
        offer_signing_year={o.id: max(o.first_year, years[0]) for o in inst.offers},
        OFFER_YEARS=tuple(sorted(offer_years)),
        OFFER_BUYER_YEARS=tuple(sorted(obys)),
        offer_price_per_t=price,
        capacity_t={(f.id, y): at(f.capacity_t, y) for f in inst.facilities for y in years},
        recipe={f.id: dict(f.recipe) for f in inst.facilities if f.recipe},
        opex_per_t={(f.id, y): at(f.opex_per_kg, y) * KG_PER_T
                    for f in inst.facilities for y in years},
        ARCS=tuple((a.from_node, a.to_node) for a in arcs),
        arc_material={(a.from_node, a.to_node): a.material for a in arcs},
        freight_per_t={(a.from_node, a.to_node): a.freight_per_kg * KG_PER_T for a in arcs},
        BUYER_ARCS=buyer_arcs,
        PROCESSOR_BUYERS=proc_buyers,
        NODE_BUYERS=node_buyers,
        INPUT_BUYERS=tuple(sorted((f, b, m) for f, b in proc_buyers for m in fac[f].recipe)),
        spot_material={k.id: k.material for k in inst.spot_markets},
        spot_price_per_t={(k.id, y): at(k.price_per_kg, y) * KG_PER_T
                          for k in inst.spot_markets for y in years},
        spot_availability_t={(k.id, y): at(k.availability_t, y)
                             for k in inst.spot_markets if not k.unlimited for y in years},
        DEMANDS=tuple(sorted(k for k, v in demands.items() if v > 0)),
        demand_t={k: v for k, v in demands.items() if v > 0},
        unmet_penalty_per_t={m.id: m.unmet_penalty_per_kg * KG_PER_T for m in inst.materials},
        MAX_SUPPLIER_RULES=tuple(r.id for r in rules),
        rule_max_count={r.id: r.max_count for r in rules},
        rule_hard={r.id: r.hard for r in rules},
        rule_penalty={r.id: r.penalty_per_unit or 0.0 for r in rules},
        RULE_SUPPLIER_OFFERS=tuple(sorted(_rule_supplier_offers(inst, rules, years))),
    )


def _relevant_nodes(inst: Instance, arcs: list[ArcSpec]) -> dict[str, set[str]]:
    """Per buyer: supply nodes that can get material and can pass it on towards the buyer."""
    return {b.id: active_nodes(inst, arcs, b.id, None) & upstream_of(arcs, b.id)
            for b in inst.buyers}


def _rule_supplier_offers(
    inst: Instance, rules: list[MaxSuppliersRule], years: tuple[int, ...]
) -> list[tuple[str, str, str]]:
    fac = {f.id: f for f in inst.facilities}
    out = []
    for r in rules:
        sc = r.scope
        for o in inst.offers:
            eligible = [b.id for b in inst.buyers if offer_eligible(o, b.id)]
            if sc.buyers is not None and not set(eligible) & set(sc.buyers):
                continue
            if sc.materials is not None and o.material not in sc.materials:
                continue
            active = [y for y in years if o.first_year <= y <= o.last_year]
            if not active or (sc.years is not None and not set(active) & set(sc.years)):
                continue
            unit = o.supplier if r.count == "facility" else fac[o.supplier].company
            out.append((r.id, unit, o.id))
    return out
