"""What the terminal prints: contracted volumes never summed over scenarios, a scenario
column in the rules table, --rows, the CVaR risk term apart from the buyers' cost, --version,
and a quiet, complete run when the output is piped into `head`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import INSTANCES, ROOT
from typer.testing import CliRunner

from offtake.apps.cli import app
from offtake.report import tables
from offtake.results.tables import Results

runner = CliRunner()
SCENARIOS = str(INSTANCES / "us_ev_oem_scenarios.yaml")


@pytest.fixture(scope="module")
def scenario_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sc")
    res = runner.invoke(app, ["solve", SCENARIOS, "--out", str(out), "--rows", "all"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_contracted_volumes_are_not_summed_over_scenarios(scenario_run):
    """SGI-VN can make 1,000 t/yr for this OEM; with 4 scenarios the old table showed 4x."""
    out, text = scenario_run
    r = Results.read(out)
    frame = tables.contracts_frame(r)
    years = [c for c in frame.columns if isinstance(c, int)]
    assert "the same in each of the 4 scenarios" in frame.attrs["title"]
    sgi = frame[frame["supplier"] == "SGI-VN"][years].sum()
    assert (sgi <= 1000 + 1e-6).all() and sgi.max() > 0
    c = r.tables["contracts"]
    one = c[(c["scenario"] == "base") & (c["signed"] == 1)]
    assert frame[years].to_numpy().sum() == pytest.approx(one["volume_t"].sum())
    assert "the same in each of the 4 scenarios" in " ".join(text.split())


def test_rules_table_has_a_scenario_column_and_rows_all(scenario_run, tmp_path):
    out, text = scenario_run
    r = Results.read(out)
    frame = tables.rules_frame(r)
    assert frame["scenario"].nunique() > 1
    assert "scenario" in text.split("Binding rules")[1].split("\n")[2]
    part = text.split("Binding rules")[1].split("Scenario cost")[0]
    assert sum(part.count(rule) for rule in set(frame["rule"])) == len(frame) > 5
    res = runner.invoke(app, ["solve", SCENARIOS, "--out", str(tmp_path / "o"), "--rows", "5"])
    part = res.output.split("Binding rules")[1].split("Scenario cost")[0]
    shown = sum(part.count(rule) for rule in set(frame["rule"]))
    assert shown == 5 and "--rows all" in " ".join(part.split())
    assert runner.invoke(app, ["solve", SCENARIOS, "--out", str(tmp_path / "o"),
                               "--rows", "0"]).exit_code == 1


def test_cvar_term_is_shown_apart_from_the_buyer_total(tmp_path):
    res = runner.invoke(app, ["solve", SCENARIOS, "--out", str(tmp_path), "--cvar-weight",
                              "0.5"])
    assert res.exit_code == 0, res.output
    r = Results.read(tmp_path)
    frame = tables.costs_frame(r).set_index("term")
    money = "cost (USD)"
    total = frame.loc[tables.TOTAL, money]
    risk = frame[frame["line"] == "risk"][money].iloc[0]
    objective = frame[frame["line"] == "objective"][money].iloc[0]
    terms = frame[frame["line"] == "term"]
    assert tables.RISK_TERM not in terms.index
    assert total == pytest.approx(terms[money].sum())
    assert objective == pytest.approx(total + risk) == pytest.approx(r.objective, rel=1e-9)
    assert risk == pytest.approx(0.5 * r.risk["cvar"], rel=1e-6)
    assert "0.5 x CVaR 95%" in res.output


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("offtake ") and "highspy" in res.output


def test_piped_into_head_the_run_finishes_quietly_with_its_own_code(tmp_path):
    """The reader goes after two lines: no traceback, the files are still written, and the
    exit code is the command's (0), not a broken-pipe error."""
    code = "from offtake.apps.cli import app; app()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "solve", str(INSTANCES / "tiny_two_offers.yaml"),
         "--out", str(tmp_path / "o")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.readline()
    proc.stdout.close()  # what `head -2` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["status"] == "optimal" and (tmp_path / "o" / "results.xlsx").exists()
