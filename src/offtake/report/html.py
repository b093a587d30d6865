"""`offtake report DIR`: one self-contained HTML file that a CFO or a minister's adviser can
read without the tool, and the same figures as PNG files beside it.

Sections: the decision in one paragraph, the portfolio by supplier and year, a cost waterfall
by term (and the cost by buyer), the origin of the tonnes from mine to magnet by country (a
Sankey per material), binding rules with their shadow prices, the scenario cost distribution
(with the value of the stochastic solution when `offtake value` wrote value.json in DIR),
concentration (HHI by stage over countries and companies, the largest single source), fiscal
cost per payer. Renders the frames of `offtake.report.tables` and the figures of
`offtake.report.plots`; reads only the output folder (`Results.read`); computes nothing of
its own. Pictures are embedded as base64 PNG, so the file opens anywhere, offline.

The folder of `offtake saa` gets its own report (`build_saa_report`): the candidate plan and
its certified quality (lower and upper bounds with their confidence limits, both MMW gap
intervals), the replications, the out-of-sample cost distribution and the rounds, read back
from saa.json, evaluation.csv and plan.json (`analysis.saa.read_saa`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from matplotlib.figure import Figure

from offtake.report import plots, tables
from offtake.report.workbook import number_format
from offtake.results.folder import value_of_run, written_by
from offtake.results.tables import Results

if TYPE_CHECKING:
    from offtake.analysis.saa import SaaResult

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1000px;
       margin: 2em auto; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc;
     padding-bottom: 0.2em; margin-top: 2em; }
p.lead { font-size: 1.1em; background: #f3f7fb; padding: 0.8em 1em; border-left: 4px solid
         #2a6ebb; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.6em 0 1em; }
th, td { border: 1px solid #ddd; padding: 3px 7px; } th { background: #eef3f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; } .note { color: #666; font-size: 0.9em; }
.missing { color: #a33; }
"""


@dataclass
class Report:
    """The HTML text and the figures (name -> PNG bytes) of one report."""

    html: str
    figures: dict[str, bytes] = field(default_factory=dict)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _embed(figs: dict[str, bytes], name: str, fig: Figure, alt: str) -> str:
    """Keep the figure's PNG under `name` and return it as an embedded <img>."""
    figs[name] = _png(fig)
    data = base64.b64encode(figs[name]).decode("ascii")
    return f"<p><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'/></p>"


def _money(x: float | None, currency: str) -> str:
    return "-" if x is None else f"{x / 1e6:,.1f} million {currency}"


def _table(frame: pd.DataFrame, currency: str, limit: int | None = None) -> str:
    """A frame as an HTML table: numbers right-aligned, shares as %, money with thousands."""
    if frame.empty:
        return "<p class='note'>(nothing to show)</p>"
    shown = frame if limit is None else frame.head(limit)
    record = list(frame.columns) == tables.RECORD_COLUMNS
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = []
    for _, row in shown.iterrows():
        cells = []
        for col in shown.columns:
            v = row[col]
            fmt = None if record else number_format(str(col), currency,
                                                    frame.attrs.get("title", ""))
            if record and col == "value" and str(row["unit"]).startswith("of "):
                fmt = "0.000%"  # a share of something: 'of upper bound'
            if _is_year(col, v):
                cells.append(f"<td class='num'>{int(v)}</td>")  # 2026, not 2,026
                continue
            cells.append(_cell(v, fmt, isinstance(col, int)))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = "" if limit is None or len(frame) <= limit else \
        f"<p class='note'>first {limit} of {len(frame)} rows</p>"
    cap = frame.attrs.get("caption")
    caption = f"<p class='note'>{html.escape(cap)}</p>" if cap else ""
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}{caption}"


def _is_year(col: Any, v: Any) -> bool:
    """A year column (`year`, `first_year`, `start_year`, ...) holding a whole number."""
    return (isinstance(col, str) and (col == "year" or col.endswith("_year"))
            and isinstance(v, int | float) and not isinstance(v, bool) and not pd.isna(v)
            and float(v).is_integer())


def _cell(v: Any, fmt: str | None, tonnes: bool) -> str:
    if v is None or (not isinstance(v, list | str) and pd.isna(v)):
        return "<td></td>"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return f"<td>{html.escape(str(v))}</td>"
    if fmt == "0.0%":
        text = f"{v:.1%}"
    elif fmt == "0.000%":
        text = f"{v:.3%}"
    elif fmt in ("0.000",):
        text = f"{v:.3f}"
    elif fmt == "#,##0" or abs(v) >= 1000:
        text = f"{v:,.0f}"
    elif tonnes:
        text = f"{v:,.1f}"
    else:
        text = f"{v:,.4g}"
    return f"<td class='num'>{text}</td>"


def _decision(r: Results, plan: pd.DataFrame, value: dict | None) -> str:
    """The decision in one paragraph."""
    cur = r.currency
    if not r.has_solution:
        return (f"No plan: the solver ended with status <b>{html.escape(r.status)}</b>"
                f"{' (' + html.escape(r.message) + ')' if r.message else ''}.")
    years = [c for c in plan.columns if isinstance(c, int)]
    offers = []
    if not plan.empty:
        prob = tables.probabilities(r)
        rows = plan.assign(_w=[1.0 if s == "every scenario" else prob.get(str(s), 0.0)
                               for s in plan["scenario"]])
        total = (rows[years].sum(axis=1) * rows["_w"]).groupby(
            [rows["offer"], rows["supplier"]]).sum().sort_values(ascending=False)
        offers = [f"{html.escape(str(k[0]))} ({html.escape(str(k[1]))}, {t:,.0f} t)"  # type: ignore[index]
                  for k, t in total.items()]
    n_sc = len(tables.probabilities(r))
    terms = r.cost_terms()
    buyer = sum(v for k, v in terms.items() if k != "risk_cvar")
    text = (f"Sign <b>{len(offers)}</b> contract(s): {', '.join(offers) or 'none'}"
            f" (tonnes delivered over {years[0]}-{years[-1]}"
            f"{', expected' if n_sc > 1 else ''}). "
            if years else "Sign no contract. ")
    text += (f"The buyers' cost is <b>{_money(buyer, cur)}</b> (discounted"
             f"{', expected over ' + str(n_sc) + ' scenarios' if n_sc > 1 else ''}")
    if r.mip_gap is not None:
        text += f"; proven within {r.mip_gap:.2%} of the best possible"
    text += ")."
    if "risk_cvar" in terms:
        text += (f" The objective adds a risk term of {_money(terms['risk_cvar'], cur)} "
                 f"(weight x CVaR {r.risk.get('alpha', 0):.0%}).")
    fiscal = r.fiscal_costs()
    if fiscal:
        text += " Third parties pay " + ", ".join(
            f"{_money(v, cur)} ({html.escape(p)})" for p, v in fiscal.items()) + \
            " outside that cost."
    rules = tables.rules_frame(r)
    col = f"shadow price per unit ({cur})"
    if not rules.empty and col in rules and rules[col].abs().max() > 0:
        top = rules.iloc[0]
        text += (f" The costliest rule is <b>{html.escape(str(top['rule']))}</b> "
                 f"({abs(top[col]):,.0f} {cur} per tonne of its limit).")
    if value and value.get("VSS") is not None:
        text += (f" Planning for the scenarios rather than for the average saves "
                 f"{_money(value['VSS'], cur)} (VSS).")
        extra = (value.get("unmet_penalty_in_EEV") or 0.0) - (
            value.get("unmet_penalty_in_RP") or 0.0)
        if value["VSS"] > 0 and extra > 0.5 * value["VSS"]:
            text += (f" Of that, {_money(extra, cur)} is demand the average-scenario plan "
                     "leaves unmet, priced at the materials' unmet-demand penalty: the VSS is "
                     "only as real as that penalty.")
    unmet = r.tables.get("unmet")
    if unmet is not None and not unmet.empty and (unmet["unmet_t"] > 1e-6).any():
        text += (f" <span class='missing'>Demand left unmet: "
                 f"{unmet['unmet_t'].sum():,.0f} t (all scenarios).</span>")
    return text


def build_report(out_dir: str | Path) -> Report:
    """The report of the output folder of `offtake solve` (value.json of `offtake value`
    in the same folder is used when present), or of `offtake saa` (`build_saa_report`)."""
    out = Path(out_dir)
    if written_by(out) == "saa":
        return build_saa_report(out)
    r = Results.read(out)
    cur = r.currency
    value, stale = value_of_run(out, r.instance_sha256, r.options)
    figs: dict[str, bytes] = {}
    parts: list[str] = []

    def figure(name: str, fig: Figure, alt: str) -> str:
        return _embed(figs, name, fig, alt)

    plan = tables.plan_frame(r)
    parts.append(f"<h1>{html.escape(r.instance_name)}: which contracts to sign</h1>")
    parts.append(f"<p class='note'>status {html.escape(r.status)}; objective "
                 f"{_money(r.objective, cur)}; solver {html.escape(str(r.solver))} "
                 f"{html.escape(str(r.solver_version))}; instance SHA-256 "
                 f"{html.escape(str(r.instance_sha256))[:12]}</p>")
    parts.append(f"<p class='lead'>{_decision(r, plan, value)}</p>")
    if not r.has_solution:
        return Report(_page(r, parts), figs)

    prob = tables.probabilities(r)
    parts.append("<h2>Portfolio by supplier and year</h2>")
    shown = plan
    if not plan.empty and (plan["scenario"] != "every scenario").any():
        w = [1.0 if s == "every scenario" else prob.get(str(s), 0.0) for s in plan["scenario"]]
        years = [c for c in plan.columns if isinstance(c, int)]
        shown = plan.copy()
        shown[years] = shown[years].mul(w, axis=0)
        parts.append("<p class='note'>Deliveries differ by scenario: the chart shows "
                     "expected tonnes; the table has one row per scenario where they "
                     "differ.</p>")
    parts.append(figure("portfolio", plots.portfolio(shown), "portfolio by supplier and year"))
    parts.append(_table(plan, cur))

    parts.append("<h2>Cost by term</h2>")
    costs = tables.costs_frame(r)
    parts.append(figure("cost_waterfall", plots.waterfall(costs, cur), "cost waterfall"))
    parts.append(_table(costs, cur))
    if len(r.buyer_costs()) > 1:
        parts.append(_table(tables.buyer_costs_frame(r), cur))

    parts.append("<h2>Origin: mine to magnet by country</h2>")
    links = tables.origin_links_frame(r)
    materials = sorted(set(links["material"])) if not links.empty else []
    if not materials:
        parts.append("<p class='missing'>No delivered tonne records more than one stage: "
                     "there is no chain to draw (declare feed_origin of the sellers).</p>")
    for m in materials:
        parts.append(figure(f"origin_{m}", plots.origin_sankey(links, m), f"origin of {m}"))
    parts.append(_table(tables.origin_frame(r), cur))

    parts.append("<h2>Binding rules and their shadow prices</h2>")
    rules = tables.rules_frame(r)
    parts.append(figure("shadow_prices", plots.shadow_prices(rules, cur), "shadow prices"))
    parts.append(_table(rules, cur, limit=40))

    parts.append("<h2>Scenario cost distribution</h2>")
    sc = tables.scenario_costs_frame(r)
    if len(prob) > 1:
        costs_by = dict(zip(sc["scenario"].astype(str), sc["total"], strict=True))
        parts.append(figure("cost_distribution", plots.cost_distribution(
            prob, {"chosen portfolio": costs_by}, cur,
            f"Scenario cost of the chosen portfolio ({len(prob)} scenarios)"),
            "scenario cost distribution"))
        parts.append(_table(tables.risk_frame(r), cur))
    else:
        parts.append("<p class='note'>One scenario: no distribution to show.</p>")
    if value is not None and value.get("VSS") is None and value.get("RP") is not None:
        parts.append("<p class='missing'>The plan made for the average scenario (EV) cannot "
                     "be carried out in every scenario (EEV has no value): planning for the "
                     "scenarios is worth more than any finite VSS.</p>")
    if value is not None:
        parts.append(_table(tables.record([(k, v, cur) for k, v in value.items()
                                           if k not in ("status", "run")],
                                          "Value of modelling uncertainty",
                                          "VSS = EEV - RP; EVPI = RP - WS"), cur))
    elif stale:
        parts.append(f"<p class='missing'>{html.escape(stale)}.</p>")
    elif len(prob) > 1:
        parts.append("<p class='note'>The value of the stochastic solution (VSS) is not in "
                     "this folder: run <code>offtake value INSTANCE --out DIR</code> to add "
                     "it.</p>")
    parts.append(_table(sc, cur))

    parts.append("<h2>Concentration</h2>")
    conc = tables.concentration_frame(r)
    parts.append(figure("concentration", plots.concentration(conc), "concentration (HHI)"))
    parts.append(_table(conc, cur))
    parts.append(_table(tables.concentration_by_group_frame(r), cur, limit=60))

    parts.append("<h2>Emissions</h2>")
    parts.append(_table(tables.emissions_frame(r), cur, limit=60))

    parts.append("<h2>Fiscal cost per payer</h2>")
    fiscal = tables.fiscal_frame(r)
    parts.append(figure("fiscal", plots.fiscal(fiscal, cur), "fiscal cost per payer"))
    parts.append(_table(fiscal, cur))

    stock = tables.stockpiles_frame(r)
    if not stock.empty:
        parts.append("<h2>Stockpiles</h2>")
        parts.append(_table(stock, cur))
    return Report(_page(r, parts), figs)


def build_saa_report(out_dir: str | Path) -> Report:
    """The report of the output folder of `offtake saa`: what to sign, how good that plan is
    proven to be, and the evidence (replications, out-of-sample distribution, rounds)."""
    from offtake.analysis.saa import read_saa

    out = Path(out_dir)
    res = read_saa(out)
    summary = json.loads((out / "summary.json").read_text())
    cur = str(summary.get("currency") or "USD")
    name = Path(str(summary.get("instance") or out.name)).stem
    figs: dict[str, bytes] = {}

    def figure(key: str, fig: Figure, alt: str) -> str:
        return _embed(figs, key, fig, alt)

    s = res.summary()
    parts = [f"<h1>{html.escape(name)}: which contracts to sign, with a certified gap</h1>",
             f"<p class='note'>sample average approximation (Mak-Morton-Wood); status "
             f"{html.escape(s['status'])}; {s['replications']} replications of {s['sample']} "
             f"scenarios, {s['evaluation']:,} out of sample; seed {s['seed']}; instance "
             f"SHA-256 {html.escape(str(summary.get('instance_sha256', '')))[:12]}</p>",
             f"<p class='lead'>{_saa_decision(res, cur)}</p>"]
    parts.append("<h2>Bounds and the optimality gap</h2>")
    parts.append(_table(tables.saa_frame(res, cur), cur))
    reps = tables.saa_replications_frame(res)
    last = reps[reps["sample"] == res.final.sample]
    parts.append(figure("saa_replications", plots.saa_replications(
        last, None if res.final.lower is None else res.final.lower.estimate,
        None if res.upper is None else res.upper.estimate, cur), "SAA replications"))
    parts.append("<h3>Replications</h3>")
    parts.append(_table(reps, cur))
    if len(res.rounds) > 1:
        parts.append("<h3>Rounds (N grown until the target, the largest sample or the "
                     "budget)</h3>")
        parts.append(_table(tables.saa_rounds_frame(res), cur))

    parts.append("<h2>The candidate out of sample</h2>")
    n_eval = len(res.evaluation_costs) + len(res.evaluation_failed)
    prob = {sc: 1.0 / n_eval for sc in [*res.evaluation_costs, *res.evaluation_failed]}
    if res.evaluation_costs:
        parts.append(figure("saa_out_of_sample", plots.cost_distribution(
            prob, {"candidate plan": res.evaluation_costs}, cur,
            f"Cost of the candidate in {n_eval:,} out-of-sample scenarios"),
            "out-of-sample cost distribution"))
    if res.evaluation_failed:
        shown = list(res.evaluation_failed.items())[:20]
        parts.append("<p class='missing'>The plan cannot be carried out in "
                     f"{len(res.evaluation_failed)} out-of-sample scenario(s); the upper bound "
                     "is not defined: " + "; ".join(
                         f"{html.escape(k)} ({html.escape(v)})" for k, v in shown) + "</p>")

    parts.append("<h2>The plan</h2>")
    reduction = res.final.reduction
    if reduction:
        rel = reduction.get("relative_distance")
        parts.append(f"<p class='note'>The candidate's {reduction['kept']} scenarios were "
                     f"kept by forward selection from {reduction['pool']} draws "
                     f"(Kantorovich distance {reduction['distance']:.3g} over the "
                     "standardised scenario data"
                     + ("" if rel is None else f", {rel:.1%} of the distance with one "
                        "scenario kept") + ").</p>")
    parts.append(_table(tables.saa_plan_frame(res.plan), cur))
    others = tables.first_stage_frame(res.plan)
    if not others.empty:
        parts.append(_table(others, cur, limit=60))
    parts.append(_table(tables.record(
        [(f"seconds: {k}", v, "s") for k, v in res.seconds.items()]
        + [(f"executor: {k}", v, "") for k, v in res.executor.items()],
        "How it ran"), cur))
    return Report(_html_page(name, parts), figs)


def _saa_decision(res: SaaResult, cur: str) -> str:
    """The SAA result in one paragraph."""
    s = res.summary()
    signed = res.final.signed
    text = (f"Sign <b>{len(signed)}</b> contract(s): "
            f"{', '.join(html.escape(o) for o in signed) or 'none'} (the optimum of a "
            f"sample of {s['candidate_sample']} scenarios). ")
    if res.upper is not None:
        text += (f"Its expected cost is <b>{_money(res.upper.estimate, cur)}</b> out of sample "
                 f"(at most {_money(res.upper.limit, cur)} at "
                 f"{res.upper.confidence:.1%} confidence). ")
    else:
        text += ("<span class='missing'>Its expected cost is not defined: the plan cannot be "
                 "carried out in every out-of-sample scenario.</span> ")
    if res.final.lower is not None:
        text += (f"No plan can be expected to cost less than "
                 f"{_money(res.final.lower.limit, cur)} (lower bound "
                 f"{_money(res.final.lower.estimate, cur)}, {res.final.lower.confidence:.1%}). ")
    paired = res.final.paired_gap
    if paired is not None:
        rel = res.relative(paired.limit)
        text += (f"With {res.options.confidence:.0%} confidence this plan is within "
                 f"<b>{_money(paired.limit, cur)}</b>"
                 f"{f' ({rel:.2%})' if rel is not None else ''} of the best possible "
                 "(paired gap interval)")
        if res.gap is not None:
            rel2 = res.relative(res.gap[1])
            text += (f"; the independent interval, from the two limits, says "
                     f"{_money(res.gap[1], cur)}"
                     f"{f' ({rel2:.2%})' if rel2 is not None else ''}")
        text += "."
    return text


def _page(r: Results, parts: list[str]) -> str:
    return _html_page(r.instance_name, parts)


def _html_page(title: str, parts: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}: offtake report</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_report(out_dir: str | Path, html_path: str | Path | None = None
                 ) -> tuple[Path, list[Path]]:
    """report.html (self-contained) and one PNG per figure, in the output folder."""
    out = Path(out_dir)
    rep = build_report(out)
    target = Path(html_path) if html_path is not None else out / "report.html"
    target.write_text(rep.html, encoding="utf-8")
    for old in out.glob("report_*.png"):  # an earlier report's figures this one lacks
        if old.name[len("report_"):-len(".png")] not in rep.figures:
            old.unlink()
    pngs = []
    for name, data in rep.figures.items():
        p = out / f"report_{name}.png"
        p.write_bytes(data)
        pngs.append(p)
    return target, pngs
