"""What a solve is asked and what it answers, without HiGHS or Pyomo: `SolveOptions`,
`SolveOutcome` (our own status), `ModelSize`. Light enough for the CLI to import at start."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

Status = Literal["optimal", "feasible", "infeasible", "unbounded", "no_solution", "error"]
MIN_HIGHSPY = (1, 15, 1)
BAD_HIGHSPY = {(1, 14, 0)}
DEFAULT_MIP_GAP = 1e-6


@dataclass(frozen=True)
class SolveOptions:
    time_limit: float | None = None
    """Seconds; None = no limit."""
    mip_gap: float = DEFAULT_MIP_GAP
    """Relative MIP gap at which HiGHS stops (HiGHS's own default is 1e-4)."""
    threads: int | None = None
    write_model: Path | None = None
    """Write the model exactly as handed to HiGHS, as MPS (names from Pyomo)."""
    cvar_weight: float = 0.0
    """lambda >= 0: minimise expected cost + lambda x CVaR_alpha of the scenario cost."""
    cvar_alpha: float = 0.95
    cvar_limit: float | None = None
    """Hard bound on CVaR_alpha of the scenario cost (money): the epsilon constraint of a
    risk front (formulation.md, cvar_limit). None: no bound."""
    objective_scale: int | None = None
    """HiGHS `user_objective_scale`: the objective is multiplied by 2**objective_scale inside
    HiGHS (results come back unscaled). None lets the pipeline choose from the data."""


@dataclass(frozen=True)
class ModelSize:
    rows: int
    columns: int
    nonzeros: int
    binaries: int
    integers: int


@dataclass(frozen=True)
class SolveOutcome:
    status: Status
    objective: float | None
    bound: float | None
    mip_gap: float | None
    solver: str
    solver_version: str
    solve_seconds: float
    highs_seconds: float | None
    termination: str
    size: ModelSize | None
    message: str = ""

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible")

    def as_dict(self) -> dict:
        return asdict(self)
