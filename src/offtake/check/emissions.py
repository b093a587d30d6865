"""Emissions, recomputed from the instance and the plan (formulation.md, Emissions and
concentration): the emission factors, each buyer's E_bts and the part upstream of a material
(E^k_bts, read by the intensity cap), the carbon price's base, and `emissions.csv` (every
tonne delivered, by route, by mass balance along the chain).

Owns `Factors`, `buyer_emissions`, `upstream_nodes`, `route_emissions` and
`check_emissions_table`. The rule rows (`check.rules`) and the cost term (`check.objective`)
call these. Never imports the formulation.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pandas as pd

from offtake.check.context import Ctx, index_of, numbered
from offtake.check.network import allowed_arcs, contract_from
from offtake.check.tables import Plan
from offtake.check.tags import parse_combination

Key = tuple[str, int, str]
"""(buyer, year, scenario)."""


@dataclass(frozen=True)
class Factors:
    """kg CO2e per kg (= t per t) of every activity, from the instance."""

    sale: dict[str, float]
    """Facility -> feed + own step, per t sold from own feed."""
    step: dict[str, float]
    """Facility -> its own step, per t it processes."""
    spot: dict[str, float]
    """Market or stockpile -> cradle-to-gate per t bought or released."""
    arc: dict[tuple[str, str], float]
    """(from, to) -> transport per t carried (listed arc or a stockpile's release arc with
    its own factor, else the default)."""

    @classmethod
    def of(cls, c: Ctx) -> Factors:
        listed = {(a.from_, a.to): a.emission_kg_per_kg for a in c.inst.network.arcs}
        for sp in c.inst.stockpiles:  # its release arc: its own factor, else the default
            if sp.release_emission_kg_per_kg is not None:
                listed[(sp.id, sp.location)] = sp.release_emission_kg_per_kg
        default = c.inst.network.default_emission_kg_per_kg
        return cls(
            sale={f.id: f.feed_emission_kg_per_kg + f.emission_kg_per_kg
                  for f in c.inst.facilities},
            step={f.id: f.emission_kg_per_kg for f in c.inst.facilities},
            spot={**{k.id: k.emission_kg_per_kg for k in c.inst.spot_markets},
                  **{sp.id: sp.emission_kg_per_kg for sp in c.inst.stockpiles}},
            arc={ij: listed.get(ij, default) for ij in allowed_arcs(c.inst)})

    def flow(self, i: str, j: str) -> float:
        """A flow's factor: the arc's, plus the source's when it leaves a spot market or a
        stockpile."""
        return self.arc.get((i, j), 0.0) + self.spot.get(i, 0.0)


def upstream_nodes(c: Ctx, b: str, k: str) -> set[str]:
    """U_bk: nodes with a path of allowed arcs to buyer b ending in an arc carrying k."""
    into: dict[str, list[str]] = defaultdict(list)
    for i, j in allowed_arcs(c.inst):
        into[j].append(i)
    found = {i for i in into[b] if c.sender_material.get(i) == k}
    todo = list(found)
    while todo:
        for i in into[todo.pop()]:
            if i not in found:
                found.add(i)
                todo.append(i)
    return found


def buyer_emissions(c: Ctx, plan: Plan, f: Factors, material: str | None = None
                    ) -> dict[Key, float]:
    """E_bts (t CO2e) of every buyer; with `material` k, E^k_bts: only the activities upstream
    of k (own-feed sales and processing at nodes of U_bk, flows into U_bk or into b carrying
    k)."""
    up = {b: upstream_nodes(c, b, material) for b in c.buyers} if material else None

    def counts(b: str, node: str, to: str | None = None) -> bool:
        if up is None:
            return True
        if to is None:
            return node in up[b]
        return to in up[b] or (to == b and c.sender_material.get(node) == material)

    out: dict[Key, float] = defaultdict(float)
    for (fac, b, year, s), x in contract_from(c, plan).items():
        if counts(b, fac):
            out[(b, year, s)] += f.sale.get(fac, 0.0) * x
    for (fac, b, _comb, year, s), p in plan.production.items():
        if counts(b, fac):
            out[(b, year, s)] += f.step.get(fac, 0.0) * p
    for (b, i, j, _tag, year, s), x in plan.flow.items():
        if counts(b, i, j):
            out[(b, year, s)] += f.flow(i, j) * x
    return out


Route = tuple[str, str, str, int, str]
"""(buyer, material, tag, year, scenario)."""


def route_emissions(c: Ctx, plan: Plan, f: Factors) -> dict[Route, tuple[float, float]]:
    """(t delivered, t CO2e) of each route arriving at a buyer: intensities carried by mass
    balance (each node's output of a tag averages what made it)."""
    flows: dict[Key, list] = defaultdict(list)
    for (b, i, j, tag, year, s), x in plan.flow.items():
        flows[(b, year, s)].append((i, j, tag, x))
    made: dict[Key, list] = defaultdict(list)
    for (fac, b, comb, year, s), p in plan.production.items():
        made[(b, year, s)].append((fac, comb, plan.production_tag.get((fac, comb), ""), p))
    sold: dict[Key, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (fac, b, year, s), x in contract_from(c, plan).items():
        sold[(b, year, s)][fac] += x
    out: dict[Route, tuple[float, float]] = {}
    for key in sorted(set(flows) | set(made) | set(sold)):
        for route, value in _routes(c, f, key, flows[key], made[key], sold[key]).items():
            out[route] = value
    return out


def _routes(c: Ctx, f: Factors, key: Key, flows: list, made: list,
            sold: dict[str, float]) -> dict[Route, tuple[float, float]]:
    b, year, s = key
    into: dict[tuple[str, str], list[tuple[str, float, float]]] = defaultdict(list)
    for i, j, tag, x in flows:
        into[(j, tag)].append((i, x, f.flow(i, j) - f.spot.get(i, 0.0)))
    runs: dict[tuple[str, str], list[tuple[dict[str, str], float]]] = defaultdict(list)
    for fac, comb, tag, p in made:
        runs[(fac, tag)].append((parse_combination(comb) or {}, p))
    memo: dict[tuple[str, str], float] = {}

    def inflow(node: str, tag: str, material: str | None) -> tuple[float, float]:
        """(t, t CO2e) flowing into `node` with that tag (of that material)."""
        tonnes = co2 = 0.0
        for i, x, arc in into.get((node, tag), ()):
            if material is None or c.sender_material.get(i) == material:
                tonnes += x
                co2 += x * (output(i, tag) + arc)
        return tonnes, co2

    def output(node: str, tag: str) -> float:
        """Intensity of `node`'s output of `tag` for this buyer."""
        if (node, tag) in memo:
            return memo[(node, tag)]
        if node in c.markets or node in c.stockpiles:  # sources with a factor of their own
            memo[(node, tag)] = f.spot.get(node, 0.0)
            return memo[(node, tag)]
        memo[(node, tag)] = 0.0  # guards a cycle (the checker reports those elsewhere)
        tonnes = co2 = 0.0
        if tag == c.own_tag.get(node) and sold.get(node, 0.0) > 0:
            tonnes += sold[node]
            co2 += sold[node] * f.sale.get(node, 0.0)
        recipe = c.facilities[node].recipe if node in c.facilities else {}
        for inputs, p in runs.get((node, tag), ()):
            tonnes += p
            co2 += p * f.step.get(node, 0.0)
            for k, tag_in in inputs.items():
                t_in, e_in = inflow(node, tag_in, k)
                if t_in > 0:
                    co2 += p * recipe.get(k, 0.0) * e_in / t_in
        memo[(node, tag)] = co2 / tonnes if tonnes > 0 else 0.0
        return memo[(node, tag)]

    out: dict[Route, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (j, tag), items in into.items():
        if j != b:
            continue
        for i, x, arc in items:
            acc = out[(b, c.sender_material.get(i, ""), tag, year, s)]
            acc[0] += x
            acc[1] += x * (output(i, tag) + arc)
    return {k: (v[0], v[1]) for k, v in out.items()}


def check_emissions_table(c: Ctx, t: dict[str, pd.DataFrame], plan: Plan) -> None:
    """emissions.csv: each route's delivered tonnes, t CO2e and intensity as recomputed; no
    route with emissions is missing (an instance without factors may leave the table out)."""
    want = route_emissions(c, plan, Factors.of(c))
    seen = set()
    for pos, r in numbered(t["emissions"]):
        key = (r["buyer"], r["material"], r["tag"], int(r["year"]), r["scenario"])
        where = f"emissions.csv row {pos}"
        if key in seen:
            c.flag("table", where, 1.0, f"row {index_of(*key)} repeated")
        seen.add(key)
        tonnes, co2 = want.get(key, (0.0, 0.0))
        c.equal("table", where, r["delivered_t"], tonnes, "tonnes delivered by the route")
        c.equal("table", where, r["emissions_t"], co2, "t CO2e of the route")
        if tonnes > c.tol:
            c.equal("table", where, r["intensity_kg_per_kg"], co2 / tonnes,
                    "kg CO2e per kg delivered")
    for key, (tonnes, co2) in sorted(want.items()):
        if key not in seen and co2 > c.slack(0.0):
            c.flag("table", "emissions.csv," + index_of(*key), tonnes,
                   f"no row for {tonnes:.10g} t delivered ({co2:.10g} t CO2e)")
