"""Figures a person reads: the distribution of the scenario cost of portfolios (the chosen one
against the expected-value plan, or a fixed portfolio over many scenarios), and the efficient
frontier of expected cost against CVaR.

Each function returns a `matplotlib.figure.Figure` built directly (no pyplot, no global
state, no backend switch at import); the caller saves it (`fig.savefig(path)`) or shows it.
Reads only result dicts and tables.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

MILLION = 1e6


def cost_distribution(probability: dict[str, float], portfolios: dict[str, dict[str, float]],
                      currency: str, title: str = "Scenario cost distribution") -> Figure:
    """Cumulative distribution of the scenario cost of each named portfolio.

    `probability`: every scenario and its probability; `portfolios`: name -> cost in each
    scenario where the portfolio can be carried out. A portfolio that cannot be carried out in
    some scenarios says so in its legend entry, and a dotted line marks where its curve stops
    (below 1 by the probability of those scenarios); one that works in no scenario is named
    in a note on the figure.
    """
    fig = Figure(figsize=(7, 4.2), dpi=120, layout="tight")
    ax = fig.add_subplot()
    nowhere = []
    for name, costs in portfolios.items():
        missing = [s for s in probability if s not in costs]
        lost = sum(probability[s] for s in missing)
        if not costs:
            nowhere.append(name)
            continue
        pairs = sorted((costs[s] / MILLION, probability[s]) for s in costs)
        xs, ys, cum = [pairs[0][0]], [0.0], 0.0
        for x, p in pairs:
            cum += p
            xs.append(x)
            ys.append(cum)
        label = name
        if missing:
            label += (f" - cannot be carried out in {len(missing)} of {len(probability)} "
                      f"scenarios (p = {lost:.1%})")
        (line,) = ax.step(xs, ys, where="post", label=label)
        if missing:
            ax.axhline(cum, linestyle=":", color=line.get_color(), linewidth=1)
    if nowhere:
        ax.text(0.02, 0.96, "cannot be carried out in any scenario: " + ", ".join(nowhere),
                transform=ax.transAxes, va="top", fontsize=8, color="tab:red")
    ax.set_title(title)
    ax.set_xlabel(f"scenario cost (million {currency}, discounted)")
    ax.set_ylabel("cumulative probability")
    ax.set_ylim(0, 1.02)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def frontier(table: pd.DataFrame, currency: str, alpha: float) -> Figure:
    """Expected cost against CVaR of the optimal portfolio over a range of lambda (the table
    of `analysis.pareto.frontier_table`); lambdas without a solution are named in a
    note."""
    ok = table.dropna(subset=["expected_cost", "cvar"])
    failed = [f"{lam:g}" for lam in table["lambda"] if lam not in set(ok["lambda"])]
    fig = Figure(figsize=(6, 4.2), dpi=120, layout="tight")
    ax = fig.add_subplot()
    ax.plot(ok["cvar"] / MILLION, ok["expected_cost"] / MILLION, marker="o")
    for lam, x, y in zip(ok["lambda"], ok["cvar"], ok["expected_cost"], strict=True):
        ax.annotate(f"λ={lam:g}", (x / MILLION, y / MILLION), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    if failed:
        ax.text(0.02, 0.96, f"no solution for λ = {', '.join(failed)}", transform=ax.transAxes,
                va="top", fontsize=8, color="tab:red")
    ax.set_title(f"Efficient frontier: expected cost against CVaR {alpha:.0%}")
    ax.set_xlabel(f"CVaR {alpha:.0%} of the scenario cost (million {currency}, discounted)")
    ax.set_ylabel(f"expected cost (million {currency}, discounted)")
    ax.grid(alpha=0.3)
    return fig


def _empty(fig: Figure, ax, text: str) -> Figure:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10,
            color="0.35")
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def portfolio(plan: pd.DataFrame, title: str = "Portfolio: tonnes by supplier and year"
              ) -> Figure:
    """Stacked bars of the tonnes delivered per supplier and year (the plan frame of
    `report.tables.plan_frame`; with several scenarios, the rows of 'every scenario' and the
    probability-weighted rows are the caller's choice: this sums the rows it is given)."""
    fig = Figure(figsize=(7.5, 4.2), dpi=120, layout="tight")
    ax = fig.add_subplot()
    ax.set_title(title)
    years = [c for c in plan.columns if isinstance(c, int)]
    if plan.empty or not years:
        return _empty(fig, ax, "no signed contract")
    by = plan.groupby("supplier")[years].sum()
    by = by.loc[by.sum(axis=1).sort_values(ascending=False).index]
    bottom = [0.0] * len(years)
    for supplier, row in by.iterrows():
        vals = row.tolist()
        ax.bar([str(y) for y in years], vals, bottom=bottom, label=str(supplier))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("tonnes delivered per year (t)")
    ax.set_xlabel("year")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return fig


def waterfall(costs: pd.DataFrame, currency: str) -> Figure:
    """The objective built up term by term (the costs frame of `report.tables.costs_frame`:
    lines 'term' then 'total'; third parties are not in it)."""
    fig = Figure(figsize=(7.5, 4.2), dpi=120, layout="tight")
    ax = fig.add_subplot()
    ax.set_title(f"Cost waterfall by term (million {currency}, discounted, expected)")
    money = [c for c in costs.columns if c.startswith("cost")]
    terms = costs[costs["line"] == "term"] if not costs.empty else costs
    terms = terms[terms[money[0]].abs() > 0.5] if money else terms
    if terms.empty:
        return _empty(fig, ax, "no cost")
    level = 0.0
    names = []
    for i, (term, value) in enumerate(zip(terms["term"], terms[money[0]], strict=True)):
        v = value / MILLION
        ax.bar(i, v, bottom=level if v >= 0 else level + v, color="tab:red" if v >= 0
               else "tab:green")
        ax.text(i, level + max(v, 0), f"{v:+,.1f}", ha="center", va="bottom", fontsize=7)
        level += v
        names.append(str(term).replace("_", " "))
    ax.bar(len(names), level, color="tab:blue")
    ax.text(len(names), level, f"{level:,.1f}", ha="center", va="bottom", fontsize=8,
            fontweight="bold")
    names.append("total")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"million {currency}")
    ax.grid(axis="y", alpha=0.3)
    return fig


def origin_sankey(links: pd.DataFrame, material: str) -> Figure:
    """Mine to magnet by country: one column per stage, one block per country sized by the
    tonnes with a step there, bands for the tonnes passing to the next stage (the links of
    `report.tables.origin_links_frame`, for one material)."""
    from matplotlib.patches import PathPatch, Rectangle
    from matplotlib.path import Path as MPath

    from offtake.domain.origin import STAGE_ORDER

    fig = Figure(figsize=(9, 4.8), dpi=120, layout="tight")
    ax = fig.add_subplot()
    ax.set_title(f"Origin of {material} delivered, mine to magnet by country "
                 "(t, expected, all years)")
    lk = links[links["material"] == material] if not links.empty else links
    if lk.empty:
        return _empty(fig, ax, "no chain with more than one recorded stage")
    stages = sorted(set(lk["from_stage"]) | set(lk["to_stage"]), key=STAGE_ORDER.__getitem__)
    size: dict[tuple[str, str], float] = {}
    for s in stages:
        out = lk[(lk["from_stage"] == s)].groupby("from_country")["tonnes"].sum()
        inn = lk[(lk["to_stage"] == s)].groupby("to_country")["tonnes"].sum()
        for c in set(out.index) | set(inn.index):
            size[(s, c)] = max(float(out.get(c, 0.0)), float(inn.get(c, 0.0)))
    total = max(sum(v for (s, _), v in size.items() if s == st) for st in stages)
    gap = total * 0.04
    pos: dict[tuple[str, str], float] = {}
    colors: dict[str, Any] = {}
    palette = [f"C{i}" for i in range(10)]
    for x, s in enumerate(stages):
        y = 0.0
        for c in sorted((c for st, c in size if st == s), key=lambda c: -size[(s, c)]):
            pos[(s, c)] = y
            colors.setdefault(c, palette[len(colors) % len(palette)])
            ax.add_patch(Rectangle((x - 0.06, y), 0.12, size[(s, c)], color=colors[c]))
            if size[(s, c)] > total * 0.03:
                ax.text(x, y + size[(s, c)] / 2, c, ha="center", va="center", fontsize=7,
                        color="white", fontweight="bold")
            y += size[(s, c)] + gap
    out_used = dict.fromkeys(pos, 0.0)
    in_used = dict.fromkeys(pos, 0.0)
    ordered = lk.sort_values("tonnes", ascending=False)
    for fs, fc, ts, tc, t in zip(ordered["from_stage"], ordered["from_country"],
                                 ordered["to_stage"], ordered["to_country"],
                                 ordered["tonnes"].astype(float), strict=True):
        a, b = (str(fs), str(fc)), (str(ts), str(tc))
        x0, x1 = stages.index(a[0]) + 0.06, stages.index(b[0]) - 0.06
        y0 = pos[a] + out_used[a]
        y1 = pos[b] + in_used[b]
        out_used[a] += t
        in_used[b] += t
        xm = (x0 + x1) / 2
        verts = [(x0, y0), (xm, y0), (xm, y1), (x1, y1), (x1, y1 + t), (xm, y1 + t),
                 (xm, y0 + t), (x0, y0 + t), (x0, y0)]
        codes = [MPath.MOVETO, MPath.CURVE4, MPath.CURVE4, MPath.CURVE4, MPath.LINETO,
                 MPath.CURVE4, MPath.CURVE4, MPath.CURVE4, MPath.CLOSEPOLY]
        ax.add_patch(PathPatch(MPath(verts, codes), facecolor=colors[a[1]], alpha=0.35,
                               edgecolor="none"))
    ax.set_xlim(-0.4, len(stages) - 0.6)
    ax.set_ylim(0, max(pos[k] + size[k] for k in pos) * 1.05)
    ax.set_xticks(range(len(stages)), stages)
    ax.set_ylabel("tonnes (expected, summed over years)")
    ax.invert_yaxis()
    return fig


def shadow_prices(rules: pd.DataFrame, currency: str, top: int = 15) -> Figure:
    """The dearest binding rule rows: shadow price per tonne (the rules frame of
    `report.tables.rules_frame`)."""
    fig = Figure(figsize=(7.5, 4.2), dpi=120, layout="tight")
    ax = fig.add_subplot()
    ax.set_title(f"Binding rules: shadow price ({currency} per tonne)")
    col = f"shadow price per unit ({currency})"
    hot = rules.dropna(subset=[col]) if col in rules else rules.iloc[0:0]
    if col in hot:  # an instance without rules has an empty frame without columns
        hot = hot[hot[col].abs() > 1e-6].head(top)
    if hot.empty:
        return _empty(fig, ax, "no binding rule with a shadow price")
    labels = [f"{r} {row}".strip() + (f" {int(y)}" if pd.notna(y) else "") for r, row, y in
              zip(hot["rule"], hot["row"], hot["year"], strict=True)]
    if "scenario" in hot and hot["scenario"].nunique() > 1:
        labels = [f"{lab} [{s}]" for lab, s in zip(labels, hot["scenario"], strict=True)]
    ax.barh(range(len(hot)), hot[col].abs(), color="tab:purple")
    ax.set_yticks(range(len(hot)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"{currency} per tonne of the rule's unit (absolute value)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def concentration(frame: pd.DataFrame) -> Figure:
    """HHI by stage over countries and over selling companies (the frame of
    `report.tables.concentration_frame`), with the 0.25 line of high concentration."""
    fig = Figure(figsize=(7.5, 4.2), dpi=120, layout="tight")
    ax = fig.add_subplot()
    ax.set_title("Concentration of supply: HHI by stage (1 = a single source)")
    if frame.empty:
        return _empty(fig, ax, "nothing delivered")
    labels = [f"{m}\n{s}" if frame["material"].nunique() > 1 else str(s)
              for m, s in zip(frame["material"], frame["stage"], strict=True)]
    bars = ax.bar(range(len(frame)), frame["HHI"], color=["tab:orange" if o == "companies"
                                                          else "tab:blue"
                                                          for o in frame["over"]])
    for b, big, share in zip(bars, frame["largest"], frame["largest share"], strict=True):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{big}\n{share:.0%}",
                ha="center", va="bottom", fontsize=6)
    ax.axhline(0.25, linestyle=":", color="tab:red", linewidth=1)
    ax.set_xticks(range(len(frame)), labels, fontsize=7, rotation=0)
    ax.set_ylim(0, 1.2)
    ax.set_ylabel("HHI (0-1); label: largest source and its share")
    ax.grid(axis="y", alpha=0.3)
    return fig


def fiscal(frame: pd.DataFrame, currency: str) -> Figure:
    """Third parties' cost per payer (the frame of `report.tables.fiscal_frame`)."""
    fig = Figure(figsize=(6, 3.2), dpi=120, layout="tight")
    ax = fig.add_subplot()
    ax.set_title(f"Fiscal cost per payer (million {currency}, discounted, expected)")
    if frame.empty:
        return _empty(fig, ax, "no third party pays anything")
    col = frame.columns[1]
    ax.barh(frame["payer"].astype(str), frame[col] / MILLION, color="tab:gray")
    for i, v in enumerate(frame[col] / MILLION):
        ax.text(v, i, f" {v:,.1f}", va="center", fontsize=8)
    ax.set_xlabel(f"million {currency}")
    ax.grid(axis="x", alpha=0.3)
    return fig


def allocations(frame: pd.DataFrame, currency: str, title: str) -> Figure:
    """Each buyer's share of a consortium's cost under each allocation method (grouped bars)
    beside its stand-alone cost (a black tick); `frame` is the long table of
    `ConsortiumResult.allocation_frame` (method, buyer, cost, stand_alone, in_core). Methods
    outside the core are marked in the legend."""
    fig = Figure(figsize=(7.5, 4.2), dpi=120, layout="tight")
    ax = fig.add_subplot()
    buyers = list(dict.fromkeys(frame["buyer"]))
    methods = list(dict.fromkeys(frame["method"]))
    width = 0.8 / max(1, len(methods))
    for k, method in enumerate(methods):
        part = frame[frame["method"] == method].set_index("buyer")
        xs = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(buyers))]
        outside = not bool(part["in_core"].iloc[0])
        ax.bar(xs, [part.loc[b, "cost"] / MILLION for b in buyers], width,
               label=method + (" (not in the core)" if outside else ""),
               hatch="//" if outside else None)
    alone = frame.drop_duplicates("buyer").set_index("buyer")["stand_alone"]
    ax.scatter(range(len(buyers)), [alone[b] / MILLION for b in buyers], marker="_",
               s=600, color="black", label="stand alone", zorder=3)
    ax.set_xticks(range(len(buyers)), buyers)
    ax.set_title(title)
    ax.set_xlabel("member")
    ax.set_ylabel(f"cost (million {currency}, discounted)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def saa_replications(frame: pd.DataFrame, lower: float | None, upper: float | None,
                     currency: str) -> Figure:
    """The replications of a sample average approximation (`tables.saa_replications_frame`
    of one round, candidate row excluded): each replication's dual bound b_i and the
    candidate's average cost on the same scenarios f_Ni(x^), joined by the paired gap
    G_i; dashed lines at the lower bound (mean of b_i) and the out-of-sample upper bound."""
    fig = Figure(figsize=(7, 4.2), dpi=120, layout="tight")
    ax = fig.add_subplot()
    rows = frame[frame["replication"] >= 0]
    if rows.empty:
        return _empty(fig, ax, "no replication was solved")
    x = rows["replication"].to_numpy()
    bound = rows["bound"].astype(float) / MILLION
    cost = rows["candidate_cost"].astype(float) / MILLION
    ax.vlines(x, bound, cost, color="0.6", linewidth=1.5, label="paired gap G_i")
    ax.scatter(x, bound, marker="v", color="tab:blue", zorder=3,
               label="dual bound of the sample (b_i)")
    ax.scatter(x, cost, marker="^", color="tab:red", zorder=3,
               label="candidate on the same sample (f_Ni)")
    if lower is not None:
        ax.axhline(lower / MILLION, color="tab:blue", linestyle="--", linewidth=1,
                   label="lower bound (mean of b_i)")
    if upper is not None:
        ax.axhline(upper / MILLION, color="tab:red", linestyle="--", linewidth=1,
                   label="upper bound (out of sample)")
    ax.set_xticks(x)
    ax.set_xlabel("replication")
    ax.set_ylabel(f"expected cost (million {currency}, discounted)")
    ax.set_title("Replications: sample bounds and the candidate's cost")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return fig
