"""Sweeps (offtake.analysis.spec, .sweep, .store): a spec's findings are located in its file;
points combine as product, zip or one at a time; each point equals the same solve run alone
with `--set`; a run killed at any moment loses only the points in flight and a second run
finishes with every point once; a refused, failed or timed-out point is recorded as such and
the rest go on; the process pool and Dask give the same records.

Module-level imports stay light: the pool's and the cluster's workers import this module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from offtake.analysis.spec import load_spec
from offtake.domain.findings import InvalidInstance

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "instances" / "us_ev_oem_small.yaml"
MEDIUM = ROOT / "instances" / "medium_multitier.yaml"
VOLATILE = {"seconds", "warm", "worker", "finished_at", "attempts"}
"""Record columns that depend on where and when a point ran."""


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


SMALL_SPEC = f"""\
    instance: {SMALL}
    axes:
      - {{set: rules.SUPPLIER-CAP-50.max_share, values: [0.4, 0.7]}}
      - {{set: offers.OFF-MP-IND.decision, values: [free, forbidden]}}
    combine: product
    """


# --- the spec ------------------------------------------------------------------------------
def test_a_bad_spec_gives_every_finding_located_in_its_file(tmp_path):
    path = write_spec(tmp_path, f"""\
        instance: {SMALL}
        axes:
          - {{set: rules.SUPPLIER-CAP-50.max_share, range: {{start: 0.5, stop: 0.4, step: 0.1}}}}
          - {{set: offers.OFF-EVAC.decision, values: [free], rnage: 3}}
          - {{set: offers.OFF-EVAC.price_per_kg}}
        combine: prodcut
        options: {{time_limt: 300}}
        """)
    with pytest.raises(InvalidInstance) as exc:
        load_spec(path)
    found = {f.location: f for f in exc.value.findings}
    assert set(found) == {"axes[0].range", "axes[1].rnage", "axes[2]", "combine",
                          "options.time_limt"}
    assert all(f.file == str(path) for f in found.values())
    assert "stop (0.4) is below start (0.5)" in found["axes[0].range"].message
    assert found["axes[1].rnage"].hint == "did you mean 'range'?"
    assert found["options.time_limt"].hint == "did you mean 'time_limit'?"
    assert "exactly one of values, range or sample" in found["axes[2]"].message


def test_a_path_or_value_the_instance_refuses_is_a_finding_at_its_axis(tmp_path):
    from offtake.analysis.spec import check_paths
    from offtake.io.loader import load_or_raise

    path = write_spec(tmp_path, f"""\
        instance: {SMALL}
        axes:
          - {{set: rules.SUPPLIER-CAP-50.max_shar, values: [0.4]}}
          - {{set: rules.SUPPLIER-CAP-50.max_share, values: [1.5]}}
        """)
    loaded = load_spec(path)
    with pytest.raises(InvalidInstance) as exc:
        check_paths(loaded, load_or_raise(SMALL))
    where = [(f.location, f.file) for f in exc.value.findings]
    assert where == [("axes[0].set", str(path)), ("axes[1].set", str(path))]
    assert "did you mean 'max_share'" in exc.value.findings[0].hint


def test_points_combine_as_product_zip_or_one_at_a_time(tmp_path):
    def spec(combine: str, second: str = "values: [a, b, c]", name: str = "y"):
        return load_spec(write_spec(tmp_path, f"""\
            instance: {SMALL}
            axes:
              - {{set: p.x, name: x, range: {{start: 0.5, stop: 1.0, step: 0.25}}}}
              - {{set: p.y, name: {name}, {second}}}
            combine: {combine}
            """)).spec

    product = spec("product").points()
    assert [p.values for p in product[:4]] == [{"x": 0.5, "y": "a"}, {"x": 0.5, "y": "b"},
                                                {"x": 0.5, "y": "c"}, {"x": 0.75, "y": "a"}]
    assert len(product) == 9 and product[4].sets == ("p.x=0.75", "p.y=b")
    assert [p.values for p in spec("zip").points()] == [
        {"x": 0.5, "y": "a"}, {"x": 0.75, "y": "b"}, {"x": 1.0, "y": "c"}]
    tornado = spec("one_at_a_time").points()
    assert tornado[0].sets == () and len(tornado) == 1 + 3 + 3
    assert tornado[1].values == {"x": 0.5, "y": None} and tornado[1].sets == ("p.x=0.5",)
    sampled = spec("product", "sample: {n: 4, low: 0.1, high: 0.2, seed: 3}").points()
    again = spec("product", "sample: {n: 4, low: 0.1, high: 0.2, seed: 3}").points()
    assert [p.values for p in sampled] == [p.values for p in again]
    assert all(0.1 <= p.values["y"] <= 0.2 for p in sampled)
    with pytest.raises(InvalidInstance, match="zip needs axes of one length"):
        spec("zip", "values: [a]")
    with pytest.raises(InvalidInstance, match="axis name 'status' is a record column"):
        spec("product", "values: [a]", name="status")


def test_the_crma_range_has_eleven_points_read_as_written(tmp_path):
    spec = load_spec(write_spec(tmp_path, f"""\
        instance: {MEDIUM}
        axes:
          - {{set: rules.CRMA-DIV-65.max_share, range: {{start: 0.5, stop: 1.0, step: 0.05}}}}
        """)).spec
    sets = [p.sets[0] for p in spec.points()]
    assert len(sets) == 11
    assert sets[1] == "rules.CRMA-DIV-65.max_share=0.55"
    assert sets[-1] == "rules.CRMA-DIV-65.max_share=1.0"


# --- a sweep equals the solves run one by one ----------------------------------------------
def _sweep(spec_path: Path, store_dir: Path, kind: str = "serial", **kwargs):
    from offtake.analysis.store import SweepStore
    from offtake.analysis.sweep import run_sweep
    from offtake.runtime import make_executor

    store = SweepStore(store_dir)
    with make_executor(kind, **kwargs) as ex:
        report = run_sweep(load_spec(spec_path), store, ex)
    return report, store


def test_each_point_equals_the_same_solve_run_alone_with_set(tmp_path):
    """Objective, cost terms, fiscal cost per payer, content shares, the shares rules read
    and the signed offers of every point are those of `offtake solve --set` (its output
    folder's summary, costs, origin and rules tables), and the plan stored is its plan.json.
    """
    import pandas as pd
    from typer.testing import CliRunner

    from offtake.apps.cli import app
    from offtake.results.tables import read_plan

    report, store = _sweep(write_spec(tmp_path, SMALL_SPEC), tmp_path / "store")
    assert report.statuses == {"optimal": 4} and report.skipped == 0
    frame = store.frame()
    assert list(frame["index"]) == [0, 1, 2, 3]
    runner = CliRunner()
    for n, rec in frame.iterrows():
        out = tmp_path / f"solve{n}"
        args = ["solve", str(SMALL), "--out", str(out)]
        for s in json.loads(rec["sets"]):
            args += ["--set", s]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        summary = json.loads((out / "summary.json").read_text())
        assert rec["objective"] == pytest.approx(summary["objective"], rel=1e-9)
        costs = pd.read_csv(out / "costs.csv")
        terms = costs[costs["in_objective"]].groupby("term")["value"].sum()  # rows by buyer
        for term, value in terms.items():
            assert rec[f"cost:{term}"] == pytest.approx(value, rel=1e-9, abs=1e-3), term
        third = costs[~costs["in_objective"]]
        assert rec["fiscal_total"] == pytest.approx(third["value"].sum(), rel=1e-9)
        for payer, value in third.groupby("payer")["value"].sum().items():
            assert rec[f"fiscal:{payer}"] == pytest.approx(value, rel=1e-9)
            assert rec[f"fiscal:{payer}:base"] == pytest.approx(value, rel=1e-9)
        assert sum(rec[c] for c in frame.columns if c.startswith("direct_cost:")) == \
            pytest.approx(rec["objective"], rel=1e-9)
        origin = pd.read_csv(out / "origin.csv", keep_default_na=False)
        totals = (origin.assign(total=origin["tonnes"] / origin["share"])
                  .groupby(["buyer", "material", "year", "scenario"])["total"].first())
        for (mat, stage, country), grp in origin.groupby(["material", "stage", "country"]):
            want = grp["tonnes"].sum() / totals.xs(mat, level="material").sum()
            assert rec[f"content:{mat}:{stage}:{country}"] == pytest.approx(want, rel=1e-9)
        rules = pd.read_csv(out / "rules.csv", keep_default_na=False)
        for rule, grp in rules[rules["share"] != ""].groupby("rule_id"):
            shares = grp["share"].astype(float)
            assert rec[f"rule_share_low:{rule}"] == pytest.approx(shares.min(), abs=1e-9)
            assert rec[f"rule_share_high:{rule}"] == pytest.approx(shares.max(), abs=1e-9)
        emissions = pd.read_csv(out / "emissions.csv", keep_default_na=False)
        assert rec["emissions_t"] > 0  # one scenario: the expected value is the table's sum
        assert rec["emissions_t"] == pytest.approx(emissions["emissions_t"].sum(), rel=1e-9)
        assert rec["emission_intensity"] == pytest.approx(
            emissions["emissions_t"].sum() / emissions["delivered_t"].sum(), rel=1e-9)
        conc = pd.read_csv(out / "concentration.csv", keep_default_na=False)
        pooled = conc[conc["group"] == "pooled"]
        for (mat, stage, over), grp in pooled.groupby(["material", "stage", "over"]):
            w = grp["tonnes"] / grp["tonnes"].sum()
            assert rec[f"hhi:{mat}:{stage}:{over}"] == pytest.approx((w * grp["hhi"]).sum(),
                                                                     rel=1e-9)
            assert rec[f"largest_share:{mat}:{stage}:{over}"] == pytest.approx(
                (w * grp["largest_share"]).sum(), rel=1e-9)
        assert len(pooled) > 0
        offers = pd.read_csv(out / "offers.csv")
        assert rec["signed"].split(", ") == list(offers[offers["signed"] == 1]["offer_id"])
        stored = store.plan(rec["key"])
        alone = read_plan(out / "plan.json")
        assert stored.keys() == alone.keys()
        for var, values in alone.items():
            assert stored[var] == pytest.approx(values, abs=1e-6), var


def test_a_second_run_skips_what_is_done(tmp_path):
    spec = write_spec(tmp_path, SMALL_SPEC)
    first, store = _sweep(spec, tmp_path / "store")
    second, _ = _sweep(spec, tmp_path / "store")
    assert first.ran == 4 and second.ran == 0 and second.skipped == 4
    assert second.keys == first.keys
    assert len(store.frame(latest=False)) == 4


# --- killed, refused, failed and timed-out points -------------------------------------------
KILLED_RUN = """\
import sys
from offtake.analysis.spec import load_spec
from offtake.analysis.store import SweepStore
from offtake.analysis.sweep import run_sweep
from offtake.runtime import make_executor
with make_executor("serial") as ex:
    run_sweep(load_spec(sys.argv[1]), SweepStore(sys.argv[2]), ex)
"""


def test_a_killed_run_loses_only_the_point_in_flight_and_a_rerun_finishes_each_point_once(
        tmp_path):
    """SIGKILL (no clean-up of any kind) once two records are saved; the store then holds
    only whole records, and a second run solves exactly the points that are missing."""
    from offtake.analysis.store import SweepStore
    from offtake.analysis.sweep import code_version

    spec = write_spec(tmp_path, f"""\
        instance: {SMALL}
        axes:
          - {{set: rules.SUPPLIER-CAP-50.max_share, range: {{start: 0.4, stop: 0.95, step: 0.05}}}}
        """)
    code_version.cache_clear()  # this process's version, read now as the killed run reads it
    folder = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(spec), str(folder)],
                            cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((folder / "points").glob("*.parquet"))) >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    store = SweepStore(folder)
    before = store.frame(latest=False)
    assert 2 <= len(before) < 12
    assert set(before["status"]) == {"optimal"}
    if set(before["code_version"]) != {code_version()}:
        pytest.skip("the source changed while the test ran (a shared working tree)")
    report, _ = _sweep(spec, folder)
    assert report.skipped == len(before) and report.ran == 12 - len(before)
    after = store.frame(latest=False)
    assert len(after) == 12 and after["point_id"].is_unique
    assert sorted(after["index"]) == list(range(12))
    assert not list(folder.rglob(".tmp-*"))


def test_a_refused_point_is_recorded_and_the_others_go_on(tmp_path):
    spec = write_spec(tmp_path, f"""\
        instance: {SMALL}
        axes:
          - {{set: rules.SUPPLIER-CAP-50.max_share, values: [0.5, 1.5, 0.7]}}
        """)
    report, store = _sweep(spec, tmp_path / "store", "process", workers=2)
    frame = store.frame()
    assert list(frame["status"]) == ["optimal", "invalid", "optimal"]
    assert "max_share" in frame["message"][1] and pd_isna(frame["objective"][1])
    assert report.statuses == {"optimal": 2, "invalid": 1}


def pd_isna(x) -> bool:
    import pandas as pd

    return bool(pd.isna(x))


def test_points_past_the_wall_clock_limit_are_recorded_as_timeouts_and_retried_later(
        tmp_path):
    """A wall-clock limit of 0.5 s per point stops a solve of the medium instance (its
    model alone takes longer to build); the refused point beside it is recorded; a second
    run without the limit solves the point that timed out, and only that one."""
    spec = write_spec(tmp_path, f"""\
        instance: {MEDIUM}
        axes:
          - {{set: rules.CRMA-DIV-65.max_share, values: [0.6, 2]}}
        """)
    _, store = _sweep(spec, tmp_path / "store", "process", workers=2, timeout=0.5)
    frame = store.frame()
    assert list(frame["status"]) == ["timeout", "invalid"]
    assert "no result within 0.5 s" in frame["message"][0]
    again, _ = _sweep(spec, tmp_path / "store", "serial")
    assert again.skipped == 1 and again.statuses == {"optimal": 1}
    assert list(store.frame()["status"]) == ["optimal", "invalid"]
    assert len(store.frame(latest=False)) == 2


def test_a_highs_time_limit_is_recorded_with_the_status_highs_gives(tmp_path):
    spec = write_spec(tmp_path, f"""\
        instance: {MEDIUM}
        axes:
          - {{set: rules.CRMA-DIV-65.max_share, values: [0.6]}}
        options: {{time_limit: 0.01}}
        """)
    _, store = _sweep(spec, tmp_path / "store")
    [status] = store.frame()["status"]
    assert status in ("no_solution", "feasible")


# --- the store -----------------------------------------------------------------------------
def test_the_store_holds_one_writer_and_ignores_half_written_files(tmp_path):
    from offtake.analysis.store import StoreError, SweepStore

    store = SweepStore(tmp_path / "s")
    record = {"key": "k1", "point_id": "p1", "sweep": "s", "index": 0, "status": "optimal",
              "finished_at": "2026-01-01T00:00:00", "objective": 1.0}
    with store.lock():
        store.write(record)
        other = subprocess.run([sys.executable, "-c", (
            "from offtake.analysis.store import SweepStore\n"
            f"SweepStore({str(tmp_path / 's')!r}).lock().__enter__()")],
            capture_output=True, text=True, cwd=ROOT)
        assert other.returncode == 1
        assert f"StoreError: {tmp_path / 's'} is in use by another run (process " \
               f"{os.getpid()})" in other.stderr
    (store.points / ".tmp-half").write_bytes(b"PAR1 half a file")
    assert list(store.frame()["key"]) == ["k1"]
    store.write({**record, "key": "k2", "finished_at": "2026-01-02T00:00:00",
                 "objective": 2.0})
    assert list(store.frame()["objective"]) == [2.0]  # the newest record of point p1
    assert len(store.frame(latest=False)) == 2
    assert list(store.frame(where="objective < 1.5", latest=False)["key"]) == ["k1"]
    with store.lock():
        pass
    assert not (store.points / ".tmp-half").exists()
    with pytest.raises(StoreError, match="not a results store"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "x.txt").write_text("x")
        SweepStore(tmp_path / "other")


def test_the_newest_record_of_a_point_is_per_sweep_place_and_instance(tmp_path):
    """Four records with no changes (one point_id): a CVaR front's points 0 and 1 (options
    differ), the base point of a sweep of another instance, and point 0 of the front solved
    again later. `frame()` keeps three: the front's two points (point 0's newer record) and
    the other sweep's base point."""
    from offtake.analysis.spec import Point
    from offtake.analysis.store import SweepStore

    pid = Point(0, {}, ()).point_id
    store = SweepStore(tmp_path / "s")

    def record(key, sweep, index, sha, day, objective):
        return {"key": key, "point_id": pid, "sweep": sweep, "index": index,
                "instance_sha256": sha, "status": "optimal",
                "finished_at": f"2026-01-0{day}T00:00:00", "objective": objective}

    with store.lock():
        store.write(record("a", "pareto-cvar", 0, "x", 1, 1.0))
        store.write(record("b", "pareto-cvar", 1, "x", 1, 2.0))
        store.write(record("c", "crma", 0, "y", 1, 3.0))
        store.write(record("d", "pareto-cvar", 0, "x", 2, 4.0))
    frame = store.frame()
    assert sorted(frame["key"]) == ["b", "c", "d"]
    assert len(store.frame(latest=False)) == 4


def test_the_store_merges_record_files_and_keeps_the_newest_record_of_each_key(tmp_path):
    """compact_at=4: the 4th and 8th writes merge the record files into a segment (two
    segments, no record file); a 9th write of key k2 (failed, finished later) is a record
    file again; leaving the lock merges everything into one segment holding 8 records, k2's
    the newest. A merge cut short (its record files put back beside the segment) leaves each
    key twice on disk and still once in every read."""
    import shutil

    from offtake.analysis.store import SweepStore

    store = SweepStore(tmp_path / "s", compact_at=4)

    def record(i: int, status: str = "optimal", day: int = 1) -> dict:
        return {"key": f"k{i}", "point_id": f"p{i}", "sweep": "s", "index": i,
                "status": status, "finished_at": f"2026-01-0{day}T00:00:00",
                "objective": float(i)}

    with store.lock():
        for i in range(8):
            store.write(record(i))
        assert len(list(store.segments.glob("*.parquet"))) == 2
        assert not list(store.points.glob("*.parquet"))
        store.write(record(2, "failed", day=2))
        assert len(list(store.points.glob("*.parquet"))) == 1
        kept = tmp_path / "kept"
        shutil.copytree(store.points, kept)
    assert len(list(store.segments.glob("*.parquet"))) == 1
    assert not list(store.points.glob("*.parquet"))
    frame = store.frame()
    assert list(frame["key"]) == [f"k{i}" for i in range(8)]
    assert store.statuses()["k2"] == "failed"
    assert list(frame["objective"]) == [float(i) for i in range(8)]
    for path in kept.glob("*.parquet"):
        shutil.copy(path, store.points / path.name)
    assert len(store.frame(latest=False)) == 8
    assert store.statuses() == {**{f"k{i}": "optimal" for i in range(8)}, "k2": "failed"}
    with store.lock():
        assert store.compact(segments=True) == 8


# --- the process pool and Dask ---------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    """One local Dask cluster for the module: 2 worker processes with one thread each."""
    pytest.importorskip("distributed")
    from offtake.runtime.cluster import local_cluster

    c = local_cluster(2)
    yield c
    c.close()


def test_the_process_pool_and_dask_give_identical_records(tmp_path, cluster):
    import pandas as pd

    spec = write_spec(tmp_path, SMALL_SPEC)
    _, pool = _sweep(spec, tmp_path / "pool", "process", workers=2)
    _, dask = _sweep(spec, tmp_path / "dask", "dask", scheduler=cluster.scheduler_address)
    a, b = pool.frame(), dask.frame()
    assert list(a.columns) == list(b.columns)
    keep = [c for c in a.columns if c not in VOLATILE]
    pd.testing.assert_frame_equal(a[keep], b[keep], check_exact=False, rtol=1e-9)
    assert set(b["worker"]) != set(a["worker"])


def test_key_figures_of_a_government_paid_build():
    """tests/test_builds.py: a 5M plant paid by 'US DoE' is built and the buyers pay 6M for
    150 t at 40 USD/kg (all B1's), so the figures read: built NEW-B, fiscal 5M for US DoE
    in the one scenario, 6M for buyer B1, 150 t delivered, all of it with its MAGNET step
    in the US."""
    from conftest import instance
    from test_builds import with_candidate

    from offtake.pipeline.solve import WarmSolver

    out = WarmSolver(figures=True).solve(instance(with_candidate(5_000_000, "US DoE")))
    f = out.figures
    assert f is not None and out.objective == pytest.approx(6_000_000)
    assert f.built == ("NEW-B",) and "O3" in f.signed  # O1, O2 cost nothing to sign
    assert f.fiscal == {"US DoE": pytest.approx(5_000_000)}
    assert f.fiscal_by_scenario == {("US DoE", "base"): pytest.approx(5_000_000)}
    assert f.buyer_cost == {"B1": pytest.approx(6_000_000), "shared": pytest.approx(0)}
    assert f.delivered_t == {"MAG": pytest.approx(150)}
    assert f.content[("MAG", "MAGNET", "US")] == pytest.approx(1.0)
    assert f.content[("MAG", "MAGNET", "DE")] == 0.0


# --- the command line ------------------------------------------------------------------------
def test_the_cli_runs_a_spec_resumes_shows_and_plots(tmp_path):
    from typer.testing import CliRunner

    from offtake.analysis.store import SweepStore
    from offtake.apps.cli import app

    runner = CliRunner()
    spec = write_spec(tmp_path, SMALL_SPEC)
    store = tmp_path / "store"
    res = runner.invoke(app, ["sweep", str(spec), "--store", str(store), "--executor",
                              "serial"])
    assert res.exit_code == 0, res.output
    assert "4 points: 0 already stored, solved 4 optimal" in res.output
    again = runner.invoke(app, ["sweep", "run", str(spec), "--store", str(store),
                                "--executor", "serial"])
    assert again.exit_code == 0 and "4 already stored, solved nothing" in again.output
    fresh = runner.invoke(app, ["sweep", "run", str(spec), "--store", str(store),
                                "--executor", "serial", "--fresh"])
    assert fresh.exit_code == 0 and "0 already stored, solved 4 optimal" in fresh.output
    assert len(SweepStore(store).frame(latest=False)) == 4  # replaced, not added
    shown = runner.invoke(app, ["sweep", "show", str(store), "--where",
                                "\"offers.OFF-MP-IND.decision\" = 'forbidden'", "--columns",
                                "objective,fiscal:US DoD", "--csv", str(tmp_path / "t.csv")])
    assert shown.exit_code == 0, shown.output
    assert "spec: 2 point(s)" in shown.output and "forbidden" in shown.output
    assert "free" not in shown.output.replace("forbidden", "")
    import pandas as pd

    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.columns) == ["sweep", "index", "rules.SUPPLIER-CAP-50.max_share",
                                   "offers.OFF-MP-IND.decision", "objective", "fiscal:US DoD"]
    assert (table["fiscal:US DoD"] == 0).all()  # MP's DoD floor goes with its offer
    plotted = runner.invoke(app, ["sweep", "plot", str(store), "--x",
                                  "rules.SUPPLIER-CAP-50.max_share", "--y", "objective",
                                  "--out", str(tmp_path / "c.png")])
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / "c.png").stat().st_size > 10_000
    wrong = runner.invoke(app, ["sweep", "plot", str(store), "--x", "nope", "--y",
                                "objective"])
    assert wrong.exit_code == 1 and "no column 'nope'" in wrong.output
    # a second sweep in the same store: a figure is of one sweep, named when there are two
    first = SweepStore(store).frame().iloc[0].to_dict()
    SweepStore(store).write({**first, "key": "other", "sweep": "other-sweep",
                             "finished_at": "2099-01-01T00:00:00"})
    mixed = runner.invoke(app, ["sweep", "plot", str(store), "--x",
                                "rules.SUPPLIER-CAP-50.max_share", "--y", "objective"])
    assert mixed.exit_code == 1 and "holds 2 sweeps" in mixed.output, mixed.output
    assert "choose one with --sweep" in mixed.output
    chosen = runner.invoke(app, ["sweep", "plot", str(store), "--x",
                                 "rules.SUPPLIER-CAP-50.max_share", "--y", "objective",
                                 "--sweep", "other-sweep", "--out", str(tmp_path / "d.png")])
    assert chosen.exit_code == 0, chosen.output


def test_the_cli_refuses_a_bad_spec_and_a_time_limit_it_cannot_keep(tmp_path):
    from typer.testing import CliRunner

    from offtake.apps.cli import app

    runner = CliRunner()
    bad = write_spec(tmp_path, f"instance: {SMALL}\naxes: []\n")
    res = runner.invoke(app, ["sweep", str(bad), "--store", str(tmp_path / "s"),
                              "--executor", "serial"])
    assert res.exit_code == 1 and "axes" in res.output and "bad_spec" in res.output
    res = runner.invoke(app, ["sweep", str(bad), "--store", str(tmp_path / "s"),
                              "--executor", "serial", "--time-limit", "5"])
    assert res.exit_code == 1 and "--time-limit needs" in res.output
    res = runner.invoke(app, ["sweep", "show", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "not a results store" in res.output
    misspelt = write_spec(tmp_path, f"instance: {SMALL}\naxes:\n"
                          "  - {set: rules.SUPPLIER-CAP-5.max_share, values: [0.5]}\n",
                          name="misspelt.yaml")
    res = runner.invoke(app, ["sweep", str(misspelt), "--store", str(tmp_path / "m"),
                              "--executor", "serial"])
    assert res.exit_code == 1 and "SUPPLIER-CAP-50" in res.output, res.output
    assert not (tmp_path / "m").exists()  # refused before a store is made


def test_a_tornado_of_one_at_a_time_changes(tmp_path):
    from offtake.report.sweep import tornado

    spec = write_spec(tmp_path, f"""\
        instance: {SMALL}
        axes:
          - {{set: rules.SUPPLIER-CAP-50.max_share, name: supplier cap, values: [0.4, 0.7]}}
          - {{set: offers.OFF-MP-IND.decision, name: MP offer, values: [forbidden]}}
        combine: one_at_a_time
        """)
    _, store = _sweep(spec, tmp_path / "store")
    frame = store.frame()
    assert len(frame) == 4 and frame[["supplier cap", "MP offer"]].iloc[0].isna().all()
    fig = tornado(frame, "objective")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["supplier cap", "MP offer"]
    base = frame["objective"][0]
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths[-1] == pytest.approx((frame["objective"][3] - base) / 1e6)  # forbidden MP
    assert "change of objective (million USD, discounted)" in ax.get_xlabel()


# --- side by side ----------------------------------------------------------------------------
def test_compare_puts_stored_runs_and_points_side_by_side(tmp_path):
    """Point 0 (cap 0.4, MP free) and point 1 (cap 0.4, MP forbidden) of the small sweep, and
    the same solve as point 0 run alone into a folder: the run equals point 0 (no difference
    in any figure, the same offers and tonnes); point 1 differs by its objective, by not
    signing OFF-MP-IND, and by OFF-MP-IND's tonnes, all 0."""
    from typer.testing import CliRunner

    from offtake.analysis.comparison import (
        item_from_run,
        items_from_store,
        key_figures,
        signed_differences,
        volume_differences,
    )
    from offtake.apps.cli import app

    _, store = _sweep(write_spec(tmp_path, SMALL_SPEC), tmp_path / "store")
    runner = CliRunner()
    res = runner.invoke(app, ["solve", str(SMALL), "--out", str(tmp_path / "run"), "--set",
                              "rules.SUPPLIER-CAP-50.max_share=0.4"])
    assert res.exit_code == 0, res.output
    run = item_from_run(tmp_path / "run", "alone")
    p0, p1 = items_from_store(store, ["0", "1"])
    assert p0.label == ("point 0 (rules.SUPPLIER-CAP-50.max_share=0.4, "
                        "offers.OFF-MP-IND.decision=free)")
    figures = key_figures([p0, run, p1]).set_index("measure")
    assert abs(figures.loc["objective", f"alone - {p0.label}"]) < 1e-6 * p0.figures["objective"]
    assert figures.loc["objective", f"{p1.label} - {p0.label}"] == pytest.approx(
        p1.figures["objective"] - p0.figures["objective"])
    assert figures.loc["fiscal:US DoD", p1.label] == 0
    assert signed_differences([p0, run]).empty and volume_differences([p0, run]).empty
    signed = signed_differences([p0, p1]).set_index("offer")
    assert signed.loc["OFF-MP-IND"].tolist() == ["yes", "no"]
    tonnes = volume_differences([p0, p1])
    mp = tonnes[tonnes["offer"] == "OFF-MP-IND"]
    assert len(mp) > 0 and (mp[f"{p1.label} (t)"] == 0).all()
    res = runner.invoke(app, ["compare", "--run", str(tmp_path / "run"), "--store",
                              str(tmp_path / "store"), "--point", "1", "--out",
                              str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    assert "Offers signed in some and not in others" in res.output
    assert {p.name for p in (tmp_path / "cmp").iterdir()} == {"compare.csv", "signed.csv",
                                                              "volumes.csv"}
    # a reference that is no index and no key prefix ('9' matched the keys that start
    # with 9: one in 16, whenever the code version in the key changed)
    res = runner.invoke(app, ["compare", "--store", str(tmp_path / "store"), "--point", "x9"])
    assert res.exit_code == 1 and "no single point 'x9'" in res.output


def test_compare_warns_when_runs_come_from_different_instances(tmp_path):
    """A run of the small instance beside a run of tiny_two_offers: compare still puts them
    side by side (exit 0) but says they were solved from two instance files, naming each
    with its hash, and compare.csv's first rows hold the instance and its SHA-256. Money in
    two currencies is refused (nothing converts it)."""
    import pandas as pd
    from typer.testing import CliRunner

    from offtake.analysis.comparison import Item, check_currencies, instance_note
    from offtake.analysis.store import StoreError
    from offtake.apps.cli import app

    runner = CliRunner()
    for name in ("us_ev_oem_small", "tiny_two_offers"):
        res = runner.invoke(app, ["solve", str(ROOT / "instances" / f"{name}.yaml"), "--out",
                                  str(tmp_path / name)])
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["compare", "--run", str(tmp_path / "us_ev_oem_small"), "--run",
                              str(tmp_path / "tiny_two_offers"), "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "solved from 2 different instance files" in text
    shas = [json.loads((tmp_path / n / "summary.json").read_text())["instance_sha256"]
            for n in ("us_ev_oem_small", "tiny_two_offers")]
    rows = pd.read_csv(tmp_path / "c" / "compare.csv").set_index("measure")
    assert rows.loc["instance SHA-256", "us_ev_oem_small"] == shas[0][:12]
    assert rows.loc["instance SHA-256", "tiny_two_offers"] == shas[1][:12]
    # folders of one name are told apart by path, and one folder given twice gets '(2)'
    import shutil
    for where, name in (("a", "us_ev_oem_small"), ("b", "tiny_two_offers")):
        shutil.copytree(tmp_path / name, tmp_path / where / "run")
    res = runner.invoke(app, ["compare", "--run", str(tmp_path / "a" / "run"), "--run",
                              str(tmp_path / "b" / "run"), "--run", str(tmp_path / "b" / "run"),
                              "--out", str(tmp_path / "c2")])
    assert res.exit_code == 0, res.output
    cols = list(pd.read_csv(tmp_path / "c2" / "compare.csv").columns)
    a, b = str(tmp_path / "a" / "run"), str(tmp_path / "b" / "run")
    assert cols[:4] == ["measure", a, b, f"{b} (2)"]
    # a folder another command wrote is refused by name, not with a traceback
    saa = tmp_path / "saa"
    saa.mkdir()
    (saa / "summary.json").write_text(json.dumps({"command": "saa"}))
    res = runner.invoke(app, ["compare", "--run", str(saa), "--run", a])
    assert res.exit_code == 1 and "written by offtake saa" in " ".join(res.output.split())
    same = [Item("a", {}, instance="x", instance_sha256="1" * 64),
            Item("b", {}, instance="x", instance_sha256="1" * 64)]
    assert instance_note(same) is None
    with pytest.raises(StoreError, match="a in USD, b in EUR"):
        check_currencies([Item("a", {}), Item("b", {}, currency="EUR")])


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "docs" / "sweeps").glob("*.yaml")))
def test_the_shipped_specs_load_and_name_paths_their_instance_has(name):
    from offtake.analysis.spec import check_paths
    from offtake.io.loader import load_or_raise

    loaded = load_spec(ROOT / "docs" / "sweeps" / name)
    check_paths(loaded, load_or_raise(loaded.instance_path))
    assert loaded.spec.size() >= 7


def test_docs_extending_names_the_sweep_figures_where_they_are():
    import offtake.analysis.sweep as sweep
    import offtake.pipeline.figures as figures

    text = (ROOT / "docs" / "extending.md").read_text()
    for name, module in (("KeyFigures", figures), ("figure_columns", sweep)):
        assert name in text and hasattr(module, name)
    assert "test_each_point_equals_the_same_solve_run_alone_with_set" in text
    assert "def test_each_point_equals_the_same_solve_run_alone_with_set" in Path(
        __file__).read_text()
