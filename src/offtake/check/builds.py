"""Build options: when they operate, what they add, and the facility_build family.

Owns the build options' timing recomputed from formulation.md (facility_build): the start
year y_j = max(earliest_year, t_1 + lead time), the ramp rho_jt, the year the cost is paid
t^c_j = max(t_1, y_j - lead time); `built_capacity` (what built options add to a facility in a
year and scenario, read by facility_capacity_max); and the checks of `build_decision`,
`build_requires_link`, `build_offer_link` and of builds.csv.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from offtake.check.context import Ctx, family_check, numbered, same_text
from offtake.check.tables import Plan

REPORTED_PAYERS = ("buyers", "consortium")
"""`paid_by` values whose build cost is in the objective (formulation.md, facility_build)."""


def start_year(c: Ctx, option: Any) -> int:
    """y_j = max(earliest_year, t_1 + lead_time_years)."""
    soonest = c.years[0] + option.lead_time_years
    return max(soonest, option.earliest_year or soonest)


def cost_year(c: Ctx, option: Any) -> int:
    """t^c_j = max(t_1, y_j - lead_time_years)."""
    return max(c.years[0], start_year(c, option) - option.lead_time_years)


def nameplate(c: Ctx, option: Any, year: int) -> float:
    """rho_jt N_j: ramp[t - y_j] x nameplate (the last ramp value later; 0 before y_j)."""
    k = year - start_year(c, option)
    if k < 0:
        return 0.0
    return option.ramp[min(k, len(option.ramp) - 1)] * option.nameplate_t


def modelled(c: Ctx) -> dict[str, tuple[Any, Any]]:
    """Build options that can start within the horizon: id -> (option, facility)."""
    return {j: jf for j, jf in c.build_options.items()
            if start_year(c, jf[0]) <= c.years[-1]}


def built_capacity(c: Ctx, plan: Plan, f: str, year: int, s: str) -> float:
    """kappa_fts sum_j rho_jt N_j b_j over f's build options."""
    added = sum(nameplate(c, j, year) for j in c.facilities[f].builds
                if plan.built.get(j.id, 0))
    return added * c.capacity_factor(f, year, s) if added else 0.0


@family_check("facility_build")
def check_facility_build(c: Ctx, t: dict[str, pd.DataFrame], plan: Plan) -> None:
    """build_decision: forced options built, forbidden ones not; build_requires_link: b_j <=
    b_r(j); build_offer_link: an offer of a candidate plant is signed only if one of the
    plant's options is built; an option that cannot start in the horizon is not built.
    builds.csv: a row per modelled option, its columns as the instance says."""
    options = modelled(c)
    for j, (opt, _f) in c.build_options.items():
        b = plan.built.get(j, 0)
        if j not in options:
            c.at_most("build_decision", j, b, 0.0, "option cannot start within the horizon")
            continue
        if j not in plan.built:
            c.flag("table", f"builds.csv,{j}", 1.0, f"modelled build option '{j}' has no row")
        if opt.decision == "forced" and b != 1:
            c.flag("build_decision", j, 1.0, "option is forced (decision: forced) but not built")
        elif opt.decision == "forbidden" and b != 0:
            c.flag("build_decision", j, 1.0, "option is forbidden but built")
        if opt.requires is not None:
            c.at_most("build_requires_link", j, b, plan.built.get(opt.requires, 0),
                      f"built without '{opt.requires}', which it requires")
    for o in c.inst.offers:
        fac = c.facilities.get(o.supplier)
        if (fac is not None and fac.candidate and plan.signed.get(o.id)
                and not any(plan.built.get(j.id, 0) for j in fac.builds)):
            c.flag("build_offer_link", o.id, 1.0, f"offer of candidate plant '{fac.id}' "
                   "signed, but none of its build options is built")
    for pos, r in numbered(t["builds"]):
        _check_build_row(c, f"builds.csv row {pos}", r)


def _check_build_row(c: Ctx, where: str, r: dict) -> None:
    opt, fac = c.build_options[r["build_id"]]
    same_text(c, where, "facility", r["facility"], fac.id)
    same_text(c, where, "paid_by", r["paid_by"], opt.paid_by)
    same_text(c, where, "in_objective", r["in_objective"].lower(),
              str(opt.paid_by in REPORTED_PAYERS).lower())
    c.equal("table", where, r["start_year"], start_year(c, opt), "start_year")
    c.equal("table", where, r["nameplate_t"], opt.nameplate_t, "nameplate_t")
    c.equal("table", where, r["cost"], opt.cost, "cost")
    c.equal("table", where, r["cost_year"], cost_year(c, opt), "cost_year")
