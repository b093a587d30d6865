"""The entry points: `check_tables` runs every check in order on a set of result tables,
`check_folder` on an output folder (its CSVs and summary.json).

Owns the order of the checks (first-stage decisions, the network, spot markets, demand,
origin, rules, money); each check lives in the module named after what it checks.
"""

from __future__ import annotations

import pandas as pd

from offtake.check.builds import check_facility_build
from offtake.check.concentration import check_concentration_table
from offtake.check.context import CheckReport, Ctx
from offtake.check.contracts import (
    check_contract_rows,
    check_contract_start,
    check_contract_volume,
    check_credit_rows,
    check_force_majeure,
    check_offer_decision,
    check_prepayment_credit,
    check_take_or_pay,
    check_volume_tiers,
)
from offtake.check.costs import check_costs
from offtake.check.demand import (
    check_demand_balance,
    check_resale_and_stock,
    deliveries,
)
from offtake.check.emissions import check_emissions_table
from offtake.check.network import (
    allowed_arcs,
    check_arc_allowed,
    check_facility_capacity,
    check_facility_input_balance,
    check_facility_output_balance,
    check_production_rows,
)
from offtake.check.objective import TermInputs
from offtake.check.origins import (
    check_contract_tags,
    check_flow_tags,
    check_origin_table,
    check_production_tags,
    check_spot_tags,
    check_tag_text,
)
from offtake.check.rules import check_rules
from offtake.check.spot import check_spot_availability, check_spot_table
from offtake.check.stockpiles import (
    check_stockpile_balance,
    check_stockpile_level,
    check_stockpile_release,
    check_stockpile_tables,
)
from offtake.check.tables import TABLE_COLUMNS, normalize_table, read_plan
from offtake.domain.schema import Instance


def check_tables(
    inst: Instance,
    tables: dict[str, pd.DataFrame],
    reported_objective: float | None,
    reported_costs: dict[str, float] | None,
    tol: float = 1e-6,
    cvar_weight: float | None = None,
    cvar_alpha: float | None = None,
    cvar_limit: float | None = None,
) -> CheckReport:
    """Check result tables against the instance; see the package docstring.

    `reported_costs` (the buyer's terms) defaults to the `costs` table; None for the objective
    skips that check. Third parties' fiscal costs are always read from the `costs` table.
    `cvar_weight` / `cvar_alpha` are the solve options of the risk term; without them a
    reported `risk_cvar` is taken as it is (it cannot be recomputed). `cvar_limit`: the solve
    option bounding CVaR_alpha of the scenario cost, held by the plan.
    """
    c = Ctx(inst, tol)
    t = {name: normalize_table(c, name, tables.get(name)) for name in TABLE_COLUMNS}
    plan = read_plan(c, t)
    arcs = allowed_arcs(inst)
    # first stage: offers, starts, volumes, tiers, builds; then deliveries, payments, credits
    check_offer_decision(c, plan)
    check_contract_start(c, t, plan)
    check_contract_volume(c, plan)
    check_take_or_pay(c, plan)
    check_force_majeure(c, plan)
    check_volume_tiers(c, t, plan)
    check_prepayment_credit(c, plan)
    check_facility_build(c, t, plan)
    check_contract_rows(c, t, plan)
    check_credit_rows(c, t)
    # the network
    check_arc_allowed(c, t, arcs)
    check_tag_text(c, t)
    check_contract_tags(c, t)
    check_spot_tags(c, t)
    check_production_tags(c, t)
    check_flow_tags(c, plan)
    check_facility_output_balance(c, plan)
    check_facility_input_balance(c, plan)
    check_facility_capacity(c, plan)
    check_production_rows(c, t)
    check_spot_availability(c, plan)
    check_spot_table(c, t, plan)
    check_stockpile_balance(c, plan)
    check_stockpile_level(c, plan)
    check_stockpile_release(c, plan)
    check_stockpile_tables(c, t, plan)
    # demand, origin, rules
    arrived = deliveries(c, plan)
    check_resale_and_stock(c, t)
    check_demand_balance(c, t, plan, arrived)
    check_origin_table(c, t, arrived)
    check_emissions_table(c, t, plan)
    check_concentration_table(c, t, plan)
    rows = check_rules(c, t, plan, arrived)
    # money
    return check_costs(c, t, plan, TermInputs(arcs, rows), reported_objective, reported_costs,
                       cvar_weight, cvar_alpha, cvar_limit)
