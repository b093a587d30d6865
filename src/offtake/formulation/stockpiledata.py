"""Model data of strategic stockpiles (formulation.md, stockpile_balance, stockpile_level,
stockpile_release): the `StockpileData` part of `ModelData`, in model units (per tonne),
with everything that depends on the scenario keyed by it last (release caps, minimum levels),
so that the expected-value and parametric views treat them like the other scenario data.

Reads the schema through `offtake.domain.stockpiles`; must not import Pyomo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from offtake.domain.network import at
from offtake.domain.origin import make_tag
from offtake.domain.schema import Instance
from offtake.domain.stockpiles import held_by_buyer, release_allowed

KG_PER_T = 1000.0


def initial_tag(sp: Any) -> str:
    """Origin tag of a stockpile's initial stock: the steps of `initial_origin`."""
    return make_tag((s.value, c) for s, c in sp.initial_origin.items())


def stock_tags(inst: Any, sp: Any) -> list[str]:
    """T_p: the origin tags the stock can hold: the initial stock's (when there is one) and
    those of its markets."""
    spots = {k.id: k for k in inst.spot_markets}
    tags = {initial_tag(sp)} if sp.initial_t > 0 else set()
    tags |= {make_tag((s.value, c) for s, c in spots[k].feed_origin.items())
             for k in sp.markets if k in spots}
    return sorted(tags)


@dataclass(frozen=True)
class StockpileData:
    """Stockpiles: capacity, initial stock by tag, purchases (markets, bounds, stage),
    holding and release prices, who holds them, and per (stockpile, year, scenario) the
    release cap rho_pts C_p and the minimum level (1 - rho_pts) M_pt."""

    STOCKPILES: tuple[str, ...] = ()
    stockpile_holder: dict[str, str] = field(default_factory=dict)
    stockpile_buyer_held: dict[str, bool] = field(default_factory=dict)
    """True: a buyer holds it (its costs are in the objective); False: a government."""
    stockpile_capacity_t: dict[str, float] = field(default_factory=dict)
    STOCKPILE_TAGS: tuple[tuple[str, str], ...] = ()
    """(stockpile, tag): T_p, the origin tags its stock can hold."""
    stockpile_initial_t: dict[tuple[str, str], float] = field(default_factory=dict)
    """(stockpile, tag) -> level before the first year (the initial stock's tag only)."""
    STOCKPILE_MARKETS: tuple[tuple[str, str], ...] = ()
    """(stockpile, spot market) it buys on."""
    stockpile_market_tag: dict[tuple[str, str], str] = field(default_factory=dict)
    stockpile_first_stage: dict[str, bool] = field(default_factory=dict)
    """True: purchases decided now (v_stockpile_order_t); False: per scenario."""
    stockpile_purchase_min_t: dict[tuple[str, int], float] = field(default_factory=dict)
    stockpile_purchase_max_t: dict[tuple[str, int], float] = field(default_factory=dict)
    """Only for stockpiles with `purchase_max_t`."""
    stockpile_holding_per_t: dict[str, float] = field(default_factory=dict)
    stockpile_release_price_per_t: dict[tuple[str, int], float] = field(default_factory=dict)
    stockpile_release_cap_t: dict[tuple[str, int, str], float] = field(default_factory=dict)
    """(stockpile, year, scenario) -> rho_pts C_p."""
    stockpile_min_level_t: dict[tuple[str, int, str], float] = field(default_factory=dict)
    """(stockpile, year, scenario) -> (1 - rho_pts) M_pt, for the years with M_pt > 0."""


def stockpile_data(inst: Instance) -> StockpileData:
    """The StockpileData of a validated instance."""
    years = inst.horizon.years
    spots = {k.id: k for k in inst.spot_markets}
    sps = list(inst.stockpiles)
    return StockpileData(
        STOCKPILES=tuple(sp.id for sp in sps),
        stockpile_holder={sp.id: sp.holder for sp in sps},
        stockpile_buyer_held={sp.id: held_by_buyer(inst, sp) for sp in sps},
        stockpile_capacity_t={sp.id: sp.capacity_t for sp in sps},
        STOCKPILE_TAGS=tuple((sp.id, t) for sp in sps for t in stock_tags(inst, sp)),
        stockpile_initial_t={(sp.id, initial_tag(sp)): sp.initial_t for sp in sps
                             if sp.initial_t > 0},
        STOCKPILE_MARKETS=tuple((sp.id, k) for sp in sps for k in sp.markets),
        stockpile_market_tag={(sp.id, k): make_tag(
            (s.value, c) for s, c in spots[k].feed_origin.items())
            for sp in sps for k in sp.markets},
        stockpile_first_stage={sp.id: sp.purchase_stage == "first" for sp in sps},
        stockpile_purchase_min_t={(sp.id, y): at(sp.purchase_min_t, y) for sp in sps
                                  for y in years},
        stockpile_purchase_max_t={(sp.id, y): at(sp.purchase_max_t, y) for sp in sps
                                  if sp.purchase_max_t is not None for y in years},
        stockpile_holding_per_t={sp.id: sp.holding_cost_per_kg_year * KG_PER_T for sp in sps},
        stockpile_release_price_per_t={(sp.id, y): at(sp.release_price_per_kg, y) * KG_PER_T
                                       for sp in sps for y in years},
        stockpile_release_cap_t={(sp.id, y, sc.id): sp.capacity_t * release_allowed(sp, sc, y)
                                 for sp in sps for y in years for sc in inst.scenarios},
        stockpile_min_level_t={(sp.id, y, sc.id): at(sp.min_level_t, y)
                               * (1 - release_allowed(sp, sc, y))
                               for sp in sps for y in years if at(sp.min_level_t, y) > 0
                               for sc in inst.scenarios})
