"""Layer 3: every shipped instance keeps its pinned objective and model size.

A change to a pin is made in tests/regression/expected.yaml with a line saying why. The solve
also runs through the independent checker.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import INSTANCES, solve_checked

from offtake.io.loader import load_instance

EXPECTED = yaml.safe_load((Path(__file__).parent / "regression" / "expected.yaml").read_text())
SHIPPED = sorted(str(p.relative_to(INSTANCES)) for p in INSTANCES.rglob("*.yaml")
                 if "policies" not in p.parts)


def test_every_shipped_instance_is_pinned():
    assert sorted(EXPECTED) == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_instance_is_valid_without_warnings(name):
    res = load_instance(INSTANCES / name)
    assert res.ok, [str(f) for f in res.findings]
    assert [str(f) for f in res.findings] == []


@pytest.mark.parametrize("name", SHIPPED)
def test_objective_and_size_are_pinned(name, tmp_path):
    pin = EXPECTED[name]
    assert pin["changes"], "every pin carries its reason"
    res = solve_checked(load_instance(INSTANCES / name).instance, tmp_path)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(pin["objective"], rel=1e-6)
    assert res.model_size == pin["size"]
