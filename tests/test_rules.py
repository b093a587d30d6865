"""Layer 2 for procurement rules and chain of custody: tiny instances, optimum by hand.

Base market (one year, 2026; buyer B in the US needs 100 t of magnets; no signing costs):
  F-CN  magnets made in CN from CN ore, CN separation      50 USD/kg, capacity 1,000 t
  F-JP  magnets made in JP from AU ore, MY separation      70 USD/kg, capacity 1,000 t
  F-US  magnets made in the US from US ore and separation  80 USD/kg, capacity 60 t
  F-REC magnets made in the US from recycled feed          75 USD/kg, capacity 30 t
With no rule everything comes from F-CN: 100 t x 50,000 = 5,000,000 USD.
"""

from __future__ import annotations

import copy

import pytest
from conftest import approx, instance, solve_checked


def _fac(fid, country, origin, cap):
    return {"id": fid, "company": fid, "country": country, "stage": "MAGNET", "product": "MAG",
            "capacity_t": cap, "feed_origin": origin}


def _offer(oid, fid, price, signing=0):
    return {"id": oid, "supplier": fid, "material": "MAG", "first_year": 2026,
            "last_year": 2026, "max_t_per_year": 1000, "price_per_kg": price,
            "signing_cost": signing}


BASE = {
    "meta": {"name": "rules", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2026},
    "country_groups": [{"id": "ALLIED", "members": ["US", "AU"]},
                       {"id": "COVERED", "members": ["CN", "RU", "KP", "IR"]}],
    "materials": [{"id": "MAG", "form": "magnet"}],
    "facilities": [
        _fac("F-CN", "CN", {"MINE": "CN", "SEP_L": "CN"}, 1000),
        _fac("F-JP", "JP", {"MINE": "AU", "SEP_L": "MY"}, 1000),
        _fac("F-US", "US", {"MINE": "US", "SEP_L": "US"}, 60),
        _fac("F-REC", "US", {"RECYCLE": "US"}, 30),
    ],
    "buyers": [{"id": "B", "country": "US", "demand_t": {"MAG": 100}}],
    "offers": [_offer("O-CN", "F-CN", 50), _offer("O-JP", "F-JP", 70),
               _offer("O-US", "F-US", 80), _offer("O-REC", "F-REC", 75)],
}


def with_rules(*rules, **changes) -> dict:
    raw = copy.deepcopy(BASE)
    raw["rules"] = list(rules)
    raw.update(changes)
    return raw


def volumes(res) -> dict[str, float]:
    c = res.tables["contracts"]
    return c.groupby("offer_id")["volume_t"].sum().to_dict()


def rule_row(res, rule_id, row=None):
    r = res.tables["rules"]
    r = r[r["rule_id"] == rule_id]
    if row is not None:
        r = r[r["row"] == row]
    assert len(r) == 1, r
    return r.iloc[0]


def test_no_rule_cheapest_chain(tmp_path):
    res = solve_checked(instance(with_rules()), tmp_path)
    assert res.objective == approx(5_000_000)


def test_max_supplier_share_binds_with_shadow_price(tmp_path):
    """At most 60 % from one supplier: 60 t F-CN + 40 t F-JP = 3.0M + 2.8M = 5.8M. One more
    tonne of allowance moves a tonne from F-JP (70) to F-CN (50): 20,000 USD per t, and one
    percentage point of a 100 t base is one tonne: 20,000 USD per pp."""
    rule = {"id": "CAP", "kind": "max_supplier_share", "max_share": 0.6}
    res = solve_checked(instance(with_rules(rule)), tmp_path)
    assert res.objective == approx(5_800_000)
    assert volumes(res)["O-CN"] == approx(60)
    row = rule_row(res, "CAP", "B|F-CN|MAG")
    assert row["binding"] and row["share"] == approx(0.6)
    assert row["shadow_price"] == approx(20_000)
    assert row["shadow_price_per_pp"] == approx(20_000)
    assert "integer decisions fixed" in row["dual_basis"]


def test_max_supplier_share_not_binding(tmp_path):
    """F-CN capacity 50: the plan takes 50 t F-CN + 50 t F-JP anyway (share 0.5 < 0.6):
    2.5M + 3.5M = 6.0M with or without the rule; slack 10 t, shadow price 0."""
    rule = {"id": "CAP", "kind": "max_supplier_share", "max_share": 0.6}
    raw = with_rules(rule)
    raw["facilities"][0]["capacity_t"] = 50
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(6_000_000)
    row = rule_row(res, "CAP", "B|F-CN|MAG")
    assert not row["binding"] and row["slack"] == approx(10)
    assert row["shadow_price"] == pytest.approx(0, abs=1e-6)


def test_soft_supplier_share_pays_penalty_when_cheaper(tmp_path):
    """Soft cap at 60 % with 10,000 USD per t of excess: exceeding saves 20,000 per t, so
    all 100 t come from F-CN: 5.0M + 40 t x 10,000 = 5.4M."""
    rule = {"id": "CAP", "kind": "max_supplier_share", "max_share": 0.6, "hard": False,
            "penalty_per_unit": 10_000}
    res = solve_checked(instance(with_rules(rule)), tmp_path)
    assert res.objective == approx(5_400_000)
    assert res.cost_terms()["rule_violation_penalties"] == approx(400_000)
    assert rule_row(res, "CAP", "B|F-CN|MAG")["violation"] == approx(40)


def test_company_cap_groups_facilities(tmp_path):
    """F-JP and F-CN belong to one company: at most 60 % from it, the rest from the next
    cheapest outside it, F-REC (30 t at 75) then F-US (10 t at 80):
    60 x 50,000 + 30 x 75,000 + 10 x 80,000 = 3.0M + 2.25M + 0.8M = 6.05M."""
    raw = with_rules({"id": "CO", "kind": "max_supplier_share", "max_share": 0.6,
                      "by": "company"})
    raw["facilities"][1]["company"] = "F-CN"
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(6_050_000)


def test_max_country_share_at_separation(tmp_path):
    """CRMA-style: at most 65 % with a SEP_L step in one country: 65 t F-CN + 35 t F-JP
    (separated in MY) = 3.25M + 2.45M = 5.7M. Exempting CN removes the cap: 5.0M."""
    rule = {"id": "CRMA", "kind": "max_country_share", "max_share": 0.65, "stages": ["SEP_L"]}
    res = solve_checked(instance(with_rules(rule)), tmp_path / "a")
    assert res.objective == approx(5_700_000)
    assert rule_row(res, "CRMA", "B|SEP_L|CN|MAG")["binding"]
    rule["exempt_countries"] = ["CN"]
    res = solve_checked(instance(with_rules(rule)), tmp_path / "b")
    assert res.objective == approx(5_000_000)


def test_min_content_share_with_mutually_recognised_groups(tmp_path):
    """At least 50 % of demand mined in the ALLIED group (US, AU): F-JP (AU ore) is the
    cheapest qualifying chain: 50 t x 70,000 + 50 t x 50,000 = 6.0M. F-REC has no MINE step
    and does not qualify."""
    rule = {"id": "ALLY", "kind": "min_content_share", "min_share": {2026: 0.5},
            "stages": ["MINE"], "groups": ["ALLIED"]}
    res = solve_checked(instance(with_rules(rule)), tmp_path)
    assert res.objective == approx(6_000_000)
    row = rule_row(res, "ALLY", "B|MAG")
    assert row["lhs"] == approx(50) and row["bound"] == approx(50)
    assert row["shadow_price"] == approx(20_000)


def test_exclusion_from_a_year(tmp_path):
    """DFARS-style: no MINE or SEP_L step in a covered nation from 2027. Two years of 100 t:
    2026 from F-CN (5.0M), 2027 from F-JP (7.0M): 12.0M."""
    rule = {"id": "DFARS", "kind": "exclusion", "stages": ["MINE", "SEP_L"],
            "groups": ["COVERED"], "from_year": 2027}
    raw = with_rules(rule, horizon={"first_year": 2026, "last_year": 2027})
    for o in raw["offers"]:
        o["last_year"] = 2027
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(12_000_000)
    origin = res.tables["origin"]
    cn = origin[(origin["country"] == "CN")]
    assert set(cn["year"]) == {2026}


def test_min_recycled_share(tmp_path):
    """20 % recycled: 20 t F-REC at 75 + 80 t F-CN at 50 = 1.5M + 4.0M = 5.5M."""
    rule = {"id": "REC", "kind": "min_recycled_share", "min_share": 0.2}
    res = solve_checked(instance(with_rules(rule)), tmp_path)
    assert res.objective == approx(5_500_000)
    assert volumes(res)["O-REC"] == approx(20)


def test_min_suppliers_signs_the_cheapest_second(tmp_path):
    """Two suppliers required; signing costs F-JP 100,000, F-US 50,000, F-REC 80,000: sign
    F-US as second supplier even with no volume: 5.0M + 50,000."""
    raw = with_rules({"id": "TWO", "kind": "min_suppliers", "min_count": 2})
    raw["offers"][1]["signing_cost"] = 100_000
    raw["offers"][2]["signing_cost"] = 50_000
    raw["offers"][3]["signing_cost"] = 80_000
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(5_050_000)
    assert rule_row(res, "TWO")["lhs"] == 2


def test_max_offtake_share_protects_commercial_buyers(tmp_path):
    """F-US (80 USD/kg, 100 t) and an unlimited spot at 90. Buyers DEF (defense, 100 t) and
    COM (commercial, 30 t). Without the rule F-US runs full: 8.0M + 30 t spot 2.7M = 10.7M.
    Defence may take at most 50 % of F-US's output: DEF <= COM's 30 t, so F-US makes 60 t:
    4.8M + 70 t spot x 90,000 = 6.3M: 11.1M."""
    raw = with_rules()
    raw["facilities"] = [_fac("F-US", "US", {}, 100)]
    raw["offers"] = [_offer("O-US", "F-US", 80)]
    raw["buyers"] = [
        {"id": "DEF", "country": "US", "buyer_class": "defense", "demand_t": {"MAG": 100}},
        {"id": "COM", "country": "US", "demand_t": {"MAG": 30}}]
    raw["spot_markets"] = [{"id": "SPOT", "material": "MAG", "origin": "CN",
                            "price_per_kg": 90, "unlimited": True}]
    free = solve_checked(instance(raw), tmp_path / "free")
    assert free.objective == approx(10_700_000)
    raw["rules"] = [{"id": "ANCHOR", "kind": "max_offtake_share", "facilities": ["F-US"],
                     "buyer_class": "defense", "max_share": 0.5}]
    res = solve_checked(instance(raw), tmp_path / "rule")
    assert res.objective == approx(11_100_000)


def _diamond() -> dict:
    """Oxide from CN (60 USD/kg) or AU (80) -> one US metal maker (1.2 t oxide per t metal,
    toll 5 USD/kg) -> two US magnet makers (0.5 t metal per t magnet, toll 10 USD/kg) making
    MAG_A and MAG_B. Buyer B needs 100 t of each. Cost per kg of magnet:
    CN chain 0.5 x (1.2 x 60 + 5) + 10 = 48.5; AU chain 0.5 x (1.2 x 80 + 5) + 10 = 60.5."""
    sep = {"company": "S", "stage": "SEP_L", "product": "OXIDE", "capacity_t": 1000}
    mk = {"company": "M", "country": "US", "stage": "MAGNET", "capacity_t": 1000,
          "recipe": {"METAL": 0.5}, "opex_per_kg": 10}
    return {
        "meta": {"name": "diamond", "currency": "USD", "price_year": 2025},
        "horizon": {"first_year": 2026, "last_year": 2026},
        "materials": [{"id": k, "form": f} for k, f in
                      (("OXIDE", "oxide"), ("METAL", "metal"), ("MAG_A", "magnet"),
                       ("MAG_B", "magnet"))],
        "facilities": [
            {"id": "SEP-CN", "country": "CN", **sep},
            {"id": "SEP-AU", "country": "AU", **sep},
            {"id": "MET-US", "company": "M", "country": "US", "stage": "METAL",
             "product": "METAL", "capacity_t": 1000, "recipe": {"OXIDE": 1.2},
             "opex_per_kg": 5},
            {"id": "MAG-X", "product": "MAG_A", **mk},
            {"id": "MAG-Y", "product": "MAG_B", **mk},
        ],
        "buyers": [{"id": "B", "country": "US", "demand_t": {"MAG_A": 100, "MAG_B": 100}}],
        "offers": [
            {"id": "OX-CN", "supplier": "SEP-CN", "material": "OXIDE", "first_year": 2026,
             "last_year": 2026, "max_t_per_year": 1000, "price_per_kg": 60},
            {"id": "OX-AU", "supplier": "SEP-AU", "material": "OXIDE", "first_year": 2026,
             "last_year": 2026, "max_t_per_year": 1000, "price_per_kg": 80},
        ],
        "rules": [{"id": "NO-CN-A", "kind": "exclusion", "stages": ["SEP_L"],
                   "countries": ["CN"], "scope": {"materials": ["MAG_A"]}}],
    }


def test_diamond_keeps_origins_apart(tmp_path):
    """The metal maker handles CN and AU oxide for the same buyer and feeds both magnet
    makers. Exact tracing sends AU metal to MAG_A (excluded from CN separation) and CN metal
    to MAG_B: 100 t x 60,500 + 100 t x 48,500 = 10.9M. A formulation that averages origins
    at the metal maker would give both magnets the same CN share and could only comply by
    buying all oxide from AU: 12.1M (a wrong, higher optimum)."""
    res = solve_checked(instance(_diamond()), tmp_path)
    assert res.objective == approx(10_900_000)
    o = res.tables["origin"]
    sep = o[o["stage"] == "SEP_L"].set_index(["material", "country"])["share"]
    assert sep.to_dict() == {("MAG_A", "AU"): approx(1.0), ("MAG_B", "CN"): approx(1.0)}
    flows = res.tables["flows"]
    into_x = flows[flows["to_node"] == "MAG-X"]
    assert set(into_x["tag"]) == {"SEP_L:AU|METAL:US"}


def test_origin_gaps_warn_about_chains_a_rule_cannot_see():
    """An exclusion reading MINE: F-US's chain declares its mine, F-REC is recycled (exempt);
    a new supplier with no feed_origin records no MINE step: one warning naming it."""
    from offtake.formulation.data import build_data
    from offtake.formulation.ruledata import origin_gaps

    raw = with_rules({"id": "EX", "kind": "exclusion", "stages": ["MINE"],
                      "countries": ["CN"]})
    assert origin_gaps(instance(raw), build_data(instance(raw))) == []
    raw["facilities"].append(_fac("F-KR", "KR", {}, 100))
    raw["offers"].append(_offer("O-KR", "F-KR", 60))
    (w,) = origin_gaps(instance(raw), build_data(instance(raw)))
    assert w.severity == "warning" and "'MAGNET:KR'" in w.message and w.location == "rules[EX]"


def test_recycled_content_can_qualify():
    """50 % of demand must be mined in US/AU. F-JP (AU ore) is capped at 20 t and F-US has no
    capacity, so without counting recycling the rule cannot hold (infeasible). With
    recycled_qualifies, F-REC's US-recycled magnets qualify: 20 t F-JP x 70,000 + 30 t F-REC x
    75,000 + 50 t F-CN x 50,000 = 1.4M + 2.25M + 2.5M = 6.15M."""
    from offtake.pipeline.solve import solve_instance

    rule = {"id": "ALLY", "kind": "min_content_share", "min_share": 0.5, "stages": ["MINE"],
            "groups": ["ALLIED"]}
    raw = with_rules(rule)
    raw["facilities"][1]["capacity_t"] = 20
    raw["facilities"][2]["capacity_t"] = 0
    assert solve_instance(instance(raw)).status == "infeasible"
    raw["rules"][0]["recycled_qualifies"] = True
    res = solve_instance(instance(raw))
    assert res.objective == approx(6_150_000)
