"""Partial Benders (L-shaped) decomposition of the two-stage model, for many scenarios.

The extensive form grows by a whole network model per scenario (8,552 rows for the medium
instance) and HiGHS's time on it grows much faster than the scenario count (10 scenarios:
40 s; 100: more than 15 minutes without closing the root gap). Here the scenarios are
solved one at a time:

- Scenarios are grouped by their constraints (capacities, demands, spot availabilities, rule
  right-hand sides: everything but prices). Each group keeps one real scenario, its
  representative, in the master with its whole second stage and its true cost (partial
  Benders): every plan the master proposes can be carried out in every scenario of every
  group, and the master's bound starts close to the optimum.
- Every other scenario s has a cost variable theta_s in the master, bounded by optimality
  cuts theta_s >= Q_s(x^) + g_s (x - x^): Q_s is scenario s's cost with the plan x fixed
  (an LP, `evaluate.ScenarioLp`, built once and re-solved warm on an `offtake.runtime`
  executor, see `evaluate.solve_scenarios`), g_s the reduced costs of the fixed plan
  columns, a subgradient because Q_s is convex in x.
- Phase 1 solves the master as an LP and takes cuts at a point between the master's plan and
  a stability centre (in-out), phase 2 solves it as a MIP and takes cuts at its plans. The
  lower bound is the master's (dual) bound, the upper bound the exact expected cost of the
  best plan evaluated in every scenario; it stops when they meet within `gap`.
- With lambda > 0 the master carries the linear CVaR of the scenario costs.

Too many constraint groups (say, demand sampled per scenario) would make the master the
extensive form: above `max_groups` it refuses and says so. Rules that hold in expectation
couple the scenarios and are refused too. Orchestrates data -> evaluate (model, linear) ->
solve; adds no constraint family of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from offtake.analysis.evaluate import WORKER_MODULES, ScenarioLp, solve_scenarios
from offtake.domain.risk import cvar
from offtake.domain.schema import Instance
from offtake.formulation.data import ModelData, build_data
from offtake.results.tables import write_plan
from offtake.runtime import Executor, make_executor
from offtake.solvers.highs import ArrayLp


class DecompositionError(RuntimeError):
    pass


class _OutOfTime(Exception):
    def __init__(self, bound: float):
        super().__init__("time limit")
        self.bound = float(bound) if np.isfinite(bound) else -np.inf


@dataclass(frozen=True)
class DecomposeOptions:
    gap: float = 1e-6
    """Relative gap between the best plan's cost and the lower bound at which it stops."""
    workers: int = 2
    """Processes solving scenario LPs (1 = in this process)."""
    executor: str | None = None
    """'serial', 'process' or 'dask' (`offtake.runtime.make_executor`); None: serial for
    workers = 1, else a process pool."""
    scheduler: str | None = None
    """A Dask scheduler's address (executor 'dask'); None: a local cluster of `workers`."""
    max_groups: int = 8
    """Most constraint groups (representatives in the master) before refusing."""
    max_iterations: int = 300
    time_limit: float | None = None
    in_out: float = 0.5
    """Weight of the stability centre in phase 1's separation point."""
    lp_phase_tolerance: float = 1e-5
    """Phase 1 ends when its bound improves by less than this (relative) in 3 iterations."""
    cost_clusters: int | None = 16
    """Cost variables shared by the scenarios outside the master: scenarios of one
    constraint group with similar costs share one, bounded by their probability-weighted
    (aggregated) cuts; None = one per scenario (multi-cut). With lambda > 0 always one per
    scenario: CVaR needs every scenario's cost."""


@dataclass
class DecomposeResult:
    status: str
    """'optimal' (the bounds met within the gap) or 'stopped' (time or iteration limit)."""
    objective: float
    """Expected cost (+ lambda x CVaR) of the best plan, evaluated in every scenario."""
    bound: float
    iterations: int
    plan: dict[str, dict]
    scenario_cost: dict[str, float]
    representatives: list[str]
    seconds: dict[str, float]
    size: dict[str, int]
    history: list[dict] = field(default_factory=list)
    executor: dict = field(default_factory=dict)
    """How the scenario LPs were run (`Executor.describe`)."""

    @property
    def gap(self) -> float:
        return abs(self.objective - self.bound) / max(abs(self.objective), 1e-9)


def solve_decomposed(d: ModelData, options: DecomposeOptions | None = None,
                     progress: Callable[[dict], None] | None = None, *,
                     executor: Executor | None = None) -> DecomposeResult:
    """The stochastic optimum of `d` (expected cost + lambda x CVaR_alpha), its scenario LPs
    on `executor` (the caller's, left open) or on one made from the options."""
    options = options or DecomposeOptions()
    t0 = time.perf_counter()
    if any(d.rule_in_expectation.values()):
        raise DecompositionError("rules that hold in expectation couple the scenarios: "
                                 "solve the extensive form")
    if options.cost_clusters is not None and options.cost_clusters < 1:
        raise DecompositionError(f"cost_clusters must be at least 1 (or None: one per "
                                 f"scenario), not {options.cost_clusters}")
    with _executor(executor, options) as ex:  # first: a new pool starts while this compiles
        template, groups, master = _prepare(d, options.max_groups)
        seconds = {"setup": time.perf_counter() - t0, "master": 0.0, "scenarios": 0.0}
        scenarios = _Scenarios(ex, template, master, seconds)
        return _iterate(options, master, scenarios, groups, seconds, t0, progress)


@contextmanager
def _executor(executor: Executor | None, options: DecomposeOptions) -> Iterator[Executor]:
    """The caller's executor (not closed here), or one made from the options."""
    if executor is not None:
        yield executor
        return
    kind = options.executor or ("serial" if options.workers <= 1 else "process")
    with make_executor(kind, workers=options.workers, scheduler=options.scheduler,
                       preload=WORKER_MODULES) as ex:
        yield ex


def _prepare(d: ModelData, max_groups: int) -> tuple[ScenarioLp, list[list[str]], _Master]:
    """The compiled scenario LP, the constraint groups, and the master holding one
    representative of each group."""
    scenarios = list(d.SCENARIOS)
    template = ScenarioLp(replace(d, cvar_weight=0.0, elastic=False), scenarios)
    groups = constraint_groups(template, scenarios)
    if len(groups) > max_groups:
        raise DecompositionError(
            f"the scenarios have {len(groups)} different sets of capacities, demands and "
            f"availabilities (more than max_groups = {max_groups}); the master "
            "would be the extensive form: solve that instead")
    reps = [_representative(template, g, d.probability) for g in groups]
    return template, groups, _Master(template, d, reps)


def constraint_groups(lp: ScenarioLp, scenarios: list[str]) -> list[list[str]]:
    """Scenarios whose LPs differ in costs only, together (in scenario order)."""
    a, dyn = lp.arrays, lp.dynamic
    out: dict[bytes, list[str]] = {}
    for s in scenarios:
        th = lp.thetas[s]
        key = np.concatenate([a.col_lb.at(th)[dyn["cols"]], a.col_ub.at(th)[dyn["cols"]],
                              a.row_lb.at(th)[dyn["rows"]], a.row_ub.at(th)[dyn["rows"]],
                              a.a_val.at(th)[dyn["a"]]])
        out.setdefault(np.round(key, 9).tobytes(), []).append(s)
    return list(out.values())


def cost_clusters(groups: list[list[str]], reps: list[str], cost: dict[str, float],
                  size: int | None) -> list[list[str]]:
    """The scenarios outside the master in about `size` clusters (None: one each): within
    each constraint group, runs of scenarios sorted by `cost` (their cost at one plan, a
    proxy for their price level), the number of runs proportional to the group's size."""
    outside = [[s for s in g if s not in reps] for g in groups]
    total = sum(len(g) for g in outside)
    if size is None or size >= total:
        return [[s] for g in outside for s in g]
    out = []
    for g in outside:
        if not g:
            continue
        k = max(1, round(size * len(g) / total))
        ranked = sorted(g, key=lambda s: cost[s])
        out += [list(chunk) for chunk in np.array_split(np.array(ranked, dtype=object), k)]
    return out


def _pattern(z: np.ndarray) -> bytes:
    """A signing pattern (the integer plan values) as a set key."""
    return (np.round(z) + 0.0).tobytes()  # + 0.0: -0.0 and 0.0 are one value


def _representative(lp: ScenarioLp, group: list[str], prob: dict[str, float]) -> str:
    """The scenario whose costs are closest to the group's probability-weighted mean."""
    a = lp.arrays
    idx = a.cost.dynamic
    costs = {s: a.cost.at(lp.thetas[s])[idx] for s in group}
    total = sum(prob[s] for s in group)
    mean = sum(prob[s] * costs[s] for s in group) / total
    return min(group, key=lambda s: float(np.abs(costs[s] - mean).sum()))


# --- the iterations --------------------------------------------------------------------------
class _Scenarios:
    """The scenario LPs at a plan, on the executor: timed, every verdict but 'optimal' and
    'elastic' refused, and (once the master has its cost variables) the cuts added."""

    def __init__(self, ex: Executor, template: ScenarioLp, master: _Master, seconds: dict):
        self.ex, self.template, self.master, self.seconds = ex, template, master, seconds
        self.elastic_evaluations = 0

    def __call__(self, x: np.ndarray, who: list[str]) -> dict:
        t = time.perf_counter()
        out, errors = solve_scenarios(self.ex, self.template, x, who, elastic_fallback=True,
                                      gradients=True)
        self.seconds["scenarios"] += time.perf_counter() - t
        if errors:
            s, (status, error) = next(iter(errors.items()))
            raise DecompositionError(f"the scenario LPs of {len(errors)} scenarios were not "
                                     f"solved, e.g. {s}: {status}: {error}")
        failed = [s for s, r in out.items() if r[0] not in ("optimal", "elastic")]
        self.elastic_evaluations += sum(r[0] == "elastic" for r in out.values())
        if failed:
            raise DecompositionError(f"the scenario LP of {failed[0]} ended {out[failed[0]][0]} "
                                     "for a plan its group's representative can carry out")
        if self.master.clusters:
            self.master.add_cuts(x, out)
        return out


@dataclass
class _State:
    """What the iterations carry from one to the next."""

    centre: np.ndarray
    """The stability centre (a plan; phase 'fixed': with the same integers as the MIP's)."""
    centre_full: np.ndarray | None = None
    """Phase 'fixed': the master solution at the centre (blocks, thetas)."""
    phase: str = "lp"
    """'lp' (phase 1), 'mip' (phase 2), 'fixed' (a signing pattern's volumes settled)."""
    lower: float = -np.inf
    """The master's best bound (its units)."""
    best: tuple[float, np.ndarray | None, dict] = (np.inf, None, {})
    """The best plan evaluated in every scenario: objective, plan, cost per scenario."""
    lp_values: list[float] = field(default_factory=list)
    fixed_values: list[float] = field(default_factory=list)
    tried: set[bytes] = field(default_factory=set)
    """Signing patterns whose volumes were settled."""
    proving: bool = False
    """Phase 'mip' at the target gap (nothing new came at the loose gap)."""
    history: list[dict] = field(default_factory=list)


def _iterate(options: DecomposeOptions, master: _Master, scenarios: _Scenarios,
             groups: list[list[str]], seconds: dict, t0: float,
             progress: Callable[[dict], None] | None = None) -> DecomposeResult:
    state = _start(options, master, scenarios, groups, seconds)
    status = "stopped"
    for it in range(1, options.max_iterations + 1):
        solved = _solve_master(options, master, state, seconds, t0)
        if solved is None:
            break
        _STEPS[state.phase](options, master, scenarios, state, *solved)
        state.history.append({"iteration": it, "phase": state.phase,
                              "lower": master.report(state.lower), "upper": state.best[0],
                              "seconds": time.perf_counter() - t0,
                              "master_seconds": seconds["master"],
                              "scenario_seconds": seconds["scenarios"],
                              "master_rows": master.lp.num_rows()})
        if progress is not None:
            progress(state.history[-1])
        best = state.best[0]
        if state.best[1] is not None and (best - master.report(state.lower)
                                          <= options.gap * abs(best)):
            status = "optimal"
            break
        if options.time_limit is not None and time.perf_counter() - t0 > options.time_limit:
            break
    return _result(status, master, state, scenarios, seconds, t0)


def _start(options: DecomposeOptions, master: _Master, scenarios: _Scenarios,
           groups: list[list[str]], seconds: dict) -> _State:
    """The first stability centre (the representatives' best plan), the cost clusters from
    the scenarios' costs there, and the first cuts."""
    t = time.perf_counter()
    centre = master.start()
    seconds["master"] += time.perf_counter() - t
    first = scenarios(centre, master.others)
    master.set_clusters(cost_clusters(
        groups, master.reps, {s: first[s][1] for s in master.others},
        None if master.lam > 0 else options.cost_clusters))
    master.add_cuts(centre, first)
    return _State(centre=centre)


def _solve_master(options: DecomposeOptions, master: _Master, state: _State, seconds: dict,
                  t0: float) -> tuple[np.ndarray, float] | None:
    """The master's next plan and value (its bound raises `state.lower` outside phase
    'fixed'), or None when the time ran out in a MIP (whose bound still holds)."""
    t = time.perf_counter()
    if state.phase == "mip":  # loose while it proposes new signing patterns, then tight
        master.lp.set_option("mip_rel_gap", float(options.gap / 2 if state.proving
                                                  else max(options.gap, 1e-4)))
        if options.time_limit is not None:  # one MIP solve may take minutes
            master.lp.set_option("time_limit", max(
                1.0, options.time_limit - (time.perf_counter() - t0)))
    try:
        x, value, bound = master.solve(integer=(state.phase == "mip"))
    except _OutOfTime as stop:
        state.lower = max(state.lower, stop.bound)  # the interrupted MIP's bound still holds
        return None
    finally:
        seconds["master"] += time.perf_counter() - t
    if state.phase != "fixed":  # with the integers fixed the master bounds nothing globally
        state.lower = max(state.lower, bound)
    return x, value


def _lp_step(options: DecomposeOptions, master: _Master, scenarios: _Scenarios,
             state: _State, x: np.ndarray, value: float) -> None:
    """Phase 1: cuts at a point between the LP master's plan and the centre (in-out), which
    moves there; phase 2 once the LP bound stalls."""
    state.lp_values.append(value)
    sep = options.in_out * state.centre + (1 - options.in_out) * x
    scenarios(sep, master.others)
    state.centre = sep
    v = state.lp_values
    if len(v) > 3 and v[-1] - v[-4] <= options.lp_phase_tolerance * max(abs(v[-1]), 1e-9):
        state.phase = "mip"


def _mip_step(options: DecomposeOptions, master: _Master, scenarios: _Scenarios,
              state: _State, x: np.ndarray, value: float) -> None:
    """Phase 2: the MIP's plan priced in every scenario; a new signing pattern has its
    volumes settled by LPs (phase 'fixed'), a known one sends the MIP to the target gap."""
    _consider(master, state, x, scenarios(x, master.scenarios), master.last)
    key = _pattern(x[master.x_int])
    if key not in state.tried:
        state.tried.add(key)
        master.fix_integers(x)
        state.phase, state.centre, state.fixed_values = "fixed", x, []
        state.centre_full = master.last.copy()
        state.proving = False
    else:
        state.proving = True


def _fixed_step(options: DecomposeOptions, master: _Master, scenarios: _Scenarios,
                state: _State, x: np.ndarray, value: float) -> None:
    """One signing pattern's volumes, by in-out steps of the LP master with its integers
    fixed; back to the MIP once it cannot beat the best plan or stalls."""
    state.fixed_values.append(value)
    # a mix of two master solutions with the same integers is one too: its full vector
    # (blocks, thetas) is the next MIP start if the plan is the best so far
    assert state.centre_full is not None
    sep = options.in_out * state.centre + (1 - options.in_out) * x
    sep_full = options.in_out * state.centre_full + (1 - options.in_out) * master.last
    _consider(master, state, sep, scenarios(sep, master.scenarios), sep_full)
    state.centre, state.centre_full = sep, sep_full
    best = state.best[0]
    settled = master.report(value) >= best - options.gap / 2 * abs(best)
    v = state.fixed_values
    stalled = len(v) > 3 and v[-1] - v[-4] <= options.gap * max(abs(v[-1]), 1e-9)
    if settled or stalled:
        master.free_integers()
        state.phase = "mip"


_STEPS = {"lp": _lp_step, "mip": _mip_step, "fixed": _fixed_step}


def _consider(master: _Master, state: _State, x: np.ndarray, out: dict,
              full: np.ndarray) -> None:
    """A plan priced in every scenario becomes the best if it is (and the next MIP start)."""
    if any(r[0] != "optimal" for r in out.values()):
        return  # needed elastic columns somewhere: a lower estimate, not a plan's cost
    cost = {s: master.unscaled(s, out[s][1]) for s in master.scenarios}
    total = master.objective_of(cost)
    if total < state.best[0]:
        state.best = (total, x.copy(), cost)
        master.remember(x, out, full)


def _result(status: str, master: _Master, state: _State, scenarios: _Scenarios,
            seconds: dict, t0: float) -> DecomposeResult:
    value, x, cost = state.best
    if x is None:
        raise DecompositionError("stopped before the master proposed an integer plan; "
                                 "raise the time or iteration limit")
    seconds["total"] = time.perf_counter() - t0
    size = {**master.size, "workers": scenarios.ex.workers,
            "elastic_evaluations": scenarios.elastic_evaluations}
    return DecomposeResult(status, value, min(master.report(state.lower), value),
                           len(state.history), master.plan(x), cost, list(master.reps),
                           seconds, size, state.history, scenarios.ex.describe())


# --- the master ------------------------------------------------------------------------------
class _Master:
    """Columns: the plan x, each representative's second stage, then (`set_clusters`) one
    cost variable theta_k per cluster of the other scenarios; with lambda > 0 also eta and
    xi_s (CVaR)."""

    def __init__(self, lp: ScenarioLp, d: ModelData, reps: list[str]):
        a, sc = lp.arrays, lp.scale
        self.template, self.scale, self.reps = lp, sc, reps
        self.scenarios = list(d.SCENARIOS)
        self.others = [s for s in self.scenarios if s not in reps]
        self.prob = dict(d.probability)
        self.lam, self.alpha = d.cvar_weight, d.cvar_alpha
        pc = lp.plan_cols
        n = len(pc)
        is_plan = np.zeros(a.shape[1], dtype=bool)
        is_plan[pc] = True
        other_cols = np.flatnonzero(~is_plan)
        th0 = lp.thetas[self.scenarios[0]]
        self.n = n
        self.x_lb, self.x_ub = a.col_lb.at(th0)[pc], a.col_ub.at(th0)[pc]
        self.x_int = a.integer[pc]
        self.offset = {s: lp.offset(s) for s in self.scenarios}
        cost, lo, hi = [np.zeros(n)], [self.x_lb], [self.x_ub]
        blocks, row_lo, row_hi = [], [], []
        self.rep_cost_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        first = n
        for r in reps:
            th = lp.thetas[r]
            c = a.cost.at(th) * sc
            cost[0] = cost[0] + self.prob[r] * c[pc]
            cost.append(self.prob[r] * c[other_cols])
            lo.append(a.col_lb.at(th)[other_cols])
            hi.append(a.col_ub.at(th)[other_cols])
            col = np.empty(a.shape[1], dtype=np.int64)
            col[pc] = np.arange(n)
            col[other_cols] = first + np.arange(len(other_cols))
            blocks.append((a.a_val.at(th), a.a_rows, col[a.a_cols]))
            row_lo.append(a.row_lb.at(th))
            row_hi.append(a.row_ub.at(th))
            self.rep_cost_rows[r] = (col, c)
            first += len(other_cols)
        ncol = first
        rows = sum(len(x) for x in row_lo)
        starts = np.cumsum([0] + [len(x) for x in row_lo])
        mat = sparse.csc_array(
            (np.concatenate([b[0] for b in blocks]),
             (np.concatenate([b[1] + starts[k] for k, b in enumerate(blocks)]),
              np.concatenate([b[2] for b in blocks]))), shape=(rows, ncol))
        integer = np.zeros(ncol, dtype=bool)
        integer[:n] = self.x_int
        self.lp = ArrayLp(np.concatenate(cost), np.concatenate(lo), np.concatenate(hi),
                          np.concatenate(row_lo), np.concatenate(row_hi), mat, integer)
        # the incumbents come from the scenario evaluations (set as MIP starts); HiGHS's
        # own sub-MIP heuristics cost most of a master solve (measured: 12-23 s of 20-25 s).
        # The master's few binaries (33 on the medium instance) branch well on pseudo-costs
        # without strong branching, and cuts at the root suffice: medium x 10 scenarios took
        # 108 s instead of 146-159 s, same optimum
        for option in ("mip_heuristic_run_rins", "mip_heuristic_run_rens",
                       "mip_heuristic_run_feasibility_jump",
                       "mip_allow_cut_separation_at_nodes"):
            self.lp.set_option(option, False)
        self.lp.set_option("mip_pscost_minreliable", 0)
        self.constant = sum(self.prob[s] * self.offset[s] for s in self.scenarios)
        self.clusters: list[list[str]] = []
        self.best_start: np.ndarray | None = None
        self.size = {"master_rows": rows, "master_columns": ncol,
                     "representatives": len(reps), "plan_columns": n}

    def set_clusters(self, clusters: list[list[str]]) -> None:
        """One cost variable per cluster, weighted by the cluster's probability (before any
        cut, hence after `start`); then the CVaR columns and rows if lambda > 0."""
        self.clusters = clusters
        self.weight = np.array([sum(self.prob[s] for s in c) for c in clusters])
        self.theta = self.lp.add_cols(self.weight, [-np.inf] * len(clusters),
                                      [np.inf] * len(clusters))
        if self.lam > 0:
            self._cvar()
        self.size.update(cost_variables=len(clusters), master_columns=self.lp.num_cols())

    def _cvar(self) -> None:
        """eta + sum_s p_s xi_s / (1 - alpha), xi_s >= C_s - eta, C_s the scenario's cost
        (theta of its own cluster, or the representative's cost expression), all in the
        master's units."""
        lam, alpha = self.lam, self.alpha
        self.eta = self.lp.add_cols([lam], [-np.inf], [np.inf])
        p = [self.prob[s] for s in self.scenarios]
        self.xi = self.lp.add_cols([lam * q / (1 - alpha) for q in p], [0.0] * len(p),
                                   [np.inf] * len(p))
        starts: list[int] = []
        idx: list[int] = []
        val: list[float] = []
        lower: list[float] = []
        theta = {c[0]: self.theta + k for k, c in enumerate(self.clusters) if len(c) == 1}
        for k, s in enumerate(self.scenarios):
            starts.append(len(idx))
            lower.append(self.offset[s] * self.scale)  # C_s includes its constant
            if s in self.rep_cost_rows:
                col, c = self.rep_cost_rows[s]
                nz = np.flatnonzero(c)
                idx += [self.xi + k, self.eta, *col[nz].tolist()]
                val += [1.0, 1.0, *(-c[nz]).tolist()]
            else:
                idx += [self.xi + k, self.eta, theta[s]]
                val += [1.0, 1.0, -1.0]
        self.lp.add_rows(lower, [np.inf] * len(lower), starts, idx, val)

    def start(self) -> np.ndarray:
        """The plan that is best for the representatives alone (called before the cost
        variables exist): it can be carried out in every group, so it is the first
        stability centre."""
        x, _, _ = self.solve(integer=False)
        return x

    def solve(self, integer: bool) -> tuple[np.ndarray, float, float]:
        self.lp.set_integrality(np.flatnonzero(self.x_int), integer)
        if integer and self.best_start is not None:
            self.lp.set_start(self.best_start)
        status, value, bound = self.lp.run()
        if status == "time limit":
            raise _OutOfTime(bound if integer and bound is not None else -np.inf)
        if status != "optimal":
            raise DecompositionError(f"the master problem ({'MIP' if integer else 'LP'}, "
                                     f"{self.lp.num_rows()} rows) ended {status}")
        assert value is not None  # an optimal run has an objective value
        primal = self.lp.primal()
        self.last = primal
        x = np.clip(primal[:self.n], self.x_lb, self.x_ub)
        if integer:
            x[self.x_int] = np.round(x[self.x_int])
        return x, float(value), float(bound if integer and bound is not None else value)

    def _aggregate(self, out: dict) -> list[tuple[float, np.ndarray]]:
        """Per cluster: the probability-weighted mean of its scenarios' values and
        subgradients (a cut on the mean is a cut on the cluster's theta)."""
        agg = []
        for c, w in zip(self.clusters, self.weight, strict=True):
            v = sum(self.prob[s] * out[s][1] for s in c) / w
            g = sum(self.prob[s] * out[s][2] for s in c) / w
            agg.append((float(v), g))
        return agg

    def add_cuts(self, x: np.ndarray, out: dict) -> None:
        """theta_k >= v_k + g_k (x - x^), as g_k x - theta_k <= g_k x^ - v_k."""
        starts: list[int] = []
        idx: list[int] = []
        val: list[float] = []
        upper: list[float] = []
        for k, (v, g) in enumerate(self._aggregate(out)):
            nz = np.flatnonzero(np.abs(g) > 1e-12 * max(1.0, float(np.abs(g).max())))
            starts.append(len(idx))
            idx += [*nz.tolist(), self.theta + k]
            val += [*g[nz].tolist(), -1.0]
            upper.append(float(g[nz] @ x[nz] - v))
        if upper:
            self.lp.add_rows([-np.inf] * len(upper), upper, starts, idx, val)

    def fix_integers(self, x: np.ndarray) -> None:
        """Settle the volumes of one signing pattern: its integers fixed, an LP master."""
        idx = np.flatnonzero(self.x_int)
        self.lp.set_col_bounds(idx, x[idx], x[idx])

    def free_integers(self) -> None:
        idx = np.flatnonzero(self.x_int)
        self.lp.set_col_bounds(idx, self.x_lb[idx], self.x_ub[idx])

    def remember(self, x: np.ndarray, out: dict, full: np.ndarray) -> None:
        """The best plan's master solution `full`, with each theta_k raised to its true
        value, as the next MIP start (it still satisfies every cut, which under-estimate)."""
        start = full.copy()
        start[:self.n] = x
        for k, (v, _) in enumerate(self._aggregate(out)):
            start[self.theta + k] = max(start[self.theta + k], v)
        if self.lam > 0:
            own = {c[0]: self.theta + k for k, c in enumerate(self.clusters)}
            costs = [(start[own[s]] if s in own
                      else float(self.rep_cost_rows[s][1] @ start[self.rep_cost_rows[s][0]]))
                     + self.offset[s] * self.scale for s in self.scenarios]
            start[self.xi:self.xi + len(costs)] = np.maximum(
                0.0, np.array(costs) - start[self.eta])
        self.best_start = start

    def unscaled(self, s: str, value: float) -> float:
        return value / self.scale + self.offset[s]

    def objective_of(self, cost: dict[str, float]) -> float:
        v = np.array([cost[s] for s in self.scenarios])
        p = np.array([self.prob[s] for s in self.scenarios])
        mean = float(p @ v)
        if self.lam <= 0:
            return mean
        return mean + self.lam * cvar(list(v), list(p), self.alpha)

    def report(self, master_value: float) -> float:
        """A master objective value in currency (the expected constant is outside it)."""
        return master_value / self.scale + self.constant

    def plan(self, x: np.ndarray) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for (name, k), v in zip(self.template.plan_keys, x, strict=True):
            out.setdefault(name, {})[k] = float(v)
        return out


def decompose_instance(inst: Instance, out_dir: str | Path, options=None, *,
                       cvar_weight: float = 0.0, cvar_alpha: float = 0.95,
                       executor: Executor | None = None):
    """Solve by decomposition (offtake.analysis.decompose) and write decomposition.json, plan.json
    and scenario_costs.csv (scenario, probability, cost) to `out_dir`; the scenario LPs on
    `executor` (the caller's, left open) or on one made from the options."""
    d = build_data(inst, cvar_weight=cvar_weight, cvar_alpha=cvar_alpha)
    res = solve_decomposed(d, options or DecomposeOptions(), executor=executor)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {"status": res.status, "objective": res.objective, "bound": res.bound,
              "gap": res.gap, "iterations": res.iterations, "cvar_weight": cvar_weight,
              "cvar_alpha": cvar_alpha, "representatives": res.representatives,
              "seconds": res.seconds, "size": res.size,
              "currency": inst.meta.currency, "instance_name": inst.meta.name,
              "executor": res.executor, "history": res.history}
    (out / "decomposition.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    write_plan(out / "plan.json", res.plan)
    table = pd.DataFrame([{"scenario": s, "probability": d.probability[s],
                           "cost": res.scenario_cost[s]} for s in d.SCENARIOS])
    table.to_csv(out / "scenario_costs.csv", index=False)
    return res, table
