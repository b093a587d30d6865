"""Shared test helpers: a small valid instance as a dict, and loaders for dicts and YAML text."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from offtake.io.loader import LoadResult, load_instance, validate_mapping

ROOT = Path(__file__).resolve().parents[1]
INSTANCES = ROOT / "instances"
SCALING = {
    "large_allied_network.yaml": "issue 11 item 4, the solver-scaling instance: HiGHS alone needs "
                                 "~45 s of CPU, 70-125 s wall on the loaded project machine",
}
"""Shipped instances too slow to solve in the test suite (a solve of a minute or more), with the
reason: tests that solve every shipped instance skip these; they are still validated and are
measured by benchmarks/bench_instances.py and benchmarks/bench_overhead.py."""

BASE: dict = {
    "meta": {"name": "base", "currency": "USD", "price_year": 2025},
    "horizon": {"first_year": 2026, "last_year": 2027, "discount_rate": 0.0},
    "materials": [{"id": "MAG", "form": "magnet", "typical_price_per_kg": [20, 300]}],
    "facilities": [
        {"id": "S1", "company": "One", "country": "US", "stage": "MAGNET", "product": "MAG",
         "capacity_t": 100},
        {"id": "S2", "company": "Two", "country": "DE", "stage": "MAGNET", "product": "MAG",
         "capacity_t": {2026: 50, 2027: 80}},
    ],
    "buyers": [{"id": "B1", "country": "US", "demand_t": {"MAG": {2026: 60, 2027: 90}}}],
    "offers": [
        {"id": "O1", "supplier": "S1", "material": "MAG", "first_year": 2026,
         "last_year": 2027, "max_t_per_year": 100, "price_per_kg": 80},
        {"id": "O2", "supplier": "S2", "material": "MAG", "first_year": 2026,
         "last_year": 2027, "max_t_per_year": 80, "price_per_kg": {2026: 70, 2027: 72}},
    ],
}


def approx(x: float) -> object:
    """Objectives and amounts compare at relative 1e-6 (the external-check tolerance)."""
    return pytest.approx(x, rel=1e-6)


def base() -> dict:
    return copy.deepcopy(BASE)


def check(raw: dict) -> LoadResult:
    return validate_mapping(copy.deepcopy(raw))


def load_text(tmp_path: Path, text: str, name: str = "inst.yaml") -> LoadResult:
    p = tmp_path / name
    p.write_text(text)
    return load_instance(p)


def dump(raw: dict) -> str:
    return yaml.safe_dump(raw, sort_keys=False)


def codes(res: LoadResult, severity: str | None = None) -> list[str]:
    return [f.code for f in res.findings if severity is None or f.severity == severity]


def only(res: LoadResult, code: str):
    found = [f for f in res.findings if f.code == code]
    assert found, f"no finding {code}; got {[str(f) for f in res.findings]}"
    return found[0]


@pytest.fixture
def base_dict() -> dict:
    return base()


def solve_checked(inst, out_dir: Path, **options):
    """Solve through the whole pipeline, write the folder and run the independent checker on
    it; fail the test on any checker violation. Returns the Results."""
    from offtake.check import check_folder
    from offtake.pipeline.solve import solve_instance
    from offtake.solvers.highs import SolveOptions

    res = solve_instance(inst, SolveOptions(**options))
    res.write(out_dir)
    if res.has_solution:
        report = check_folder(inst, out_dir)
        assert report.violations == [], [str(v) for v in report.violations]
        assert abs(report.objective - res.objective) <= 1e-6 * max(1.0, abs(res.objective))
    return res


def instance(raw: dict):
    from offtake.domain.schema import Instance

    return Instance.model_validate(raw)
