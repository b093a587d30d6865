"""Solving: the only module that names HiGHS.

Hands a Pyomo model to HiGHS once, as arrays passed to highspy (`HighsModel`), maps what
comes back to our own `SolveOutcome`, loads variable values only when a solution exists and
re-solves the shadow-price LP in the same HiGHS instance. A time limit with no incumbent is
`no_solution`: no plan of zeros is ever produced. `ArrayLp` is the same HiGHS instance for
callers that hold arrays, not Pyomo models (evaluation, decomposition).

Refuses highspy 1.14.0 (wrong MIP optima) and anything older than 1.15.1.
"""

from __future__ import annotations

import importlib.metadata
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyomo.core as pyo

from offtake.solvers.linear import compile_linear
from offtake.solvers.options import (  # noqa: F401  (re-exported: callers import them here)
    BAD_HIGHSPY,
    DEFAULT_MIP_GAP,
    MIN_HIGHSPY,
    ModelSize,
    SolveOptions,
    SolveOutcome,
    Status,
)


class SolverVersionError(RuntimeError):
    pass


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
    return HighsModel(m, options).solve()


class HighsModel:
    """A Pyomo model handed to HiGHS once: compiled to arrays (`linear.compile_linear`) and
    passed to a highspy instance, which then serves the MIP, the shadow-price LP (integrality
    off, integer columns fixed by their bounds, in the same instance) and in-place changes
    for warm re-solves. Row i of HiGHS is `arrays.rows[i]`, column j `arrays.columns[j]`:
    the names that map back to families, rules and variables."""

    def __init__(self, m: pyo.ConcreteModel, options: SolveOptions | None = None) -> None:
        self.m = m
        self.options = options or SolveOptions()
        self.version = check_solver_version()
        start = time.perf_counter()
        self.arrays = a = compile_linear(m, [])
        self.lp = ArrayLp(a.cost.base, a.col_lb.base, a.col_ub.base, a.row_lb.base,
                          a.row_ub.base, a.csc(), a.integer)
        self.offset = float(a.offset.base[0])
        self.sign = _sense_sign(m)
        """-1 for a maximisation: the arrays minimise the negated objective."""
        self.size = _size(a)
        self.structure = _structure(a)
        self.col_lb, self.col_ub = a.col_lb.base.copy(), a.col_ub.base.copy()
        """The column bounds HiGHS holds now (the shadow-price LP fixes the integer ones)."""
        self.relaxed = False
        """True while the integer columns are continuous (after `shadow_prices`)."""
        self._apply_options(self.options)
        self.handover_seconds = time.perf_counter() - start
        self.solution: np.ndarray | None = None
        self.started = 0.0
        """When the last solve started (time.perf_counter): its time limit covers the duals."""
        self.warm_starts = 0
        """How many solves started from a previous model of the same structure."""

    def update(self, m: pyo.ConcreteModel, options: SolveOptions | None = None) -> bool:
        """Make this HiGHS model the model `m`, when `m` has exactly the structure of the one
        it holds (the same rows and columns, by component and index, the same sparsity and
        integrality) and differs only in numbers: costs, bounds, right-hand sides and matrix
        entries are changed in place, the previous solution is offered as a MIP start (an LP
        keeps its basis), and True is returned. Otherwise nothing changes and it returns False
        (the caller builds a new HighsModel)."""
        start = time.perf_counter()
        a = compile_linear(m, [])
        if _structure(a) != self.structure:
            return False
        old, lp = self.arrays, self.lp
        if self.relaxed:
            ints = np.flatnonzero(a.integer)
            lp.set_integrality(ints, True)
            self.relaxed = False
        changed = np.flatnonzero(a.cost.base != old.cost.base)
        lp.set_costs(changed, a.cost.base[changed])
        changed = np.flatnonzero((a.col_lb.base != self.col_lb) | (a.col_ub.base != self.col_ub))
        lp.set_col_bounds(changed, a.col_lb.base[changed], a.col_ub.base[changed])
        changed = np.flatnonzero((a.row_lb.base != old.row_lb.base)
                                 | (a.row_ub.base != old.row_ub.base))
        lp.set_row_bounds(changed, a.row_lb.base[changed], a.row_ub.base[changed])
        changed = np.flatnonzero(a.a_val.base != old.a_val.base)
        lp.set_coefficients(a.a_rows[changed], a.a_cols[changed], a.a_val.base[changed])
        self.m, self.arrays = m, a
        self.col_lb, self.col_ub = a.col_lb.base.copy(), a.col_ub.base.copy()
        self.offset = float(a.offset.base[0])
        self.options = options or self.options
        self._apply_options(self.options)
        if self.solution is not None and a.integer.any():
            lp.set_start(self.solution)
        self.solution = None
        self.warm_starts += 1
        self.handover_seconds = time.perf_counter() - start
        return True

    def _apply_options(self, options: SolveOptions) -> None:
        lp = self.lp
        lp.set_option("mip_rel_gap", options.mip_gap)
        lp.set_option("time_limit", float("inf") if options.time_limit is None
                      else float(options.time_limit))
        if options.objective_scale:
            lp.set_option("user_objective_scale", int(options.objective_scale))
        if options.threads:
            lp.set_option("threads", int(options.threads))

    def solve(self) -> SolveOutcome:
        """Run HiGHS; load the solution into the Pyomo variables when there is one."""
        if self.options.write_model is not None:
            self.write_mps(Path(self.options.write_model))
        h = self.lp.h
        start = self.started = time.perf_counter()
        try:
            h.run()
        except Exception as exc:  # solver crashed: report, never pretend
            return SolveOutcome("error", None, None, None, "highs", self.version,
                                time.perf_counter() - start, None, "error", self.size, str(exc))
        seconds = time.perf_counter() - start + self.handover_seconds
        model_status = h.getModelStatus()
        info = h.getInfo()
        has_point = info.primal_solution_status == 2  # kSolutionStatusFeasible
        status, message = _status(h.modelStatusToString(model_status), has_point,
                                  self.size.binaries + self.size.integers > 0)
        if status in ("infeasible_or_unbounded", "unbounded"):
            status, message = self._infeasible_or_unbounded()
        objective = bound = gap = None
        if status in ("optimal", "feasible"):
            self.solution = self.lp.primal()
            self._load(self.solution)
            objective = self.sign * (float(info.objective_function_value) + self.offset)
            if self.size.binaries + self.size.integers:
                bound = _finite(info.mip_dual_bound)
                bound = None if bound is None else self.sign * (bound + self.offset)
            else:
                bound = objective
            gap = _gap(objective, bound, self.size)
        return SolveOutcome(status, objective, bound, gap, "highs", self.version, seconds,
                            float(h.getRunTime()), h.modelStatusToString(model_status),
                            self.size, message)

    def _infeasible_or_unbounded(self) -> tuple[Status, str]:
        """Tell an infeasible model from an unbounded one (HiGHS's presolve may only say
        "infeasible or unbounded"): the model with a zero objective is feasible exactly when
        the original is unbounded. For an unbounded model, name the columns of an improving
        ray of its LP relaxation (which purchases and sales grow without limit)."""
        lp, a, h = self.lp, self.arrays, self.lp.h
        n = a.shape[1]
        everything = np.arange(n, dtype=np.int32)
        ints = np.flatnonzero(a.integer)
        try:
            lp.set_costs(everything, np.zeros(n))
            h.clearSolver()
            h.run()
            feasible = h.modelStatusToString(h.getModelStatus()) == "Optimal"
            if not feasible:
                return "infeasible", "HiGHS proved the model infeasible"
            lp.set_costs(everything, a.cost.base)
            lp.set_integrality(ints, False)
            lp.set_option("presolve", "off")
            h.clearSolver()
            h.run()
            _, has_ray, ray = h.getPrimalRay()
            names = []
            if has_ray:
                ray = np.asarray(ray)
                big = np.flatnonzero(np.abs(ray) > 1e-9 * max(1.0, float(np.abs(ray).max())))
                order = big[np.argsort(-np.abs(ray[big]))][:6]
                names = [a.columns[j].name for j in order]
            where = (f": the cost falls without limit as these grow together: "
                     f"{', '.join(names)}" if names else "")
            return "unbounded", ("the model is unbounded (feasible, and the cost has no lower "
                                 f"limit){where}; a resale or credit pays more than the "
                                 "purchase that feeds it, with no volume limit")
        finally:
            lp.set_costs(everything, a.cost.base)
            lp.set_integrality(ints, True)
            lp.set_option("presolve", "choose")
            h.clearSolver()

    def _load(self, x: np.ndarray) -> None:
        for v, value in zip(self.arrays.columns, x, strict=True):
            if not v.fixed:  # a fixed variable is a constant of the arrays, not a column
                v.set_value(float(value), skip_validation=True)

    def shadow_prices(self) -> dict | None:
        """Duals of every row of the LP left when the integer columns are fixed at the
        solution (the LP itself when there are none), re-solved in this HiGHS instance; None
        without a solution or when that LP does not solve to optimality. Keyed by the Pyomo
        constraint; sign as HiGHS gives it (d objective / d row bound, minimisation). The
        solve's time limit covers this LP too: it gets what the MIP left (None when nothing
        is left), not a second full limit."""
        if self.solution is None:
            return None
        limit = self.options.time_limit
        left = None if limit is None else float(limit) - (time.perf_counter() - self.started)
        if left is not None and left <= 0:
            return None
        ints = np.flatnonzero(self.arrays.integer)
        if len(ints):
            fixed = np.round(self.solution[ints])
            self.lp.set_integrality(ints, False)
            self.lp.set_col_bounds(ints, fixed, fixed)
            self.col_lb[ints], self.col_ub[ints] = fixed, fixed
            self.relaxed = True
            self.lp.set_start(self.solution)
        h = self.lp.h
        self.lp.set_option("time_limit", float("inf") if left is None else left)
        # interior point with crossover: a basic optimum, like the simplex's, several times
        # faster on these LPs (medium instance: 0.08 s against 0.27 s)
        self.lp.set_option("solver", "ipm")
        try:
            h.run()
        finally:
            self.lp.set_option("solver", "choose")
            self.lp.set_option("time_limit", float("inf") if limit is None else float(limit))
        if h.modelStatusToString(h.getModelStatus()) != "Optimal":
            return None
        duals = h.getSolution().row_dual
        return dict(zip(self.arrays.rows, (float(y) for y in duals), strict=True))

    def write_mps(self, path: Path) -> None:
        """Name HiGHS's columns and rows after the Pyomo components and write MPS."""
        h = self.lp.h
        for j, v in enumerate(self.arrays.columns):
            h.passColName(j, _mps_name(v.name))
        for i, con in enumerate(self.arrays.rows):
            h.passRowName(i, _mps_name(con.name))
        path.parent.mkdir(parents=True, exist_ok=True)
        h.writeModel(str(path))


def _status(model_status: str, has_point: bool, mip: bool) -> tuple[Any, str]:
    """Our status from HiGHS's model status (as its string) and whether it holds a
    feasible point."""
    if model_status == "Optimal":
        return "optimal", ""
    if model_status == "Infeasible":
        return "infeasible", "HiGHS proved the model infeasible"
    if model_status == "Primal infeasible or unbounded":
        # credits (resale, rebates, prepayment credits) are negative costs: told apart by
        # HighsModel._infeasible_or_unbounded
        return "infeasible_or_unbounded", ""
    if model_status == "Unbounded":
        return "unbounded", "HiGHS reported the model unbounded"
    stopped = model_status in ("Time limit reached", "Iteration limit reached", "Interrupted",
                               "Objective bound", "Objective target", "Solution limit reached")
    if stopped and has_point and mip:
        return "feasible", f"stopped ({model_status}) with an incumbent"
    if stopped:
        return "no_solution", f"stopped ({model_status}) before finding any feasible plan"
    return "error", f"HiGHS ended with '{model_status}' and no solution"


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


def _sense_sign(m: pyo.ConcreteModel) -> float:
    objs = list(m.component_data_objects(pyo.Objective, active=True))
    return -1.0 if objs and objs[0].sense == pyo.maximize else 1.0


def _structure(a) -> tuple:
    """What must match for an in-place update: every row and column by component and index,
    the sparsity pattern and the integrality."""
    def ident(item) -> tuple:
        return (item.parent_component().local_name, item.index())

    return (a.shape, tuple(map(ident, a.columns)), tuple(map(ident, a.rows)),
            a.integer.tobytes(), a.a_rows.tobytes(), a.a_cols.tobytes())


def _size(a) -> ModelSize:
    ints = np.flatnonzero(a.integer)
    binary = (a.col_lb.base[ints] >= 0) & (a.col_ub.base[ints] <= 1)
    return ModelSize(rows=a.shape[0], columns=a.shape[1], nonzeros=len(a.a_rows),
                     binaries=int(binary.sum()), integers=int(len(ints) - binary.sum()))


def _mps_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_[],.-" else "_" for ch in name)


def objective_scale_for(max_coefficient: float, target: float = 1.0e6) -> int | None:
    """Power-of-two exponent that brings the largest objective coefficient under `target`
    (HiGHS warns of "excessively large costs" above about 1e6), or None when not needed."""
    if max_coefficient <= target:
        return None
    return -math.ceil(math.log2(max_coefficient / target))


_BANNER_SHOWN = False


def _new_highs():
    """A silent highspy.Highs. HiGHS prints its banner to the C-level stdout when the first
    instance of a process is made, before any option can be set: that one is made with file
    descriptor 1 pointed at /dev/null (what Pyomo's interface did by capturing output)."""
    import highspy

    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        h = highspy.Highs()
    else:
        import contextlib
        import ctypes
        import os
        import sys

        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            h = highspy.Highs()
            with contextlib.suppress(OSError, AttributeError, TypeError):  # no C runtime
                ctypes.CDLL(None).fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _BANNER_SHOWN = True
    h.setOptionValue("output_flag", False)
    return h


class ArrayLp:
    """A HiGHS instance fed with arrays and changed in place between solves (bounds, costs),
    so that each solve starts from the previous basis. Used by the decomposition, whose
    subproblems and master are `linear.LinearArrays`, never Pyomo models."""

    def __init__(self, cost, col_lb, col_ub, row_lb, row_ub, a_matrix, integer=None):
        import highspy

        check_solver_version()
        self.h = _new_highs()
        self.h.setOptionValue("mip_rel_gap", DEFAULT_MIP_GAP)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(cost), len(row_lb)
        lp.col_cost_ = cost
        lp.col_lower_, lp.col_upper_ = col_lb, col_ub
        lp.row_lower_, lp.row_upper_ = row_lb, row_ub
        a = a_matrix.tocsc() if hasattr(a_matrix, "tocsc") else a_matrix  # scipy or linear.Csc
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
