"""Solving: the only module that names HiGHS.

Hands a Pyomo model to HiGHS (through Pyomo's `highs` interface on highspy), maps what comes
back to our own `SolveOutcome`, and loads variable values only when a solution exists. A time
limit with no incumbent is `no_solution`: no plan of zeros is ever produced.

Refuses highspy 1.14.0 (wrong MIP optima) and anything older than 1.15.1.
"""

from __future__ import annotations

import importlib.metadata
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import pyomo.environ as pyo
from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

Status = Literal["optimal", "feasible", "infeasible", "unbounded", "no_solution", "error"]
MIN_HIGHSPY = (1, 15, 1)
BAD_HIGHSPY = {(1, 14, 0)}
DEFAULT_MIP_GAP = 1e-6


class SolverVersionError(RuntimeError):
    pass


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


def highspy_version() -> tuple[int, ...]:
    text = importlib.metadata.version("highspy")
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def check_solver_version() -> str:
    """The highspy version, or SolverVersionError when it is known to give wrong answers."""
    v = highspy_version()
    text = ".".join(map(str, v))
    if v in BAD_HIGHSPY or v < MIN_HIGHSPY:
        raise SolverVersionError(
            f"highspy {text} is not supported: 1.14.0 returns wrong MIP optima; "
            f"install highspy>={'.'.join(map(str, MIN_HIGHSPY))}"
        )
    return text


def solve(m: pyo.ConcreteModel, options: SolveOptions | None = None) -> SolveOutcome:
    """Solve `m` with HiGHS; load the solution into `m` only when one exists."""
    options = options or SolveOptions()
    version = check_solver_version()
    solver = SolverFactory("highs")
    solver_options = {"mip_rel_gap": options.mip_gap}
    if options.objective_scale:
        solver_options["user_objective_scale"] = options.objective_scale
    if options.threads:
        solver_options["threads"] = options.threads
    kwargs = {"load_solutions": False, "raise_exception_on_nonoptimal_result": False,
              "solver_options": solver_options}
    if options.time_limit is not None:
        kwargs["time_limit"] = options.time_limit
    start = time.perf_counter()
    try:
        res = solver.solve(m, **kwargs)
    except Exception as exc:  # solver crashed: report, never pretend
        return SolveOutcome("error", None, None, None, "highs", version,
                            time.perf_counter() - start, None, "error", None, str(exc))
    seconds = time.perf_counter() - start
    highs = solver._solver_model  # the highspy.Highs object Pyomo filled
    size = _size(highs)
    if options.write_model is not None:
        _write_mps(solver, highs, Path(options.write_model))
    status, message = _status(res.termination_condition, res.solution_status)
    objective = bound = gap = None
    if status in ("optimal", "feasible"):
        res.solution_loader.load_vars()
        objective = float(res.incumbent_objective)
        bound = _finite(res.objective_bound)
        gap = _gap(objective, bound, size)
    highs_seconds = getattr(res.timing_info, "highs_time", None)
    return SolveOutcome(status, objective, bound, gap, "highs", version, seconds,
                        highs_seconds, res.termination_condition.name, size, message)


def _status(tc: TerminationCondition, ss: SolutionStatus) -> tuple[Status, str]:
    if ss == SolutionStatus.optimal:
        return "optimal", ""
    if ss == SolutionStatus.feasible:
        if tc == TerminationCondition.convergenceCriteriaSatisfied:
            return "optimal", ""
        return "feasible", f"stopped by {tc.name} with an incumbent"
    if tc in (TerminationCondition.provenInfeasible, TerminationCondition.locallyInfeasible):
        return "infeasible", "HiGHS proved the model infeasible"
    if tc == TerminationCondition.infeasibleOrUnbounded:
        # every cost coefficient is >= 0 and every variable >= 0, so the objective is bounded
        # below by 0: "infeasible or unbounded" can only be infeasible here
        return "infeasible", "HiGHS reported infeasible-or-unbounded; costs are non-negative"
    if tc == TerminationCondition.unbounded:
        return "unbounded", "HiGHS reported the model unbounded"
    if tc in (TerminationCondition.maxTimeLimit, TerminationCondition.iterationLimit,
              TerminationCondition.interrupted, TerminationCondition.objectiveLimit):
        return "no_solution", f"stopped by {tc.name} before finding any feasible plan"
    return "error", f"HiGHS ended with {tc.name} and no solution"


def _finite(x: float | None) -> float | None:
    if x is None or x != x or abs(x) == float("inf"):
        return None
    return float(x)


def _gap(objective: float, bound: float | None, size: ModelSize | None) -> float | None:
    if size is not None and size.binaries + size.integers == 0:
        return 0.0  # an LP solved to optimality has no MIP gap
    if bound is None:
        return None
    return abs(objective - bound) / max(abs(objective), 1e-10)


def _size(highs) -> ModelSize | None:
    try:
        lp = highs.getLp()
    except Exception:  # pragma: no cover - only if Pyomo changes its internals
        return None
    integrality = list(lp.integrality_)
    lower, upper = list(lp.col_lower_), list(lp.col_upper_)
    ints = [i for i, t in enumerate(integrality) if int(t) == 1]
    binaries = sum(1 for i in ints if lower[i] >= 0 and upper[i] <= 1)
    return ModelSize(rows=lp.num_row_, columns=lp.num_col_, nonzeros=len(lp.a_matrix_.value_),
                     binaries=binaries, integers=len(ints) - binaries)


def _write_mps(solver, highs, path: Path) -> None:
    """Name HiGHS's columns and rows after the Pyomo components, then let HiGHS write MPS."""
    for var_id, col in solver._pyomo_var_to_solver_var_map.items():
        highs.passColName(col, _mps_name(solver._vars[var_id][0].name))
    for con, row in solver._pyomo_con_to_solver_con_map.items():
        highs.passRowName(row, _mps_name(con.name))
    path.parent.mkdir(parents=True, exist_ok=True)
    highs.writeModel(str(path))


def _mps_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_[],.-" else "_" for ch in name)


def solve_duals(m: pyo.ConcreteModel, options: SolveOptions | None = None) -> dict | None:
    """Re-solve `m` as an LP (the caller has fixed every integer variable) and return the dual
    of every constraint, or None when the LP does not solve to optimality."""
    options = options or SolveOptions()
    solver = SolverFactory("highs")
    kwargs: dict[str, object] = {"load_solutions": False,
                                 "raise_exception_on_nonoptimal_result": False}
    if options.time_limit is not None:
        kwargs["time_limit"] = options.time_limit
    if options.objective_scale:
        kwargs["solver_options"] = {"user_objective_scale": options.objective_scale}
    res = solver.solve(m, **kwargs)
    if res.solution_status != SolutionStatus.optimal:
        return None
    return res.solution_loader.get_duals()


def objective_scale_for(max_coefficient: float, target: float = 1.0e6) -> int | None:
    """Power-of-two exponent that brings the largest objective coefficient under `target`
    (HiGHS warns of "excessively large costs" above about 1e6), or None when not needed."""
    if max_coefficient <= target:
        return None
    return -math.ceil(math.log2(max_coefficient / target))


class ArrayLp:
    """A HiGHS instance fed with arrays and changed in place between solves (bounds, costs),
    so that each solve starts from the previous basis. Used by the decomposition, whose
    subproblems and master are `linear.LinearArrays`, never Pyomo models."""

    def __init__(self, cost, col_lb, col_ub, row_lb, row_ub, a_matrix, integer=None):
        import highspy

        check_solver_version()
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("mip_rel_gap", DEFAULT_MIP_GAP)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(cost), len(row_lb)
        lp.col_cost_ = cost
        lp.col_lower_, lp.col_upper_ = col_lb, col_ub
        lp.row_lower_, lp.row_upper_ = row_lb, row_ub
        a = a_matrix.tocsc()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_ = a.indptr, a.indices
        lp.a_matrix_.value_ = a.data
        if integer is not None and integer.any():
            lp.integrality_ = [highspy.HighsVarType.kInteger if b
                               else highspy.HighsVarType.kContinuous for b in integer]
        self.h.passModel(lp)
        self._highspy = highspy

    def set_costs(self, idx, values) -> None:
        if len(idx):
            self.h.changeColsCost(len(idx), idx, values)

    def set_col_bounds(self, idx, lower, upper) -> None:
        if len(idx):
            self.h.changeColsBounds(len(idx), idx, lower, upper)

    def set_row_bounds(self, idx, lower, upper) -> None:
        if len(idx):
            self.h.changeRowsBounds(len(idx), idx, lower, upper)

    def set_coefficients(self, rows, cols, values) -> None:
        for i, j, x in zip(rows, cols, values, strict=True):
            self.h.changeCoeff(int(i), int(j), float(x))

    def set_integrality(self, idx, integer: bool) -> None:
        kind = (self._highspy.HighsVarType.kInteger if integer
                else self._highspy.HighsVarType.kContinuous)
        if len(idx):
            self.h.changeColsIntegrality(len(idx), idx, [kind] * len(idx))

    def add_rows(self, lower, upper, starts, index, values) -> None:
        self.h.addRows(len(lower), lower, upper, len(index), starts, index, values)

    def add_cols(self, cost, lower, upper, starts=(), index=(), values=()) -> int:
        """Append columns (optionally with their entries, column-wise); their first index."""
        import numpy as np

        first = self.h.getNumCol()
        self.h.addCols(len(cost), np.asarray(cost, dtype=float), np.asarray(lower, dtype=float),
                       np.asarray(upper, dtype=float), len(index),
                       np.asarray(starts, dtype=np.int32), np.asarray(index, dtype=np.int32),
                       np.asarray(values, dtype=float))
        return first

    def set_option(self, name: str, value) -> None:
        self.h.setOptionValue(name, value)

    def set_start(self, values) -> None:
        """A full primal vector for the next MIP solve to start from (an incumbent)."""
        import numpy as np

        v = np.asarray(values, dtype=float)
        self.h.setSolution(len(v), np.arange(len(v), dtype=np.int32), v)

    def basis(self):
        return self.h.getBasis()

    def set_basis(self, basis) -> None:
        self.h.setBasis(basis)

    def num_rows(self) -> int:
        return self.h.getNumRow()

    def num_cols(self) -> int:
        return self.h.getNumCol()

    def clear(self) -> None:
        """Forget the basis and any solution: the next run starts from scratch."""
        self.h.clearSolver()

    def run(self) -> tuple[str, float | None, float | None]:
        """(status, objective, dual bound); status 'optimal', 'time limit' (with the MIP's
        dual bound so far, which still holds) or HiGHS's model status. A warm start that
        ends without a verdict (HiGHS's 'Unknown', numerical trouble after many changes) is
        retried once from scratch."""
        kind = self._highspy.HighsModelStatus
        self.h.run()
        status = self.h.getModelStatus()
        if status == kind.kUnknown:
            self.h.clearSolver()
            self.h.run()
            status = self.h.getModelStatus()
        if status == kind.kTimeLimit:
            info = self.h.getInfo()
            return "time limit", None, (info.mip_dual_bound if info.mip_node_count >= 0
                                        else None)
        if status != kind.kOptimal:
            return self.h.modelStatusToString(status), None, None
        info = self.h.getInfo()
        bound = info.mip_dual_bound if info.mip_node_count >= 0 else None
        return "optimal", info.objective_function_value, bound

    def primal(self):
        import numpy as np

        return np.asarray(self.h.getSolution().col_value)

    def reduced_costs(self):
        import numpy as np

        return np.asarray(self.h.getSolution().col_dual)
