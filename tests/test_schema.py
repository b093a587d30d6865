"""Layer 1: the schema and whole-instance validation reject bad input, with its location.

Numbers in the test names refer to rows of shared/design/reliability-notes.md's catalogue.
"""

from __future__ import annotations

import pytest
from conftest import base, check, codes, dump, load_text, only
from pydantic import ValidationError

from offtake.domain.findings import InvalidInstance
from offtake.domain.schema import Instance
from offtake.io.loader import load_instance, load_or_raise


def test_base_instance_is_valid():
    res = check(base())
    assert res.ok, [str(f) for f in res.findings]
    assert res.findings == []


def test_01_negative_demand_capacity_price_rejected():
    raw = base()
    raw["buyers"][0]["demand_t"]["MAG"][2027] = -5
    raw["facilities"][0]["capacity_t"] = -1
    raw["offers"][1]["price_per_kg"][2026] = -70
    res = check(raw)
    assert not res.ok
    locs = {f.location for f in res.findings if f.severity == "error"}
    assert "buyers[B1].demand_t.MAG[2027]" in locs
    assert "facilities[S1].capacity_t" in locs
    assert "offers[O2].price_per_kg[2026]" in locs
    assert "-5" in only(res, "schema.greater_than_equal").message or any(
        "-5" in f.message for f in res.findings)


def test_02_nan_and_blank_rejected(tmp_path):
    raw = base()
    raw["facilities"][0]["capacity_t"] = float("nan")
    res = check(raw)
    assert only(res, "schema.finite_number").location == "facilities[S1].capacity_t"
    text = dump(base()).replace("max_t_per_year: 100", "max_t_per_year:")
    res = load_text(tmp_path, text)
    assert not res.ok
    f = next(f for f in res.findings if f.location == "offers[O1].max_t_per_year")
    assert "blank" in f.message or "None" in f.message
    assert f.file.endswith("inst.yaml")


def test_03_absurd_magnitude_rejected_with_hint():
    raw = base()
    raw["facilities"][1]["capacity_t"] = 1e21
    res = check(raw)
    f = only(res, "schema.less_than_equal")
    assert f.location == "facilities[S2].capacity_t"
    assert "unlimited" in f.hint


def test_04_implausible_price_warns():
    raw = base()
    raw["offers"][0]["price_per_kg"] = 80_000  # per tonne written where per kg is expected
    res = check(raw)
    assert res.ok
    f = only(res, "implausible_price")
    assert f.severity == "warning" and f.location == "offers[O1].price_per_kg"


def test_05_duplicate_ids_name_both_rows():
    raw = base()
    raw["offers"][1]["id"] = "O1"
    res = check(raw)
    f = only(res, "duplicate_id")
    # a shared ID names neither item: both are located by position
    assert f.location == "offers[1].id" and "offers[0].id" in f.message


def test_05_node_ids_share_one_namespace():
    raw = base()
    raw["buyers"][0]["id"] = "S1"
    res = check(raw)
    assert "duplicate_id" in codes(res, "error")


def test_06_unknown_reference_suggests_nearest():
    raw = base()
    raw["offers"][0]["supplier"] = "S3"
    raw["offers"][1]["material"] = "MAGG"
    res = check(raw)
    sup = next(f for f in res.findings if f.location == "offers[O1].supplier")
    assert sup.code == "unknown_reference" and "'S1'" in sup.hint or "'S2'" in sup.hint
    mat = next(f for f in res.findings if f.location == "offers[O2].material")
    assert "did you mean 'MAG'" in mat.hint


def test_07_unknown_country_rejected():
    raw = base()
    raw["facilities"][0]["country"] = "XX"
    raw["buyers"][0]["country"] = "usa"
    res = check(raw)
    locs = {f.location for f in res.findings if f.severity == "error"}
    assert {"facilities[S1].country", "buyers[B1].country"} <= locs


def test_07_namibia_and_norway_survive_yaml(tmp_path):
    raw = base()
    raw["facilities"][0]["country"] = "NA"
    raw["facilities"][1]["country"] = "NO"
    text = dump(raw).replace("country: 'NA'", "country: NA").replace("country: 'NO'",
                                                                     "country: NO")
    assert "country: NO" in text and "country: NA" in text
    res = load_text(tmp_path, text)
    assert res.ok, [str(f) for f in res.findings]
    assert [f.country for f in res.instance.facilities] == ["NA", "NO"]


def test_08_misspelled_field_suggests_nearest():
    raw = base()
    raw["facilities"][0]["capacty_t"] = raw["facilities"][0].pop("capacity_t")
    res = check(raw)
    f = next(f for f in res.findings if f.code == "schema.extra_forbidden")
    assert f.location == "facilities[S1].capacty_t"
    assert "capacity_t" in f.hint
    assert any(f.code == "schema.missing" and f.location == "facilities[S1].capacity_t"
               for f in res.findings)


def test_09_unknown_section_and_field_rejected():
    raw = base()
    raw["tarifs"] = []
    raw["meta"]["colour"] = "red"
    res = check(raw)
    sec = next(f for f in res.findings if f.location == "tarifs")
    assert sec.code == "unknown_field"
    assert any(f.location == "meta.colour" for f in res.findings)


def test_10_unquoted_numeric_id_rejected_quoted_warned(tmp_path):
    text = dump(base()).replace("id: O2", "id: 007")
    res = load_text(tmp_path, text)
    f = next(f for f in res.findings if f.location == "offers[1].id")  # no text ID to name it
    assert f.severity == "error" and "quote" in f.hint
    res = load_text(tmp_path, dump(base()).replace("id: O2", "id: '1E5'"))
    assert res.ok
    assert only(res, "numeric_looking_id").severity == "warning"


def test_11_whitespace_trimmed_with_warning_case_collision_error():
    raw = base()
    raw["offers"][0]["supplier"] = "S1 "
    res = check(raw)
    assert res.ok
    assert only(res, "whitespace_id").location == "offers[O1].supplier"
    assert res.instance.offers[0].supplier == "S1"
    raw = base()
    raw["facilities"][1]["id"] = "s1"
    raw["offers"][1]["supplier"] = "s1"
    res = check(raw)
    f = only(res, "duplicate_id")
    assert "case" in f.message


def test_12_inverted_window_rejected_outside_clipped():
    raw = base()
    raw["offers"][0].update(first_year=2027, last_year=2026)
    res = check(raw)
    assert only(res, "inverted_window").location == "offers[O1].last_year"
    raw = base()
    raw["offers"][0].update(first_year=2025, last_year=2029)
    res = check(raw)
    assert res.ok
    assert "2026-2027" in only(res, "window_clipped").message


def test_forced_offer_outside_the_horizon_rejected_free_one_warned():
    raw = base()
    raw["offers"][0].update(first_year=2030, last_year=2032, price_per_kg=80)
    res = check(raw)
    assert res.ok and only(res, "window_outside_horizon").location == "offers[O1]"
    raw["offers"][0]["decision"] = "forced"
    res = check(raw)
    f = only(res, "forced_offer_outside_horizon")
    assert not res.ok and f.location == "offers[O1].decision" and "O1" in f.message
    assert "window_outside_horizon" not in codes(res)


def test_13_min_above_max_rejected():
    raw = base()
    raw["offers"][1]["min_t_per_year"] = 90
    res = check(raw)
    f = only(res, "min_above_max")
    assert f.location == "offers[O2].min_t_per_year" and "90" in f.message


def test_14_percent_instead_of_fraction_rejected():
    raw = base()
    raw["horizon"]["discount_rate"] = 8
    res = check(raw)
    f = next(f for f in res.findings if f.location == "horizon.discount_rate")
    assert "fraction" in f.hint
    raw = base()
    raw["scenarios"] = [{"id": "a", "probability": 50}, {"id": "b", "probability": 50}]
    assert not check(raw).ok


def test_15_missing_or_extra_years_rejected():
    raw = base()
    raw["facilities"][1]["capacity_t"] = {2026: 50, 2028: 80}
    raw["offers"][1]["price_per_kg"] = {2026: 70}
    res = check(raw)
    msgs = {f.location: f.message for f in res.findings if f.code == "misaligned_years"}
    assert "missing years [2027]" in msgs["facilities[S2].capacity_t"]
    assert "extra years [2028]" in msgs["facilities[S2].capacity_t"]
    assert "missing years [2027]" in msgs["offers[O2].price_per_kg"]


def test_16_unservable_demand_rejected_orphan_warned():
    raw = base()
    raw["materials"].append({"id": "OXIDE", "form": "oxide"})
    raw["buyers"][0]["demand_t"]["OXIDE"] = 5
    raw["facilities"].append({"id": "S3", "company": "Three", "country": "AU",
                              "stage": "SEP_L", "product": "OXIDE", "capacity_t": 10})
    res = check(raw)
    f = only(res, "unservable_demand")
    assert f.location == "buyers[B1].demand_t.OXIDE" and "[2026, 2027]" in f.message
    raw["offers"][0]["buyers"] = ["B1"]
    raw["buyers"][0]["demand_t"].pop("OXIDE")
    res = check(raw)
    assert res.ok
    assert only(res, "orphan_facility").location == "facilities[S3]"


def test_16_offer_only_for_other_buyer_does_not_serve():
    raw = base()
    raw["buyers"].append({"id": "B2", "country": "DE", "demand_t": {"MAG": 10}})
    for o in raw["offers"]:
        o["buyers"] = ["B1"]
    res = check(raw)
    assert only(res, "unservable_demand").location == "buyers[B2].demand_t.MAG"


def test_17_cycle_rejected_and_printed():
    raw = base()
    raw["materials"].append({"id": "ALLOY", "form": "alloy"})
    raw["facilities"] += [
        {"id": "P1", "company": "P", "country": "US", "stage": "METAL", "product": "ALLOY",
         "capacity_t": 10, "recipe": {"MAG": 1.0}},
        {"id": "P2", "company": "P", "country": "US", "stage": "MAGNET", "product": "MAG",
         "capacity_t": 10, "recipe": {"ALLOY": 1.0}},
    ]
    res = check(raw)
    f = only(res, "cycle")
    assert "P1" in f.message and "P2" in f.message and "->" in f.message


def test_18_empty_instance_rejected(tmp_path):
    res = load_text(tmp_path, "")
    assert only(res, "empty_instance").severity == "error"
    raw = base()
    raw["buyers"][0]["demand_t"]["MAG"] = 0
    assert "empty_instance" in codes(check(raw), "error")


def test_22_currency_and_price_year_required_mixed_rejected():
    raw = base()
    del raw["meta"]["currency"]
    del raw["meta"]["price_year"]
    res = check(raw)
    locs = {f.location for f in res.findings}
    assert {"meta.currency", "meta.price_year"} <= locs
    raw = base()
    raw["offers"][0]["currency"] = "EUR"
    assert only(check(raw), "mixed_currency").location == "offers[O1].currency"


def test_all_problems_of_a_file_reported_at_once():
    raw = base()
    raw["facilities"][0]["capacity_t"] = -1  # field error in one item
    raw["offers"][1]["min_t_per_year"] = 99  # whole-instance error elsewhere
    raw["buyers"][0]["country"] = "XX"
    res = check(raw)
    found = set(codes(res, "error"))
    assert {"schema.greater_than_equal", "min_above_max", "unknown_country"} <= found
    # references to the item that failed to parse are not reported as unknown
    assert not any(f.code == "unknown_reference" and "S1" in f.message for f in res.findings)


def test_a_row_with_a_bad_number_still_has_its_references_checked():
    """Offer O1 has a negative max (a field error) and an unknown supplier: both are
    reported in one run, the supplier at its own field with the nearest ID. O2's material is
    not text (a field error): the placeholder that lets the rest of the row be checked is
    never reported as an unknown material, while O2's unknown supplier is."""
    raw = base()
    raw["offers"][0]["max_t_per_year"] = -5
    raw["offers"][0]["supplier"] = "S3"
    raw["offers"][1]["material"] = 5
    raw["offers"][1]["supplier"] = "S9"
    res = check(raw)
    by_loc = {(f.location, f.code) for f in res.findings}
    assert ("offers[O1].max_t_per_year", "schema.greater_than_equal") in by_loc
    assert ("offers[O1].supplier", "unknown_reference") in by_loc
    assert ("offers[O2].supplier", "unknown_reference") in by_loc
    assert not any(f.location == "offers[O2].material" and f.code == "unknown_reference"
                   for f in res.findings)


def test_probabilities_must_sum_to_one():
    raw = base()
    raw["scenarios"] = [{"id": "a", "probability": 0.5}, {"id": "b", "probability": 0.4}]
    assert "probabilities_not_one" in codes(check(raw), "error")


def test_soft_rule_needs_penalty():
    raw = base()
    raw["rules"] = [{"id": "R1", "kind": "max_suppliers", "max_count": 1, "hard": False}]
    res = check(raw)
    assert any(f.location.startswith("rules[R1]") for f in res.findings)


def test_unknown_rule_kind_rejected():
    raw = base()
    raw["rules"] = [{"id": "R1", "kind": "max_supplier", "max_count": 1}]
    res = check(raw)
    assert not res.ok
    assert any(f.location.startswith("rules[R1]") for f in res.findings)


def test_direct_construction_runs_the_same_checks():
    raw = base()
    raw["offers"][1]["min_t_per_year"] = 99
    with pytest.raises(ValidationError, match="min_above_max"):
        Instance.model_validate(raw)
    assert Instance.model_validate(base()).offers[0].id == "O1"


def test_instance_is_frozen():
    inst = Instance.model_validate(base())
    with pytest.raises(ValidationError):
        inst.meta.currency = "EUR"


def test_load_or_raise_carries_findings(tmp_path):
    p = tmp_path / "bad.yaml"
    raw = base()
    raw["offers"][0]["supplier"] = "S9"
    p.write_text(dump(raw))
    with pytest.raises(InvalidInstance) as exc:
        load_or_raise(p)
    assert exc.value.findings[0].file == str(p)


def test_yaml_syntax_error_located(tmp_path):
    res = load_text(tmp_path, "meta: {name: x\nhorizon: [")
    f = only(res, "yaml_syntax")
    assert f.location.startswith("line ")


def test_a_key_given_twice_is_an_error_at_its_second_line(tmp_path):
    """YAML loaders keep the last of two equal keys silently: an offer whose
    max_t_per_year is written twice solved with the second value while validate said
    'valid'. Now a located error: the file, the second key's line, the first key's line."""
    import copy

    import yaml

    raw = copy.deepcopy(base())
    text = yaml.safe_dump(raw, sort_keys=False)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("supplier:"))
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines.insert(at + 1, f"{indent}supplier: S9")
    path = tmp_path / "twice.yaml"
    path.write_text("\n".join(lines) + "\n")
    res = load_instance(path)
    assert not res.ok
    f = only(res, "yaml_duplicate_key")
    assert f.file == str(path) and f.location.startswith(f"line {at + 2}, ")
    assert "'supplier' is given twice" in f.message and f"line {at + 1})" in f.message


def _pack_setup(tmp_path, rule: dict, include) -> tuple:
    (tmp_path / "policies").mkdir(exist_ok=True)
    pack = {"pack": {"name": "p"}, "country_groups": [{"id": "COV", "members": ["CN"]}],
            "rules": [rule]}
    (tmp_path / "policies" / "p.yaml").write_text(dump(pack))
    raw = base()
    raw["buyers"].append({"id": "B2", "country": "DE", "demand_t": {"MAG": 10}})
    raw["include"] = include
    return raw, tmp_path / "policies" / "p.yaml"


def test_policy_pack_included_with_a_buyer_scope(tmp_path):
    rule = {"id": "X", "kind": "exclusion", "stages": ["MAGNET"], "groups": ["COV"]}
    raw, _ = _pack_setup(tmp_path, rule, [{"pack": "policies/p.yaml",
                                           "scope": {"buyers": ["B2"]}}])
    res = load_text(tmp_path, dump(raw))
    assert res.ok, [str(f) for f in res.findings]
    (r,) = res.instance.rules
    assert r.id == "X" and r.scope.buyers == ["B2"]
    assert [g.id for g in res.instance.country_groups] == ["COV"]


def test_pack_findings_name_the_pack_file_and_its_row(tmp_path):
    rule = {"id": "X", "kind": "exclusion", "stages": ["MAGNET"], "groups": ["COVV"]}
    raw, pack = _pack_setup(tmp_path, rule, ["policies/p.yaml"])
    res = load_text(tmp_path, dump(raw))
    f = only(res, "unknown_reference")
    assert f.file == str(pack) and f.location == "rules[X].groups[0]"
    assert "did you mean 'COV'" in f.hint


def test_missing_pack_and_bad_include_entry(tmp_path):
    raw = base()
    raw["include"] = ["policies/nope.yaml", {"pak": "x.yaml"}]
    res = load_text(tmp_path, dump(raw))
    assert not res.ok
    assert {f.location for f in res.findings} >= {"include[0]", "include[1]"}


def test_instance_hash_covers_included_packs(tmp_path):
    rule = {"id": "X", "kind": "exclusion", "stages": ["MAGNET"], "groups": ["COV"]}
    raw, pack = _pack_setup(tmp_path, rule, ["policies/p.yaml"])
    first = load_text(tmp_path, dump(raw)).sha256
    pack.write_text(pack.read_text().replace("MAGNET", "METAL"))
    assert load_text(tmp_path, dump(raw)).sha256 != first
