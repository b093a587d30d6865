"""Benchmark: `offtake consortium` end to end.

1. The shipped instance (instances/allied_consortium.yaml, 4 members, 15 coalitions) through
   the command line, on a local process pool of --workers workers (default 2): wall seconds
   from start to the files written, and its ratio to the target of 60 s.
2. An 8-member variant (255 coalitions): each member cloned once with its demand scaled by
   0.75 (ids '<member>-B', same country and class; the rules scoped to a member also cover
   its clone), through the command line on the Dask back-end (a local cluster of --workers
   workers, with its progress bar), interrupted by Ctrl-C (SIGINT to its process group) once
   --stop-after coalitions are in the journal, then run again: it reads them back and solves
   the rest. Coalitions and seconds of each part; that a resumed run gives the costs of an
   uninterrupted one is tested in tests/test_consortium.py.

    .venv/bin/python benchmarks/bench_consortium.py [--workers 2] [--stop-after 60]
        [--skip-dask]

Prints coalitions, seconds, seconds per coalition and ratios; no assertion on time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "instances" / "allied_consortium.yaml"
TARGET_S = 60.0


def shipped(workers: int, out: Path) -> float:
    """The command line on the shipped instance; wall seconds."""
    start = time.perf_counter()
    run = subprocess.run([str(ROOT / ".venv" / "bin" / "offtake"), "consortium", str(SHIPPED),
                          "--out", str(out), "--executor", "process", "--workers",
                          str(workers), "--fresh"], capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"offtake consortium failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return seconds


def eight_members():
    """The shipped instance with every member cloned (demand x 0.75)."""
    from offtake.domain.transforms import from_data, to_data
    from offtake.io.loader import load_or_raise

    raw = to_data(load_or_raise(SHIPPED))
    clones = []
    for b in raw["buyers"]:
        c = dict(b, id=f"{b['id']}-B", name=f"{b['name']} (second)")
        c["demand_t"] = {k: (v * 0.75 if not isinstance(v, dict)
                             else {y: t * 0.75 for y, t in v.items()})
                         for k, v in b["demand_t"].items()}
        clones.append(c)
    raw["buyers"] += clones
    for r in raw["rules"]:
        scoped = r["scope"]["buyers"]
        if scoped is not None:
            r["scope"]["buyers"] = scoped + [f"{b}-B" for b in scoped]
    return from_data(raw)


def _int_keys(x):
    """JSON-mode data with its year keys back to whole numbers (as a YAML file has them)."""
    if isinstance(x, dict):
        return {(int(k) if isinstance(k, str) and k.isdigit() else k): _int_keys(v)
                for k, v in x.items()}
    if isinstance(x, list):
        return [_int_keys(v) for v in x]
    return x


def cli(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([str(ROOT / ".venv" / "bin" / "offtake"), "consortium", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kw)


def interrupted_then_resumed(path: Path, out: Path, workers: int, stop_after: int
                             ) -> tuple[float, int, float, dict]:
    """The command line on Dask: Ctrl-C (SIGINT to its process group) once the journal holds
    `stop_after` coalitions, then the same command again. Seconds and journal lines of the
    first part, seconds and consortium.json of the second."""
    import json

    args = [str(path), "--out", str(out), "--executor", "dask", "--workers", str(workers)]
    journal = out / "coalitions.jsonl"
    start = time.perf_counter()
    first = cli(args, start_new_session=True)
    while first.poll() is None:
        lines = len(journal.read_text().splitlines()) - 1 if journal.exists() else 0
        if lines >= stop_after:
            os.killpg(first.pid, signal.SIGINT)
            break
        time.sleep(0.2)
    first.communicate(timeout=120)
    first_s = time.perf_counter() - start
    kept = len(journal.read_text().splitlines()) - 1
    start = time.perf_counter()
    second = cli(args)
    output, _ = second.communicate(timeout=1800)
    if second.returncode != 0:
        sys.exit(f"resumed run failed ({second.returncode}):\n{output}")
    return first_s, kept, time.perf_counter() - start, json.loads(
        (out / "consortium.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stop-after", type=int, default=60)
    ap.add_argument("--skip-dask", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-consortium-"))
    try:
        seconds = shipped(args.workers, tmp / "shipped")
        import json

        summary = json.loads((tmp / "shipped" / "consortium.json").read_text())
        n = summary["coalitions"]
        print(f"shipped instance: {len(summary['members'])} members, {n} coalitions, "
              f"{args.workers} workers (process pool)")
        print(f"  end to end {seconds:.1f} s ({seconds / n:.2f} s per coalition), "
              f"ratio to the {TARGET_S:.0f} s target {seconds / TARGET_S:.2f}")
        print(f"  grand coalition {summary['grand_coalition']['cost']:,.0f}, savings "
              f"{summary['savings']:,.0f}, largest gap {summary['largest_gap']}, core empty "
              f"{summary['core_empty']} (least-core epsilon {summary['least_core_epsilon']})")
        if args.skip_dask:
            return
        path = tmp / "eight.yaml"
        data = _int_keys(eight_members().model_dump(mode="json", by_alias=True))
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        print(f"8-member variant on Dask ({args.workers} workers, the command line with its "
              f"progress bar): Ctrl-C once {args.stop_after} coalitions are in the journal, "
              "then the same command again")
        first_s, kept, second_s, summary = interrupted_then_resumed(
            path, tmp / "eight", args.workers, args.stop_after)
        n = summary["coalitions"]
        print(f"  part 1: interrupted after {first_s:.1f} s (cluster start included), "
              f"{kept} coalitions kept in the journal")
        print(f"  part 2: {summary['resumed']} read back, {n - summary['resumed']} solved, "
              f"{second_s:.1f} s; {n} coalitions in all, failed {len(summary['failed'])}")
        total = first_s + second_s
        print(f"  both parts {total:.1f} s ({total / n:.2f} s per coalition); grand coalition "
              f"{summary['grand_coalition']['cost']:,.0f}, savings {summary['savings']:,.0f}, "
              f"core empty {summary['core_empty']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
