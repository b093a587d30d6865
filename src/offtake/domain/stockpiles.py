"""Strategic stockpiles (formulation.md, stockpile_balance, stockpile_level,
stockpile_release): who may receive a stockpile's releases, when it may release, the origin
tags its stock can hold, and the whole-instance checks of `stockpiles[]` (references, the
location, a government's purchases given as data).

Pure functions over the schema objects (or any object with the same attributes, so that
validation can run them on the parts of a file that parsed). No Pyomo.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from offtake.domain.findings import nearest
from offtake.domain.network import at


def held_by_buyer(inst: Any, sp: Any) -> bool:
    """The holder is one of the instance's buyers (else a government: a third party)."""
    return sp.holder in {b.id for b in inst.buyers}


def release_allowed(sp: Any, scenario: Any, year: int) -> bool:
    """rho_pts: any_time, or a release window of the scenario names the stockpile (or names
    none) and covers the year."""
    if sp.release == "any_time":
        return True
    for w in getattr(scenario, "releases", ()):
        names = w.stockpiles is None or sp.id in w.stockpiles
        if names and (w.from_year is None or year >= w.from_year) and (
                w.to_year is None or year <= w.to_year):
            return True
    return False


def _series_ok(c: Any, series: Any, years: list[int], loc: str) -> None:
    if isinstance(series, Mapping) and set(series) != set(years):
        c.error("misaligned_years", loc, f"years {sorted(series)} are not the horizon "
                f"{years[0]}-{years[-1]}", "give one value per year, or a single constant")


def check_stockpiles(inst: Any, c: Any) -> None:
    """Located findings for every stockpile: material, location (a facility taking the
    material, or a buyer demanding it), markets (of the material), buyers released to,
    series aligned to the horizon, purchase bounds in order, a minimum level it can reach
    (initial level plus the most it may buy), a government's purchases fixed
    (minimum = maximum, one market), no release price on a buyer's own stock, and the
    stockpiles named by scenarios' release windows."""
    stockpiles = list(getattr(inst, "stockpiles", None) or [])
    ids = [sp.id for sp in stockpiles]
    for i, sc in enumerate(inst.scenarios):
        for j, w in enumerate(getattr(sc, "releases", ())):
            for name in w.stockpiles or []:
                if name not in ids:
                    c.error("unknown_reference", f"scenarios[{i}].releases[{j}].stockpiles",
                            f"unknown stockpile '{name}'", nearest(name, ids))
    if not stockpiles:
        return
    years = list(inst.horizon.years)
    materials = {m.id for m in inst.materials}
    fac = {f.id: f for f in inst.facilities}
    buyers = {b.id: b for b in inst.buyers}
    markets = {k.id: k for k in inst.spot_markets}
    for i, sp in enumerate(stockpiles):
        loc = f"stockpiles[{i}]"
        if sp.material not in materials:
            c.error("unknown_reference", f"{loc}.material", f"unknown material '{sp.material}'",
                    nearest(sp.material, sorted(materials)))
        if sp.location in fac:
            if sp.material not in fac[sp.location].recipe:
                c.error("stockpile_location", f"{loc}.location", f"facility '{sp.location}' "
                        f"does not take '{sp.material}' in its recipe",
                        "release to a processor that uses the material, or to a buyer "
                        "that demands it")
        elif sp.location in buyers:
            if sp.material not in buyers[sp.location].demand_t:
                c.error("stockpile_location", f"{loc}.location", f"buyer '{sp.location}' "
                        f"does not demand '{sp.material}'",
                        "release to a buyer that demands the material")
        else:
            c.error("unknown_reference", f"{loc}.location", f"unknown facility or buyer "
                    f"'{sp.location}'", nearest(sp.location, sorted(set(fac) | set(buyers))))
        for j, k in enumerate(sp.markets):
            if k not in markets:
                c.error("unknown_reference", f"{loc}.markets[{j}]", f"unknown spot market "
                        f"'{k}'", nearest(k, sorted(markets)))
            elif markets[k].material != sp.material:
                c.error("stockpile_market", f"{loc}.markets[{j}]", f"spot market '{k}' sells "
                        f"'{markets[k].material}', not '{sp.material}'")
        for j, b in enumerate(sp.release_to or []):
            if b not in buyers:
                c.error("unknown_reference", f"{loc}.release_to[{j}]", f"unknown buyer '{b}'",
                        nearest(b, sorted(buyers)))
        for name in ("min_level_t", "purchase_min_t", "purchase_max_t",
                     "release_price_per_kg"):
            _series_ok(c, getattr(sp, name), years, f"{loc}.{name}")
        if sp.purchase_max_t is not None and any(
                at(sp.purchase_min_t, y) > at(sp.purchase_max_t, y) + 1e-9 for y in years):
            c.error("min_above_max", f"{loc}.purchase_min_t",
                    "purchase_min_t is above purchase_max_t in some year")
        buys = sp.purchase_max_t is None or any(at(sp.purchase_max_t, y) > 0 for y in years)
        if sp.min_level_t is not None and not (sp.markets and sp.purchase_max_t is None):
            reachable = sp.initial_t
            for y in years:
                reachable += at(sp.purchase_max_t, y) if sp.markets else 0.0
                if at(sp.min_level_t, y) > min(reachable, sp.capacity_t) + 1e-9:
                    c.error("stockpile_min_unreachable", f"{loc}.min_level_t",
                            f"the minimum level {at(sp.min_level_t, y):g} t in {y} is above "
                            f"what the stockpile can hold by then ({reachable:g} t: initial "
                            "level plus the most it may buy)",
                            "lower min_level_t, or allow purchases (markets, purchase_max_t)")
                    break
        if any(at(sp.purchase_min_t, y) > 0 for y in years) and not sp.markets:
            c.error("stockpile_market", f"{loc}.markets",
                    "purchase_min_t asks for purchases but no market is listed")
        if sp.holder in buyers:
            if sp.release_to is not None and set(sp.release_to) - {sp.holder}:
                c.error("stockpile_release_to", f"{loc}.release_to", f"a buyer's stockpile "
                        f"releases to its holder '{sp.holder}' only")
            if any(at(sp.release_price_per_kg, y) > 0 for y in years):
                c.error("stockpile_release_price", f"{loc}.release_price_per_kg",
                        "a buyer takes its own stock: no release price",
                        "a release price is what buyers pay a government holder")
        elif sp.markets and buys:
            fixed = sp.purchase_max_t is not None and all(
                abs(at(sp.purchase_min_t, y) - at(sp.purchase_max_t, y)) <= 1e-9
                for y in years)
            if not fixed or len(sp.markets) != 1:
                c.error("stockpile_government_purchases", f"{loc}.purchase_max_t",
                        f"'{sp.holder}' is not a buyer: a government's purchases are data",
                        "give purchase_min_t equal to purchase_max_t and one market (its "
                        "cost is fiscal cost, which the objective does not weigh)")
