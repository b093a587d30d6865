"""Validated instance transforms (offtake.domain.transforms): every change goes back through
the loader's validation, so whole-instance checks run again; paths name items by ID; bad paths
and values are located findings with a did-you-mean, never a traceback."""

from __future__ import annotations

import copy

import pytest
from conftest import INSTANCES, base, instance

from offtake.domain.findings import InvalidInstance
from offtake.domain.transforms import (
    apply_sets,
    forbid_offer,
    force_offer,
    keep_buyers,
    keep_buyers_noted,
    parse_assignment,
    relax_rules,
    revalidate,
    set_value,
    set_values,
)
from offtake.io.loader import load_or_raise


def _raises(fn, *args) -> list:
    with pytest.raises(InvalidInstance) as exc:
        fn(*args)
    return exc.value.findings


def _only(findings: list, code: str):
    hits = [f for f in findings if f.code == code]
    assert hits, f"no {code} among {[str(f) for f in findings]}"
    return hits[0]


def two_buyers() -> dict:
    """BASE with a second buyer B2 (DE, 40 t/yr), an offer only B2 may take (O2), one both may
    take (O1), rules scoped to B2 alone and to both, an arc into B2 and a scenario whose
    demand change names only B2."""
    raw = base()
    raw["buyers"].append({"id": "B2", "country": "DE", "demand_t": {"MAG": 40}})
    raw["offers"][0]["buyers"] = ["B1", "B2"]
    raw["offers"][1]["buyers"] = ["B2"]
    raw["network"] = {"arcs": [{"from": "S1", "to": "B2", "freight_per_kg": 1.0},
                               {"from": "S1", "to": "B1", "freight_per_kg": 2.0}]}
    raw["rules"] = [
        {"id": "CAP-B2", "kind": "max_supplier_share", "max_share": 0.9,
         "scope": {"buyers": ["B2"]}},
        {"id": "CAP-BOTH", "kind": "max_supplier_share", "max_share": 0.8,
         "scope": {"buyers": ["B1", "B2"]}},
    ]
    raw["scenarios"] = [
        {"id": "low", "probability": 0.5, "demand": [{"buyers": ["B2"], "multiplier": 0.5}]},
        {"id": "high", "probability": 0.5,
         "demand": [{"buyers": ["B1", "B2"], "multiplier": 1.2}]},
    ]
    return raw


# --- the round trip ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tiny_two_offers", "us_ev_oem_small", "medium_multitier"])
def test_every_shipped_instance_survives_the_round_trip(name):
    inst = load_or_raise(INSTANCES / f"{name}.yaml")
    assert revalidate(inst) == inst


def test_no_change_is_the_same_instance():
    inst = instance(base())
    assert set_values(inst, []) is inst and apply_sets(inst, []) is inst
    assert relax_rules(inst, []) is inst


# --- set_value ----------------------------------------------------------------------------
def test_set_value_by_id_path_each_kind_of_node():
    inst = instance(two_buyers())
    out = set_values(inst, [
        ("rules.CAP-BOTH.max_share", 0.5),                # a rule, by ID
        ("offers.O1.max_t_per_year", 120),                # an offer field
        ("buyers.B1.demand_t.MAG.2027", 95),              # a by-year mapping, year as int
        ("horizon.discount_rate", 0.05),                  # a section that is not a list
        ("network.arcs.1.freight_per_kg", 3.0),           # a list without IDs, by position
        ("offers.O2.decision", "forced"),
        ("meta.sources.S99", "a new source"),             # a new key in a text mapping
    ])
    assert out.rules[1].max_share == 0.5 and out.rules[0].max_share == 0.9
    assert out.offers[0].max_t_per_year == 120
    assert out.buyers[0].demand_t["MAG"] == {2026: 60, 2027: 95}
    assert out.horizon.discount_rate == 0.05
    assert [a.freight_per_kg for a in out.network.arcs] == [1.0, 3.0]
    assert out.offers[1].decision == "forced"
    assert out.meta.sources == {"S99": "a new source"}
    assert inst.rules[1].max_share == 0.8  # the input is untouched


def test_a_year_under_a_constant_spreads_the_constant_over_its_years():
    """capacity_t 100 -> one value per horizon year 2026-2027; an offer's price over its own
    window (2026 only here); B2's constant demand likewise."""
    raw = base()
    raw["offers"][0]["last_year"] = 2026
    inst = instance(raw)
    out = set_values(inst, [("facilities.S1.capacity_t.2027", 150),
                            ("offers.O1.price_per_kg.2026", 85)])
    assert out.facilities[0].capacity_t == {2026: 100, 2027: 150}
    assert out.offers[0].price_per_kg == {2026: 85}
    both = set_value(instance(two_buyers()), "buyers.B2.demand_t.MAG.2026", 10)
    assert both.buyers[1].demand_t["MAG"] == {2026: 10, 2027: 40}


def test_two_sets_on_one_constant_series_both_hold():
    out = apply_sets(instance(base()), ["facilities.S1.capacity_t.2026=70",
                                        "facilities.S1.capacity_t.2027=90"])
    assert out.facilities[0].capacity_t == {2026: 70, 2027: 90}


def test_ids_with_dots_are_matched_whole():
    raw = base()
    raw["offers"][0]["id"] = "O.1.a"
    out = set_value(instance(raw), "offers.O.1.a.max_t_per_year", 55)
    assert out.offers[0].max_t_per_year == 55


def test_changes_that_only_hold_together_are_validated_once():
    """Two scenarios at 0.5 each: moving one to 0.3 alone breaks the sum, both together not."""
    inst = instance(two_buyers())
    bad = _raises(set_value, inst, "scenarios.low.probability", 0.3)
    assert _only(bad, "probabilities_not_one").location == "scenarios"
    out = apply_sets(inst, ["scenarios.low.probability=0.3", "scenarios.high.probability=0.7"])
    assert [s.probability for s in out.scenarios] == [0.3, 0.7]


def test_whole_instance_checks_run_again_where_model_copy_skips_them():
    """min 150 t/yr above max 100 t/yr is a whole-instance check: model_copy lets it through,
    set_value reports it at the offer's path."""
    inst = instance(base())
    skipped = inst.model_copy(update={"offers": [inst.offers[0].model_copy(
        update={"min_t_per_year": 150.0}), inst.offers[1]]})
    assert skipped.offers[0].min_t_per_year == 150.0  # no error: nothing ran
    f = _only(_raises(set_value, inst, "offers.O1.min_t_per_year", 150), "min_above_max")
    assert f.location == "offers[O1].min_t_per_year"
    f = _only(_raises(revalidate, skipped), "min_above_max")
    assert f.location == "offers[O1].min_t_per_year"


# --- bad paths and values -------------------------------------------------------------------
@pytest.mark.parametrize(("path", "code", "message", "hint"), [
    ("rulez.CAP-B2.max_share", "unknown_section", "'rulez'", "did you mean 'rules'?"),
    ("rules.CAP-B3.max_share", "unknown_id", "unknown rule 'CAP-B3'", "'CAP-B2'"),
    ("offers.O7.max_t_per_year", "unknown_id", "unknown offer 'O7'", "did you mean 'O"),
    ("rules.CAP-B2.max_shar", "unknown_field", "no field 'max_shar'", "'max_share'"),
    ("offers.O1.max_t_per_yaer", "unknown_field", "'max_t_per_yaer'", "'max_t_per_year'"),
    ("meta.discount_rate", "unknown_field", "'discount_rate'", "'horizon.discount_rate'"),
    ("buyers.B1.demand_t.MAG.y2027", "bad_key", "'y2027' is not a year", "whole numbers"),
    ("offers.O1.max_t_per_year.2027", "not_a_container", "single value", "set it as a whole"),
    ("buyers.B1.demand_t.MAGG.2027", "unknown_key", "no 'MAGG'", "did you mean 'MAG'?"),
    ("network.arcs.5.freight_per_kg", "bad_index", "'5'", "from 0 to 1"),
    ("offers..max_t_per_year", "bad_path", "empty", "section.id.field"),
])
def test_bad_paths_are_located_findings_with_a_suggestion(path, code, message, hint):
    f = _only(_raises(set_value, instance(two_buyers()), path, 1), code)
    assert f.severity == "error" and f.location == path
    assert message in f.message and hint in f.hint


@pytest.mark.parametrize(("text", "code", "location", "words"), [
    ("rules.CAP-B2.max_share=1.5", "schema.less_than_equal", "rules[CAP-B2].max_share",
     "fractions"),
    ("rules.CAP-B2.max_share=true", "schema.float_type", "rules[CAP-B2].max_share", ""),
    ("offers.O1.decision=maybe", "schema.literal_error", "offers[O1].decision", ""),
    ("offers.O1.max_t_per_year=-3", "schema.greater_than_equal", "offers[O1].max_t_per_year",
     ""),
    ("buyers.B1.demand_t.MAGNET=5", "unknown_reference", "buyers[B1].demand_t.MAGNET",
     "did you mean 'MAG'?"),
])
def test_bad_values_are_schema_findings_located_by_id(text, code, location, words):
    f = _only(_raises(apply_sets, instance(two_buyers()), [text]), code)
    assert f.location == location
    assert words in f.hint


def test_all_bad_sets_are_reported_at_once():
    found = _raises(apply_sets, instance(base()), ["offers.O9.max_t_per_year=1", "nonsense",
                                                   "horizon.discount_rat=0.1"])
    assert [f.code for f in found] == ["bad_set", "unknown_id", "unknown_field"]


# --- parsing the text of --set ----------------------------------------------------------------
@pytest.mark.parametrize(("text", "value"), [
    ("a.b=0.5", 0.5), ("a.b=1200", 1200), ("a.b=true", True), ("a.b=false", False),
    ("a.b=null", None), ("a.b=", None), ("a.b=[US, DE]", ["US", "DE"]),
    ("a.b={2026: 10, 2027: 20}", {2026: 10, 2027: 20}), ("a.b=NO", "NO"),
    ("a.b='007'", "007"), ("a.b=forced", "forced"), ("a.b= x=y ", "x=y"),
])
def test_values_are_read_as_yaml_reads_them(text, value):
    path, got = parse_assignment(text)
    assert path == "a.b" and got == value and type(got) is type(value)


def test_text_that_is_not_an_assignment_or_not_yaml_is_a_finding():
    (f,) = _raises(parse_assignment, "rules.X.max_share")
    assert f.code == "bad_set" and "PATH=VALUE" in f.message
    (f,) = _raises(parse_assignment, "rules.X.max_share=[0.5")
    assert f.code == "bad_set" and f.location == "rules.X.max_share"


# --- rules and offers -----------------------------------------------------------------------
def test_relax_rules_drops_the_named_rules_and_names_the_nearest_for_a_typo():
    inst = instance(two_buyers())
    assert [r.id for r in relax_rules(inst, ["CAP-B2"]).rules] == ["CAP-BOTH"]
    assert relax_rules(inst, ["CAP-B2", "CAP-BOTH"]).rules == []
    (f,) = _raises(relax_rules, inst, ["CAP-BOHT"])
    assert (f.code, f.location, f.hint) == ("unknown_id", "rules[CAP-BOHT]",
                                            "did you mean 'CAP-BOTH'?")


def test_force_and_forbid_set_the_offer_decision():
    inst = instance(base())
    assert [o.decision for o in force_offer(inst, "O2").offers] == ["free", "forced"]
    assert [o.decision for o in forbid_offer(inst, "O1").offers] == ["forbidden", "free"]
    (f,) = _raises(force_offer, inst, "O2x")
    assert (f.code, f.location, f.hint) == ("unknown_id", "offers[O2x]", "did you mean 'O2'?")


# --- keeping some buyers --------------------------------------------------------------------
def test_keep_buyers_follows_every_reference_to_a_buyer():
    inst = relax_rules(instance(two_buyers()), ["CAP-B2"])
    out, notes = keep_buyers_noted(inst, ["B1"])
    assert [b.id for b in out.buyers] == ["B1"]
    assert [(o.id, o.buyers) for o in out.offers] == [("O1", ["B1"])]   # O2 served only B2
    assert [(n.code, n.location) for n in notes if n.code == "offer_dropped"] == [
        ("offer_dropped", "offers[O2]")]
    assert out.rules[0].scope.buyers == ["B1"]
    assert [(a.from_, a.to) for a in out.network.arcs] == [("S1", "B1")]
    assert out.scenarios[0].demand == []                                 # it named only B2
    assert out.scenarios[1].demand[0].buyers == ["B1"]
    # S2 sells only through O2, which went: its facility now serves nobody
    assert "orphan_facility" in [n.code for n in notes]
    assert keep_buyers(inst, ["B1"]) == out


def test_keep_buyers_refuses_a_rule_left_with_nothing_to_bind():
    """CAP-B2 is scoped to B2 alone: without B2 it would silently become 0 rows. model_copy
    does not notice; keep_buyers says so, and revalidate catches the model_copy version."""
    inst = instance(two_buyers())
    f = _only(_raises(keep_buyers, inst, ["B1"]), "rule_scope_removed")
    assert f.location == "rules[CAP-B2].scope.buyers" and "--relax CAP-B2" in f.hint
    copied = inst.model_copy(update={"buyers": inst.buyers[:1]})
    assert [b.id for b in copied.buyers] == ["B1"]  # no error: nothing ran
    found = _raises(revalidate, copied)
    locations = {f.location for f in found if f.code == "unknown_reference"}
    assert {"rules[CAP-B2].scope.buyers[0]", "offers[O2].buyers[0]",
            "network.arcs[0].to"} <= locations


def test_keep_buyers_refuses_a_forced_offer_of_a_removed_buyer_and_unknown_ids():
    raw = two_buyers()
    raw["offers"][1]["decision"] = "forced"
    inst = relax_rules(instance(raw), ["CAP-B2"])
    f = _only(_raises(keep_buyers, inst, ["B1"]), "forced_offer_without_buyer")
    assert f.location == "offers[O2]"
    (f,) = _raises(keep_buyers, inst, ["B2x"])
    assert (f.code, f.location, f.hint) == ("unknown_id", "buyers[B2x]", "did you mean 'B2'?")
    assert _only(_raises(keep_buyers, inst, []), "no_buyer")


def test_inputs_are_not_changed():
    raw = two_buyers()
    before = copy.deepcopy(raw)
    inst = instance(raw)
    keep_buyers(relax_rules(inst, ["CAP-B2"]), ["B1"])
    apply_sets(inst, ["buyers.B2.demand_t.MAG.2026=1"])
    assert raw == before and revalidate(inst) == inst


# --- the command line's --set -----------------------------------------------------------------
SMALL = INSTANCES / "us_ev_oem_small.yaml"
TINY = INSTANCES / "tiny_two_offers.yaml"


def test_cli_set_solves_to_the_optimum_of_an_edited_copy(tmp_path):
    """--set rules.SUPPLIER-CAP-50.max_share=0.65 against a copy of the file with that number
    edited (next to a copy of its policy pack): the same optimum, below the original's (the
    50 % cap binds in the original's plan)."""
    import json
    import shutil

    from typer.testing import CliRunner

    from offtake.apps.cli import app

    text = SMALL.read_text()
    old = "    max_share: 0.5  # [E] 7.1\n"
    assert text.count(old) == 1
    (tmp_path / "edited.yaml").write_text(text.replace(old, "    max_share: 0.65\n"))
    shutil.copytree(SMALL.parent / "policies", tmp_path / "policies")

    def objective(args: list[str], out: str) -> float:
        res = CliRunner().invoke(app, ["solve", *args, "--out", str(tmp_path / out)])
        assert res.exit_code == 0, res.output
        return json.loads((tmp_path / out / "summary.json").read_text())["objective"]

    by_set = objective([str(SMALL), "--set", "rules.SUPPLIER-CAP-50.max_share=0.65"], "set")
    by_copy = objective([str(tmp_path / "edited.yaml")], "copy")
    original = objective([str(SMALL)], "original")
    assert by_set == pytest.approx(by_copy, rel=1e-9)
    assert by_set < original * (1 - 1e-6)
    summary = json.loads((tmp_path / "set" / "summary.json").read_text())
    assert summary["options"]["set"] == ["rules.SUPPLIER-CAP-50.max_share=0.65"]


def _cli(*args: str):
    from typer.testing import CliRunner

    from offtake.apps.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("command", [
    ["validate", TINY],
    ["solve", TINY, "--out", "OUT"],
    ["compare", TINY, "--rule", "X"],
    ["value", TINY],
    ["evaluate", TINY, "--plan", "no-plan.json", "--out", "OUT"],
])
def test_cli_bad_set_prints_the_located_finding_and_exits_1(command, tmp_path):
    command = [str(tmp_path / "out") if c == "OUT" else c for c in command]
    res = _cli(*command, "--set", "offers.OFF-B.max_t_per_yaer=10")
    assert res.exit_code == 1, res.output
    assert "unknown_field" in res.output and "offers.OFF-B.max_t_per_yaer" in res.output
    assert "did you mean 'max_t_per_year'?" in res.output
    assert not (tmp_path / "out").exists()


def test_cli_set_value_checked_like_the_file(tmp_path):
    """A valid --set validates; one that breaks a whole-instance check is reported there."""
    assert _cli("validate", TINY, "--set", "offers.OFF-A.max_t_per_year=450").exit_code == 0
    res = _cli("validate", TINY, "--set", "offers.OFF-A.min_t_per_year=900")
    assert res.exit_code == 1 and "min_above_max" in res.output
    assert "offers[OFF-A].min_t_per_year" in res.output
    assert "Findings in --set" in res.output  # the change is at fault, not the file
    res = _cli("solve", TINY, "--out", tmp_path / "o", "--set", "offers.OFF-A.decision=maybe")
    assert res.exit_code == 1 and "schema.literal_error" in res.output
    res = _cli("solve", TINY, "--out", tmp_path / "o", "--set", "nonsense")
    assert res.exit_code == 1 and "PATH=VALUE" in res.output


def test_cli_unknown_rule_to_relax_is_a_finding_with_its_suggestion(tmp_path):
    res = _cli("solve", SMALL, "--out", tmp_path / "o", "--relax", "SUPPLIER-CAP-05")
    assert res.exit_code == 1
    assert "rules[SUPPLIER-CAP-05]" in res.output
    assert "did you mean 'SUPPLIER-CAP-50'?" in res.output
