"""Views of the report frames: results.xlsx and the HTML report render the frames of
`offtake.report.tables` (never recompute), with units in headers and formatted numbers."""

from __future__ import annotations

import openpyxl
import pytest
from conftest import INSTANCES
from typer.testing import CliRunner

from offtake.apps.cli import app
from offtake.report import tables
from offtake.report.workbook import FIRST_ROW, result_frames
from offtake.results.tables import Results

runner = CliRunner()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    res = runner.invoke(app, ["solve", str(INSTANCES / "us_ev_oem_small.yaml"), "--out",
                              str(out)])
    assert res.exit_code == 0, res.output
    return out


def _sheet_frame(ws) -> tuple[list, list[list]]:
    rows = [[c.value for c in r] for r in ws.iter_rows(min_row=FIRST_ROW)]
    return rows[0], rows[1:]


def test_results_workbook_renders_the_report_frames(small_run):
    wb = openpyxl.load_workbook(small_run / "results.xlsx")
    r = Results.read(small_run)
    frames = result_frames(r)
    assert wb.sheetnames == list(frames)
    for name, frame in frames.items():
        ws = wb[name]
        assert ws["A1"].value == frame.attrs["title"]
        header, rows = _sheet_frame(ws)
        assert header == list(frame.columns), name
        assert len(rows) == len(frame), name
    header, rows = _sheet_frame(wb["plan"])
    plan = tables.plan_frame(r)
    assert [row[:4] for row in rows] == plan[["offer", "supplier", "buyer", "scenario"]
                                             ].values.tolist()
    assert [row[4:] for row in rows] == pytest.approx(plan[[y for y in plan.columns
                                                            if isinstance(y, int)]].values)
    header, rows = _sheet_frame(wb["costs"])
    assert "cost (USD)" in header
    money = header.index("cost (USD)") + 1
    assert wb["costs"].cell(FIRST_ROW + 1, money).number_format == "#,##0"
    total = [row for row in rows if row[0] == tables.TOTAL][0][money - 1]
    assert total == pytest.approx(r.objective, rel=1e-9)
    header, _ = _sheet_frame(wb["origin"])
    assert wb["origin"].cell(FIRST_ROW + 1, header.index("share") + 1).number_format == "0.0%"


def test_plan_frame_shows_rows_per_scenario_only_where_deliveries_differ(small_run):
    r = Results.read(small_run)
    plan = tables.plan_frame(r)
    assert set(plan["scenario"]) == {"every scenario"}  # one scenario
    # contracts and spot together meet the 2030 demand of both lots
    spot, unmet = r.tables["spot"], r.tables["unmet"]
    demand = unmet.loc[unmet["year"] == 2030, "demand_t"].sum()
    assert plan[2030].sum() + spot.loc[spot["year"] == 2030, "volume_t"].sum() == \
        pytest.approx(demand)
