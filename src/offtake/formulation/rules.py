"""Constraint families of the procurement rules, one builder per registered rule kind
(`offtake.domain.registry.RULE_KINDS`), found through `RULE_BUILDERS`. Supplier counts are
first-stage rows per rule; every other kind is linear rows built by `formulation.ruledata`
and added here by one generic function (`build_rule_rows`)."""

from __future__ import annotations

import pyomo.core as pyo

from offtake.domain.registry import RULE_KINDS, implementation_table
from offtake.formulation.data import EXPECTED, FIRST_STAGE_ROW, ModelData
from offtake.formulation.expressions import delivered, group_by
from offtake.formulation.ruledata import RuleRow

RULE_BUILDERS, rule_builder = implementation_table("rule kind", lambda: RULE_KINDS)
"""Constraint builder of each rule kind: `add_<kind>(m, d)`."""


def _count_rules(m: pyo.ConcreteModel, d: ModelData, kind: str) -> tuple[list[str], dict]:
    units = group_by(m.RULE_SUPPLIERS, lambda k: k[0], lambda k: k[1])
    return [r for r in d.RULE_IDS if d.rule_kind[r] == kind and r in units], units


def _count_slack(m: pyo.ConcreteModel, r: str):
    return m.v_count_violation[r] if r in m.RELAXABLE_COUNT_RULES else 0


@rule_builder("max_suppliers")
def add_max_suppliers(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `max_suppliers`: at most N distinct suppliers (facilities or companies) with a
    signed offer in the rule's scope.

    .. math:: w_{rn} \\ge z_o \\quad \\forall o \\in O(r,n), \\qquad \\sum_n w_{rn} \\le N_r +
        e_r

    Reads rules of kind max_suppliers. Dual: value of allowing one more supplier (currency per
    supplier, LP with integer decisions fixed).
    """
    rules, units = _count_rules(m, d, "max_suppliers")
    links = [k for k in d.RULE_SUPPLIER_OFFERS if k[0] in rules]
    m.suppliers_max_link = pyo.Constraint(
        pyo.Set(initialize=links, dimen=3, ordered=True),
        rule=lambda _, r, u, o: m.v_supplier_used[r, u] >= m.v_signed[o])
    m.suppliers_max = pyo.Constraint(
        pyo.Set(initialize=rules, ordered=True),
        rule=lambda _, r: sum(m.v_supplier_used[r, u] for u in units[r])
        <= d.rule_count_bound[r] + _count_slack(m, r))


@rule_builder("min_suppliers")
def add_min_suppliers(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `min_suppliers`: at least N distinct suppliers with a signed offer in scope.

    .. math:: w_{rn} \\le \\sum_{o \\in O(r,n)} z_o, \\qquad \\sum_n w_{rn} \\ge N_r - e_r

    Reads rules of kind min_suppliers. Dual: cost of requiring one more supplier (currency per
    supplier, LP with integer decisions fixed).
    """
    rules, units = _count_rules(m, d, "min_suppliers")
    offers = group_by([k for k in d.RULE_SUPPLIER_OFFERS if k[0] in rules],
                    lambda k: (k[0], k[1]), lambda k: k[2])
    m.suppliers_min_link = pyo.Constraint(
        pyo.Set(initialize=sorted(offers), dimen=2, ordered=True),
        rule=lambda _, r, u: m.v_supplier_used[r, u] <= sum(m.v_signed[o] for o in offers[r, u]))
    m.suppliers_min = pyo.Constraint(
        pyo.Set(initialize=[r for r in d.RULE_IDS if d.rule_kind[r] == "min_suppliers"],
                ordered=True),
        rule=lambda _, r: sum(m.v_supplier_used[r, u] for u in units.get(r, []))
        + _count_slack(m, r) >= d.rule_count_bound[r])


def _arrival_terms(d: ModelData) -> dict:
    """(buyer, material, tag) -> flow keys (buyer, from, buyer, tag) that deliver it."""
    return group_by([k for k in d.BUYER_ARC_TAGS if k[2] == k[0]],
                  lambda k: (k[0], d.arc_material[k[1], k[2]], k[3]), lambda k: k)


def _row_expr(m: pyo.ConcreteModel, row: RuleRow, s: str, arrivals: dict, part: str = ""):
    """num - share * den of a rule row in scenario s (see data.RuleRow); `part` = "num" or
    "den" returns that sum alone."""
    y = row.year

    def flows(keys):
        return sum(m.v_flow_t[b, i, j, t, y, s] for key in keys for b, i, j, t in arrivals[key])

    def volumes(keys):
        return sum(delivered(m, o, b, y, s) for o, b in keys)

    def made(keys):
        return sum(m.v_production_t[f, b, c, y, s] for f, b in keys
                   for c in m.combos_of[f, b])

    num = (flows(row.num_arrivals) + volumes(row.num_volumes) + made(row.num_production)
           + sum(w * m.v_volume_t[o, b, y] for o, b, w in row.num_commitments)
           + sum(w * _weighted(m, what, key, y, s) for what, key, w in row.num_weighted))
    den = (flows(row.den_arrivals) + volumes(row.den_volumes) + made(row.den_production)
           + sum(m.v_flow_t[b, k, j, t, y, s] for b, k, j, t in row.den_spot)
           + sum(x * m.v_built[j] for j, x in row.den_builds))
    if part:
        return num if part == "num" else den
    return num - row.share * den


def _weighted(m: pyo.ConcreteModel, what: str, key: tuple, y: int, s: str):
    """The quantity of a weighted term of a row (data.RuleRow.num_weighted) in (y, s)."""
    if what == "flow":
        return m.v_flow_t[(*key, y, s)]
    if what == "made":
        return sum(m.v_production_t[key[0], key[1], c, y, s] for c in m.combos_of[key])
    return delivered(m, key[0], key[1], y, s)


def row_scenarios(d: ModelData, row: RuleRow) -> tuple[str, ...]:
    """Scenarios a rule row is written for: each one, one row in expectation, or one row for
    all scenarios for kinds decided on the portfolio alone."""
    if RULE_KINDS[row.kind].model.first_stage:
        return (FIRST_STAGE_ROW,)
    return (EXPECTED,) if d.rule_in_expectation.get(row.rule) else d.SCENARIOS


def row_form(m: pyo.ConcreteModel, d: ModelData, row: RuleRow, s: str, part: str = ""):
    """A row's linear form (or its num / den part) in scenario s, or probability-weighted
    over the scenarios when s is EXPECTED (a first-stage row's terms have no scenario)."""
    if s != EXPECTED:
        return _row_expr(m, row, s, m.arrival_terms, part)
    return sum(d.probability[x] * _row_expr(m, row, x, m.arrival_terms, part)
               for x in d.SCENARIOS)


def _row_rhs(d: ModelData, row: RuleRow, s: str) -> float:
    if s not in (EXPECTED, FIRST_STAGE_ROW):
        return row.rhs[s]
    return sum(d.probability[x] * row.rhs[x] for x in d.SCENARIOS)


def build_rule_rows(m: pyo.ConcreteModel, d: ModelData, kind: str) -> None:
    """Build the rows of one rule kind as its registered constraint component, indexed
    (row_id, scenario);
    a soft (or elastic) row gets the violation variable on its loose side."""
    component = RULE_KINDS[kind].component
    rows = {row.row_id: row for row in d.rule_rows.get(kind, ())}
    if not hasattr(m, "combos_of"):
        m.combos_of = group_by(d.COMBOS, lambda k: (k[0], k[1]), lambda k: k[2])
        m.arrival_terms = _arrival_terms(d)
    index = pyo.Set(initialize=[(r, s) for r, row in rows.items()
                                for s in row_scenarios(d, row)], dimen=2, ordered=True)
    setattr(m, f"{component.upper()}_ROWS", index)

    def rule(_, r, s):
        row = rows[r]
        expr = row_form(m, d, row, s)
        slack = m.v_rule_violation_t[r, s] if (r, s) in m.RELAXABLE_ROWS else 0
        lhs = expr - slack if row.sense == "le" else expr + slack
        rhs = _row_rhs(d, row, s)
        if isinstance(lhs, (int, float)):  # a hard row with nothing that can move it
            holds = lhs <= rhs + 1e-9 if row.sense == "le" else lhs >= rhs - 1e-9
            return pyo.Constraint.Skip if holds else pyo.Constraint.Infeasible
        return lhs <= rhs if row.sense == "le" else lhs >= rhs

    setattr(m, component, pyo.Constraint(index, rule=rule))


@rule_builder("max_supplier_share")
def add_max_supplier_share(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `max_supplier_share`: a buyer's (or pooled group's) purchases of a material from one
    supplier unit are at most a share of its purchases (contracts and spot) in a year.

    .. math:: \\sum_{o \\in O(n,k)} \\sum_{b \\in g} d_{obts} - s_r \\Big(\\sum_{o \\in O(k)}
        \\sum_{b\\in g} d_{obts} + \\sum_{b \\in g} \\sum_{\\kappa:\\,\\mu(\\kappa)=k}
        \\sum_{j,\\tau} x_{b,\\kappa\\to j,\\tau,ts}\\Big) \\le e

    Reads max_share, by, pooled, scope. Dual: currency per tonne of extra allowance.
    """
    build_rule_rows(m, d, "max_supplier_share")


@rule_builder("max_country_share")
def add_max_country_share(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `max_country_share`: deliveries with a step at stage S in country C are at most a
    share of demand (per stage, per non-exempt country).

    .. math:: \\sum_{b\\in g}\\sum_{\\tau:\\,(S,C)\\in\\tau} A_{bk\\tau ts} \\le s_r
        \\sum_{b\\in g} D_{bkt} + e

    Reads max_share, stages, exempt_groups, exempt_countries. Dual: currency per tonne of
    extra allowance (per percentage point in rules.csv).
    """
    build_rule_rows(m, d, "max_country_share")


@rule_builder("min_content_share")
def add_min_content_share(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `min_content_share`: deliveries whose every step at the listed stages lies in the
    qualifying countries cover at least a share of demand.

    .. math:: \\sum_{b\\in g}\\sum_{\\tau\\ \\mathrm{qualifying}} A_{bk\\tau ts} \\ge s_{rt}
        \\sum_{b\\in g} D_{bkt} - e

    Reads min_share (constant or ramp), stages, groups, countries. Dual: currency per tonne of
    required content (per percentage point in rules.csv).
    """
    build_rule_rows(m, d, "min_content_share")


@rule_builder("exclusion")
def add_exclusion(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `exclusion`: from its first year, no delivery may have a step at a listed stage in
    an excluded country.

    .. math:: \\sum_{\\tau:\\,\\exists (S,C)\\in\\tau,\\ S\\in\\mathcal{S}_r,\\
        C\\in\\mathcal{C}_r} A_{bk\\tau ts} \\le e

    Reads stages, groups, countries, from_year. Dual: currency per tonne of excluded content
    that would be allowed.
    """
    build_rule_rows(m, d, "exclusion")


@rule_builder("min_recycled_share")
def add_min_recycled_share(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `min_recycled_share`: deliveries with a RECYCLE step cover at least a share of
    demand.

    .. math:: \\sum_{b\\in g}\\sum_{\\tau \\ni \\mathrm{RECYCLE}} A_{bk\\tau ts} \\ge
        s_{rt}\\sum_{b\\in g} D_{bkt} - e

    Reads min_share. Dual: currency per tonne of required recycled content.
    """
    build_rule_rows(m, d, "min_recycled_share")


@rule_builder("max_offtake_share")
def add_max_offtake_share(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `max_offtake_share`: buyers of one class take at most a share of a facility's
    output (contract sales and tolling) in a year.

    .. math:: \\sum_{b \\in \\mathcal{B}_c} \\Big(\\sum_{o \\in O(f)} d_{obts} + \\sum_c
        p_{fbcts}\\Big) - s_r \\sum_b \\Big(\\sum_{o \\in O(f)} d_{obts} + \\sum_c
        p_{fbcts}\\Big) \\le e

    Reads facilities, buyer_class, max_share. Dual: currency per tonne of extra allowance.
    """
    build_rule_rows(m, d, "max_offtake_share")


@rule_builder("bankability")
def add_bankability(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `bankability`: a build option is built only if the offtake committed to its
    facility by the scoped buyers covers a share of its ramped nameplate in each of its first
    years of operation (first stage: one row for all scenarios).

    .. math:: \\sum_{o:\\,\\mathrm{supplier}(o)=f}\\ \\sum_{b \\in B_r} \\theta_o\\, q_{obt} \\ge
        s_r \\sum_{j \\in J(f):\\ y_j \\le t < y_j + n_r} \\rho_{jt} N_j\\, b_j - e

    Reads facilities, min_share, first_years, scope (buyers pooled, years). Dual: currency per
    tonne of committed offtake the lenders require (LP with the build and signing decisions
    fixed).
    """
    build_rule_rows(m, d, "bankability")


@rule_builder("max_emission_intensity")
def add_max_emission_intensity(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `max_emission_intensity`: the emissions of the activities upstream of a material
    in a buyer's (or pooled group's) supply network are at most a cap per kg of it delivered.

    .. math:: \\sum_{b\\in g} E^{k}_{bts} - \\iota_{rt} \\sum_{b\\in g}\\sum_{\\tau}
        A_{bk\\tau ts} \\le e

    Reads max_kg_per_kg (constant or by year), pooled, scope, and the emission factors of
    facilities, spot markets and arcs. Dual: currency per t CO2e of extra allowance.
    """
    build_rule_rows(m, d, "max_emission_intensity")


def total_violation(m: pyo.ConcreteModel, d: ModelData):
    return (sum(m.v_rule_violation_t[k] for k in m.RELAXABLE_ROWS)
            + sum(m.v_count_violation[r] for r in m.RELAXABLE_COUNT_RULES))
