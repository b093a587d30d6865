"""The stockpile study (instances/stockpile_study.yaml, issue 18): JOGMEC's 60-day stockpile
of Dy/Tb oxide released during a Chinese export ban, against none. The value of the stockpile
(expected cost without it minus with it) and JOGMEC's fiscal cost are derived by hand, and
the larger stockpiles of the same policies (Korea's 100 days [S143], Japan's 180-day ceiling
[S141]) are solved too. Every solve goes through the checker."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, approx, solve_checked

from offtake.domain.transforms import from_data, set_values, to_data
from offtake.io.loader import load_or_raise

STUDY = ROOT / "instances" / "stockpile_study.yaml"
DEMAND_T, STOCK_T = 1475.0, 242.0
SAVED_PER_T = (3625 - 255) * 1000.0
"""A released tonne replaces a tonne of unmet demand (3,625 USD/kg) and costs the release
price (255 USD/kg)."""
FIRST_BAN_YEAR = 0.3 / 1.08 + 0.1 / 1.08**2
"""Expected discount factor of the first ban year: 2027 with p = 0.3, 2028 with p = 0.1."""


def without_stockpile(inst):
    raw = to_data(inst)
    raw.pop("stockpiles")
    for sc in raw["scenarios"]:
        sc.pop("releases", None)
    return from_data(raw)


def fiscal(res) -> float:
    c = res.tables["costs"]
    return float(c[c["term"] == "fiscal_stockpile"]["value"].sum())


@pytest.fixture(scope="module")
def no_stock(tmp_path_factory):
    return solve_checked(without_stockpile(load_or_raise(STUDY)),
                         tmp_path_factory.mktemp("none"))


def test_the_stockpile_is_worth_its_releases_in_the_first_ban_year(no_stock, tmp_path):
    """In a ban the Chinese market is shut: Caremag (at most 295 t) and the ex-China market
    (50 t) leave at least 1,475 - 345 = 1,130 t unmet each ban year, more than the 242 t in
    stock, so the whole stock is released in the first ban year (discounting makes the
    earliest use the best) and each tonne saves 3,625 - 255 = 3,370 USD/kg; the contracts
    (first stage) are worth the same with or without it, as demand stays unmet in every ban
    year. Value = 242 x 3,370,000 x (0.3 / 1.08 + 0.1 / 1.08^2) = 296,458,299 USD.
    JOGMEC's fiscal cost: holding 20 USD/kg on 242 t at the end of 2026 (p = 1), 2027 (0.7:
    no ban from 2027) and 2028-2030 (0.6: no ban), discounted, less the release payments
    242 x 255,000 x the same factor: 4,840,000 x (1 + 0.7 / 1.08 + 0.6 (1.08^-2 + 1.08^-3 +
    1.08^-4)) - 61,710,000 x 0.36351 = -7,525,740 (a net gain: JOGMEC sells at the Chinese
    price what it holds for little)."""
    res = solve_checked(load_or_raise(STUDY), tmp_path)
    value = no_stock.objective - res.objective
    assert value == approx(STOCK_T * SAVED_PER_T * FIRST_BAN_YEAR)
    assert value == approx(296_458_299.04)
    holding = 20_000 * STOCK_T * (1 + 0.7 / 1.08 + 0.6 * sum(1.08**-k for k in (2, 3, 4)))
    assert fiscal(res) == approx(holding - STOCK_T * 255_000 * FIRST_BAN_YEAR)
    st = res.tables["stockpiles"]
    released = st[st["released_t"] > 0]
    assert set(released["released_t"].round(6)) == {STOCK_T}
    assert released["release_allowed"].eq(1).all()
    first = {s.id: min((w.from_year for w in s.releases if w.from_year), default=None)
             for s in load_or_raise(STUDY).scenarios}
    assert all(first[s] == y for s, y in zip(released["scenario"], released["year"],
                                             strict=True))


@pytest.mark.parametrize("days", [100, 180])
def test_larger_stockpiles_are_worth_proportionally_more(no_stock, tmp_path, days):
    """Korea's 100 days (404 t) and Japan's 180-day ceiling (727 t) still stay below the
    1,130 t gap of a ban year: the value is linear in the stock."""
    stock = round(DEMAND_T * days / 365)
    inst = set_values(load_or_raise(STUDY), [("stockpiles.JP-STOCK.initial_t", float(stock))])
    res = solve_checked(inst, tmp_path)
    assert no_stock.objective - res.objective == approx(stock * SAVED_PER_T * FIRST_BAN_YEAR)


def test_the_report_shows_the_stockpile(tmp_path):
    """The report frame (console, HTML, results.xlsx): nothing bought, 242 t released in the
    40 % of the probability where a ban comes (2027 or 2028), 242 t left at the end in the
    other 60 %."""
    from offtake.report.html import write_report
    from offtake.report.tables import stockpiles_frame

    res = solve_checked(load_or_raise(STUDY), tmp_path)
    frame = stockpiles_frame(res).set_index("stockpile")
    assert frame.loc["JP-STOCK", "holder"] == "JP-GOV"
    assert frame.loc["JP-STOCK", "bought (t)"] == 0
    assert frame.loc["JP-STOCK", "released (t)"] == approx(0.4 * STOCK_T)
    assert frame.loc["JP-STOCK", "end level (t)"] == approx(0.6 * STOCK_T)
    assert frame.loc["JP-STOCK", "released in"] == "2027, 2028"
    page, _ = write_report(tmp_path)
    assert "<h2>Stockpiles</h2>" in Path(page).read_text()
