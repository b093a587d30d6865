"""Benchmark: the medium instance with N scenarios (extensive form), N = 10, 100, 1000 by
default. Scenarios: a Chinese export-control factor (Dy/Tb and magnet capacity in CN cut to
30 % from 2027 with probability 0.3) times N/2 sampled NdPr index paths (GBM, 30 %/yr).

    .venv/bin/python benchmarks/bench_scenarios.py [--sizes 10,100] [--time-limit 600]

Prints scenarios, rows, columns, nonzeros, binaries, build and solve seconds, peak memory
(MiB, of this process), and seconds per scenario relative to the smallest run. Each size runs
in a fresh subprocess so peak memory is per size. No assertion on time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MEDIUM = ROOT / "instances" / "medium_multitier.yaml"


def scenario_spec(n: int) -> dict:
    return {
        "factors": [{"id": "china", "levels": [
            {"id": "open", "probability": 0.7},
            {"id": "cut", "probability": 0.3,
             "capacity": [{"countries": ["CN"], "from_year": 2027, "multiplier": 0.3}],
             "spot": [{"origins": ["CN"], "from_year": 2027,
                       "availability_multiplier": 0.3}]}]}],
        "sampling": {"index": _first_index(), "n": max(1, n // 2), "volatility": 0.3,
                     "seed": 1},
    }


def _first_index() -> str:
    from offtake.io.loader import read_yaml

    return read_yaml(MEDIUM)["price_indices"][0]["id"]


def run_child(cmd: list[str], label: str) -> dict | None:
    """Run one benchmark size in a fresh process; its last stdout line is a JSON record.
    Prints the error and returns None when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        print(f"{label} failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_mib() -> float:
    """Peak resident memory of this process or any of its (worker) children, MiB."""
    return max(resource.getrusage(who).ru_maxrss for who in
               (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def instance_file(n: int) -> Path:
    """The medium instance with the N-scenario spec, written to out/ (includes resolved)."""
    from offtake.io.loader import read_yaml

    raw = read_yaml(MEDIUM)  # the project's loader: NO stays Norway
    raw["include"] = [{**e, "pack": str(MEDIUM.parent / e["pack"])} if isinstance(e, dict)
                      else str(MEDIUM.parent / e) for e in raw.get("include", [])]
    raw["scenario_spec"] = scenario_spec(n)
    path = ROOT / "out" / f"bench_scenarios_{n}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def one(n: int, time_limit: float) -> dict:
    from offtake.io.loader import load_instance
    from offtake.pipeline.solve import solve_instance
    from offtake.solvers.highs import SolveOptions

    path = instance_file(n)

    t = time.perf_counter()
    loaded = load_instance(path)
    assert loaded.ok, [str(f) for f in loaded.findings][:5]
    load_s = time.perf_counter() - t
    res = solve_instance(loaded.instance, SolveOptions(time_limit=time_limit))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"scenarios": len(loaded.instance.scenarios), "status": res.status,
            "objective": res.objective, "size": res.model_size, "load_s": load_s,
            "build_s": res.build_seconds, "solve_s": res.solve_seconds, "peak_mib": peak}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--time-limit", type=float, default=600)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.time_limit)))
        return
    print(f"{'N':>5} {'rows':>9} {'cols':>9} {'nnz':>10} {'bin':>4} {'build s':>8} "
          f"{'solve s':>8} {'peak MiB':>9} {'s/scen':>7} {'ratio':>6} status")
    base = None
    for n in (int(x) for x in args.sizes.split(",")):
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--time-limit",
                               str(args.time_limit)], capture_output=True, text=True)
        if proc.returncode:
            print(f"{n:>5} failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        s = r["size"] or {}
        per = (r["build_s"] + r["solve_s"]) / r["scenarios"]
        base = base or per
        print(f"{r['scenarios']:>5} {s.get('rows', 0):>9} {s.get('columns', 0):>9} "
              f"{s.get('nonzeros', 0):>10} {s.get('binaries', 0):>4} {r['build_s']:>8.1f} "
              f"{r['solve_s']:>8.1f} {r['peak_mib']:>9.0f} {per:>7.2f} {per / base:>6.2f} "
              f"{r['status']}")


if __name__ == "__main__":
    main()
