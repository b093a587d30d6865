"""Scenario reduction by forward selection (offtake.analysis.reduce, `offtake reduce`, and the
candidate generator of `offtake saa --candidate-pool`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_saa import RAW as NEWSVENDOR
from test_saa import SPEC as NEWSVENDOR_SPEC
from test_saa import demands, saa_optimum
from typer.testing import CliRunner

from offtake.analysis.reduce import (
    ReductionError,
    forward_selection,
    reduce_scenarios,
    reduced_instance,
    scenario_vectors,
)
from offtake.analysis.saa import SaaOptions, Sampler, run_saa
from offtake.apps.cli import app
from offtake.domain.schema import Instance, ScenarioSpec
from offtake.io.loader import load_instance
from offtake.runtime import make_executor

PRICES = ((50, 0.1), (60, 0.5), (100, 0.2), (200, 0.2))
RAW: dict = {
    "meta": {"name": "reduce", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2026, "discount_rate": 0.0},
    "materials": [{"id": "MAG", "form": "magnet"}],
    "facilities": [{"id": "F", "company": "C", "country": "US", "stage": "MAGNET",
                    "product": "MAG", "capacity_t": 1000}],
    "buyers": [{"id": "B", "country": "US", "demand_t": {"MAG": 100}}],
    "offers": [{"id": "O", "supplier": "F", "material": "MAG", "first_year": 2026,
                "last_year": 2026, "max_t_per_year": 200, "price_per_kg": 60}],
    "spot_markets": [{"id": "SPOT", "material": "MAG", "origin": "JP", "price_per_kg": 100,
                      "unlimited": True}],
    "scenarios": [{"id": f"s{m}", "probability": p, "spot": [{"price_multiplier": m / 100}]}
                  for m, p in PRICES],
}


def test_forward_selection_by_hand():
    """Four scenarios differ only in the spot price: 50, 60, 100, 200 USD/kg with
    probabilities 0.1, 0.5, 0.2, 0.2. The one varying coordinate (the spot price per t) is
    standardised by its weighted mean 95 and standard deviation sqrt(0.1 x 45^2 + 0.5 x 35^2
    + 0.2 x 5^2 + 0.2 x 105^2) = sqrt(3025) = 55 (USD/kg; the per-t factor cancels), so
    c_ij = |x_i - x_j| / 55.

    Step 1 keeps the u minimising sum_i p_i |x_i - x_u|: 60 gives 0.1 x 10 + 0.2 x 40 +
    0.2 x 140 = 37, 50 gives 45, 100 gives 45, 200 gives 105: s60, distance 37/55 = 0.6727.
    Step 2 with s60 kept: adding 200 leaves 50 -> 60 (10) and 100 -> 60 (40): 0.1 x 10 +
    0.2 x 40 = 9; adding 100 leaves 1 + 0.2 x 100 = 21, adding 50 leaves 8 + 28 = 36: s200,
    distance 9/55 = 0.1636. s50 and s100 are nearest to s60: probabilities 0.8 and 0.2."""
    inst = Instance.model_validate(RAW)
    ids, p, z, counts = scenario_vectors(inst)
    assert counts == {"spot_price_per_t": 1}
    assert [round(float(x), 9) for x in z[:, 0]] == [round((m - 95) / 55, 9) for m, _ in PRICES]
    red = reduce_scenarios(inst, 2)
    assert red.kept == ["s60", "s200"]
    assert red.distance == pytest.approx([37 / 55, 9 / 55], rel=1e-9)
    assert red.probability == pytest.approx({"s60": 0.8, "s200": 0.2})
    assert red.assigned == {"s50": "s60", "s60": "s60", "s100": "s60", "s200": "s200"}
    assert red.relative == pytest.approx(9 / 37)
    small = reduced_instance(inst, red)
    assert [(s.id, s.probability) for s in small.scenarios] == [("s60", 0.8), ("s200", 0.2)]
    assert reduce_scenarios(inst, 4).distance[-1] == 0.0


def test_forward_selection_on_a_matrix():
    """Three points on a line at 0, 1, 10 with equal weight: the middle one first (sum of
    distances 10 against 11 and 19), then 10 (leaves 1/3 x 1) rather than 0 (leaves 3)."""
    import numpy as np

    c = np.abs(np.subtract.outer([0.0, 1.0, 10.0], [0.0, 1.0, 10.0]))
    kept, dist = forward_selection(c, np.full(3, 1 / 3), 2)
    assert kept == [1, 2] and dist == pytest.approx([10 / 3, 1 / 3])


def test_reduce_refuses_bad_k():
    with pytest.raises(ReductionError):
        reduce_scenarios(Instance.model_validate(RAW), 0)


def test_cli_writes_a_valid_reduced_instance(tmp_path: Path):
    path = tmp_path / "four.yaml"
    path.write_text(yaml.safe_dump(RAW, sort_keys=False))
    out = tmp_path / "reduced.yaml"
    res = CliRunner().invoke(app, ["reduce", str(path), "-k", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    loaded = load_instance(out)
    assert loaded.instance is not None, loaded.findings
    assert {s.id: s.probability for s in loaded.instance.scenarios} == {"s60": 0.8,
                                                                       "s200": 0.2}
    report = json.loads(out.with_suffix(".reduction.json").read_text())
    assert report["distance"] == pytest.approx([37 / 55, 9 / 55])
    spec_file = tmp_path / "newsvendor.yaml"
    spec_file.write_text(yaml.safe_dump({**NEWSVENDOR, "scenario_spec": NEWSVENDOR_SPEC}))
    res = CliRunner().invoke(app, ["reduce", str(spec_file), "-k", "5", "--draw", "100",
                                   "--out", str(tmp_path / "five.yaml")])
    assert res.exit_code == 0, res.output
    five = load_instance(tmp_path / "five.yaml").instance
    assert five is not None and len(five.scenarios) == 5


def test_saa_candidate_from_a_reduced_pool():
    """The newsvendor's demand takes five levels: forward selection of 5 from a pool of 200
    draws keeps one scenario per level (distance 0), with the pool's frequencies, so the
    candidate is the SAA optimum of the whole pool: its cost on the pool equals the
    closed-form sample optimum of the 200 redrawn demands."""
    from test_saa import cost

    with make_executor("serial") as ex:
        res = run_saa(Instance.model_validate(NEWSVENDOR),
                      ScenarioSpec.model_validate(NEWSVENDOR_SPEC),
                      SaaOptions(replications=3, sample=10, candidate_sample=5,
                                 candidate_pool=200, evaluation=50, seed=4,
                                 method="monte_carlo"), ex)
    info = res.final.reduction
    assert info["kept"] == 5 and info["distance"] == 0.0
    sampler = Sampler(Instance.model_validate(NEWSVENDOR),
                      ScenarioSpec.model_validate(NEWSVENDOR_SPEC))
    pool = demands(sampler.scenarios(200, res.seeds["rounds"][0]["candidate"], "monte_carlo"))
    q = res.plan["v_volume_t"][("O", "B", 2026)]
    assert sum(cost(q, d) for d in pool) / 200 == pytest.approx(saa_optimum(pool), rel=1e-9)
    assert res.final.candidate.objective == pytest.approx(saa_optimum(pool), rel=1e-9)
