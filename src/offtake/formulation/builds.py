"""The build options' constraint family (first stage): what a built option adds to its
facility's capacity (`expressions.capacity`, read by facility_capacity), offers of candidate
plants that exist only once built, options that require another, and decisions taken before
the optimisation."""

from __future__ import annotations

import pyomo.core as pyo

from offtake.formulation.data import ModelData
from offtake.formulation.expressions import family_builder, group_by


@family_builder("facility_build")
def add_facility_build(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Build options: a built option adds its ramped nameplate to its facility's capacity; an
    offer of a candidate plant can be signed only if one of the plant's options is built; an
    option that requires another is built only with it; decided options are fixed.

    .. math:: K_{fts} = \\kappa_{fts}\\Big(K^0_{ft} + \\sum_{j \\in J(f)} \\rho_{jt} N_j\\,
        b_j\\Big), \\qquad z_o \\le \\sum_{j \\in J(f(o))} b_j \\quad \\forall o \\in
        O^{\\mathrm{cand}}, \\qquad b_j \\le b_{r(j)}, \\qquad b_j = 1\\ (j \\in
        J^{\\mathrm{forced}}),\\ b_j = 0\\ (j \\in J^{\\mathrm{forbidden}})

    Reads facilities' candidate and builds (nameplate_t, ramp, earliest_year,
    lead_time_years, requires, decision). Dual: none of business interest (MIP; the value of
    a build is the difference to a solve with it forced or forbidden).
    """
    options = group_by(d.CANDIDATE_OFFERS, lambda k: k[0], lambda k: k[1])
    m.build_offer_link = pyo.Constraint(
        pyo.Set(initialize=sorted(options), ordered=True),
        rule=lambda _, o: m.v_signed[o] <= sum(m.v_built[j] for j in options[o]))
    m.build_requires_link = pyo.Constraint(
        pyo.Set(initialize=sorted(d.build_requires), ordered=True),
        rule=lambda _, j: m.v_built[j] <= m.v_built[d.build_requires[j]])
    m.build_decision = pyo.Constraint(
        pyo.Set(initialize=sorted(d.build_decision), ordered=True),
        rule=lambda _, j: m.v_built[j] == (1 if d.build_decision[j] == "forced" else 0))
