"""Figures a person reads: the distribution of the scenario cost of portfolios (the chosen one
against the expected-value plan, or a fixed portfolio over many scenarios), and the efficient
frontier of expected cost against CVaR.

Each function returns a `matplotlib.figure.Figure` built directly (no pyplot, no global
state, no backend switch at import); the caller saves it (`fig.savefig(path)`) or shows it.
Reads only result dicts and tables.
"""

from __future__ import annotations

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
    of `analysis.frontier.efficient_frontier`); lambdas without a solution are named in a
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
