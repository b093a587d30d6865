"""Risk frontier: expected cost against CVaR of the optimal portfolio for each risk weight."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from offtake.domain.schema import Instance
from offtake.pipeline.solve import solve_instance
from offtake.solvers.highs import SolveOptions


def efficient_frontier(inst: Instance, lambdas: list[float], alpha: float,
                       options: SolveOptions | None = None) -> pd.DataFrame:
    """Expected cost and CVaR_alpha of the optimal portfolio for each risk weight lambda."""
    rows = []
    for lam in lambdas:
        res = solve_instance(inst, replace(options or SolveOptions(), cvar_weight=lam,
                                           cvar_alpha=alpha))
        risk = res.risk or {}
        rows.append({"lambda": lam, "status": res.status, "objective": res.objective,
                     "expected_cost": risk.get("mean"), "cvar": risk.get("cvar"),
                     "worst": risk.get("worst")})
    return pd.DataFrame(rows)
