"""Pareto fronts (offtake.analysis.pareto): the epsilon-constraint front of least cost
against a share rules can read holds its bound at every point and never gets cheaper as the
bound tightens; its records and plans are in the store; dominated points and the knee are
found as derived by hand; a bound past reach ends the front; the CLI writes the table and
the figure; `offtake frontier` (expected cost against CVaR) runs through the same code."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "instances" / "us_ev_oem_small.yaml"


def _front(tmp_path: Path, metric: str, **kwargs):
    from offtake.analysis.pareto import run_pareto
    from offtake.analysis.store import SweepStore
    from offtake.io.loader import load_instance
    from offtake.runtime import make_executor

    loaded = load_instance(SMALL)
    store = SweepStore(tmp_path / "store")
    with make_executor("serial") as ex:
        return run_pareto(loaded.instance, loaded.sha256, metric, store, ex, **kwargs), store


def test_a_content_front_holds_its_bound_and_never_gets_cheaper_as_it_tightens(tmp_path):
    from offtake.analysis.pareto import front_frame
    from offtake.io.loader import load_or_raise
    from offtake.pipeline.solve import solve_lean

    result, store = _front(tmp_path, "non_cn_content", points=4)
    rec = result.records
    assert list(rec["status"]) == ["optimal"] * 4
    assert rec["objective"][0] == pytest.approx(solve_lean(load_or_raise(SMALL)).objective,
                                                rel=1e-6)  # the loose bound binds nothing
    m0 = rec[result.x][0]
    assert list(rec["epsilon"][1:]) == pytest.approx([m0 + (1 - m0) * k / 3 for k in (1, 2, 3)],
                                                     abs=1e-6)
    for eps, share in zip(rec["epsilon"][1:], rec[result.x][1:], strict=True):
        assert share >= eps - 1e-6
    costs = list(rec["objective"])
    assert all(b >= a * (1 - 1e-6) for a, b in zip(costs, costs[1:], strict=False))
    assert rec[result.x].iloc[-1] == pytest.approx(1.0)
    for key in rec["key"]:
        assert store.plan(key)["v_signed"]
    table = front_frame(result)
    assert not table["dominated"].any() and table["knee"].sum() == 1
    again, _ = _front(tmp_path, "non_cn_content", points=4)
    assert [r.ran for r in again.reports] == [0, 0]  # all four came from the store


def test_a_cap_front_ends_where_no_plan_can_meet_the_bound(tmp_path):
    """The cheapest plan has 80 % of some stage in one country; the cap moves 0.8, 0.6,
    0.4, 0.2, 0: at 0.4 and below no plan exists (the instance's suppliers cannot spread
    that thin); those points are named in the table's caption, the others hold their cap."""
    from offtake.analysis.pareto import front_frame

    result, _ = _front(tmp_path, "largest_country_share", points=5)
    rec = result.records
    assert rec[result.x][0] == pytest.approx(0.8)
    assert list(rec["epsilon"][1:]) == pytest.approx([0.6, 0.4, 0.2, 0.0])
    assert list(rec["status"]) == ["optimal", "optimal"] + ["infeasible"] * 3
    assert rec[result.x][1] <= 0.6 + 1e-6
    table = front_frame(result)
    assert len(table) == 2 and not table["dominated"].any()
    assert table.attrs["caption"].endswith(
        "no solution at epsilon = 0.4 (infeasible), 0.2 (infeasible), 0 (infeasible)")


def test_a_front_read_back_from_its_store_is_the_front_solved(tmp_path):
    """What the dashboard draws: the store's records of pareto-largest_country_share give
    the same front table (points, dominated, knee, caption with the infeasible ends) as the
    result run_pareto returned; a sweep that is no front is refused."""
    from offtake.analysis.pareto import front_frame, front_sweeps, read_front

    result, store = _front(tmp_path, "largest_country_share", points=5)
    records = store.frame(latest=False)
    assert front_sweeps(records) == ["pareto-largest_country_share"]
    back = front_frame(read_front(records, "pareto-largest_country_share"))
    solved = front_frame(result)
    pd.testing.assert_frame_equal(back, solved)
    assert back.attrs == solved.attrs
    with pytest.raises(ValueError, match="not a Pareto front"):
        read_front(records, "cap-curve")


def test_dominated_points_and_the_knee_as_derived_by_hand():
    """Higher share is better. (0.65, 120) is dominated by (0.7, 110). The non-dominated
    points scaled to [0, 1] are (0, 0), (0.5, 0.1), (1, 1): the chord is y = x, and
    (0.5, 0.1) lies 0.4 / sqrt(2) from it, the farthest: the knee is (0.6, 101).
    Marginal cost from 0.5 to 0.6: 1 per 10 pp = 0.1 per pp; from 0.6 to 0.7: 0.9 per pp."""
    from offtake.analysis.pareto import METRICS, ParetoResult, front_frame

    records = pd.DataFrame({"key": list("abcd"), "epsilon": [None, 0.6, 0.7, 0.65],
                            "status": ["optimal"] * 4, "m": [0.5, 0.6, 0.7, 0.65],
                            "objective": [100.0, 101.0, 110.0, 120.0]})
    table = front_frame(ParetoResult(METRICS["non_cn_content"], "m", "objective", records,
                                     []))
    by_key = table.set_index("key")
    assert list(by_key["dominated"]) == [False, False, True, False]
    assert by_key.index[by_key["knee"]].tolist() == ["b"]
    assert by_key.loc["b", "marginal_cost_per_pp"] == pytest.approx(0.1)
    assert by_key.loc["c", "marginal_cost_per_pp"] == pytest.approx(0.9)
    assert by_key.loc["d", "cost_above_cheapest"] == 20.0
    assert by_key["repeats"].isna().all()
    # a fifth bound (0.72) that ends at c's plan again: c's repeat, not a new point
    again = pd.concat([records, pd.DataFrame({"key": ["e"], "epsilon": [0.72],
                                              "status": ["optimal"], "m": [0.7],
                                              "objective": [110.0]})], ignore_index=True)
    table = front_frame(ParetoResult(METRICS["non_cn_content"], "m", "objective", again, []))
    assert table.set_index("key").loc["e", "repeats"] == pytest.approx(0.7)
    assert table.attrs["caption"].startswith("3 non-dominated of 5 solved points (1 repeat")


def test_a_cvar_front_by_the_epsilon_constraint_finds_the_points_weights_cannot(tmp_path):
    """TWO_STAGE of test_uncertainty (commit q t at 60 USD/kg, demand 50 or 150 t with
    p = 1/2, spot at 100), alpha = 0.5. For 50 <= q <= 150: E = 7.5M + 10,000 q and
    CVaR = 15M - 40,000 q, so the front is the segment E = 11.25M - CVaR / 4 from (CVaR
    13M, E 8.0M) at q = 50 to (9M, 9.0M) at q = 150; past 150 t both grow. The safest end
    (E + 100 CVaR) is q = 150. Five points: the ends and bounds 12M, 11M, 10M, at E =
    8.25M, 8.5M, 8.75M (q = 75, 100, 125), none dominated. Weighted sums E + lambda CVaR
    over lambda 0, 0.1, 0.2, 0.3, 1 give q = 50 below lambda = 1/4 and q = 150 above it:
    two distinct points only."""
    from test_uncertainty import TWO_STAGE

    from offtake.analysis.pareto import front_frame, run_pareto
    from offtake.analysis.store import SweepStore
    from offtake.domain.schema import Instance
    from offtake.runtime import make_executor
    from offtake.solvers.options import SolveOptions

    inst = Instance.model_validate(TWO_STAGE)
    with make_executor("serial") as ex:
        eps = run_pareto(inst, "two-stage", "cvar", SweepStore(tmp_path / "e"), ex,
                         SolveOptions(cvar_alpha=0.5), points=5)
        weights = run_pareto(inst, "two-stage", "cvar", SweepStore(tmp_path / "w"), ex,
                             SolveOptions(cvar_alpha=0.5), lambdas=(0, 0.1, 0.2, 0.3, 1),
                             method="weights")
    rec = eps.records
    assert list(rec["status"]) == ["optimal"] * 5
    assert list(rec["epsilon"][2:]) == pytest.approx([12e6, 11e6, 10e6])
    assert list(rec["risk:cvar"]) == pytest.approx([13e6, 9e6, 12e6, 11e6, 10e6], rel=1e-6)
    assert list(rec["expected_cost"]) == pytest.approx([8e6, 9e6, 8.25e6, 8.5e6, 8.75e6],
                                                       rel=1e-6)
    table = front_frame(eps)
    assert "epsilon" in table and not table["dominated"].any()
    found = {round(c, -3) for c in weights.records["risk:cvar"]}
    assert found == {13e6, 9e6}


def test_the_pareto_command_writes_the_front_and_its_figure(tmp_path):
    from typer.testing import CliRunner

    from offtake.apps.cli import app

    store = tmp_path / "store"
    res = CliRunner().invoke(app, ["pareto", str(SMALL), "--metric", "recycled_share",
                                   "--store", str(store), "--points", "3", "--to", "0.2",
                                   "--executor", "serial"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(store / "pareto-recycled_share.csv")
    assert len(table) >= 1 and table["knee"].sum() <= 1
    assert (store / "pareto-recycled_share.png").stat().st_size > 10_000
    bad = CliRunner().invoke(app, ["pareto", str(SMALL), "--metric", "nonsense", "--store",
                                   str(store)])
    assert bad.exit_code == 1 and "--metric must be one of" in bad.output
