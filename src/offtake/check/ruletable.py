"""Procurement-rule rows held and reported: hard rows hold, rules.csv matches, rows held in
expectation.

Owns `check_rule_rows_hold` (each hard row holds; the violation is named after the kind's
component in `offtake.domain.registry`), `check_rules_table` (a rules.csv row for every row
that matters, each equal to its recomputation) and `in_expectation` (the probability-weighted
row of a rule that holds in expectation).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from offtake.check.context import Ctx, index_of, numbered, same_text
from offtake.check.rulerows import EXPECTED, RuleRow
from offtake.domain.registry import RULE_KINDS


def _rule_index(row: RuleRow) -> str:
    """The index a rule row's violation is reported under: the rule id for a count row,
    else rule,label,year,scenario."""
    if row.year is None:
        return row.rule.id
    return index_of(row.rule.id, row.label, row.year, row.scenario)


def check_rule_rows_hold(c: Ctx, rows: list[RuleRow]) -> None:
    """Each hard row holds (component named after the rule kind, amount = the violation)."""
    for row in rows:
        if row.rule.hard and row.violation > c.slack(row.bound):
            op = "<=" if row.sense == "le" else ">="
            c.flag(RULE_KINDS[row.rule.kind].component, _rule_index(row), row.violation,
                   f"{row.rule.kind} {row.label or row.rule.id}: lhs {row.lhs:.10g} "
                   f"{op} {row.bound:.10g} fails")


def _table_key(r: dict) -> tuple[str, str, int | None, str]:
    """(rule, row label, year or None, scenario) of a rules.csv row, as `RuleRow.key`."""
    year = int(r["year"]) if np.isfinite(r["year"]) else None
    return (r["rule_id"], r["row"], year, r["scenario"])


def check_rules_table(c: Ctx, t: dict[str, pd.DataFrame], rows: list[RuleRow]) -> None:
    """rules.csv: a row for every row that matters, each equal to its recomputation."""
    mine = {row.key: row for row in rows}
    seen = set()
    for pos, r in numbered(t["rules"]):
        where, key = f"rules.csv row {pos}", _table_key(r)
        if key in seen:
            c.flag("table", where, 1.0, f"rule row {key} repeated")
        seen.add(key)
        row = mine.get(key)
        if row is None:
            c.flag("table", where, 1.0, f"rule '{r['rule_id']}' has no row '{r['row']}' in "
                   f"year {key[2]}, scenario '{r['scenario']}' (or it is out of its scope)")
            continue
        _check_rule_table_row(c, where, r, row)
    for key, row in mine.items():
        if key not in seen and row.matters(c.tol):
            c.flag("table", "rules.csv," + _rule_index(row), 1.0,
                   f"no row for rule '{row.rule.id}' row '{row.label}' (lhs {row.lhs:.10g}, "
                   f"bound {row.bound:.10g})")


def _check_rule_table_row(c: Ctx, where: str, r: dict, row: RuleRow) -> None:
    """One rules.csv row against its recomputation."""
    rule = row.rule
    same_text(c, where, "kind", r["kind"], rule.kind)
    same_text(c, where, "sense", r["sense"], row.sense)
    same_text(c, where, "hard", r["hard"].lower(), str(rule.hard).lower())
    same_text(c, where, "unit", r["unit"], RULE_KINDS[rule.kind].unit)
    c.equal("table", where, r["lhs"], row.lhs, "lhs")
    c.equal("table", where, r["bound"], row.bound, "bound")
    c.equal("table", where, r["slack"], row.slack, "slack")
    if not rule.hard:
        c.equal("table", where, r["violation"], row.violation, "violation = max(0, -slack)")
    if row.base is not None:
        c.equal("table", where, r["base_t"], row.base, "base_t")
        if row.base > c.tol:
            c.equal("table", where, r["share"], row.lhs / row.base, "share = lhs / base_t")
    if row.share is not None:
        c.equal("table", where, r["share_bound"], row.share, "share_bound")
    for col in ("shadow_price", "shadow_price_per_pp"):
        if r[col] != "" and not np.isfinite(pd.to_numeric(r[col], errors="coerce")):
            c.flag("table", where, 1.0, f"{col} '{r[col]}' is neither a number nor empty")
    _check_binding_and_price(c, where, r, row)


def _check_binding_and_price(c: Ctx, where: str, r: dict, row: RuleRow) -> None:
    """`binding` as formulation.md defines it: the slack is 0 (within 1e-6) and the row reads
    more than 0 <= 0 or has a non-zero shadow price (count rows: the slack is 0); a shadow
    price is >= 0 (objective change per unit of relaxation). Rows within a hair of the
    threshold are not judged."""
    price = pd.to_numeric(r["shadow_price"], errors="coerce") if r["shadow_price"] != "" \
        else None
    if price is not None and np.isfinite(price) and price < -1e-6 * max(1.0, abs(price)):
        c.flag("table", where, -price, f"shadow_price {price:.6g} is negative: relaxing a "
               "rule never raises the optimal cost")
    slack = abs(row.slack)
    if 1e-7 < slack < 1e-5:
        return  # too close to the 1e-6 threshold to call
    has_price = price is not None and np.isfinite(price) and abs(price) > 1e-9
    if row.year is None:
        want = slack <= 1e-6
    else:
        want = slack <= 1e-6 and (row.lhs > 1e-6 or row.bound > 1e-6 or has_price)
    got = str(r["binding"]).strip().lower() == "true"
    if got != want:
        c.flag("table", where, 1.0, f"binding is {got}, but the row's slack is {row.slack:.3g}"
               f" (lhs {row.lhs:.6g}, bound {row.bound:.6g}, shadow price "
               f"{'none' if price is None else f'{price:.6g}'}): expected {want}")


def in_expectation(c: Ctx, rows: list[RuleRow]) -> list[RuleRow]:
    """One row per (label, year) whose lhs, bound and base are the probability-weighted
    averages of the per-scenario rows (a rule with in_expectation: true)."""
    groups: dict[tuple[str, int | None], list[RuleRow]] = defaultdict(list)
    for row in rows:
        groups[(row.label, row.year)].append(row)
    out = []
    for (label, year), members in groups.items():
        p = [c.probability[r.scenario] for r in members]
        avg = {f: sum(w * (getattr(r, f) or 0.0) for w, r in zip(p, members, strict=True))
               for f in ("lhs", "bound", "base")}
        first = members[0]
        out.append(RuleRow(first.rule, label, year, EXPECTED, first.sense, avg["lhs"],
                           avg["bound"], avg["base"] if first.base is not None else None,
                           first.share))
    return out
