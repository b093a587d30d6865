"""The command-line run of one instance: load, prove rule conflicts, solve, write the output
folder, check it independently from the folder, and explain an infeasible outcome.

Used by the CLI, the tests and the benchmarks so that all of them run exactly the same steps.
Knows the order of the stages and nothing of their insides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from offtake.check import CheckReport, check_folder
from offtake.domain.findings import Finding
from offtake.domain.schema import Instance
from offtake.domain.transforms import apply_sets, decide, relax_rules, restrict_to_buyers
from offtake.formulation.data import build_data
from offtake.formulation.ruledata import origin_gaps
from offtake.io.loader import LoadResult, load_instance
from offtake.pipeline.diagnose import Diagnosis, explain_infeasibility, rule_conflicts
from offtake.pipeline.solve import _options_dict, solve_instance
from offtake.results.folder import writing
from offtake.results.tables import Results, assemble
from offtake.solvers.highs import SolveOptions, SolveOutcome


@dataclass
class Run:
    load: LoadResult
    results: Results | None = None
    check: CheckReport | None = None
    diagnosis: Diagnosis | None = None
    warnings: list[Finding] = field(default_factory=list)
    """Warnings found once the network is known (e.g. chains an origin rule cannot see)."""


def run(path: str | Path, out_dir: str | Path, options: SolveOptions | None = None,
        relax: list[str] | None = None, sets: list[str] | None = None, *,
        buyers: list[str] | None = None, force: list[str] | None = None,
        forbid: list[str] | None = None) -> Run:
    """Load, apply the `sets` ('PATH=VALUE', see `offtake.domain.transforms.apply_sets`),
    keep only the named `buyers` (`restrict_to_buyers`: what went with the others is a
    warning), force and forbid offers or build options (`decide`), drop the `relax`ed rules,
    prove rule conflicts, solve, write the output folder, check it independently from the
    folder, and explain an infeasible outcome.

    A file with errors gives a Run without results; a bad set, an unknown buyer, offer,
    build option or rule raises `InvalidInstance` (before anything is written)."""
    options = options or SolveOptions()
    start = time.perf_counter()
    loaded = load_instance(path)
    load_seconds = time.perf_counter() - start
    if loaded.instance is None:
        return Run(loaded)
    inst = apply_sets(loaded.instance, sets or [])
    notes: list[Finding] = []
    if buyers:
        inst, notes = restrict_to_buyers(inst, buyers)
    inst = relax_rules(decide(inst, force or [], forbid or []), relax or [])
    loaded.findings = [*loaded.findings, *notes]
    narrowed = {"buyers": list(buyers or []), "forced": list(force or []),
                "forbidden": list(forbid or [])}
    start = time.perf_counter()
    data = build_data(inst, cvar_weight=options.cvar_weight, cvar_alpha=options.cvar_alpha,
                      cvar_limit=options.cvar_limit)
    gaps = origin_gaps(inst, data)
    conflicts = rule_conflicts(data)
    if conflicts:
        diagnosis = Diagnosis("presolve", conflicts, note="proved from the data before solving")
        outcome = SolveOutcome("infeasible", None, None, None, "highs", "", 0.0, None,
                               "not solved", None, "rules conflict (proved before solving)")
        results = assemble(inst, data, outcome, None, sha256=loaded.sha256,
                           build_seconds=time.perf_counter() - start,
                           options={**_options_dict(options), **narrowed})
        return _finish(Run(loaded, results, None, diagnosis, gaps), inst, out_dir, relax, sets)
    results = solve_instance(inst, options, sha256=loaded.sha256, data=data)
    results.options.update(narrowed)
    results.timings = {"load": load_seconds, **results.timings}
    explained = explain_infeasibility(inst, options) if results.status == "infeasible" else None
    return _finish(Run(loaded, results, None, explained, gaps), inst, out_dir, relax, sets)


def _finish(run_: Run, inst: Instance, out_dir: str | Path, relax: list[str] | None,
            sets: list[str] | None) -> Run:
    """Write the folder, check a plan from it, and only then mark it complete (all under the
    folder's lock: `offtake.results.folder`)."""
    results = run_.results
    assert results is not None
    results.options["relaxed_rules"] = list(relax or [])
    results.options["set"] = list(sets or [])
    with writing(out_dir) as out:
        start = time.perf_counter()
        results.write_files(out)
        stale = out / "infeasibility.json"
        if run_.diagnosis is not None:
            run_.diagnosis.write(out)
        elif stale.exists():
            stale.unlink()
        results.timings["write"] = time.perf_counter() - start
        if results.has_solution:
            start = time.perf_counter()
            run_.check = check_folder(inst, out, sha256=run_.load.sha256, marker=False)
            results.violations = len(run_.check.violations)
            results.timings["check"] = time.perf_counter() - start
            results.write_summary(out)
    return run_
