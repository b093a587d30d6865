"""The supply network implied by an instance: nodes, effective arcs, cycles, reachability.

Pure functions over the schema objects (no Pyomo). Used by `validation` (unservable demand,
cycles) and by `data` (which flow variables exist). Works on any object with the instance's
section attributes, so validation can run it on the parts of a file that parsed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from offtake.domain.builds import added_capacity

if TYPE_CHECKING:  # types only: the schema validates with functions of this module
    from offtake.domain.schema import PriceSeries, TonnesSeries


def at(series: TonnesSeries | PriceSeries | None, year: int) -> float:
    """Value of a constant-or-by-year series in `year` (0 when the year is absent)."""
    if series is None:
        return 0.0
    if isinstance(series, Mapping):
        return float(series.get(year, 0.0))
    return float(series)


def potential_capacity(facility: Any, year: int, first_year: int) -> float:
    """The facility's capacity in `year` with every one of its build options built (nominal,
    before scenario changes): what it could supply at most."""
    return at(facility.capacity_t, year) + sum(
        added_capacity(j, year, first_year) for j in getattr(facility, "builds", ()))


@dataclass(frozen=True)
class ArcSpec:
    """A directed arc carrying one material, with its freight in money per kg."""

    from_node: str
    to_node: str
    material: str
    freight_per_kg: float


def node_products(inst: Any) -> dict[str, str]:
    """Material leaving each supply node: a facility's product or a spot market's material."""
    out = {f.id: f.product for f in inst.facilities}
    out.update({k.id: k.material for k in inst.spot_markets})
    return out


def node_inputs(inst: Any) -> dict[str, set[str]]:
    """Materials each receiving node accepts: a facility's recipe inputs, a buyer's demands."""
    out: dict[str, set[str]] = {f.id: set(f.recipe) for f in inst.facilities}
    out.update({b.id: set(b.demand_t) for b in inst.buyers})
    return out


def effective_arcs(inst: Any) -> list[ArcSpec]:
    """Listed arcs, plus (when `network.default_arcs`) every material-compatible arc.

    A default arc joins a supply node (facility or spot market) to a receiving node (facility
    or buyer) that takes the supply node's product; it carries the default freight unless the
    same pair is listed. Self-loops are never created. Listed arcs whose nodes or material do
    not fit are skipped here (validation reports them).
    """
    products, inputs = node_products(inst), node_inputs(inst)
    listed = {(a.from_, a.to): a.freight_per_kg for a in inst.network.arcs}
    pairs: dict[tuple[str, str], float] = {}
    if inst.network.default_arcs:
        for i, m in products.items():
            for j, accepted in inputs.items():
                if i != j and m in accepted:
                    pairs[(i, j)] = inst.network.default_freight_per_kg
    for (i, j), freight in listed.items():
        if i in products and j in inputs and products[i] in inputs[j]:
            pairs[(i, j)] = freight
    for sp in getattr(inst, "stockpiles", None) or []:  # stockpile -> its location only
        if sp.id not in products and sp.material in inputs.get(sp.location, ()):
            products[sp.id] = sp.material
            pairs[(sp.id, sp.location)] = sp.release_freight_per_kg
    return [ArcSpec(i, j, products[i], fr) for (i, j), fr in sorted(pairs.items())]


def find_cycle(arcs: Iterable[ArcSpec]) -> list[str] | None:
    """A list of nodes forming a directed cycle (first node repeated at the end), or None."""
    succ: dict[str, list[str]] = {}
    for a in arcs:
        succ.setdefault(a.from_node, []).append(a.to_node)
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    for root in sorted(succ):
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path = [root]
        state[root] = 1
        while stack:
            node, k = stack[-1]
            nxt = succ.get(node, [])
            if k < len(nxt):
                stack[-1] = (node, k + 1)
                child = nxt[k]
                if state.get(child) == 1:
                    return path[path.index(child):] + [child]
                if not state.get(child):
                    state[child] = 1
                    stack.append((child, 0))
                    path.append(child)
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return None


def offer_eligible(offer: Any, buyer_id: str) -> bool:
    return offer.buyers is None or buyer_id in offer.buyers


def source_nodes(inst: Any, buyer_id: str, year: int | None) -> set[str]:
    """Nodes where material can enter the buyer's network: suppliers of eligible offers (with
    capacity, or build options that add some, in a year of the offer) and spot markets
    with volume (in `year`, or in any year when `year` is None)."""
    years = inst.horizon.years if year is None else [year]
    fac = {f.id: f for f in inst.facilities}
    out: set[str] = set()
    for o in inst.offers:
        if o.supplier not in fac or not offer_eligible(o, buyer_id) or o.max_t_per_year <= 0:
            continue
        first = inst.horizon.first_year
        if any(o.first_year <= y <= o.last_year
               and potential_capacity(fac[o.supplier], y, first) > 0 for y in years):
            out.add(o.supplier)
    for k in inst.spot_markets:
        if k.unlimited or any(at(k.availability_t, y) > 0 for y in years):
            out.add(k.id)
    for sp in getattr(inst, "stockpiles", None) or []:
        if (sp.initial_t > 0 or sp.markets) and buyer_id in release_buyers(inst, sp):
            out.add(sp.id)  # may release to this buyer (stockpile_balance)
    return out


def release_buyers(inst: Any, sp: Any) -> list[str]:
    """Buyers a stockpile may release to: `release_to`, else the holder (a buyer's stock) or
    every buyer (a government's); only the location when it is a buyer."""
    buyers = sorted(b.id for b in inst.buyers)
    if sp.release_to is not None:
        out = sorted(set(sp.release_to) & set(buyers))
    elif sp.holder in buyers:
        out = [sp.holder]
    else:
        out = buyers
    return [b for b in out if sp.location not in buyers or b == sp.location]


def active_nodes(inst: Any, arcs: list[ArcSpec], buyer_id: str, year: int | None) -> set[str]:
    """Supply nodes that can hand material to the buyer's network: sources, plus facilities
    with capacity (or build options that add some) whose every recipe input
    arrives from an active node (fixed point)."""
    fac = {f.id: f for f in inst.facilities}
    active = source_nodes(inst, buyer_id, year)
    years = inst.horizon.years if year is None else [year]
    incoming: dict[str, list[ArcSpec]] = {}
    for a in arcs:
        incoming.setdefault(a.to_node, []).append(a)
    changed = True
    while changed:
        changed = False
        for f in fac.values():
            if f.id in active or not f.recipe:
                continue
            if not any(potential_capacity(f, y, inst.horizon.first_year) > 0 for y in years):
                continue
            fed = {a.material for a in incoming.get(f.id, []) if a.from_node in active}
            if set(f.recipe) <= fed:
                active.add(f.id)
                changed = True
    return active


def upstream_of(arcs: list[ArcSpec], target: str) -> set[str]:
    """Every node from which `target` can be reached along arcs (excluding `target`)."""
    pred: dict[str, list[str]] = {}
    for a in arcs:
        pred.setdefault(a.to_node, []).append(a.from_node)
    seen: set[str] = set()
    todo = [target]
    while todo:
        for p in pred.get(todo.pop(), []):
            if p not in seen:
                seen.add(p)
                todo.append(p)
    seen.discard(target)
    return seen
