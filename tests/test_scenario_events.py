"""Disruption scenarios as data (offtake.domain.scenarios): export-control and deficit events
become factors of `scenario_spec`, changes can end (`to_year`), and `draws` takes a random
(Monte Carlo or Latin hypercube) sample of the distribution instead of the product."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
from conftest import INSTANCES, approx, check, instance, solve_checked

from offtake.domain.scenarios import draw, expand
from offtake.domain.schema import ScenarioSpec
from offtake.io.loader import load_instance

YEARS = [2026, 2027, 2028, 2029]

RAW: dict = {
    "meta": {"name": "events", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2029},
    "country_groups": [{"id": "COVERED", "members": ["CN", "RU"]}],
    "materials": [{"id": "MAG", "form": "magnet"}, {"id": "DY", "form": "oxide"}],
    "facilities": [
        {"id": "CN-MAG", "company": "C", "country": "CN", "stage": "MAGNET", "product": "MAG",
         "capacity_t": 1000},
        {"id": "CN-DY", "company": "D", "country": "CN", "stage": "SEP_H", "product": "DY",
         "capacity_t": 100},
        {"id": "US-MAG", "company": "U", "country": "US", "stage": "MAGNET", "product": "MAG",
         "capacity_t": 1000}],
    "buyers": [{"id": "B", "country": "US", "demand_t": {"MAG": 100, "DY": 5}}],
    "offers": [
        {"id": "O-CN", "supplier": "CN-MAG", "material": "MAG", "first_year": 2026,
         "last_year": 2029, "max_t_per_year": 100, "price_per_kg": 60},
        {"id": "O-US", "supplier": "US-MAG", "material": "MAG", "first_year": 2026,
         "last_year": 2029, "max_t_per_year": 100, "price_per_kg": 90},
        {"id": "O-DY", "supplier": "CN-DY", "material": "DY", "first_year": 2026,
         "last_year": 2029, "max_t_per_year": 10, "index": "DY-IDX"}],
    "spot_markets": [
        {"id": "SPOT-CN", "material": "MAG", "origin": "CN", "price_per_kg": 70,
         "availability_t": 50},
        {"id": "SPOT-JP", "material": "MAG", "origin": "JP", "price_per_kg": 120,
         "unlimited": True},
        {"id": "SPOT-DY", "material": "DY", "origin": "EE", "price_per_kg": 800,
         "availability_t": 20}],
    "price_indices": [{"id": "DY-IDX", "material": "DY", "price_per_kg": 300}],
}

BAN = {"kind": "export_control", "id": "cn", "groups": ["COVERED"],
       "stages": ["MAGNET"], "materials": ["MAG"], "supply_share": 0.0,
       "start": {2027: 0.4}, "duration_years": {1: 0.5},
       "index_multipliers": {"DY-IDX": 2.0}, "outside_price_multiplier": 1.5}
DEFICIT = {"kind": "deficit", "id": "hre", "materials": ["DY"], "probability": 0.5,
           "from_year": 2027, "full_year": 2028, "shortfall_t": 10, "world_demand_t": 40,
           "price_multiplier": 3.0}


def _spec(**kw) -> ScenarioSpec:
    return ScenarioSpec.model_validate(kw)


def test_an_export_control_event_is_a_factor_of_start_years_and_durations():
    """Starts in 2027 with p = 0.4 (else none: 0.6), lasts 1 year (p = 0.5) or to the end of
    the horizon: levels none 0.6, from2027-1y 0.2, from2027-open 0.2. While it lasts, the
    covered nations' magnet makers (not the Dy separator, not the US maker) are cut to 0,
    the Chinese magnet spot market's availability too, the Japanese spot price x 1.5 and
    the Dy index x 2."""
    out = {s["id"]: s for s in expand(_spec(events=[BAN]), RAW, YEARS)}
    assert {k: v["probability"] for k, v in out.items()} == {
        "cn.none": approx(0.6), "cn.from2027-1y": approx(0.2), "cn.from2027-open": approx(0.2)}
    one = out["cn.from2027-1y"]
    assert one["capacity"] == [{"facilities": ["CN-MAG"], "from_year": 2027, "to_year": 2027,
                                "multiplier": 0.0, "cause": "export_control"}]
    assert one["spot"] == [
        {"markets": ["SPOT-CN"], "from_year": 2027, "to_year": 2027,
         "availability_multiplier": 0.0},
        {"markets": ["SPOT-JP"], "from_year": 2027, "to_year": 2027, "price_multiplier": 1.5}]
    assert one["index_paths"] == {"DY-IDX": {2026: 300, 2027: 600, 2028: 300, 2029: 300}}
    assert "to_year" not in out["cn.from2027-open"]["capacity"][0]
    assert out["cn.from2027-open"]["index_paths"]["DY-IDX"][2029] == 600
    assert "capacity" not in out["cn.none"]


def test_a_deficit_ramps_to_its_full_size():
    """10 t of 40 missing at full size (2028), reached linearly from 2027: availability
    x (1 - 0.5 x 0.25) = 0.875 in 2027, x 0.75 from 2028; prices x 2 then x 3 (index and
    spot)."""
    out = {s["id"]: s for s in expand(_spec(events=[DEFICIT]), RAW, YEARS)}
    on = out["hre.on"]
    assert out["hre.none"]["probability"] == approx(0.5) and on["probability"] == approx(0.5)
    spot = {c["from_year"]: (c["availability_multiplier"], c["price_multiplier"])
            for c in on["spot"]}
    assert spot == {2027: (0.875, 2.0), 2028: (0.75, 3.0), 2029: (0.75, 3.0)}
    assert all(c["to_year"] == c["from_year"] and c["markets"] == ["SPOT-DY"]
               for c in on["spot"])
    assert on["index_paths"] == {"DY-IDX": {2026: 300, 2027: 600, 2028: 900, 2029: 900}}


def test_price_jumps_multiply_a_sampled_path():
    """The sampled Dy path of a scenario times the event's jump in the years it lasts."""
    spec = _spec(events=[BAN], sampling={"index": "DY-IDX", "n": 2, "volatility": 0.3,
                                         "seed": 5})
    out = {s["id"]: s for s in expand(spec, RAW, YEARS)}
    calm, hit = out["cn.none-s1"]["index_paths"]["DY-IDX"], out["cn.from2027-1y-s1"][
        "index_paths"]["DY-IDX"]
    assert hit[2027] == pytest.approx(2 * calm[2027], rel=1e-6)
    assert hit[2028] == pytest.approx(calm[2028]) and hit[2026] == pytest.approx(calm[2026])


def test_an_expanded_set_solves_and_the_checker_follows_to_year(tmp_path):
    """Through the loader: the events expand to 3 x 2 = 6 scenarios; the checker recomputes
    capacities that end (to_year) and curtailments from the instance alone."""
    raw = copy.deepcopy(RAW)
    raw["scenario_spec"] = {"events": [BAN, DEFICIT]}
    res = check(raw)
    assert res.ok, [str(f) for f in res.findings]
    assert len(res.instance.scenarios) == 6
    out = solve_checked(res.instance, tmp_path)
    assert out.status == "optimal"
    c = out.tables["contracts"]
    hit = c[(c["offer_id"] == "O-CN") & c["scenario"].str.contains("from2027-1y")]
    if hit["volume_t"].max() > 0:
        assert hit.set_index("year")["delivered_t"][2027].max() == 0
        assert (hit.set_index("year")["delivered_t"][2028] > 0).all()


def test_to_year_ends_a_change(tmp_path):
    """A ban of the Chinese maker in 2027 only (p = 1/2), demand 100 t a year: the Chinese
    offer at 60 delivers 100 t every year but 2027 of the ban, when it is curtailed to 0
    (export controls: no damages) and 100 t come from Japanese spot at 120 (12.0M; the US
    offer at 90 would be paid in both scenarios: 90 > 0.5 x 120). Calm 4 x 6.0M = 24.0M,
    ban 3 x 6.0M + 12.0M = 30.0M: 27.0M (no discounting)."""
    raw = copy.deepcopy(RAW)
    raw["buyers"][0]["demand_t"] = {"MAG": 100}
    raw["offers"] = raw["offers"][:2]
    raw["scenarios"] = [
        {"id": "calm", "probability": 0.5},
        {"id": "ban", "probability": 0.5, "capacity": [
            {"facilities": ["CN-MAG"], "from_year": 2027, "to_year": 2027, "multiplier": 0.0,
             "cause": "export_control"}],
         "spot": [{"markets": ["SPOT-CN"], "from_year": 2027, "to_year": 2027,
                   "availability_multiplier": 0.0}]}]
    raw["spot_markets"] = [m for m in raw["spot_markets"] if m["material"] == "MAG"]
    raw["spot_markets"][0]["price_per_kg"] = 200  # no cheap Chinese spot
    raw["price_indices"] = []
    raw["materials"] = raw["materials"][:1]
    raw["facilities"] = raw["facilities"][::2]
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(27_000_000)
    c = res.tables["contracts"].set_index(["offer_id", "scenario", "year"])
    assert c.loc[("O-CN", "ban", 2027), "delivered_t"] == 0
    assert c.loc[("O-CN", "ban", 2028), "delivered_t"] == approx(100)


def test_draws_are_a_seeded_sample_of_the_distribution():
    """n draws of probability 1/n, reproducible from the seed; a Latin hypercube of 10
    draws has exactly 6 / 2 / 2 of the event's three levels (0.6 / 0.2 / 0.2), Monte
    Carlo only about."""
    spec = _spec(events=[BAN], sampling={"index": "DY-IDX", "volatility": 0.3})
    a = draw(spec, RAW, YEARS, 10, seed=1, method="latin_hypercube")
    assert a == draw(spec, RAW, YEARS, 10, seed=1, method="latin_hypercube")
    assert a != draw(spec, RAW, YEARS, 10, seed=2, method="latin_hypercube")
    assert [s["id"] for s in a] == [f"d{i}" for i in range(10)]
    assert sum(s["probability"] for s in a) == approx(1.0)
    levels = Counter(s["description"].split(";")[0] for s in a)
    assert levels == {"cn.none": 6, "cn.from2027-1y": 2, "cn.from2027-open": 2}
    many = draw(spec, RAW, YEARS, 2000, seed=3)
    share = Counter(s["description"].split(";")[0] for s in many)["cn.none"] / 2000
    assert share == pytest.approx(0.6, abs=0.04)
    paths = [s["index_paths"]["DY-IDX"][2029] for s in many
             if s["description"].startswith("cn.none")]
    assert sum(paths) / len(paths) == pytest.approx(300, rel=0.05)  # mean-preserving


def test_draws_in_the_spec_replace_the_product():
    raw = copy.deepcopy(RAW)
    raw["scenario_spec"] = {"events": [BAN, DEFICIT], "draws": {"n": 7, "seed": 4}}
    res = check(raw)
    assert res.ok and len(res.instance.scenarios) == 7


@pytest.mark.parametrize("change, message", [
    ({"materials": ["MAGNETS"]}, "unknown material"),
    ({"groups": ["NOPE"]}, "unknown country group"),
    ({"index_multipliers": {"X": 2.0}}, "unknown price index"),
    ({"start": {2040: 0.5}}, "outside the horizon"),
    ({"start": {2027: 0.7, 2028: 0.5}}, "above 1"),
])
def test_a_bad_event_is_a_finding(change, message):
    raw = copy.deepcopy(RAW)
    raw["scenario_spec"] = {"events": [{**BAN, **change}]}
    res = check(raw)
    assert not res.ok
    assert any(message in f.message for f in res.findings), [str(f) for f in res.findings]


def test_an_unlimited_covered_market_cannot_be_cut():
    raw = copy.deepcopy(RAW)
    raw["spot_markets"][0] = {**raw["spot_markets"][0], "unlimited": True}
    del raw["spot_markets"][0]["availability_t"]
    raw["scenario_spec"] = {"events": [BAN]}
    res = check(raw)
    assert not res.ok and any("unlimited" in f.message for f in res.findings)


def test_the_shipped_example_expands_and_names_its_sources():
    res = load_instance(INSTANCES / "medium_disruptions.yaml")
    assert res.ok, [str(f) for f in res.findings][:3]
    assert len(res.instance.scenarios) >= 2
