"""The tables a person reads, as data: one function per report, each returning a pandas
DataFrame with clear column names and units (money in the instance's currency, discounted;
quantities in tonnes; shares as fractions), title and caption in `frame.attrs`.

Views render these frames: the terminal (`offtake.report.console`) now, HTML and Excel later;
none of them computes anything of its own. Two shapes:

* row tables (findings, costs, contracts, rules, ...): one row per item;
* records (run summary, risk, value of uncertainty, evaluation, decomposition): one row per
  measure, columns `measure`, `value` (numbers stay numbers, None where there is none) and
  `unit`.

Reads only result objects (`Results`, `CheckReport`, `Diagnosis`, the analyses' results) and
`Finding`s; writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from offtake.domain.findings import Finding

if TYPE_CHECKING:  # result types only: importing them would load Pyomo into `validate`
    from offtake.analysis.decompose import DecomposeResult
    from offtake.analysis.stochastic import StochasticValue
    from offtake.check import CheckReport
    from offtake.pipeline.diagnose import Diagnosis
    from offtake.results.tables import Results

RECORD_COLUMNS = ["measure", "value", "unit"]
TOTAL = "buyer total"
"""The `term` of the costs table's total line."""


def _titled(frame: pd.DataFrame, title: str, caption: str = "") -> pd.DataFrame:
    frame.attrs["title"] = title
    frame.attrs["caption"] = caption
    return frame


def record(rows: Sequence[tuple[str, Any, str]], title: str, caption: str = ""
           ) -> pd.DataFrame:
    """A record frame from (measure, value, unit) rows; values keep their Python types."""
    frame = pd.DataFrame({"measure": [r[0] for r in rows],
                          "value": pd.Series([r[1] for r in rows], dtype=object),
                          "unit": [r[2] for r in rows]}, columns=RECORD_COLUMNS)
    return _titled(frame, title, caption)


# --- inputs ----------------------------------------------------------------------------------
def findings_frame(findings: Sequence[Finding], title: str = "Findings") -> pd.DataFrame:
    """One row per finding: severity, code, location, message, hint, file, and the sheet
    and cell of a spreadsheet ('' for other files)."""
    cols = ["severity", "code", "location", "message", "hint", "file", "cell"]
    frame = pd.DataFrame([[f.severity, f.code, f.location, f.message, f.hint, f.file, f.cell]
                          for f in findings], columns=cols)
    return _titled(frame, title)


# --- one solve -------------------------------------------------------------------------------
def run_summary_frame(r: Results) -> pd.DataFrame:
    """Status, objective, bound and gap, solver, timings, model size, checker."""
    rows: list[tuple[str, Any, str]] = [
        ("status", r.status, ""),
        ("message", r.message, ""),
        ("objective", r.objective, r.currency),
        ("bound", r.bound, r.currency),
        ("MIP gap", r.mip_gap, "relative"),
        ("solver", r.solver, ""),
        ("solver version", r.solver_version, ""),
        ("build time", r.build_seconds, "s"),
        ("solve time", r.solve_seconds, "s"),
    ]
    if r.model_size:
        rows += [(f"model {k}", r.model_size[k], "")
                 for k in ("rows", "columns", "nonzeros", "binaries")]
    if r.violations is not None:
        rows.append(("checker violations", r.violations, ""))
    return record(rows, f"offtake: {r.instance_name}")


def costs_frame(r: Results) -> pd.DataFrame:
    """The objective by cost term, their total, and each third party's cost (not in the
    objective). Columns: term, line ('term', 'total' or 'third party'), cost (currency)."""
    money = f"cost ({r.currency})"
    terms = r.cost_terms()
    rows = [(term, "term", value) for term, value in terms.items()]
    rows.append((TOTAL, "total", sum(terms.values())))
    rows += [(f"fiscal floor support paid by {payer}", "third party", value)
             for payer, value in r.fiscal_costs().items()]
    return _titled(pd.DataFrame(rows, columns=["term", "line", money]),
                   "Cost by term (discounted, expected)")


def contracts_frame(r: Results) -> pd.DataFrame:
    """Signed contracts: offer, supplier, buyer, then tonnes in each year (summed over the
    scenarios of the contracts table)."""
    title = "Signed contracts (t per year)"
    c = r.tables.get("contracts")
    if c is None or c.empty:
        return _titled(pd.DataFrame(), title)
    c = c[c["signed"] == 1]
    pivot = c.pivot_table(index=["offer_id", "supplier", "buyer"], columns="year",
                          values="volume_t", aggfunc="sum")
    frame = pivot.reset_index().rename(columns={"offer_id": "offer"})
    frame.columns = [c if isinstance(c, str) else int(c) for c in frame.columns]
    return _titled(frame, title)


def rules_frame(r: Results) -> pd.DataFrame:
    """Rule rows that bind or are violated, dearest shadow price first: rule, row, year,
    lhs, bound and their unit, share (fraction), shadow price per unit and per percentage
    point (currency)."""
    title = f"Binding rules (shadow price, {r.currency})"
    rules = r.tables.get("rules")
    if rules is None or rules.empty:
        return _titled(pd.DataFrame(), title, "no rules")
    hot = rules[(rules["binding"].astype(str) == "True") | (rules["violation"] > 1e-6)]
    hot = hot.assign(_p=hot["shadow_price"].fillna(0).abs()).sort_values("_p", ascending=False)
    year = pd.to_numeric(hot["year"].replace("", None), errors="coerce").astype("Int64")
    frame = pd.DataFrame({
        "rule": hot["rule_id"], "row": hot["row"].astype(str), "year": year,
        "lhs": hot["lhs"], "bound": hot["bound"], "unit": hot["unit"], "share": hot["share"],
        f"shadow price per unit ({r.currency})": hot["shadow_price"],
        f"shadow price per pp ({r.currency})": hot["shadow_price_per_pp"],
    }).reset_index(drop=True)
    bases = [b for b in rules["dual_basis"].dropna().unique() if b]
    return _titled(frame, title, f"{len(hot)} binding or violated of {len(rules)} rows; "
                                 f"shadow prices from {bases[0] if bases else '-'}")


def risk_frame(r: Results) -> pd.DataFrame:
    """The distribution of the scenario cost of the chosen portfolio."""
    k = r.risk
    rows = [("mean", k["mean"], r.currency), ("std", k["std"], r.currency),
            (f"VaR {k['alpha']:.0%}", k["var"], r.currency),
            (f"CVaR {k['alpha']:.0%}", k["cvar"], r.currency),
            ("best", k["best"], r.currency), ("worst", k["worst"], r.currency)]
    return record(rows, f"Scenario cost distribution ({r.currency}, discounted)")


def violations_frame(report: CheckReport) -> pd.DataFrame:
    """The independent checker's violations: constraint, index, amount, message."""
    frame = pd.DataFrame([[v.constraint, v.index, v.amount, v.message]
                          for v in report.violations],
                         columns=["constraint", "index", "amount", "message"])
    return _titled(frame, "Checker violations")


def diagnosis_frame(diag: Diagnosis) -> pd.DataFrame:
    """Rules that must move: rule, kind, row, year, by how much (in its unit and in percentage
    points of the share where it is one), message."""
    title = ("Rules that cannot all hold (proved from the data)" if diag.stage == "presolve"
             else "Rules that must move (least total violation)")
    frame = pd.DataFrame([[c.rule_id, c.kind, c.row, c.year, c.amount, c.unit,
                           c.percentage_points, c.message] for c in diag.conflicts],
                         columns=["rule", "kind", "row", "year", "move by", "unit",
                                  "move by (pp)", "message"])
    frame["year"] = frame["year"].astype("Int64")
    frame["move by (pp)"] = frame["move by (pp)"].astype(object)
    return _titled(frame, title, diag.note)


# --- analyses ----------------------------------------------------------------------------------
def compare_frame(frame: pd.DataFrame, currency: str) -> pd.DataFrame:
    """Cost of compliance (from `analysis.compliance.compare`): the relaxed rule(s), the
    objective with and without, their difference, and the statuses."""
    out = pd.DataFrame({
        "relaxed rule(s)": frame["relaxed"],
        f"with ({currency})": frame["objective_with"].astype(object),
        f"without ({currency})": frame["objective_without"].astype(object),
        f"cost of compliance ({currency})": frame["cost_of_compliance"].astype(object),
        "status with": frame["status_with"], "status without": frame["status_without"],
    })
    return _titled(out, f"Cost of compliance ({currency}, discounted, expected)")


def value_frame(v: StochasticValue, currency: str) -> pd.DataFrame:
    """RP, EV, EEV, WS, VSS and EVPI (None where a solve failed)."""
    rows = [(k, x, currency) for k, x in v.as_dict().items() if k != "status"]
    return record(rows, f"Value of modelling uncertainty ({currency}, expected, discounted)",
                  "VSS = EEV - RP; EVPI = RP - WS")


def evaluation_frame(report: dict[str, Any], currency: str) -> pd.DataFrame:
    """A fixed portfolio over many scenarios (from `analysis.evaluate.evaluate_portfolio`):
    expected cost, its distribution (when it can be carried out in every scenario), and the
    scenarios where it cannot (a list)."""
    risk = report["risk"]
    rows: list[tuple[str, Any, str]] = [("expected cost", report["expected_cost"], currency)]
    names = {"std": "std", "var": "VaR", "cvar": "CVaR", "best": "best", "worst": "worst"}
    for key, name in names.items():
        if key in risk:
            label = f"{name} {risk['alpha']:.0%}" if key in ("var", "cvar") else name
            rows.append((label, risk[key], currency))
    if report["infeasible_in"]:
        rows.append(("cannot be carried out in", list(report["infeasible_in"]), "scenarios"))
    return record(rows, f"Portfolio over {report['scenarios']} scenarios ({currency}, "
                        "discounted)", f"evaluated in {report['seconds']['total']:.1f} s")


def decomposition_frame(res: DecomposeResult, currency: str) -> pd.DataFrame:
    """Status, objective, lower bound, gap, iterations, scenario groups in the master."""
    rows: list[tuple[str, Any, str]] = [
        ("status", res.status, ""), ("objective", res.objective, currency),
        ("lower bound", res.bound, currency), ("gap", res.gap, "relative"),
        ("iterations", res.iterations, ""),
        ("scenario groups in the master", len(res.representatives), ""),
    ]
    return record(rows, f"Decomposition ({currency}, expected, discounted)",
                  f"{res.seconds['total']:.1f} s")
