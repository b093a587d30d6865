"""Plots a person reads: the scenario-cost distribution of the chosen portfolio against the
expected-value plan, and the efficient frontier of expected cost against CVaR. Reads only
result objects and tables; writes PNG files (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def cost_distribution(probability: dict[str, float], portfolios: dict[str, dict[str, float]],
                      path: Path, currency: str) -> Path:
    """Cumulative distribution of the scenario cost of each named portfolio."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, costs in portfolios.items():
        if not costs:
            continue
        pairs = sorted((costs[s] / 1e6, probability[s]) for s in costs)
        xs, ys, cum = [pairs[0][0]], [0.0], 0.0
        for x, p in pairs:
            cum += p
            xs.append(x)
            ys.append(cum)
        ax.step(xs, ys, where="post", label=name)
    ax.set_xlabel(f"scenario cost (million {currency}, discounted)")
    ax.set_ylabel("cumulative probability")
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def frontier(table: pd.DataFrame, path: Path, currency: str, alpha: float) -> Path:
    """Expected cost against CVaR of the optimal portfolio over a range of lambda."""
    ok = table.dropna(subset=["expected_cost", "cvar"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ok["cvar"] / 1e6, ok["expected_cost"] / 1e6, marker="o")
    for lam, x, y in zip(ok["lambda"], ok["cvar"], ok["expected_cost"], strict=True):
        ax.annotate(f"λ={lam:g}", (x / 1e6, y / 1e6), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"CVaR {alpha:.0%} (million {currency})")
    ax.set_ylabel(f"expected cost (million {currency})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
