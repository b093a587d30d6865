"""An output folder as a whole: what must hold before its tables are worth checking, and what
its summary.json and plan.json say against the tables.

Owns `check_folder`: summary.json readable, written for this instance (its SHA-256), holding a
plan at all (a folder of a run without a solution has nothing to check: status `no_plan`,
not a page of "table missing"), its bound on the right side of its objective and its MIP gap
equal to theirs; then the tables (`checker.check_tables`), then plan.json (the file `offtake
evaluate` reads) against the tables: signed offers, start years, contracted volumes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from offtake.check.checker import check_tables
from offtake.check.context import CheckReport, Violation
from offtake.check.tables import read_tables
from offtake.domain.schema import Instance

SOLVED = ("optimal", "feasible")
MARKER = "COMPLETE"
"""The file a run writes last into its folder (formulation.md, "Result tables")."""


def check_folder(inst: Instance, out_dir: Path, tol: float = 1e-6,
                 sha256: str | None = None, marker: bool = True) -> CheckReport:
    """Check an output folder (result CSVs, summary.json, plan.json) against the instance;
    `sha256` is the instance file's hash, compared with the one the folder was written for.
    A folder whose run did not finish writing (no completion marker, see formulation.md,
    "Result tables") is refused; `marker=False` is for the run itself, which checks
    its folder before marking it complete."""
    out_dir = Path(out_dir)
    if marker and (out_dir / "summary.json").exists() and not (out_dir / MARKER).exists():
        return _stopped("incomplete", Violation(
            "summary", "COMPLETE", 1.0,
            "the run that wrote this folder did not finish (no completion marker): its files "
            "may mix two runs; solve again"))
    summary, problem = _read_summary(out_dir / "summary.json")
    if problem is not None:
        return _stopped("unreadable", problem)
    written_for = str(summary.get("instance_sha256") or "")
    if sha256 and written_for and written_for != sha256:
        return _stopped("other_instance", Violation(
            "instance", "summary.json", 1.0,
            f"the folder was written for another instance (SHA-256 {written_for[:12]}...), "
            f"not this one ({sha256[:12]}...)"))
    status = summary.get("status")
    if summary and status not in SOLVED:
        report = CheckReport([], 0.0, {}, status="no_plan")
        report.note = (f"the folder holds no plan (status '{status}'): nothing to check"
                       + (f"; {summary['message']}" if summary.get("message") else ""))
        return report
    options = summary.get("options") or {}
    report = check_tables(inst, read_tables(out_dir), summary.get("objective"), None, tol,
                          options.get("cvar_weight"), options.get("cvar_alpha"),
                          options.get("cvar_limit"))
    if not summary:
        report.violations.append(Violation("summary", "summary.json", 1.0,
                                           "summary.json missing"))
        return report
    report.violations += _summary_numbers(summary, tol)
    report.violations += _plan_file(out_dir, tol)
    return report


def _stopped(status: str, violation: Violation) -> CheckReport:
    report = CheckReport([violation], 0.0, {}, status=status)
    report.note = violation.message
    return report


def _read_summary(path: Path) -> tuple[dict[str, Any], Violation | None]:
    """summary.json as a dict ({} when absent), or the violation that makes it unusable."""
    if not path.exists():
        return {}, None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, Violation("summary", "summary.json", 1.0,
                             f"summary.json is not readable JSON ({exc}): the run that wrote "
                             "it may have been interrupted; solve again")
    if not isinstance(summary, dict):
        return {}, Violation("summary", "summary.json", 1.0,
                             f"summary.json holds a {type(summary).__name__}, not an object")
    return summary, None


def _summary_numbers(summary: dict[str, Any], tol: float) -> list[Violation]:
    """A minimisation's bound is at most its objective; the MIP gap is theirs."""
    out: list[Violation] = []
    objective, bound, gap = summary.get("objective"), summary.get("bound"), summary.get("mip_gap")
    if not isinstance(objective, int | float):
        return [Violation("summary", "summary.json,objective", 1.0,
                          f"status '{summary.get('status')}' without an objective")]
    scale = max(1.0, abs(objective))
    if isinstance(bound, int | float):
        if bound > objective + tol * scale:
            out.append(Violation("summary", "summary.json,bound", bound - objective,
                                 f"bound {bound:.10g} above the objective {objective:.10g} of "
                                 "a minimisation"))
        if isinstance(gap, int | float):
            want = abs(objective - bound) / max(abs(objective), 1e-10)
            if abs(gap - want) > max(tol, 1e-9):
                out.append(Violation("summary", "summary.json,mip_gap", abs(gap - want),
                                     f"mip_gap {gap:.6g} is not |objective - bound| / "
                                     f"|objective| = {want:.6g}"))
    if summary.get("status") == "optimal" and isinstance(gap, int | float):
        allowed = (summary.get("options") or {}).get("mip_gap", 1e-6)
        if gap > allowed + tol:
            out.append(Violation("summary", "summary.json,status", gap,
                                 f"status 'optimal' with a gap {gap:.3g} above the requested "
                                 f"{allowed:.3g}"))
    return out


def _plan_file(out_dir: Path, tol: float) -> list[Violation]:
    """plan.json (what `offtake evaluate` prices) says what the tables say: the same signed
    offers, start years and contracted volumes."""
    path = out_dir / "plan.json"
    if not path.exists():
        return [Violation("plan.json", "plan.json", 1.0, "plan.json missing beside a plan")]
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        plan = {name: {tuple(e["index"]): float(e["value"]) for e in rows}
                for name, rows in raw.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return [Violation("plan.json", "plan.json", 1.0, f"plan.json is not a plan ({exc})")]
    tables = read_tables(out_dir)
    out: list[Violation] = []

    def compare(what: str, from_tables: dict[tuple, float], from_plan: dict[tuple, float]):
        for key in sorted(set(from_tables) | set(from_plan), key=str):
            a, b = from_tables.get(key, 0.0), from_plan.get(key, 0.0)
            if abs(a - b) > tol * max(1.0, abs(a)):
                index = ",".join(map(str, key))
                out.append(Violation("plan.json", f"plan.json,{what}[{index}]", abs(a - b),
                                     f"{what}[{index}] is {b:.10g} in plan.json, {a:.10g} in "
                                     "the tables"))

    offers = tables.get("offers")
    if offers is not None and not offers.empty:
        signed = dict(zip(offers["offer_id"], offers["signed"].astype(float), strict=True))
        compare("v_signed", {(o,): z for o, z in signed.items()}, plan.get("v_signed", {}))
        windowed = {k[0] for k in plan.get("v_start", {})}
        starts = {(o, int(float(y))): 1.0 for o, y in zip(offers["offer_id"],
                                                           offers["start_year"], strict=True)
                  if y != "" and signed.get(o, 0.0) > 0.5 and o in windowed}
        compare("v_start", starts, {k: v for k, v in plan.get("v_start", {}).items()
                                    if v > 0.5})
    contracts = tables.get("contracts")
    if contracts is not None and not contracts.empty:
        volume = {(o, b, int(float(y))): float(q) for o, b, y, q in zip(
            contracts["offer_id"], contracts["buyer"], contracts["year"],
            contracts["volume_t"], strict=True)}
        compare("v_volume_t", {k: v for k, v in volume.items() if abs(v) > tol},
                {(o, b, int(y)): v for (o, b, y), v in plan.get("v_volume_t", {}).items()
                 if abs(v) > tol})
    return out
