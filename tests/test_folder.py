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


def test_a_new_run_removes_the_views_of_the_older_one(tmp_path):
    """Solve, report, then solve again with a change that leaves no plan (infeasible): the
    older run's results.xlsx, report.html and report_*.png are gone (they described a plan
    the folder no longer holds), the user's file stays; files get an ordinary file's mode
    (the temporary files they are written through are 0600). A report with fewer figures
    removes the figures it no longer has. saa refuses a folder holding a solve's output."""
    out = tmp_path / "o"
    res = runner.invoke(app, ["solve", str(TINY), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    assert (out / "results.xlsx").exists() and list(out.glob("report_*.png"))
    (out / "my-notes.txt").write_text("mine")
    res = runner.invoke(app, ["solve", str(TINY), "--out", str(out),
                              "--set", "offers.OFF-A.min_t_per_year=150",
                              "--set", "offers.OFF-A.decision=forced",
                              "--set", "facilities.SUP-A.capacity_t=100"])
    assert res.exit_code != 0 and json.loads((out / "summary.json").read_text())["status"] \
        != "optimal", res.output
    assert not (out / "results.xlsx").exists() and not (out / "report.html").exists()
    assert not list(out.glob("report_*.png"))
    assert (out / "my-notes.txt").read_text() == "mine"
    mask = os.umask(0)
    os.umask(mask)
    assert (out / "summary.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    assert not list(out.glob("report_*.png"))  # no plan, no figures
    res = runner.invoke(app, ["saa", str(TINY), "--out", str(out)])
    assert res.exit_code == 1 and "holds the output of offtake solve" in res.output


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
