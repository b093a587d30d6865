"""Pareto fronts: least cost against a share that rules can read, by the epsilon-constraint
method, and expected cost against CVaR (what `offtake frontier` did), on the sweep machinery:
every point is solved on an executor into a results store, with its plan.

A share metric is a rule kind added to the instance as `PARETO-EPSILON` (a validated
transform) with a loose bound: `non_cn_content` (min_content_share: deliveries whose every
step at the chosen stages lies outside the excluded countries, default CN), `recycled_share`
(min_recycled_share), `largest_country_share` (max_country_share: no single country above
the bound at the chosen stages) or `emission_intensity` (max_emission_intensity: kg CO2e per kg
delivered, the bound moved from the cheapest plan's worst year to `to`, default 0; an
intensity, not a share). Its rows are pooled over the scoped buyers, per material and
year, and the metric of a solved point is the share its binding rows reach (the lowest for a
floor, the highest for a cap: `rule_share:PARETO-EPSILON`). The base point (the bound
loose) gives the cheapest plan and its metric m0; the other points move the bound from m0
to `to` (default 1 for a floor, 0 for a cap) in equal steps, each the least-cost plan at that
bound. Bounds past what the instance can reach come back infeasible and mark where the front
ends.

`cvar` by the epsilon constraint too (`method="epsilon"`): the cheapest plan (lambda = 0,
its CVaR c0) and the safest (min E[cost] + RISK_END_WEIGHT x CVaR: a CVaR within
(E-range) / RISK_END_WEIGHT of the least there is, c1, or `to` in money) are solved first;
the other points minimise the expected cost under the solve option `cvar_limit` at bounds
from c0 to c1 in equal steps (formulation.md, cvar_limit), which finds the points between
the supported ones too. `method="weights"` solves min E[cost] + lambda CVaR for each lambda
(weighted sums: only the supported points of the front; what `offtake frontier` shows).

The front (`front_frame`) keeps the solved points, marks those another point dominates
(as good on both and better on one), and marks the knee: the non-dominated point farthest
from the line between the two ends of the front, both axes scaled to [0, 1].
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import pandas as pd

from offtake.analysis.spec import Point, value_text
from offtake.analysis.store import SweepStore
from offtake.analysis.sweep import OnPoint, Run, SweepReport, run_points
from offtake.domain.schema import Instance
from offtake.domain.transforms import from_data, to_data
from offtake.runtime import Executor
from offtake.solvers.options import SolveOptions

RULE_ID = "PARETO-EPSILON"
DEFAULT_STAGES = ("MINE", "SEP_L", "SEP_H", "METAL", "MAGNET")
SOLVED = ("optimal", "feasible")
TOL = 1e-9
LOOSE_FLOOR = 1e-9
RISK_END_WEIGHT = 100.0
"""lambda of the safest end of a CVaR front: every unit of CVaR weighs 100 of expected cost."""
"""The base point's floor: a floor of 0 writes no rows (nothing to read the share from);
1e-9 of demand moves the cost by less than any MIP gap."""


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    """The rule kind whose bound is epsilon ('' for cvar)."""
    field: str
    """Its bound's field (min_share or max_share)."""
    better: Literal["higher", "lower"]
    label: str

    def axis(self, exclude: Sequence[str] = ("CN",), stages: Sequence[str] = DEFAULT_STAGES
             ) -> str:
        """What the metric's axis reads, in words."""
        if self.name == "cvar":
            return self.label
        if self.name == "emission_intensity":
            return f"{self.label} (kg CO2e per kg delivered, worst year)"
        label = (f"content with no step in {', '.join(exclude)}"
                 if self.name == "non_cn_content" and tuple(exclude) != ("CN",) else self.label)
        at = f" at {', '.join(stages)}" if self.kind != "min_recycled_share" else ""
        return f"{label}{at} (share of demand, worst year)"


METRICS = {
    "non_cn_content": Metric("non_cn_content", "min_content_share", "min_share", "higher",
                             "non-Chinese content"),
    "recycled_share": Metric("recycled_share", "min_recycled_share", "min_share", "higher",
                             "recycled share"),
    "largest_country_share": Metric("largest_country_share", "max_country_share",
                                    "max_share", "lower", "largest single-country share"),
    "emission_intensity": Metric("emission_intensity", "max_emission_intensity",
                                 "max_kg_per_kg", "lower", "emission intensity"),
    "cvar": Metric("cvar", "", "", "lower", "CVaR of the scenario cost"),
}
LOOSE_INTENSITY = 10_000.0
"""The base point's intensity cap (kg CO2e per kg): the schema's largest, binds nothing."""


def epsilon_rule(inst: Instance, metric: Metric, stages: Sequence[str] = DEFAULT_STAGES,
                 exclude: Sequence[str] = ("CN",), buyers: Sequence[str] | None = None
                 ) -> dict[str, Any]:
    """The rule (as data) whose bound the front moves, with a bound that binds nothing (a
    cap of 1, a floor of `LOOSE_FLOOR`)."""
    rule: dict[str, Any] = {
        "id": RULE_ID, "kind": metric.kind, "pooled": True,
        "description": f"Pareto front: {metric.label} (epsilon constraint)",
        "source": "offtake pareto", "scope": {"buyers": list(buyers) if buyers else None}}
    if metric.kind == "min_content_share":
        countries = sorted({f.country for f in inst.facilities}
                           | {k.origin for k in inst.spot_markets}
                           | {b.country for b in inst.buyers} - set(exclude))
        rule.update(min_share=LOOSE_FLOOR, stages=list(stages), countries=countries)
    elif metric.kind == "min_recycled_share":
        rule.update(min_share=LOOSE_FLOOR)
    elif metric.kind == "max_country_share":
        rule.update(max_share=1.0, stages=list(stages))
    elif metric.kind == "max_emission_intensity":
        rule.update(max_kg_per_kg=LOOSE_INTENSITY)
    else:
        raise ValueError(f"metric {metric.name} has no rule")
    return rule


def with_rule(inst: Instance, rule: dict[str, Any]) -> Instance:
    """The instance with one more rule, validated again."""
    raw = to_data(inst)
    if any(r["id"] == rule["id"] for r in raw["rules"]):
        raise ValueError(f"the instance already has a rule {rule['id']}")
    raw["rules"].append(rule)
    return from_data(raw)


@dataclass
class ParetoResult:
    metric: Metric
    x: str
    """The record column of the metric."""
    y: str
    """The record column of the cost."""
    records: pd.DataFrame
    """Every point's record, in order."""
    reports: list[SweepReport]


def run_pareto(inst: Instance, sha256: str, metric_name: str, store: SweepStore,
               executor: Executor, options: SolveOptions | None = None, *, points: int = 11,
               to: float | None = None, stages: Sequence[str] = DEFAULT_STAGES,
               exclude: Sequence[str] = ("CN",), buyers: Sequence[str] | None = None,
               lambdas: Sequence[float] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0),
               method: Literal["epsilon", "weights"] = "epsilon",
               on_point: OnPoint | None = None,
               on_start: Callable[[int, int], None] | None = None) -> ParetoResult:
    """Solve the front's points into the store (what is stored already is reused) and
    return their records; see the module's docstring. `sha256`: the instance file's hash
    (the loader's). A CVaR front's `to` is money."""
    metric = METRICS[metric_name]
    options = options or SolveOptions()
    name = f"pareto-{metric.name}"
    if metric.name == "cvar":
        run = Run(name, inst.meta.name, sha256, inst.meta.currency)
        if method == "weights":
            pts = [(Point(i, {"lambda": lam}, ()), replace(options, cvar_weight=lam))
                   for i, lam in enumerate(lambdas)]
            report = run_points(run, inst, pts, store, executor, on_point, on_start)
            return ParetoResult(metric, "risk:cvar", "expected_cost",
                                _records(store, report), [report])
        return _cvar_front(run, inst, store, executor, options, points, to, on_point,
                           on_start)
    rule = epsilon_rule(inst, metric, stages, exclude, buyers)
    base = with_rule(inst, rule)
    digest = hashlib.sha256((sha256 + json.dumps(rule, sort_keys=True)).encode()).hexdigest()
    run = Run(name, inst.meta.name, digest, inst.meta.currency)
    path = f"rules.{RULE_ID}.{metric.field}"
    first = run_points(run, base, [(Point(0, {"epsilon": None}, ()), options)], store,
                       executor, on_point, on_start)
    start = _records(store, first)
    x = f"rule_share:{RULE_ID}"
    reports = [first]
    if start["status"].iloc[0] in SOLVED:
        m0 = float(start[x].iloc[0])
        end = (1.0 if metric.better == "higher" else 0.0) if to is None else to
        grid = [m0 + (end - m0) * k / (points - 1) for k in range(1, points)] \
            if points > 1 and abs(end - m0) > TOL else []
        pts = [(Point(k + 1, {"epsilon": eps}, (f"{path}={value_text(eps)}",)), options)
               for k, eps in enumerate(_bounds(grid, metric))]
        if pts:
            reports.append(run_points(run, base, pts, store, executor, on_point, on_start))
    frame = pd.concat([_records(store, r) for r in reports], ignore_index=True)
    return ParetoResult(metric, x, "objective", frame, reports)


def _cvar_front(run: Run, inst: Instance, store: SweepStore, executor: Executor,
                options: SolveOptions, points: int, to: float | None,
                on_point: OnPoint | None, on_start: Callable[[int, int], None] | None
                ) -> ParetoResult:
    """The CVaR front by the epsilon constraint (see the module's docstring)."""
    ends = [(Point(0, {"lambda": 0.0, "epsilon": None}, ()), replace(options, cvar_weight=0.0)),
            (Point(1, {"lambda": RISK_END_WEIGHT, "epsilon": None}, ()),
             replace(options, cvar_weight=RISK_END_WEIGHT))]
    first = run_points(run, inst, ends if to is None else ends[:1], store, executor,
                       on_point, on_start)
    reports = [first]
    start = _records(store, first)
    if (start["status"].isin(SOLVED)).all():
        c0 = float(start["risk:cvar"].iloc[0])
        c1 = float(start["risk:cvar"].iloc[1]) if to is None else to
        # points - 1 steps from c0 to c1; the safest end is solved already unless `to` is
        # given; bounds rounded up to a cent, never tighter than the safest plan's CVaR
        last = points - 1 if to is not None else points - 2
        bounds = list(dict.fromkeys(
            math.ceil((c0 + (c1 - c0) * k / (points - 1)) * 100) / 100
            for k in range(1, last + 1))) if points > 1 and abs(c0 - c1) > TOL * max(
                1.0, abs(c0)) else []
        pts = [(Point(k + 2, {"lambda": 0.0, "epsilon": eps}, ()),
                replace(options, cvar_weight=0.0, cvar_limit=eps))
               for k, eps in enumerate(bounds)]
        if pts:
            reports.append(run_points(run, inst, pts, store, executor, on_point, on_start))
    frame = pd.concat([_records(store, r) for r in reports], ignore_index=True)
    return ParetoResult(METRICS["cvar"], "risk:cvar", "expected_cost", frame, reports)


def _bounds(grid: list[float], metric: Metric | None = None) -> list[float]:
    """Bounds as written in the store: 6 decimals, each once; within [0, 1] for a share (an
    emission intensity is only kept >= 0)."""
    top = float("inf") if metric and metric.kind == "max_emission_intensity" else 1.0
    return list(dict.fromkeys(min(max(round(eps, 6), 0.0), top) for eps in grid))


def _records(store: SweepStore, report: SweepReport) -> pd.DataFrame:
    frame = store.frame(latest=False)
    by_key = frame.drop_duplicates("key", keep="last").set_index("key")
    return by_key.loc[report.keys].reset_index()


# --- the front -----------------------------------------------------------------------------
def front_frame(result: ParetoResult) -> pd.DataFrame:
    """The solved points with their metric and cost, whether another point dominates them,
    the knee, the cost above the cheapest point and the marginal cost per percentage point
    of the metric between neighbouring points of the front."""
    metric, x, y = result.metric, result.x, result.y
    rec = result.records
    solved = rec[rec["status"].isin(SOLVED)].copy()
    if solved.empty or x not in solved or y not in solved:
        solved = solved.iloc[0:0].assign(**{x: [], y: []}) if solved.empty else solved
    axis = "lambda" if metric.name == "cvar" and (
        "epsilon" not in rec or rec["epsilon"].isna().all()) else "epsilon"
    out = pd.DataFrame({
        "key": solved["key"], axis: solved.get(axis),
        "status": solved["status"], "metric": solved[x].astype(float),
        "cost": solved[y].astype(float), "n_signed": solved.get("n_signed"),
        "signed": solved.get("signed")}).reset_index(drop=True)
    sign = -1.0 if metric.better == "higher" else 1.0  # smaller is better after the sign
    m = sign * out["metric"]
    c = out["cost"]
    out["dominated"] = [bool(((m <= m[i] + TOL) & (c <= c[i] * (1 + TOL) + TOL)
                              & ((m < m[i] - TOL) | (c < c[i] * (1 - TOL) - TOL))).any())
                        for i in range(len(out))]
    same = [next((j for j in range(i) if _close(m[j], m[i]) and _close(c[j], c[i])), None)
            for i in range(len(out))]
    out["repeats"] = [None if j is None else out[axis][j] for j in same]
    out["knee"] = False
    best = out[~out["dominated"]].sort_values("metric")
    best = best.drop_duplicates(subset=["metric", "cost"])
    if len(best) >= 3:
        out.loc[_knee(best), "knee"] = True
    cheapest = out["cost"].min() if len(out) else None
    out["cost_above_cheapest"] = out["cost"] - cheapest if cheapest is not None else None
    marginal: dict[Any, float] = {}
    ordered = best.sort_values("cost")
    metrics, costs = ordered["metric"].tolist(), ordered["cost"].tolist()
    for n, cur in enumerate(ordered.index[1:], start=1):
        dm = abs(float(metrics[n]) - float(metrics[n - 1]))
        if dm > TOL:
            marginal[cur] = (float(costs[n]) - float(costs[n - 1])) / (dm * 100)
    out["marginal_cost_per_pp"] = pd.Series(marginal, index=out.index, dtype=float)
    out.attrs["title"] = f"Pareto front: least cost against {metric.label}"
    ends = rec[~rec["status"].isin(SOLVED)]
    repeated = int(sum(j is not None for j in same))
    distinct = sum(1 for i in range(len(out)) if not out["dominated"][i] and same[i] is None)
    out.attrs["caption"] = (f"{distinct} non-dominated of {len(out)} solved points"
                            + (f" ({repeated} repeat the metric and cost of an earlier "
                               f"point: `repeats` names its {axis})" if repeated else "")
                            + (f"; no solution at {axis} = " + ", ".join(
                                f"{v:g} ({s})" for v, s in zip(
                                    ends[axis], ends["status"], strict=True))
                                if len(ends) and axis in ends else ""))
    return out.sort_values("metric").reset_index(drop=True)


def _close(a: float, b: float) -> bool:
    """Equal to a MIP's precision (two bounds that end at the same plan)."""
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def _knee(front: pd.DataFrame) -> Any:
    """The index of the point farthest from the chord between the ends (axes in [0, 1])."""
    xs, ys = front["metric"], front["cost"]
    sx = (xs - xs.min()) / ((xs.max() - xs.min()) or 1.0)
    sy = (ys - ys.min()) / ((ys.max() - ys.min()) or 1.0)
    first, last = front.index[0], front.index[-1]
    dx, dy = sx[last] - sx[first], sy[last] - sy[first]
    norm = (dx * dx + dy * dy) ** 0.5 or 1.0
    dist = ((sx - sx[first]) * dy - (sy - sy[first]) * dx).abs() / norm
    return dist.idxmax()


def frontier_table(result: ParetoResult) -> pd.DataFrame:
    """The CVaR front as `offtake frontier` writes it: one row per lambda with its status,
    objective (expected cost + lambda CVaR), expected cost, CVaR and worst scenario cost,
    whether another lambda's plan dominates it, and the knee."""
    rec = result.records
    front = front_frame(result).set_index("key")

    return pd.DataFrame({
        "lambda": rec["lambda"], "status": rec["status"], "objective": rec["objective"],
        "expected_cost": rec.get("expected_cost"), "cvar": rec.get("risk:cvar"),
        "worst": rec.get("risk:worst"), "dominated": rec["key"].map(front["dominated"]),
        "knee": rec["key"].map(front["knee"])})


def read_front(records: pd.DataFrame, sweep: str) -> ParetoResult:
    """The front of `offtake pareto --metric METRIC` as its store holds it: the records of
    the sweep named `pareto-METRIC` in `records` (`SweepStore.frame(latest=False)`: the
    front's points as solved with their options, which `frame()` would also narrow to the
    newest run of each place), the newest of each key, in the front's order, read as
    `run_pareto` returns them (for `front_frame`). A sweep name that is not a front raises
    ValueError."""
    metric = METRICS.get(sweep.removeprefix("pareto-")) if sweep.startswith("pareto-") \
        else None
    if metric is None:
        raise ValueError(f"{sweep!r} is not a Pareto front (pareto-METRIC, METRIC one of "
                         f"{', '.join(METRICS)})")
    rows = (records[records["sweep"] == sweep].sort_values("finished_at")
            .drop_duplicates("key", keep="last").sort_values("index", kind="stable")
            .reset_index(drop=True))
    if metric.name == "cvar":
        return ParetoResult(metric, "risk:cvar", "expected_cost", rows, [])
    return ParetoResult(metric, f"rule_share:{RULE_ID}", "objective", rows, [])


def front_sweeps(records: pd.DataFrame) -> list[str]:
    """The sweeps of a store's records that are Pareto fronts (`read_front` reads them)."""
    names = records.get("sweep", pd.Series(dtype=object)).dropna().unique()
    return [s for s in names if s.startswith("pareto-")
            and s.removeprefix("pareto-") in METRICS]
