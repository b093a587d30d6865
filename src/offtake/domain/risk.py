"""Risk measures of a discrete cost distribution (scenario costs with probabilities).

Pure functions; used by results and reports. CVaR follows Rockafellar and Uryasev:
CVaR_a = VaR_a + E[(C - VaR_a)^+] / (1 - a), the mean of the worst (1 - a) probability mass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def value_at_risk(costs: Sequence[float], probs: Sequence[float], alpha: float) -> float:
    """The smallest cost c with P(C <= c) >= alpha."""
    total = 0.0
    for c, p in sorted(zip(costs, probs, strict=True)):
        total += p
        if total >= alpha - 1e-12:
            return c
    return max(costs)


def cvar(costs: Sequence[float], probs: Sequence[float], alpha: float) -> float:
    var = value_at_risk(costs, probs, alpha)
    tail = sum(p * max(c - var, 0.0) for c, p in zip(costs, probs, strict=True))
    return var + tail / (1 - alpha)


def summary(costs: Sequence[float], probs: Sequence[float], alpha: float) -> dict[str, float]:
    """Mean, standard deviation, VaR and CVaR at alpha, best and worst case."""
    mean = sum(c * p for c, p in zip(costs, probs, strict=True))
    var = sum(p * (c - mean) ** 2 for c, p in zip(costs, probs, strict=True))
    return {"mean": mean, "std": math.sqrt(max(var, 0.0)), "alpha": alpha,
            "var": value_at_risk(costs, probs, alpha), "cvar": cvar(costs, probs, alpha),
            "best": min(costs), "worst": max(costs)}
