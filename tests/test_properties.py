"""Monotonicity properties on small random instances (hypothesis), each solve checked
independently: adding a supplier never raises the optimal cost; raising demand never lowers it.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

from conftest import instance, solve_checked
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

YEARS = (2026, 2027)
TOL = 1e-5  # relative; solves stop at a 1e-6 MIP gap


@st.composite
def supplier(draw, i: int) -> tuple[dict, dict]:
    cap = {y: draw(st.integers(0, 200)) for y in YEARS}
    hi = draw(st.integers(10, 300))
    lo = draw(st.sampled_from([0, 0, hi // 4, hi // 2]))
    fac = {"id": f"F{i}", "company": f"C{i % 3}", "country": draw(st.sampled_from(
        ["US", "CN", "AU", "DE", "JP"])), "stage": "MAGNET", "product": "MAG",
           "capacity_t": cap}
    offer = {"id": f"O{i}", "supplier": f"F{i}", "material": "MAG", "first_year": 2026,
             "last_year": 2027, "min_t_per_year": lo, "max_t_per_year": hi,
             "price_per_kg": {y: draw(st.integers(20, 120)) for y in YEARS},
             "signing_cost": draw(st.sampled_from([0, 250_000, 1_000_000, 3_000_000]))}
    return fac, offer


@st.composite
def instances(draw) -> dict:
    n = draw(st.integers(1, 3))
    pairs = [draw(supplier(i)) for i in range(n)]
    spot = {"id": "SPOT", "material": "MAG", "origin": "CN",
            "price_per_kg": draw(st.integers(50, 150))}
    if draw(st.booleans()):
        spot["unlimited"] = True
    else:
        spot["availability_t"] = draw(st.integers(1, 100))  # some source every year
    return {
        "meta": {"name": "random", "currency": "USD", "price_year": 2025},
        "horizon": {"first_year": YEARS[0], "last_year": YEARS[-1],
                    "discount_rate": draw(st.sampled_from([0.0, 0.08]))},
        "materials": [{"id": "MAG", "form": "magnet", "unmet_penalty_per_kg": 500}],
        "facilities": [f for f, _ in pairs],
        "buyers": [{"id": "B", "country": "US",
                    "demand_t": {"MAG": {y: draw(st.integers(1, 300)) for y in YEARS}}}],
        "offers": [o for _, o in pairs],
        "spot_markets": [spot],
    }


def optimum(raw: dict) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        res = solve_checked(instance(raw), Path(tmp))
    assert res.status == "optimal"
    return res.objective


SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(raw=instances(), extra=supplier(9))
def test_adding_a_supplier_never_raises_cost(raw, extra):
    before = optimum(raw)
    bigger = copy.deepcopy(raw)
    bigger["facilities"].append(extra[0])
    bigger["offers"].append(extra[1])
    after = optimum(bigger)
    assert after <= before + TOL * max(1.0, abs(before))


@SETTINGS
@given(raw=instances(), extra=st.integers(0, 200), year=st.sampled_from(YEARS))
def test_raising_demand_never_lowers_cost(raw, extra, year):
    before = optimum(raw)
    more = copy.deepcopy(raw)
    more["buyers"][0]["demand_t"]["MAG"][year] += extra
    after = optimum(more)
    assert after >= before - TOL * max(1.0, abs(before))
