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
    from offtake.analysis.consortium import ConsortiumResult
    from offtake.analysis.decompose import DecomposeResult
    from offtake.analysis.reduce import Reduction
    from offtake.analysis.saa import SaaResult
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


RISK_TERM = "risk_cvar"
"""The cost term of the CVaR risk measure (lambda x CVaR): in the objective, not a cost."""


def costs_frame(r: Results) -> pd.DataFrame:
    """The buyers' cost by term and its total (expected), then, under CVaR, the risk term and
    the objective (total + risk) apart, then each third party's cost (not in the objective).
    Columns: term, line ('term', 'total', 'risk', 'objective' or 'third party'), cost."""
    money = f"cost ({r.currency})"
    terms = r.cost_terms()
    risk = terms.pop(RISK_TERM, None)
    rows = [(term, "term", value) for term, value in terms.items()]
    rows.append((TOTAL, "total", sum(terms.values())))
    if risk is not None:
        weight = r.risk.get("cvar_weight", 0.0) or 0.0
        alpha = r.risk.get("alpha", 0.0) or 0.0
        rows.append((f"risk: {weight:g} x CVaR {alpha:.0%}", "risk", risk))
        rows.append(("objective (buyer total + risk)", "objective",
                     sum(terms.values()) + risk))
    rows += [(f"fiscal cost paid by {payer}", "third party", value)
             for payer, value in r.fiscal_costs().items()]
    return _titled(pd.DataFrame(rows, columns=["term", "line", money]),
                   "Cost by term (discounted, expected)")


def buyer_costs_frame(r: Results) -> pd.DataFrame:
    """What each buyer pays of each cost term (costs.csv split by buyer; shared items by the
    rule of formulation.md, "Cost per buyer"): one row per buyer, a column per term that is
    not zero, the buyer's total, and a last row of totals (the objective, without a risk
    term). Money in the currency, discounted, expected."""
    title = f"Cost by buyer ({r.currency}, discounted, expected)"
    by = r.buyer_costs()
    if not by:
        return _titled(pd.DataFrame(), title, "no split by buyer in this folder")
    terms = [t for t in r.cost_terms() if any(abs(v.get(t, 0.0)) > 1e-9 for v in by.values())]
    rows = [[b, *(v.get(t, 0.0) for t in terms), sum(v.values())] for b, v in by.items()]
    rows.append([TOTAL, *(sum(v.get(t, 0.0) for v in by.values()) for t in terms),
                 sum(sum(v.values()) for v in by.values())])
    return _titled(pd.DataFrame(rows, columns=["buyer", *terms, "total"]), title,
                   "signing costs, prepayments, rebates and build costs shared by volume")


def contracts_frame(r: Results) -> pd.DataFrame:
    """Signed contracts: offer, supplier, buyer, then the contracted tonnes in each year. The
    contracted volume is decided once (first stage): the same in every scenario, so it is
    read from one scenario, never summed over them; deliveries that differ by scenario
    (take-or-pay shortfalls) are in `plan_frame`."""
    c = r.tables.get("contracts")
    n = c["scenario"].nunique() if c is not None and not c.empty else 1
    title = "Signed contracts (contracted t per year" + (
        f", the same in each of the {n} scenarios)" if n > 1 else ")")
    if c is None or c.empty:
        return _titled(pd.DataFrame(), title)
    c = c[(c["signed"] == 1) & (c["scenario"] == c["scenario"].iloc[0])]
    pivot = c.pivot_table(index=["offer_id", "supplier", "buyer"], columns="year",
                          values="volume_t", aggfunc="sum")
    frame = pivot.reset_index().rename(columns={"offer_id": "offer"})
    frame.columns = [c if isinstance(c, str) else int(c) for c in frame.columns]
    return _titled(frame, title)


def rules_frame(r: Results) -> pd.DataFrame:
    """Rule rows that bind or are violated, dearest shadow price first: rule, row, year,
    scenario ('' for supplier counts, which hold in all; 'expected' for in-expectation rows),
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
        "scenario": hot["scenario"].fillna("").astype(str),
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
    measures = ("RP", "EV", "EEV", "WS", "VSS", "EVPI")
    rows: list[tuple[str, Any, str]] = [(k, v.as_dict()[k], currency) for k in measures]
    if v.eev_alternative is not None:
        rows.append(("EEV of another EV optimum", v.eev_alternative, currency))
    for label, x in (("unmet-demand penalty in RP", v.rp_unmet),
                     ("unmet-demand penalty in EEV", v.eev_unmet)):
        if x is not None:
            rows.append((label, x, currency))
    caption = (f"VSS = EEV - RP; EVPI = RP - WS; EV problem: averaged "
               f"{'price indices' if v.ev_definition == 'parameters' else 'model data'}")
    vss = v.vss
    if vss is not None and vss > 0 and (v.eev_unmet or 0.0) - (v.rp_unmet or 0.0) > 0.5 * vss:
        caption += ("; most of VSS is demand the EV plan leaves unmet, priced at the "
                    "materials' unmet_penalty_per_kg: it is only as real as that penalty")
    if v.eev_alternative is not None and abs(v.eev_alternative - (v.eev or 0.0)) > 1e-6 * max(
            1.0, abs(v.eev or 0.0)):
        caption += "; the EV problem has tied optima with different EEV: VSS depends on it"
    return record(rows, f"Value of modelling uncertainty ({currency}, expected, discounted)",
                  caption)


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


def saa_frame(res: SaaResult, currency: str) -> pd.DataFrame:
    """Sample average approximation (`analysis.saa`): the lower bound from the replications,
    the candidate's out-of-sample upper bound, each with its confidence limit, and the two
    MMW gap intervals (paired and independent), in money and relative to the upper bound."""
    s = res.summary()
    conf, half = s["confidence"], 1 - (1 - s["confidence"]) / 2
    rows: list[tuple[str, Any, str]] = [
        ("replications x scenarios", f"{s['replications']} x {s['sample']}", ""),
        ("lower bound", s["lower_bound"], currency),
        (f"lower limit ({half:.1%})", s["lower_limit"], currency),
        ("upper bound", s["upper_bound"], currency),
        (f"upper limit ({half:.1%})", s["upper_limit"], currency),
        ("gap estimate", s["gap_estimate"], currency),
        (f"gap CI ({conf:.0%}, upper end)", None if s["gap_ci"] is None else s["gap_ci"][1],
         currency),
        ("gap CI relative", s["gap_ci_relative"], "of upper bound"),
        ("paired gap estimate", s["paired_gap_estimate"], currency),
        (f"paired gap CI ({conf:.0%}, upper end)",
         None if s["paired_gap_ci"] is None else s["paired_gap_ci"][1], currency),
        ("paired gap CI relative", s["paired_gap_ci_relative"], "of upper bound"),
        ("seconds per replication", s["seconds_per_replication"], "s"),
        ("seconds", s["seconds"], "s"),
    ]
    return record(rows, f"Sample average approximation ({currency}, expected, discounted)",
                  f"{s['evaluation']} out-of-sample scenarios; {s['rounds']} round(s), "
                  f"{s['stopped']}; candidate signs "
                  f"{', '.join(res.as_dict()['rounds'][-1]['signed']) or 'nothing'}")


def saa_rounds_frame(res: SaaResult) -> pd.DataFrame:
    """One row per round of `analysis.saa` (more than one when growing N): N, the lower
    bound and its limit, the paired gap estimate and the upper end of its interval, also
    relative to the round's in-sample cost of the candidate (what `grow_to` compares), the
    offers the round's candidate signs and its seconds."""
    rows = []
    for r in res.rounds:
        ref = r.in_sample
        paired = r.paired_gap
        rows.append({"N": r.sample, "lower bound": None if r.lower is None else r.lower.estimate,
                     "lower limit": None if r.lower is None else r.lower.limit,
                     "paired gap": None if paired is None else paired.estimate,
                     "paired gap CI upper end": None if paired is None else paired.limit,
                     "relative": (None if paired is None or not ref
                                  else paired.limit / abs(ref)),
                     "candidate signs": ", ".join(r.signed) or "nothing",
                     "seconds": r.seconds})
    return _titled(pd.DataFrame(rows), "SAA rounds",
                   f"stopped: {res.stopped}; relative: the paired interval's upper end over "
                   "the candidate's in-sample cost (its mean cost on the replications' "
                   "samples), what --grow-to compares")


def saa_plan_frame(plan: dict[str, dict]) -> pd.DataFrame:
    """The contracted volumes of a plan (`v_volume_t` of the signed offers) as offer and buyer
    x year, t per year."""
    signed = {k[0] if isinstance(k, tuple) else k for k, v in plan.get("v_signed", {}).items()
              if v is not None and v > 0.5}
    rows: dict[tuple[str, str], dict[int, float]] = {}
    for key, v in plan.get("v_volume_t", {}).items():
        offer, buyer, year = key
        if offer in signed:
            rows.setdefault((str(offer), str(buyer)), {})[int(year)] = float(v or 0.0)
    years = sorted({y for vols in rows.values() for y in vols})
    frame = pd.DataFrame([[o, b, *[vols.get(y, 0.0) for y in years]]
                          for (o, b), vols in sorted(rows.items())],
                         columns=["offer", "buyer", *years])
    return _titled(frame, "Plan: contracted tonnes per signed offer and year",
                   "first-stage volumes, the same in every scenario; what is delivered may "
                   "be less where a scenario curtails a contract (force majeure)")


def first_stage_frame(plan: dict[str, dict], skip: Sequence[str] = ("v_signed", "v_volume_t")
                      ) -> pd.DataFrame:
    """The other first-stage decisions of a plan that are not zero (starts, tiers, builds,
    stockpile orders, ...): variable, index, value."""
    rows = []
    for name, values in plan.items():
        if name in skip:
            continue
        for key, v in values.items():
            if v is not None and abs(v) > 1e-9:
                index = key if isinstance(key, tuple) else (key,)
                rows.append({"decision": name, "index": ", ".join(str(i) for i in index),
                             "value": float(v)})
    return _titled(pd.DataFrame(rows, columns=["decision", "index", "value"]),
                   "Other first-stage decisions (not zero)")


def reduction_frame(red: Reduction) -> pd.DataFrame:
    """Forward selection (`analysis.reduce`): each kept scenario in the order chosen, its new
    probability, how many scenarios were merged into it, and the Kantorovich distance to the
    original distribution once it was kept."""
    merged = {s: 0 for s in red.kept}
    for s, to in red.assigned.items():
        if s != to:
            merged[to] += 1
    rows = [{"step": i + 1, "scenario": s, "probability": red.probability[s],
             "merged": merged[s], "distance": red.distance[i]}
            for i, s in enumerate(red.kept)]
    rel = red.relative
    return _titled(pd.DataFrame(rows, columns=["step", "scenario", "probability", "merged",
                                               "distance"]),
                   f"Scenario reduction: {len(red.kept)} of {red.scenarios} scenarios",
                   "Kantorovich distance in standardised units"
                   + ("" if rel is None else f"; {rel:.1%} of keeping one scenario"))


def saa_replications_frame(res: SaaResult) -> pd.DataFrame:
    """One row per solve of every round: the candidate's sample (replication -1) and each
    replication: status, objective, dual bound, the candidate's average cost on the sample
    and the paired gap G_i = f_Ni(x^) - b_i, seconds."""
    rows = []
    for r in res.rounds:
        for x in [r.candidate, *r.replications]:
            rows.append({"sample": r.sample, "replication": x.index, "seed": x.seed,
                         "status": x.status, "objective": x.objective, "bound": x.bound,
                         "mip_gap": x.mip_gap, "candidate_cost": x.candidate_cost,
                         "gap": x.gap, "seconds": x.seconds})
    return _titled(pd.DataFrame(rows), "SAA replications",
                   "replication -1: the candidate's own sample")


# --- the portfolio, its cost and its origins (results.xlsx and the HTML report) -------------
def probabilities(r: Results) -> dict[str, float]:
    """Each scenario's probability (from the scenario costs table)."""
    sc = r.tables.get("scenario_costs")
    if sc is None or sc.empty:
        return {}
    return {str(s): float(p) for s, p in sc.groupby("scenario", sort=False)["probability"]
            .first().items()}


def _expected(frame: pd.DataFrame, keys: list[str], value: str, prob: dict[str, float]
              ) -> pd.Series:
    """Probability-weighted sum of `value` over scenarios, by `keys`."""
    if frame.empty:
        return pd.Series(dtype=float)
    w = frame["scenario"].astype(str).map(prob).fillna(0.0)
    return (frame[value] * w).groupby([frame[k] for k in keys]).sum()


def plan_frame(r: Results) -> pd.DataFrame:
    """The plan as offer x year: tonnes delivered under each signed contract, one row per
    offer and buyer with scenario 'every scenario' where the deliveries are the same in all
    scenarios, else one row per scenario."""
    title = "Plan: tonnes delivered per signed contract and year"
    c = r.tables.get("contracts")
    if c is None or c.empty:
        return _titled(pd.DataFrame(), title)
    c = c[c["signed"] == 1]
    keys = ["offer_id", "supplier", "buyer"]
    pivot = c.pivot_table(index=keys + ["scenario"], columns="year", values="delivered_t",
                          aggfunc="sum", fill_value=0.0)
    rows = []
    for key, grp in pivot.groupby(level=[0, 1, 2], sort=False):
        values = grp.to_numpy()
        if len(grp) == 1 or (abs(values - values[0]).max() <= 1e-6):
            rows.append([*key, "every scenario", *values[0]])
        else:
            rows += [[*key, idx[3], *row] for idx, row in zip(grp.index, values, strict=True)]
    years = [int(y) for y in pivot.columns]
    frame = pd.DataFrame(rows, columns=["offer", "supplier", "buyer", "scenario", *years])
    return _titled(frame, title, "t per year; contracted volumes are decided once, deliveries "
                                 "may differ by scenario")


def costs_by_buyer_frame(r: Results) -> pd.DataFrame:
    """Per buyer: payments under contracts (with shortfall), tariffs, spot purchases and the
    penalty of unmet demand, expected over scenarios and summed over years (not discounted:
    the objective's terms by buyer before discounting)."""
    prob = probabilities(r)
    money = r.currency
    parts: dict[str, pd.Series] = {}
    c = r.tables.get("contracts")
    if c is not None and not c.empty:
        c = c.assign(_pay=c["payment"] + c["shortfall_payment"])
        parts[f"contracts ({money})"] = _expected(c, ["buyer"], "_pay", prob)
        parts[f"tariffs on contracts ({money})"] = _expected(c, ["buyer"], "tariff", prob)
    s = r.tables.get("spot")
    if s is not None and not s.empty:
        parts[f"spot purchases ({money})"] = _expected(s, ["buyer"], "cost", prob)
        parts[f"tariffs on spot ({money})"] = _expected(s, ["buyer"], "tariff", prob)
    u = r.tables.get("unmet")
    if u is not None and not u.empty:
        parts[f"unmet demand penalty ({money})"] = _expected(u, ["buyer"], "penalty", prob)
    frame = pd.DataFrame(parts).fillna(0.0)
    frame[f"total ({money})"] = frame.sum(axis=1)
    frame = frame.rename_axis("buyer").reset_index()
    return _titled(frame, f"Cost by buyer ({money}, expected, not discounted)",
                   "purchases and penalties summed over the years; signing costs, "
                   "prepayments, rebates and freight are in the cost by term")


def origin_frame(r: Results) -> pd.DataFrame:
    """Tonnes delivered with a step at each (stage, country) and their share of the material
    delivered (expected, all buyers and years pooled)."""
    o = r.tables.get("origin")
    title = "Origin of the tonnes delivered, by stage and country"
    if o is None or o.empty:
        return _titled(pd.DataFrame(), title)
    prob = probabilities(r)
    tonnes = _expected(o, ["material", "stage", "country"], "tonnes", prob)
    flows = r.tables["flows"]
    arrived = flows[flows["to_node"] == flows["buyer"]]
    total = _expected(arrived, ["material"], "flow_t", prob)
    frame = tonnes.rename("tonnes").reset_index()
    frame["share"] = [t / total.get(m, float("nan")) for m, t in
                      zip(frame["material"], frame["tonnes"], strict=True)]
    from offtake.domain.origin import STAGE_ORDER

    frame = frame.sort_values(["material", "stage", "tonnes"], ascending=[True, True, False],
                              key=lambda col: col.map(STAGE_ORDER) if col.name == "stage"
                              else col)
    return _titled(frame.reset_index(drop=True), title,
                   "t expected over scenarios, all years and buyers; share of the material "
                   "delivered (a tonne whose inputs passed a stage in two countries counts "
                   "in both)")


def origin_links_frame(r: Results) -> pd.DataFrame:
    """Tonnes passing from one (stage, country) to the next on their way to the buyers,
    expected over scenarios and summed over years: the links of an origin Sankey."""
    from offtake.domain.origin import STAGE_ORDER, steps

    cols = ["material", "from_stage", "from_country", "to_stage", "to_country", "tonnes"]
    flows = r.tables.get("flows")
    if flows is None or flows.empty:
        return _titled(pd.DataFrame(columns=cols), "Origin links")
    prob = probabilities(r)
    arrived = flows[flows["to_node"] == flows["buyer"]]
    by_tag = _expected(arrived, ["material", "tag"], "flow_t", prob)
    links: dict[tuple[str, str, str, str, str], float] = {}
    for key, t in by_tag.items():
        mat, tag = str(key[0]), str(key[1])  # type: ignore[index]
        chain = sorted(steps(str(tag)), key=lambda s: (STAGE_ORDER[s[0]], s[1]))
        stages = sorted({s for s, _ in chain}, key=STAGE_ORDER.__getitem__)
        for a, b in zip(stages, stages[1:], strict=False):
            src = [x for x in chain if x[0] == a]
            dst = [x for x in chain if x[0] == b]
            share = t / (len(src) * len(dst))
            for (sa, ca) in src:
                for (sb, cb) in dst:
                    link = (str(mat), sa, ca, sb, cb)
                    links[link] = links.get(link, 0.0) + share
    frame = pd.DataFrame([(*k, v) for k, v in links.items() if v > 1e-9], columns=cols)
    return _titled(frame, "Origin links: tonnes from one stage and country to the next",
                   "t expected over scenarios, all years and buyers")


def hhi(shares: Sequence[float]) -> float:
    """Herfindahl-Hirschman index of shares (fractions summing to 1): 1 = one source."""
    return float(sum(s * s for s in shares))


def concentration_frame(r: Results) -> pd.DataFrame:
    """Concentration of the tonnes delivered: per material and stage, the HHI over countries
    and the largest single-country share; per material, the HHI over the selling companies
    (contracts by the seller's company, each spot market as one seller)."""
    rows = []
    o = origin_frame(r)
    for (mat, stage), grp in (o.groupby(["material", "stage"], sort=False) if not o.empty
                              else []):
        total = grp["tonnes"].sum()
        shares = (grp["tonnes"] / total).tolist()
        top = grp.iloc[int(grp["tonnes"].to_numpy().argmax())]
        rows.append((mat, stage, "countries", hhi(shares), top["country"],
                     float(top["tonnes"] / total), len(grp)))
    prob = probabilities(r)
    sellers = []
    c = r.tables.get("contracts")
    if c is not None and not c.empty:
        sellers.append(_expected(c.assign(seller=c["company"]), ["material", "seller"],
                                 "delivered_t", prob))
    s = r.tables.get("spot")
    if s is not None and not s.empty:
        sellers.append(_expected(s.assign(seller="spot " + s["market"].astype(str)),
                                 ["material", "seller"], "volume_t", prob))
    if sellers:
        by = pd.concat(sellers)
        by = by.groupby(level=[0, 1]).sum()
        for mat, grp in by.groupby(level=0):
            grp = grp[grp > 1e-9]
            if grp.empty:
                continue
            total = grp.sum()
            rows.append((mat, "seller", "companies", hhi((grp / total).tolist()),
                         grp.idxmax()[1], float(grp.max() / total), len(grp)))
    frame = pd.DataFrame(rows, columns=["material", "stage", "over", "HHI", "largest",
                                        "largest share", "count"])
    return _titled(frame, "Concentration (HHI, 0-1; 1 = a single source)",
                   "HHI = sum of squared shares of the tonnes delivered (expected, all years); "
                   "above 0.25 is highly concentrated")


def emissions_frame(r: Results) -> pd.DataFrame:
    """Emissions of what each buyer receives (emissions.csv), by route (origin tag) and in
    total per buyer and material: tonnes delivered and t CO2e, expected over the scenarios
    and summed over the years, and the intensity in kg CO2e per kg."""
    e = r.tables.get("emissions")
    title = "Emissions of what each buyer receives (t CO2e, expected, all years)"
    if e is None or e.empty:
        return _titled(pd.DataFrame(), title)
    prob = probabilities(r)
    keys = ["buyer", "material", "tag"]
    frame = pd.DataFrame({"delivered t": _expected(e, keys, "delivered_t", prob),
                          "t CO2e": _expected(e, keys, "emissions_t", prob)}).reset_index()
    frame = frame.rename(columns={"tag": "route"})
    totals = (frame.groupby(["buyer", "material"], as_index=False)[["delivered t", "t CO2e"]]
              .sum().assign(route="all routes"))
    out = pd.concat([totals, frame], ignore_index=True).sort_values(
        ["buyer", "material", "t CO2e"], ascending=[True, True, False], kind="stable")
    out["kg CO2e per kg"] = out["t CO2e"] / out["delivered t"].where(out["delivered t"] > 0)
    out = out[["buyer", "material", "route", "delivered t", "t CO2e", "kg CO2e per kg"]]
    return _titled(out.reset_index(drop=True), title,
                   "each route's intensity carried along the chain by mass balance "
                   "(formulation.md, Emissions and concentration); 'all routes' is the buyer's "
                   "total, the base of a carbon price")


def concentration_by_group_frame(r: Results) -> pd.DataFrame:
    """Concentration per buyer (and pooled) from concentration.csv: for each material, stage
    and `over` (country or company), the HHI and the largest share averaged over years and
    scenarios with weights probability x tonnes, the highest HHI of a year, and the unit
    that is largest most often (by weight)."""
    c = r.tables.get("concentration")
    title = "Concentration by buyer and stage (HHI, 0-1; 1 = a single source)"
    if c is None or c.empty:
        return _titled(pd.DataFrame(), title)
    prob = probabilities(r)
    c = c.assign(w=c["scenario"].astype(str).map(prob).fillna(0.0) * c["tonnes"])
    rows = []
    for (g, mat, stage, over), grp in c.groupby(["group", "material", "stage", "over"],
                                                sort=False):
        w = grp["w"].sum()
        if w <= 0:
            continue
        top = grp.groupby("largest")["w"].sum().idxmax()
        rows.append((g, mat, stage, over, float((grp["w"] * grp["hhi"]).sum() / w),
                     float(grp["hhi"].max()), top,
                     float((grp["w"] * grp["largest_share"]).sum() / w),
                     int(grp["count"].max())))
    frame = pd.DataFrame(rows, columns=["group", "material", "stage", "over", "HHI",
                                        "HHI worst year", "largest", "largest share",
                                        "count"])
    return _titled(frame, title,
                   "supply made at each stage for the group (contracts, tolling, spot); HHI "
                   "and largest share weighted by probability x tonnes over years and "
                   "scenarios; above 0.25 is highly concentrated")


def scenario_costs_frame(r: Results) -> pd.DataFrame:
    """Each scenario's probability, total cost and cost by term (discounted)."""
    sc = r.tables.get("scenario_costs")
    title = f"Cost in each scenario ({r.currency}, discounted)"
    if sc is None or sc.empty:
        return _titled(pd.DataFrame(), title)
    pivot = sc.pivot_table(index=["scenario", "probability"], columns="term", values="value",
                           aggfunc="sum", sort=False)
    pivot.insert(0, "total", pivot.sum(axis=1))
    frame = pivot.reset_index()
    frame.columns.name = None
    return _titled(frame, title)


def fiscal_frame(r: Results) -> pd.DataFrame:
    """Third parties' cost (floor top-ups net of upside returned) per payer, not in the
    buyer's objective."""
    rows = list(r.fiscal_costs().items())
    return _titled(pd.DataFrame(rows, columns=["payer", f"cost ({r.currency})"]),
                   f"Fiscal cost per payer ({r.currency}, discounted, expected)",
                   "paid by third parties (e.g. a government's price floor), outside the "
                   "buyer's cost")


def stockpiles_frame(r: Results) -> pd.DataFrame:
    """Each stockpile (stockpiles.csv): holder, material, tonnes bought and released over the
    horizon and the level at its end (expected over the scenarios), and the years in which
    some scenario released from it."""
    title = "Stockpiles (t, expected over the scenarios)"
    columns = ["stockpile", "holder", "material", "bought (t)", "released (t)",
               "end level (t)", "released in"]
    st = r.tables.get("stockpiles")
    if st is None or st.empty:
        return _titled(pd.DataFrame(columns=columns), title)
    sc = r.tables.get("scenario_costs")
    prob = (dict(zip(sc["scenario"], sc["probability"].astype(float), strict=True))
            if sc is not None and not sc.empty else {})
    w = st["scenario"].map(lambda s: prob.get(s, 1.0))
    unmet = r.tables.get("unmet")
    last = int(max([*st["year"], *([] if unmet is None else unmet["year"])]))
    rows = []
    for p, g in st.groupby("stockpile", sort=True):
        wg = w[g.index]
        released = sorted({int(y) for y, x in zip(g["year"], g["released_t"], strict=True)
                           if x > 0})
        rows.append((p, g["holder"].iloc[0], g["material"].iloc[0],
                     float((g["purchased_t"] * wg).sum()), float((g["released_t"] * wg).sum()),
                     float((g["level_t"] * wg)[g["year"] == last].sum()),
                     ", ".join(str(y) for y in released)))
    return _titled(pd.DataFrame(rows, columns=columns), title,
                   "levels kept per origin tag in stockpiles.csv; a government's costs are "
                   "its fiscal cost (fiscal_stockpile)")


# --- consortia (offtake consortium) ----------------------------------------------------------
def consortium_frame(res: ConsortiumResult) -> pd.DataFrame:
    """The consortium in one record: members, market, coalitions solved (and read back from
    the journal), the grand coalition's cost, gap and plants, the stand-alone total, the
    savings of pooling, whether the core is empty and the least-core epsilon."""
    d = res.as_dict()
    g = d["grand_coalition"]
    money = res.currency
    rows: list[tuple[str, Any, str]] = [
        ("members", ", ".join(res.members), ""),
        ("market", res.options.market, ""),
        ("coalitions", d["coalitions"], f"solved, {d['resumed']} read back from the journal"),
        ("grand coalition cost", g["cost"], money),
        ("grand coalition gap", g["gap"], "relative"),
        ("plants built by all", ", ".join(g["built"]) or "none", ""),
        ("stand-alone total", d["stand_alone_sum"], money),
        ("savings of pooling", d["savings"], money),
        ("largest gap of a coalition", d["largest_gap"], "relative"),
        ("core empty", d["core_empty"], ""),
        ("least-core epsilon", d["least_core_epsilon"], money),
        ("time", d["seconds"], "s"),
    ]
    if d["failed"]:
        rows.append(("coalitions without a solution", ", ".join(d["failed"]),
                     "no allocation"))
    return record(rows, f"Consortium of {len(res.members)} ({money}, discounted, expected)")


def coalitions_frame(res: ConsortiumResult) -> pd.DataFrame:
    """One row per coalition: its cost, its members' stand-alone total and the saving, gap,
    the plants it builds."""
    frame = res.coalitions_frame()[["coalition", "status", "cost", "stand_alone_sum",
                                    "saving", "gap", "built"]]
    return _titled(frame.rename(columns={"stand_alone_sum": "alone"}),
                   f"Coalitions ({res.currency}; market: {res.options.market})",
                   "cost of each coalition buying as the market option says; alone = the "
                   "sum of its members' stand-alone costs")


def allocation_frame(res: ConsortiumResult) -> pd.DataFrame:
    """One row per buyer: its stand-alone cost and its share of the grand coalition's cost
    under each method; a last row per method says whether it is in the core and which
    coalition it overcharges most."""
    title = f"Allocation of the grand coalition's cost ({res.currency})"
    if not res.allocations:
        return _titled(pd.DataFrame(), title, "not every coalition was solved: no allocation")
    alone = res.stand_alone()
    rows = [[b, alone[b], *(a.cost[b] for a in res.allocations)] for b in res.members]
    rows.append(["in the core", None, *(a.in_core for a in res.allocations)])
    rows.append(["worst coalition", None, *(
        "" if a.in_core else f"{'+'.join(a.worst)} +{a.max_excess:,.0f}"
        for a in res.allocations)])
    eps = res.least_core_epsilon
    caption = ("the core is empty; least-core epsilon " + f"{eps:,.0f}" if eps else
               "the core is not empty")
    return _titled(pd.DataFrame(rows, columns=["buyer", "stand alone",
                                               *(a.method for a in res.allocations)]),
                   title, caption)


def why_not_frame(table: pd.DataFrame, currency: str) -> pd.DataFrame:
    """Offers left unsigned and build options left unbuilt (`analysis.whynot`): what forcing
    each in costs, and the price (per kg) or build cost at which it would enter; dearest
    last."""
    title = f"Why not signed, why not built ({currency})"
    if table.empty:
        return _titled(pd.DataFrame(), title, "every offer is signed and every option built")
    cols = ["kind", "id", "status", "cost_of_forcing", "break_even_price_per_kg",
            "break_even_build_cost", "note"]
    frame = table.sort_values("cost_of_forcing", na_position="last")[cols]
    return _titled(frame.reset_index(drop=True), title,
                   "break-even: the price (the same cut in every year) or build cost at which "
                   "the forced plan costs no more than the optimum")
