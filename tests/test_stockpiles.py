"""Strategic stockpiles (formulation.md, stockpile_balance, stockpile_level,
stockpile_release): a stock filled before a ban and released in the ban scenario, releases
forbidden without the disruption, a government's stock whose cost is fiscal, the origin tag
kept through the stock, the checker catching a wrong stock table, and schema rejections.
Hand-derived optima, every solve checked by the independent checker."""

from __future__ import annotations

import copy

import pytest
from conftest import approx, check, codes, instance, solve_checked

from offtake.check import check_tables

BAN: dict = {
    "meta": {"name": "stockpile", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2027},
    "materials": [{"id": "DY", "form": "oxide"}],
    "buyers": [{"id": "B", "country": "JP", "demand_t": {"DY": 10}}],
    "spot_markets": [
        {"id": "CN-DY", "material": "DY", "origin": "CN", "price_per_kg": 300,
         "availability_t": 100, "feed_origin": {"MINE": "CN", "SEP_H": "CN"}},
        {"id": "AU-DY", "material": "DY", "origin": "AU", "price_per_kg": 900,
         "unlimited": True, "feed_origin": {"MINE": "AU", "SEP_H": "AU"}}],
    "stockpiles": [{"id": "SP", "holder": "B", "material": "DY", "location": "B",
                    "capacity_t": 20, "holding_cost_per_kg_year": 20, "markets": ["CN-DY"]}],
    "scenarios": [
        {"id": "open", "probability": 0.5},
        {"id": "ban", "probability": 0.5,
         "spot": [{"markets": ["CN-DY"], "from_year": 2027, "availability_multiplier": 0}],
         "releases": [{"stockpiles": ["SP"], "from_year": 2027}]}],
}
"""Buyer B needs 10 t of Dy oxide a year (2026-2027, no discounting). Chinese spot at 300
USD/kg (100 t/yr), Australian spot at 900 (unlimited). In `ban` (p = 1/2) the Chinese market
is shut in 2027 and B's own stockpile SP (capacity 20 t, 20 USD/kg-year, fed from the Chinese
market, first-stage purchases) may release in 2027."""


def test_a_stockpile_filled_before_a_ban_is_released_in_the_ban(tmp_path):
    """Without a stock: 2026 costs 3.0M (Chinese spot) in both scenarios, 2027 3.0M open and
    9.0M (Australian spot) in the ban: E = 3.0 + 0.5 (3.0 + 9.0) = 9.0M.
    Buying q t into SP in 2026 (first stage; 2027 purchases would meet a shut market in the
    ban) costs 300,000 q + 20,000 q holding at the end of 2026; open: the stock may not be
    released and is held one more year (+20,000 q); ban: q t released in 2027 replace
    Australian tonnes (-900,000 q). Per tonne: 320,000 + 0.5 x 20,000 - 0.5 x 900,000 =
    -120,000 < 0, so q = 10 (the ban's 2027 demand; more would only be held).
    E = 3.0M (2026 demand) + 3.2M (stock) + 0.5 x (3.0M + 0.2M) + 0.5 x 0 = 7.8M:
    the stockpile is worth 1.2M. Scenario costs: open 3.0 + 3.2 + 3.2 = 9.4M; ban 6.2M."""
    res = solve_checked(instance(BAN), tmp_path)
    assert res.objective == approx(7_800_000)
    st = res.tables["stockpiles"].set_index(["year", "scenario"])
    assert st.loc[(2026, "open"), "purchased_t"] == approx(10)
    assert st.loc[(2026, "ban"), "level_t"] == approx(10)
    assert st.loc[(2027, "ban"), "released_t"] == approx(10)
    assert (2027, "ban") not in st.index or st.loc[(2027, "ban"), "level_t"] == approx(0)
    assert st.loc[(2027, "open"), "level_t"] == approx(10)
    assert st.loc[(2027, "open"), "release_allowed"] == 0
    terms = res.tables["scenario_costs"].set_index(["scenario", "term"])["value"]
    assert terms["open", "stockpile_purchases"] == approx(3_000_000)
    assert terms["open", "stockpile_holding"] == approx(400_000)
    assert terms["ban", "stockpile_holding"] == approx(200_000)
    assert terms["ban", "spot_purchases"] == approx(3_000_000)
    costs = res.tables["costs"].set_index(["term", "buyer"])["value"]
    assert costs["stockpile_purchases", "B"] == approx(3_000_000)
    assert costs["stockpile_holding", "B"] == approx(300_000)
    # the released tonnes arrive with the stock's tag (Chinese chain): origin.csv reads it
    o = res.tables["origin"].set_index(["year", "scenario", "stage", "country"])
    assert o.loc[(2027, "ban", "SEP_H", "CN"), "tonnes"] == approx(10)
    none = copy.deepcopy(BAN)
    del none["stockpiles"], none["scenarios"][1]["releases"]
    assert solve_checked(instance(none), tmp_path / "none").objective == approx(9_000_000)


def test_releases_are_forbidden_without_the_disruption(tmp_path):
    """Without the ban scenario's release window, SP can never release: buying into it only
    costs, so q = 0 and E = 9.0M, as with no stockpile. With `release: any_time` q = 10 t
    bought in 2026 serve the open scenario at once (released in 2026, no holding; 2027 from
    Chinese spot): open 3.0 + 3.0 = 6.0M; the ban keeps them for 2027: 3.0 (stock) + 0.2
    (holding) + 3.0 (2026 spot) = 6.2M; E = 6.1M (a stock bought for the ban costs nothing
    extra where it can be used at once)."""
    raw = copy.deepcopy(BAN)
    del raw["scenarios"][1]["releases"]
    res = solve_checked(instance(raw), tmp_path / "closed")
    assert res.objective == approx(9_000_000)
    assert res.tables["stockpile_purchases"].empty
    raw["stockpiles"][0]["release"] = "any_time"
    assert solve_checked(instance(raw), tmp_path / "any").objective == approx(6_100_000)


def test_a_government_stockpile_costs_the_government(tmp_path):
    """A government (JP-GOV) holds 10 t of Australian-chain oxide from before 2026 (no
    purchases), 20 USD/kg-year, released in the ban at 400 USD/kg. B pays 4.0M for the 10 t
    in the ban's 2027 instead of 9.0M Australian spot: E = 3.0 + 0.5 x 3.0 + 0.5 x 4.0 =
    6.5M (holding is not B's). JP-GOV's fiscal cost: holding 0.2M (2026) + 0.5 x 0.2M
    (open, 2027) - 0.5 x 4.0M (release payments) = -1.7M. The released tonnes carry the
    stock's tag (MINE AU, SEP_H AU)."""
    raw = copy.deepcopy(BAN)
    raw["stockpiles"] = [{"id": "SP", "holder": "JP-GOV", "material": "DY", "location": "B",
                          "capacity_t": 20, "initial_t": 10, "holding_cost_per_kg_year": 20,
                          "initial_origin": {"MINE": "AU", "SEP_H": "AU"},
                          "release_price_per_kg": 400}]
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(6_500_000)
    costs = res.tables["costs"]
    fiscal = costs[costs["term"] == "fiscal_stockpile"].set_index("payer")["value"]
    assert fiscal["JP-GOV"] == approx(-1_700_000)
    assert res.cost_terms()["stockpile_releases"] == approx(2_000_000)
    o = res.tables["origin"].set_index(["year", "scenario", "stage", "country"])
    assert o.loc[(2027, "ban", "SEP_H", "AU"), "tonnes"] == approx(10)


def test_the_checker_catches_a_wrong_stock_table(tmp_path):
    """Tampering with stockpiles.csv (a level 1 t too high), with a release moved to the
    open scenario, or with a purchase dropped is each caught."""
    res = solve_checked(instance(BAN), tmp_path)
    inst = instance(BAN)

    def report(tables):
        return check_tables(inst, tables, res.objective, None)

    t = {k: v.copy() for k, v in res.tables.items()}
    st = t["stockpiles"]
    row = st.index[(st["year"] == 2027) & (st["scenario"] == "open")][0]
    st.loc[row, "level_t"] += 1.0
    assert report(t).of("stockpile_balance")
    t = {k: v.copy() for k, v in res.tables.items()}
    f = t["flows"]
    row = f.index[(f["from_node"] == "SP") & (f["scenario"] == "ban")][0]
    f.loc[row, "scenario"] = "open"
    assert report(t).of("stockpile_release_max")
    t = {k: v.copy() for k, v in res.tables.items()}
    pu = t["stockpile_purchases"]
    t["stockpile_purchases"] = pu[pu["scenario"] != "ban"].reset_index(drop=True)
    found = report(t)
    assert found.of("stockpile_balance") and found.of("stockpile_level")


@pytest.mark.parametrize("change, code_or_text", [
    ({"initial_t": 30}, "above capacity_t"),
    ({"min_level_t": 25}, "above capacity_t"),
    ({"material": "NDPR"}, "unknown_reference"),
    ({"location": "NOWHERE"}, "unknown_reference"),
    ({"markets": ["AU-DYX"]}, "unknown_reference"),
    ({"release_to": ["C"]}, "stockpile_release_to"),
    ({"holder": "JP-GOV"}, "stockpile_government_purchases"),
    ({"release_price_per_kg": 100}, "stockpile_release_price"),
    ({"min_level_t": 5, "markets": []}, "stockpile_min_unreachable"),
    ({"min_level_t": {2026: 3, 2027: 9}, "purchase_max_t": 4}, "stockpile_min_unreachable"),
])
def test_schema_rejects_bad_stockpiles_with_a_location(change, code_or_text):
    raw = copy.deepcopy(BAN)
    raw["stockpiles"][0].update(change)
    res = check(raw)
    assert res.instance is None
    found = [f for f in res.findings if f.severity == "error"]
    assert any(code_or_text in (f.code + f.message) for f in found), found
    assert any("stockpiles[SP]" in f.where or "stockpiles[0]" in f.where for f in found), found


def test_a_release_window_naming_an_unknown_stockpile_is_rejected():
    raw = copy.deepcopy(BAN)
    raw["scenarios"][1]["releases"][0]["stockpiles"] = ["SPX"]
    res = check(raw)
    assert "unknown_reference" in codes(res, "error")


def test_purchases_per_scenario_are_made_where_the_ban_comes(tmp_path):
    """With `purchase_stage: scenario` the purchases are second-stage: only the ban scenario
    buys (10 t in 2026 at 300 USD/kg, held one year at 20): ban 3.0M (2026 demand) + 3.0M +
    0.2M = 6.2M, open 3.0M + 3.0M = 6.0M (no stock): E = 6.1M, against 7.8M when the
    purchase is decided before the scenario is known."""
    raw = copy.deepcopy(BAN)
    raw["stockpiles"][0]["purchase_stage"] = "scenario"
    res = solve_checked(instance(raw), tmp_path)
    assert res.objective == approx(6_100_000)
    pu = res.tables["stockpile_purchases"]
    assert set(pu["scenario"]) == {"ban"} and pu["volume_t"].sum() == approx(10)


def test_a_minimum_level_and_purchase_bounds_bind(tmp_path):
    """Without a release window, a minimum level of 5 t (held in every year: no release is
    ever allowed) forces 5 t bought in 2026 and held two years: 5 x (300,000 + 2 x 20,000) =
    1.7M on top of 9.0M: 10.7M. With the release window back and at most 4 t bought a year,
    the stock's value is 4 x 120,000 (first test): 9.0M - 0.48M = 8.52M."""
    raw = copy.deepcopy(BAN)
    del raw["scenarios"][1]["releases"]
    raw["stockpiles"][0]["min_level_t"] = 5
    res = solve_checked(instance(raw), tmp_path / "min")
    assert res.objective == approx(10_700_000)
    raw = copy.deepcopy(BAN)
    raw["stockpiles"][0]["purchase_max_t"] = 4
    assert solve_checked(instance(raw), tmp_path / "max").objective == approx(8_520_000)


PROCESSED: dict = {
    "meta": {"name": "stock-to-magnet", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2026},
    "materials": [{"id": "DY", "form": "oxide"}, {"id": "MAG", "form": "magnet"}],
    "facilities": [{"id": "JP-MAG", "company": "M", "country": "JP", "stage": "MAGNET",
                    "product": "MAG", "capacity_t": 1000, "recipe": {"DY": 1.0},
                    "opex_per_kg": 10}],
    "buyers": [{"id": "B", "country": "JP", "demand_t": {"MAG": 10}}],
    "spot_markets": [
        {"id": "CN-DY", "material": "DY", "origin": "CN", "price_per_kg": 300,
         "unlimited": True, "feed_origin": {"MINE": "CN", "SEP_H": "CN"}}],
    "stockpiles": [{"id": "GOV", "holder": "JP-GOV", "material": "DY", "location": "JP-MAG",
                    "capacity_t": 10, "initial_t": 4, "release": "any_time",
                    "initial_origin": {"MINE": "AU", "SEP_H": "MY"},
                    "release_price_per_kg": 500}],
    "rules": [{"id": "NONCN", "kind": "min_content_share", "min_share": 0.4,
               "stages": ["SEP_H"], "countries": ["MY", "AU"]}],
}
"""A magnet maker (toll 10 USD/kg, 1 t of Dy oxide per t of magnet in this toy recipe)
makes B's 10 t from Chinese oxide at 300 USD/kg or from a government stock of 4 t of
Australian-Malaysian oxide released to the plant (any time) at 500 USD/kg; B must get at
least 40 % of its magnets from chains separated in MY or AU."""


def test_released_oxide_keeps_its_tag_through_processing(tmp_path):
    """The content rule is met only by the stock's tag: 4 t released at 500,000 (2.0M) and
    6 t of Chinese oxide (1.8M), 10 t tolled (0.1M): 3.9M; the magnets made from the stock
    carry SEP_H MY, 40 % of B's magnets. The government's fiscal cost is -2.0M (release
    payments, no holding cost). Without the rule B takes no stock: 3.1M."""
    res = solve_checked(instance(PROCESSED), tmp_path)
    assert res.objective == approx(3_900_000)
    o = res.tables["origin"].set_index(["stage", "country"])
    assert o.loc[("SEP_H", "MY"), "tonnes"] == approx(4) and o.loc[("SEP_H", "MY"),
                                                                   "share"] == approx(0.4)
    costs = res.tables["costs"]
    assert costs[costs["term"] == "fiscal_stockpile"]["value"].sum() == approx(-2_000_000)
    raw = copy.deepcopy(PROCESSED)
    del raw["rules"]
    assert solve_checked(instance(raw), tmp_path / "free").objective == approx(3_100_000)


def test_sweep_figures_credit_a_buyers_stockpile_and_count_a_governments(tmp_path):
    """The key figures a sweep records: B's own stockpile (purchases and holding) is B's cost,
    nothing is shared (7.8M); a government's stock is its fiscal cost (-1.7M, as costs.csv)."""
    from offtake.pipeline.solve import WarmSolver

    f = WarmSolver(figures=True).solve(instance(BAN)).figures
    assert f.buyer_cost["B"] == approx(7_800_000) and f.buyer_cost["shared"] == approx(0)
    raw = copy.deepcopy(BAN)
    raw["stockpiles"] = [{"id": "SP", "holder": "JP-GOV", "material": "DY", "location": "B",
                          "capacity_t": 20, "initial_t": 10, "holding_cost_per_kg_year": 20,
                          "initial_origin": {"MINE": "AU", "SEP_H": "AU"},
                          "release_price_per_kg": 400}]
    f = WarmSolver(figures=True).solve(instance(raw)).figures
    assert f.fiscal["JP-GOV"] == approx(-1_700_000)


def test_a_buyers_stockpile_goes_with_its_buyer_in_a_coalition():
    """keep_buyers (coalitions, solve --buyers): B's stockpile and the release window naming
    it leave with B (a note), C's instance validates; kept with B."""
    from offtake.domain.transforms import keep_buyers_noted

    raw = copy.deepcopy(BAN)
    raw["buyers"].append({"id": "C", "country": "JP", "demand_t": {"DY": 5}})
    inst = instance(raw)
    small, notes = keep_buyers_noted(inst, ["C"])
    assert small.stockpiles == [] and all(not sc.releases for sc in small.scenarios)
    assert [f.code for f in notes] == ["stockpile_dropped"]
    kept, _ = keep_buyers_noted(inst, ["B"])
    assert [sp.id for sp in kept.stockpiles] == ["SP"] and kept.scenarios[1].releases


def test_a_deficit_event_opens_the_release_window(tmp_path):
    """The ban written as a scenario_spec deficit event instead (p = 1/2, the whole Chinese
    market short from 2027: shortfall = world demand) that `releases` SP: the same two
    scenarios, the same 7.8M."""
    from conftest import check

    raw = copy.deepcopy(BAN)
    del raw["scenarios"]
    raw["scenario_spec"] = {"events": [{
        "kind": "deficit", "id": "CN-OUT", "materials": ["DY"], "markets": ["CN-DY"],
        "probability": 0.5, "from_year": 2027, "full_year": 2027, "shortfall_t": 100,
        "world_demand_t": 100, "releases": ["SP"]}]}
    inst = check(raw).instance
    on = next(sc for sc in inst.scenarios if sc.releases)
    assert on.releases[0].from_year == 2027 and on.probability == approx(0.5)
    assert solve_checked(inst, tmp_path).objective == approx(7_800_000)
