"""Layer 1: structure without solving (derived data, residuals of a family at fixed values)
and the solver wrapper's status mapping. Formulation <-> builders <-> checker: test_registry."""

from __future__ import annotations

import pyomo.environ as pyo
import pytest
from conftest import base, instance

from offtake.formulation import model
from offtake.formulation.data import build_data
from offtake.solvers import highs as solve
from offtake.solvers.highs import SolveOptions, SolverVersionError


def test_derived_data_is_sparse_and_in_model_units():
    d = build_data(instance(base()))
    assert d.offer_price_per_t["O2", 2027, "base"] == 72_000
    assert d.capacity_t["S2", 2026, "base"] == 50
    assert d.BUYER_ARC_TAGS == (("B1", "S1", "B1", "MAGNET:US"), ("B1", "S2", "B1", "MAGNET:DE"))
    assert d.OFFER_BUYER_YEARS == (("O1", "B1", 2026), ("O1", "B1", 2027),
                                   ("O2", "B1", 2026), ("O2", "B1", 2027))
    assert d.COMBOS == ()
    assert d.ARRIVALS == (("B1", "MAG", "MAGNET:DE"), ("B1", "MAG", "MAGNET:US"))
    assert d.discount == {2026: 1.0, 2027: 1.0}


def test_window_clipped_to_horizon_in_data():
    raw = base()
    raw["offers"][0].update(first_year=2020, last_year=2026,
                            price_per_kg={y: 80 for y in range(2020, 2027)})
    d = build_data(instance(raw))
    assert [y for o, y in d.OFFER_YEARS if o == "O1"] == [2026]
    assert d.offer_signing_year["O1"] == 2026


def test_capacity_and_balance_residuals_at_fixed_values():
    """Fix a plan by hand and read each family's residual (body - bound)."""
    m = model.build_model(build_data(instance(base())))
    m.v_signed["O1"].fix(1)
    m.v_signed["O2"].fix(1)
    for (o, b, y), q in {("O1", "B1", 2026): 10, ("O1", "B1", 2027): 10,
                         ("O2", "B1", 2026): 60, ("O2", "B1", 2027): 80}.items():
        m.v_volume_t[o, b, y].fix(q)
    # S2 capacity is 50 in 2026: 60 sold -> residual +10 above the upper bound
    con = m.facility_capacity_max["S2", 2026, "base"]
    assert pyo.value(con.body) - pyo.value(con.upper) == pytest.approx(10)
    # output balance at S1 with no flow: 0 out vs 10 bought -> body = out - in = -10
    for k in m.v_flow_t:
        m.v_flow_t[k].fix(0)
    bal = m.facility_output_balance["S1", "B1", "MAGNET:US", 2026, "base"]
    assert abs(pyo.value(bal.body) - pyo.value(bal.upper)) == pytest.approx(10)
    # demand 60 in 2026, nothing arrives, no unmet -> short by 60
    m.v_unmet_t["B1", "MAG", 2026, "base"].fix(0)
    dem = m.demand_balance["B1", "MAG", 2026, "base"]
    assert pyo.value(dem.lower) - pyo.value(dem.body) == pytest.approx(60)


def _knapsack(n: int = 60) -> pyo.ConcreteModel:
    import random

    rnd = random.Random(1)
    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(n), domain=pyo.Binary)
    w = [rnd.randint(10, 100) for _ in range(n)]
    v = [rnd.randint(10, 100) for _ in range(n)]
    m.c1 = pyo.Constraint(expr=sum(w[i] * m.x[i] for i in range(n)) == sum(w) // 2 + 1)
    m.c2 = pyo.Constraint(expr=sum(v[i] * m.x[i] for i in range(n)) == sum(v) // 2 + 3)
    m.o = pyo.Objective(expr=sum((i % 7) * m.x[i] for i in range(n)))
    return m


def test_time_limit_without_incumbent_is_no_solution_and_loads_nothing():
    m = _knapsack()
    out = solve.solve(m, SolveOptions(time_limit=0.0))
    assert out.status == "no_solution"
    assert out.objective is None and not out.has_solution
    assert all(m.x[i].value is None for i in m.x)  # no plan of zeros


def test_infeasible_lp_and_mip_are_reported():
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 1))
    m.c = pyo.Constraint(expr=m.x >= 2)
    m.o = pyo.Objective(expr=m.x)
    assert solve.solve(m).status == "infeasible"
    m = pyo.ConcreteModel()
    m.z = pyo.Var(domain=pyo.Binary)
    m.y = pyo.Var(bounds=(0, 1))
    m.c = pyo.Constraint(expr=m.z + m.y >= 3)
    m.o = pyo.Objective(expr=m.z)
    assert solve.solve(m).status == "infeasible"


def test_known_bad_highspy_refused(monkeypatch):
    monkeypatch.setattr(solve, "highspy_version", lambda: (1, 14, 0))
    with pytest.raises(SolverVersionError, match="1.14.0"):
        solve.check_solver_version()
    monkeypatch.setattr(solve, "highspy_version", lambda: (1, 13, 1))
    with pytest.raises(SolverVersionError):
        solve.check_solver_version()


def test_write_model_writes_named_mps(tmp_path):
    m = model.build_model(build_data(instance(base())))
    path = tmp_path / "model.mps"
    out = solve.solve(m, SolveOptions(write_model=path))
    text = path.read_text()
    assert out.status == "optimal"
    assert "facility_capacity_max" in text and "v_volume_t" in text
    assert text.count("\n") > 10


def test_objective_scale_brings_the_largest_cost_under_a_million():
    assert solve.objective_scale_for(5e5) is None
    assert solve.objective_scale_for(1e7) == -4  # 1e7 / 16 = 625,000
    d = build_data(instance(base()))
    assert d.max_cost_coefficient() == 1e7  # default unmet penalty 10,000 USD/kg


def _unbounded() -> dict:
    """base() plus an unlimited spot market at 50 USD/kg and a market buying surplus back at
    100 USD/kg (resale without haircut): every tonne bought and resold earns 50,000 USD."""
    raw = base()
    raw["spot_markets"] = [
        {"id": "CHEAP", "material": "MAG", "origin": "CN", "price_per_kg": 50,
         "unlimited": True},
        {"id": "DEAR", "material": "MAG", "origin": "JP", "price_per_kg": 100,
         "availability_t": 0, "resale_haircut": 0.0}]
    return raw


def test_an_unbounded_model_is_unbounded_and_names_its_ray():
    from offtake.pipeline.solve import solve_instance

    res = solve_instance(instance(_unbounded()))
    assert res.status == "unbounded" and not res.has_solution and res.objective is None
    assert "v_resale_t[B1,DEAR" in res.message and "v_flow_t[B1,CHEAP" in res.message


def test_an_infeasible_model_with_credits_is_still_infeasible():
    """With resale credits the costs are not all >= 0, so 'infeasible or unbounded' is told
    apart by a feasibility solve: here demand cannot be met and unmet demand is impossible
    (a hard minimum content rule no supplier meets)."""
    from offtake.pipeline.solve import solve_instance

    raw = _unbounded()
    raw["spot_markets"][0]["unlimited"] = False
    raw["spot_markets"][0]["availability_t"] = 10
    raw["rules"] = [{"id": "ALL-JP", "kind": "min_content_share", "min_share": 1.0,
                     "stages": ["MAGNET"], "countries": ["JP"]}]
    res = solve_instance(instance(raw))
    assert res.status == "infeasible"
