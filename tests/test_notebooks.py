"""Every notebook in notebooks/ runs from top to bottom (nbclient, a fresh kernel) without an
error, and shows its plots inline. Together they need about a minute of CPU (oem_buyer ~5 s,
consortium ~15 s, policy ~30 s plus a kernel start each); the wall-clock bound below is loose
because the project machine is shared."""

from __future__ import annotations

import time

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PLOTS = {"oem_buyer": 3, "consortium": 1, "policy": 2}
"""Figures each notebook shows inline, at least."""


def test_there_are_notebooks():
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(PLOTS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_plots_inline(path):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "commit notebooks without outputs"
    start = time.perf_counter()
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= PLOTS[path.stem], "plots are shown inline"
    assert seconds < 240, f"{path.name} took {seconds:.0f} s"
