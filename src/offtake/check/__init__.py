"""Independent checker: recompute every rule of the model from the instance and result tables.

Owns `check_tables` / `check_folder`, which read the result tables the solver writes
(`models/formulation.md`, "Result tables"), re-derive the allowed arcs, the origin tags, every
constraint family, every procurement-rule row, every unit price (fixed, index-linked with its
collar, floor payer and upside share), tariff, fiscal cost and cost term (in each scenario,
and the CVaR risk term) from the instance (schema objects, with each scenario's changes to
demand, capacity, spot markets and index paths) alone, and report each violation by the
component name the formulation uses (`facility_capacity_max`, `demand_balance`,
`take_or_pay_shortfall_min`, ...). Problems that are not a broken constraint are reported as
`table` (a table disagrees with the instance or with another table), `origin_tag` (a tag that
is not canonical or that its node cannot carry), `nonanticipativity` (a first-stage decision
that differs between scenarios), `resale_allowed` / `stock_allowed` (a resale or stock the
instance does not allow), `cost_term` / `buyer_cost` (a buyer's share of a term, formulation.md
"Cost per buyer") / `scenario_cost` / `fiscal_cost` / `objective` (money that does not add
up), and `internal_error` (a rule kind or cost term registered in
`offtake.domain.registry` that the checker has no function for: the check is incomplete).

The modules, in the order a check runs:

    checker    check_tables / check_folder: the order of the checks
    context    Violation, CheckReport, UnitPrice, Ctx (lookups, tolerances, scenario data)
    tags       origin-tag text and predicates
    tables     table columns, reading and normalising the tables, Plan
    prices     unit prices, tariffs, resale price
    contracts  offers, volumes, take-or-pay, tiers, prepayment credits
    builds     build options: timing, ramped capacity, facility_build, builds.csv
    network    arcs, facility balances and capacity (with what built options add)
    origins    origin tags on the tables, origin.csv
    spot       spot availability, spot.csv
    demand     deliveries, demand balance, resale and stock
    rulerows   RuleRow, rule scopes, the facts rule rows read
    rules      one function per rule kind (RULE_CHECKS), check_rules
    ruletable  hard rows hold, rules.csv, rows held in expectation
    objective  one function per cost term (COST_CHECKS), each per scenario and buyer, CVaR
    costs      costs.csv, scenario_costs.csv, fiscal costs, the objective

It must stay independent of the model: the package imports only the schema, findings,
`network.at`, the registry (names of rule kinds and cost terms), io (for loading), its own
modules (absolutely), pandas, numpy and the standard library; never `model`, `data`, `solve`,
`results`, `origin`, `ruledata`, `pipeline` or `economics` (a test parses every module's
imports to make sure). The tag text, the tag predicates, the prices and every rule row are
recomputed here from formulation.md. No Pyomo.
"""

from __future__ import annotations

from offtake.check.checker import check_tables
from offtake.check.context import CheckReport, Violation
from offtake.check.folder import check_folder

__all__ = ["CheckReport", "Violation", "check_folder", "check_tables"]
