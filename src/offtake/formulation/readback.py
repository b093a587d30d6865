"""Reading a solved model back: variable values and rule rows as tidy frames, the rules'
shadow prices, and the first-stage plan (read, fixed in another model, or turned into the LP
whose duals are shadow prices)."""

from __future__ import annotations

import pandas as pd
import pyomo.core as pyo

from offtake.domain.registry import COST_TERMS, RULE_KINDS
from offtake.formulation.data import ModelData
from offtake.formulation.rules import row_form, row_scenarios


def fix_integers(m: pyo.ConcreteModel) -> None:
    """Fix every integer variable at its (rounded) value and make it continuous, so that the
    model left is an LP whose duals are shadow prices given that portfolio."""
    for v in m.component_data_objects(pyo.Var):
        if v.is_integer() and v.value is not None:
            value = round(v.value)
            v.domain = pyo.Reals
            v.fix(value)


def rule_duals(m: pyo.ConcreteModel, duals: dict, basis: str) -> pd.DataFrame:
    """Shadow price of every rule row: objective change per unit of relaxation (>= 0 when the
    rule binds), from the duals of an LP (`basis` says which: the LP itself, or the MIP's LP
    with integer decisions fixed at their optimum)."""
    rows = []
    for comp in (k.component for k in RULE_KINDS.values()):
        con = getattr(m, comp, None)
        if con is None:
            continue
        for key, cd in con.items():
            dual = duals.get(cd)
            if dual is None:
                continue
            le = cd.has_ub() and not cd.has_lb()
            row_id, scenario = (key, "") if isinstance(key, str) else key
            rows.append((row_id, scenario, -dual if le else dual, basis))
    return pd.DataFrame(rows, columns=["row_id", "scenario", "shadow_price", "basis"])


def has_integers(m: pyo.ConcreteModel) -> bool:
    return any(v.is_integer() for v in m.component_data_objects(pyo.Var))


def solution_values(m: pyo.ConcreteModel, d: ModelData) -> dict[str, pd.DataFrame]:
    """Variable values, cost terms and rule rows as tidy frames (called only when a solution
    is loaded)."""

    def frame(var, cols, value_col):
        rows = [(*(k if isinstance(k, tuple) else (k,)), var[k].value or 0.0) for k in var]
        return pd.DataFrame(rows, columns=[*cols, value_col])

    _snap(m)
    signed = {o: round(m.v_signed[o].value or 0.0) for o in m.OFFERS}
    return {
        "signed": pd.DataFrame({"offer_id": list(signed), "signed": list(signed.values())}),
        "volume": frame(m.v_volume_t, ["offer_id", "buyer", "year"], "volume_t"),
        "flows": frame(m.v_flow_t, ["buyer", "from_node", "to_node", "tag", "year", "scenario"],
                       "flow_t"),
        "production": frame(m.v_production_t, ["facility", "buyer", "combo", "year",
                                               "scenario"], "production_t"),
        "unmet": frame(m.v_unmet_t, ["buyer", "material", "year", "scenario"], "unmet_t"),
        "costs": pd.DataFrame({"term": list(COST_TERMS),
                               "value": [pyo.value(getattr(m, f"cost_{n}")) for n in COST_TERMS]}),
        "risk": pd.DataFrame({"cvar": [pyo.value(m.cvar) if d.cvar_weight > 0 else None],
                              "cost_risk": [pyo.value(m.cost_risk)]}),
        "scenario_costs": pd.DataFrame(
            [(s, n, pyo.value(m.scenario_term_cost[n, s])) for s in d.SCENARIOS
             for n in COST_TERMS], columns=["scenario", "term", "value"]),
        "count_violation": frame(m.v_count_violation, ["rule_id"], "violation"),
        "row_violation": frame(m.v_rule_violation_t, ["row_id", "scenario"], "violation"),
        "supplier_used": frame(m.v_supplier_used, ["rule_id", "unit"], "used"),
        "rule_rows": _rule_row_values(m, d),
        "start": frame(m.v_start, ["offer_id", "start_year"], "started"),
        "delivered": frame(m.v_delivered_t, ["offer_id", "buyer", "year", "scenario"],
                           "delivered_t"),
        "shortfall": frame(m.v_shortfall_t, ["offer_id", "buyer", "year", "scenario"],
                           "shortfall_t"),
        "tier_choice": frame(m.v_tier, ["offer_id", "period", "tier"], "chosen"),
        "tier_volume": frame(m.v_tier_t, ["offer_id", "year", "tier"], "volume_t"),
        "credit": frame(m.v_credit, ["offer_id", "year", "scenario"], "credit"),
        "resale": frame(m.v_resale_t, ["buyer", "market", "year", "scenario"], "volume_t"),
        "stock": frame(m.v_stock_t, ["buyer", "material", "year", "scenario"], "stock_t"),
        "built": frame(m.v_built, ["build_id"], "built"),
        "stockpile_order": frame(m.v_stockpile_order_t, ["stockpile", "market", "year"],
                                 "volume_t"),
        "stockpile_buy": frame(m.v_stockpile_buy_t, ["stockpile", "market", "year", "scenario"],
                               "volume_t"),
        "stockpile_level": frame(m.v_stockpile_level_t, ["stockpile", "tag", "year", "scenario"],
                                 "level_t"),
    }


def _snap(m: pyo.ConcreteModel, zero: float = 1e-9) -> None:
    """Round integer variables and zero out solver noise (|x| < 1e-9), so that the cost terms
    and the tables written from them describe exactly the same plan."""
    for v in m.component_data_objects(pyo.Var):
        if v.value is None or v.fixed:
            continue
        if v.is_integer():
            v.set_value(round(v.value), skip_validation=True)
        elif abs(v.value) < zero:
            v.set_value(0.0, skip_validation=True)


def _rule_row_values(m: pyo.ConcreteModel, d: ModelData) -> pd.DataFrame:
    out = []
    for rows in d.rule_rows.values():
        for row in rows:
            for s in row_scenarios(d, row):
                num = pyo.value(row_form(m, d, row, s, part="num"))
                den = pyo.value(row_form(m, d, row, s, part="den"))
                out.append((row.row_id, s, num, den))
    return pd.DataFrame(out, columns=["row_id", "scenario", "num", "den"])


FIRST_STAGE = ("v_signed", "v_start", "v_volume_t", "v_tier", "v_tier_t", "v_built",
               "v_stockpile_order_t")
"""Decisions taken now, the same in every scenario (the portfolio)."""


PLAN = (*FIRST_STAGE, "v_supplier_used", "v_count_violation")
"""The first stage plus the supplier-count bookkeeping that follows from it: everything a
scenario needs to know about a portfolio (a soft count rule's violation is paid in each)."""


def first_stage_values(m: pyo.ConcreteModel) -> dict[str, dict]:
    return {name: {k: v.value for k, v in getattr(m, name).items()} for name in PLAN}


def fix_first_stage(m: pyo.ConcreteModel, values: dict[str, dict]) -> None:
    """Fix the portfolio of another solve (e.g. the expected-value plan) in this model;
    decisions this model lacks are left free, missing values count as 0."""
    for name, vals in values.items():
        var = getattr(m, name)
        for k in var:
            x = vals.get(k)
            v = var[k]
            if v.is_integer() and x is not None:
                v.fix(round(x))
            else:
                v.fix(_within_bounds(x or 0.0, v.lb, v.ub))


SNAP = 1e-9
"""A solver's value this close outside a bound (absolute, or relative to the bound) is the
bound: HiGHS returns -3.6e-15 for a volume at 0 (feasibility tolerance 1e-7)."""


def _within_bounds(x: float, lb: float | None, ub: float | None) -> float:
    """x, or the bound it passes by no more than SNAP (farther: x, for the model to refuse)."""
    if lb is not None and x < lb and lb - x <= SNAP * max(1.0, abs(lb)):
        return float(lb)
    if ub is not None and x > ub and x - ub <= SNAP * max(1.0, abs(ub)):
        return float(ub)
    return x
