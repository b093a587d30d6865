"""House style: the schema, derived data, results and checker modules type-check (mypy)."""

from __future__ import annotations

from conftest import ROOT
from mypy import api

TYPED = ["src/offtake/domain/schema.py", "src/offtake/formulation/data.py",
         "src/offtake/results/tables.py", "src/offtake/check/__init__.py"]


def test_core_modules_type_check():
    out, err, code = api.run([str(ROOT / p) for p in TYPED]
                             + ["--config-file", str(ROOT / "pyproject.toml")])
    assert code == 0, out + err
