"""The optimisation model: the only code that builds Pyomo components.

`build_model` reads like the table of contents of `models/formulation.md`: sets, variables,
one `add_<family>` call per constraint family, then the registered cost terms whose sum is the
objective. Each builder's name is used for its Pyomo components, its section of the
formulation, the result tables and the checker.

First-stage decisions (signing, contracted volume) have no scenario index; every second-stage
quantity (flows, processing, unmet demand, spot purchases) carries one.

Reads only `ModelData`; never reads the schema, never calls a solver.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pandas as pd
import pyomo.environ as pyo

from offtake.data import ModelData

COST_TERMS: dict[str, Callable[[pyo.ConcreteModel, ModelData], object]] = {}
"""Registered objective terms, in report order; `cost_<name>` components sum to the objective."""


def cost_term(name: str) -> Callable:
    def register(fn: Callable) -> Callable:
        COST_TERMS[name] = fn
        return fn

    return register


def build_model(d: ModelData) -> pyo.ConcreteModel:
    m = pyo.ConcreteModel(name="offtake")
    add_sets(m, d)
    add_variables(m, d)
    add_contract_volume(m, d)
    add_facility_capacity(m, d)
    add_facility_output(m, d)
    add_facility_input(m, d)
    add_spot_availability(m, d)
    add_demand_balance(m, d)
    add_max_suppliers(m, d)
    for name, term in COST_TERMS.items():
        setattr(m, f"cost_{name}", pyo.Expression(expr=term(m, d)))
    m.total_cost = pyo.Objective(
        expr=sum(getattr(m, f"cost_{n}") for n in COST_TERMS), sense=pyo.minimize
    )
    return m


# --- sets and variables ----------------------------------------------------------------------
def add_sets(m: pyo.ConcreteModel, d: ModelData) -> None:
    S = d.SCENARIOS
    m.OFFERS = pyo.Set(initialize=d.OFFERS, ordered=True)
    m.OFFER_YEARS = pyo.Set(initialize=d.OFFER_YEARS, dimen=2, ordered=True)
    m.OFFER_BUYER_YEARS = pyo.Set(initialize=d.OFFER_BUYER_YEARS, dimen=3, ordered=True)
    m.FLOWS = pyo.Set(initialize=[(b, i, j, y, s) for b, i, j in d.BUYER_ARCS
                                  for y in d.YEARS for s in S], dimen=5, ordered=True)
    m.PRODUCTIONS = pyo.Set(initialize=[(f, b, y, s) for f, b in d.PROCESSOR_BUYERS
                                        for y in d.YEARS for s in S], dimen=4, ordered=True)
    m.UNMET = pyo.Set(initialize=[(b, mat, y, s) for b, mat, y in d.DEMANDS for s in S],
                      dimen=4, ordered=True)
    m.RULE_SUPPLIERS = pyo.Set(
        initialize=sorted({(r, u) for r, u, _ in d.RULE_SUPPLIER_OFFERS}), dimen=2,
        ordered=True)
    m.SOFT_RULES = pyo.Set(initialize=[r for r in d.MAX_SUPPLIER_RULES if not d.rule_hard[r]],
                           ordered=True)


def add_variables(m: pyo.ConcreteModel, d: ModelData) -> None:
    m.v_signed = pyo.Var(m.OFFERS, domain=pyo.Binary)
    m.v_volume_t = pyo.Var(m.OFFER_BUYER_YEARS, domain=pyo.NonNegativeReals,
                           bounds=lambda _, o, b, y: (0, d.offer_max_t[o]))
    m.v_flow_t = pyo.Var(m.FLOWS, domain=pyo.NonNegativeReals)
    m.v_production_t = pyo.Var(m.PRODUCTIONS, domain=pyo.NonNegativeReals,
                               bounds=lambda _, f, b, y, s: (0, d.capacity_t[f, y]))
    m.v_unmet_t = pyo.Var(m.UNMET, domain=pyo.NonNegativeReals,
                          bounds=lambda _, b, mat, y, s: (0, d.demand_t[b, mat, y]))
    m.v_supplier_used = pyo.Var(m.RULE_SUPPLIERS, domain=pyo.Binary)
    m.v_rule_violation = pyo.Var(m.SOFT_RULES, domain=pyo.NonNegativeReals)


def _group(keys, key, value) -> dict:
    out: dict = defaultdict(list)
    for k in keys:
        out[key(k)].append(value(k))
    return out


# --- constraint families ---------------------------------------------------------------------
def add_contract_volume(m: pyo.ConcreteModel, d: ModelData) -> None:
    """A signed offer is taken between its minimum and maximum annual volume; an unsigned one
    not at all.

    .. math:: \\underline{q}_o z_o \\le \\sum_b q_{obt} \\le \\overline{q}_o z_o

    Reads offers' min_t_per_year, max_t_per_year. Dual: value (currency per t) of one more
    tonne of the offer's minimum (min row) or maximum (max row) in that year.
    """
    buyers = _group(d.OFFER_BUYER_YEARS, lambda k: (k[0], k[2]), lambda k: k[1])

    def taken(o, y):
        return sum(m.v_volume_t[o, b, y] for b in buyers.get((o, y), []))

    m.contract_volume_max = pyo.Constraint(
        m.OFFER_YEARS, rule=lambda _, o, y: taken(o, y) <= d.offer_max_t[o] * m.v_signed[o])
    m.contract_volume_min = pyo.Constraint(
        m.OFFER_YEARS, rule=lambda _, o, y: taken(o, y) >= d.offer_min_t[o] * m.v_signed[o])


def add_facility_capacity(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Contract sales from a facility's own feed plus what it processes for buyers stay within
    its capacity, in every year and scenario.

    .. math:: \\sum_{o \\in O(f)} \\sum_b q_{obt} + \\sum_b p_{fbts} \\le K_{ft}

    Reads facilities' capacity_t. Dual: value of one more tonne of capacity (currency per t).
    """
    sales = _group(d.OFFER_BUYER_YEARS, lambda k: (d.offer_supplier[k[0]], k[2]), lambda k: k)
    made = _group(m.PRODUCTIONS, lambda k: (k[0], k[2], k[3]), lambda k: k)
    index = sorted({(f, y, s) for f, y in sales for s in d.SCENARIOS} | set(made))
    m.FACILITY_YEARS = pyo.Set(initialize=index, dimen=3, ordered=True)
    m.facility_capacity_max = pyo.Constraint(
        m.FACILITY_YEARS,
        rule=lambda _, f, y, s: sum(m.v_volume_t[k] for k in sales.get((f, y), []))
        + sum(m.v_production_t[k] for k in made.get((f, y, s), [])) <= d.capacity_t[f, y])


def add_facility_output(m: pyo.ConcreteModel, d: ModelData) -> None:
    """What leaves a facility for a buyer equals what it made for that buyer plus what the
    buyer bought from it under contract.

    .. math:: \\sum_j x_{b,f\\to j,ts} = p_{fbts} + \\sum_{o \\in O(f)} q_{obt}

    Reads arcs and offers. Dual: value of a tonne of the facility's product at its gate, for
    that buyer (currency per t).
    """
    out_arcs = _group(d.BUYER_ARCS, lambda k: (k[1], k[0]), lambda k: k[2])
    sold = _group(d.OFFER_BUYER_YEARS, lambda k: (d.offer_supplier[k[0]], k[1], k[2]),
                  lambda k: k[0])
    made = set(d.PROCESSOR_BUYERS)
    m.NODE_BUYER_YEARS = pyo.Set(
        initialize=[(f, b, y, s) for f, b in d.NODE_BUYERS for y in d.YEARS
                    for s in d.SCENARIOS], dimen=4, ordered=True)
    m.facility_output_balance = pyo.Constraint(
        m.NODE_BUYER_YEARS,
        rule=lambda _, f, b, y, s: sum(m.v_flow_t[b, f, j, y, s] for j in out_arcs.get((f, b), []))
        == (m.v_production_t[f, b, y, s] if (f, b) in made else 0)
        + sum(m.v_volume_t[o, b, y] for o in sold.get((f, b, y), [])))


def add_facility_input(m: pyo.ConcreteModel, d: ModelData) -> None:
    """A processor receives, for each buyer, each recipe input in proportion to its output.

    .. math:: \\sum_{i: \\mu(i)=k} x_{b,i\\to f,ts} = a_{fk} \\, p_{fbts}

    Reads facilities' recipe. Dual: value of a tonne of input k delivered to f (currency per t).
    """
    in_arcs = _group(d.BUYER_ARCS, lambda k: (k[2], k[0], d.arc_material[k[1], k[2]]),
                     lambda k: k[1])
    m.INPUT_BUYER_YEARS = pyo.Set(
        initialize=[(f, b, k, y, s) for f, b, k in d.INPUT_BUYERS for y in d.YEARS
                    for s in d.SCENARIOS], dimen=5, ordered=True)
    m.facility_input_balance = pyo.Constraint(
        m.INPUT_BUYER_YEARS,
        rule=lambda _, f, b, k, y, s: sum(m.v_flow_t[b, i, f, y, s]
                                          for i in in_arcs.get((f, b, k), []))
        == d.recipe[f][k] * m.v_production_t[f, b, y, s])


def add_spot_availability(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Spot purchases from a market, over all buyers, stay within its availability.

    .. math:: \\sum_b \\sum_j x_{b,k\\to j,ts} \\le A_{kt}

    Reads spot_markets' availability_t (unlimited markets have no row). Dual: scarcity value
    of spot volume (currency per t).
    """
    outs = _group(m.FLOWS, lambda k: (k[1], k[3], k[4]), lambda k: k)
    index = sorted(key for key in outs if key[:2] in d.spot_availability_t)
    m.SPOT_YEARS = pyo.Set(initialize=index, dimen=3, ordered=True)
    m.spot_availability_max = pyo.Constraint(
        m.SPOT_YEARS, rule=lambda _, k, y, s: sum(m.v_flow_t[x] for x in outs.get((k, y, s), []))
        <= d.spot_availability_t[k, y])


def add_demand_balance(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Each buyer's demand per material, year and scenario is delivered or counted as unmet.

    .. math:: \\sum_{i: \\mu(i)=k} x_{b,i\\to b,ts} + u_{bkts} \\ge D_{bkt}

    Reads buyers' demand_t. Dual: marginal cost of serving one more tonne (currency per t).
    """
    arrivals = _group([k for k in d.BUYER_ARCS if k[2] == k[0]],
                      lambda k: (k[0], d.arc_material[k[1], k[2]]), lambda k: k[1])
    m.demand_balance = pyo.Constraint(
        m.UNMET,
        rule=lambda _, b, k, y, s: sum(m.v_flow_t[b, i, b, y, s] for i in arrivals.get((b, k), []))
        + m.v_unmet_t[b, k, y, s] >= d.demand_t[b, k, y])


def add_max_suppliers(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Rule `max_suppliers`: at most N distinct suppliers (facilities or companies) with a
    signed offer in the rule's scope.

    .. math:: w_{rn} \\ge z_o \\;\\forall o \\in O(r,n), \\quad \\sum_n w_{rn} \\le N_r + e_r

    Reads rules of kind max_suppliers (max_count, count, scope, hard, penalty_per_unit).
    Dual: value of allowing one more supplier (currency per supplier; MIP: see rules.csv).
    """
    m.RULE_SUPPLIER_OFFERS = pyo.Set(initialize=d.RULE_SUPPLIER_OFFERS, dimen=3, ordered=True)
    m.max_suppliers_link = pyo.Constraint(
        m.RULE_SUPPLIER_OFFERS, rule=lambda _, r, u, o: m.v_supplier_used[r, u] >= m.v_signed[o])
    units = _group(m.RULE_SUPPLIERS, lambda k: k[0], lambda k: k[1])
    m.MAX_SUPPLIER_RULES = pyo.Set(initialize=[r for r in d.MAX_SUPPLIER_RULES if r in units],
                                   ordered=True)
    m.max_suppliers_max = pyo.Constraint(
        m.MAX_SUPPLIER_RULES,
        rule=lambda _, r: sum(m.v_supplier_used[r, u] for u in units.get(r, []))
        <= d.rule_max_count[r] + (m.v_rule_violation[r] if r in m.SOFT_RULES else 0))


# --- objective terms -------------------------------------------------------------------------
def _expected(d: ModelData, s: str, y: int) -> float:
    return d.probability[s] * d.discount[y]


@cost_term("contract_payments")
def _contract_payments(m, d):
    return sum(d.discount[y] * d.offer_price_per_t[o, y] * m.v_volume_t[o, b, y]
               for o, b, y in m.OFFER_BUYER_YEARS)


@cost_term("signing_costs")
def _signing_costs(m, d):
    return sum(d.discount[d.offer_signing_year[o]] * d.offer_signing_cost[o] * m.v_signed[o]
               for o in m.OFFERS if d.offer_signing_cost[o] > 0)


@cost_term("spot_purchases")
def _spot_purchases(m, d):
    spots = set(d.SPOTS)
    return sum(_expected(d, s, y) * d.spot_price_per_t[i, y] * m.v_flow_t[b, i, j, y, s]
               for b, i, j, y, s in m.FLOWS if i in spots)


@cost_term("freight")
def _freight(m, d):
    return sum(_expected(d, s, y) * d.freight_per_t[i, j] * m.v_flow_t[b, i, j, y, s]
               for b, i, j, y, s in m.FLOWS if d.freight_per_t[i, j] > 0)


@cost_term("operating_costs")
def _operating_costs(m, d):
    return sum(_expected(d, s, y) * d.opex_per_t[f, y] * m.v_production_t[f, b, y, s]
               for f, b, y, s in m.PRODUCTIONS if d.opex_per_t[f, y] > 0)


@cost_term("unmet_demand_penalty")
def _unmet_demand_penalty(m, d):
    return sum(_expected(d, s, y) * d.unmet_penalty_per_t[k] * m.v_unmet_t[b, k, y, s]
               for b, k, y, s in m.UNMET)


@cost_term("rule_violation_penalties")
def _rule_violation_penalties(m, d):
    return sum(d.rule_penalty[r] * m.v_rule_violation[r] for r in m.SOFT_RULES)


# --- reading a solution back -----------------------------------------------------------------
def solution_values(m: pyo.ConcreteModel, d: ModelData) -> dict[str, pd.DataFrame]:
    """Variable values and cost terms as tidy frames (called only when a solution is loaded)."""

    def frame(var, cols, value_col):
        rows = [(*(k if isinstance(k, tuple) else (k,)), var[k].value or 0.0) for k in var]
        return pd.DataFrame(rows, columns=[*cols, value_col])

    signed = {o: round(m.v_signed[o].value or 0.0) for o in m.OFFERS}
    return {
        "signed": pd.DataFrame({"offer_id": list(signed), "signed": list(signed.values())}),
        "volume": frame(m.v_volume_t, ["offer_id", "buyer", "year"], "volume_t"),
        "flows": frame(m.v_flow_t, ["buyer", "from_node", "to_node", "year", "scenario"],
                       "flow_t"),
        "production": frame(m.v_production_t, ["facility", "buyer", "year", "scenario"],
                            "production_t"),
        "unmet": frame(m.v_unmet_t, ["buyer", "material", "year", "scenario"], "unmet_t"),
        "costs": pd.DataFrame({"term": list(COST_TERMS),
                               "value": [pyo.value(getattr(m, f"cost_{n}")) for n in COST_TERMS]}),
        "rule_violation": frame(m.v_rule_violation, ["rule_id"], "violation"),
        "supplier_used": frame(m.v_supplier_used, ["rule_id", "unit"], "used"),
    }
