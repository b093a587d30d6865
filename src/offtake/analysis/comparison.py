"""Side by side: any set of stored runs (folders written by `offtake solve`) and sweep or
Pareto points (records of a results store) compared on their key figures and their plans.

`item_from_run(folder)` and `items_from_store(store, refs)` read what is stored (nothing is
solved again); `key_figures(items)` is one row per measure (the instance and its SHA-256,
status, objective, bound, gap, every cost term, fiscal cost per payer, signed offers) and one
column per item, with each item's difference from the first; `instance_note(items)` warns
when they come from different instance files, `check_currencies` refuses money in different
currencies; `signed_differences(items)` names the offers signed in
some items and not in others; `volume_differences(items)` the contracted tonnes per offer and
year (summed over buyers) where the items differ.

Reads stored results only (`results.tables.Results.read`, `analysis.store.SweepStore`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from offtake.analysis.store import StoreError, SweepStore
from offtake.results.folder import written_by
from offtake.results.tables import Results

TOL = 1e-6


@dataclass
class Item:
    """One stored solve: a label, its figures (measure -> value) and its plan."""

    label: str
    figures: dict[str, Any]
    plan: dict[str, dict] = field(default_factory=dict)
    currency: str = "USD"
    instance: str = ""
    """The instance it was solved from (a run: its meta.name; a point: the sweep's file)."""
    instance_sha256: str = ""


def instance_note(items: list[Item]) -> str | None:
    """A warning when the items were not solved from one instance file (their SHA-256
    differ): their differences are then partly the data's, not only the decisions'. None
    when they share one (points of a sweep differ by their --set changes, which their labels
    name)."""
    shas = {it.instance_sha256 for it in items if it.instance_sha256}
    if len(shas) <= 1:
        return None
    parts = [f"{it.label}: {it.instance or '?'} ({it.instance_sha256[:12] or 'no hash'})"
             for it in items]
    return (f"these were solved from {len(shas)} different instance files, so their "
            "differences are also differences of data, not only of decisions: "
            + "; ".join(parts))


def check_currencies(items: list[Item]) -> None:
    """StoreError when the items' money is in different currencies (nothing converts it)."""
    currencies = {it.currency for it in items}
    if len(currencies) > 1:
        raise StoreError("cannot put money side by side in different currencies: "
                         + ", ".join(f"{it.label} in {it.currency}" for it in items))


def item_from_run(folder: str | Path, label: str | None = None) -> Item:
    """A folder written by `offtake solve` (summary.json, costs.csv, plan.json)."""
    folder = Path(folder)
    command = written_by(folder)
    if command is None:
        raise StoreError(f"{folder} is not an output folder of offtake solve (no readable "
                         "summary.json)")
    if command != "solve":
        raise StoreError(f"{folder} was written by offtake {command}, not offtake solve: "
                         "compare puts solved runs and store points side by side")
    res = Results.read(folder)
    figures: dict[str, Any] = {"status": res.status, "objective": res.objective,
                               "bound": res.bound, "gap": res.mip_gap}
    figures.update({f"cost:{k}": v for k, v in res.cost_terms().items()})
    figures.update({f"fiscal:{k}": v for k, v in res.fiscal_costs().items()})
    signed = sorted(o for o, x in res.plan.get("v_signed", {}).items() if round(x or 0) == 1)
    figures["signed offers"] = len(signed)
    return Item(label or folder.name, figures, res.plan, res.currency, res.instance_name,
                res.instance_sha256 or "")


def items_from_store(store: SweepStore, refs: list[str] | None = None) -> list[Item]:
    """Points of a store by position in their sweep (`3`, or `sweep:3` when the store holds
    several sweeps) or by key (or a unique start of one); all its points without refs."""
    frame = store.frame()
    if frame.empty:
        raise StoreError(f"no records in {store.root}")
    rows = [frame.loc[i] for i in frame.index] if not refs else [_find(frame, r, store)
                                                                  for r in refs]
    several = frame["sweep"].nunique() > 1
    items = []
    for row in rows:
        label = f"{row['sweep']}:{row['index']}" if several else f"point {row['index']}"
        axes = json.loads(row["axes"]) if isinstance(row.get("axes"), str) else []
        given = [f"{a}={_text(row[a])}" for a in axes if a in row and pd.notna(row[a])]
        if given:
            label += " (" + ", ".join(given) + ")"
        figures: dict[str, Any] = {"status": row["status"], "objective": row["objective"],
                                   "bound": row["bound"], "gap": row["gap"]}
        for col in frame.columns:
            if col.startswith("cost:") or (col.startswith("fiscal:") and col.count(":") == 1):
                figures[col] = row[col]
        if "n_signed" in row:
            figures["signed offers"] = row["n_signed"]
        try:
            plan = store.plan(row["key"])
        except StoreError:
            plan = {}
        items.append(Item(label, figures, plan, str(row.get("currency") or "USD"),
                          str(row.get("instance") or ""),
                          str(row.get("instance_sha256") or "")))
    return items


def _text(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _find(frame: pd.DataFrame, ref: str, store: SweepStore) -> pd.Series:
    sweep, _, index = ref.rpartition(":")
    if index.isdigit():
        hits = frame[(frame["index"] == int(index))
                     & ((frame["sweep"] == sweep) if sweep else True)]
        if len(hits) == 1:
            return hits.iloc[0]
        if len(hits) > 1:
            raise StoreError(f"point {ref} is in several sweeps of {store.root} "
                             f"({', '.join(hits['sweep'])}): write SWEEP:{index}")
    hits = frame[frame["key"].str.startswith(ref)]
    if len(hits) == 1:
        return hits.iloc[0]
    raise StoreError(f"no single point {ref!r} in {store.root} (give its index, "
                     "SWEEP:INDEX or a key)")


def distinct_labels(items: list[Item]) -> list[Item]:
    """The items, each label made unique: folders of the same name (a/run, b/run) would
    otherwise share one column and hide each other; a repeated label gets ' (2)', ' (3)'."""
    seen: dict[str, int] = {}
    out = []
    for it in items:
        n = seen[it.label] = seen.get(it.label, 0) + 1
        out.append(it if n == 1 else replace(it, label=f"{it.label} ({n})"))
    return out


def key_figures(items: list[Item]) -> pd.DataFrame:
    """One row per measure (first the instance each was solved from and the start of its
    SHA-256), one column per item, then each item's difference from the first (for
    numbers)."""
    measures: list[str] = ["instance", "instance SHA-256"]
    for it in items:
        measures += [m for m in it.figures if m not in measures]
    frame = pd.DataFrame({"measure": measures})
    for it in items:
        given = {"instance": it.instance or None,
                 "instance SHA-256": it.instance_sha256[:12] or None, **it.figures}
        frame[it.label] = pd.Series([given.get(m) for m in measures], dtype=object)
    first = items[0].label
    for it in items[1:]:
        frame[f"{it.label} - {first}"] = pd.Series(
            [_minus(it.figures.get(m), items[0].figures.get(m)) for m in measures],
            dtype=object)
    frame.attrs["title"] = f"Side by side ({items[0].currency}, discounted, expected)"
    frame.attrs["caption"] = f"differences against {first}"
    return frame


def _minus(a: Any, b: Any) -> Any:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) \
            and pd.notna(a) and pd.notna(b):
        return a - b
    return None


def signed_differences(items: list[Item]) -> pd.DataFrame:
    """Offers signed in some items and not in others: one row per offer, 'yes' / 'no' per
    item."""
    signed = [{o for o, x in it.plan.get("v_signed", {}).items() if round(x or 0) == 1}
              for it in items]
    every = set().union(*signed)
    differ = sorted(o for o in every if any(o not in s for s in signed))
    frame = pd.DataFrame({"offer": differ})
    for it, s in zip(items, signed, strict=True):
        frame[it.label] = ["yes" if o in s else "no" for o in differ]
    frame.attrs["title"] = "Offers signed in some and not in others"
    frame.attrs["caption"] = (f"{len(every) - len(differ)} offer(s) signed in all"
                              if items else "")
    return frame


def volumes(plan: dict[str, dict]) -> dict[tuple[str, int], float]:
    """Contracted tonnes per (offer, year), summed over buyers."""
    out: dict[tuple[str, int], float] = {}
    for (o, _b, y), x in plan.get("v_volume_t", {}).items():
        out[o, int(y)] = out.get((o, int(y)), 0.0) + float(x or 0.0)
    return out


def volume_differences(items: list[Item]) -> pd.DataFrame:
    """Contracted tonnes per offer and year (all buyers) where the items differ."""
    vols = [volumes(it.plan) for it in items]
    keys = sorted(set().union(*vols))
    rows = [k for k in keys if max(v.get(k, 0.0) for v in vols)
            - min(v.get(k, 0.0) for v in vols) > TOL]
    frame = pd.DataFrame({"offer": [o for o, _ in rows], "year": [y for _, y in rows]})
    for it, v in zip(items, vols, strict=True):
        frame[f"{it.label} (t)"] = [v.get(k, 0.0) for k in rows]
    frame.attrs["title"] = "Contracted tonnes per year where the plans differ"
    frame.attrs["caption"] = f"{len(keys) - len(rows)} offer-years the same in all"
    return frame
