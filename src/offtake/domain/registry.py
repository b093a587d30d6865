"""What the model is made of, by name: rule kinds, constraint families and cost terms.

One entry per rule kind ties together what each layer implements for it:

    schema model (here)  ->  row builder (formulation.ruledata, for kinds in rows)
                         ->  constraint builder (formulation.model, `add_<family>`)
                         ->  checker function (check.rules)
                         ->  section `### <family>` of models/formulation.md

The layers register their functions under the kind's name (each in its own table, so the
checker never imports the formulation); `tests/test_registry.py` fails when an entry lacks
one of them. Constraint families that are not rules and the cost terms are listed here too, in
the order of the formulation, so the model, the results, the checker and the document agree on
one list. Adding a rule kind or a cost term is one entry here plus its functions
(docs/extending.md).

Owns names and metadata only: no Pyomo, no solver, nothing downstream of the schema.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from offtake.domain import schema


@dataclass(frozen=True)
class RuleKind:
    """A kind of procurement rule.

    `form` says how it enters the model: "count" rules are one row per rule over signed
    supplier units (first stage); "rows" rules become linear rows per group, year and scenario
    built by a row builder (`formulation.ruledata`) and added by the generic row family.
    """

    kind: str
    model: type[schema.RuleBase]
    family: str
    """Name of its constraint builder (`add_<family>`) and its formulation section."""
    component: str
    """Pyomo constraint holding its rows; also the name the checker reports violations under."""
    form: Literal["count", "rows"]
    sense: Literal["le", "ge"]
    """Side of its bound: "le" for a maximum or an exclusion, "ge" for a minimum."""
    unit: Literal["suppliers", "t"]
    """Unit of its slack, its violation and its penalty."""


RULE_KINDS: dict[str, RuleKind] = {}
"""Every rule kind, in the order the model builds them and the results list them."""


def register_rule_kind(entry: RuleKind) -> RuleKind:
    """Add a rule kind; the schema then accepts rules of that kind (the union of rule models
    is rebuilt). Raises ValueError on a kind registered twice or a model whose `kind` literal
    differs."""
    if entry.kind in RULE_KINDS:
        raise ValueError(f"rule kind '{entry.kind}' is already registered")
    literal = entry.model.model_fields["kind"].annotation
    if getattr(literal, "__args__", None) != (entry.kind,):
        raise ValueError(f"{entry.model.__name__}.kind must be Literal['{entry.kind}']")
    RULE_KINDS[entry.kind] = entry
    schema.set_rule_models([k.model for k in RULE_KINDS.values()])
    return entry


def unregister_rule_kind(kind: str) -> None:
    """Remove a kind added by `register_rule_kind` (for tests that add a toy kind)."""
    del RULE_KINDS[kind]
    schema.set_rule_models([k.model for k in RULE_KINDS.values()])


for _entry in (
    RuleKind("max_suppliers", schema.MaxSuppliersRule, "max_suppliers", "suppliers_max",
             "count", "le", "suppliers"),
    RuleKind("min_suppliers", schema.MinSuppliersRule, "min_suppliers", "suppliers_min",
             "count", "ge", "suppliers"),
    RuleKind("max_supplier_share", schema.MaxSupplierShareRule, "max_supplier_share",
             "supplier_share_max", "rows", "le", "t"),
    RuleKind("max_country_share", schema.MaxCountryShareRule, "max_country_share",
             "country_share_max", "rows", "le", "t"),
    RuleKind("min_content_share", schema.MinContentShareRule, "min_content_share",
             "content_share_min", "rows", "ge", "t"),
    RuleKind("exclusion", schema.ExclusionRule, "exclusion", "excluded_content_max", "rows",
             "le", "t"),
    RuleKind("min_recycled_share", schema.MinRecycledShareRule, "min_recycled_share",
             "recycled_share_min", "rows", "ge", "t"),
    RuleKind("max_offtake_share", schema.MaxOfftakeShareRule, "max_offtake_share",
             "offtake_share_max", "rows", "le", "t"),
    RuleKind("bankability", schema.BankabilityRule, "bankability", "bankability_min", "rows",
             "ge", "t"),
    RuleKind("max_emission_intensity", schema.MaxEmissionIntensityRule,
             "max_emission_intensity", "emission_intensity_max", "rows", "le", "t"),
):
    RULE_KINDS[_entry.kind] = _entry


def count_kinds() -> frozenset[str]:
    """Kinds decided on signed supplier units (first stage), one row per rule."""
    return frozenset(k for k, e in RULE_KINDS.items() if e.form == "count")


FAMILIES: tuple[str, ...] = (
    "offer_decision", "contract_start", "contract_volume", "take_or_pay", "force_majeure",
    "volume_tiers",
    "prepayment_credit", "facility_build",
    "facility_capacity", "facility_output", "facility_input", "spot_availability",
    "demand_balance",
    "stockpile_balance", "stockpile_level", "stockpile_release",
)
"""Constraint families that are not rule kinds, in the order `build_model` adds them; each
has a builder `add_<family>` and a section `### <family>` in models/formulation.md."""

RISK_FAMILIES: tuple[str, ...] = ("cvar", "cvar_limit")
"""Families of the risk measure (added after the cost terms they read)."""

COST_TERMS: tuple[str, ...] = (
    "contract_payments", "volume_rebates", "take_or_pay_shortfall", "liquidated_damages",
    "tariffs",
    "signing_costs", "prepayments", "prepayment_credits", "build_costs", "spot_purchases",
    "freight",
    "operating_costs", "carbon_costs", "resale_credit", "holding_costs", "unmet_demand_penalty",
    "rule_violation_penalties",
    "stockpile_purchases", "stockpile_holding", "stockpile_releases",
)
"""Objective terms in report order; each has a model expression (formulation.model), a
checker function (check.objective) and a line in the Objective section of formulation.md.
They sum to the buyer's expected cost (before the risk term)."""

F = TypeVar("F", bound=Callable)


def implementation_table(what: str, names: Callable[[], object]) -> tuple[
        dict[str, Callable], Callable[[str], Callable[[F], F]]]:
    """A table of one layer's implementations and the decorator that fills it:
    `@implements("exclusion")` registers the function under a name that must be known to
    `names()` (RULE_KINDS, COST_TERMS, ...), so a typo fails at import, not at solve time."""
    table: dict[str, Callable] = {}

    def implements(name: str) -> Callable[[F], F]:
        def register(fn: F) -> F:
            if name not in names():  # type: ignore[operator]
                raise ValueError(f"{what} '{name}' is not registered in offtake.domain.registry")
            table[name] = fn
            return fn

        return register

    return table, implements
