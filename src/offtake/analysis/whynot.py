"""Why not signed, why not built: for each offer the optimum leaves unsigned and each build
option it leaves unbuilt, what forcing it in costs, and the price or build cost at which it
would enter.

For an item i, the instance with i forced (`domain.transforms.decide`) is solved again (on an
`offtake.runtime` executor, one task per item). With C* the optimum and C_i the forced
optimum, the cost of forcing is C_i - C*. Then, holding the forced plan:

* an offer: its cost in the forced plan moves with the offer's unit price P by
  B = sum pi_s delta_t 1000 ((1 + rho) d + phi f - disc v) (deliveries with their tariff,
  take-or-pay shortfall, tier rebates), so at P - (C_i - C*) / B per kg (the same cut in
  every year) the forced plan costs C*: at or below that price the offer certainly enters
  (the optimum at that price may even take more of it). For a fixed price the break-even
  price is the volume-weighted price of the forced plan minus the cut; for an index-linked
  one, the cut is what its adder must fall by. An offer the forced plan signs but takes
  nothing under has no break-even price (B = 0);
* a build option the buyers pay for: the forced plan costs C_i - delta (C_j - C') with build
  cost C', so it enters at C' = C_j - (C_i - C*) / delta_{t^c}; negative means it needs a
  subsidy even if it were free. For a supplier- or government-paid option the cost of forcing
  is the subsidy the buyers would need.

An item that cannot be forced in (the forced instance is infeasible) is explained by the
elastic re-solve (`pipeline.diagnose.explain_infeasibility`): the rules that would have to
move, and by how much (e.g. a bankability row short of committed offtake).

Owns the table (`why_not.csv`); builds no model of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from offtake.domain.builds import cost_year
from offtake.domain.schema import Instance
from offtake.domain.transforms import decide
from offtake.runtime import Executor, highs_threads, make_executor

COLUMNS = ["kind", "id", "facility", "status", "objective", "gap", "cost_of_forcing",
           "forced_volume_t", "price_per_kg", "price_cut_per_kg", "break_even_price_per_kg",
           "build_cost", "break_even_build_cost", "note"]
WORKER_MODULES = ("offtake.analysis.whynot", "offtake.pipeline.solve")


@dataclass(frozen=True)
class Item:
    kind: str
    """'offer' or 'build'."""
    id: str
    facility: str


def unused(inst: Instance, signed: dict[str, int], built: dict[str, int]) -> list[Item]:
    """Offers modelled but not signed, and build options modelled but not built, that are
    free to choose (a forbidden one is left out: it is not signed by decision)."""
    out = [Item("offer", o.id, o.supplier) for o in inst.offers
           if o.id in signed and not signed[o.id] and o.decision == "free"]
    out += [Item("build", j.id, f.id) for f in inst.facilities for j in f.builds
            if j.id in built and not built[j.id] and j.decision == "free"]
    return out


def _force_task(shared: tuple[Instance, Any], item: Item) -> dict[str, Any]:
    """Solve the instance with the item forced (in a worker)."""
    from offtake.pipeline.diagnose import explain_infeasibility
    from offtake.pipeline.solve import solve_instance
    from offtake.solvers.options import SolveOptions

    inst, options = shared
    options = options or SolveOptions()
    if options.threads is None and highs_threads() is not None:
        from dataclasses import replace

        options = replace(options, threads=highs_threads())
    forced = decide(inst, force=[item.id])
    res = solve_instance(forced, options)
    out: dict[str, Any] = {"status": res.status, "objective": res.objective,
                           "gap": res.mip_gap, "note": ""}
    if res.status == "infeasible":
        diag = explain_infeasibility(forced, options)
        out["note"] = "cannot be forced in: " + ("; ".join(c.message for c in diag.conflicts)
                                                 or diag.note)
    elif res.has_solution and item.kind == "offer":
        out.update(_price_base(inst, res.tables, item.id))
    return out


def _price_base(inst: Instance, t: dict[str, pd.DataFrame], offer_id: str) -> dict[str, Any]:
    """B (money per unit of price per kg), the tonnes and the volume-weighted price of the
    offer in the forced plan."""
    prob = _probabilities(t)
    base = _discounting(inst)
    c = t["contracts"]
    c = c[c["offer_id"] == offer_id]
    offer = next(o for o in inst.offers if o.id == offer_id)
    phi = offer.shortfall_fraction if offer.take_or_pay_share is not None else 0.0
    # .astype(float): mapping an empty column of text keeps its text dtype (pandas 3)
    w = c["scenario"].map(prob).astype(float) * c["year"].map(base).astype(float)
    units = ((1 + c["tariff_rate"]) * c["delivered_t"] + phi * c["shortfall_t"]) * w
    b = 1000.0 * float(units.sum())
    tiers = t.get("tiers")
    if tiers is not None and not tiers.empty:
        r = tiers[tiers["offer_id"] == offer_id]
        b -= 1000.0 * float((r["discount"] * r["volume_t"]
                             * r["scenario"].map(prob).astype(float)
                             * r["year"].map(base).astype(float)).sum())
    first = c.drop_duplicates(["buyer", "year"])
    volume = float(first["volume_t"].sum())
    delivered = float((c["delivered_t"] * w).sum())
    price = float((c["price_per_kg"] * c["delivered_t"] * w).sum() / delivered) if (
        delivered > 0) else None
    return {"price_base": b, "forced_volume_t": volume, "price_per_kg": price}


def _probabilities(t: dict[str, pd.DataFrame]) -> dict[str, float]:
    sc = t["scenario_costs"]
    return dict(zip(sc["scenario"], sc["probability"], strict=False))


def _discounting(inst: Instance) -> dict[int, float]:
    h = inst.horizon
    base = h.base_year or h.first_year
    return {y: (1.0 + h.discount_rate) ** -(y - base) for y in h.years}


def why_not(inst: Instance, objective: float, signed: dict[str, int], built: dict[str, int],
            options: Any = None, *, executor: Executor | None = None,
            only: Sequence[str] = ()) -> pd.DataFrame:
    """The why-not table (see the module's docstring) for an optimum `objective` whose plan
    signs `signed` and builds `built` (offer / option id -> 0 or 1, as offers.csv and
    builds.csv say); `only`: these items only."""
    items = unused(inst, signed, built)
    if only:
        items = [i for i in items if i.id in set(only)]
    own = executor is None
    ex = make_executor("serial") if own else executor
    assert ex is not None
    try:
        results = ex.map(_force_task, items, shared=(inst, options))
    finally:
        if own:
            ex.close()
    builds = {j.id: j for f in inst.facilities for j in f.builds}
    offers = {o.id: o for o in inst.offers}
    first = inst.horizon.first_year
    rows = []
    for item, r in zip(items, results, strict=True):
        row: dict[str, Any] = dict.fromkeys(COLUMNS)
        row.update(kind=item.kind, id=item.id, facility=item.facility)
        if not r.ok:
            row.update(status=r.status, note=f"not solved: {r.error}")
            rows.append(row)
            continue
        v: dict[str, Any] = r.value or {}
        row.update(status=v["status"], objective=v["objective"], gap=v["gap"], note=v["note"])
        if v["objective"] is not None:
            delta = v["objective"] - objective
            row["cost_of_forcing"] = delta
            if item.kind == "offer":
                _offer_break_even(row, v, delta, offers[item.id])
            else:
                _build_break_even(row, delta, builds[item.id], first, _discounting(inst))
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _offer_break_even(row: dict[str, Any], v: dict[str, Any], delta: float, offer) -> None:
    row["forced_volume_t"] = v.get("forced_volume_t")
    row["price_per_kg"] = v.get("price_per_kg")
    base = v.get("price_base") or 0.0
    if base <= 1e-9:
        row["note"] = (row["note"] or "") + ("signed, it takes nothing in the forced plan: no "
                                             "price cut alone brings it in")
        return
    cut = max(0.0, delta) / base
    row["price_cut_per_kg"] = cut
    if offer.price_per_kg is not None and row["price_per_kg"] is not None:
        row["break_even_price_per_kg"] = row["price_per_kg"] - cut
    elif offer.index is not None:
        row["note"] = (row["note"] or "") + f"index-linked: its adder must fall by {cut:.2f}/kg"


def _build_break_even(row: dict[str, Any], delta: float, option, first: int,
                      discount: dict[int, float]) -> None:
    row["build_cost"] = option.cost
    if option.paid_by in ("buyers", "consortium"):
        row["break_even_build_cost"] = option.cost - max(0.0, delta) / discount[
            cost_year(option, first)]
        if row["break_even_build_cost"] < 0:
            row["note"] = (row["note"] or "") + (
                "needs a subsidy even if built for free: "
                f"{-row['break_even_build_cost']:,.0f} (at its cost year)")
    else:
        row["note"] = (row["note"] or "") + (
            f"its cost is not the buyers' ({option.paid_by}): forcing it costs the buyers "
            f"{max(0.0, delta):,.0f}, the subsidy that would bring it in")
