"""Benchmark: a sweep of the CRMA single-country cap on the medium instance, every point built
afresh against one HiGHS model re-solved in place (`offtake.pipeline.solve.WarmSolver`).

    .venv/bin/python benchmarks/bench_warm.py [--points 20] [--instance PATH] [--rule ID]

The cap `rules.<ID>.max_share` runs from 0.50 to 0.975 in `--points` steps (20: step 0.025),
each point a validated `--set` transform of the instance. Fresh: for each point a new
`WarmSolver` (data, Pyomo model, hand-over, HiGHS from scratch), as `solve_lean` does. Warm:
one `WarmSolver` for all points (data and Pyomo model per point, then the HiGHS model changed
in place and started from the previous point's solution). Prints seconds per point of each,
their ratio, and checks that both give the same objective at every point (relative 1e-9).
No assertion on time; the machine's other load slows both.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from offtake.domain.transforms import apply_sets
from offtake.io.loader import load_or_raise
from offtake.pipeline.solve import WarmSolver

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--instance", type=Path, default=ROOT / "instances/medium_multitier.yaml")
    parser.add_argument("--rule", default="CRMA-DIV-65")
    args = parser.parse_args()
    base = load_or_raise(args.instance)
    caps = [round(0.5 + 0.475 * k / max(args.points - 1, 1), 6) for k in range(args.points)]
    points = [apply_sets(base, [f"rules.{args.rule}.max_share={c}"]) for c in caps]

    fresh_s, fresh_obj = [], []
    for p in points:
        start = time.perf_counter()
        out = WarmSolver().solve(p)
        fresh_s.append(time.perf_counter() - start)
        fresh_obj.append(out.objective)
    warm = WarmSolver()
    warm_s, warm_obj, warm_flags = [], [], []
    for p in points:
        start = time.perf_counter()
        out = warm.solve(p)
        warm_s.append(time.perf_counter() - start)
        warm_obj.append(out.objective)
        warm_flags.append(out.warm)

    print(f"{args.instance.name}: {len(points)} points of rules.{args.rule}.max_share "
          f"{caps[0]}..{caps[-1]}")
    print(f"{'cap':>6} {'fresh s':>8} {'warm s':>7} {'objective':>18} {'same':>5} {'warm?':>5}")
    same = []
    for c, fs, ws, fo, wo, flag in zip(caps, fresh_s, warm_s, fresh_obj, warm_obj, warm_flags,
                                       strict=True):
        ok = fo is not None and wo is not None and abs(fo - wo) <= 1e-9 * max(1.0, abs(fo))
        same.append(ok)
        print(f"{c:6.3f} {fs:8.2f} {ws:7.2f} {fo or float('nan'):18,.0f} {ok!s:>5} {flag!s:>5}")
    f_mean, w_mean = statistics.mean(fresh_s), statistics.mean(warm_s)
    print(f"\nseconds per point: fresh {f_mean:.2f}, warm {w_mean:.2f}; ratio fresh / warm "
          f"{f_mean / w_mean:.2f} (target of issue 11: >= 3); warm re-solves "
          f"{warm.warm} of {len(points)}; same objective at {sum(same)} of {len(points)} points")


if __name__ == "__main__":
    main()
