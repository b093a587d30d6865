"""Bad inputs found by a hostile probe (issue 16): each gets a located finding instead of a
crash, a silent change or a misleading message."""

from __future__ import annotations

import pytest
from conftest import base, check, codes, dump, load_text, only


def _findings(res) -> list[tuple[str, str, str]]:
    return [(f.severity, f.code, f.location) for f in res.findings]


def test_an_instance_with_only_meta_and_horizon_is_findings_not_a_crash():
    raw = {"meta": base()["meta"], "horizon": base()["horizon"]}
    res = check(raw)
    assert not res.ok
    assert {("error", "missing_field", "materials"), ("error", "missing_field", "buyers")} <= set(
        _findings(res))


@pytest.mark.parametrize(("network", "location"), [
    ({"default_arcs": "maybe"}, "network.default_arcs"),
    ({"arcs": 5}, "network.arcs"),
    ({"arcs": [{"from": "S1", "to": "B1", "freight_per_kg": -1}]}, "network.arcs[0]"),
    ({"arcs": [], "colour": "red"}, "network.colour"),
])
def test_a_schema_error_in_the_network_is_located_not_a_crash(network, location):
    raw = base()
    raw["network"] = network
    res = check(raw)
    assert not res.ok
    assert any(f.location.startswith(location) and f.severity == "error"
               for f in res.findings), _findings(res)


def test_numbers_in_exponent_form_are_numbers(tmp_path):
    """YAML 1.1 reads 1e6 and 5.0e7 as text; the project reads them as numbers (YAML 1.2)."""
    raw = base()
    raw["offers"][0]["signing_cost"] = "SIGNING"
    text = dump(raw).replace("SIGNING", "1e6").replace("capacity_t: 100", "capacity_t: 1.0e2")
    res = load_text(tmp_path, text)
    assert res.ok, _findings(res)
    assert res.instance.offers[0].signing_cost == 1_000_000
    assert res.instance.facilities[0].capacity_t == 100


@pytest.mark.parametrize(("rate", "acknowledged", "ok"), [
    (10, False, False), (2.5, False, False), (0.1, False, True), (1.45, True, True),
    ({2026: 0.25, 2027: 2.5}, False, False)])
def test_a_tariff_rate_above_100_percent_needs_saying_so(rate, acknowledged, ok):
    """rate: 10 meant 10 % and turned 760.7M into 862.4M on the small instance."""
    raw = base()
    raw["tariffs"] = [{"id": "T", "origins": ["DE"], "rate": rate}]
    if acknowledged:
        raw["tariffs"][0]["rate_above_100_percent"] = True
    res = check(raw)
    assert res.ok == ok, _findings(res)
    if not ok:
        f = only(res, "schema.value_error")
        assert f.location.startswith("tariffs[T]") and "rate_above_100_percent" in f.message


def test_quantities_far_outside_the_market_are_warned():
    """5e7 t of magnets in a year (the world made about 0.31 Mt in 2025), 1e-6 t of demand
    and a 9e12 signing cost against it."""
    raw = base()
    raw["buyers"][0]["demand_t"]["MAG"] = {2026: 5e7, 2027: 1e-6}
    raw["offers"][0]["signing_cost"] = 9e12
    res = check(raw)
    assert only(res, "far_above_world_output").location == "buyers[B1].demand_t.MAG.2026"
    assert only(res, "tiny_quantity").location == "buyers[B1].demand_t.MAG.2027"
    assert only(res, "numeric_range").location == "offers[O1].signing_cost"
    assert check(base()).findings == []  # an ordinary instance gets none of these


def test_a_negative_capacity_gets_one_message_not_a_dictionary_one_too():
    raw = base()
    raw["facilities"][0]["capacity_t"] = -5
    res = check(raw)
    messages = [f.message for f in res.findings if f.location.startswith("facilities[S1]")]
    assert len(messages) == 1 and "dictionary" not in messages[0], messages


@pytest.mark.parametrize(("code", "hint"), [("UK", "did you mean 'GB'?"), ("EL", "'GR'"),
                                            ("XX", "e.g. US")])
def test_country_hints_do_not_mislead(code, hint):
    raw = base()
    raw["facilities"][0]["country"] = code
    f = only(check(raw), "unknown_country")
    assert hint in f.hint and "SX" not in f.hint and "VU" not in f.hint


def test_whole_instance_findings_name_the_right_item_when_an_earlier_one_failed():
    """The first buyer fails its schema; the second has an unknown country. The country
    finding names the second buyer, not the first (positions among the items that passed
    are moved back to the document's)."""
    raw = base()
    raw["buyers"] = [{"id": "BAD", "country": "US", "demand_t": {"MAG": -1}},
                     {"id": "B2", "country": "XX", "demand_t": {"MAG": 10}}]
    res = check(raw)
    assert only(res, "unknown_country").location == "buyers[B2].country"
    assert "unknown_country" in codes(res)


def test_include_findings_name_the_files(tmp_path):
    """An error inside an included pack names the pack's file; a missing pack names the path
    looked for and what the folder holds."""
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "bad.yaml").write_text(
        "pack: {name: bad}\nrules:\n  - {id: CAP, kind: max_supplier_share, max_share: 1.5}\n")
    raw = base()
    raw["include"] = [{"pack": "packs/bad.yaml"}, {"pack": "packs/missing.yaml"}]
    res = load_text(tmp_path, dump(raw))
    bad = [f for f in res.findings if f.location.startswith("rules[CAP]")]
    assert bad and bad[0].file.endswith("bad.yaml")
    missing = only(res, "file_not_found")
    assert str(tmp_path / "packs" / "missing.yaml") in missing.message
    assert "bad.yaml" in missing.hint and "relative to the including file" in missing.hint


def test_a_bad_scenario_is_one_finding_not_also_no_scenario():
    raw = base()
    raw["scenarios"] = [{"id": "a", "probability": 1.5}]
    res = check(raw)
    assert only(res, "schema.less_than_equal").location == "scenarios[a].probability"
    assert "no_scenario" not in codes(res)
    raw["scenarios"] = []
    assert "no_scenario" in codes(check(raw))
