"""One solve of an instance: derived data -> model -> HiGHS -> typed results (with the rules'
shadow prices). Every feature that needs an optimum calls `solve_instance`; it writes nothing.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

from offtake.domain.schema import Instance
from offtake.formulation.data import ModelData, build_data
from offtake.formulation.model import (
    build_model,
    first_stage_values,
    fix_integers,
    has_integers,
    rule_duals,
    solution_values,
)
from offtake.results.tables import Results, assemble
from offtake.solvers.highs import SolveOptions, objective_scale_for, solve, solve_duals


def solve_instance(inst: Instance, options: SolveOptions | None = None, *,
                   sha256: str = "", data: ModelData | None = None) -> Results:
    """Build and solve; the Results hold tables only when HiGHS returned a solution."""
    options = options or SolveOptions()
    start = time.perf_counter()
    data = data or build_data(inst, cvar_weight=options.cvar_weight,
                              cvar_alpha=options.cvar_alpha)
    if options.objective_scale is None:
        options = replace(options,
                          objective_scale=objective_scale_for(data.max_cost_coefficient()))
    model = build_model(data)
    build_seconds = time.perf_counter() - start
    outcome = solve(model, options)
    values, plan = None, {}
    if outcome.has_solution:
        values = solution_values(model, data)
        plan = first_stage_values(model)  # before the duals' LP changes the integers
        if data.rule_rows or data.RULE_SUPPLIER_OFFERS:
            values["rule_duals"] = _rule_duals(model, options)
    res = assemble(inst, data, outcome, values, build_seconds=build_seconds, sha256=sha256,
                   options=_options_dict(options))
    res.plan = plan
    return res


def _options_dict(options: SolveOptions) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}


def _rule_duals(model, options: SolveOptions):
    """Shadow prices of the rules: from the LP, or for a MIP from the LP with the integer
    decisions fixed at their optimum (a shadow price is then conditional on that portfolio)."""
    basis = "LP"
    if has_integers(model):
        fix_integers(model)
        basis = "LP with integer decisions fixed at the optimum"
    duals = solve_duals(model, options)
    return rule_duals(model, duals or {}, basis)
