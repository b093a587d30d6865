"""What procurement-rule rows are made of: `RuleRow`, the rule scopes, and the facts of the
plan the rows read.

Owns `RuleRow` (one row as formulation.md defines it: lhs against a bound, with its slack and
violation), `EXPECTED` (the scenario label of rows held in expectation), the scope helpers
(buyers, years, materials, groups of a rule) and `Facts` / `gather_facts`: deliveries by tag,
spot purchases, contract deliveries, processing and demand, indexed once per check.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from offtake.check.context import Ctx
from offtake.check.demand import Deliveries, all_demand
from offtake.check.spot import spot_flows
from offtake.check.tables import Plan
from offtake.check.tags import Step, parse_tag
from offtake.domain.schema import Offer, RuleBase


@dataclass
class RuleRow:
    """One rule row as formulation.md defines it: num (lhs) against a bound."""

    rule: Any
    """The rule (a model of its registered kind)."""
    label: str
    year: int | None
    scenario: str
    sense: str
    lhs: float
    bound: float
    base: float | None = None
    """base_t: the denominator (caps) or the demand (shares of demand); None if undefined."""
    share: float | None = None
    """The rule's share s (share_bound); None for count and exclusion rows."""

    @property
    def key(self) -> tuple[str, str, int | None, str]:
        return (self.rule.id, self.label, self.year, self.scenario)

    @property
    def slack(self) -> float:
        return self.bound - self.lhs if self.sense == "le" else self.lhs - self.bound

    @property
    def violation(self) -> float:
        return max(0.0, -self.slack)

    def matters(self, tol: float) -> bool:
        """Must be in rules.csv: a count row, a cap whose num is positive, or a share of
        demand with a positive bound. Other rows hold for any plan and may be left out."""
        if self.year is None:
            return True
        return (self.lhs if self.sense == "le" else self.bound) > tol


EXPECTED = "expected"
"""Scenario label of the rows of a rule that holds in expectation (formulation.md)."""


# --- scopes ----------------------------------------------------------------------------------
def scoped_buyers(c: Ctx, rule: RuleBase) -> list[str]:
    """The buyers in the rule's scope (all without `scope.buyers`)."""
    scoped = rule.scope.buyers
    return [b for b in c.buyers if scoped is None or b in scoped]


def scoped_years(c: Ctx, rule: RuleBase) -> list[int]:
    """The horizon years in the rule's scope (all without `scope.years`)."""
    scoped = rule.scope.years
    return [t for t in c.years if scoped is None or t in scoped]


def _demanded(c: Ctx, buyers: Iterable[str]) -> list[str]:
    """Materials the buyers demand (the default material scope)."""
    return sorted({k for b in buyers for k in c.buyers[b].demand_t})


def scoped_materials(c: Ctx, rule: RuleBase, buyers: list[str]) -> list[str]:
    """`scope.materials` sorted, else the materials the buyers demand."""
    return sorted(rule.scope.materials) if rule.scope.materials is not None else _demanded(
        c, buyers)


def buyer_groups(rule: RuleBase, buyers: list[str]) -> list[tuple[str, list[str]]]:
    """(label, buyers) of each group: every buyer alone, or 'pooled'."""
    if getattr(rule, "pooled", False):
        return [("pooled", buyers)]
    return [(b, [b]) for b in buyers]


# --- the facts rule rows read ----------------------------------------------------------------
@dataclass
class Facts:
    """What rule rows read from the plan, indexed once."""

    plan: Plan
    delivered: dict[tuple[str, str, int, str], list[tuple[frozenset[Step], float]]]
    """(b, k, t, s) -> (steps of the tag, t delivered) for each tag: A_{bk tag ts}."""
    spot: dict[tuple[str, str, int, str], float]
    """(b, k, t, s) -> spot purchases of k by b (flows out of markets, to any node)."""
    volume: dict[tuple[str, int, str], list[tuple[Offer, float]]]
    """(b, t, s) -> (offer, t delivered under it) for b (take_or_pay: delivered counts)."""
    processed: dict[tuple[str, int, str], dict[str, float]]
    """(f, t, s) -> buyer -> t made by f for the buyer."""
    demand: dict[tuple[str, str, int, str], float]


def gather_facts(c: Ctx, plan: Plan, arrived: Deliveries) -> Facts:
    """Index the plan's deliveries, spot purchases, contract deliveries, processing and the
    demand for the rule rows."""
    delivered: dict = defaultdict(list)
    for (b, k, tag, year, s), x in arrived.items():
        delivered[(b, k, year, s)].append((parse_tag(tag) or frozenset(), x))
    spot: dict = defaultdict(float)
    for (k, b, _j, _tag, year, s), x in spot_flows(c, plan).items():
        spot[(b, c.markets[k].material, year, s)] += x
    volume: dict = defaultdict(list)
    for (o_id, b, year, s), x in plan.delivered.items():
        volume[(b, year, s)].append((c.offers[o_id], x))
    processed: dict = defaultdict(lambda: defaultdict(float))
    for (f, b, _comb, year, s), p in plan.production.items():
        processed[(f, year, s)][b] += p
    return Facts(plan, delivered, spot, volume, processed, all_demand(c))


def delivered_sum(d: Facts, group: list[str], k: str, year: int, s: str,
                  counts: Callable[[frozenset[Step]], bool] = lambda steps: True) -> float:
    """Sum of A_{bk tag t s} over b in the group and the tags whose steps `counts` accepts."""
    return sum(x for b in group for steps, x in d.delivered.get((b, k, year, s), ())
               if counts(steps))
