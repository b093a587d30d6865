"""A built Pyomo model as arrays: min c x s.t. row_lb <= A x <= row_ub, col_lb <= x <= col_ub.

Every number may depend affinely on a vector of scenario data theta (the slots of a
`data.ParametricView`, placed in the model as mutable parameters): each array is stored as
its value at theta = 0 plus a sparse Jacobian, so that the model of any scenario is two
sparse products away instead of a Pyomo build. That a number really is affine in theta is
checked when the arrays are made (`NotAffineError` otherwise).

Reads a model; never builds one and never solves. Arrays without parameters (one solve of a
model) need no scipy: importing it after Pyomo costs about a second, because Pyomo's
dependency hook then imports `scipy.stats`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyomo.core as pyo
from pyomo.core.expr.numvalue import native_numeric_types
from pyomo.core.expr.visitor import identify_mutable_parameters
from pyomo.repn.standard_repn import generate_standard_repn

INF = float("inf")


class NotAffineError(ValueError):
    pass


@dataclass
class Affine:
    """Values of an array at theta: base + jac @ theta."""

    base: np.ndarray
    jac: Any | None
    """scipy.sparse.csr_array (len(base) x len(theta)); None when nothing depends on theta."""

    def at(self, theta: np.ndarray) -> np.ndarray:
        return self.base if self.jac is None else self.base + self.jac @ theta

    @property
    def dynamic(self) -> np.ndarray:
        """Positions that depend on theta."""
        if self.jac is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(np.diff(self.jac.indptr))


@dataclass(frozen=True)
class Csc:
    """A sparse matrix in compressed-column form, as HiGHS takes it."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray


@dataclass
class LinearArrays:
    columns: Sequence  # VarData, in column order (a range once the model is left behind)
    rows: Sequence  # ConstraintData, in row order (likewise)
    integer: np.ndarray  # bool per column
    cost: Affine
    offset: Affine  # objective constant (length 1)
    col_lb: Affine
    col_ub: Affine
    row_lb: Affine
    row_ub: Affine
    a_rows: np.ndarray  # A in coordinate form (row, col, value)
    a_cols: np.ndarray
    a_val: Affine

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.columns)

    def matrix(self, theta: np.ndarray) -> Any:
        """A at theta as a scipy.sparse.csc_array."""
        from scipy import sparse

        return sparse.csc_array((self.a_val.at(theta), (self.a_rows, self.a_cols)),
                                shape=self.shape)

    def csc(self, theta: np.ndarray | None = None) -> Csc:
        """A at theta (0 by default) in compressed-column form, without scipy (entries are
        unique per row and column: a linear representation merges repeated variables)."""
        values = self.a_val.at(np.zeros(0) if theta is None else theta)
        order = np.lexsort((self.a_rows, self.a_cols))
        cols = self.a_cols[order]
        indptr = np.searchsorted(cols, np.arange(self.shape[1] + 1), side="left")
        return Csc(indptr.astype(np.int32), self.a_rows[order].astype(np.int32),
                   np.asarray(values, dtype=float)[order])


class _Collector:
    """Gathers one array's entries: numbers, or expressions of the parameters."""

    def __init__(self) -> None:
        self.base: list[float] = []
        self.dynamic: list[tuple[int, object]] = []

    def add(self, value) -> None:
        if value is None:
            self.base.append(np.nan)  # filled in by the caller (an infinite bound)
        elif type(value) in native_numeric_types or value.is_constant():
            self.base.append(float(pyo.value(value)))
        else:
            self.dynamic.append((len(self.base), value))
            self.base.append(0.0)


def compile_linear(m: pyo.ConcreteModel, params: list) -> LinearArrays:
    """The active constraints and objective of `m` as arrays affine in `params` (mutable
    ParamData, the order of theta)."""
    col_index: dict[int, int] = {}
    columns: list = []

    def col(v) -> int:
        j = col_index.get(id(v))
        if j is None:
            j = col_index[id(v)] = len(columns)
            columns.append(v)
        return j

    for v in m.component_data_objects(pyo.Var, descend_into=True, sort=False):
        col(v)
    rows: list = []
    a_r: list[int] = []
    a_c: list[int] = []
    a_val, lo, hi = _Collector(), _Collector(), _Collector()
    for con in m.component_data_objects(pyo.Constraint, active=True, sort=False):
        repn = generate_standard_repn(con.body, compute_values=False, quadratic=False)
        if not repn.is_linear():
            raise NotAffineError(f"constraint {con.name} is not linear")
        i = len(rows)
        rows.append(con)
        for v, coef in zip(repn.linear_vars, repn.linear_coefs, strict=True):
            a_r.append(i)
            a_c.append(col(v))
            a_val.add(coef)
        const = repn.constant
        lo.add(None if con.lower is None else con.lower - const)
        hi.add(None if con.upper is None else con.upper - const)
    objs = list(m.component_data_objects(pyo.Objective, active=True))
    if len(objs) != 1:
        raise ValueError(f"expected one active objective, found {len(objs)}")
    obj = objs[0]
    sign = 1.0 if obj.sense == pyo.minimize else -1.0
    repn = generate_standard_repn(obj.expr, compute_values=False, quadratic=False)
    if not repn.is_linear():
        raise NotAffineError("the objective is not linear")
    cost_terms = [(col(v), sign * c) for v, c in zip(repn.linear_vars, repn.linear_coefs,
                                                     strict=True)]
    cost = _Collector()
    cost.base = [0.0] * len(columns)
    for j, c in cost_terms:
        if type(c) in native_numeric_types or c.is_constant():
            cost.base[j] += float(pyo.value(c))
        else:
            cost.dynamic.append((j, c))
    offset = _Collector()
    offset.add(sign * repn.constant)
    col_lb, col_ub = _Collector(), _Collector()
    for v in columns:
        col_lb.add(v.lower)
        col_ub.add(v.upper)
    slot = {id(p): k for k, p in enumerate(params)}
    integer = np.array([v.is_integer() for v in columns], dtype=bool)
    return LinearArrays(
        columns, rows, integer,
        cost=_affine(cost, slot, params), offset=_affine(offset, slot, params),
        col_lb=_affine(col_lb, slot, params, nan=-INF),
        col_ub=_affine(col_ub, slot, params, nan=INF),
        row_lb=_affine(lo, slot, params, nan=-INF), row_ub=_affine(hi, slot, params, nan=INF),
        a_rows=np.asarray(a_r, dtype=np.int64), a_cols=np.asarray(a_c, dtype=np.int64),
        a_val=_affine(a_val, slot, params))


def _affine(c: _Collector, slot: dict[int, int], params: list, nan: float = 0.0) -> Affine:
    """Value at theta = 0 and the Jacobian of each dynamic entry, from evaluations at 0 and
    at each unit vector of the parameters it reads; then checked at a random theta."""
    base = np.asarray(c.base, dtype=float)
    base[np.isnan(base)] = nan
    if not params:  # nothing can depend on theta: evaluate what is left (fixed variables)
        for pos, expr in c.dynamic:
            base[pos] = float(pyo.value(expr))
        return Affine(base, None)
    from scipy import sparse

    data, ri, ci = [], [], []
    saved = [p.value for p in params]
    try:
        for p in params:
            p.set_value(0.0)
        used = []
        for pos, expr in c.dynamic:
            ps = list(identify_mutable_parameters(expr))
            if any(id(p) not in slot for p in ps):
                raise NotAffineError(f"{expr} reads a parameter that is not scenario data")
            at0 = float(pyo.value(expr))
            base[pos] = at0
            for p in ps:
                p.set_value(1.0)
                data.append(float(pyo.value(expr)) - at0)
                ri.append(pos)
                ci.append(slot[id(p)])
                p.set_value(0.0)
            used.append((pos, expr, ps))
        jac = sparse.csr_array((data, (ri, ci)), shape=(len(base), len(params)))
        _check_affine(used, base, jac, params)
    finally:
        for p, x in zip(params, saved, strict=True):
            p.set_value(x)
    return Affine(base, jac)


def _check_affine(used: Iterable, base: np.ndarray, jac: Any,
                  params: list) -> None:
    rng = np.random.default_rng(0)
    theta = rng.uniform(0.5, 2.0, len(params))
    for p, x in zip(params, theta, strict=True):
        p.set_value(float(x))
    predicted = base + jac @ theta
    for pos, expr, _ in used:
        got = float(pyo.value(expr))
        if abs(got - predicted[pos]) > 1e-9 * max(1.0, abs(got)):
            raise NotAffineError(f"{expr} is not affine in the scenario data")
