"""Constraint families of the contracts (first-stage decisions and their terms): decisions
taken before the optimisation, start windows, volume bounds, take-or-pay, curtailment under
force majeure, volume tiers, prepayment credits."""

from __future__ import annotations

import pyomo.core as pyo

from offtake.formulation.data import ModelData
from offtake.formulation.expressions import (
    active,
    available,
    delivered,
    family_builder,
    group_by,
)


@family_builder("offer_decision")
def add_offer_decision(m: pyo.ConcreteModel, d: ModelData) -> None:
    """An offer decided before the optimisation: a forced offer is signed, a forbidden one is
    not (its volumes, start and tier stay the optimizer's choice). Every offer has the row; a
    decision changes its bounds only.

    .. math:: \\ell_o \\le z_o \\le u_o \\qquad (\\ell_o, u_o) = (1, 1)\\ \\text{forced},\\ (0,
        0)\\ \\text{forbidden},\\ (0, 1)\\ \\text{free}

    Reads offers' decision. Dual: none of use (the value of a decision is the difference to a
    solve where the offer is free: `offtake compare`).
    """
    bounds = {"forced": (1, 1), "forbidden": (0, 0), "free": (0, 1)}

    def row(_, o):
        low, high = bounds[d.offer_decision.get(o, "free")]
        return (low, m.v_signed[o], high)

    m.offer_decision = pyo.Constraint(m.OFFERS, rule=row)


@family_builder("contract_start")
def add_contract_start(m: pyo.ConcreteModel, d: ModelData) -> None:
    """A signed offer with a start window starts in exactly one of its start years; it then
    runs for its term (see `offer_start_cover`).

    .. math:: \\sum_{y_0} \\sigma_{oy_0} = z_o

    Reads offers' start_years and term_years. Dual: none of business interest.
    """
    starts = group_by(d.OFFER_STARTS, lambda k: k[0], lambda k: k[1])
    m.contract_start_link = pyo.Constraint(
        pyo.Set(initialize=sorted(starts), ordered=True),
        rule=lambda _, o: sum(m.v_start[o, y0] for y0 in starts[o]) == m.v_signed[o])


@family_builder("contract_volume")
def add_contract_volume(m: pyo.ConcreteModel, d: ModelData) -> None:
    """A signed offer is taken between its minimum and maximum annual volume; an unsigned one
    not at all.

    .. math:: \\underline{q}_o\\, \\alpha_{ot} \\;\\le\\; \\sum_b q_{obt} \\;\\le\\;
        \\overline{q}_o\\, \\alpha_{ot} \\qquad \\forall (o,t)

    Reads offers' min_t_per_year, max_t_per_year. Dual: value (currency per t) of one more
    tonne of the offer's minimum (min row) or maximum (max row) in that year.
    """
    buyers = group_by(d.OFFER_BUYER_YEARS, lambda k: (k[0], k[2]), lambda k: k[1])

    def taken(o, y):
        return sum(m.v_volume_t[o, b, y] for b in buyers.get((o, y), []))

    m.contract_volume_max = pyo.Constraint(
        m.OFFER_YEARS,
        rule=lambda _, o, y: taken(o, y) <= d.offer_cap_t[o, y] * active(m, d, o, y))
    m.contract_volume_min = pyo.Constraint(
        m.OFFER_YEARS, rule=lambda _, o, y: taken(o, y) >= d.offer_min_t[o] * active(m, d, o, y))


@family_builder("take_or_pay")
def add_take_or_pay(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Take-or-pay: the buyer takes delivery of at most what the supplier can deliver of its
    contracted volume in each scenario, and any delivery below the take-or-pay share of that
    is a shortfall (paid for); curtailed tonnes are not the buyer's shortfall.

    .. math:: d_{obts} \\le a_{ots}\\, q_{obt}, \\qquad f_{obts} \\ge \\theta_o\\, a_{ots}\\,
        q_{obt} - d_{obts}

    Reads take_or_pay_share (and a_ots: force_majeure). Dual (shortfall row): value of taking
    one more tonne (currency per t).
    """
    m.take_or_pay_delivery_max = pyo.Constraint(
        m.SHORTFALLS, rule=lambda _, o, b, y, s: m.v_delivered_t[o, b, y, s]
        <= available(d, o, y, s) * m.v_volume_t[o, b, y])
    m.take_or_pay_shortfall_min = pyo.Constraint(
        m.SHORTFALLS, rule=lambda _, o, b, y, s: m.v_shortfall_t[o, b, y, s]
        >= d.offer_top_share[o] * available(d, o, y, s) * m.v_volume_t[o, b, y]
        - m.v_delivered_t[o, b, y, s])


@family_builder("force_majeure")
def add_force_majeure(m: pyo.ConcreteModel, d: ModelData) -> None:
    """A scenario that cuts the supplier's capacity curtails its contracts pro rata: without
    take-or-pay, the delivery is the share of the contracted volume the supplier can still
    deliver (with take-or-pay: at most that, see take_or_pay).

    .. math:: d_{obts} = a_{ots}\\, q_{obt}

    Reads offers' force_majeure and liquidated_damages_per_kg (the damages are a cost term)
    and the scenarios' capacity changes (multipliers and causes). Dual: value of one more
    tonne delivered under the contract (currency per t).
    """
    top = set(d.TAKE_OR_PAY)
    m.CURTAILED_DELIVERIES = pyo.Set(initialize=[k for k in m.DELIVERIES if k[0] not in top],
                                     dimen=4, ordered=True)
    m.force_majeure_delivery = pyo.Constraint(
        m.CURTAILED_DELIVERIES, rule=lambda _, o, b, y, s: m.v_delivered_t[o, b, y, s]
        == available(d, o, y, s) * m.v_volume_t[o, b, y])


@family_builder("volume_tiers")
def add_volume_tiers(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Volume tiers: the contracted volume is split into tier bands; all-units tiers pick one
    band for the whole volume, incremental tiers fill bands in order (binary per band).

    .. math:: \\sum_k v_{otk} = \\sum_b q_{obt}, \\qquad \\sum_k w_{otk} = \\alpha_{ot}, \\qquad
        \\underline V_k\\, w_{otk} \\le v_{otk} \\le \\overline V_k\\, w_{otk}

    Reads tiers, tier_mode, tier_basis. Dual: none of business interest (MIP).
    """
    bought = group_by(d.OFFER_BUYER_YEARS, lambda k: (k[0], k[2]), lambda k: k[1])
    tiers = group_by(d.TIERS, lambda k: k[0], lambda k: k[1])
    years = group_by(d.OFFER_YEARS, lambda k: k[0], lambda k: k[1])
    rows = []
    for o, ks in tiers.items():
        for y in years.get(o, []):
            rows.append(sum(m.v_tier_t[o, y, k] for k in ks)
                        == sum(m.v_volume_t[o, b, y] for b in bought.get((o, y), [])))
        rows += (_annual_tier_rows(m, d, o, ks, years.get(o, []))
                 if d.offer_tier_basis[o] == "annual"
                 else _total_tier_rows(m, d, o, ks, years.get(o, [])))
    m.volume_tier_link = pyo.ConstraintList()
    for row in rows:
        m.volume_tier_link.add(row)


def _annual_tier_rows(m, d: ModelData, o: str, ks: list[int], years: list[int]) -> list:
    rows = []
    for y in years:
        w = [m.v_tier[o, y, k] for k in ks]
        v = [m.v_tier_t[o, y, k] for k in ks]
        lo = [d.tier_from_t[o, k] for k in ks]
        hi = [d.tier_to_t[o, k] for k in ks]
        if d.offer_tier_mode[o] == "all_units":
            rows.append(sum(w) == active(m, d, o, y))
            rows += [v[i] >= lo[i] * w[i] for i in range(len(ks))]
            rows += [v[i] <= hi[i] * w[i] for i in range(len(ks))]
        else:  # incremental: band i is filled only if band i+1 is used
            rows.append(w[0] == active(m, d, o, y))
            rows += [v[i] <= (hi[i] - lo[i]) * w[i] for i in range(len(ks))]
            rows += [v[i] >= (hi[i] - lo[i]) * w[i + 1] for i in range(len(ks) - 1)]
            rows += [w[i + 1] <= w[i] for i in range(len(ks) - 1)]
    return rows


def _total_tier_rows(m, d: ModelData, o: str, ks: list[int], years: list[int]) -> list:
    w = {k: m.v_tier[o, 0, k] for k in ks}
    rows = [sum(w.values()) == m.v_signed[o]]
    for k in ks:
        total = sum(m.v_tier_t[o, y, k] for y in years)
        rows += [total >= d.tier_from_t[o, k] * w[k], total <= d.tier_to_t[o, k] * w[k]]
        rows += [m.v_tier_t[o, y, k] <= d.offer_cap_t[o, y] * w[k] for y in years]
    return rows


@family_builder("prepayment_credit")
def add_prepayment_credit(m: pyo.ConcreteModel, d: ModelData) -> None:
    """A prepayment is credited against purchases under its offer: in each year at most that
    year's payments, in total at most the creditable share of the prepayment.

    .. math:: c_{ots} \\le P_{ots} \\sum_b d_{obts}, \\qquad \\sum_t c_{ots} \\le \\kappa_o
        \\Pi_o z_o

    Reads prepayment, prepayment_credit_share. Dual: none of business interest.
    """
    bought = group_by(d.OFFER_BUYER_YEARS, lambda k: (k[0], k[2]), lambda k: k[1])
    m.prepayment_credit_max = pyo.Constraint(
        m.CREDITS, rule=lambda _, o, y, s: m.v_credit[o, y, s] <= d.offer_price_per_t[o, y, s]
        * sum(delivered(m, o, b, y, s) for b in bought.get((o, y), [])))
    per = group_by(m.CREDITS, lambda k: (k[0], k[2]), lambda k: k[1])
    m.prepayment_credit_total = pyo.Constraint(
        pyo.Set(initialize=sorted(per), dimen=2, ordered=True),
        rule=lambda _, o, s: sum(m.v_credit[o, y, s] for y in per[o, s])
        <= d.offer_prepayment_credit[o] * m.v_signed[o])
