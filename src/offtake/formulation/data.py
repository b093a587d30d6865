"""Derived, Pyomo-free model data: sparse index sets and coefficients in model units.

Owns the translation from the user's schema (tonnes, money per kg, series by year) to what the
model needs: sorted sparse index sets named after their dimensions, per-tonne coefficients,
discount factors, scenario probabilities, the origin tags that can reach each node for each
buyer (see `origin`), and the rows of every procurement rule (see `ruledata`).

Which flow variables exist is decided here, from the network: an arc is modelled for a buyer
only if material can reach its tail (from an eligible offer or a spot market) and its head
leads on to that buyer, and only for the tags that can actually travel on it.

Index order is fixed project-wide: offer/facility/node first, then buyer, material, tag, year,
scenario. Must not import Pyomo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from offtake.domain.builds import (
    added_capacity,
    build_options,
    cost_year,
    government_payer,
    in_objective,
    start_year,
)
from offtake.domain.economics import (
    active_years,
    floor_payer,
    start_options,
    tariff_rate,
    unit_price,
)
from offtake.domain.network import (
    ArcSpec,
    active_nodes,
    at,
    effective_arcs,
    offer_eligible,
    potential_capacity,
    upstream_of,
)
from offtake.domain.origin import STAGE_ORDER, combos, own_feed_tag, spot_tag
from offtake.domain.scenarios import (
    capacity_factor,
    curtailment,
    demand_factor,
    index_path,
    spot_factors,
)
from offtake.domain.schema import Instance
from offtake.formulation.ruledata import RuleRow, count_rule_offers, rule_rows
from offtake.formulation.stockpiledata import StockpileData, stock_tags, stockpile_data

KG_PER_T = 1000.0
EXPECTED = "expected"
"""Scenario label of rule rows that hold in expectation (over all scenarios)."""
FIRST_STAGE_ROW = ""
"""Scenario label of the rows of kinds decided on the portfolio alone (one row for all
scenarios)."""


@dataclass(frozen=True)
class Dimensions:
    """The horizon, the scenarios and the entities every part is indexed by."""

    currency: str
    YEARS: tuple[int, ...]
    SCENARIOS: tuple[str, ...]
    probability: dict[str, float]
    discount: dict[int, float]
    BUYERS: tuple[str, ...]
    MATERIALS: tuple[str, ...]
    FACILITIES: tuple[str, ...]
    SPOTS: tuple[str, ...]


@dataclass(frozen=True)
class OfferData:
    """Offers and the terms of the contracts they would become (first stage): windows and
    starts, volumes, prices per scenario, tiers, take-or-pay, prepayments, tariffs."""

    OFFERS: tuple[str, ...]
    offer_supplier: dict[str, str]
    offer_material: dict[str, str]
    offer_min_t: dict[str, float]
    offer_max_t: dict[str, float]
    offer_signing_cost: dict[str, float]
    offer_signing_year: dict[str, int]
    offer_decision: dict[str, str]
    """Offers decided before the optimisation: "forced" (signed) or "forbidden" (not)."""
    offer_tag: dict[str, str]
    """Origin tag of what an offer delivers (its supplier's own-feed chain)."""
    OFFER_YEARS: tuple[tuple[str, int], ...]
    """(offer, year): years in which the offer may run (any start)."""
    OFFER_BUYER_YEARS: tuple[tuple[str, str, int], ...]
    offer_cap_t: dict[tuple[str, int], float]
    """Tightest annual volume bound: min(max_t_per_year, the supplier's largest capacity in
    that year over the scenarios); what no scenario could deliver is never contracted."""
    offer_price_per_t: dict[tuple[str, int, str], float]
    """Unit price the buyer pays per (offer, year, scenario), before tier rebates."""
    offer_price_term: dict[tuple[str, int, str], str]
    offer_fiscal_per_t: dict[tuple[str, int, str], float]
    """Third-party cost per t delivered (floor top-up net of upside returned)."""
    offer_payer: dict[str, str]
    OFFER_STARTS: tuple[tuple[str, int], ...]
    """(offer, start year) for offers with a start window (one start is chosen)."""
    offer_start_cover: dict[tuple[str, int], tuple[int, ...]]
    """(offer, year) -> start years whose contract runs in that year (windowed offers)."""
    TIERS: tuple[tuple[str, int], ...]
    """(offer, tier number) for offers with volume tiers."""
    tier_from_t: dict[tuple[str, int], float]
    tier_to_t: dict[tuple[str, int], float]
    tier_discount: dict[tuple[str, int], float]
    offer_tier_mode: dict[str, str]
    offer_tier_basis: dict[str, str]
    TAKE_OR_PAY: tuple[str, ...]
    offer_top_share: dict[str, float]
    offer_shortfall_fraction: dict[str, float]
    offer_prepayment: dict[str, float]
    offer_prepayment_credit: dict[str, float]
    contract_tariff_rate: dict[tuple[str, str, int], float]
    """(offer, buyer, year) -> stacked ad valorem duty on that purchase."""
    CURTAILED: tuple[tuple[str, int], ...]
    """(offer, year) that some scenario curtails: a cut of the supplier's capacity
    (force_majeure)."""
    offer_available_share: dict[tuple[str, int, str], float]
    """(offer, year, scenario) -> a_ots, the share of the contracted volume the supplier can
    deliver, for the CURTAILED offer-years (1 elsewhere)."""
    offer_damages_per_t: dict[tuple[str, int, str], float]
    """(offer, year, scenario) -> 1000 L_o g_ots: liquidated damages per t contracted, for
    the CURTAILED offer-years of offers with damages."""


@dataclass(frozen=True)
class ChainData:
    """The physical chain: facility capacities, recipes and costs, arcs, and the origin tags
    that can travel on each arc for each buyer (`_propagate_tags`)."""

    capacity_t: dict[tuple[str, int, str], float]
    """(facility, year, scenario) -> capacity after the scenario's multipliers."""
    recipe: dict[str, dict[str, float]]
    opex_per_t: dict[tuple[str, int], float]
    ARCS: tuple[tuple[str, str], ...]
    arc_material: dict[tuple[str, str], str]
    freight_per_t: dict[tuple[str, str], float]
    BUYER_ARC_TAGS: tuple[tuple[str, str, str, str], ...]
    """(buyer, from, to, tag): arcs on which the buyer's material of that origin may move."""
    OUTPUT_TAGS: tuple[tuple[str, str, str], ...]
    """(facility, buyer, tag): what a facility can hand on for a buyer, by origin."""
    COMBOS: tuple[tuple[str, str, str], ...]
    """(facility, buyer, combo): input-tag combinations a processor can run for a buyer."""
    combo_inputs: dict[tuple[str, str], dict[str, str]]
    combo_output: dict[tuple[str, str], str]
    INPUT_TAGS: tuple[tuple[str, str, str, str], ...]
    """(facility, buyer, material, tag): recipe inputs of processors, by origin."""
    ARRIVALS: tuple[tuple[str, str, str], ...]
    """(buyer, material, tag): what can arrive at a buyer, by origin."""


@dataclass(frozen=True)
class MarketData:
    """Spot markets (prices, availability, tariffs, resale), stocks and the buyers' demand."""

    spot_material: dict[str, str]
    spot_price_per_t: dict[tuple[str, int, str], float]
    spot_availability_t: dict[tuple[str, int, str], float]
    """Only for limited markets; unlimited ones have no entry."""
    spot_tariff_rate: dict[tuple[str, str, int], float]
    """(market, buyer, year) -> stacked ad valorem duty on spot purchases."""
    RESALES: tuple[tuple[str, str], ...]
    """(buyer, market): markets with a resale haircut for a material the buyer demands."""
    resale_price_per_t: dict[tuple[str, int, str], float]
    STOCKS: tuple[tuple[str, str], ...]
    """(buyer, material): demanded materials that may be held in stock."""
    holding_cost_per_t: dict[str, float]
    DEMANDS: tuple[tuple[str, str, int, str], ...]
    """(buyer, material, year, scenario) with positive demand."""
    demand_t: dict[tuple[str, str, int, str], float]
    unmet_penalty_per_t: dict[str, float]


@dataclass(frozen=True)
class BuildData:
    """Build options (first stage): when each starts, what it adds by year, what it costs
    and who pays, and the offers of candidate plants that exist only once one is built."""

    BUILDS: tuple[str, ...] = ()
    """Build options that can operate in the horizon."""
    build_facility: dict[str, str] = field(default_factory=dict)
    build_start: dict[str, int] = field(default_factory=dict)
    """y_j: first year of operation."""
    build_capacity_t: dict[tuple[str, int, str], float] = field(default_factory=dict)
    """(option, year, scenario) -> kappa_fts rho_jt N_j: capacity added once built, after the
    scenario's capacity changes (years with nothing added are left out)."""
    build_nameplate_t: dict[tuple[str, int], float] = field(default_factory=dict)
    """(option, year) -> rho_jt N_j: nominal ramped nameplate (what lenders look at)."""
    build_cost: dict[str, float] = field(default_factory=dict)
    build_cost_year: dict[str, int] = field(default_factory=dict)
    build_paid_by_buyers: dict[str, bool] = field(default_factory=dict)
    """True: the build cost is a term of the objective (paid by the buyers)."""
    build_government: dict[str, str] = field(default_factory=dict)
    """Option -> the government that pays its cost (fiscal cost), for those a government
    pays."""
    build_requires: dict[str, str] = field(default_factory=dict)
    build_decision: dict[str, str] = field(default_factory=dict)
    """Options decided before the optimisation: "forced" (built) or "forbidden" (not)."""
    CANDIDATE_OFFERS: tuple[tuple[str, str], ...] = ()
    """(offer, build option of its candidate supplier): the offer exists only if one of its
    supplier's options is built."""


@dataclass(frozen=True)
class RuleData:
    """Procurement rules: their settings by rule id and their rows (`formulation.ruledata`)."""

    RULE_IDS: tuple[str, ...] = ()
    rule_kind: dict[str, str] = field(default_factory=dict)
    rule_hard: dict[str, bool] = field(default_factory=dict)
    rule_penalty: dict[str, float] = field(default_factory=dict)
    rule_count_bound: dict[str, int] = field(default_factory=dict)
    rule_in_expectation: dict[str, bool] = field(default_factory=dict)
    """Rules whose rows hold on the probability-weighted average over scenarios."""
    RULE_SUPPLIER_OFFERS: tuple[tuple[str, str, str], ...] = ()
    """(rule, supplier unit, offer): offers in a supplier-count rule's scope, by supplier."""
    rule_rows: dict[str, tuple[RuleRow, ...]] = field(default_factory=dict)
    """Rows of the share, exclusion and offtake rules, by rule kind."""


@dataclass(frozen=True)
class EmissionData:
    """Emission factors in t CO2e per t (= kg per kg) and the carbon price (formulation.md,
    Emissions and concentration); all empty when the instance gives none."""

    offer_emission: dict[str, float] = field(default_factory=dict)
    """Offer -> epsilon_feed + epsilon of its supplier: per t delivered (own-feed sales)."""
    facility_emission: dict[str, float] = field(default_factory=dict)
    """Processor -> epsilon_f per t it makes (its own process)."""
    flow_emission: dict[tuple[str, str], float] = field(default_factory=dict)
    """Arc -> epsilon_ij (+ epsilon of the spot market or stockpile at its tail) per t
    carried."""
    carbon_price_per_t: dict[int, float] = field(default_factory=dict)
    """Year -> C_t, currency per t CO2e (years with a positive price only)."""
    supply_unit: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)
    """Facility or spot market -> (material, stage, country, company) of what it supplies, as
    concentration.csv counts it (a market: stage of its feed_origin, company 'spot:<id>')."""


@dataclass(frozen=True)
class Settings:
    """How the model is asked to be built: elastic rules (diagnosis) and the risk term."""

    elastic: bool = False
    """Give every hard rule row a violation variable (infeasibility diagnosis)."""
    cvar_weight: float = 0.0
    """lambda: the objective is expected cost + lambda x CVaR_alpha(scenario cost)."""
    cvar_alpha: float = 0.95
    cvar_limit: float | None = None
    """A bound on CVaR_alpha(scenario cost) in money (the `cvar_cap` row), or None."""


@dataclass(frozen=True)
class ModelData(EmissionData, Settings, StockpileData, RuleData, BuildData, MarketData,
                ChainData, OfferData, Dimensions):
    """Everything `model.build_model` reads, in named parts (each built by its own function
    below; the fields are read flat: `d.offer_price_per_t`). Money coefficients are per tonne.
    """

    def max_cost_coefficient(self) -> float:
        """Largest objective coefficient (currency per t, or per signing / rule unit)."""
        pools = (self.offer_price_per_t.values(), self.offer_signing_cost.values(),
                 self.build_cost.values(),
                 self.spot_price_per_t.values(), self.freight_per_t.values(),
                 self.opex_per_t.values(), self.unmet_penalty_per_t.values(),
                 self.rule_penalty.values())
        biggest = max((abs(x) for pool in pools for x in pool), default=0.0)
        return biggest * max(self.discount.values(), default=1.0)

    def capacity_bounds(self) -> dict[tuple[str, int, str], float]:
        """(facility, year, scenario) -> K_fts with every build option built: the most a
        facility can make (bounds of processing)."""
        out = dict(self.capacity_t)
        for (j, y, s), x in self.build_capacity_t.items():
            key = (self.build_facility[j], y, s)
            out[key] = out.get(key, 0.0) + x
        return out


def build_data(inst: Instance, *, elastic: bool = False, cvar_weight: float = 0.0,
               cvar_alpha: float = 0.95, cvar_limit: float | None = None) -> ModelData:
    """The model data of a validated instance, part by part (see ModelData)."""
    if cvar_weight < 0 or not 0 < cvar_alpha < 1:
        raise ValueError(f"need cvar_weight >= 0 and 0 < cvar_alpha < 1, got {cvar_weight}, "
                         f"{cvar_alpha}")
    if cvar_limit is not None and not math.isfinite(cvar_limit):
        raise ValueError(f"cvar_limit must be a finite amount of money, got {cvar_limit}")
    src = _Sources.of(inst)
    offers = _offer_data(src)
    parts = (_emission_data(src),
             _dimensions(src), offers, _chain_data(src, offers), _market_data(src),
             _build_data(src, offers), _rule_settings(inst), stockpile_data(inst),
             Settings(elastic, cvar_weight, cvar_alpha, cvar_limit))
    d = ModelData(**{f.name: getattr(part, f.name) for part in parts for f in fields(part)})
    return replace(d, RULE_SUPPLIER_OFFERS=tuple(sorted(count_rule_offers(inst, src.years))),
                   rule_rows=rule_rows(inst, d))


@dataclass(frozen=True)
class _Sources:
    """Lookups of the instance that several parts read, computed once."""

    inst: Instance
    years: tuple[int, ...]
    scenarios: tuple[str, ...]
    buyers: tuple[str, ...]
    fac: dict
    arcs: list[ArcSpec]
    relevant: dict[str, set[str]]
    """buyer -> nodes that are active for it and lead to it."""
    groups: dict[str, set[str]]

    @classmethod
    def of(cls, inst: Instance) -> _Sources:
        arcs = effective_arcs(inst)
        return cls(inst, tuple(inst.horizon.years), tuple(s.id for s in inst.scenarios),
                   tuple(sorted(b.id for b in inst.buyers)),
                   {f.id: f for f in inst.facilities}, arcs,
                   {b.id: active_nodes(inst, arcs, b.id, None) & upstream_of(arcs, b.id)
                    for b in inst.buyers},
                   {g.id: set(g.members) for g in inst.country_groups})


def _dimensions(src: _Sources) -> Dimensions:
    inst, years = src.inst, src.years
    base = inst.horizon.base_year or inst.horizon.first_year
    rate = inst.horizon.discount_rate
    return Dimensions(
        currency=inst.meta.currency, YEARS=years, SCENARIOS=src.scenarios,
        probability={s.id: s.probability for s in inst.scenarios},
        discount={y: (1.0 + rate) ** -(y - base) for y in years},
        BUYERS=src.buyers, MATERIALS=tuple(sorted(m.id for m in inst.materials)),
        FACILITIES=tuple(sorted(src.fac)), SPOTS=tuple(sorted(k.id for k in inst.spot_markets)))


def _offer_data(src: _Sources) -> OfferData:
    """Running years, starts, prices per scenario and the eligible buyers of every offer,
    then its terms."""
    inst, years, fac = src.inst, src.years, src.fac
    paths = {sc.id: {x.id: index_path(x, sc) for x in inst.price_indices}
             for sc in inst.scenarios}
    offer_by = {o.id: o for o in inst.offers}
    buyer_country = {b.id: b.country for b in inst.buyers}
    offer_years, obys, price, term, fiscal, starts, cover = [], [], {}, {}, {}, [], {}
    share: dict[tuple[str, int, str], float] = {}
    damages: dict[tuple[str, int, str], float] = {}
    for o in inst.offers:
        runs: dict[int, list[int]] = {}
        for y0 in start_options(o):
            for y in active_years(o, y0, list(years)):
                runs.setdefault(y, []).append(y0)
        if o.start_years is not None:
            starts += [(o.id, y0) for y0 in sorted(o.start_years)]
            cover.update({(o.id, y): tuple(v) for y, v in runs.items()})
        for y in sorted(runs):
            offer_years.append((o.id, y))
            for s in src.scenarios:
                up = unit_price(o, paths[s], y)
                price[(o.id, y, s)] = up.buyer_per_kg * KG_PER_T
                term[(o.id, y, s)] = up.term
                fiscal[(o.id, y, s)] = up.fiscal_per_kg * KG_PER_T
            obys += [(o.id, b, y) for b in src.buyers
                     if offer_eligible(o, b) and o.supplier in src.relevant[b]]
            _curtail(src, o, y, share, damages)
    return OfferData(
        OFFERS=tuple(sorted({o for o, _ in offer_years})),
        offer_supplier={o.id: o.supplier for o in inst.offers},
        offer_material={o.id: o.material for o in inst.offers},
        offer_min_t={o.id: o.min_t_per_year for o in inst.offers},
        offer_max_t={o.id: o.max_t_per_year for o in inst.offers},
        offer_signing_cost={o.id: o.signing_cost for o in inst.offers},
        offer_signing_year={o.id: max(o.first_year, years[0]) for o in inst.offers},
        offer_decision={o.id: o.decision for o in inst.offers if o.decision != "free"},
        offer_tag={o.id: own_feed_tag(fac[o.supplier]) for o in inst.offers},
        OFFER_YEARS=tuple(sorted(offer_years)),
        OFFER_BUYER_YEARS=tuple(sorted(obys)),
        offer_cap_t={(o, y): min(offer_by[o].max_t_per_year,
                                 max(potential_capacity(fac[offer_by[o].supplier], y, years[0])
                                     * capacity_factor(sc, fac[offer_by[o].supplier], y,
                                                       src.groups)
                                     for sc in inst.scenarios))
                     for o, y in offer_years},
        offer_price_per_t=price,
        offer_price_term=term,
        offer_fiscal_per_t=fiscal,
        offer_payer={o.id: floor_payer(o) for o in inst.offers if floor_payer(o)},
        OFFER_STARTS=tuple(starts),
        offer_start_cover=cover,
        **_tiers(inst),
        TAKE_OR_PAY=tuple(o.id for o in inst.offers if o.take_or_pay_share is not None),
        offer_top_share={o.id: o.take_or_pay_share for o in inst.offers
                         if o.take_or_pay_share is not None},
        offer_shortfall_fraction={o.id: o.shortfall_fraction for o in inst.offers},
        offer_prepayment={o.id: o.prepayment for o in inst.offers},
        offer_prepayment_credit={o.id: o.prepayment * o.prepayment_credit_share
                                 for o in inst.offers},
        contract_tariff_rate={(o, b, y): tariff_rate(
            inst, fac[offer_by[o].supplier].country, buyer_country[b], offer_by[o].material, y)
            for o, b, y in obys},
        CURTAILED=tuple(sorted({(o, y) for o, y, _ in share})),
        offer_available_share=share,
        offer_damages_per_t=damages)


def _curtail(src: _Sources, o, y: int, share: dict, damages: dict) -> None:
    """a_ots and 1000 L_o g_ots of offer o in year y in every scenario (force_majeure), kept
    only when some scenario curtails it (and damages only when some are owed)."""
    fac = src.fac[o.supplier]
    cut = {sc.id: curtailment(sc, fac, y, src.groups, o.force_majeure)
           for sc in src.inst.scenarios}
    if all(a >= 1.0 for a, _ in cut.values()):
        return
    share.update({(o.id, y, s): a for s, (a, _) in cut.items()})
    if o.liquidated_damages_per_kg > 0 and any(g > 0 for _, g in cut.values()):
        damages.update({(o.id, y, s): o.liquidated_damages_per_kg * KG_PER_T * g
                        for s, (_, g) in cut.items()})


def _chain_data(src: _Sources, offers: OfferData) -> ChainData:
    """Facilities and arcs, and the origin tags each can carry for each buyer (given which
    offers may sell to whom)."""
    inst, years, arcs = src.inst, src.years, src.arcs
    sold = {(o, b) for o, b, _ in offers.OFFER_BUYER_YEARS}
    return ChainData(
        capacity_t={(f.id, y, sc.id): at(f.capacity_t, y) * capacity_factor(sc, f, y, src.groups)
                    for f in inst.facilities for y in years for sc in inst.scenarios},
        recipe={f.id: dict(f.recipe) for f in inst.facilities if f.recipe},
        opex_per_t={(f.id, y): at(f.opex_per_kg, y) * KG_PER_T
                    for f in inst.facilities for y in years},
        ARCS=tuple((a.from_node, a.to_node) for a in arcs),
        arc_material={(a.from_node, a.to_node): a.material for a in arcs},
        freight_per_t={(a.from_node, a.to_node): a.freight_per_kg * KG_PER_T for a in arcs},
        **_propagate_tags(inst, arcs, src.relevant, sold))


def _emission_data(src: _Sources) -> EmissionData:
    """Emission factors of offers, processors and arcs (spot markets' own on their arcs), and
    the carbon price by year; factors of 0 are left out."""
    inst = src.inst
    listed = {(a.from_, a.to): a.emission_kg_per_kg for a in inst.network.arcs}
    listed.update({(sp.id, sp.location): sp.release_emission_kg_per_kg
                   for sp in inst.stockpiles if sp.release_emission_kg_per_kg is not None})
    spot = {k.id: k.emission_kg_per_kg for k in inst.spot_markets}
    spot.update({sp.id: sp.emission_kg_per_kg for sp in inst.stockpiles})
    flows = {(a.from_node, a.to_node): listed.get((a.from_node, a.to_node),
                                                   inst.network.default_emission_kg_per_kg)
             + spot.get(a.from_node, 0.0) for a in src.arcs}
    price = inst.carbon_price.per_t_co2e if inst.carbon_price is not None else 0.0
    carbon = {y: at(price, y) for y in src.years}
    return EmissionData(
        offer_emission={o.id: x for o in inst.offers if (x := src.fac[o.supplier]
                                                          .feed_emission_kg_per_kg
                                                          + src.fac[o.supplier]
                                                          .emission_kg_per_kg) > 0},
        facility_emission={f.id: f.emission_kg_per_kg for f in inst.facilities
                           if f.recipe and f.emission_kg_per_kg > 0},
        flow_emission={k: x for k, x in flows.items() if x > 0},
        carbon_price_per_t={y: x for y, x in carbon.items() if x > 0},
        supply_unit={**{f.id: (f.product, str(f.stage), f.country, f.company)
                        for f in inst.facilities},
                     **{k.id: (k.material, spot_stage(k.feed_origin), k.origin, f"spot:{k.id}")
                        for k in inst.spot_markets}})


def spot_stage(feed_origin: dict) -> str:
    """A spot market's stage: the last stage of its feed_origin, SPOT without one."""
    stages = sorted((str(st) for st in feed_origin), key=lambda st: STAGE_ORDER[st])
    return stages[-1] if stages else "SPOT"


def _market_data(src: _Sources) -> MarketData:
    """Spot markets in every scenario, resale and stocks, and the demand to meet."""
    inst, years, scenarios = src.inst, src.years, src.scenarios
    buyer_country = {b.id: b.country for b in inst.buyers}
    demands = {(b.id, m, y, sc.id): at(series, y) * demand_factor(sc, b.id, m, y)
               for b in inst.buyers for m, series in b.demand_t.items() for y in years
               for sc in inst.scenarios}
    spot_f = {(k.id, y, sc.id): spot_factors(sc, k, y) for k in inst.spot_markets
              for y in years for sc in inst.scenarios}
    return MarketData(
        spot_material={k.id: k.material for k in inst.spot_markets},
        spot_price_per_t={(k.id, y, s): at(k.price_per_kg, y) * spot_f[k.id, y, s][1]
                          * KG_PER_T for k in inst.spot_markets for y in years
                          for s in scenarios},
        spot_availability_t={(k.id, y, s): at(k.availability_t, y) * spot_f[k.id, y, s][0]
                             for k in inst.spot_markets if not k.unlimited for y in years
                             for s in scenarios},
        spot_tariff_rate={(k.id, b, y): tariff_rate(inst, k.origin, buyer_country[b],
                                                   k.material, y)
                          for k in inst.spot_markets for b in src.buyers for y in years},
        RESALES=tuple(sorted((b.id, k.id) for b in inst.buyers for k in inst.spot_markets
                             if k.resale_haircut is not None and k.material in b.demand_t)),
        resale_price_per_t={(k.id, y, s): at(k.price_per_kg, y) * spot_f[k.id, y, s][1]
                            * (1 - k.resale_haircut) * KG_PER_T for k in inst.spot_markets
                            if k.resale_haircut is not None for y in years for s in scenarios},
        STOCKS=tuple(sorted((b.id, m.id) for b in inst.buyers for m in inst.materials
                            if m.holding_cost_per_kg_year is not None and m.id in b.demand_t)),
        holding_cost_per_t={m.id: (m.holding_cost_per_kg_year or 0.0) * KG_PER_T
                            for m in inst.materials},
        DEMANDS=tuple(sorted(k for k, v in demands.items() if v > 0)),
        demand_t={k: v for k, v in demands.items() if v > 0},
        unmet_penalty_per_t={m.id: m.unmet_penalty_per_kg * KG_PER_T for m in inst.materials})


def _build_data(src: _Sources, offers: OfferData) -> BuildData:
    """Build options that can operate in the horizon (validation rejects the others), their
    ramped capacity in every scenario, cost, payer and decision."""
    inst, years = src.inst, src.years
    first = years[0]
    options = {j: jf for j, jf in build_options(inst).items()
               if start_year(jf[0], first) <= years[-1]}
    cap, nameplate = {}, {}
    for j, (opt, f) in options.items():
        for y in years:
            added = added_capacity(opt, y, first)
            if added > 0:
                nameplate[(j, y)] = added
                for sc in inst.scenarios:
                    cap[(j, y, sc.id)] = added * capacity_factor(sc, f, y, src.groups)
    candidates = {f.id: [j.id for j in f.builds if j.id in options]
                  for f in inst.facilities if f.candidate}
    return BuildData(
        BUILDS=tuple(sorted(options)),
        build_facility={j: f.id for j, (_, f) in options.items()},
        build_start={j: start_year(opt, first) for j, (opt, _) in options.items()},
        build_capacity_t=cap, build_nameplate_t=nameplate,
        build_cost={j: opt.cost for j, (opt, _) in options.items()},
        build_cost_year={j: cost_year(opt, first) for j, (opt, _) in options.items()},
        build_paid_by_buyers={j: in_objective(opt) for j, (opt, _) in options.items()},
        build_government={j: government_payer(opt) for j, (opt, _) in options.items()
                          if government_payer(opt)},
        build_requires={j: opt.requires for j, (opt, _) in options.items()
                        if opt.requires in options},
        build_decision={j: opt.decision for j, (opt, _) in options.items()
                        if opt.decision != "free"},
        CANDIDATE_OFFERS=tuple(sorted((o, j) for o in offers.OFFERS
                                      for j in candidates.get(offers.offer_supplier[o], ()))))


def _rule_settings(inst: Instance) -> RuleData:
    """The rules' settings by id; their rows follow once the rest of the data exists."""
    return RuleData(
        RULE_IDS=tuple(r.id for r in inst.rules),
        rule_kind={r.id: r.kind for r in inst.rules},
        rule_hard={r.id: r.hard for r in inst.rules},
        rule_penalty={r.id: r.penalty_per_unit or 0.0 for r in inst.rules},
        rule_count_bound={r.id: getattr(r, "max_count", getattr(r, "min_count", 0))
                          for r in inst.rules},
        rule_in_expectation={r.id: r.in_expectation for r in inst.rules})


def _tiers(inst: Instance) -> dict:
    """Tier bands per offer: tier k covers [from_k, from_{k+1}) tonnes (the last tier runs to
    the offer's maximum: per year, or over the whole window for tiers on the total)."""
    keys, lo, hi, disc = [], {}, {}, {}
    for o in inst.offers:
        span = o.last_year - o.first_year + 1
        top = o.max_t_per_year * (span if o.tier_basis == "total" else 1)
        for k, t in enumerate(o.tiers):
            nxt = o.tiers[k + 1].from_t if k + 1 < len(o.tiers) else top
            keys.append((o.id, k))
            lo[(o.id, k)], hi[(o.id, k)], disc[(o.id, k)] = t.from_t, max(nxt, t.from_t), t.discount
    return {"TIERS": tuple(keys), "tier_from_t": lo, "tier_to_t": hi, "tier_discount": disc,
            "offer_tier_mode": {o.id: o.tier_mode for o in inst.offers},
            "offer_tier_basis": {o.id: o.tier_basis for o in inst.offers}}


def _topological(inst: Instance, arcs: list[ArcSpec]) -> list[str]:
    """Facilities in an order where every arc's tail comes before its head (acyclic graph)."""
    fac = [f.id for f in inst.facilities]
    indeg = dict.fromkeys(fac, 0)
    succ: dict[str, list[str]] = {}
    for a in arcs:
        if a.from_node in indeg and a.to_node in indeg:
            indeg[a.to_node] += 1
            succ.setdefault(a.from_node, []).append(a.to_node)
    order, ready = [], sorted(f for f, n in indeg.items() if n == 0)
    while ready:
        f = ready.pop(0)
        order.append(f)
        for g in succ.get(f, []):
            indeg[g] -= 1
            if indeg[g] == 0:
                ready.append(g)
    return order


def _propagate_tags(inst: Instance, arcs: list[ArcSpec], relevant: dict[str, set[str]],
                    sold: set[tuple[str, str]]) -> dict:
    """For each buyer, walk the network in chain order and collect the origin tags each node
    can hand on: own-feed sales, spot purchases, and every input-tag combination of each
    processor. Returns the tag-indexed sets of ModelData."""
    fac = {f.id: f for f in inst.facilities}
    spots = {k.id: k for k in inst.spot_markets}
    supplier = {o.id: o.supplier for o in inst.offers}
    sellers = {(supplier[o], b) for o, b in sold}
    order = _topological(inst, arcs)
    arc_tags: set[tuple[str, str, str, str]] = set()
    outputs: set[tuple[str, str, str]] = set()
    combo_rows: set[tuple[str, str, str]] = set()
    inputs: set[tuple[str, str, str, str]] = set()
    arrivals: set[tuple[str, str, str]] = set()
    c_in: dict[tuple[str, str], dict[str, str]] = {}
    c_out: dict[tuple[str, str], str] = {}
    for b in sorted(relevant):
        rel = relevant[b]
        into: dict[str, list[ArcSpec]] = {}
        for a in arcs:
            if a.from_node in rel and (a.to_node == b or a.to_node in rel):
                into.setdefault(a.to_node, []).append(a)
        out: dict[str, set[str]] = {k: {spot_tag(spots[k])} for k in spots if k in rel}
        out.update({sp.id: set(stock_tags(inst, sp)) for sp in inst.stockpiles
                    if sp.id in rel})  # stockpiles release what they hold, tag by tag
        for f in order:
            if f not in rel:
                continue
            out[f] = {own_feed_tag(fac[f])} if (f, b) in sellers else set()
            if fac[f].recipe:
                tags_in: dict[str, set[str]] = {}
                for a in into.get(f, []):
                    tags_in.setdefault(a.material, set()).update(out.get(a.from_node, ()))
                for key, ins, tag in combos(fac[f], tags_in):
                    combo_rows.add((f, b, key))
                    c_in[(f, key)], c_out[(f, key)] = ins, tag
                    out[f].add(tag)
                    inputs.update((f, b, k, t) for k, t in ins.items())
            outputs.update((f, b, t) for t in out[f])
        for head, arcs_in in into.items():
            for a in arcs_in:
                for t in out.get(a.from_node, ()):
                    arc_tags.add((b, a.from_node, head, t))
                    if head == b:
                        arrivals.add((b, a.material, t))
    return {
        "BUYER_ARC_TAGS": tuple(sorted(arc_tags)),
        "OUTPUT_TAGS": tuple(sorted(outputs)),
        "COMBOS": tuple(sorted(combo_rows)),
        "combo_inputs": c_in,
        "combo_output": c_out,
        "INPUT_TAGS": tuple(sorted(inputs)),
        "ARRIVALS": tuple(sorted(arrivals)),
    }


def _scenario_keyed(d: ModelData) -> list[str]:
    """Fields of `d` keyed by scenario (the scenario is the last element of every key)."""
    scen = set(d.SCENARIOS)
    return [f.name for f in fields(d) if isinstance(val := getattr(d, f.name), dict) and val
            and all(isinstance(k, tuple) and k[-1] in scen for k in val)]


def scenario_view(d: ModelData, weights: dict[str, float], label: str) -> ModelData:
    """A one-scenario copy of `d` whose scenario-dependent data are the weighted sums over the
    given scenarios: with the probabilities as weights, the expected-value (EV) problem; with
    weight 1 on one scenario, that scenario alone (wait-and-see)."""
    changes: dict = {}
    for name in _scenario_keyed(d):
        acc: dict = {}
        for k, x in getattr(d, name).items():
            w = weights.get(k[-1], 0.0)
            key = (*k[:-1], label)
            if not w:
                continue
            if isinstance(x, str):  # a label (e.g. the price term): the first weighted one
                acc.setdefault(key, x)
            else:
                acc[key] = acc.get(key, 0.0) + w * x
        changes[name] = acc
    demand = changes.pop("demand_t")
    rows = {kind: tuple(replace(
        row, rhs={label: sum(weights.get(s, 0.0) * x for s, x in row.rhs.items())},
        demand_t=({label: sum(weights.get(s, 0.0) * x for s, x in row.demand_t.items())}
                  if row.demand_t else {})) for row in kind_rows)
        for kind, kind_rows in d.rule_rows.items()}
    return replace(d, **changes, SCENARIOS=(label,), probability={label: 1.0},
                   DEMANDS=tuple(sorted(k for k, x in demand.items() if x > 0)),
                   demand_t={k: x for k, x in demand.items() if x > 0}, rule_rows=rows)


@dataclass(frozen=True)
class ParametricView:
    """One scenario's model data with every scenario-dependent number replaced by a
    placeholder (`slot` i, made by the caller, e.g. a mutable parameter), and the value of
    each slot in every scenario: `values[s][i]`. Index sets are the union over the scenarios
    (a demand absent in a scenario is a slot worth 0 there), so one model serves them all."""

    data: ModelData
    slots: tuple[tuple[str, tuple], ...]
    """(field, key without the scenario) per slot; rule rows are ('rule_rows.rhs', (row,))
    and ('rule_rows.demand_t', (row,))."""
    values: dict[str, tuple[float, ...]]


def parametric_view(d: ModelData, label: str, slot) -> ParametricView:
    """See `ParametricView`; `slot(i)` makes the placeholder of slot i."""
    index: dict[tuple[str, tuple], int] = {}
    per: dict[str, dict[int, float]] = {s: {} for s in d.SCENARIOS}

    def place(name: str, key: tuple, s: str, x: float):
        i = index.setdefault((name, key), len(index))
        per[s][i] = float(x)
        return i

    changes: dict = {}
    for name in _scenario_keyed(d):
        acc: dict = {}
        for k, x in getattr(d, name).items():
            key = (*k[:-1], label)
            if isinstance(x, str):  # a label, not data the model reads
                acc.setdefault(key, x)
            else:
                acc[key] = place(name, tuple(k[:-1]), k[-1], x)
        changes[name] = acc
    for kind_rows in d.rule_rows.values():
        for row in kind_rows:
            if d.rule_in_expectation.get(row.rule):
                raise ValueError(f"rule {row.rule} holds in expectation: its rows couple "
                                 "the scenarios")
            for s, x in row.rhs.items():
                place("rule_rows.rhs", (row.row_id,), s, x)
            for s, x in row.demand_t.items():
                place("rule_rows.demand_t", (row.row_id,), s, x)
    placeholders = [slot(i) for i in range(len(index))]
    changes = {name: {k: (placeholders[v] if isinstance(v, int) else v)
                      for k, v in acc.items()} for name, acc in changes.items()}

    def held(part: str, row: RuleRow) -> dict:
        i = index.get((part, (row.row_id,)))
        return {} if i is None else {label: placeholders[i]}

    rows = {kind: tuple(replace(row, rhs=held("rule_rows.rhs", row),
                                demand_t=held("rule_rows.demand_t", row))
                        for row in kind_rows) for kind, kind_rows in d.rule_rows.items()}
    demand = changes["demand_t"]
    view = replace(d, **changes, SCENARIOS=(label,), probability={label: 1.0},
                   DEMANDS=tuple(sorted(demand)), rule_rows=rows)
    values = {s: tuple(vals.get(i, 0.0) for i in range(len(index))) for s, vals in per.items()}
    return ParametricView(view, tuple(index), values)
