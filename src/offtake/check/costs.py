"""Money as reported: costs.csv and scenario_costs.csv against the recomputed terms, the risk
term, third parties' fiscal costs and the objective.

Owns `check_costs` (the money part of a check: every term recomputed by
`offtake.check.objective`, compared with costs.csv, each buyer's share of each term
(`buyer_cost`), scenario_costs.csv and the reported objective), `reported_costs_of`
(costs.csv split by payer and buyer), `fiscal_costs` and the names `RISK_TERM` and
`FISCAL_TERM`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from offtake.check.builds import REPORTED_PAYERS, cost_year, modelled
from offtake.check.context import KG_PER_T, CheckReport, Ctx, family_check, index_of, numbered
from offtake.check.objective import (
    ByBuyer,
    PerScenario,
    TermInputs,
    by_buyer,
    by_scenario,
    cvar,
    expected,
    risk_cvar,
    term_splits,
)
from offtake.check.prices import offer_price
from offtake.check.stockpiles import FISCAL_TERM as STOCKPILE_FISCAL_TERM
from offtake.check.stockpiles import stockpile_fiscal
from offtake.check.tables import Plan

RISK_TERM = "risk_cvar"
"""costs.csv term lambda CVaR_alpha (payer 'risk', in the objective; formulation.md, cvar)."""

FISCAL_TERM = "fiscal_floor_support"
"""costs.csv term of a third party's expected fiscal cost of price floors (payer = the third
party, not in the objective)."""

BUILD_FISCAL_TERM = "fiscal_build_support"
"""costs.csv term of a government's expected fiscal cost of the build options it pays for
(formulation.md, facility_build; not in the objective)."""

FISCAL_TERMS = (FISCAL_TERM, BUILD_FISCAL_TERM, STOCKPILE_FISCAL_TERM)


def check_costs(c: Ctx, t: dict[str, pd.DataFrame], plan: Plan, extra: TermInputs,
                reported_objective: float | None, reported_costs: dict[str, float] | None,
                cvar_weight: float | None, cvar_alpha: float | None,
                cvar_limit: float | None = None) -> CheckReport:
    """The money part of a check (see `offtake.check.checker.check_tables` for the
    arguments): every cost term recomputed in every scenario, against scenario_costs.csv and
    the reported terms; the risk term; third parties' fiscal costs; the objective. Returns the
    report with every violation found so far."""
    splits = term_splits(c, plan, extra)
    per_term = {name: by_scenario(c, x) for name, x in splits.items()}
    terms = {name: expected(c, per) for name, per in per_term.items()}
    check_scenario_costs(c, t, per_term)
    reported = reported_costs_of(c, t)
    check_cost_terms(c, terms, reported.buyer if reported_costs is None else reported_costs)
    check_buyer_costs(c, splits, reported.by_buyer)
    risk = _check_risk_term(c, per_term, reported.risk, cvar_weight, cvar_alpha)
    if risk is not None:
        terms[RISK_TERM] = risk
    if cvar_limit is not None:
        check_cvar_limit(c, per_term, cvar_limit, cvar_alpha)
    fiscal = {**fiscal_costs(c, plan), **stockpile_fiscal(c, plan)}
    check_fiscal_costs(c, fiscal, reported.fiscal)
    objective = sum(terms.values())
    if reported_objective is not None:
        check_objective(c, objective, reported_objective)
    totals = {s: sum(per[s] for per in per_term.values()) for s in c.probability}
    by_payer: dict[str, float] = {}
    for (_term, payer), value in fiscal.items():
        by_payer[payer] = by_payer.get(payer, 0.0) + value
    return CheckReport(c.violations, objective, terms, by_payer, totals)


def _check_risk_term(c: Ctx, per_term: dict[str, PerScenario], reported: float | None,
                     cvar_weight: float | None, cvar_alpha: float | None) -> float | None:
    """The risk term that enters the objective: recomputed (and compared with the reported
    one) when the solve options give a positive weight and alpha; else the reported one as
    it is (it cannot be recomputed; with weight 0 it must be 0); None without either."""
    if cvar_weight is not None and cvar_alpha is not None and cvar_weight > 0:
        risk = risk_cvar(c, per_term, cvar_weight, cvar_alpha)
        c.equal("cost_term", RISK_TERM, reported or 0.0, risk,
                f"reported vs recomputed {cvar_weight:g} x CVaR_{cvar_alpha:g}")
        return risk
    if reported is not None:
        if cvar_weight == 0:
            c.at_most("cost_term", RISK_TERM, abs(reported), 0.0, "risk term without risk")
        return reported  # lambda and alpha unknown: taken as reported
    return None


@family_check("cvar_limit")
def check_cvar_limit(c: Ctx, per_term: dict[str, PerScenario], limit: float,
                     alpha: float | None) -> None:
    """cvar_limit (formulation.md): CVaR_alpha of the scenario cost C_s, recomputed from the
    plan (the mean of the worst 1 - alpha of probability), at most the limit."""
    if alpha is None:
        c.flag("cvar_limit", "CVaR", 1.0, "a CVaR limit without its alpha in the options")
        return
    totals = {s: sum(per[s] for per in per_term.values()) for s in c.probability}
    c.at_most("cvar_limit", f"CVaR_{alpha:g}", cvar(totals, c.probability, alpha), limit,
              "CVaR of the scenario cost vs the limit")


def fiscal_costs(c: Ctx, plan: Plan) -> dict[tuple[str, str], float]:
    """(term, third party) -> its cost, not in the objective: fiscal_floor_support = sum
    pi_s delta_t 1000 (top-up - upside returned) d over the offers whose floor it pays;
    fiscal_build_support = sum delta_{t^c_j} C_j b_j over the built options it pays for."""
    out: dict[tuple[str, str], float] = {(FISCAL_TERM, o.floor_paid_by): 0.0
                                         for o in c.inst.offers if o.floor_paid_by != "buyer"}
    for (o, _b, year, s), d in plan.delivered.items():
        up = offer_price(c, o, year, s)
        if up.payer:
            out[(FISCAL_TERM, up.payer)] += (c.probability[s] * c.delta[year] * KG_PER_T
                                             * up.fiscal_per_kg * d)
    for j, (opt, _f) in modelled(c).items():
        if opt.paid_by not in REPORTED_PAYERS and opt.paid_by != "supplier":
            key = (BUILD_FISCAL_TERM, opt.paid_by)
            out[key] = out.get(key, 0.0) + (c.discount(cost_year(c, opt)) * opt.cost
                                            * plan.built.get(j, 0))
    return out


def _flag_text(text: str) -> bool | None:
    """An in_objective cell as a boolean, or None when it is neither true nor false."""
    low = text.strip().lower()
    if low in ("true", "1", "1.0", "yes"):
        return True
    if low in ("false", "0", "0.0", "no"):
        return False
    return None


@dataclass
class _Reported:
    """costs.csv split by payer: the buyer's terms, the risk term, third parties' costs."""

    buyer: dict[str, float] = field(default_factory=dict)
    """term -> the sum of its rows (in the objective, not the risk term)."""
    by_buyer: dict[tuple[str, str], float] = field(default_factory=dict)
    """(term, buyer) -> the buyer's share (rows with a buyer)."""
    risk: float | None = None
    fiscal: dict[tuple[str, str], float] = field(default_factory=dict)
    """(term, third party) -> value."""


def reported_costs_of(c: Ctx, t: dict[str, pd.DataFrame]) -> _Reported:
    """costs.csv: buyer rows have payer 'buyer' and in_objective true, `risk_cvar` has payer
    'risk' and is in the objective; the others must be fiscal_floor_support or
    fiscal_build_support rows named after their payer."""
    out = _Reported()
    seen: set[tuple[str, str]] = set()
    for pos, r in numbered(t["costs"]):
        where = f"costs.csv row {pos}"
        in_objective = _flag_text(r["in_objective"])
        if in_objective is None:
            c.flag("table", where, 1.0, f"in_objective '{r['in_objective']}' is not true/false")
            continue
        if in_objective and r["term"] == RISK_TERM:
            if out.risk is not None:
                c.flag("table", where, 1.0, f"cost row '{RISK_TERM}' repeated")
            out.risk = (out.risk or 0.0) + r["value"]
            continue
        if in_objective:
            if r["payer"] not in ("buyer", ""):
                c.flag("table", where, 1.0, f"term '{r['term']}' in the objective is paid by "
                       f"'{r['payer']}', not the buyer")
            key = (r["term"], r["buyer"])
            if key in seen:
                c.flag("table", where, 1.0, f"cost row '{r['term']}' "
                       f"({r['buyer'] or 'all buyers'}) repeated")
            seen.add(key)
            out.buyer[r["term"]] = out.buyer.get(r["term"], 0.0) + r["value"]
            if r["buyer"]:
                out.by_buyer[key] = r["value"]
            continue
        if r["term"] not in FISCAL_TERMS or r["payer"] in ("buyer", "", "risk"):
            c.flag("table", where, 1.0, f"only {' or '.join(FISCAL_TERMS)} rows of a third "
                   f"party are outside the objective, not '{r['term']}' paid by "
                   f"'{r['payer']}'")
            continue
        key = (r["term"], r["payer"])
        if key in out.fiscal:
            c.flag("table", where, 1.0, f"cost row '{r['term']}' ({r['payer']}) repeated")
        out.fiscal[key] = out.fiscal.get(key, 0.0) + r["value"]
    return out


def check_cost_terms(c: Ctx, terms: dict[str, float], reported: dict[str, float]) -> None:
    """cost_term: each reported term equals its recomputation; no unknown terms."""
    for name, value in reported.items():
        if name not in terms and abs(value) > c.tol:
            c.flag("cost_term", name, abs(value), f"unknown cost term '{name}'")
    for name, value in terms.items():
        c.equal("cost_term", name, reported.get(name, 0.0), value, "reported vs recomputed")


def check_buyer_costs(c: Ctx, splits: dict[str, ByBuyer],
                      reported: dict[tuple[str, str], float]) -> None:
    """buyer_cost: for each term split by buyer in costs.csv, each buyer's share equals its
    recomputation (formulation.md, "Cost per buyer"); every buyer has a row of the term.
    Terms given as one total row (older folders) are not split, nothing to check."""
    terms = {term for term, _b in reported}
    for term, split_ in splits.items():
        if term not in terms:
            continue
        mine = by_buyer(c, split_)
        for b in c.buyers:
            if (term, b) not in reported:
                c.flag("table", f"costs.csv,{term},{b}", 1.0,
                       f"term '{term}' is split by buyer, but has no row for buyer '{b}'")
                continue
            c.equal("buyer_cost", index_of(term, b), reported[(term, b)], mine.get(b, 0.0),
                    "the buyer's share: reported vs recomputed")


def check_scenario_costs(c: Ctx, t: dict[str, pd.DataFrame],
                         per_term: dict[str, PerScenario]) -> None:
    """scenario_costs.csv: each (scenario, term) is the term recomputed in that scenario, with
    the scenario's probability."""
    seen = set()
    for pos, r in numbered(t["scenario_costs"]):
        where = f"scenario_costs.csv row {pos}"
        key = (r["scenario"], r["term"])
        if key in seen:
            c.flag("table", where, 1.0, f"row {index_of(*key)} repeated")
        seen.add(key)
        c.equal("table", where, r["probability"], c.probability[r["scenario"]], "probability")
        if r["term"] not in per_term:
            if abs(r["value"]) > c.tol:
                c.flag("scenario_cost", index_of(*key), abs(r["value"]),
                       f"unknown cost term '{r['term']}'")
            continue
        c.equal("scenario_cost", index_of(*key), r["value"], per_term[r["term"]][r["scenario"]],
                "reported vs recomputed")
    if seen:
        for term, per in per_term.items():
            for s, value in per.items():
                if (s, term) not in seen and abs(value) > c.slack(0.0):
                    c.flag("scenario_cost", index_of(s, term), abs(value),
                           f"no row for {value:.10g}")


def check_fiscal_costs(c: Ctx, fiscal: dict[tuple[str, str], float],
                       reported: dict[tuple[str, str], float]) -> None:
    """fiscal_cost: each third party's reported fiscal_floor_support and
    fiscal_build_support equal their recomputation; no payer that pays nothing of the kind.
    Indexed by the payer (floors) or by `fiscal_build_support,payer`."""

    def index(term: str, payer: str) -> str:
        return payer if term == FISCAL_TERM else index_of(term, payer)

    for (term, payer), value in reported.items():
        if (term, payer) not in fiscal and abs(value) > c.tol:
            what = "no floor" if term == FISCAL_TERM else "no build cost"
            c.flag("fiscal_cost", index(term, payer), abs(value),
                   f"'{payer}' pays {what} in the instance")
    for (term, payer), value in fiscal.items():
        c.equal("fiscal_cost", index(term, payer), reported.get((term, payer), 0.0), value,
                f"{term} of '{payer}': reported vs recomputed")


def check_objective(c: Ctx, objective: float, reported: float) -> None:
    """objective: the reported objective equals the sum of the recomputed terms."""
    c.equal("objective", "objective", reported, objective, "reported vs recomputed")
