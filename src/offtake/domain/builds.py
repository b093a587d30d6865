"""Build options in time: when a build option starts operating, what it adds in each year,
when its cost is paid, and the most capacity a facility can have (formulation.md,
facility_build).

Pure functions over schema objects (anything with the same attributes); used by validation,
the network (`network.potential_capacity`), the model data and the analyses. No Pyomo.
"""

from __future__ import annotations

from typing import Any


def start_year(option: Any, first_year: int) -> int:
    """y_j: the first year of operation, max(earliest_year, first_year + lead time)."""
    earliest = first_year + option.lead_time_years
    return max(earliest, option.earliest_year or earliest)


def cost_year(option: Any, first_year: int) -> int:
    """The year the build cost is paid: construction starts (start year minus lead time),
    not before the horizon's first year."""
    return max(first_year, start_year(option, first_year) - option.lead_time_years)


def ramp_share(option: Any, year: int, first_year: int) -> float:
    """rho_jt: the share of nameplate available in `year` (0 before the start year; the ramp's
    k-th value in the (k+1)-th year of operation; its last value afterwards)."""
    k = year - start_year(option, first_year)
    if k < 0:
        return 0.0
    return float(option.ramp[min(k, len(option.ramp) - 1)])


def added_capacity(option: Any, year: int, first_year: int) -> float:
    """rho_jt N_j: tonnes a year the option adds in `year` once built (nominal: before any
    scenario's capacity change)."""
    return ramp_share(option, year, first_year) * option.nameplate_t


def build_options(inst: Any) -> dict[str, tuple[Any, Any]]:
    """Every build option by id: (the option, its facility)."""
    return {j.id: (j, f) for f in inst.facilities for j in getattr(f, "builds", ())}


def in_objective(option: Any) -> bool:
    """Whether the option's build cost is paid by the buyers (a term of the objective)."""
    return option.paid_by in ("buyers", "consortium")


def government_payer(option: Any) -> str:
    """The third party that pays the build cost (fiscal cost), or '' (buyers or supplier)."""
    return "" if in_objective(option) or option.paid_by == "supplier" else option.paid_by
