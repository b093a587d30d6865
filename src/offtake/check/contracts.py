"""Offers and contracts: the first-stage decisions and what is paid under them.

Owns the checks of `offer_decision`, `contract_start_link`, `contract_volume_min/max` (with
nonanticipativity of the commitment), `take_or_pay_delivery_max` /
`take_or_pay_shortfall_min`, `force_majeure_delivery` (contracts curtailed by capacity cuts),
`volume_tier_link` (all-units and incremental tiers, annual or total basis),
`prepayment_credit_max/total`, and of the rows of offers.csv, contracts.csv (curtailed tonnes
and liquidated damages included), tiers.csv and credits.csv.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from offtake.check.context import (
    KG_PER_T,
    Ctx,
    UnitPrice,
    family_check,
    index_of,
    numbered,
    same_text,
)
from offtake.check.prices import contract_tariff_rate, offer_price
from offtake.check.tables import Plan, tier_number
from offtake.domain.schema import Offer


@family_check("offer_decision")
def check_offer_decision(c: Ctx, plan: Plan) -> None:
    """offer_decision: an offer with `decision: forced` is signed (z_o = 1), one with
    `decision: forbidden` is not (z_o = 0); a free offer may be either."""
    for o in c.inst.offers:
        z = plan.signed.get(o.id, 0)
        if o.decision == "forced" and z != 1:
            c.flag("offer_decision", o.id, 1.0, "offer is forced (decision: forced) but not "
                   "signed")
        elif o.decision == "forbidden" and z != 0:
            c.flag("offer_decision", o.id, 1.0, "offer is forbidden (decision: forbidden) "
                   "but signed")


@family_check("contract_start")
def check_contract_start(c: Ctx, t: dict[str, pd.DataFrame], plan: Plan) -> None:
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
    for pos, r in numbered(t["offers"]):
        _check_offer_row(c, f"offers.csv row {pos}", r, plan)


def _check_offer_row(c: Ctx, where: str, r: dict, plan: Plan) -> None:
    """One offers.csv row: supplier and material; the start of a signed offer (none for an
    unsigned one) and its signing cost, prepayment and signing year."""
    o = c.offers[r["offer_id"]]
    same_text(c, where, "supplier", r["supplier"], o.supplier)
    same_text(c, where, "material", r["material"], o.material)
    z, start = plan.signed[o.id], plan.start.get(o.id)
    if not z:
        if start is not None and o.start_years:
            c.flag("contract_start_link", o.id, 1.0,
                   f"unsigned offer has a start year ({start})")
        return  # unsigned rows may show the costs or nothing
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


@family_check("contract_volume")
def check_contract_volume(c: Ctx, plan: Plan) -> None:
    """contract_volume_min/max: min alpha_ot <= sum over eligible buyers of q <= max alpha_ot
    per (o, t), alpha_ot = 1 in the years a signed offer runs (from its start, for its term);
    no volume for ineligible buyers. The commitment is first stage: the same in every
    scenario (nonanticipativity)."""
    total: dict[tuple[str, int], float] = defaultdict(float)
    for (o_id, b, year), q in plan.volume.items():
        o = c.offers[o_id]
        values = plan.volume_by_scenario[(o_id, b, year)].values()
        if max(values) - min(values) > c.slack(max(values)):
            c.flag("nonanticipativity", index_of(o_id, b, year), max(values) - min(values),
                   f"committed volume_t differs between scenarios: {sorted(values)}")
        if b in c.eligible(o):
            total[(o_id, year)] += q
        else:
            c.at_most("contract_volume_max", index_of(o_id, b, year), q, 0.0,
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
                c.at_most("contract_volume_max", index_of(o.id, year), q, 0.0, f"volume on {why}")
                continue
            c.at_most("contract_volume_max", index_of(o.id, year), q, o.max_t_per_year,
                      "volume on signed offer above its maximum")
            c.at_least("contract_volume_min", index_of(o.id, year), q, o.min_t_per_year,
                       "signed offer below its minimum")


def _deliveries(c: Ctx, plan: Plan) -> list[tuple[Offer, str, int, str, float, float, float]]:
    """(offer, buyer, year, scenario, committed q, delivered d, shortfall f) of every
    contract row and scenario."""
    keys = {(o, b, t) for (o, b, t) in plan.volume}
    keys |= {(o, b, t) for (o, b, t, _s) in plan.delivered}
    return [(c.offers[o], b, year, s, plan.volume.get((o, b, year), 0.0),
             plan.delivered.get((o, b, year, s), 0.0), plan.shortfall.get((o, b, year, s), 0.0))
            for o, b, year in sorted(keys) for s in c.probability]


@family_check("take_or_pay")
def check_take_or_pay(c: Ctx, plan: Plan) -> None:
    """take_or_pay_delivery_max: d_obts <= a_ots q_obt; take_or_pay_shortfall_min: f_obts >=
    theta a_ots q_obt - d_obts, a_ots the share the supplier can deliver (force_majeure).
    Offers without take-or-pay have no shortfall."""
    for o, b, year, s, q, d, f in _deliveries(c, plan):
        index = index_of(o.id, b, year, s)
        a, _g = c.curtailment(o, year, s)
        if o.take_or_pay_share is None:
            c.at_most("table", "contracts.csv," + index, f, 0.0,
                      "shortfall_t on an offer without take-or-pay")
            continue
        c.at_most("take_or_pay_delivery_max", index, d, a * q,
                  f"delivered above {a:g} x committed (what the supplier can deliver)")
        c.at_least("take_or_pay_shortfall_min", index, f, o.take_or_pay_share * a * q - d,
                   f"shortfall below {o.take_or_pay_share:g} x {a:g} x committed - delivered")


@family_check("force_majeure")
def check_force_majeure(c: Ctx, plan: Plan) -> None:
    """force_majeure_delivery: an offer without take-or-pay delivers d_obts = a_ots q_obt,
    a_ots = min(1, kappa) of its supplier's capacity changes in (t, s): pro rata (d = q
    without a cut)."""
    for o, b, year, s, q, d, _f in _deliveries(c, plan):
        if o.take_or_pay_share is None:
            a, _g = c.curtailment(o, year, s)
            c.equal("force_majeure_delivery", index_of(o.id, b, year, s), d, a * q,
                    f"delivered_t vs {a:g} x volume_t (the share the supplier can deliver)")


def tier_bands(c: Ctx, o: Offer) -> list[tuple[float, float]]:
    """[lo_k, hi_k] of each tier: from_t to the next tier's from_t; the last band ends at
    max_t_per_year (annual) or max_t_per_year x the window length in the horizon (total)."""
    cap = o.max_t_per_year * (len(c.modelled_years(o)) if o.tier_basis == "total" else 1)
    starts = [tier.from_t for tier in o.tiers]
    return [(lo, starts[k + 1] if k + 1 < len(starts) else max(cap, lo))
            for k, lo in enumerate(starts)]


@family_check("volume_tiers")
def check_volume_tiers(c: Ctx, t: dict[str, pd.DataFrame], plan: Plan) -> None:
    """volume_tier_link: band volumes sum to the year's committed volume; all-units annual:
    one band holds all the volume and it lies within the band; incremental: bands fill in
    order, each within its width; total basis: one band for the whole contract, the total
    within it. Band volumes are first stage (the same in every scenario). tiers.csv rows:
    discount, the offer's unit price and the rebate."""
    _check_tier_numbers(c, plan)
    for o in c.inst.offers:
        if o.tiers:
            _check_tier_fill(c, o, plan)
    _check_tier_rows(c, t)


def _check_tier_numbers(c: Ctx, plan: Plan) -> None:
    """Each band volume names a tier of its offer and is the same in every scenario."""
    for (o_id, year, s, k), v in sorted(plan.tiers.items()):
        if k >= len(c.offers[o_id].tiers):
            c.flag("volume_tier_link", index_of(o_id, year, s, k), v,
                   f"offer '{o_id}' has {len(c.offers[o_id].tiers)} tier(s), no tier {k}")
    for o_id, year, k in sorted({(o, y, k) for (o, y, _s, k) in plan.tiers}):
        vs = [plan.tiers.get((o_id, year, s, k), 0.0) for s in c.probability]
        if max(vs) - min(vs) > c.slack(max(vs)):
            c.flag("nonanticipativity", index_of(o_id, year, k), max(vs) - min(vs),
                   f"band volume differs between scenarios: {vs}")


def _check_tier_fill(c: Ctx, o: Offer, plan: Plan) -> None:
    """The band volumes of one tiered offer in each scenario: they sum to the committed
    volume of each year and fill the bands as the tier mode and basis say."""
    bands = tier_bands(c, o)
    for s in c.probability:
        band = {(year, k): plan.tiers.get((o.id, year, s, k), 0.0)
                for year in c.years for k in range(len(bands))}
        for year in c.years:
            vs = [band[(year, k)] for k in range(len(bands))]
            index = index_of(o.id, year, s)
            c.equal("volume_tier_link", index, sum(vs), plan.committed(o.id, year),
                    "band volumes vs committed volume")
            if o.tier_mode == "incremental":
                _incremental(c, index, vs, bands)
            elif o.tier_basis == "annual":
                _all_units(c, index, vs, bands, "the year's")
        if o.tier_mode == "all_units" and o.tier_basis == "total":
            totals = [sum(band[(year, k)] for year in c.years) for k in range(len(bands))]
            _all_units(c, index_of(o.id, s), totals, bands, "the contract's")


def _check_tier_rows(c: Ctx, t: dict[str, pd.DataFrame]) -> None:
    """tiers.csv: each row's discount, the offer's unit price and the rebate."""
    for pos, r in numbered(t["tiers"]):
        o = c.offers[r["offer_id"]]
        tier = tier_number(r["tier"])
        where = f"tiers.csv row {pos}"
        if tier is None or tier >= len(o.tiers):
            c.flag("table", where, 1.0, f"offer '{o.id}' has no tier '{r['tier']}'")
            continue
        price = offer_price(c, o.id, int(r["year"]), r["scenario"]).price
        c.equal("table", where, r["discount"], o.tiers[tier].discount, "discount")
        c.equal("table", where, r["price_per_kg"], price, "price_per_kg")
        c.equal("table", where, r["rebate"], KG_PER_T * price * o.tiers[tier].discount
                * r["volume_t"], "rebate = price x discount x volume x 1000")


def _all_units(c: Ctx, index: str, vs: list[float], bands: list[tuple[float, float]],
               whose: str) -> None:
    """All-units tiers: one band holds all the volume, and the volume lies within it."""
    used = [k for k, v in enumerate(vs) if v > c.slack(0.0)]
    if len(used) > 1:
        c.flag("volume_tier_link", index, sum(vs) - max(vs),
               f"all-units tiers: {whose} volume spread over bands {used}")
    for k in used:
        lo, hi = bands[k]
        c.at_least("volume_tier_link", index, vs[k], lo, f"all-units band {k} below its start")
        c.at_most("volume_tier_link", index, vs[k], hi, f"all-units band {k} above its end")


def _incremental(c: Ctx, index: str, vs: list[float], bands: list[tuple[float, float]]) -> None:
    """Incremental tiers: each band within its width, filled before the next one is used."""
    for k, (lo, hi) in enumerate(bands):
        c.at_most("volume_tier_link", index, vs[k], hi - lo, f"incremental band {k} over its width")
        if k + 1 < len(vs) and vs[k + 1] > c.slack(0.0):
            c.at_least("volume_tier_link", index, vs[k], hi - lo,
                       f"incremental band {k + 1} used before band {k} is full")


def active_tier_ok(c: Ctx, o: Offer, plan: Plan, year: int, label: str) -> str | None:
    """Why contracts.csv's `tier` label is wrong, or None: '' without tiers (or without
    volume); else a tier whose band holds the year's (total basis: the contract's) volume."""
    if not o.tiers:
        return None if label == "" else f"tier '{label}' on an offer without tiers"
    volume = (sum(plan.committed(o.id, y) for y in c.years) if o.tier_basis == "total"
              else plan.committed(o.id, year))
    if label == "":
        return None if volume <= c.slack(0.0) else f"no tier for {volume:g} t"
    k = tier_number(label)
    bands = tier_bands(c, o)
    if k is None or k >= len(bands):
        return f"tier '{label}' does not exist"
    lo, hi = bands[k]
    if volume < lo - c.slack(lo) or volume > hi + c.slack(hi):
        return f"tier {k} covers {lo:g}-{hi:g} t, the volume is {volume:g} t"
    return None


@family_check("prepayment_credit")
def check_prepayment_credit(c: Ctx, plan: Plan) -> None:
    """prepayment_credit_max: c_ots <= 1000 P_ots sum_b d_obts (that year's payments under the
    offer); prepayment_credit_total: sum_t c_ots <= kappa Pi z_o."""
    total: dict[tuple[str, str], float] = defaultdict(float)
    for (o_id, year, s), credit in sorted(plan.credits.items()):
        price = offer_price(c, o_id, year, s).price
        paid = KG_PER_T * price * plan.delivered_total(o_id, year, s)
        c.at_most("prepayment_credit_max", index_of(o_id, year, s), credit, paid,
                  "credit above the year's payments under the offer")
        total[(o_id, s)] += credit
    for (o_id, s), credit in sorted(total.items()):
        o = c.offers[o_id]
        cap = o.prepayment_credit_share * o.prepayment * plan.signed.get(o_id, 0)
        c.at_most("prepayment_credit_total", index_of(o_id, s), credit, cap,
                  f"credits above {o.prepayment_credit_share:g} x prepayment (signed: "
                  f"{plan.signed.get(o_id, 0)})")


def check_contract_rows(c: Ctx, t: dict[str, pd.DataFrame], plan: Plan) -> None:
    """contracts.csv: each row agrees with the instance and offers.csv, and its price, label,
    active tier, payment, shortfall payment, tariff and fiscal columns are recomputed."""
    for pos, r in numbered(t["contracts"]):
        o = c.offers[r["offer_id"]]
        where = f"contracts.csv row {pos}"
        year, s = int(r["year"]), r["scenario"]
        same_text(c, where, "supplier", r["supplier"], o.supplier)
        same_text(c, where, "material", r["material"], o.material)
        if o.supplier in c.facilities:
            same_text(c, where, "company", r["company"], c.facilities[o.supplier].company)
        c.equal("table", where, r["signed"], plan.signed.get(o.id, 0), "signed vs offers.csv")
        up = offer_price(c, o.id, year, s)
        c.equal("table", where, r["price_per_kg"], up.price, "price_per_kg")
        if r["price_term"] not in up.terms:
            c.flag("table", where, 1.0, f"price_term is '{r['price_term']}', expected "
                   f"{' or '.join(repr(x) for x in sorted(up.terms))}")
        problem = active_tier_ok(c, o, plan, year, r["tier"])
        if problem:
            c.flag("table", where, 1.0, problem)
        _check_contract_money(c, where, r, o, up)


def _check_contract_money(c: Ctx, where: str, r: dict, o: Offer, up: UnitPrice) -> None:
    """A contracts.csv row's payment, shortfall payment, tariff and fiscal columns."""
    year, d = int(r["year"]), r["delivered_t"]
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
    a, g = c.curtailment(o, year, r["scenario"])
    c.equal("table", where, r["curtailed_t"], (1.0 - a) * r["volume_t"],
            f"curtailed_t = (1 - {a:g}) x volume_t")
    c.equal("table", where, r["damages"],
            KG_PER_T * o.liquidated_damages_per_kg * g * r["volume_t"],
            "damages = 1000 x liquidated_damages_per_kg x g x volume_t")


def check_credit_rows(c: Ctx, t: dict[str, pd.DataFrame]) -> None:
    """credits.csv: one row per (offer, year, scenario)."""
    seen = set()
    for pos, r in numbered(t["credits"]):
        key = (r["offer_id"], int(r["year"]), r["scenario"])
        if key in seen:
            c.flag("table", f"credits.csv row {pos}", 1.0, f"row {index_of(*key)} repeated")
        seen.add(key)
