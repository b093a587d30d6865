"""Scenario sets written compactly, expanded into explicit scenarios before validation (so
the expanded set is checked by the same schema as a hand-written one): the product of
independent factors' levels, optionally combined with sampled index price paths; disruption
events (export controls, a deficit) become factors of their own; `draws` (or `draw`, for
sample average approximation) take a random sample of the same distribution instead of the
product. Also what a scenario changes (capacity, demand, spot, index paths) and the
curtailment of contracts by capacity cuts.

Pure functions over plain data and the schema; no Pyomo.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from offtake.domain.network import at
from offtake.domain.schema import (
    DeficitEvent,
    ExportControlEvent,
    IndexSampling,
    ScenarioSpec,
)

CHANGE_KEYS = ("index_paths", "capacity", "demand", "spot", "releases")
LISTS = CHANGE_KEYS[1:]


@dataclass
class Level:
    """One level of a factor as plain changes: what `expand` and `draw` combine."""

    id: str
    probability: float
    changes: dict[str, Any] = field(default_factory=dict)
    """index_paths (index -> path) and lists of capacity, demand and spot changes (dicts)."""
    scale: dict[str, dict[int, float]] = field(default_factory=dict)
    """Index -> year -> multiplier of its path (price jumps), applied last."""


def factor_levels(spec: ScenarioSpec, raw: dict, years: list[int]) -> list[tuple[str, list[Level]]]:
    """(factor id, its levels with a positive probability) of every factor and event of
    the spec, in order (events after the factors)."""
    out: list[tuple[str, list[Level]]] = []
    for factor in spec.factors:
        out.append((factor.id, [Level(lv.id, lv.probability, {
            "index_paths": dict(lv.index_paths),
            **{k: [c.model_dump(exclude_defaults=True) for c in getattr(lv, k)]
               for k in LISTS}}) for lv in factor.levels]))
    for event in spec.events:
        levels = (_export_control_levels(event, raw, years)
                  if isinstance(event, ExportControlEvent)
                  else _deficit_levels(event, raw, years))
        out.append((event.id, [lv for lv in levels if lv.probability > 0]))
    return out


def expand(spec: ScenarioSpec, raw: dict, years: list[int]) -> list[dict]:
    """Explicit scenarios (as dicts) of a spec: ids join `factor.level` pairs with '__' (and
    end in '-sK' for the K-th sample); probabilities multiply; the changes of the levels are
    concatenated. With `draws`, the random sample `draw` gives instead. `raw` is the
    instance document (facilities, spot markets, price indices, country groups)."""
    if spec.draws is not None:
        return draw(spec, raw, years, spec.draws.n, spec.draws.seed, spec.draws.method)
    combos: list[tuple[str, float, Level]] = [("", 1.0, Level("", 1.0))]
    for fid, levels in factor_levels(spec, raw, years):
        combos = [(f"{sid}__{fid}.{lv.id}" if sid else f"{fid}.{lv.id}", p * lv.probability,
                   _merge(acc, lv))
                  for (sid, p, acc), lv in itertools.product(combos, levels)]
    paths: list[dict[int, float] | None] = [None]
    if spec.sampling is not None:
        paths = list(sample_paths(spec.sampling, _base_path(spec.sampling.index, raw, years),
                                  years))
    out = []
    for sid, p, acc in combos:
        for k, path in enumerate(paths):
            label = sid if path is None else (f"{sid}-s{k}" if sid else f"s{k}")
            out.append(_scenario(label or "base", p / len(paths), acc, spec, path, raw, years))
    return out


def draw(spec: ScenarioSpec, raw: dict, years: list[int], n: int, seed: int,
         method: str = "monte_carlo") -> list[dict]:
    """`n` scenarios drawn from the spec's distribution, probability 1/n each: every draw
    takes one level of each factor and event (by its probabilities) and, with `sampling`,
    one price path. `method` 'monte_carlo' draws independently; 'latin_hypercube'
    stratifies each uniform (one per factor and one per yearly price step) into n equal
    slices with one draw in each. Ids 'd0', 'd1', ...; the levels are in the description."""
    factors = factor_levels(spec, raw, years)
    steps = len(years) - 1 if spec.sampling is not None else 0
    u = _uniforms(n, len(factors) + steps, seed, method)
    base = _base_path(spec.sampling.index, raw, years) if spec.sampling is not None else None
    out = []
    for i in range(n):
        acc, names = Level("", 1.0), []
        for (fid, levels), x in zip(factors, u[i, :len(factors)], strict=True):
            lv = _pick(levels, float(x))
            acc = _merge(acc, lv)
            names.append(f"{fid}.{lv.id}")
        path = None
        if spec.sampling is not None and base is not None:
            z = np.array([_INV(float(x)) for x in u[i, len(factors):]])
            path = gbm_path(base, years, spec.sampling.volatility, z)
        sc = _scenario(f"d{i}", 1.0 / n, acc, spec, path, raw, years)
        sc["description"] = "; ".join(names + (["sampled path"] if path else []))
        out.append(sc)
    return out


_INV = NormalDist().inv_cdf


def _uniforms(n: int, dims: int, seed: int, method: str) -> np.ndarray:
    """n x dims uniforms in (0, 1): independent, or a Latin hypercube."""
    rng = np.random.default_rng(seed)
    if method == "monte_carlo":
        u = rng.random((n, dims))
    elif method == "latin_hypercube":
        u = np.empty((n, dims))
        for d in range(dims):
            u[:, d] = (rng.permutation(n) + rng.random(n)) / n
    else:
        raise ValueError(f"unknown sampling method '{method}'")
    return np.clip(u, 1e-12, 1 - 1e-12)


def _pick(levels: list[Level], x: float) -> Level:
    """The level whose slice of the cumulative probabilities holds x."""
    total = sum(lv.probability for lv in levels)
    acc = 0.0
    for lv in levels:
        acc += lv.probability / total
        if x < acc:
            return lv
    return levels[-1]


def _merge(acc: Level, lv: Level) -> Level:
    """Two levels' changes together: lists concatenated, index paths overridden, price
    jumps multiplied."""
    changes = {"index_paths": {**acc.changes.get("index_paths", {}),
                               **lv.changes.get("index_paths", {})}}
    for key in LISTS:
        changes[key] = acc.changes.get(key, []) + lv.changes.get(key, [])
    scale = {i: dict(ys) for i, ys in acc.scale.items()}
    for i, ys in lv.scale.items():
        for y, m in ys.items():
            scale.setdefault(i, {})[y] = scale.get(i, {}).get(y, 1.0) * m
    return Level("", 1.0, changes, scale)


def _scenario(sid: str, p: float, acc: Level, spec: ScenarioSpec,
              path: dict[int, float] | None, raw: dict, years: list[int]) -> dict:
    """A scenario dict: the merged changes, the sampled path (it replaces the index's path)
    and the price jumps applied to the resulting paths."""
    paths = dict(acc.changes.get("index_paths", {}))
    if path is not None and spec.sampling is not None:
        paths[spec.sampling.index] = path
    for index, jumps in acc.scale.items():
        series = paths.get(index)
        if series is None:
            series = _base_path(index, raw, years)
        paths[index] = {y: round(at(series, y) * jumps.get(y, 1.0), 6) for y in years}
    out: dict[str, Any] = {"id": sid, "probability": p}
    if paths:
        out["index_paths"] = paths
    for key in LISTS:
        if acc.changes.get(key):
            out[key] = acc.changes[key]
    return out


def _base_path(index_id: str, raw: dict, years: list[int]) -> dict[int, float]:
    for x in raw.get("price_indices") or []:
        if isinstance(x, dict) and x.get("id") == index_id:
            return {y: at(x.get("price_per_kg"), y) for y in years}
    raise ValueError(f"scenario_spec: unknown price index '{index_id}'")


# --- disruption events as factors ------------------------------------------------------------
def _items(raw: dict, section: str) -> list[dict]:
    return [x for x in raw.get(section) or [] if isinstance(x, dict)]


def _covered(raw: dict, countries: Iterable[str], groups: Iterable[str]) -> set[str]:
    members = {g.get("id"): set(g.get("members") or []) for g in _items(raw, "country_groups")}
    out = set(countries)
    for g in groups:
        if g not in members:
            raise ValueError(f"scenario_spec.events: unknown country group '{g}'")
        out |= members[g]
    return out


def _known_materials(raw: dict, materials: Iterable[str] | None, event_id: str) -> None:
    known = {m.get("id") for m in _items(raw, "materials")}
    for m in materials or []:
        if m not in known:
            raise ValueError(f"scenario_spec.events[{event_id}].materials: unknown material "
                             f"'{m}'")


def _limited(market: dict, event_id: str) -> None:
    if market.get("unlimited"):
        raise ValueError(f"scenario_spec.events[{event_id}]: spot market '{market.get('id')}' "
                         "is unlimited, so its availability cannot be cut; give it "
                         "availability_t")


def _export_control_levels(e: ExportControlEvent, raw: dict, years: list[int]) -> list[Level]:
    """Levels 'none', 'from<y0>-<k>y' and 'from<y0>-open' (see ExportControlEvent)."""
    nations = _covered(raw, e.countries, e.groups)
    _known_materials(raw, e.materials, e.id)
    stages = None if e.stages is None else {str(x) for x in e.stages}
    mats = None if e.materials is None else set(e.materials)
    facilities = sorted(f["id"] for f in _items(raw, "facilities")
                        if f.get("country") in nations
                        and (stages is None or str(f.get("stage")) in stages)
                        and (mats is None or f.get("product") in mats))
    markets = [k for k in _items(raw, "spot_markets") if mats is None or k.get("material") in mats]
    inside = sorted(k["id"] for k in markets if k.get("origin") in nations)
    outside = sorted(k["id"] for k in markets if k.get("origin") not in nations)
    for k in markets:
        if k.get("origin") in nations and e.supply_share < 1:
            _limited(k, e.id)
    for y0 in e.start:
        if y0 not in years:
            raise ValueError(f"scenario_spec.events[{e.id}].start: {y0} is outside the horizon")
    p_none = 1.0 - sum(e.start.values())
    levels = [Level("none", max(p_none, 0.0))]
    durations: list[tuple[str, float, int | None]] = [
        (f"{k}y", p, k) for k, p in sorted(e.duration_years.items())]
    open_p = 1.0 - sum(e.duration_years.values())
    if open_p > 1e-12:
        durations.append(("open", open_p, None))
    for y0, p0 in sorted(e.start.items()):
        for label, pk, span in durations:
            last = None if span is None or y0 + span - 1 >= years[-1] else y0 + span - 1
            window = {"from_year": y0, **({"to_year": last} if last is not None else {})}
            ch: dict[str, Any] = {"index_paths": {}, "capacity": [], "demand": [], "spot": [],
                                  "releases": []}
            if e.releases:  # stockpiles that may release while the event lasts
                ch["releases"].append({"stockpiles": list(e.releases), **window})
            if facilities:
                ch["capacity"].append({"facilities": facilities, **window,
                                       "multiplier": e.supply_share,
                                       "cause": "export_control"})
            if inside:
                ch["spot"].append({"markets": inside, **window,
                                   "availability_multiplier": e.supply_share})
            if outside and e.outside_price_multiplier != 1:
                ch["spot"].append({"markets": outside, **window,
                                   "price_multiplier": e.outside_price_multiplier})
            until = years[-1] if last is None else last
            scale = {i: {y: m for y in years if y0 <= y <= until}
                     for i, m in e.index_multipliers.items()}
            for i in scale:
                _base_path(i, raw, years)  # an unknown index fails here, with its name
            levels.append(Level(f"from{y0}-{label}", p0 * pk, ch, scale))
    return levels


def _deficit_levels(e: DeficitEvent, raw: dict, years: list[int]) -> list[Level]:
    """Levels 'none' and 'on' (see DeficitEvent): one spot change per year of the ramp."""
    _known_materials(raw, e.materials, e.id)
    mats = set(e.materials)
    markets = [k for k in _items(raw, "spot_markets") if k.get("material") in mats
               and (e.markets is None or k.get("id") in e.markets)]
    for k in markets:
        _limited(k, e.id)
    ids = sorted(k["id"] for k in markets)
    share = e.shortfall_t / e.world_demand_t
    span = e.full_year - e.from_year + 1
    spot: list[dict] = []
    scale: dict[str, dict[int, float]] = {}
    indices = [x["id"] for x in _items(raw, "price_indices") if x.get("material") in mats]
    for y in years:
        if y < e.from_year:
            continue
        r = min(1.0, (y - e.from_year + 1) / span)
        price = 1.0 + r * (e.price_multiplier - 1.0)
        if ids:
            spot.append({"markets": ids, "from_year": y, "to_year": y,
                         "availability_multiplier": round(1.0 - r * share, 9),
                         "price_multiplier": round(price, 9)})
        for i in indices:
            scale.setdefault(i, {})[y] = price
    releases = ([{"stockpiles": list(e.releases), "from_year": e.from_year}]
                if e.releases else [])
    on = Level("on", e.probability, {"index_paths": {}, "capacity": [], "demand": [],
                                     "spot": spot, "releases": releases}, scale)
    return [Level("none", 1.0 - e.probability), on]


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


def gbm_path(base: dict[int, float], years: list[int], volatility: float,
             steps: np.ndarray) -> dict[int, float]:
    """One path base_t x exp(sigma W_t - sigma^2 t / 2) from the standard normal yearly
    steps of W (as `sample_paths`)."""
    w = np.concatenate([[0.0], np.cumsum(steps)])
    t = np.arange(len(years))
    factor = np.exp(volatility * w - 0.5 * volatility**2 * t)
    return {y: round(float(base[y] * factor[i]), 6) for i, y in enumerate(years)}


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
    raw["scenarios"] = expand(spec, raw, years)
    return raw


# --- what a scenario changes ---------------------------------------------------------------
def _from(change: Any, year: int) -> bool:
    """A change applies from its from_year through its to_year (always without them)."""
    return ((change.from_year is None or year >= change.from_year)
            and (getattr(change, "to_year", None) is None or year <= change.to_year))


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
