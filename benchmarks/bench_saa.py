"""Benchmark: sample average approximation with a certified gap (`offtake saa`, the
Mak-Morton-Wood procedure of `offtake.analysis.saa`) on the medium instance under its
export-control + deficit + NdPr price-path distribution (instances/medium_disruptions.yaml,
`scenario_spec`), in up to three runs with the same seeds (so the same samples, solves and
numbers):

    2 workers  a process pool of 2  (the run whose figures count: the issue's target is a 95 %
                                     gap interval narrower than 0.5 % in under 10 minutes on
                                     2 cores)
    1 worker   a process pool of 1  (with --speedup)
    2 on Dask  a LocalCluster of 2  (with --dask)

    .venv/bin/python benchmarks/bench_saa.py [-M 6] [-N 10] [--evaluation 1000]
                                             [--candidate-sample N] [--candidate-pool 400]
                                             [--speedup] [--dask]

Prints for each run: wall seconds of the whole procedure, of the solves (candidate and
replications) and of the out-of-sample evaluation, seconds per replication (each solve's own
wall time in its worker), the bounds and both gap intervals (upper end in % of the upper
bound); then the speed-ups (1 worker over 2 workers, pool over Dask) and whether every run
gave the same bounds. No assertion on time: the machine is shared with other work, and 2
cores give at most 2x.

The defaults are the run that meets the issue's width: M = 6 replications of N = 10, the
candidate's 20 scenarios kept by forward selection from 400 draws (`--candidate-pool`),
1,000 out-of-sample draws, seed 17. Measured 2026-12-02 13:05 on the 2-core project machine
with nothing else running, after free disposal of intermediates (formulation.md,
facility_output): 170.2 s in all (solves 159.6 s, out-of-sample 8.5 s), 36.2 s per
replication in its worker (22.1-70.4 s; candidate 77.8 s); lower bound 3,906,311,571 (limit
3,882,948,994), upper bound 3,933,909,920 (limit 3,950,644,937); paired 95 % gap interval up
to 0.399 % of the upper bound, the independent one up to 1.721 %. With a 10-scenario
candidate (`--candidate-sample 10`, the default before) the same seeds gave 176.8 s and a
paired interval of 0.520 % (the candidate out of sample 3,938.6M against 3,933.9M): the
width is mostly the candidate's own shortfall, which a larger candidate sample shrinks.
Before free disposal, the 10-scenario candidate gave 0.431 % in 142.5 s (quiet) and 960 s
under a load average of 7-9, where each replication took 213 s in its worker (100-471 s).
Without the pool (M = 10, N = 5, candidate from 5 draws, before free disposal): 954 s under
load, paired interval 10.5 %, independent 12.1 % (the 5-scenario plan is poor out of sample:
4,305.5M against the lower bound's 3,882.0M).

Speed-up, `-M 5 -N 3 --candidate-sample 3 --evaluation 300 --speedup --dask` (6 solves, so
at most 2x on 2 workers), measured 2026-12-02 11:57 (before free disposal) with nothing else
running: process pool of 2 40.1 s (solves 36.0 s, 10.7 s per replication in its worker), 1
worker 70.4 s (65.6 s, 10.7 s): x1.76 wall, x1.82 solves. Dask LocalCluster of 2 (run with
`--dask` after the fix of its own local cluster): 43.6 s (38.9 s, 11.5 s per replication),
x1.09 the pool's 39.8 s in the same run (a LocalCluster's start and its task round trips).
Same bounds in every run. Earlier, under a load average of 1.4-2.6: pool 68.5 s, 1 worker
112.3 s, Dask 132.5 s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTANCE = ROOT / "instances" / "medium_disruptions.yaml"


def run(kind: str, workers: int, args: argparse.Namespace) -> dict:
    from offtake.analysis.saa import WORKER_MODULES, SaaOptions, run_saa, spec_of_file
    from offtake.io.loader import load_or_raise
    from offtake.runtime import make_executor

    inst = load_or_raise(args.instance)
    spec = spec_of_file(args.instance)
    options = SaaOptions(replications=args.M, sample=args.N,
                         candidate_sample=args.candidate_sample,
                         candidate_pool=args.candidate_pool, evaluation=args.evaluation,
                         seed=args.seed, method="latin_hypercube", mip_gap=args.mip_gap)
    marks: dict[str, float] = {}

    def progress(text: str) -> None:
        marks[text.split(":")[0].split(" ")[0]] = time.perf_counter()
        print(f"    {time.perf_counter() - start:7.1f} s  {text}", flush=True)

    with make_executor(kind, workers=workers, preload=WORKER_MODULES) as ex:
        start = time.perf_counter()
        res = run_saa(inst, spec, options, ex, progress=progress)
        wall = time.perf_counter() - start
    s = res.summary()
    solves = marks.get("the", wall) - marks.get("round", start)
    return {"run": f"{workers} {kind}", "wall": wall, "solves": solves,
            "evaluation": res.seconds["evaluation"], "summary": s,
            "per_replication": [r.seconds for r in res.final.replications],
            "candidate_seconds": res.final.candidate.seconds,
            "signed": res.as_dict()["rounds"][-1]["signed"]}


def show(r: dict) -> None:
    s = r["summary"]

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.3f} %"

    def money(x: float | None) -> str:
        return "-" if x is None else f"{x:,.0f}"

    def end(ci: list | None) -> float | None:
        return None if ci is None else ci[1]

    per = r["per_replication"]
    print(f"{r['run']}: {r['wall']:.1f} s in all, solves {r['solves']:.1f} s, "
          f"out-of-sample evaluation {r['evaluation']:.1f} s")
    print(f"  seconds per replication: mean {sum(per) / len(per):.1f}, min {min(per):.1f}, "
          f"max {max(per):.1f} (candidate {r['candidate_seconds']:.1f})")
    print(f"  lower bound {money(s['lower_bound'])} (limit {money(s['lower_limit'])}), upper "
          f"bound {money(s['upper_bound'])} (limit {money(s['upper_limit'])})")
    if s["not_carried_out"]:
        print(f"  the candidate cannot be carried out in {s['not_carried_out']} out-of-sample "
              "scenarios (a hard rule): no upper bound")
    print(f"  paired gap {money(s['paired_gap_estimate'])}, 95 % interval up to "
          f"{money(end(s['paired_gap_ci']))} = {pct(s['paired_gap_ci_relative'])} of the upper "
          f"bound; independent interval up to {money(end(s['gap_ci']))} = "
          f"{pct(s['gap_ci_relative'])}")
    print(f"  candidate signs {', '.join(r['signed'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instance", type=Path, default=INSTANCE)
    parser.add_argument("-M", type=int, default=6, help="replications")
    parser.add_argument("-N", type=int, default=10, help="scenarios per replication")
    parser.add_argument("--candidate-sample", type=int, default=20,
                        help="scenarios of the candidate's sample (kept from the pool)")
    parser.add_argument("--candidate-pool", type=int, default=400,
                        help="draws reduced to the candidate's sample by forward selection")
    parser.add_argument("--evaluation", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--mip-gap", type=float, default=1e-4)
    parser.add_argument("--speedup", action="store_true", help="also run on 1 worker")
    parser.add_argument("--dask", action="store_true", help="also run on a Dask LocalCluster")
    args = parser.parse_args()
    print(f"{args.instance.name}: M = {args.M} replications of N = {args.N} scenarios "
          f"(Latin hypercube), candidate sample {args.candidate_sample or args.N}"
          f"{f' kept from {args.candidate_pool} draws' if args.candidate_pool else ''}, "
          f"{args.evaluation} out-of-sample draws, seed {args.seed}")
    runs = [("process", 2)] + ([("process", 1)] if args.speedup else []) + (
        [("dask", 2)] if args.dask else [])
    results = []
    for kind, workers in runs:
        print(f"-- {workers} {kind}", flush=True)
        results.append(run(kind, workers, args))
        show(results[-1])
    base = results[0]
    for r in results[1:]:
        same = all(r["summary"][k] == base["summary"][k] or (
            None not in (r["summary"][k], base["summary"][k])
            and abs(r["summary"][k] - base["summary"][k]) <= 1e-6 * abs(base["summary"][k]))
            for k in ("lower_bound", "upper_bound", "paired_gap_estimate"))
        print(f"{r['run']} / {base['run']}: wall x{r['wall'] / base['wall']:.2f}, solves "
              f"x{r['solves'] / base['solves']:.2f}, evaluation "
              f"x{r['evaluation'] / base['evaluation']:.2f}; same bounds: {same}")


if __name__ == "__main__":
    main()
