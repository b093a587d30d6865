"""Procurement rules: one function per rule kind recomputing its rows, and `check_rules`.

Owns `RULE_CHECKS`, the checker function of each rule kind registered in
`offtake.domain.registry` (filled by `@rule_check("<kind>")`; a kind without one is reported
as an `internal_error`), the `rows_<kind>` functions (formulation.md, "Procurement rules") and
`check_rules`, which builds every row, holds the hard ones and compares rules.csv
(`offtake.check.ruletable`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pandas as pd

from offtake.check.builds import modelled, nameplate, start_year
from offtake.check.context import Ctx
from offtake.check.demand import Deliveries
from offtake.check.emissions import Factors, buyer_emissions
from offtake.check.network import contract_from
from offtake.check.rulerows import (
    Facts,
    RuleRow,
    buyer_groups,
    delivered_sum,
    gather_facts,
    scoped_buyers,
    scoped_materials,
    scoped_years,
)
from offtake.check.ruletable import (
    check_rule_rows_hold,
    check_rules_table,
    in_expectation,
)
from offtake.check.tables import Plan
from offtake.check.tags import (
    Step,
    all_steps_in,
    feed_steps,
    has_step_in,
    is_recycled,
    step_at,
)
from offtake.domain.network import at
from offtake.domain.registry import RULE_KINDS, implementation_table
from offtake.domain.schema import (
    BankabilityRule,
    ExclusionRule,
    MaxCountryShareRule,
    MaxEmissionIntensityRule,
    MaxOfftakeShareRule,
    MaxSupplierShareRule,
    MaxSuppliersRule,
    MinContentShareRule,
    MinRecycledShareRule,
    MinSuppliersRule,
    Offer,
)

RuleCheck = Callable[[Ctx, Any, Facts], list[RuleRow]]
"""A rule kind's checker function: (context, rule, facts) -> the rule's rows."""

RULE_CHECKS, rule_check = implementation_table("rule kind", lambda: RULE_KINDS)
"""Checker function of each registered rule kind, filled by `@rule_check("<kind>")`."""


# --- supplier counts -------------------------------------------------------------------------
def _offer_in_scope(c: Ctx, rule: MaxSuppliersRule | MinSuppliersRule, o: Offer) -> bool:
    """An offer is in a count rule's scope when one of its eligible buyers, its material and
    one of its modelled years are in the scope. Without `scope.materials` offers of every
    material count (formulation.md, max_suppliers)."""
    buyers = scoped_buyers(c, rule)
    materials = rule.scope.materials
    years = set(scoped_years(c, rule))
    return (bool(c.eligible(o) & set(buyers)) and (materials is None or o.material in materials)
            and bool(set(c.modelled_years(o)) & years))


def supplier_units(c: Ctx, rule: MaxSuppliersRule | MinSuppliersRule, plan: Plan) -> set[str]:
    """Distinct facilities (or companies) with a signed offer in the rule's scope."""
    units = set()
    for o in c.inst.offers:
        if plan.signed.get(o.id) and c.modelled_years(o) and _offer_in_scope(c, rule, o):
            fac = c.facilities[o.supplier]
            units.add(fac.company if rule.count == "company" else fac.id)
    return units


@rule_check("max_suppliers")
def rows_max_suppliers(c: Ctx, rule: MaxSuppliersRule, d: Facts) -> list[RuleRow]:
    """suppliers_max: distinct supplier units signed in scope <= max_count."""
    return [RuleRow(rule, "", None, "", "le", len(supplier_units(c, rule, d.plan)),
                    rule.max_count)]


@rule_check("min_suppliers")
def rows_min_suppliers(c: Ctx, rule: MinSuppliersRule, d: Facts) -> list[RuleRow]:
    """suppliers_min: distinct supplier units signed in scope >= min_count."""
    return [RuleRow(rule, "", None, "", "ge", len(supplier_units(c, rule, d.plan)),
                    rule.min_count)]


# --- shares of purchases, deliveries and output ---------------------------------------------
def _unit(c: Ctx, o: Offer, by: str) -> str:
    """The supplier unit of an offer: its facility, or the facility's company."""
    fac = c.facilities[o.supplier]
    return fac.company if by == "company" else fac.id


@rule_check("max_supplier_share")
def rows_max_supplier_share(c: Ctx, rule: MaxSupplierShareRule, d: Facts) -> list[RuleRow]:
    """supplier_share_max, label group|unit|material: contract deliveries from one unit <=
    s x (contracts + spot purchases) of the material, per group, year and scenario. Materials
    default to what is offered to the scoped buyers; units are those offering it to them."""
    buyers = scoped_buyers(c, rule)
    offers = [o for o in c.inst.offers if c.modelled_years(o) and c.eligible(o) & set(buyers)]
    materials = (sorted(rule.scope.materials) if rule.scope.materials is not None
                 else sorted({o.material for o in offers}))
    rows = []
    for label, group in buyer_groups(rule, buyers):
        for k in materials:
            units = sorted({_unit(c, o, rule.by) for o in offers if o.material == k})
            for year in scoped_years(c, rule):
                for s in c.probability:
                    bought = _bought_by_unit(c, rule.by, d, group, k, year, s)
                    den = sum(bought.values()) + sum(d.spot.get((b, k, year, s), 0.0)
                                                     for b in group)
                    rows += [RuleRow(rule, f"{label}|{n}|{k}", year, s, "le",
                                     bought.get(n, 0.0), rule.max_share * den, den,
                                     rule.max_share) for n in units]
    return rows


def _bought_by_unit(c: Ctx, by: str, d: Facts, group: list[str], k: str,
                    year: int, s: str) -> dict[str, float]:
    """Contract deliveries of material k to the group in a year and scenario, per supplier
    unit."""
    out: dict[str, float] = defaultdict(float)
    for b in group:
        for o, q in d.volume.get((b, year, s), ()):
            if o.material == k:
                out[_unit(c, o, by)] += q
    return out


def _instance_steps(c: Ctx) -> set[Step]:
    """Every (stage, country) a tag can contain in this instance."""
    steps = {step_at(f.stage, f.country) for f in c.inst.facilities}
    for f in c.inst.facilities:
        steps |= feed_steps(f.feed_origin)
    for k in c.inst.spot_markets:
        steps |= feed_steps(k.feed_origin)
    return steps


def _with_step(step: Step) -> Callable[[frozenset[Step]], bool]:
    """Accepts the tags that have `step`."""
    return lambda steps: step in steps


@rule_check("max_country_share")
def rows_max_country_share(c: Ctx, rule: MaxCountryShareRule, d: Facts) -> list[RuleRow]:
    """country_share_max, label group|S|C|material: deliveries with a step at S in C <=
    s x demand, for each listed stage S and non-exempt country C, where demand is positive."""
    buyers = scoped_buyers(c, rule)
    exempt = c.countries(rule.exempt_groups, rule.exempt_countries)
    stages = [str(st) for st in rule.stages]
    pairs = sorted((st, cc) for st, cc in _instance_steps(c) if st in stages and cc not in exempt)
    rows = []
    for label, group in buyer_groups(rule, buyers):
        for k in scoped_materials(c, rule, buyers):
            for year in scoped_years(c, rule):
                for s in c.probability:
                    dem = sum(d.demand.get((b, k, year, s), 0.0) for b in group)
                    if dem <= 0:
                        continue
                    for st, cc in pairs:
                        num = delivered_sum(d, group, k, year, s, _with_step((st, cc)))
                        rows.append(RuleRow(rule, f"{label}|{st}|{cc}|{k}", year, s, "le", num,
                                            rule.max_share * dem, dem, rule.max_share))
    return rows


def _demand_share_rows(c: Ctx, rule: MinContentShareRule | MinRecycledShareRule, d: Facts,
                       counts: Callable[[frozenset[Step]], bool]) -> list[RuleRow]:
    """Rows 'deliveries whose tag `counts` accepts >= s_t x demand', label group|material,
    where demand and share are positive (content_share_min, recycled_share_min)."""
    buyers = scoped_buyers(c, rule)
    rows = []
    for label, group in buyer_groups(rule, buyers):
        for k in scoped_materials(c, rule, buyers):
            for year in scoped_years(c, rule):
                share = at(rule.min_share, year)
                for s in c.probability:
                    dem = sum(d.demand.get((b, k, year, s), 0.0) for b in group)
                    if dem <= 0 or share <= 0:
                        continue
                    num = delivered_sum(d, group, k, year, s, counts)
                    rows.append(RuleRow(rule, f"{label}|{k}", year, s, "ge", num, share * dem, dem,
                                        share))
    return rows


@rule_check("min_content_share")
def rows_min_content_share(c: Ctx, rule: MinContentShareRule, d: Facts) -> list[RuleRow]:
    """content_share_min: every step at the listed stages in a qualifying country (or, with
    recycled_qualifies, a RECYCLE step in one)."""
    stages = {str(st) for st in rule.stages}
    qualifying = c.countries(rule.groups, rule.countries)

    def counts(steps: frozenset[Step]) -> bool:
        recycled = rule.recycled_qualifies and any(
            st == "RECYCLE" and cc in qualifying for st, cc in steps)
        return recycled or all_steps_in(steps, stages, qualifying)

    return _demand_share_rows(c, rule, d, counts)


@rule_check("exclusion")
def rows_exclusion(c: Ctx, rule: ExclusionRule, d: Facts) -> list[RuleRow]:
    """excluded_content_max, label buyer|material: from from_year, deliveries with a step at
    a listed stage in an excluded country <= 0."""
    stages = {str(st) for st in rule.stages}
    excluded = c.countries(rule.groups, rule.countries)
    years = [t for t in scoped_years(c, rule) if rule.from_year is None or t >= rule.from_year]
    buyers = scoped_buyers(c, rule)
    rows = []
    for b in buyers:
        for k in scoped_materials(c, rule, buyers):
            for year in years:
                for s in c.probability:
                    num = delivered_sum(d, [b], k, year, s,
                                        lambda steps: has_step_in(steps, stages, excluded))
                    rows.append(RuleRow(rule, f"{b}|{k}", year, s, "le", num, 0.0))
    return rows


@rule_check("min_recycled_share")
def rows_min_recycled_share(c: Ctx, rule: MinRecycledShareRule, d: Facts) -> list[RuleRow]:
    """recycled_share_min: deliveries with a RECYCLE step."""
    return _demand_share_rows(c, rule, d, is_recycled)


@rule_check("max_offtake_share")
def rows_max_offtake_share(c: Ctx, rule: MaxOfftakeShareRule, d: Facts) -> list[RuleRow]:
    """offtake_share_max, label facility: what buyers of the class take from the facility
    (contract deliveries + processing) <= s x what all buyers take, per scoped year and scenario.
    The class is every scoped buyer with that buyer_class (formulation.md, B_c)."""
    scoped = set(scoped_buyers(c, rule))
    cls = {b.id for b in c.inst.buyers if b.buyer_class == rule.buyer_class and b.id in scoped}
    sold = contract_from(c, d.plan)
    rows = []
    for f in rule.facilities:
        for year in scoped_years(c, rule):
            for s in c.probability:
                made = d.processed.get((f, year, s), {})
                taken = {b: sold.get((f, b, year, s), 0.0) + made.get(b, 0.0)
                         for b in c.buyers}
                den = sum(taken.values())
                rows.append(RuleRow(rule, f, year, s, "le", sum(taken[b] for b in cls),
                                    rule.max_share * den, den, rule.max_share))
    return rows


# --- bankability ----------------------------------------------------------------------------
@rule_check("bankability")
def rows_bankability(c: Ctx, rule: BankabilityRule, d: Facts) -> list[RuleRow]:
    """bankability_min, label facility, scenario '' (first stage): for each year in the
    rule's years within the first `first_years` years of operation of one of the facility's
    modelled build options, sum over its offers and the scoped buyers of theta_o q_obt (theta
    = take_or_pay_share, 1 without take-or-pay) >= s x sum of rho_jt N_j b_j over the options
    in their window."""
    buyers = set(scoped_buyers(c, rule))
    years = set(scoped_years(c, rule))
    options = modelled(c)
    rows = []
    for f in rule.facilities:
        window: dict[int, float] = defaultdict(float)
        for j in c.facilities[f].builds:
            if j.id not in options:
                continue
            y0 = start_year(c, j)
            for year in range(y0, y0 + rule.first_years):
                if year in years and nameplate(c, j, year) > 0:
                    window[year] += nameplate(c, j, year) * d.plan.built.get(j.id, 0)
        for year, den in sorted(window.items()):
            lhs = sum(_commitment(c.offers[o]) * q for (o, b, t), q in d.plan.volume.items()
                      if t == year and b in buyers and c.offers[o].supplier == f)
            rows.append(RuleRow(rule, f, year, "", "ge", lhs, rule.min_share * den, den,
                                rule.min_share))
    return rows


def _commitment(o: Offer) -> float:
    """theta_o: the share of contracted volume the buyer pays for whatever it takes."""
    return 1.0 if o.take_or_pay_share is None else o.take_or_pay_share


# --- emissions -------------------------------------------------------------------------------
@rule_check("max_emission_intensity")
def rows_max_emission_intensity(c: Ctx, rule: MaxEmissionIntensityRule, d: Facts
                                ) -> list[RuleRow]:
    """emission_intensity_max, label group|material: E^k of the group (activities upstream
    of k) <= cap_t x the tonnes of k arriving (any tag), per scoped year and scenario."""
    buyers = scoped_buyers(c, rule)
    factors = Factors.of(c)
    rows = []
    for k in scoped_materials(c, rule, buyers):
        emitted = buyer_emissions(c, d.plan, factors, k)
        for label, group in buyer_groups(rule, buyers):
            for year in scoped_years(c, rule):
                cap = at(rule.max_kg_per_kg, year)
                for s in c.probability:
                    num = sum(emitted.get((b, year, s), 0.0) for b in group)
                    den = delivered_sum(d, group, k, year, s)
                    rows.append(RuleRow(rule, f"{label}|{k}", year, s, "le", num, cap * den,
                                        den, cap))
    return rows


# --- every rule ------------------------------------------------------------------------------
def check_rules(c: Ctx, t: dict[str, pd.DataFrame], plan: Plan,
                arrived: Deliveries) -> list[RuleRow]:
    """Every procurement rule: rows recomputed per kind, hard rows hold, rules.csv matches.
    Returns the rows (rule_violation_penalties prices the soft ones). A rule whose kind has
    no checker function (or is no longer registered) is an `internal_error`: its rows cannot
    be recomputed."""
    facts = gather_facts(c, plan, arrived)
    rows: list[RuleRow] = []
    for rule in c.inst.rules:
        check: RuleCheck | None = RULE_CHECKS.get(rule.kind)
        if check is None or rule.kind not in RULE_KINDS:
            c.flag("internal_error", rule.id, 1.0, f"rule kind '{rule.kind}' has no checker "
                   "function registered in RULE_CHECKS (offtake.check.rules); rule not checked")
            continue
        made = check(c, rule, facts)
        rows += in_expectation(c, made) if rule.in_expectation else made
    check_rule_rows_hold(c, rows)
    check_rules_table(c, t, rows)
    return rows
