"""Benchmark: a fixed portfolio evaluated on the medium instance under N scenarios with
offtake.analysis.evaluate (one compiled template, one LP per scenario), N = 10, 100, 1000.

The portfolio is the stochastic optimum of the 2-scenario set (China open / cut, one NdPr
path; extensive form, mip gap 1e-4), i.e. the sample-average workflow: optimise on a small
sample, evaluate out of sample on a large one. Scenarios are those of bench_scenarios.py.
For the smallest N the extensive form with the same plan fixed is solved too and the
largest per-scenario difference is printed (it must be ~0).

    .venv/bin/python benchmarks/bench_evaluate.py [--sizes 10,100,1000] [--workers 1,2]

Prints scenarios, workers, load and evaluation seconds, ms per scenario, the ratio of ms per
scenario to the smallest run (about 1 = linear growth), peak MiB of the run's process, and
the expected cost. Each run is a fresh subprocess. No assertion on time.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from bench_scenarios import instance_file, peak_mib, run_child  # noqa: E402


def _plan(path: Path) -> Path:
    """The stochastic optimum of the 2-scenario set, pickled once."""
    out = ROOT / "out" / "bench_evaluate_plan.pkl"
    if not out.exists():
        from offtake.formulation.data import build_data
        from offtake.formulation.model import build_model, first_stage_values
        from offtake.io.loader import load_instance
        from offtake.solvers.highs import SolveOptions, objective_scale_for, solve

        d = build_data(load_instance(instance_file(2)).instance)
        m = build_model(d)
        res = solve(m, SolveOptions(mip_gap=1e-4,
                                    objective_scale=objective_scale_for(
                                        d.max_cost_coefficient())))
        assert res.has_solution, res.message
        out.write_bytes(pickle.dumps(first_stage_values(m)))
    return out


def one(n: int, workers: int, compare: bool) -> dict:
    from offtake.analysis.evaluate import evaluate_plan
    from offtake.formulation.data import build_data
    from offtake.io.loader import load_instance

    path = instance_file(n)
    plan = pickle.loads(_plan(path).read_bytes())
    t = time.perf_counter()
    d = build_data(load_instance(path).instance)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    res = evaluate_plan(d, plan, workers=workers)
    eval_s = time.perf_counter() - t
    out = {"scenarios": len(d.SCENARIOS), "workers": workers, "load_s": load_s,
           "eval_s": eval_s, "expected": res.expected, "size": res.size,
           "failed": sum(st != "optimal" for st in res.status.values())}
    if compare:
        import pyomo.environ as pyo

        from offtake.formulation.model import build_model, fix_first_stage
        from offtake.solvers.highs import SolveOptions, objective_scale_for, solve

        t = time.perf_counter()
        m = build_model(d)
        fix_first_stage(m, plan)
        ef = solve(m, SolveOptions(objective_scale=objective_scale_for(
            d.max_cost_coefficient())))
        out["ef_fixed_s"] = time.perf_counter() - t
        out["max_abs_diff"] = max(abs(pyo.value(m.scenario_cost[s]) - res.cost[s])
                                  for s in d.SCENARIOS) if ef.has_solution else None
    out["peak_mib"] = peak_mib()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--w", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--compare", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.w, args.compare)))
        return
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"{'N':>5} {'wrk':>3} {'load s':>7} {'eval s':>7} {'ms/scen':>8} {'ratio':>6} "
          f"{'peak MiB':>9} {'expected cost':>16}  notes")
    base: dict[int, float] = {}
    for n in sizes:
        for w in (int(x) for x in args.workers.split(",")):
            cmd = [sys.executable, __file__, "--one", str(n), "--w", str(w)]
            if n == sizes[0] and w == 1:
                cmd.append("--compare")
            r = run_child(cmd, f"{n:>5} {w:>3}")
            if r is None:
                continue
            per = 1000 * r["eval_s"] / r["scenarios"]
            base.setdefault(w, per)
            notes = f"{r['failed']} infeasible" if r["failed"] else ""
            if "ef_fixed_s" in r:
                notes += (f" extensive form with the plan fixed: {r['ef_fixed_s']:.1f} s, "
                          f"max |diff| {r['max_abs_diff']:.2e}")
            exp = r["expected"]
            print(f"{r['scenarios']:>5} {w:>3} {r['load_s']:>7.2f} {r['eval_s']:>7.2f} "
                  f"{per:>8.1f} {per / base[w]:>6.2f} {r['peak_mib']:>9.0f} "
                  f"{exp if exp is None else f'{exp:,.0f}':>16}  {notes}")
    print(f"template: {r['size']}")


if __name__ == "__main__":
    main()
