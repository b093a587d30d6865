"""Cost of compliance: what each named rule (and all of them together) costs, as the
difference between the optimum with the rule and without it."""

from __future__ import annotations

import pandas as pd

from offtake.domain.schema import Instance
from offtake.domain.transforms import relax_rules
from offtake.pipeline.solve import solve_instance
from offtake.solvers.highs import SolveOptions


def compare(inst: Instance, rule_ids: list[str], options: SolveOptions | None = None
            ) -> pd.DataFrame:
    """Cost of compliance: the objective with every rule, and without each named rule (and
    without all of them when several are named)."""
    base = solve_instance(inst, options)
    variants = [[r] for r in rule_ids] + ([rule_ids] if len(rule_ids) > 1 else [])
    rows = []
    for ids in variants:
        res = solve_instance(relax_rules(inst, ids), options)
        cost = (None if base.objective is None or res.objective is None
                else base.objective - res.objective)
        rows.append({"relaxed": "+".join(ids), "status_with": base.status,
                     "objective_with": base.objective, "status_without": res.status,
                     "objective_without": res.objective, "cost_of_compliance": cost})
    return pd.DataFrame(rows)
