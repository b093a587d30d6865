"""Shared expressions of the model: whether an offer runs in a year, what a contract delivers,
the grouping helper the builders use to index sparse sums, and the table of the constraint
families' builders (`FAMILY_BUILDERS`, filled by `@family_builder` in the family modules). No
constraints here."""

from __future__ import annotations

from collections import defaultdict

import pyomo.core as pyo

from offtake.domain.registry import FAMILIES, implementation_table
from offtake.formulation.data import ModelData

FAMILY_BUILDERS, family_builder = implementation_table("constraint family", lambda: FAMILIES)
"""Builder `add_<family>(m, d)` of each registered constraint family that is not a rule."""


def group_by(keys, key, value) -> dict:
    out: dict = defaultdict(list)
    for k in keys:
        out[key(k)].append(value(k))
    return out


def active(m: pyo.ConcreteModel, d: ModelData, o: str, y: int):
    """1 if offer o runs in year y: signed (and, with a start window, started in time)."""
    cover = d.offer_start_cover.get((o, y))
    if cover is None:
        return m.v_signed[o]
    return sum(m.v_start[o, y0] for y0 in cover)


def available(d: ModelData, o: str, y: int, s: str):
    """a_ots: the share of the contracted volume the supplier can deliver in (y, s) after
    capacity cuts (force_majeure); 1 where no scenario curtails the offer."""
    return d.offer_available_share.get((o, y, s), 1.0)


def delivered(m: pyo.ConcreteModel, o: str, b: str, y: int, s: str):
    """Tonnes delivered under o to b in (y, s): the contracted volume, or the (second-stage)
    delivery under take-or-pay or when a scenario curtails the offer."""
    if (o, b, y, s) in m.DELIVERIES:
        return m.v_delivered_t[o, b, y, s]
    return m.v_volume_t[o, b, y]


def capacity(m: pyo.ConcreteModel, d: ModelData, builds: dict, f: str, y: int, s: str):
    """K_fts: the facility's capacity in (y, s), plus what each of its built options adds
    (`builds`: (facility, year, scenario) -> the options adding capacity then)."""
    return d.capacity_t[f, y, s] + sum(d.build_capacity_t[j, y, s] * m.v_built[j]
                                       for j in builds.get((f, y, s), ()))


def adding_builds(d: ModelData) -> dict:
    """(facility, year, scenario) -> the build options that add capacity there."""
    return group_by(d.build_capacity_t, lambda k: (d.build_facility[k[0]], k[1], k[2]),
                    lambda k: k[0])


def tier_choices(d: ModelData) -> list[tuple[str, int, int]]:
    """(offer, period, tier): period = year for annual tiers, 0 for tiers on the total."""
    years = group_by(d.OFFER_YEARS, lambda k: k[0], lambda k: k[1])
    return [(o, p, k) for o, k in d.TIERS
            for p in (years.get(o, []) if d.offer_tier_basis[o] == "annual" else [0])]
