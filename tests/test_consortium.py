"""Consortia (offtake.analysis.consortium): every coalition's cost, the savings of pooling, and
the allocations of the grand coalition's cost with their core checks. Hand-derived.

The three-buyer instance (one year, 2026): buyers A, B, C need 60, 40 and 20 t of MAG. S1
sells at 100 USD/kg (100 t). Candidate plant NEW (100 t nameplate, built at its supplier's
cost) would sell at 60 USD/kg, each buyer under its own offer sized to its demand (OA 60 t,
OB 40 t, OC 20 t); lenders ask for 70 t committed (bankability 0.7 of nameplate). So no
buyer alone makes NEW bankable (60 t at most), A+B (100 t) and A+C (80 t) do, B+C (60 t)
does not. In million USD:

    c(A) = 60 x 0.1 = 6.0    c(B) = 4.0    c(C) = 2.0
    c(AB) = 100 x 0.06 = 6.0 c(AC) = 80 x 0.06 = 4.8    c(BC) = 60 x 0.1 = 6.0
    c(ABC) = 100 x 0.06 + 20 x 0.1 = 8.0 (NEW full, 20 t from S1)

Savings of pooling: 12.0 - 8.0 = 4.0M.
"""

from __future__ import annotations

import pytest
from conftest import instance

from offtake.analysis.consortium import (
    ConsortiumOptions,
    analyse_consortium,
    nucleolus,
    shapley,
)

M = 1e6


def three(demand: dict[str, float] | None = None, s1_capacity: float = 100,
          share: float = 0.7) -> dict:
    demand = demand or {"A": 60, "B": 40, "C": 20}
    return {
        "meta": {"name": "three", "currency": "USD", "price_year": 2025},
        "horizon": {"first_year": 2026, "last_year": 2026},
        "materials": [{"id": "MAG", "form": "magnet", "unmet_penalty_per_kg": 200}],
        "facilities": [
            {"id": "S1", "company": "One", "country": "US", "stage": "MAGNET",
             "product": "MAG", "capacity_t": s1_capacity},
            {"id": "NEW", "company": "Cons", "country": "US", "stage": "MAGNET",
             "product": "MAG", "capacity_t": 0, "candidate": True,
             "builds": [{"id": "NEW-B", "nameplate_t": 100}]}],
        "buyers": [{"id": b, "country": "US", "demand_t": {"MAG": t}}
                   for b, t in demand.items()],
        "offers": [{"id": "O1", "supplier": "S1", "material": "MAG", "first_year": 2026,
                    "last_year": 2026, "max_t_per_year": 1000, "price_per_kg": 100}]
        + [{"id": f"O{b}", "supplier": "NEW", "material": "MAG", "buyers": [b],
            "first_year": 2026, "last_year": 2026, "max_t_per_year": t, "price_per_kg": 60}
           for b, t in demand.items()],
        "rules": [{"id": "BANK", "kind": "bankability", "facilities": ["NEW"],
                   "min_share": share, "first_years": 1}],
    }


OPTIONS = ConsortiumOptions(mip_gap=1e-9)


def costs(res) -> dict[str, float]:
    return {"+".join(s): round(c.cost / M, 6) for s, c in res.coalitions.items()}


def alloc(res, method: str) -> dict[str, float]:
    a = next(a for a in res.allocations if a.method == method)
    return {b: round(x / M, 4) for b, x in a.cost.items()}


@pytest.fixture(scope="module")
def game():
    return analyse_consortium(instance(three()), options=OPTIONS)


def test_every_coalition_and_its_plants(game):
    """7 coalitions; NEW is built by A+B, A+C and A+B+C only; each solved to a tiny gap."""
    assert costs(game) == {"A": 6.0, "B": 4.0, "C": 2.0, "A+B": 6.0, "A+C": 4.8, "B+C": 6.0,
                           "A+B+C": 8.0}
    assert {"+".join(s) for s, c in game.coalitions.items() if c.built} == {
        "A+B", "A+C", "A+B+C"}
    assert all(c.gap is not None and c.gap <= 1e-6 for c in game.coalitions.values())
    assert game.savings() == pytest.approx(4.0 * M)


def test_shapley_nucleolus_least_core_and_their_core_checks(game):
    """Shapley, from the six orders: A's marginal costs 6, 6 (first), 2 (after B), 2 (after
    B+C, twice), 2.8 (after C): 20.8 / 6 = 3.4667; B: 4, 4, 0, 4, 3.2, 3.2 -> 3.0667; C: 2, 2,
    -1.2, 2, 2, 2 -> 1.4667. Not in the core: A+B pays 6.5333 > c(AB) = 6 (excess 0.5333).
    Core: x_C <= c(C) = 2 and x_A + x_B <= 6 with x(N) = 8 force x_C = 2; x_A + x_C <= 4.8 and
    x_B <= 4 leave x_A in [2, 2.8]: the least-core epsilon is 0. Nucleolus: with x_C = 2 fixed,
    the next largest excesses are x_A - 2.8 (A+C) and 2 - x_A (B+C): equal at x_A = 2.4 ->
    (2.4, 3.6, 2.0). The least-core point nearest to Shapley: (2.8, 3.2, 2.0). Proportional
    (6:4:2): (4, 2.6667, 1.3333), A+B pays 6.6667 > 6."""
    assert alloc(game, "shapley") == {"A": 3.4667, "B": 3.0667, "C": 1.4667}
    assert alloc(game, "nucleolus") == {"A": 2.4, "B": 3.6, "C": 2.0}
    assert alloc(game, "least_core") == {"A": 2.8, "B": 3.2, "C": 2.0}
    assert alloc(game, "proportional") == {"A": 4.0, "B": 2.6667, "C": 1.3333}
    core = {a.method: (a.in_core, a.worst, round(a.max_excess / M, 4))
            for a in game.allocations}
    assert core["shapley"] == (False, ("A", "B"), 0.5333)
    assert core["proportional"] == (False, ("A", "B"), 0.6667)
    assert core["nucleolus"][0] and core["least_core"][0]
    assert game.least_core_epsilon == 0.0
    assert game.as_dict()["core_empty"] is False


def test_an_empty_core_and_its_least_core_epsilon():
    """Three buyers of 40 t each: alone 4.0M, any pair 80 t from NEW = 4.8M, all three 100 t
    from NEW + 20 t from S1 = 8.0M. Any split of 8.0M leaves some pair paying more than 4.8M
    (three pairs would need 3 x 4.8 = 14.4 >= 2 x 8 = 16): empty core. Least core: x_i + x_j
    <= 4.8 + eps for all pairs, summed 16 <= 14.4 + 3 eps: eps = 1.6 / 3 = 0.5333M; every
    method gives 8/3 to each (the game is symmetric)."""
    res = analyse_consortium(instance(three({"A": 40, "B": 40, "C": 40})), options=OPTIONS)
    assert costs(res) == {"A": 4.0, "B": 4.0, "C": 4.0, "A+B": 4.8, "A+C": 4.8, "B+C": 4.8,
                          "A+B+C": 8.0}
    assert res.least_core_epsilon == pytest.approx(1.6 / 3 * M, rel=1e-6)
    assert res.as_dict()["core_empty"] is True
    for a in res.allocations:
        assert alloc(res, a.method) == {"A": 2.6667, "B": 2.6667, "C": 2.6667}
        assert not a.in_core and a.max_excess == pytest.approx(1.6 / 3 * M, rel=1e-6)
    assert "empty" in next(a for a in res.allocations if a.method == "least_core").note


def test_the_residual_market_takes_out_what_the_others_buy_alone():
    """Market 'residual': S buys what is left after N - S bought alone. A: B+C alone take
    60 t of S1's 100 t; 40 t left for A at 0.1, 20 t unmet at 200 USD/kg: 4 + 4 = 8.0M (6.0
    alone). B+C: A alone takes 60 t of S1: 40 t at 0.1 + 20 t unmet = 8.0M. B: A+C build
    NEW and leave S1 whole: 4.0M; likewise C (2.0), A+B (C takes 20 t of S1: 6.0) and A+C
    (B takes 40 t: 4.8). The grand coalition is solved once: 8.0M."""
    res = analyse_consortium(instance(three()),
                             options=ConsortiumOptions(market="residual", mip_gap=1e-9))
    assert costs(res) == {"A": 8.0, "B": 4.0, "C": 2.0, "A+B": 6.0, "A+C": 4.8, "B+C": 8.0,
                          "A+B+C": 8.0}
    assert {c.phase for s, c in res.coalitions.items() if len(s) < 3} == {"residual"}


def test_the_airport_game():
    """A textbook cost game (Littlechild 1974): c(S) = max over S of (1, 2, 3). Shapley is
    the sequential equal split (1/3, 1/3 + 1/2, 1/3 + 1/2 + 1); nucleolus: the largest
    excess -x_1 (coalition {2, 3}) against x_1 - 1 ({1}) fixes x_1 = 1/2 at excess -1/2;
    then -x_2 ({1, 3}) against x_2 - 3/2 ({1, 2}) gives x_2 = 3/4: (1/2, 3/4, 7/4)."""
    need = {"1": 1.0, "2": 2.0, "3": 3.0}
    players = ("1", "2", "3")
    c = {s: max(need[p] for p in s) for k in (1, 2, 3)
         for s in __import__("itertools").combinations(players, k)}
    assert shapley(c, players).cost == pytest.approx({"1": 1 / 3, "2": 5 / 6, "3": 11 / 6})
    nuc = nucleolus(c, players)
    assert nuc.cost == pytest.approx({"1": 0.5, "2": 0.75, "3": 1.75})
    assert nuc.in_core


def test_a_run_stopped_midway_is_resumed(tmp_path):
    """The journal keeps each coalition as it finishes: a run interrupted after three
    coalitions leaves three; the next run solves the other four and gives the same costs."""
    inst = instance(three())

    def stop_after_three(done, total, c):
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        analyse_consortium(inst, options=OPTIONS, out_dir=tmp_path, progress=stop_after_three)
    lines = (tmp_path / "coalitions.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 3
    seen = []
    res = analyse_consortium(inst, options=OPTIONS, out_dir=tmp_path,
                             progress=lambda done, total, c: seen.append((done, total)))
    assert res.resumed == 3 and seen[0] == (3, 7) and seen[-1] == (7, 7) and len(seen) == 5
    assert costs(res)["A+B+C"] == 8.0
    other = analyse_consortium(inst, options=ConsortiumOptions(mip_gap=1e-8),
                               out_dir=tmp_path)
    assert other.resumed == 0  # other options: the journal is started afresh


def test_members_are_checked():
    from offtake.domain.findings import InvalidInstance

    with pytest.raises(InvalidInstance) as err:
        analyse_consortium(instance(three()), ["A", "Z"], options=OPTIONS)
    assert "Z" in str(err.value)
    with pytest.raises(InvalidInstance):
        analyse_consortium(instance(three()), ["A"], options=OPTIONS)


def test_the_command_writes_its_files(tmp_path):
    """`offtake consortium` on the three-buyer instance: the files, the grand coalition's
    cost, and a rerun that reads every coalition back from the journal."""
    import json

    import pandas as pd
    from conftest import dump
    from typer.testing import CliRunner

    from offtake.apps.cli import app

    path = tmp_path / "three.yaml"
    path.write_text(dump(three()))
    out = tmp_path / "out"
    args = ["consortium", str(path), "--out", str(out), "--executor", "serial",
            "--mip-gap", "1e-9"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "consortium.json").read_text())
    assert summary["grand_coalition"]["cost"] == pytest.approx(8 * M)
    assert summary["savings"] == pytest.approx(4 * M) and summary["coalitions"] == 7
    assert len(pd.read_csv(out / "coalitions.csv")) == 7
    assert set(pd.read_csv(out / "allocation.csv")["method"]) == {
        "proportional", "shapley", "nucleolus", "least_core"}
    assert (out / "consortium.png").stat().st_size > 0
    # read back (the dashboard's view): the same summary, coalitions and allocations
    from offtake.analysis.consortium import read_result

    back = read_result(out)
    assert json.loads(json.dumps(back.as_dict(), default=str)) == summary
    for name, frame in (("coalitions", back.coalitions_frame()),
                        ("allocation", back.allocation_frame())):
        assert frame.to_csv(index=False) == (out / f"{name}.csv").read_text()
    assert back.allocations[1].method == "shapley" and not back.allocations[1].in_core
    with pytest.raises(ValueError, match="coalitions.csv"):
        read_result(tmp_path)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and json.loads(
        (out / "consortium.json").read_text())["resumed"] == 7


def test_the_plot_is_a_figure(game):
    from matplotlib.figure import Figure

    from offtake.report.plots import allocations

    fig = allocations(game.allocation_frame(), "USD", "three")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert "million USD" in ax.get_ylabel()
    assert any("not in the core" in t.get_text() for t in ax.get_legend().get_texts())


def test_a_rule_of_one_member_is_dropped_from_coalitions_without_it():
    """An exclusion scoped to B only binds nobody in A, C or A+C: those coalitions are solved
    without it (restrict_to_buyers) and the costs do not change (no Chinese step anywhere)."""
    raw = three()
    raw["rules"].append({"id": "B-ONLY", "kind": "exclusion", "scope": {"buyers": ["B"]},
                         "stages": ["MAGNET"], "countries": ["CN"]})
    res = analyse_consortium(instance(raw), options=OPTIONS)
    assert costs(res)["A+C"] == 4.8 and costs(res)["A+B+C"] == 8.0


def test_the_shipped_consortium_needs_pooling_for_both_plants():
    """instances/allied_consortium.yaml (results of the shipped instance, recomputed by the
    checker in its pin, not derived by hand): no member alone builds either candidate plant;
    the magnet factory needs at least two members (four of the six pairs and every triple
    build it); only the four together build both. The heavy-RE line is also built by the
    defence anchor with KR-EV or with JP-ELEC: they carry its 80 % bankability commitment
    and leave the Dy/Tb oxide they cannot use at the line's gate (free disposal of an
    intermediate, formulation.md facility_output); no triple builds it (each builds the
    magnet factory instead). Pooling saves money."""
    from conftest import INSTANCES

    from offtake.io.loader import load_or_raise

    res = analyse_consortium(load_or_raise(INSTANCES / "allied_consortium.yaml"),
                             options=ConsortiumOptions())
    built = {s: set(c.built) for s, c in res.coalitions.items()}
    assert all(not built[s] for s in built if len(s) == 1)
    assert sum("G-CONS-MAG-BUILD" in built[s] for s in built if len(s) == 2) == 4
    assert all("G-CONS-MAG-BUILD" in built[s] for s in built if len(s) == 3)
    assert [s for s in built if "S-CONS-HRE-BUILD" in built[s]] == [
        ("US-DOD", "KR-EV"), ("US-DOD", "JP-ELEC"), res.members]
    assert [s for s in built if len(built[s]) == 2] == [res.members]
    assert res.savings() > 0 and len(res.coalitions) == 15
