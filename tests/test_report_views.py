"""Views of the report frames: results.xlsx and the HTML report render the frames of
`offtake.report.tables` (never recompute), with units in headers and formatted numbers."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

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
    # the terminal's contracted volumes too, beside the deliveries of the plan sheet
    header, rows = _sheet_frame(wb["contracts"])
    assert wb["contracts"]["A1"].value.startswith("Signed contracts (contracted t per year")
    contracted = tables.contracts_frame(r)
    assert [row[3:] for row in rows] == pytest.approx(
        contracted[[y for y in contracted.columns if isinstance(y, int)]].values)
    header, rows = _sheet_frame(wb["costs"])
    assert "cost (USD)" in header
    money = header.index("cost (USD)") + 1
    assert wb["costs"].cell(FIRST_ROW + 1, money).number_format == "#,##0"
    total = [row for row in rows if row[0] == tables.TOTAL][0][money - 1]
    assert total == pytest.approx(r.objective, rel=1e-9)
    header, rows = _sheet_frame(wb["costs_by_buyer"])  # discounted: sums to the objective
    assert rows[-1][0] == tables.TOTAL
    assert rows[-1][header.index("total")] == pytest.approx(r.objective, rel=1e-9)
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


@pytest.fixture(scope="module")
def medium_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("medium")
    res = runner.invoke(app, ["solve", str(INSTANCES / "medium_multitier.yaml"), "--out",
                              str(out)])
    assert res.exit_code == 0, res.output
    return out


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.h2: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data)
            self._in_h2 = False


SECTIONS = ["Portfolio by supplier and year", "Cost by term",
            "Origin: mine to magnet by country", "Binding rules and their shadow prices",
            "Scenario cost distribution", "Concentration", "Emissions",
            "Fiscal cost per payer"]


@pytest.mark.parametrize("run", ["small_run", "medium_run"])
def test_html_report_embeds_every_picture_and_they_decode(run, request):
    from matplotlib.image import imread

    out = request.getfixturevalue(run)
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    page = (out / "report.html").read_text()
    parser = _Images()
    parser.feed(page)
    assert parser.h2 == SECTIONS
    pngs = sorted(out.glob("report_*.png"))
    # portfolio, waterfall, one Sankey per material, shadow prices, concentration, fiscal
    assert len(parser.srcs) == len(pngs) >= 6
    embedded = []
    for src in parser.srcs:
        assert src.startswith("data:image/png;base64,")  # nothing fetched from elsewhere
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        img = imread(io.BytesIO(data), format="png")
        assert img.shape[0] > 200 and img.shape[1] > 400
        embedded.append(data)
    assert sorted(embedded) == sorted(p.read_bytes() for p in pngs)
    assert "<script" not in page and "http" not in page.split("<body>", 1)[1]
    r = Results.read(out)
    assert f"{sum(r.cost_terms().values()) / 1e6:,.1f} million USD" in page
    assert "Sign <b>" in page and "DoD" in page  # the decision, and the fiscal payer
    assert "<th>year</th>" in page and ">2027</td>" in page  # years as years, not 2,027


def test_report_of_a_folder_without_a_solve_is_refused(tmp_path):
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 1 and "summary.json" in res.output
