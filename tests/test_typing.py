"""House style: the whole package type-checks (mypy, settings in pyproject.toml); the CI's
static gate runs the same check (`python3 dev.py lint`)."""

from __future__ import annotations

from conftest import ROOT
from mypy import api


def test_the_package_type_checks():
    out, err, code = api.run([str(ROOT / "src" / "offtake"),
                              "--config-file", str(ROOT / "pyproject.toml")])
    assert code == 0, out + err
