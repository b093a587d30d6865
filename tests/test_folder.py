"""Output folders that never lie (offtake.results.folder, issue 16): one writer at a time,
files replaced whole, a completion marker last; `offtake check` refuses a folder whose run
did not finish."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import INSTANCES
from typer.testing import CliRunner

from offtake.apps.cli import app
from offtake.check import check_folder
from offtake.io.loader import load_instance
from offtake.pipeline.run import run
from offtake.results.folder import MARKER, FolderBusy, is_complete, locked, writing

TINY = INSTANCES / "tiny_two_offers.yaml"
runner = CliRunner()


def test_a_finished_run_is_complete_and_keeps_files_it_did_not_write(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "my-notes.txt").write_text("mine")
    r = run(TINY, out)
    assert r.results.status == "optimal" and is_complete(out)
    assert (out / "my-notes.txt").read_text() == "mine"
    assert json.loads((out / "summary.json").read_text())["violations"] == 0
    assert not out.with_name("o.lock").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files


def test_a_run_killed_while_writing_leaves_a_folder_check_refuses(tmp_path):
    """Simulated: the writer dies inside the block (no marker is written); the older run's
    summary beside newer tables is never taken for a finished run."""
    out = tmp_path / "o"
    run(TINY, out)
    with pytest.raises(RuntimeError), writing(out):
        (out / "summary.json").write_text(json.dumps({"status": "optimal", "objective": 1.0}))
        raise RuntimeError("killed")
    assert not is_complete(out)
    inst = load_instance(TINY).instance
    report = check_folder(inst, out)
    assert report.status == "incomplete" and "did not finish" in report.note
    res = runner.invoke(app, ["check", str(TINY), str(out)])
    assert res.exit_code == 1 and "did not finish" in res.output


def test_a_folder_being_written_is_refused_and_a_dead_writers_lock_taken_over(tmp_path):
    out = tmp_path / "o"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        out.with_name("o.lock").write_text(str(sleeper.pid))
        with pytest.raises(FolderBusy, match=str(sleeper.pid)), locked(out):
            pass
        res = runner.invoke(app, ["solve", str(TINY), "--out", str(out)])
        assert res.exit_code == 1 and "being written by process" in res.output
    finally:
        sleeper.kill()
        sleeper.wait()
    with locked(out):  # its process is gone: the lock is stale
        assert out.with_name("o.lock").read_text() == str(os.getpid())
    assert not out.with_name("o.lock").exists()
    run(TINY, out)
    assert is_complete(out) and (out / MARKER).exists()
