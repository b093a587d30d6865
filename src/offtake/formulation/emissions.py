"""Emissions of the buyers' supply networks as model expressions (formulation.md, Emissions
and concentration): E_bts, linear in the plan, read by the carbon price (`carbon_costs`) and
by the key figures of a solve. No constraints here: the intensity cap is a rule kind
(`formulation.rules`, rows from `formulation.ruledata`)."""

from __future__ import annotations

from collections import defaultdict

import pyomo.core as pyo

from offtake.formulation.data import ModelData
from offtake.formulation.expressions import delivered


def emission_terms(m: pyo.ConcreteModel, d: ModelData) -> dict[tuple[str, int, str], list]:
    """(buyer, year, scenario) -> the terms of E_bts (t CO2e): own-feed sales, processing and
    flows, each times its factor; factors of 0 give no term."""
    out: dict[tuple[str, int, str], list] = defaultdict(list)
    for o, b, y in m.OFFER_BUYER_YEARS:
        if o in d.offer_emission:
            for s in d.SCENARIOS:
                out[b, y, s].append(d.offer_emission[o] * delivered(m, o, b, y, s))
    for f, b, c, y, s in m.PRODUCTIONS:
        if f in d.facility_emission:
            out[b, y, s].append(d.facility_emission[f] * m.v_production_t[f, b, c, y, s])
    for b, i, j, t, y, s in m.FLOWS:
        if (i, j) in d.flow_emission:
            out[b, y, s].append(d.flow_emission[i, j] * m.v_flow_t[b, i, j, t, y, s])
    return out


def emission_values(m: pyo.ConcreteModel, d: ModelData) -> dict[tuple[str, int, str], float]:
    """E_bts at the solution (t CO2e), for the (buyer, year, scenario) with any term: the
    terms of `emission_terms` from the variables' values (no expression is built)."""
    out: dict[tuple[str, int, str], float] = defaultdict(float)
    for o, b, y in m.OFFER_BUYER_YEARS:
        if o in d.offer_emission:
            for s in d.SCENARIOS:
                out[b, y, s] += d.offer_emission[o] * (delivered(m, o, b, y, s).value or 0.0)
    for (f, b, _c, y, s), v in m.v_production_t.items():
        if f in d.facility_emission:
            out[b, y, s] += d.facility_emission[f] * (v.value or 0.0)
    for (b, i, j, _t, y, s), v in m.v_flow_t.items():
        if (i, j) in d.flow_emission:
            out[b, y, s] += d.flow_emission[i, j] * (v.value or 0.0)
    return dict(out)
