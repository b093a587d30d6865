"""Scenario sets written compactly: the product of independent factors' levels, optionally
combined with sampled index price paths, expanded into explicit scenarios before validation
(so the expanded set is checked by the same schema as a hand-written one).

Pure functions over plain data and the schema; no Pyomo.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np

from offtake.domain.network import at
from offtake.domain.schema import IndexSampling, ScenarioSpec

CHANGE_KEYS = ("index_paths", "capacity", "demand", "spot")


def expand(spec: ScenarioSpec, indices: list[dict], years: list[int]) -> list[dict]:
    """Explicit scenarios (as dicts) of a spec: ids join `factor.level` pairs with '__' (and
    end in '-sK' for the K-th sample); probabilities multiply; the changes of the levels are
    concatenated."""
    combos: list[tuple[str, float, dict]] = [("", 1.0, {k: [] for k in CHANGE_KEYS[1:]})]
    combos[0][2]["index_paths"] = {}
    for factor in spec.factors:
        nxt = []
        for (sid, p, ch), level in itertools.product(combos, factor.levels):
            merged = {"index_paths": {**ch["index_paths"], **level.index_paths}}
            for key in CHANGE_KEYS[1:]:
                merged[key] = ch[key] + [c.model_dump(exclude_defaults=True)
                                         for c in getattr(level, key)]
            label = f"{factor.id}.{level.id}"
            nxt.append((f"{sid}__{label}" if sid else label, p * level.probability, merged))
        combos = nxt
    if spec.sampling is not None:
        paths = sample_paths(spec.sampling, _base_path(spec.sampling.index, indices, years),
                             years)
        combos = [(f"{sid}-s{k}" if sid else f"s{k}", p / len(paths),
                   {**ch, "index_paths": {**ch["index_paths"], spec.sampling.index: path}})
                  for sid, p, ch in combos for k, path in enumerate(paths)]
    return [{"id": sid or "base", "probability": p, **{k: v for k, v in ch.items() if v}}
            for sid, p, ch in combos]


def _base_path(index_id: str, indices: list[dict], years: list[int]) -> dict[int, float]:
    for x in indices:
        if isinstance(x, dict) and x.get("id") == index_id:
            return {y: at(x.get("price_per_kg"), y) for y in years}
    raise ValueError(f"scenario_spec.sampling.index: unknown price index '{index_id}'")


def sample_paths(s: IndexSampling, base: dict[int, float], years: list[int]
                 ) -> list[dict[int, float]]:
    """`s.n` paths base_t x exp(sigma W_t - sigma^2 t / 2), W a standard Brownian motion in
    years since the first year (E[path_t] = base_t), from a seeded generator."""
    rng = np.random.default_rng(s.seed)
    steps = rng.standard_normal((s.n, len(years) - 1))
    w = np.concatenate([np.zeros((s.n, 1)), np.cumsum(steps, axis=1)], axis=1)
    t = np.arange(len(years))
    factor = np.exp(s.volatility * w - 0.5 * s.volatility**2 * t)
    return [{y: round(float(base[y] * factor[k, i]), 6) for i, y in enumerate(years)}
            for k in range(s.n)]


def expand_raw(raw: dict[str, Any]) -> dict[str, Any]:
    """The document with `scenario_spec` replaced by the explicit `scenarios` it describes
    (ValueError / pydantic ValidationError on a bad spec)."""
    if "scenario_spec" not in raw:
        return raw
    raw = dict(raw)
    spec = ScenarioSpec.model_validate(raw.pop("scenario_spec"))
    if raw.get("scenarios"):
        raise ValueError("give either scenarios or scenario_spec, not both")
    horizon = raw.get("horizon") or {}
    years = list(range(horizon["first_year"], horizon["last_year"] + 1))
    raw["scenarios"] = expand(spec, raw.get("price_indices") or [], years)
    return raw


# --- what a scenario changes ---------------------------------------------------------------
def _from(change: Any, year: int) -> bool:
    return change.from_year is None or year >= change.from_year


def capacity_changes(scenario: Any, facility: Any, year: int, groups: dict[str, set]
                     ) -> list[Any]:
    """The scenario's capacity changes that match the facility in that year."""
    out = []
    for ch in scenario.capacity:
        where = set(ch.countries).union(*(groups[g] for g in ch.groups))
        if ((ch.facilities is None or facility.id in ch.facilities)
                and (not where or facility.country in where)
                and (ch.stages is None or facility.stage in ch.stages) and _from(ch, year)):
            out.append(ch)
    return out


def capacity_factor(scenario: Any, facility: Any, year: int, groups: dict[str, set]) -> float:
    """Product of the multipliers of the scenario's capacity changes that match."""
    out = 1.0
    for ch in capacity_changes(scenario, facility, year, groups):
        out *= ch.multiplier
    return out


def curtailment(scenario: Any, facility: Any, year: int, groups: dict[str, set],
                covered: Iterable[str]) -> tuple[float, float]:
    """(a, g) of a contract with the facility (formulation.md, force_majeure): the share of
    the contracted volume delivered, a = min(1, kappa) with kappa the product of the
    matching capacity multipliers (pro rata: every customer keeps the share of the capacity
    left), and the share for which the supplier owes liquidated damages, g = max(0,
    min(1, kappa_cov) - a) with kappa_cov the product over the causes `covered` by the
    contract's force-majeure clause (covered causes count first)."""
    kappa = kappa_cov = 1.0
    causes = set(covered)
    for ch in capacity_changes(scenario, facility, year, groups):
        kappa *= ch.multiplier
        if ch.cause in causes:
            kappa_cov *= ch.multiplier
    a = min(1.0, kappa)
    return a, max(0.0, min(1.0, kappa_cov) - a)


def demand_factor(scenario: Any, buyer: str, material: str, year: int) -> float:
    out = 1.0
    for ch in scenario.demand:
        if ((ch.buyers is None or buyer in ch.buyers)
                and (ch.materials is None or material in ch.materials) and _from(ch, year)):
            out *= ch.multiplier
    return out


def spot_factors(scenario: Any, market: Any, year: int) -> tuple[float, float]:
    """(availability, price) multipliers of the matching spot changes."""
    avail = price = 1.0
    for ch in scenario.spot:
        if ((ch.markets is None or market.id in ch.markets)
                and (not ch.origins or market.origin in ch.origins) and _from(ch, year)):
            avail *= ch.availability_multiplier
            price *= ch.price_multiplier
    return avail, price


def index_path(index: Any, scenario: Any) -> Any:
    """The index's price series in a scenario: the scenario's path, else the index's own
    path for that scenario, else its base path."""
    if index.id in scenario.index_paths:
        return scenario.index_paths[index.id]
    return index.by_scenario.get(scenario.id, index.price_per_kg)
