"""emissions.csv: the emissions of every tonne delivered, by buyer and route (origin tag),
carried along the chain by mass balance (formulation.md, Emissions and concentration).

Reads the solved tables (flows, production, contracts) and the model data's emission factors;
never touches Pyomo. A buyer's rows sum to its network's emissions E_bts.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from offtake.domain.schema import Instance
from offtake.formulation.data import ModelData

COLUMNS = ["buyer", "material", "tag", "year", "scenario", "delivered_t", "emissions_t",
           "intensity_kg_per_kg"]


class _Chain:
    """One buyer's flows, processing and own-feed sales in one year and scenario, and the
    intensity (t CO2e per t) of each node's output of each tag."""

    def __init__(self, d: ModelData, spot: dict[str, float]) -> None:
        self.d, self.spot = d, spot
        self.into: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
        self.runs: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
        self.sold: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
        self.memo: dict[tuple[str, str], float] = {}

    def arc(self, i: str, j: str) -> float:
        """Transport alone: the flow's factor less the source's own (a market's or a
    stockpile's: its output's intensity)."""
        return self.d.flow_emission.get((i, j), 0.0) - self.spot.get(i, 0.0)

    def inflow(self, node: str, tag: str, material: str | None) -> tuple[float, float]:
        tonnes = co2 = 0.0
        for i, x in self.into.get((node, tag), ()):
            if material is None or self.d.arc_material.get((i, node)) == material:
                tonnes += x
                co2 += x * (self.output(i, tag) + self.arc(i, node))
        return tonnes, co2

    def output(self, node: str, tag: str) -> float:
        if (node, tag) in self.memo:
            return self.memo[(node, tag)]
        if node in self.spot or node in self.d.spot_material:  # a market or a stockpile
            self.memo[(node, tag)] = self.spot.get(node, 0.0)
            return self.memo[(node, tag)]
        self.memo[(node, tag)] = 0.0
        tonnes = co2 = 0.0
        for o, x in self.sold.get((node, tag), ()):
            tonnes += x
            co2 += x * self.d.offer_emission.get(o, 0.0)
        recipe = self.d.recipe.get(node, {})
        step = self.d.facility_emission.get(node, 0.0)
        for combo, p in self.runs.get((node, tag), ()):
            tonnes += p
            co2 += p * step
            for k, tag_in in self.d.combo_inputs[(node, combo)].items():
                t_in, e_in = self.inflow(node, tag_in, k)
                if t_in > 0:
                    co2 += p * recipe.get(k, 0.0) * e_in / t_in
        self.memo[(node, tag)] = co2 / tonnes if tonnes > 0 else 0.0
        return self.memo[(node, tag)]


def source_factors(inst: Instance) -> dict[str, float]:
    """Cradle-to-gate factor of each spot market and stockpile (the sources of a chain that
    are not facilities)."""
    out = {k.id: k.emission_kg_per_kg for k in inst.spot_markets}
    out.update({sp.id: sp.emission_kg_per_kg for sp in inst.stockpiles})
    return out


def emission_table(d: ModelData, spot_factor: dict[str, float], flows: pd.DataFrame,
                   production: pd.DataFrame, contracts: pd.DataFrame) -> pd.DataFrame:
    """One row per (buyer, material, tag, year, scenario) delivered: tonnes, t CO2e and kg
    CO2e per kg. `spot_factor`: each spot market's and stockpile's cradle-to-gate factor."""
    chains: dict[tuple[str, int, str], _Chain] = defaultdict(lambda: _Chain(d, spot_factor))
    for b, i, j, tag, y, s, x in flows[["buyer", "from_node", "to_node", "tag", "year",
                                        "scenario", "flow_t"]].itertuples(index=False):
        chains[(b, int(y), s)].into[(j, tag)].append((i, float(x)))
    for f, b, combo, tag, y, s, p in production[["facility", "buyer", "inputs", "tag", "year",
                                                 "scenario", "production_t"]].itertuples(
            index=False):
        chains[(b, int(y), s)].runs[(f, tag)].append((combo, float(p)))
    sold = contracts[contracts["delivered_t"] > 0]
    for o, f, b, tag, y, s, x in sold[["offer_id", "supplier", "buyer", "tag", "year",
                                       "scenario", "delivered_t"]].itertuples(index=False):
        chains[(b, int(y), s)].sold[(f, tag)].append((o, float(x)))
    rows = []
    for (b, y, s), ch in sorted(chains.items()):
        acc: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
        for (j, tag), items in ch.into.items():
            if j != b:
                continue
            for i, x in items:
                a = acc[(d.arc_material[(i, j)], tag)]
                a[0] += x
                a[1] += x * (ch.output(i, tag) + ch.arc(i, j))
        for (mat, tag), (tonnes, co2) in sorted(acc.items()):
            rows.append((b, mat, tag, y, s, tonnes, co2, co2 / tonnes if tonnes > 0 else 0.0))
    return pd.DataFrame(rows, columns=COLUMNS)
