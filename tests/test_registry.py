"""Layer 1: the registry (offtake.domain.registry) against every layer that implements it.

Each registered rule kind has its schema model, its row builder (kinds in rows), its constraint
builder, its checker function and its section of models/formulation.md; each constraint family
its builder, its checker function and its section; each cost term its model expression, its
checker function and its line in the Objective section. A builder's `.. math::` formula is the
one of its section (the document is the reference). A toy rule kind, registered in a test with
its functions only, is solved, reported and checked like a built-in one.
"""

from __future__ import annotations

import inspect
import re
from typing import Literal

import pytest
from conftest import ROOT, approx, base, instance, solve_checked

import offtake.check.checker  # noqa: F401  (fills the checker's tables)
import offtake.formulation.model  # noqa: F401  (fills the formulation's tables)
from offtake.check.context import FAMILY_CHECKS, Ctx
from offtake.check.objective import COST_CHECKS
from offtake.check.rulerows import Facts, RuleRow, scoped_buyers, scoped_years
from offtake.check.rules import RULE_CHECKS
from offtake.domain.registry import (
    COST_TERMS,
    FAMILIES,
    RISK_FAMILIES,
    RULE_KINDS,
    RuleKind,
    register_rule_kind,
    unregister_rule_kind,
)
from offtake.domain.schema import RuleBase
from offtake.formulation import contracts, flows, objective, rules
from offtake.formulation.expressions import FAMILY_BUILDERS
from offtake.formulation.objective import COST_TERMS as TERM_EXPRESSIONS
from offtake.formulation.ruledata import ROW_BUILDERS, RowContext, make_row
from offtake.formulation.rules import RULE_BUILDERS, build_rule_rows
from offtake.io.loader import validate_mapping

FORMULATION = (ROOT / "models" / "formulation.md").read_text()
NOT_FAMILIES = {"add_sets", "add_variables"}
"""Builders of the model's index sets and variables, not of a constraint family."""


def sections() -> dict[str, str]:
    """`### name` -> its text, up to the next heading."""
    out = {}
    for m in re.finditer(r"^### (\w+)\s*$", FORMULATION, flags=re.M):
        rest = FORMULATION[m.end():]
        end = re.search(r"^#", rest, flags=re.M)
        out[m.group(1)] = rest[:end.start() if end else len(rest)]
    return out


def builders() -> dict[str, object]:
    """family -> its constraint builder, as build_model finds them."""
    out: dict[str, object] = {f: FAMILY_BUILDERS[f] for f in FAMILIES}
    out.update({e.family: RULE_BUILDERS[k] for k, e in RULE_KINDS.items()})
    out.update({f: objective.RISK_BUILDERS[f] for f in RISK_FAMILIES})
    return out


_SPACING = re.compile(r"\\(?:qquad|quad|[,;:!]|\s)|\s+")


def normalized(formula: str) -> str:
    """A formula without whitespace and TeX spacing commands (they do not change it)."""
    return _SPACING.sub("", formula)


def doc_formula(fn) -> str:
    doc = inspect.getdoc(fn) or ""
    m = re.search(r"\.\. math::(.*?)(?:\n\s*\n|$)", doc, flags=re.S)
    assert m, f"{fn.__name__} has no .. math:: block"
    return m.group(1)


# --- every entry has every layer -------------------------------------------------------------
@pytest.mark.parametrize("kind", list(RULE_KINDS))
def test_every_rule_kind_has_its_model_builders_checker_and_section(kind):
    entry = RULE_KINDS[kind]
    assert entry.model.model_fields["kind"].annotation.__args__ == (kind,)
    assert kind in RULE_BUILDERS and kind in RULE_CHECKS
    assert (kind in ROW_BUILDERS) == (entry.form == "rows")
    if entry.form == "count":  # rows kinds may be first stage too (bankability)
        assert entry.model.first_stage
    assert entry.family in sections()
    assert f"`{entry.component}`" in sections()[entry.family], \
        f"section {entry.family} does not name its component {entry.component}"


@pytest.mark.parametrize("family", [*FAMILIES, *RISK_FAMILIES])
def test_every_constraint_family_has_its_builder_checker_and_section(family):
    assert family in sections()
    assert family in FAMILY_CHECKS
    assert family in FAMILY_BUILDERS or family in RISK_FAMILIES


def test_the_document_has_no_section_without_an_entry():
    assert set(sections()) == set(builders())


def test_every_builder_of_the_formulation_modules_is_registered():
    """A new `add_<family>` that is not registered would be silently left out of the model."""
    registered = set(builders().values())
    for module in (contracts, flows, rules, objective):
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("add_") and fn.__module__ == module.__name__:
                assert fn in registered, f"{module.__name__}.{name} is not registered"


def test_every_cost_term_has_its_expression_checker_and_line():
    assert list(TERM_EXPRESSIONS) == [t for t in COST_TERMS if t in TERM_EXPRESSIONS]
    assert set(TERM_EXPRESSIONS) == set(COST_TERMS) == set(COST_CHECKS)
    objective_section = FORMULATION[FORMULATION.index("## Objective"):]
    for term in COST_TERMS:
        assert f"`{term}`" in objective_section, term


@pytest.mark.parametrize("family", sorted(builders()))
def test_the_builder_formula_is_the_formula_of_its_section(family):
    display = re.findall(r"\$\$(.*?)\$\$", sections()[family], flags=re.S)
    assert len(display) == 1, f"section {family} needs exactly one $$ display formula"
    assert normalized(doc_formula(builders()[family])) == normalized(display[0])


def test_the_formula_comparison_sees_a_changed_symbol():
    """The three docstrings that once drifted would fail (z vs alpha, K_ft vs K_fts)."""
    display = re.findall(r"\$\$(.*?)\$\$", sections()["contract_volume"], flags=re.S)[0]
    assert normalized(display) != normalized(display.replace(r"\alpha_{ot}", "z_o"))
    assert normalized(r"a \;\le\; b \qquad c") == normalized("a\\le b c")


def test_registering_a_kind_twice_or_with_the_wrong_literal_is_refused():
    from offtake.formulation.rules import rule_builder

    with pytest.raises(ValueError, match="already registered"):
        register_rule_kind(RULE_KINDS["exclusion"])
    wrong = RuleKind("other_kind", ToyRule, "other_kind", "other", "rows", "le", "t")
    with pytest.raises(ValueError, match="Literal"):
        register_rule_kind(wrong)
    with pytest.raises(ValueError, match="not registered"):
        rule_builder("no_such_kind")(add_max_contracted_t)


# --- a toy rule kind: registry entry plus its functions, nothing else --------------------------
class ToyRule(RuleBase):
    """At most `max_t` tonnes contracted (delivered under contracts) by each scoped buyer in a
    year, whatever the material."""

    kind: Literal["max_contracted_t"]
    max_t: float


TOY = RuleKind("max_contracted_t", ToyRule, "max_contracted_t", "contracted_max", "rows", "le",
               "t")


def toy_rows(r: ToyRule, ctx: RowContext) -> list:
    """One row per buyer and year: sum_o d_obts <= max_t."""
    d, out = ctx.d, []
    for b in ctx.buyers(r):
        for y in ctx.years(r):
            volumes = tuple((o, bb) for o, bb, yy in d.OFFER_BUYER_YEARS if bb == b and yy == y)
            if volumes:
                out.append(make_row(ctx, r, b, y, "le", 0.0, dict.fromkeys(d.SCENARIOS, r.max_t),
                                    num_volumes=volumes))
    return out


def add_max_contracted_t(m, d) -> None:
    build_rule_rows(m, d, "max_contracted_t")


def check_toy(c: Ctx, rule: ToyRule, f: Facts) -> list[RuleRow]:
    """contracted_max, label buyer: tonnes delivered under contracts <= max_t."""
    return [RuleRow(rule, b, y, s, "le", sum(x for _, x in f.volume.get((b, y, s), ())),
                    rule.max_t)
            for b in scoped_buyers(c, rule) for y in scoped_years(c, rule) for s in c.scenarios]


@pytest.fixture
def toy_kind():
    from offtake.check.rules import rule_check
    from offtake.formulation.ruledata import row_builder
    from offtake.formulation.rules import rule_builder

    register_rule_kind(TOY)
    row_builder("max_contracted_t")(toy_rows)
    rule_builder("max_contracted_t")(add_max_contracted_t)
    rule_check("max_contracted_t")(check_toy)
    try:
        yield TOY
    finally:
        for table in (ROW_BUILDERS, RULE_BUILDERS, RULE_CHECKS):
            table.pop("max_contracted_t", None)
        unregister_rule_kind("max_contracted_t")


def test_a_toy_rule_kind_needs_only_its_entry_and_functions(toy_kind, tmp_path):
    """base(): demand 60 t (2026) and 90 t (2027); O2 at 70/72 USD/kg (capacity 50/80), O1 at
    80; plus spot at 90 USD/kg, unlimited. Without the rule: O2 50 + O1 10, then O2 80 + O1 10
    = 10.86M (test_model). With at most 70 t contracted a year: 2026 unchanged (60 t, 4.3M);
    2027: O2 70 x 72,000 = 5.04M and 20 t spot x 90,000 = 1.8M, so 6.84M. Total 11.14M; the
    2027 row binds (lhs 70 = bound), the 2026 row has 10 t of slack."""
    raw = base()
    raw["spot_markets"] = [{"id": "SPOT", "material": "MAG", "origin": "CN",
                            "price_per_kg": 90, "unlimited": True}]
    raw["rules"] = [{"id": "TOY-70", "kind": "max_contracted_t", "max_t": 70}]
    res = solve_checked(instance(raw), tmp_path)  # the independent checker passes
    assert res.objective == approx(11_140_000)
    rows = res.tables["rules"].set_index("year")
    assert rows.loc[2027, "lhs"] == approx(70) and rows.loc[2027, "bound"] == approx(70)
    assert rows.loc[2027, "binding"] and not rows.loc[2026, "binding"]
    assert rows.loc[2026, "slack"] == approx(10)
    assert set(rows["unit"]) == {"t"} and set(rows["kind"]) == {"max_contracted_t"}


def test_an_unregistered_kind_is_a_located_finding(toy_kind):
    unregister_rule_kind("max_contracted_t")
    try:
        raw = base()
        raw["rules"] = [{"id": "TOY-70", "kind": "max_contracted_t", "max_t": 70}]
        res = validate_mapping(raw)
        assert not res.ok
        assert any(f.location.startswith("rules[TOY-70]") for f in res.findings)
    finally:
        register_rule_kind(TOY)


@pytest.mark.parametrize(("module", "name"), [
    ("offtake.domain.registry", "register_rule_kind"),
    ("offtake.formulation.ruledata", "row_builder"),
    ("offtake.formulation.ruledata", "make_row"),
    ("offtake.formulation.ruledata", "RowContext"),
    ("offtake.formulation.rules", "rule_builder"),
    ("offtake.formulation.rules", "build_rule_rows"),
    ("offtake.formulation.expressions", "family_builder"),
    ("offtake.formulation.objective", "cost_term"),
    ("offtake.check.rules", "rule_check"),
    ("offtake.check.context", "family_check"),
    ("offtake.check.objective", "cost_check"),
    ("offtake.formulation.data", "OfferData"),
    ("offtake.results.tables", "TABLE_COLUMNS"),
    ("offtake.check.tables", "TABLE_COLUMNS"),
])
def test_docs_extending_names_what_exists(module, name):
    """docs/extending.md tells the next person these names; they must exist where it says."""
    import importlib

    text = (ROOT / "docs" / "extending.md").read_text()
    assert name in text
    assert hasattr(importlib.import_module(module), name)
