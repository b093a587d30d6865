"""Why rules cannot all hold: proofs from the data before solving, and an elastic re-solve after
an infeasible solve, both told in the user's terms (rule IDs, buyers, years, tonnes and
percentage points).

Before solving (`rule_conflicts`): demand that no eligible source can serve under an exclusion,
and minimum shares above what the qualifying suppliers' capacity allows. These are upper-bound
arguments: a conflict reported here is certain; absence of one proves nothing.

After an infeasible solve (`explain_infeasibility`): every hard rule row gets a violation
variable and HiGHS minimises their sum; the rows that must move, and by how much, are the
explanation. Orchestrates data -> model -> solve; adds no constraint family of its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from offtake.domain.schema import Instance
from offtake.formulation.data import ModelData, RuleRow, build_data
from offtake.formulation.model import build_model, solution_values
from offtake.formulation.readback import fix_first_stage
from offtake.solvers.highs import SolveOptions, solve


@dataclass(frozen=True)
class Conflict:
    """A rule row that must move, and by how much."""

    rule_id: str
    kind: str
    row: str
    year: int | None
    scenario: str
    amount: float
    unit: str
    percentage_points: float | None
    message: str


@dataclass
class Diagnosis:
    stage: str
    """'presolve' (proved from data) or 'elastic' (least total violation re-solve)."""
    conflicts: list[Conflict]
    note: str = ""

    def write(self, out_dir: str | Path) -> Path:
        path = Path(out_dir) / "infeasibility.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"stage": self.stage, "note": self.note,
                                    "conflicts": [asdict(c) for c in self.conflicts]},
                                   indent=2) + "\n")
        return path


# --- before solving --------------------------------------------------------------------------
def rule_conflicts(d: ModelData) -> list[Conflict]:
    """Conflicts provable from the data alone (see module docstring), per scenario."""
    supply = _deliverable_upper_bounds(d)
    out = []
    for row in d.rule_rows.get("exclusion", ()):
        b, mat = row.label.split("|")
        allowed = [k for k in _arrival_keys(d, b, mat) if k not in set(row.num_arrivals)]
        for s in d.SCENARIOS:
            demand = d.demand_t.get((b, mat, row.year, s), 0.0)
            if demand > 0 and not allowed:
                out.append(Conflict(
                    row.rule, row.kind, row.label, row.year, s, demand, "t", 100.0,
                    f"rule {row.rule}: buyer {b} needs {demand:g} t of {mat} in {row.year}"
                    f"{_in(d, s)}, but every source that can reach it has an excluded step; "
                    "no plan can both obey the rule and meet this demand"))
    for kind in ("min_content_share", "min_recycled_share"):
        for row in d.rule_rows.get(kind, ()):
            for s in d.SCENARIOS:
                cap = sum(supply.get((key, row.year, s), 0.0) for key in _last_nodes(d, row))
                need, demand = row.rhs[s], row.demand_t[s]
                if cap < need - 1e-9:
                    short = need - cap
                    out.append(Conflict(
                        row.rule, row.kind, row.label, row.year, s, short, "t",
                        100.0 * short / demand,
                        f"rule {row.rule} ({row.label}, {row.year}{_in(d, s)}) needs "
                        f"{row.share:.0%} of {demand:g} t = {need:g} t from qualifying chains, "
                        f"but their capacity is at most {cap:g} t: short by {short:g} t "
                        f"({100 * short / demand:.1f} percentage points)"))
    return out


def _in(d: ModelData, s: str) -> str:
    return f" in scenario {s}" if len(d.SCENARIOS) > 1 else ""


def _arrival_keys(d: ModelData, buyer: str, material: str) -> list[tuple[str, str, str]]:
    return [k for k in d.ARRIVALS if k[0] == buyer and k[1] == material]


def _last_nodes(d: ModelData, row: RuleRow) -> set[str]:
    """Nodes that hand the row's qualifying deliveries to the buyer."""
    keys = set(row.num_arrivals)
    return {i for b, i, j, t in d.BUYER_ARC_TAGS
            if j == b and (b, d.arc_material[i, j], t) in keys}


def _deliverable_upper_bounds(d: ModelData) -> dict[tuple[str, int, str], float]:
    """An upper bound on what each node can deliver in a year and scenario: capacity for
    facilities (with every build option built), spot availability (or infinity) for
    markets."""
    out: dict[tuple[str, int, str], float] = d.capacity_bounds()
    for k in d.SPOTS:
        for y in d.YEARS:
            for s in d.SCENARIOS:
                out[(k, y, s)] = d.spot_availability_t.get((k, y, s), float("inf"))
    return out


# --- after an infeasible solve ---------------------------------------------------------------
def explain_infeasibility(inst: Instance, options: SolveOptions | None = None,
                          fixed: dict[str, dict] | None = None) -> Diagnosis:
    """Least total violation of the hard rules; the rows with a violation are the answer.
    `fixed`: a plan (plan.json's values) whose first-stage decisions are held, to say why
    that plan cannot be carried out (`offtake evaluate`)."""
    d = build_data(inst, elastic=True)
    m = build_model(d)
    if fixed is not None:
        fix_first_stage(m, fixed)
    outcome = solve(m, options)
    if not outcome.has_solution:
        return Diagnosis("elastic", [], note="even with every hard rule relaxed the model is "
                         f"{outcome.status}: the conflict is not in the rules (check contract "
                         "minimums, capacities and recipes)")
    v = solution_values(m, d)
    rows = {row.row_id: row for kind_rows in d.rule_rows.values() for row in kind_rows}
    out = []
    for rid, sc, amount in v["row_violation"].itertuples(index=False):
        if amount > 1e-6:
            row = rows[rid]
            base = row.demand_t.get(sc) if row.sense == "ge" else None
            pp = 100.0 * amount / base if base else None
            out.append(Conflict(row.rule, row.kind, row.label, row.year, sc, amount, "t", pp,
                                _row_message(row, amount, pp)))
    for rid, amount in v["count_violation"].itertuples(index=False):
        if amount > 1e-6:
            out.append(Conflict(rid, d.rule_kind[rid], "", None, "", amount, "suppliers", None,
                                f"rule {rid} ({d.rule_kind[rid]}) must move by "
                                f"{amount:g} supplier(s)"))
    note = "" if out else "no rule needs to move: the infeasibility lies elsewhere"
    return Diagnosis("elastic", out, note=note)


def _row_message(row: RuleRow, amount: float, pp: float | None) -> str:
    what = {"le": "exceeds its cap by", "ge": "falls short by"}[row.sense]
    extra = f" ({pp:.1f} percentage points of demand)" if pp is not None else ""
    return (f"rule {row.rule} ({row.kind}, {row.label}, {row.year}) {what} "
            f"{amount:g} t{extra} in the least-violation plan")
