"""Warm re-solves (offtake.pipeline.solve.WarmSolver, offtake.solvers.highs.HighsModel.update):
one HiGHS model changed in place gives the optimum of a fresh build, for each kind of number a
sweep changes; a change of structure falls back to a fresh build; the shadow-price LP in
between does not leak into the next solve."""

from __future__ import annotations

import pytest
from conftest import INSTANCES

from offtake.domain.transforms import apply_sets
from offtake.io.loader import load_or_raise
from offtake.pipeline.solve import WarmSolver, solve_instance, solve_lean, solve_lean_task
from offtake.runtime import make_executor
from offtake.solvers.highs import SolveOptions

SMALL = INSTANCES / "us_ev_oem_small.yaml"

CHANGES = {
    "rule share": ["rules.SUPPLIER-CAP-50.max_share=0.65"],
    "price": ["offers.OFF-SGI-VN.price_per_kg=75"],
    "capacity": ["facilities.NOVEON.capacity_t=900"],
    "demand": ["buyers.US-EV-OEM.demand_t.MAGNET_SH.2029=2500"],
    "forced offer": ["offers.OFF-USAR.decision=forced"],
    "forbidden offer": ["offers.OFF-SGI-VN.decision=forbidden"],
    "several at once": ["rules.SUPPLIER-CAP-50.max_share=0.4",
                        "offers.OFF-JLMAG.price_per_kg=90"],
}


@pytest.fixture(scope="module")
def small():
    return load_or_raise(SMALL)


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_warm_re_solve_gives_the_optimum_of_a_fresh_build(small, change):
    changed = apply_sets(small, CHANGES[change])
    fresh = solve_lean(changed)
    solver = WarmSolver()
    first = solver.solve(small)
    second = solver.solve(changed)
    assert not first.warm and second.warm, "the change should keep the structure"
    assert second.status == fresh.status == "optimal"
    assert second.objective == pytest.approx(fresh.objective, rel=1e-9)
    back = solver.solve(small)  # and back again, from the changed model's solution
    assert back.warm and back.objective == pytest.approx(first.objective, rel=1e-9)


def test_the_change_is_real(small):
    """The changes above move the optimum (else the test above would pass on a stale model)."""
    base = solve_lean(small).objective
    moved = [c for c, sets in CHANGES.items()
             if abs(solve_lean(apply_sets(small, sets)).objective - base) > 1e-6 * base]
    assert len(moved) >= 5, moved


def test_a_change_of_structure_builds_afresh(small):
    solver = WarmSolver()
    solver.solve(small)
    fewer = apply_sets(small, [])  # same instance: warm
    assert solver.solve(fewer).warm
    no_rule = small.model_copy(update={"rules": [r for r in small.rules
                                                 if r.id != "SUPPLIER-CAP-50"]})
    out = solver.solve(no_rule)
    assert not out.warm and out.status == "optimal"
    assert out.objective == pytest.approx(solve_lean(no_rule).objective, rel=1e-9)
    assert (solver.fresh, solver.warm) == (2, 1)


def test_shadow_prices_then_a_warm_solve(small):
    """After the shadow-price LP (integers relaxed and fixed) the next warm solve is a MIP
    again with the integer columns free."""
    from offtake.formulation.data import build_data
    from offtake.formulation.model import build_model
    from offtake.solvers.highs import HighsModel, objective_scale_for

    d = build_data(small)
    options = SolveOptions(objective_scale=objective_scale_for(d.max_cost_coefficient()))
    highs = HighsModel(build_model(d), options)
    assert highs.solve().status == "optimal"
    assert highs.shadow_prices() is not None and highs.relaxed
    forbidden = apply_sets(small, ["offers.OFF-SGI-VN.decision=forbidden"])
    d2 = build_data(forbidden)
    assert highs.update(build_model(d2), options)
    out = highs.solve()
    assert out.objective == pytest.approx(solve_instance(forbidden).objective, rel=1e-9)
    assert out.size.binaries > 0 and not highs.relaxed


def test_tasks_in_one_worker_are_warm_after_the_first(small):
    points = [apply_sets(small, [f"rules.SUPPLIER-CAP-50.max_share={x}"])
              for x in (0.5, 0.55, 0.6)]
    with make_executor("serial") as ex:
        out = ex.map(solve_lean_task, points, shared=SolveOptions())
    assert [r.value.warm for r in out] == [False, True, True]
    for point, r in zip(points, out, strict=True):
        assert r.value.objective == pytest.approx(solve_lean(point).objective, rel=1e-9)


def test_the_time_limit_covers_the_shadow_price_lp(small, monkeypatch):
    """--time-limit bounds the whole solve: the shadow-price LP gets what the MIP left, not
    a second full limit (a 100-scenario extensive form at 600 s ran its LP for up to another
    600 s). With 60 s and 20 s gone, HiGHS is handed about 40 s and the limit is restored
    after; with the limit spent there are no shadow prices rather than an overrun."""
    import offtake.solvers.highs as highs_module
    from offtake.formulation.data import build_data
    from offtake.formulation.model import build_model
    from offtake.solvers.highs import HighsModel

    highs = HighsModel(build_model(build_data(small)), SolveOptions(time_limit=60.0))
    assert highs.solve().status == "optimal"
    handed = []
    real_run = highs.lp.h.run

    def run():
        handed.append(_option(highs, "time_limit"))
        return real_run()

    monkeypatch.setattr(highs.lp.h, "run", run)
    clock = highs.started + 20.0
    monkeypatch.setattr(highs_module.time, "perf_counter", lambda: clock)
    assert highs.shadow_prices() is not None
    assert handed == [pytest.approx(40.0)]
    assert _option(highs, "time_limit") == 60.0
    clock = highs.started + 61.0
    assert highs.shadow_prices() is None and len(handed) == 1


def _option(highs, name: str) -> float:
    """An option's value (highspy gives (status, value) here, the value in older releases)."""
    got = highs.lp.h.getOptionValue(name)
    return float(got[1] if isinstance(got, tuple) else got)
