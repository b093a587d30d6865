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


@st.composite
def richer(draw) -> dict:
    """`instances()` plus what a real instance has: two scenarios with demand and price
    changes, a tariff on Chinese origin, take-or-pay on one offer, a second buyer, and hard or
    soft rules of the share kinds (which may make the instance infeasible)."""
    raw = draw(instances())
    raw["buyers"].append({"id": "B2", "country": draw(st.sampled_from(["DE", "JP"])),
                          "demand_t": {"MAG": {y: draw(st.integers(0, 100)) for y in YEARS}}})
    if draw(st.booleans()):
        raw["offers"][0]["take_or_pay_share"] = draw(st.sampled_from([0.5, 0.8, 1.0]))
    raw["tariffs"] = [{"id": "DUTY-CN", "origins": ["CN"],
                       "rate": draw(st.sampled_from([0.0, 0.1, 0.25]))}]
    p = draw(st.sampled_from([0.3, 0.5, 0.8]))
    raw["scenarios"] = [
        {"id": "calm", "probability": p},
        {"id": "tight", "probability": round(1 - p, 6),
         "demand": [{"multiplier": draw(st.sampled_from([1.0, 1.2, 1.5]))}],
         "spot": [{"price_multiplier": draw(st.sampled_from([1.0, 2.0, 3.0]))}]}]
    rules = []
    for i in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["max_supplier_share", "max_country_share",
                                     "min_content_share"]))
        rule: dict = {"id": f"R{i}", "kind": kind}
        if kind == "max_supplier_share":
            rule["max_share"] = draw(st.sampled_from([0.4, 0.6, 0.9]))
        elif kind == "max_country_share":
            rule.update(max_share=draw(st.sampled_from([0.5, 0.8])), stages=["MAGNET"])
        else:
            rule.update(min_share=draw(st.sampled_from([0.2, 0.5])), stages=["MAGNET"],
                        countries=["US", "DE", "JP", "AU"])
        if draw(st.booleans()):
            rule.update(hard=False, penalty_per_unit=draw(st.sampled_from([1000, 50_000])))
        rules.append(rule)
    raw["rules"] = rules
    for f in raw["facilities"]:  # the rules read the magnet stage of every chain
        f["feed_origin"] = {"MAGNET": f["country"]}
    raw["spot_markets"][0]["feed_origin"] = {"MAGNET": "CN"}
    return raw


@SETTINGS
@given(raw=richer())
def test_generated_instances_solve_and_pass_the_checker_and_dropping_a_rule_never_costs(raw):
    """Every generated instance validates, solves to optimal or proves infeasible (hard rules
    can conflict), passes the independent checker when it has a plan, and dropping any one
    rule never raises the optimal cost (a feasible plan stays feasible)."""
    with tempfile.TemporaryDirectory() as tmp:
        res = solve_checked(instance(raw), Path(tmp))  # the checker runs on every plan
    assert res.status in ("optimal", "infeasible")
    if res.status != "optimal" or not raw["rules"]:
        return
    looser = copy.deepcopy(raw)
    looser["rules"] = raw["rules"][1:]
    assert optimum(looser) <= res.objective + TOL * max(1.0, abs(res.objective))
