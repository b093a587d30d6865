"""Consortia: what buyers gain by pooling their demand, and how to split the pooled cost.

The members (the instance's buyers, or some of them) play a cost game. For every nonempty
coalition S (2^n - 1 of them) c(S) is the optimum of the instance restricted to S's buyers
(`domain.transforms.restrict_to_buyers`: rules scoped only to other buyers dropped, validated
like a file), solved to a tight MIP gap on an
`offtake.runtime` executor (each coalition's gap and bound are reported). What S may buy:

* market "alone" (default): S buys on the whole market as if the other members did not exist
  (every facility's capacity, every spot market's availability, every build option is S's);
* market "residual": first every coalition is solved alone; then each S is solved again on
  the market left after the other members, N \\ S, bought as a coalition alone: the capacity
  N \\ S uses at each facility (contract deliveries plus processing) and its spot purchases
  are taken out of the facility's own capacity and the market's availability, year by year
  (the largest use over the scenarios; never below 0). Offers' own limits and build options
  stay as they are. For S = N nothing is taken out.

Then: the savings of pooling (sum of stand-alone costs minus c(N)), which plants each
coalition builds, and four allocations of c(N): proportional to stand-alone cost, Shapley
value, nucleolus (lexicographic minimum of the coalitions' excesses x(S) - c(S), over the
imputations x_i <= c({i}) when there are any) and a least-core point (the smallest epsilon
with x(S) <= c(S) + epsilon for every coalition; of those points, the one nearest to the
Shapley value). Each is checked against the core: a coalition with x(S) > c(S) would be
better off alone by the difference. The core is empty when the least-core epsilon is
positive. Nucleolus and least core are LPs solved by HiGHS (`solvers.highs.ArrayLp`).

A run is resumable: each coalition is appended to a journal (`coalitions.jsonl`) as it
finishes (`Executor.map`'s `on_result`); a later run with the same instance, members, market
and options reads it back and solves only what is missing.

Owns the coalitions, the game's allocations and the journal. Builds no model of its own (one
solve per coalition: `pipeline.solve.solve_instance`); writes only the journal, and reads
back the folder `offtake consortium --out` writes (`read_result`, for the dashboard).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from offtake.domain.findings import Finding, InvalidInstance, nearest
from offtake.domain.schema import Instance
from offtake.domain.transforms import restrict_to_buyers, set_values, to_data
from offtake.runtime import Executor, TaskResult, highs_threads, make_executor

MARKETS = ("alone", "residual")
JOURNAL = "coalitions.jsonl"
JOURNAL_VERSION = 1
SOLVED = ("optimal", "feasible")
TOL = 1e-7
"""Relative tolerance of the game's LPs and core checks (of the grand coalition's cost)."""
WORKER_MODULES = ("offtake.analysis.consortium", "offtake.pipeline.solve")
"""What a coalition task imports in a worker (`make_executor`'s preload)."""

Members = tuple[str, ...]
Progress = Callable[[int, int, "Coalition | None"], None]
"""progress(done, total, the coalition just finished or None at the start)."""


@dataclass(frozen=True)
class ConsortiumOptions:
    market: str = "alone"
    """'alone' or 'residual' (see the module's docstring)."""
    mip_gap: float = 1e-6
    """Relative MIP gap of each coalition's solve."""
    time_limit: float | None = None
    """Seconds per coalition solve (None: none)."""


@dataclass
class Coalition:
    """One coalition's solve."""

    members: Members
    phase: str
    """'alone', or 'residual' (solved on what the other members left)."""
    status: str
    cost: float | None = None
    bound: float | None = None
    gap: float | None = None
    built: tuple[str, ...] = ()
    signed: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str = ""
    use: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    """What it used of the market (for the residual market): {'facility': {f: {year: t}},
    'spot': {market: {year: t}}}, the largest use over the scenarios."""

    @property
    def ok(self) -> bool:
        return self.status in SOLVED and self.cost is not None

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out["members"] = list(self.members)
        out["use"] = {kind: {k: {str(y): t for y, t in by.items()} for k, by in v.items()}
                      for kind, v in self.use.items()}
        return out

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Coalition:
        use = {kind: {k: {int(y): float(t) for y, t in by.items()} for k, by in v.items()}
               for kind, v in (r.get("use") or {}).items()}
        return cls(tuple(r["members"]), r["phase"], r["status"], r.get("cost"), r.get("bound"),
                   r.get("gap"), tuple(r.get("built") or ()), tuple(r.get("signed") or ()),
                   float(r.get("seconds") or 0.0), r.get("error") or "", use)


# --- coalitions ------------------------------------------------------------------------------
def coalitions_of(members: Sequence[str]) -> list[Members]:
    """Every nonempty subset of the members, smallest first (members in the given order)."""
    return [c for k in range(1, len(members) + 1) for c in itertools.combinations(members, k)]


def coalition_instance(inst: Instance, members: Sequence[str],
                       taken: dict[str, dict[str, dict[int, float]]] | None = None) -> Instance:
    """The instance for a coalition: its buyers only (`restrict_to_buyers`), and with `taken` (what
    the other members use, see `Coalition.use`) taken out of the facilities' capacity and the
    spot markets' availability, never below 0. Validated like a file."""
    sub = restrict_to_buyers(inst, list(members))[0]
    if not taken:
        return sub
    years = sub.horizon.years
    edits: list[tuple[str, Any]] = []
    for f in sub.facilities:
        used = taken.get("facility", {}).get(f.id)
        if used:
            edits.append((f"facilities.{f.id}.capacity_t",
                          {y: max(0.0, _at(f.capacity_t, y) - used.get(y, 0.0)) for y in years}))
    for k in sub.spot_markets:
        used = taken.get("spot", {}).get(k.id)
        if used and not k.unlimited:
            edits.append((f"spot_markets.{k.id}.availability_t",
                          {y: max(0.0, _at(k.availability_t, y) - used.get(y, 0.0))
                           for y in years}))
    return set_values(sub, edits) if edits else sub


def _at(series: Any, year: int) -> float:
    if isinstance(series, dict):
        return float(series.get(year, 0.0))
    return float(series or 0.0)


def _solve_task(shared: tuple[Instance, ConsortiumOptions], item: tuple) -> Coalition:
    """One coalition, in a worker: restrict, solve, read what the plan signs, builds and
    uses."""
    from offtake.pipeline.solve import solve_instance
    from offtake.solvers.options import SolveOptions

    inst, options = shared
    members, phase, taken = item
    start = time.perf_counter()
    sub = coalition_instance(inst, members, taken)
    res = solve_instance(sub, SolveOptions(mip_gap=options.mip_gap,
                                           time_limit=options.time_limit,
                                           threads=highs_threads()))
    out = Coalition(tuple(members), phase, res.status, res.objective, res.bound, res.mip_gap,
                    error=res.message if not res.has_solution else "")
    if res.has_solution:
        t = res.tables
        builds = t.get("builds")
        if builds is not None and not builds.empty:
            out.built = tuple(str(j) for j, b in zip(builds["build_id"], builds["built"],
                                                     strict=True) if b)
        offers = t["offers"]
        out.signed = tuple(str(o) for o, z in zip(offers["offer_id"], offers["signed"],
                                                  strict=True) if z)
        if options.market == "residual" and phase == "alone":
            out.use = _market_use(t)
    out.seconds = time.perf_counter() - start
    return out


def _market_use(t: dict[str, pd.DataFrame]) -> dict[str, dict[str, dict[int, float]]]:
    """Facility use (contract deliveries + processing) and spot purchases by year, the
    largest over the scenarios."""
    parts = []
    c = t["contracts"]
    if not c.empty:
        parts.append(c.rename(columns={"supplier": "node", "delivered_t": "t"})[
            ["node", "year", "scenario", "t"]])
    p = t["production"]
    if not p.empty:
        parts.append(p.rename(columns={"facility": "node", "production_t": "t"})[
            ["node", "year", "scenario", "t"]])
    out: dict[str, dict[str, dict[int, float]]] = {"facility": {}, "spot": {}}
    if parts:
        _largest(pd.concat(parts), "node", "t", out["facility"])
    if not t["spot"].empty:
        _largest(t["spot"], "market", "volume_t", out["spot"])
    return out


def _largest(frame: pd.DataFrame, node: str, value: str, into: dict[str, dict[int, float]]
             ) -> None:
    """into[node][year] = the largest over the scenarios of the sum of `value`."""
    per = frame.groupby([node, "year", "scenario"], as_index=False)[value].sum()
    top = per.groupby([node, "year"], as_index=False)[value].max()
    for n, y, x in zip(top[node], top["year"], top[value], strict=True):
        if x > 1e-9:
            into.setdefault(str(n), {})[int(y)] = float(x)


# --- the journal -----------------------------------------------------------------------------
def journal_key(inst: Instance, members: Sequence[str], options: ConsortiumOptions) -> str:
    """What a journal's coalitions depend on: the instance's data, the members, the market
    and the solve options."""
    text = json.dumps({"version": JOURNAL_VERSION, "instance": to_data(inst),
                       "members": list(members), "options": asdict(options)},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Journal:
    """Coalitions appended as they finish (one JSON line each, flushed to disk), read back by
    a later run with the same key; a journal of another key is started afresh."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = Path(path), key
        self.done: dict[tuple[Members, str], Coalition] = {}
        self.resumed = False
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            head = _json(lines[0]) if lines else None
            if head is not None and head.get("key") == key:
                for line in lines[1:]:
                    r = _json(line)  # a line cut by the interruption is skipped
                    if r is not None and r.get("status") in SOLVED:
                        c = Coalition.from_record(r)
                        self.done[(c.members, c.phase)] = c
                self.resumed = bool(self.done)
                return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"kind": "offtake consortium journal", "key": key})
                             + "\n", encoding="utf-8")

    def add(self, c: Coalition) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(c.record()) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _json(line: str) -> dict | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# --- solving every coalition -----------------------------------------------------------------
def solve_coalitions(inst: Instance, members: Sequence[str], options: ConsortiumOptions,
                     executor: Executor, journal: Journal | None = None,
                     progress: Progress | None = None) -> dict[Members, Coalition]:
    """c(S) for every coalition of the members, on `executor` (the grand coalition and
    each stand-alone buyer included), as the market option says; coalitions already in the
    journal are not solved again."""
    done: dict[tuple[Members, str], Coalition] = dict(journal.done) if journal else {}
    phases = ["alone"] + (["residual"] if options.market == "residual" else [])
    every = coalitions_of(members)
    total = sum(len(every) - (1 if ph == "residual" else 0) for ph in phases)
    count = [sum(1 for k in done if k[1] in phases)]
    if progress:
        progress(count[0], total, None)
    for phase in phases:
        todo = [c for c in every if (c, phase) not in done
                and not (phase == "residual" and len(c) == len(members))]
        items = [(c, phase, _taken(done, members, c) if phase == "residual" else None)
                 for c in todo]

        def finished(i: int, r: TaskResult, phase: str = phase, todo: list = todo) -> None:
            c = (r.value if r.ok and isinstance(r.value, Coalition)
                 else Coalition(todo[i], phase, r.status, error=r.error))
            done[(c.members, phase)] = c
            if journal is not None and c.ok:
                journal.add(c)
            count[0] += 1
            if progress:
                progress(count[0], total, c)

        if items:
            executor.map(_solve_task, items, shared=(inst, options), on_result=finished)
    out = {c: done[(c, "alone")] for c in every}
    if options.market == "residual":
        out.update({c: done[(c, "residual")] for c in every if len(c) < len(members)})
    return out


def _taken(done: dict[tuple[Members, str], Coalition], members: Sequence[str],
           coalition: Members) -> dict[str, dict[str, dict[int, float]]] | None:
    """What the other members use when they buy alone (their coalition's solve)."""
    rest = tuple(m for m in members if m not in coalition)
    other = done.get((rest, "alone"))
    if other is None or not other.ok:
        raise ValueError(f"the residual market of {'+'.join(coalition)} needs the stand-alone "
                         f"solve of {'+'.join(rest)}, which has none ({other and other.status})")
    return other.use


# --- allocations -----------------------------------------------------------------------------
@dataclass
class Allocation:
    """One way to split the grand coalition's cost, and its core check."""

    method: str
    cost: dict[str, float]
    """Buyer -> its share of c(N)."""
    max_excess: float
    """max over coalitions S != N of x(S) - c(S): positive means S pays more than alone."""
    worst: Members
    """The coalition with the largest excess."""
    note: str = ""

    @property
    def in_core(self) -> bool:
        return self.max_excess <= 0.0


Game = dict[Members, float]


def _cost(c: Game, s: Iterable[str]) -> float:
    return c[tuple(s)]


def core_check(c: Game, players: Sequence[str], x: dict[str, float]) -> tuple[float, Members]:
    """The largest excess x(S) - c(S) over the coalitions S != N (snapped to 0 within the
    tolerance), and its coalition."""
    scale = max(abs(v) for v in c.values()) or 1.0
    best = -math.inf
    worst_: Members = ()
    for s in c:
        if len(s) == len(players):
            continue
        e = sum(x[i] for i in s) - c[s]
        if e > best:
            best, worst_ = e, s
    return (0.0 if abs(best) <= TOL * scale else best), worst_


def _allocation(method: str, c: Game, players: Sequence[str], x: dict[str, float],
                note: str = "") -> Allocation:
    excess, worst = core_check(c, players, x)
    return Allocation(method, x, excess, worst, note)


def proportional(c: Game, players: Sequence[str]) -> Allocation:
    """x_i = c(N) c({i}) / sum_j c({j})."""
    grand = _cost(c, players)
    alone = {i: c[(i,)] for i in players}
    total = sum(alone.values())
    x = {i: grand * alone[i] / total for i in players} if total else {
        i: grand / len(players) for i in players}
    return _allocation("proportional", c, players, x)


def shapley(c: Game, players: Sequence[str]) -> Allocation:
    """phi_i = sum over S not containing i of |S|! (n - |S| - 1)! / n! (c(S + i) - c(S)),
    c(empty) = 0."""
    n = len(players)
    order = {p: k for k, p in enumerate(players)}
    x = dict.fromkeys(players, 0.0)
    for i in players:
        others = [p for p in players if p != i]
        for k in range(n):
            w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for s in itertools.combinations(others, k):
                with_i = tuple(sorted((*s, i), key=order.__getitem__))
                x[i] += w * (c[with_i] - (c[s] if s else 0.0))
    return _allocation("shapley", c, players, x)


class _GameLp:
    """The LP of the least core and the nucleolus over the coalitions S != N: columns x_i and
    epsilon; rows x(S) - epsilon <= c(S), and x(N) = c(N); costs scaled by the largest
    |c(S)|. Fixed rows become x(S) = c(S) + e_S (their epsilon coefficient set to 0)."""

    def __init__(self, c: Game, players: Sequence[str], imputation: bool):
        from offtake.solvers.highs import ArrayLp
        from offtake.solvers.linear import Csc

        self.players = list(players)
        n = len(players)
        self.scale = max(abs(v) for v in c.values()) or 1.0
        self.sets = [s for s in c if len(s) < n]
        pos = {p: k for k, p in enumerate(players)}
        cols: list[list[tuple[int, float]]] = [[] for _ in range(n + 1)]
        for r, s in enumerate(self.sets):
            for p in s:
                cols[pos[p]].append((r, 1.0))
            cols[n].append((r, -1.0))
        grand = len(self.sets)
        for k in range(n):
            cols[k].append((grand, 1.0))
        indptr = np.cumsum([0] + [len(col) for col in cols]).astype(np.int32)
        indices = np.array([r for col in cols for r, _ in col], dtype=np.int32)
        data = np.array([v for col in cols for _, v in col], dtype=float)
        g = _cost(c, players) / self.scale
        inf = math.inf
        upper = [c[(p,)] / self.scale if imputation else inf for p in players]
        self.rhs = np.array([c[s] / self.scale for s in self.sets] + [g])
        self.lp = ArrayLp(np.array([0.0] * n + [1.0]), np.array([-inf] * (n + 1)),
                          np.array([*upper, inf]), np.array([-inf] * grand + [g]), self.rhs,
                          Csc(indptr, indices, data))
        self.lp.set_option("presolve", "off")
        self.n = n
        self.fixed: dict[int, float] = {}

    def solve(self) -> tuple[float, np.ndarray, np.ndarray]:
        status, value, _ = self.lp.run()
        if status != "optimal" or value is None:
            raise RuntimeError(f"the game's LP ended '{status}'")
        sol = self.lp.h.getSolution()
        return float(value), np.asarray(sol.col_value), np.asarray(sol.row_dual)

    def fix(self, r: int, eps: float) -> None:
        """Row r holds with excess eps: x(S) = c(S) + eps."""
        self.lp.set_coefficients([r], [self.n], [0.0])
        value = self.rhs[r] + eps
        self.lp.set_row_bounds(np.array([r], dtype=np.int32), np.array([value]),
                               np.array([value]))
        self.fixed[r] = eps

    def min_excess(self, r: int, eps: float) -> float:
        """The least x(S) - c(S) of row r over the points whose largest free excess is eps."""
        s = self.sets[r]
        idx = np.arange(self.n + 1, dtype=np.int32)
        costs = np.array([1.0 if p in s else 0.0 for p in self.players] + [0.0])
        self.lp.set_costs(idx, costs)
        self.lp.set_col_bounds(np.array([self.n], dtype=np.int32), np.array([eps]),
                               np.array([eps]))
        try:
            value, _, _ = self.solve()
        finally:
            self.lp.set_costs(idx, np.array([0.0] * self.n + [1.0]))
            self.lp.set_col_bounds(np.array([self.n], dtype=np.int32), np.array([-math.inf]),
                                   np.array([math.inf]))
        return value - self.rhs[r]

    def allocation(self, x: np.ndarray) -> dict[str, float]:
        return {p: float(x[k]) * self.scale for k, p in enumerate(self.players)}


def least_core(c: Game, players: Sequence[str]) -> tuple[Allocation, float]:
    """The least-core epsilon (min eps with x(S) <= c(S) + eps for all S != N, x(N) = c(N)),
    and of the least core's points the one nearest (L1) to the Shapley value."""
    game = _GameLp(c, players, imputation=False)
    value, _, _ = game.solve()
    eps = value * game.scale
    phi = shapley(c, players).cost
    x = _nearest_in(c, players, eps, phi)
    note = ("the core is empty: every allocation leaves some coalition better off alone by "
            f"at least {eps:,.0f}" if eps > TOL * game.scale else
            "the core is not empty")
    return _allocation("least_core", c, players, x, note), (eps if abs(eps) > TOL * game.scale
                                                            else 0.0)


def _nearest_in(c: Game, players: Sequence[str], eps: float, target: dict[str, float]
                ) -> dict[str, float]:
    """min sum |x_i - target_i| s.t. x(S) <= c(S) + eps (S != N), x(N) = c(N): an LP with
    d_i >= +-(x_i - target_i)."""
    from offtake.solvers.highs import ArrayLp
    from offtake.solvers.linear import Csc

    n = len(players)
    scale = max(abs(v) for v in c.values()) or 1.0
    sets = [s for s in c if len(s) < n]
    pos = {p: k for k, p in enumerate(players)}
    rows_lo, rows_hi, entries = [], [], []
    for s in sets:
        entries.append([(pos[p], 1.0) for p in s])
        rows_lo.append(-math.inf)
        rows_hi.append((c[s] + eps) / scale + 1e-10)
    entries.append([(k, 1.0) for k in range(n)])
    g = _cost(c, players) / scale
    rows_lo.append(g)
    rows_hi.append(g)
    for k, p in enumerate(players):  # x_k - d_k <= t_k and -x_k - d_k <= -t_k
        t = target[p] / scale
        entries.append([(k, 1.0), (n + k, -1.0)])
        rows_lo.append(-math.inf)
        rows_hi.append(t)
        entries.append([(k, -1.0), (n + k, -1.0)])
        rows_lo.append(-math.inf)
        rows_hi.append(-t)
    cols: list[list[tuple[int, float]]] = [[] for _ in range(2 * n)]
    for r, row in enumerate(entries):
        for j, v in row:
            cols[j].append((r, v))
    indptr = np.cumsum([0] + [len(col) for col in cols]).astype(np.int32)
    lp = ArrayLp(np.array([0.0] * n + [1.0] * n), np.array([-math.inf] * n + [0.0] * n),
                 np.array([math.inf] * (2 * n)), np.array(rows_lo), np.array(rows_hi),
                 Csc(indptr, np.array([r for col in cols for r, _ in col], dtype=np.int32),
                     np.array([v for col in cols for _, v in col], dtype=float)))
    status, _, _ = lp.run()
    if status != "optimal":
        raise RuntimeError(f"the least-core LP ended '{status}'")
    x = lp.primal()
    return {p: float(x[k]) * scale for k, p in enumerate(players)}


def nucleolus(c: Game, players: Sequence[str]) -> Allocation:
    """The nucleolus: the allocation whose excesses x(S) - c(S), sorted from the largest, are
    lexicographically smallest (sequential LPs: minimise the largest free excess; fix every
    coalition that has that excess at all the optima (a positive dual proves it, else an LP
    per tight coalition); repeat until the fixed coalitions determine x). Over the
    imputations x_i <= c({i}) when sum_i c({i}) >= c(N), else over all allocations (the
    prenucleolus), which the note says."""
    n = len(players)
    imputation = sum(c[(p,)] for p in players) >= _cost(c, players) - TOL * max(
        abs(v) for v in c.values())
    game = _GameLp(c, players, imputation)
    basis = [np.ones(n)]
    free = set(range(len(game.sets)))
    x = np.zeros(n + 1)
    for _ in range(len(game.sets) + 1):
        if np.linalg.matrix_rank(np.array(basis)) >= n or not free:
            break
        eps, x, duals = game.solve()
        tight = []
        for r in sorted(free):
            row = game.sets[r]
            excess = sum(x[players.index(p)] for p in row) - game.rhs[r]
            if abs(excess - eps) > 1e-9:
                continue
            if abs(duals[r]) > 1e-9 or game.min_excess(r, eps) >= eps - 1e-9:
                tight.append(r)
        if not tight:  # cannot happen for a bounded LP; never loop without progress
            raise RuntimeError("nucleolus: no coalition is tight at every optimum")
        for r in tight:
            game.fix(r, eps)
            free.discard(r)
            basis.append(np.array([1.0 if p in game.sets[r] else 0.0 for p in players]))
    if np.linalg.matrix_rank(np.array(basis)) < n:
        raise RuntimeError("nucleolus: the fixed coalitions do not determine the allocation")
    _, x, _ = game.solve()
    note = "" if imputation else ("no imputation exists (the stand-alone costs sum to less "
                                  "than c(N)): this is the prenucleolus")
    return _allocation("nucleolus", c, players, game.allocation(x), note)


def allocations(c: Game, players: Sequence[str]) -> tuple[list[Allocation], float]:
    """The four allocations of c(N) and the least-core epsilon (0 when the core is not
    empty)."""
    lc, eps = least_core(c, players)
    return [proportional(c, players), shapley(c, players), nucleolus(c, players), lc], eps


# --- the whole analysis ----------------------------------------------------------------------
@dataclass
class ConsortiumResult:
    instance: str
    currency: str
    members: tuple[str, ...]
    options: ConsortiumOptions
    coalitions: dict[Members, Coalition]
    allocations: list[Allocation]
    least_core_epsilon: float | None
    seconds: float
    executor: dict[str, Any]
    resumed: int = 0
    """Coalitions read back from the journal instead of solved."""

    @property
    def grand(self) -> Coalition:
        return self.coalitions[self.members]

    @property
    def failed(self) -> list[Coalition]:
        return [c for c in self.coalitions.values() if not c.ok]

    def stand_alone(self) -> dict[str, float | None]:
        return {m: self.coalitions[(m,)].cost for m in self.members}

    def savings(self) -> float | None:
        alone = self.stand_alone()
        if self.grand.cost is None or any(v is None for v in alone.values()):
            return None
        return sum(v for v in alone.values() if v is not None) - self.grand.cost

    def coalitions_frame(self) -> pd.DataFrame:
        alone = self.stand_alone()
        rows = []
        for s, c in self.coalitions.items():
            parts = [alone[m] for m in s]
            sum_alone = None if any(v is None for v in parts) else sum(
                v for v in parts if v is not None)
            rows.append({
                "coalition": "+".join(s), "size": len(s), "market": c.phase,
                "status": c.status, "cost": c.cost, "bound": c.bound, "gap": c.gap,
                "stand_alone_sum": sum_alone,
                "saving": (None if c.cost is None or sum_alone is None
                           else sum_alone - c.cost),
                "built": ";".join(c.built), "signed": ";".join(c.signed),
                "seconds": c.seconds, "error": c.error})
        return pd.DataFrame(rows)

    def allocation_frame(self) -> pd.DataFrame:
        alone = self.stand_alone()
        rows = []
        for a in self.allocations:
            for m in self.members:
                sa = alone[m]
                rows.append({"method": a.method, "buyer": m, "cost": a.cost[m],
                             "stand_alone": sa,
                             "saving": None if sa is None else sa - a.cost[m],
                             "in_core": a.in_core, "max_excess": a.max_excess,
                             "worst_coalition": "+".join(a.worst)})
        return pd.DataFrame(rows)

    def as_dict(self) -> dict[str, Any]:
        g = self.grand
        return {
            "instance": self.instance, "currency": self.currency,
            "members": list(self.members), "market": self.options.market,
            "mip_gap_requested": self.options.mip_gap, "time_limit": self.options.time_limit,
            "coalitions": len(self.coalitions), "resumed": self.resumed,
            "failed": ["+".join(c.members) for c in self.failed],
            "grand_coalition": {"cost": g.cost, "bound": g.bound, "gap": g.gap,
                                "built": list(g.built), "signed": list(g.signed)},
            "stand_alone": self.stand_alone(),
            "stand_alone_sum": (None if any(v is None for v in self.stand_alone().values())
                                else sum(v for v in self.stand_alone().values()
                                         if v is not None)),
            "savings": self.savings(),
            "largest_gap": max((c.gap for c in self.coalitions.values()
                                if c.gap is not None), default=None),
            "core_empty": (None if self.least_core_epsilon is None
                           else self.least_core_epsilon > 0),
            "least_core_epsilon": self.least_core_epsilon,
            "allocations": {a.method: {"cost": a.cost, "in_core": a.in_core,
                                       "max_excess": a.max_excess,
                                       "worst_coalition": list(a.worst), "note": a.note}
                            for a in self.allocations},
            "seconds": self.seconds, "executor": self.executor,
        }


def choose_members(inst: Instance, members: Sequence[str] | None) -> tuple[str, ...]:
    """The members (default every buyer, in the instance's order); unknown or repeated IDs
    raise `InvalidInstance` with a hint; at least two are needed."""
    known = [b.id for b in inst.buyers]
    chosen = list(members) if members else known
    problems = [Finding("unknown_id", "error", f"buyers.{m}", f"unknown buyer '{m}' as a "
                        "member", nearest(m, known)) for m in chosen if m not in known]
    problems += [Finding("duplicate_member", "error", f"buyers.{m}",
                         f"member '{m}' named twice") for m in sorted(
        {m for m in chosen if chosen.count(m) > 1})]
    if len(set(chosen)) < 2:
        problems.append(Finding("too_few_members", "error", "buyers",
                                "a consortium needs at least two members",
                                f"buyers: {', '.join(known)}"))
    if problems:
        raise InvalidInstance(problems)
    return tuple(chosen)


def analyse_consortium(inst: Instance, members: Sequence[str] | None = None,
                       options: ConsortiumOptions | None = None, *,
                       executor: Executor | None = None, out_dir: str | Path | None = None,
                       progress: Progress | None = None) -> ConsortiumResult:
    """Every coalition's cost (see the module's docstring), the savings of pooling and the
    allocations of the grand coalition's cost. With `out_dir`, coalitions are journaled to
    `out_dir/coalitions.jsonl` as they finish and a matching journal is resumed. The
    allocations need every coalition solved (a failed one is named, and there are none)."""
    options = options or ConsortiumOptions()
    if options.market not in MARKETS:
        raise ValueError(f"market must be one of {', '.join(MARKETS)}, not {options.market!r}")
    players = choose_members(inst, members)
    start = time.perf_counter()
    journal = (Journal(Path(out_dir) / JOURNAL, journal_key(inst, players, options))
               if out_dir is not None else None)
    resumed = len(journal.done) if journal else 0
    own = executor is None
    ex = make_executor("serial") if own else executor
    assert ex is not None
    try:
        solved = solve_coalitions(inst, players, options, ex, journal, progress)
        runtime = ex.describe()
    finally:
        if own:
            ex.close()
    game: Game = {s: c.cost for s, c in solved.items() if c.ok and c.cost is not None}
    allocs: list[Allocation] = []
    eps = None
    if len(game) == len(solved):
        allocs, eps = allocations(game, players)
    return ConsortiumResult(inst.meta.name, inst.meta.currency, players, options, solved,
                            allocs, eps, time.perf_counter() - start, runtime, resumed)


# --- reading a result back -------------------------------------------------------------------
RESULT_FILES = ("consortium.json", "coalitions.csv")
"""What `read_result` needs of the folder `offtake consortium --out DIR` writes."""


def read_result(folder: str | Path) -> ConsortiumResult:
    """The result `offtake consortium --out DIR` wrote to `folder` (consortium.json for the
    members, options and allocations; coalitions.csv for every coalition), so that
    `as_dict()`, the frames and the figure come out as the command's. What a coalition used
    of the market (`Coalition.use`) is not written and comes back empty. A missing file or
    field raises ValueError naming it."""
    root = Path(folder)
    missing = [name for name in RESULT_FILES if not (root / name).is_file()]
    if missing:
        raise ValueError(f"{root}: no {' or '.join(missing)} (not a folder of "
                         "`offtake consortium --out`)")
    try:
        d = json.loads((root / "consortium.json").read_text())
        table = pd.read_csv(root / "coalitions.csv", keep_default_na=False,
                            na_values={c: [""] for c in ("cost", "bound", "gap")},
                            dtype={"coalition": str, "built": str, "signed": str,
                                   "error": str, "status": str, "market": str})

        def number(v: Any) -> float | None:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

        def ids(text: str) -> tuple[str, ...]:
            return tuple(x for x in text.split(";") if x)

        coalitions: dict[Members, Coalition] = {}
        for row in table.to_dict("records"):
            members = tuple(row["coalition"].split("+"))
            coalitions[members] = Coalition(
                members, row["market"], row["status"], number(row["cost"]),
                number(row["bound"]), number(row["gap"]), ids(row["built"]),
                ids(row["signed"]), float(row["seconds"]), row["error"])
        allocs = [Allocation(method, {b: float(x) for b, x in a["cost"].items()},
                             float(a["max_excess"]), tuple(a["worst_coalition"]),
                             a.get("note") or "")
                  for method, a in d["allocations"].items()]
        options = ConsortiumOptions(d["market"], float(d["mip_gap_requested"]),
                                    number(d.get("time_limit")))
        members = tuple(d["members"])
        if members not in coalitions or any((m,) not in coalitions for m in members):
            raise ValueError("coalitions.csv lacks the grand coalition or a member alone")
        return ConsortiumResult(d["instance"], d["currency"], members, options, coalitions,
                                allocs, number(d.get("least_core_epsilon")),
                                float(d["seconds"]), d.get("executor") or {},
                                int(d.get("resumed") or 0))
    except KeyError as exc:
        raise ValueError(f"{root}: consortium.json or coalitions.csv has no field {exc}") \
            from exc
