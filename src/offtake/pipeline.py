"""The one-way pipeline as functions: instance -> data -> model -> solve -> results -> check.

Used by the CLI, the tests and the benchmarks so that all of them run exactly the same steps.
Knows the order of the stages and nothing of their insides.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from offtake.check import CheckReport, check_folder
from offtake.data import build_data
from offtake.io import LoadResult, load_instance
from offtake.model import (
    build_model,
    fix_integers,
    has_integers,
    rule_duals,
    solution_values,
)
from offtake.results import Results, assemble
from offtake.schema import Instance
from offtake.solve import SolveOptions, solve, solve_duals


def solve_instance(inst: Instance, options: SolveOptions | None = None, *,
                   sha256: str = "") -> Results:
    """Build and solve; the Results hold tables only when HiGHS returned a solution."""
    options = options or SolveOptions()
    start = time.perf_counter()
    data = build_data(inst)
    model = build_model(data)
    build_seconds = time.perf_counter() - start
    outcome = solve(model, options)
    values = None
    if outcome.has_solution:
        values = solution_values(model, data)
        if data.rule_rows or data.RULE_SUPPLIER_OFFERS:
            values["rule_duals"] = _rule_duals(model, options)
    opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
    return assemble(inst, data, outcome, values, build_seconds=build_seconds, sha256=sha256,
                    options=opts)


def _rule_duals(model, options: SolveOptions):
    """Shadow prices of the rules: from the LP, or for a MIP from the LP with the integer
    decisions fixed at their optimum (a shadow price is then conditional on that portfolio)."""
    basis = "LP"
    if has_integers(model):
        fix_integers(model)
        basis = "LP with integer decisions fixed at the optimum"
    duals = solve_duals(model, options)
    return rule_duals(model, duals or {}, basis)


@dataclass
class Run:
    load: LoadResult
    results: Results | None = None
    check: CheckReport | None = None


def run(path: str | Path, out_dir: str | Path, options: SolveOptions | None = None) -> Run:
    """Load, solve, write the output folder, then check it independently from the folder."""
    loaded = load_instance(path)
    if loaded.instance is None:
        return Run(loaded)
    results = solve_instance(loaded.instance, options, sha256=loaded.sha256)
    results.write(out_dir)
    report = None
    if results.has_solution:
        report = check_folder(loaded.instance, Path(out_dir))
        results.violations = len(report.violations)
        results.write(out_dir)
    return Run(loaded, results, report)
