"""The execution layer (offtake.runtime): the same results serially, in a process pool and on
Dask (a LocalCluster shared by this module); results in input order; a task's error, its
timeout and its worker's death reported, never lost; one level of parallelism (inside a
multiprocessing.Pool worker the evaluation runs serially and says so); the lean solve; the
CLI's --executor, --workers and --scheduler.

Module-level imports stay light: the pool's and the cluster's workers import this module to
find the task functions."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import time
from pathlib import Path

import pytest

from offtake.runtime import highs_threads, make_executor, worker_cache, worker_reason

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["serial", "process", "dask"]


@pytest.fixture(scope="module")
def cluster():
    """One local Dask cluster for the module: 2 worker processes with one thread each."""
    pytest.importorskip("distributed")
    from offtake.runtime.cluster import local_cluster

    c = local_cluster(2)
    yield c
    c.close()


def executor(kind: str, request: pytest.FixtureRequest, **kwargs):
    """A new executor of `kind` with 2 workers (dask: on the module's cluster)."""
    if kind == "dask":
        kwargs["scheduler"] = request.getfixturevalue("cluster").scheduler_address
    else:
        kwargs.setdefault("workers", 2)
    return make_executor(kind, **kwargs)


@pytest.fixture(scope="module")
def shared_executors(request):
    """One executor per kind for the module's tests that neither time out nor kill workers
    (their workers import the model code once)."""
    made: dict = {}

    def get(kind: str):
        if kind not in made:
            made[kind] = executor(kind, request)
        return made[kind]

    yield get
    for ex in made.values():
        ex.close()


# --- task functions (top level: the workers import them) ----------------------------------
def _task(shared: dict, item):
    """shared['k'] x item; 'raise' raises, 'die' kills the worker, 'sleep' outlives any
    timeout of these tests."""
    if item == "raise":
        raise ValueError("this item is bad")
    if item == "die":
        os._exit(7)
    if item == "sleep":
        time.sleep(60)
    return shared["k"] * item


def _count(shared: object, item: int) -> tuple[int, int]:
    """(this worker's pid, the tasks this worker has run with this executor and shared)."""
    cache = worker_cache()
    cache["n"] = cache.get("n", 0) + 1
    return os.getpid(), cache["n"]


def _environment(shared: object, item: object) -> tuple:
    return (os.environ.get("OPENBLAS_NUM_THREADS"), os.environ.get("OMP_NUM_THREADS"),
            highs_threads(), worker_reason() is not None)


# --- the executors --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", BACKENDS)
def test_results_in_input_order_and_a_raising_task_reported(kind, shared_executors):
    items = [5, 3, "raise", 8, 1, 2, 9]
    ex = shared_executors(kind)
    assert ex.kind == kind
    out = ex.map(_task, items, shared={"k": 10})
    assert [r.status for r in out] == ["ok", "ok", "failed", "ok", "ok", "ok", "ok"]
    assert [r.value for r in out] == [50, 30, None, 80, 10, 20, 90]
    assert out[2].error == "ValueError: this item is bad" and "_task" in out[2].trace
    assert out[2].attempts == 1


def test_dask_without_a_scheduler_starts_a_local_cluster_of_its_own():
    """`--executor dask` without `--scheduler` (what a user types first): the executor makes
    its own local cluster and closes it. The other tests give a scheduler address; this path
    broke unseen when distributed 2026 started refusing Client(timeout=None)."""
    with make_executor("dask", workers=1) as ex:
        assert ex.kind == "dask" and ex.workers == 1
        out = ex.map(_task, [4, 7], shared={"k": 3})
    assert [r.value for r in out] == [12, 21]


@pytest.mark.parametrize("kind", BACKENDS)
def test_on_result_sees_each_item_once_as_it_finishes(kind, shared_executors):
    """A caller can save results as they come (sweeps): every item reported once, with the
    result map returns; an exception in the callback cancels the rest and propagates."""
    items = [5, 3, "raise", 8]
    seen: list[tuple[int, object, str]] = []
    out = shared_executors(kind).map(_task, items, shared={"k": 10},
                                     on_result=lambda i, r: seen.append((i, r.value, r.status)))
    assert sorted(seen, key=lambda x: x[0]) == [(i, r.value, r.status) for i, r in
                                                 enumerate(out)]

    def stop(i, r):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shared_executors(kind).map(_task, [1, 2, 3], shared={"k": 1}, on_result=stop)


@pytest.mark.parametrize("kind", ["process", "dask"])
def test_a_task_past_the_timeout_is_stopped_and_the_others_finish(kind, request):
    # 3 s, not less: on a loaded 2-core machine a trivial task must never reach it
    with executor(kind, request, timeout=3.0) as ex:
        seen: dict[int, str] = {}
        out = ex.map(_task, [1, "sleep", 2, 3], shared={"k": 2},
                     on_result=lambda i, r: seen.setdefault(i, r.status))
        assert [r.status for r in out] == ["ok", "timeout", "ok", "ok"]
        assert seen == dict(enumerate(r.status for r in out))
        assert [r.value for r in out] == [2, None, 4, 6]
        assert "no result within 3 s" in out[1].error
        again = ex.map(_task, [4], shared={"k": 2})  # the executor still works
    assert again[0].value == 8


@pytest.mark.parametrize("kind", ["process", "dask"])
def test_a_task_whose_worker_dies_is_retried_once_then_reported(kind, request):
    with executor(kind, request) as ex:
        out = ex.map(_task, [1, "die", 2], shared={"k": 3})
    assert [r.status for r in out] == ["ok", "failed", "ok"]
    assert [r.value for r in out] == [3, None, 6]
    assert out[1].attempts == 2
    assert "died" in out[1].error
    if kind == "process":
        assert "exit code 7" in out[1].error


def test_the_worker_cache_lasts_across_tasks_and_calls_of_one_executor(shared_executors):
    shared = {"template": list(range(1000))}
    ex = shared_executors("process")
    first = ex.map(_count, range(6), shared=shared)
    second = ex.map(_count, range(6), shared=shared)
    other = ex.map(_count, range(2), shared={"another": 1})
    runs: dict[int, int] = {}
    for r in first + second:
        pid, n = r.value
        runs[pid] = runs.get(pid, 0) + 1
        assert n == runs[pid]  # the pid's count goes on across the two calls
    assert sum(runs.values()) == 12
    assert all(r.value[1] <= 2 for r in other)  # a new shared object: a new cache


@pytest.mark.parametrize("kind", ["process", "dask"])
def test_workers_get_one_thread_per_library_and_for_highs(kind, shared_executors):
    [r] = shared_executors(kind).map(_environment, [None])
    assert r.value == ("1", "1", 1, True)
    assert highs_threads() is None  # here: HiGHS's own choice


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("threads")
    with pytest.raises(ValueError, match="workers"):
        make_executor("process", workers=0)
    with pytest.raises(ValueError, match="scheduler"):
        make_executor("process", scheduler="tcp://localhost:8786")


# --- plan evaluation on every back-end -----------------------------------------------------
@pytest.fixture(scope="module")
def small_plan(tmp_path_factory):
    """The small US instance under 8 scenarios (test_evaluate) and its stochastic plan."""
    from test_evaluate import _small_instance

    from offtake.formulation.data import build_data
    from offtake.formulation.model import build_model, first_stage_values
    from offtake.solvers.highs import SolveOptions, solve

    d = build_data(_small_instance(tmp_path_factory.mktemp("small")))
    m = build_model(d)
    assert solve(m, SolveOptions(mip_gap=1e-4)).has_solution
    return d, first_stage_values(m)


@pytest.fixture(scope="module")
def serial_evaluation(small_plan):
    from offtake.analysis.evaluate import evaluate_plan

    d, plan = small_plan
    res = evaluate_plan(d, plan)
    assert set(res.status.values()) == {"optimal"} and len(res.cost) == 8
    assert res.executor == {"kind": "serial", "workers": 1, "scheduler": None}
    return res


@pytest.mark.parametrize("kind", ["process", "dask"])
def test_evaluation_gives_the_same_costs_on_every_back_end(kind, shared_executors, small_plan,
                                                          serial_evaluation):
    from offtake.analysis.evaluate import evaluate_plan

    d, plan = small_plan
    ex = shared_executors(kind)
    res = evaluate_plan(d, plan, executor=ex)
    again = evaluate_plan(d, plan, executor=ex)  # the workers' solvers are warm now
    assert res.executor["kind"] == kind and res.errors == {}
    assert res.status == serial_evaluation.status
    assert res.cost == pytest.approx(serial_evaluation.cost, rel=1e-9)
    assert again.cost == pytest.approx(serial_evaluation.cost, rel=1e-9)


def _evaluate_in_pool_worker(args: tuple) -> tuple[dict, dict]:
    """In a multiprocessing.Pool worker: evaluate on a 'process' executor."""
    from offtake.analysis.evaluate import evaluate_plan

    d, plan = args
    with make_executor("process", workers=2) as ex:
        res = evaluate_plan(d, plan, executor=ex)
    return res.cost, res.executor


def test_inside_a_multiprocessing_pool_worker_it_runs_serially_and_says_so(small_plan,
                                                                          serial_evaluation):
    with mp.get_context("spawn").Pool(1) as pool:
        cost, how = pool.apply(_evaluate_in_pool_worker, (small_plan,))
    assert how["kind"] == "serial" and how["requested"] == "process"
    assert "daemonic" in how["note"] and "one level of parallelism" in how["note"]
    assert cost == pytest.approx(serial_evaluation.cost, rel=1e-9)


def test_a_failed_task_leaves_its_scenarios_unpriced_and_says_why(small_plan, monkeypatch):
    """A scenario solver that raises stands for any task failure: its scenarios get status
    'failed' and the reason, none is priced, and there is no expected cost."""
    from offtake.analysis.evaluate import ScenarioSolver, evaluate_plan

    def broken(self, x, who, gradients=False):
        raise RuntimeError("HiGHS went away")

    monkeypatch.setattr(ScenarioSolver, "evaluate", broken)
    d, plan = small_plan
    res = evaluate_plan(d, plan)
    assert res.cost == {} and res.expected is None
    assert set(res.status.values()) == {"failed"}
    assert set(res.errors.values()) == {"RuntimeError: HiGHS went away"}


# --- the lean solve -------------------------------------------------------------------------
def test_solve_lean_gives_the_objective_of_solve_instance_and_maps_over_workers(
        shared_executors):
    from offtake.io.loader import load_instance
    from offtake.pipeline.solve import LeanOutcome, solve_instance, solve_lean, solve_lean_task
    from offtake.solvers.highs import SolveOptions

    inst = load_instance(ROOT / "instances" / "us_ev_oem_small.yaml").instance
    full = solve_instance(inst)
    lean = solve_lean(inst)
    assert lean.status == full.status == "optimal"
    assert lean.objective == pytest.approx(full.objective, rel=1e-9)
    assert lean.bound == pytest.approx(full.bound, rel=1e-9) and lean.gap == full.mip_gap
    assert lean.plan == full.plan
    assert pickle.loads(pickle.dumps(lean)) == lean
    [mapped] = shared_executors("process").map(solve_lean_task, [inst],
                                               shared=SolveOptions())
    assert mapped.ok and isinstance(mapped.value, LeanOutcome)
    assert mapped.value.objective == pytest.approx(full.objective, rel=1e-9)


# --- the CLI --------------------------------------------------------------------------------
def test_the_cli_runs_evaluate_and_decompose_on_the_executor_it_is_given(tmp_path, cluster):
    """PRICES_ONLY (test_evaluate): the decomposition's 6.0M and the evaluation of its plan,
    both on the module's Dask cluster; a scheduler with another executor is refused."""
    import json

    import yaml
    from test_evaluate import PRICES_ONLY
    from typer.testing import CliRunner

    from offtake.apps.cli import app

    src = tmp_path / "prices.yaml"
    src.write_text(yaml.safe_dump(PRICES_ONLY, sort_keys=False))
    on_dask = ["--executor", "dask", "--scheduler", cluster.scheduler_address]
    runner = CliRunner()
    dec = runner.invoke(app, ["decompose", str(src), "--out", str(tmp_path / "dec"),
                              "--cost-clusters", "1", *on_dask])
    assert dec.exit_code == 0, dec.output
    report = json.loads((tmp_path / "dec" / "decomposition.json").read_text())
    assert report["executor"]["kind"] == "dask"
    assert report["objective"] == pytest.approx(6_000_000, rel=1e-6)
    ev = runner.invoke(app, ["evaluate", str(src), "--plan", str(tmp_path / "dec" / "plan.json"),
                             "--out", str(tmp_path / "ev"), *on_dask])
    assert ev.exit_code == 0, ev.output
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert report["executor"]["kind"] == "dask" and report["not_evaluated"] == {}
    assert report["expected_cost"] == pytest.approx(6_000_000, rel=1e-6)
    bad = runner.invoke(app, ["evaluate", str(src), "--plan", str(tmp_path / "dec" / "plan.json"),
                              "--executor", "process", "--scheduler", cluster.scheduler_address])
    assert bad.exit_code == 1 and "--executor" in bad.output


def test_the_cli_evaluates_in_a_process_pool_at_the_expected_cost_it_gets_serially(tmp_path,
                                                                                   small_plan):
    """The small US instance under 8 scenarios and its stochastic plan: `evaluate` with
    --executor process --workers 2 prices every scenario as the serial run does, and both
    reports name the executor."""
    import json

    from test_evaluate import _small_instance
    from typer.testing import CliRunner

    from offtake.apps.cli import app
    from offtake.results.tables import write_plan

    _, plan = small_plan
    _small_instance(tmp_path)  # writes small_scenarios.yaml, the instance of small_plan
    write_plan(tmp_path / "plan.json", plan)
    args = ["evaluate", str(tmp_path / "small_scenarios.yaml"), "--plan",
            str(tmp_path / "plan.json")]
    runner = CliRunner()
    reports = {}
    for name, how in [("serial", []), ("process", ["--executor", "process", "--workers", "2"])]:
        res = runner.invoke(app, [*args, "--out", str(tmp_path / name), *how])
        assert res.exit_code == 0, res.output
        reports[name] = json.loads((tmp_path / name / "evaluation.json").read_text())
    assert reports["serial"]["executor"] == {"kind": "serial", "workers": 1, "scheduler": None}
    assert reports["process"]["executor"] == {"kind": "process", "workers": 2,
                                              "scheduler": None}
    assert reports["process"]["not_evaluated"] == {} and reports["process"]["scenarios"] == 8
    assert reports["process"]["expected_cost"] == pytest.approx(
        reports["serial"]["expected_cost"], rel=1e-9)


def test_an_unreachable_scheduler_is_named_after_the_connect_timeout(tmp_path, monkeypatch):
    """A well-formed address where nothing listens: the CLI gives up after CONNECT_SECONDS
    (10 s; 1 s here, Dask's default would be 30 s) and names the option: exit 1, no
    traceback."""
    import yaml
    from test_evaluate import PRICES_ONLY
    from typer.testing import CliRunner

    import offtake.runtime.cluster as cluster_module
    from offtake.apps.cli import app

    monkeypatch.setattr(cluster_module, "CONNECT_SECONDS", 1.0)
    src = tmp_path / "prices.yaml"
    src.write_text(yaml.safe_dump(PRICES_ONLY, sort_keys=False))
    start = time.monotonic()
    res = CliRunner().invoke(app, ["decompose", str(src), "--out", str(tmp_path / "out"),
                                   "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert "--scheduler tcp://127.0.0.1:9: cannot connect" in res.output
    assert "after 1 s" in res.output
    assert time.monotonic() - start < 25


@pytest.mark.parametrize(("options", "message"), [
    (["--executor", "threads"], "--executor must be one of serial, process, dask"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler needs --executor dask"),
    (["--executor", "serial", "--workers", "3"], "--executor serial runs in this process"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"],
     "drop --workers"),
    (["--executor", "dask", "--scheduler", "no-port"], "--scheduler no-port: cannot connect"),
], ids=["unknown", "no-workers", "scheduler-without-dask", "serial-with-workers",
        "scheduler-with-workers", "bad-address"])
def test_the_cli_refuses_contradictory_executor_options_naming_them(tmp_path, options,
                                                                    message):
    """Checked before anything runs (a bad address before a client is made): exit 1, the
    option named, no traceback."""
    import yaml
    from test_evaluate import PRICES_ONLY
    from typer.testing import CliRunner

    from offtake.apps.cli import app

    src = tmp_path / "prices.yaml"
    src.write_text(yaml.safe_dump(PRICES_ONLY, sort_keys=False))
    runner = CliRunner()
    for command in (["evaluate", str(src), "--plan", str(tmp_path / "plan.json")],
                    ["decompose", str(src)]):
        res = runner.invoke(app, [*command, "--out", str(tmp_path / "out"), *options])
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
        assert message in " ".join(res.output.split()), res.output
        assert not (tmp_path / "out").exists()
