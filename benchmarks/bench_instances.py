"""Benchmark: load, build, solve and check every shipped instance; print sizes and ratios.

    .venv/bin/python benchmarks/bench_instances.py [--repeat N]

Prints, per instance, the model size (rows, columns, nonzeros, binaries), median seconds of each
stage over N repeats (solve = HiGHS on the MIP; e2e = load + build + solve + shadow-price LP +
results + write + check, wall clock), the ratio of build to solve time, and e2e as a fraction
of the 10 s target of issue 3. No assertion on time: speed targets are read from this output,
never enforced in tests.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from offtake.check import check_folder
from offtake.io.loader import load_instance
from offtake.pipeline.solve import solve_instance

ROOT = Path(__file__).resolve().parents[1]


def bench(path: Path, repeat: int) -> dict:
    stages: dict[str, list[float]] = {"load": [], "build": [], "solve": [], "check": [],
                                      "e2e": []}
    res = None
    for _ in range(repeat):
        start = t = time.perf_counter()
        loaded = load_instance(path)
        stages["load"].append(time.perf_counter() - t)
        res = solve_instance(loaded.instance)
        stages["build"].append(res.build_seconds)
        stages["solve"].append(res.solve_seconds)
        with tempfile.TemporaryDirectory() as tmp:
            res.write(tmp)
            t = time.perf_counter()
            report = check_folder(loaded.instance, Path(tmp))
            stages["check"].append(time.perf_counter() - t)
        stages["e2e"].append(time.perf_counter() - start)
        assert report.ok, report.violations
    med = {k: statistics.median(v) for k, v in stages.items()}
    return {"name": str(path.relative_to(ROOT / "instances")), "size": res.model_size,
            "objective": res.objective, **med}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    paths = sorted(p for p in (ROOT / "instances").rglob("*.yaml") if "policies" not in p.parts)
    print(f"{'instance':45} {'rows':>6} {'cols':>6} {'nnz':>7} {'bin':>4} "
          f"{'load s':>7} {'build s':>7} {'solve s':>7} {'check s':>7} {'e2e s':>7} "
          f"{'build/solve':>11} {'e2e/10s':>8}")
    for p in paths:
        r = bench(p, args.repeat)
        s = r["size"]
        print(f"{r['name']:45} {s['rows']:>6} {s['columns']:>6} {s['nonzeros']:>7} "
              f"{s['binaries']:>4} {r['load']:>7.3f} {r['build']:>7.3f} {r['solve']:>7.3f} "
              f"{r['check']:>7.3f} {r['e2e']:>7.3f} {r['build'] / r['solve']:>11.2f} "
              f"{r['e2e'] / 10:>8.2f}")


if __name__ == "__main__":
    main()
