"""Sample average approximation with a certified gap: the Mak-Morton-Wood (MMW) procedure on
samples drawn from an instance's `scenario_spec` (models/formulation.md, Scenarios, "Sample
average approximation").

1. A candidate plan x^ is the optimum of an independent sample of N_c scenarios (its own
   seed; default N_c = N), so that it does not depend on the replications below; or, with
   `candidate_pool`, of N_c scenarios kept by forward selection from a larger independent
   sample (`analysis.reduce`).
2. M independent replications, each a sample of N scenarios (`domain.scenarios.draw`, seeds
   derived from one seed), are solved as extensive forms through the ordinary lean solve
   (`pipeline.solve.solve_lean_task`), together with the candidate's sample, as tasks of one
   `offtake.runtime` executor. Their MIP dual bounds b_i (<= the sample optimum) give the
   lower bound: E[b_i] <= E[z*_N] <= z*.
3. x^ is priced in every scenario of every replication (compiled evaluation,
   `analysis.evaluate.ScenarioLp` / `solve_scenarios`): the paired gaps G_i = f_Ni(x^) - b_i
   give the MMW gap estimator and its one-sided confidence interval.
4. x^ is priced out of sample on an independent Monte Carlo sample of N' scenarios: the
   upper bound f(x^) >= z* with its confidence limit; with the lower bound's limit it gives
   the second (independent) gap interval.

With `grow_to`, rounds with N doubled follow until the paired gap's interval is narrower than
the target (relative to the candidate's in-sample cost, the mean of f_Ni(x^) over the
replications: the upper estimate comes only after the last round), the largest sample is
reached or the time budget would be exceeded. Expected cost only (lambda = 0); rules in
expectation are refused (the evaluation prices scenarios one at a time).

Orchestrates domain (draws) -> pipeline (solves) -> evaluate (pricing) on one executor it is
given; builds no constraint of its own and starts no process itself.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from offtake.analysis.evaluate import (
    ScenarioLp,
    _check_plan,
    plan_vector,
    solve_scenarios,
)
from offtake.analysis.reduce import reduce_scenarios, reduced_instance
from offtake.domain.scenarios import draw
from offtake.domain.schema import Instance, ScenarioSpec
from offtake.domain.transforms import to_data
from offtake.formulation.data import build_data
from offtake.pipeline.solve import LeanOutcome, solve_lean_task
from offtake.runtime import Executor
from offtake.solvers.highs import SolveOptions

METHODS = ("monte_carlo", "latin_hypercube")
WORKER_MODULES = ("offtake.analysis.evaluate", "offtake.pipeline.solve")
"""What the tasks import in a worker (`make_executor`'s preload)."""


class SaaError(ValueError):
    """The instance or the options cannot be sampled, solved or evaluated as asked."""


@dataclass(frozen=True)
class SaaOptions:
    replications: int = 10
    """M: independent samples solved for the lower bound and the paired gaps (>= 2)."""
    sample: int = 10
    """N: scenarios per replication (probability 1/N each)."""
    candidate_sample: int | None = None
    """N_c: scenarios of the candidate's own sample (default N)."""
    candidate_pool: int | None = None
    """With a number P: the candidate's sample is P Monte Carlo draws reduced to N_c
    scenarios by forward selection (`analysis.reduce`) instead of N_c draws."""
    evaluation: int = 2000
    """N': out-of-sample scenarios (Monte Carlo) on which the candidate is priced."""
    seed: int = 0
    """Every sample's seed derives from this one (`seeds`)."""
    method: str = "latin_hypercube"
    """How the candidate's and the replications' samples are drawn (`domain.scenarios.draw`):
    each replication stays an independent, unbiased sample average either way; the
    out-of-sample evaluation is always Monte Carlo (its standard error needs independent
    draws)."""
    confidence: float = 0.95
    """1 - alpha of every interval (see the formulation's section)."""
    mip_gap: float = 1e-4
    time_limit: float | None = None
    """Seconds per extensive-form solve (a solve cut short still gives its dual bound)."""
    grow_to: float | None = None
    """Target width of the paired gap's interval relative to the round's in-sample cost of the
    candidate (`SaaRound.in_sample`; the out-of-sample upper estimate, which the final report
    divides by, is made only after the last round) (e.g. 0.005); None: one round."""
    max_sample: int = 1000
    """Largest N that growing may reach."""
    budget: float | None = None
    """Seconds for the whole run when growing: a next round starts only if the seconds spent
    so far plus twice the last round's fit."""

    def check(self) -> None:
        problems = []
        if self.replications < 2:
            problems.append("replications must be at least 2 (a standard error needs two)")
        if self.sample < 1 or (self.candidate_sample is not None and self.candidate_sample < 1):
            problems.append("samples need at least one scenario")
        if self.candidate_pool is not None and self.candidate_pool < (
                self.candidate_sample or self.sample):
            problems.append("the candidate pool must hold at least the candidate's sample")
        if self.evaluation < 2:
            problems.append("the evaluation sample needs at least 2 scenarios")
        if self.method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not 0.5 <= self.confidence < 1:
            problems.append("confidence must be in [0.5, 1)")
        if self.grow_to is not None and self.grow_to <= 0:
            problems.append("grow_to must be positive")
        if self.max_sample < self.sample:
            problems.append("max_sample must be at least the sample size")
        if problems:
            raise SaaError("; ".join(problems))


@dataclass
class Estimate:
    """A sample mean with its standard error and a one-sided confidence limit."""

    estimate: float
    std_error: float
    limit: float
    """Lower limit of a lower bound, upper limit of an upper bound or of a gap."""
    confidence: float
    """One-sided level of `limit`."""
    n: int
    """Observations behind it."""


@dataclass
class Replication:
    index: int
    seed: int
    status: str
    objective: float | None
    """Best objective found (expected cost of the sample's plan on its sample)."""
    bound: float | None
    """HiGHS's dual bound: <= the sample's optimum."""
    mip_gap: float | None
    seconds: float
    candidate_cost: float | None = None
    """f_Ni(x^): the candidate's average cost on this replication's scenarios."""

    @property
    def gap(self) -> float | None:
        """G_i = f_Ni(x^) - b_i."""
        if self.candidate_cost is None or self.bound is None:
            return None
        return self.candidate_cost - self.bound


@dataclass
class SaaRound:
    sample: int
    candidate: Replication
    """The candidate's own sample and solve (index -1)."""
    replications: list[Replication]
    lower: Estimate | None
    """Lower bound: mean of the replications' dual bounds, limit at 1 - alpha/2."""
    paired_gap: Estimate | None
    """The MMW gap estimator: mean of G_i, upper limit at 1 - alpha."""
    seconds: float
    candidate_plan: dict[str, dict] = field(default_factory=dict, repr=False)
    failed_in: list[str] = field(default_factory=list)
    """Replication scenarios where the candidate could not be carried out (a hard rule)."""
    reduction: dict[str, Any] | None = None
    """With a candidate pool: its size, the Kantorovich distance of the reduced sample."""
    signed: list[str] = field(default_factory=list)
    """The offers the candidate signs (kept when its plan is not: `read_saa` of an earlier
    round)."""

    @property
    def in_sample(self) -> float | None:
        """Mean of f_Ni(x^) over the replications: an unbiased estimate of f(x^), the
        reference of `grow_to` before the out-of-sample evaluation."""
        costs = [r.candidate_cost for r in self.replications if r.candidate_cost is not None]
        return _mean(costs) if len(costs) == len(self.replications) else None


@dataclass
class SaaResult:
    options: SaaOptions
    rounds: list[SaaRound]
    upper: Estimate | None
    """The final candidate's out-of-sample mean cost, upper limit at 1 - alpha/2."""
    evaluation_costs: dict[str, float]
    """Out-of-sample cost of the final candidate by scenario (those it can be carried out in)."""
    evaluation_failed: dict[str, str]
    """Out-of-sample scenarios where it cannot be carried out, or was not evaluated, and why."""
    seeds: dict[str, Any]
    seconds: dict[str, float]
    executor: dict[str, Any]
    stopped: str
    """Why the rounds ended: 'one round', 'target reached', 'largest sample', 'budget'."""

    @property
    def final(self) -> SaaRound:
        return self.rounds[-1]

    @property
    def plan(self) -> dict[str, dict]:
        return self.final.candidate_plan

    @property
    def gap(self) -> tuple[float, float] | None:
        """The independent MMW gap interval [0, U_limit - L_limit] (joint level 1 - alpha)."""
        lower = self.final.lower
        if self.upper is None or lower is None:
            return None
        return 0.0, max(0.0, self.upper.limit - lower.limit)

    @property
    def gap_estimate(self) -> float | None:
        lower = self.final.lower
        if self.upper is None or lower is None:
            return None
        return self.upper.estimate - lower.estimate

    def relative(self, value: float | None) -> float | None:
        """`value` as a share of the upper estimate."""
        if value is None or self.upper is None or self.upper.estimate == 0:
            return None
        return value / abs(self.upper.estimate)

    def summary(self) -> dict[str, Any]:
        """The headline figures (summary.json)."""
        f = self.final
        gap = self.gap
        paired = f.paired_gap
        return {
            "status": "ok" if self.upper is not None and f.lower is not None else "incomplete",
            "replications": len(f.replications), "sample": f.sample,
            "candidate_sample": self.options.candidate_sample or f.sample,
            "candidate_pool": self.options.candidate_pool,
            "evaluation": self.options.evaluation,
            "not_carried_out": len(self.evaluation_failed),
            "confidence": self.options.confidence,
            "method": self.options.method, "seed": self.options.seed,
            "lower_bound": None if f.lower is None else f.lower.estimate,
            "lower_limit": None if f.lower is None else f.lower.limit,
            "upper_bound": None if self.upper is None else self.upper.estimate,
            "upper_limit": None if self.upper is None else self.upper.limit,
            "gap_estimate": self.gap_estimate,
            "gap_ci": None if gap is None else list(gap),
            "gap_ci_relative": None if gap is None else self.relative(gap[1]),
            "paired_gap_estimate": None if paired is None else paired.estimate,
            "paired_gap_ci": None if paired is None else [0.0, paired.limit],
            "paired_gap_ci_relative": None if paired is None else self.relative(paired.limit),
            "rounds": len(self.rounds), "stopped": self.stopped,
            "seconds": self.seconds.get("total"),
            "seconds_per_replication": _mean([r.seconds for r in f.replications]),
        }

    def as_dict(self) -> dict[str, Any]:
        """Everything (saa.json)."""
        rounds = []
        for r in self.rounds:
            rounds.append({
                "sample": r.sample, "seconds": r.seconds,
                "candidate": _replication_dict(r.candidate),
                "replications": [_replication_dict(x) for x in r.replications],
                "lower": _estimate_dict(r.lower), "paired_gap": _estimate_dict(r.paired_gap),
                "candidate_infeasible_in": r.failed_in,
                "candidate_reduction": r.reduction,
                "signed": r.signed})
        costs = list(self.evaluation_costs.values())
        return {"summary": self.summary(), "options": asdict(self.options),
                "upper": _estimate_dict(self.upper),
                "gap_ci": None if self.gap is None else list(self.gap),
                "rounds": rounds, "seeds": self.seeds,
                "evaluation": {"scenarios": self.options.evaluation,
                               "evaluated": len(costs),
                               "std": float(np.std(costs, ddof=1)) if len(costs) > 1 else None,
                               "best": min(costs) if costs else None,
                               "worst": max(costs) if costs else None,
                               "not_carried_out": self.evaluation_failed},
                "seconds": self.seconds, "executor": self.executor}


def read_saa(folder: str | Path) -> SaaResult:
    """The SaaResult of an `offtake saa` output folder (saa.json, evaluation.csv, plan.json),
    as `as_dict` wrote it: the figures are read, never recomputed. The final candidate's plan
    comes from plan.json; earlier rounds keep only the offers they signed. A ValueError names
    the file and the entry that cannot be read."""
    from offtake.results.tables import read_plan

    folder = Path(folder)
    path = folder / "saa.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable SAA result ({exc})") from exc
    where = [str(path)]
    try:
        options = SaaOptions(**raw["options"])
        rounds = []
        for i, r in enumerate(raw["rounds"]):
            where[1:] = [f"rounds[{i}]"]
            rounds.append(SaaRound(
                r["sample"], _replication(r["candidate"]),
                [_replication(x) for x in r["replications"]], _estimate(r["lower"]),
                _estimate(r["paired_gap"]), r["seconds"], {},
                list(r["candidate_infeasible_in"]), r["candidate_reduction"],
                list(r["signed"])))
        where[1:] = ["evaluation"]
        failed = dict(raw["evaluation"]["not_carried_out"])
        res = SaaResult(options, rounds, _estimate(raw["upper"]), {}, failed, raw["seeds"],
                        raw["seconds"], raw["executor"], raw["summary"]["stopped"])
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"{': '.join(where)}: missing or malformed entry {exc}") from exc
    if not rounds:
        raise ValueError(f"{path}: no rounds")
    res.evaluation_costs = _evaluation_costs(folder / "evaluation.csv", set(failed))
    res.rounds[-1].candidate_plan = read_plan(folder / "plan.json")
    return res


def _evaluation_costs(path: Path, failed: set[str]) -> dict[str, float]:
    """evaluation.csv: `scenario,cost`, the cost empty where the plan cannot be carried out
    (those scenarios must be the ones saa.json lists)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc})") from exc
    if not lines or lines[0].strip() != "scenario,cost":
        raise ValueError(f"{path}: line 1 must be the header 'scenario,cost'")
    costs: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        scenario, _, cost = line.rpartition(",")
        if not scenario:
            raise ValueError(f"{path}: line {number}: expected 'scenario,cost', got {line!r}")
        if cost == "":
            if scenario not in failed:
                raise ValueError(f"{path}: line {number}: scenario {scenario} has no cost "
                                 "but saa.json does not list it as not carried out")
            continue
        try:
            costs[scenario] = float(cost)
        except ValueError:
            raise ValueError(f"{path}: line {number}: cost of scenario {scenario} is not a "
                             f"number: {cost!r}") from None
    return costs


def _replication(d: dict[str, Any]) -> Replication:
    return Replication(d["index"], d["seed"], d["status"], d["objective"], d["bound"],
                       d["mip_gap"], d["seconds"], d["candidate_cost"])


def _estimate(d: dict[str, Any] | None) -> Estimate | None:
    return None if d is None else Estimate(**d)


def _replication_dict(r: Replication) -> dict[str, Any]:
    return {**asdict(r), "gap": r.gap}


def _estimate_dict(e: Estimate | None) -> dict[str, Any] | None:
    return None if e is None else asdict(e)


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def signed_offers(plan: dict[str, dict]) -> list[str]:
    """The offers a plan signs (v_signed = 1)."""
    out = []
    for k, v in plan.get("v_signed", {}).items():
        if v is not None and v > 0.5:
            out.append(k[0] if isinstance(k, tuple) else k)
    return sorted(str(x) for x in out)


# --- statistics ------------------------------------------------------------------------------
def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with df degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(p, df))


def lower_estimate(bounds: list[float], level: float) -> Estimate | None:
    """Mean of the replications' bounds and its lower limit L - t_{level, M-1} s / sqrt(M)."""
    m = len(bounds)
    if m < 2:
        return None
    mean, se = float(np.mean(bounds)), float(np.std(bounds, ddof=1)) / math.sqrt(m)
    return Estimate(mean, se, mean - t_quantile(level, m - 1) * se, level, m)


def upper_estimate(costs: list[float], level: float) -> Estimate | None:
    """Mean out-of-sample cost and its upper limit U + z_{level} s / sqrt(N') (N' large)."""
    n = len(costs)
    if n < 2:
        return None
    mean, se = float(np.mean(costs)), float(np.std(costs, ddof=1)) / math.sqrt(n)
    return Estimate(mean, se, mean + NormalDist().inv_cdf(level) * se, level, n)


def gap_estimate(gaps: list[float], level: float) -> Estimate | None:
    """The MMW gap estimator: mean of G_i and its upper limit G + t_{level, M-1} s / sqrt(M)."""
    m = len(gaps)
    if m < 2:
        return None
    mean, se = float(np.mean(gaps)), float(np.std(gaps, ddof=1)) / math.sqrt(m)
    return Estimate(mean, se, mean + t_quantile(level, m - 1) * se, level, m)


# --- samples -------------------------------------------------------------------------------
def spec_of_file(path: str | Path) -> ScenarioSpec:
    """The `scenario_spec` of an instance file (YAML), validated; SaaError when there is
    none (a workbook or CSV folder cannot hold one)."""
    from offtake.io.loader import read_yaml

    path = Path(path)
    if path.is_dir() or path.suffix.lower() not in (".yaml", ".yml"):
        raise SaaError(f"{path}: sampling needs a YAML instance with a scenario_spec")
    raw = read_yaml(path)
    if not isinstance(raw, dict) or "scenario_spec" not in raw:
        raise SaaError(f"{path}: the instance has no scenario_spec to sample from "
                       "(models/formulation.md, Scenarios)")
    return ScenarioSpec.model_validate(raw["scenario_spec"])


def seeds(seed: int, round_index: int, count: int) -> list[int]:
    """`count` distinct seeds of round `round_index`, derived from `seed` (NumPy's
    SeedSequence: independent streams)."""
    state = np.random.SeedSequence([seed, round_index]).generate_state(count)
    return [int(x) for x in state]


class Sampler:
    """Instances of the base instance with its scenarios replaced by samples of the spec."""

    def __init__(self, inst: Instance, spec: ScenarioSpec):
        self.base = to_data(inst)
        self.base.pop("scenarios", None)
        self.spec = spec
        self.years = inst.horizon.years

    def scenarios(self, n: int, seed: int, method: str, prefix: str = "") -> list[dict]:
        out = draw(self.spec, self.base, self.years, n, seed, method)
        if prefix:
            for sc in out:
                sc["id"] = f"{prefix}{sc['id']}"
        return out

    def instance(self, scenarios: list[dict], probability: float | None = None) -> Instance:
        """The base instance over `scenarios` (their probabilities replaced by `probability`
        when given), validated by the schema (a bad draw is an InvalidInstance)."""
        if probability is not None:
            scenarios = [{**sc, "probability": probability} for sc in scenarios]
        try:
            return Instance.model_validate({**self.base, "scenarios": scenarios})
        except ValueError as exc:  # pydantic's ValidationError and InvalidInstance
            raise SaaError(f"a drawn sample is not a valid instance: {exc}") from exc


# --- the procedure -------------------------------------------------------------------------
def run_saa(inst: Instance, spec: ScenarioSpec, options: SaaOptions, ex: Executor,
            progress: Any = None) -> SaaResult:
    """The MMW procedure (module doc) on `ex` (the caller's, left open). `progress(text)`,
    when given, is called as each stage starts."""
    options.check()
    if any(r.in_expectation for r in inst.rules):
        raise SaaError("rules that hold in expectation couple the scenarios; the candidate "
                       "cannot be priced scenario by scenario")
    start = time.perf_counter()
    say = progress or (lambda text: None)
    sampler = Sampler(inst, spec)
    solve_options = SolveOptions(mip_gap=options.mip_gap, time_limit=options.time_limit)
    level_one = options.confidence
    level_half = 1 - (1 - options.confidence) / 2
    rounds: list[SaaRound] = []
    all_seeds: dict[str, Any] = {"rounds": []}
    n = options.sample
    stopped = "one round"
    while True:
        k = len(rounds)
        round_seeds = seeds(options.seed, k, options.replications + 1)
        all_seeds["rounds"].append({"sample": n, "candidate": round_seeds[0],
                                    "replications": round_seeds[1:]})
        say(f"round {k + 1}: candidate sample and {options.replications} replications of "
            f"{n} scenarios")
        rounds.append(_round(sampler, options, solve_options, ex, n, round_seeds, level_one,
                             level_half, say))
        spent = time.perf_counter() - start
        if options.grow_to is None:
            break
        paired, reference = rounds[-1].paired_gap, rounds[-1].in_sample
        if (paired is not None and reference and
                paired.limit / abs(reference) <= options.grow_to):
            stopped = "target reached"
            break
        if 2 * n > options.max_sample:
            stopped = "largest sample"
            break
        if options.budget is not None and spent + 2 * rounds[-1].seconds > options.budget:
            stopped = "budget"
            break
        n *= 2
    eval_seed = seeds(options.seed, 10_000, 1)[0]
    all_seeds["evaluation"] = eval_seed
    say(f"out of sample: the candidate in {options.evaluation} scenarios")
    t = time.perf_counter()
    costs, failed = _price(sampler, ex, rounds[-1].candidate_plan,
                           sampler.scenarios(options.evaluation, eval_seed, "monte_carlo", "e"))
    upper = (upper_estimate(list(costs.values()), level_half) if not failed and costs
             else None)
    seconds = {"evaluation": time.perf_counter() - t, "total": time.perf_counter() - start}
    return SaaResult(options, rounds, upper, costs, failed, all_seeds, seconds, ex.describe(),
                     stopped)


def _round(sampler: Sampler, options: SaaOptions, solve_options: SolveOptions, ex: Executor,
           n: int, round_seeds: list[int], level_one: float, level_half: float,
           say: Any) -> SaaRound:
    start = time.perf_counter()
    n_c = options.candidate_sample or n
    reduction = None
    if options.candidate_pool is not None:
        pool = sampler.instance(sampler.scenarios(options.candidate_pool, round_seeds[0],
                                                  "monte_carlo", "c"))
        red = reduce_scenarios(pool, n_c)
        first = reduced_instance(pool, red)
        reduction = {"pool": options.candidate_pool, "kept": len(red.kept),
                     "distance": red.distance[-1], "relative_distance": red.relative}
    else:
        first = sampler.instance(sampler.scenarios(n_c, round_seeds[0], options.method, "c"))
    samples = [sampler.scenarios(n, s, options.method, f"r{i}-")
               for i, s in enumerate(round_seeds[1:])]
    instances = [first] + [sampler.instance(sc) for sc in samples]
    results = ex.map(solve_lean_task, instances, shared=solve_options)
    solved: list[Replication] = []
    outcomes: list[LeanOutcome | None] = []
    for i, (seed, res) in enumerate(zip(round_seeds, results, strict=True)):
        out = res.value if res.ok else None
        outcomes.append(out)
        if out is None:
            solved.append(Replication(i - 1, seed, f"{res.status}: {res.error}", None, None,
                                      None, 0.0))
            continue
        bound = out.bound if out.bound is not None else (
            out.objective if out.status == "optimal" and out.gap in (None, 0.0) else None)
        solved.append(Replication(i - 1, seed, out.status, out.objective, bound, out.gap,
                                  out.seconds))
    candidate, replications = solved[0], solved[1:]
    plan = outcomes[0].plan if outcomes[0] is not None and outcomes[0].has_solution else {}
    if not plan:
        raise SaaError(f"the candidate's sample (seed {round_seeds[0]}) has no solution: "
                       f"{candidate.status}")
    say(f"the candidate in the replications' {n * options.replications} scenarios")
    pooled = [sc for s in samples for sc in s]
    costs, failed = _price(sampler, ex, plan, pooled)
    for r, sample in zip(replications, samples, strict=True):
        ids = [sc["id"] for sc in sample]
        if all(s in costs for s in ids):
            r.candidate_cost = float(np.mean([costs[s] for s in ids]))
    bounds = [r.bound for r in replications if r.bound is not None]
    lower = (lower_estimate(bounds, level_half) if len(bounds) == len(replications)
             else None)
    gaps = [r.gap for r in replications if r.gap is not None]
    paired = gap_estimate(gaps, level_one) if len(gaps) == len(replications) else None
    return SaaRound(n, candidate, replications, lower, paired, time.perf_counter() - start,
                    plan, sorted(failed), reduction, signed_offers(plan))


def _price(sampler: Sampler, ex: Executor, plan: dict[str, dict], scenarios: list[dict]
           ) -> tuple[dict[str, float], dict[str, str]]:
    """The plan's cost in each of `scenarios` (compiled evaluation), and the scenarios where
    it cannot be carried out or was not evaluated, with the reason."""
    inst = sampler.instance(scenarios, 1.0 / len(scenarios))
    d = replace(build_data(inst), cvar_weight=0.0, elastic=False)
    _check_plan(d, plan)
    who = list(d.SCENARIOS)
    template = ScenarioLp(d, who)
    out, errors = solve_scenarios(ex, template, plan_vector(template.plan_keys, plan), who)
    costs = {s: v / template.scale + template.offset(s)
             for s, (st, v, _) in out.items() if st == "optimal"}
    failed = {s: out[s][0] for s in out if out[s][0] != "optimal"}
    failed.update({s: f"{e[0]}: {e[1]}" for s, e in errors.items()})
    return costs, failed
