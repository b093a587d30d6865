"""What a person reads of a results store (sweeps and Pareto fronts): the records as a table,
curves of a metric against an axis (cost of compliance, fiscal cost against a floor level),
a tornado of one-at-a-time changes, and a Pareto front with its knee.

Frames follow `report.tables` (a DataFrame with `title` and `caption` in `attrs`), figures
follow `report.plots` (a matplotlib `Figure` built without pyplot, units on the axes). Reads
only the store's records (a DataFrame from `analysis.store.SweepStore.frame`); writes
nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

MILLION = 1e6
SOLVED = ("optimal", "feasible")
MONEY_PREFIXES = ("cost:", "risk:", "scenario_cost:", "fiscal:", "direct_cost:")
MONEY = {"objective", "bound", "expected_cost", "fiscal_total", "cost_of_compliance"}
SHARE_PREFIXES = ("content:", "largest_country_share:", "recycled_share:", "rule_share",
                  "metric:")
THOUSANDS = StrMethodFormatter("{x:,.0f}")
DEFAULT_COLUMNS = ["status", "objective", "gap", "expected_cost", "fiscal_total", "n_signed",
                   "seconds", "warm"]


def axes_of(frame: pd.DataFrame) -> list[str]:
    """The axis columns of the records, in the order of their sweep."""
    out: list[str] = []
    for text in frame.get("axes", pd.Series(dtype=object)).dropna().unique():
        out += [a for a in json.loads(text) if a not in out]
    return out


def is_money(column: str) -> bool:
    return (column in MONEY or column.startswith(MONEY_PREFIXES)) and column != "risk:alpha"


def is_share(column: str) -> bool:
    return column.startswith(SHARE_PREFIXES) or column == "gap"


def unit(column: str, currency: str) -> str:
    if is_money(column):
        return f"million {currency}, discounted"
    if is_share(column):
        return "%"
    if column == "seconds":
        return "s"
    if column.startswith("delivered_t:"):
        return "t"
    return ""


def value_text(x: Any) -> str:
    """A cell: '' for none, thousands separators for large numbers, 4 significant digits
    for small ones (shares, gaps, axis values)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"
    return str(x)


def points_frame(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The records as a table: the sweep, the point's position and axis values, then
    `columns` (default: status, objective, gap, expected cost, fiscal cost, signed offers,
    seconds, warm)."""
    axes = axes_of(frame)
    wanted = list(columns) if columns else [c for c in DEFAULT_COLUMNS if c in frame.columns]
    cols = [c for c in ["sweep", "index", *axes, *wanted] if c in frame.columns]
    out = frame[list(dict.fromkeys(cols))].copy()
    currency = _currency(frame)
    sweeps = ", ".join(str(s) for s in frame["sweep"].unique()) if "sweep" in frame else ""
    out.attrs["title"] = f"{sweeps}: {len(frame)} point(s)"
    out.attrs["caption"] = (f"money in {currency}, discounted and expected; shares and the gap "
                            "as fractions; blank axis: at its base value")
    return out


def _currency(frame: pd.DataFrame) -> str:
    if "currency" in frame and frame["currency"].notna().any():
        return str(frame["currency"].dropna().iloc[0])
    return "USD"


def _scaled(values: pd.Series, column: str) -> pd.Series:
    values = pd.to_numeric(values, errors="coerce")
    if is_money(column):
        return values / MILLION
    if is_share(column):
        return values * 100
    return values


def label(column: str, currency: str) -> str:
    u = unit(column, currency)
    return f"{column} ({u})" if u else column


def curve(frame: pd.DataFrame, x: str, ys: Sequence[str], baseline: float | None = None,
          title: str | None = None) -> Figure:
    """Each metric in `ys` against axis `x`, one line per combination of the other axes'
    values. With `baseline`, each line is drawn relative to its point at x = baseline (the
    cost of compliance when x is a rule's bound and the baseline its loosest value). Points
    without a solution are named in a note, not drawn."""
    for col in [x, *ys]:
        if col not in frame.columns:
            raise ValueError(f"no column {col!r} in the store; axes: {', '.join(axes_of(frame))}")
    currency = _currency(frame)
    others = [a for a in axes_of(frame) if a != x]
    fig = Figure(figsize=(7.5, 4.5), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    solved = frame[frame["status"].isin(SOLVED)]
    missing = frame[~frame["status"].isin(SOLVED)]
    groups = solved.groupby(others, dropna=False, sort=True) if others else [((), solved)]
    for key, grp in groups:
        grp = grp.assign(_x=pd.to_numeric(grp[x], errors="coerce")).dropna(subset=["_x"])
        grp = grp.sort_values("_x")
        names = key if isinstance(key, tuple) else (key,)
        suffix = ", ".join(f"{a} = {value_text(v)}" for a, v in zip(others, names,
                                                                     strict=True))
        for y in ys:
            values = pd.to_numeric(grp[y], errors="coerce")
            if baseline is not None:
                at = values[grp["_x"].sub(baseline).abs() < 1e-9]
                if at.empty:
                    raise ValueError(f"no solved point at {x} = {baseline:g} to measure "
                                     "from")
                values = values - float(at.iloc[0])
            name = y if len(ys) > 1 or not suffix else suffix
            if baseline is not None and y in ("objective", "expected_cost") and not suffix:
                name = f"{y}: cost of compliance"
            if len(ys) > 1 and suffix:
                name = f"{y} ({suffix})"
            ax.plot(_scaled(grp["_x"], x), _scaled(values, y), marker="o", label=name)
    if len(missing):
        where = ", ".join(f"{value_text(v)} ({s})" for v, s in zip(missing[x], missing["status"],
                                                                   strict=True))
        ax.text(0.01, 0.98, f"no solution at {x} = {where}", transform=ax.transAxes,
                va="top", fontsize=8, color="tab:red", wrap=True)
    ylabel = label(ys[0], currency) if len(ys) == 1 else unit(ys[0], currency)
    if baseline is not None:
        ylabel = f"change from the point at {baseline:g}\n({unit(ys[0], currency)})"
    ax.set_xlabel(label(x, currency))
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{', '.join(ys)} against {x}")
    ax.yaxis.set_major_formatter(THOUSANDS)
    ax.grid(alpha=0.3)
    if len(ax.get_lines()) > 1:
        ax.legend(fontsize=8)
    return fig


def tornado(frame: pd.DataFrame, y: str, title: str | None = None) -> Figure:
    """One-at-a-time changes (a sweep with `combine: one_at_a_time`): for each axis, the
    range of `y` over its values against the base point (every axis at its base value),
    widest on top; each bar's ends name the axis values that give them ('base' where the
    axis moves the metric one way only)."""
    axes = axes_of(frame)
    if y not in frame.columns:
        raise ValueError(f"no column {y!r} in the store")
    solved = frame[frame["status"].isin(SOLVED)]
    base = solved[solved[axes].isna().all(axis=1)]
    if base.empty:
        raise ValueError("no base point (every axis at its base value) with a solution: a "
                         "tornado needs a sweep with combine: one_at_a_time")
    currency = _currency(frame)
    at_base = float(base[y].iloc[0])
    bars = []
    for a in axes:
        moved = solved[solved[a].notna() & solved[[o for o in axes if o != a]].isna().all(
            axis=1)]
        if moved.empty:
            continue
        values = [float(v) - at_base for v in pd.to_numeric(moved[y], errors="coerce")]
        given = list(moved[a])
        low, high = values.index(min(values)), values.index(max(values))
        # a bar spans the base point too: an axis moved one way only starts at 0
        lo, vlo = (values[low], given[low]) if values[low] < 0 else (0.0, "base")
        hi, vhi = (values[high], given[high]) if values[high] > 0 else (0.0, "base")
        bars.append((a, lo, hi, vlo, vhi))
    bars.sort(key=lambda b: b[2] - b[1])
    fig = Figure(figsize=(7.5, 1.2 + 0.5 * max(len(bars), 1)), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    scale = MILLION if is_money(y) else (0.01 if is_share(y) else 1.0)
    for n, (_, lo, hi, vlo, vhi) in enumerate(bars):
        ax.barh(n, (hi - lo) / scale, left=lo / scale, color="tab:blue", alpha=0.7)
        ax.text(lo / scale, n, f"{value_text(vlo)} ", ha="right", va="center", fontsize=8)
        ax.text(hi / scale, n, f" {value_text(vhi)}", ha="left", va="center", fontsize=8)
    ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"change of {label(y, currency)} from the base point "
                  f"({value_text(at_base / scale)})")
    ax.set_title(title or f"One at a time: {y}")
    ax.margins(x=0.25)
    ax.grid(alpha=0.3, axis="x")
    return fig


def front(table: pd.DataFrame, metric: str, cost: str, currency: str,
          share: bool = True, title: str | None = None, unit: str | None = None) -> Figure:
    """A Pareto front (`analysis.pareto.front_frame`): cost against the metric, the
    non-dominated points joined, dominated ones grey, the knee circled and named; `share`:
    the metric is a fraction (drawn in %), else money (in millions); `unit`: the metric is
    drawn as it is, in that unit (an emission intensity in kg/kg; `metric` names it)."""
    fig = Figure(figsize=(7.5, 4.5), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    mscale, mname = (0.01, f"{metric} (%)") if share else (MILLION, f"{metric} (million "
                                                                   f"{currency}, discounted)")
    if unit:
        mscale, mname, share = 1.0, metric, False
    good = table[~table["dominated"]].sort_values("metric")
    bad = table[table["dominated"]]
    ax.plot(good["metric"] / mscale, good["cost"] / MILLION, marker="o", color="tab:blue",
            label=f"Pareto front ({len(good)} points)")
    if len(bad):
        ax.scatter(bad["metric"] / mscale, bad["cost"] / MILLION, color="grey", marker="x",
                   label=f"dominated ({len(bad)})")
    knee = table[table["knee"]]
    if len(knee):
        kx, ky = float(knee["metric"].iloc[0]) / mscale, float(knee["cost"].iloc[0]) / MILLION
        ax.scatter([kx], [ky], s=160, facecolors="none", edgecolors="tab:red", linewidths=2,
                   label="knee", zorder=3)
        # the label inside the axes: left of a knee in the right half, above one in the
        # lower half
        xs, ys = table["metric"] / mscale, table["cost"] / MILLION
        right = kx > (float(xs.min()) + float(xs.max())) / 2
        low = ky < (float(ys.min()) + float(ys.max())) / 2
        ax.annotate(f"knee: {kx:,.4g}{' %' if share else f' {unit}' if unit else ''} / "
                    f"{ky:,.1f} million",
                    (kx, ky), textcoords="offset points",
                    xytext=(-12 if right else 12, 12 if low else -16),
                    ha="right" if right else "left", fontsize=8, color="tab:red")
    if table.attrs.get("caption"):
        ax.text(0.01, 0.98, table.attrs["caption"], transform=ax.transAxes, va="top",
                fontsize=8, wrap=True)
    ax.set_xlabel(mname)
    ax.set_ylabel(f"{cost} (million {currency}, discounted)")
    ax.yaxis.set_major_formatter(THOUSANDS)
    ax.set_title(title or table.attrs.get("title") or f"{cost} against {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.margins(0.08)
    return fig
