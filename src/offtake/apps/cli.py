"""Command-line interface: `offtake validate | solve | check | value | evaluate | decompose |
saa | reduce | frontier | compare`. `evaluate`, `decompose` and `saa` run their solves on one
executor of `offtake.runtime` (--executor, --workers, --scheduler), made here and closed when
they end.

Starts fast: each command imports what it runs (Pyomo, HiGHS, scipy, matplotlib, Dask) when
it runs; `offtake --help` and `offtake validate` load none of them.

Exit codes: 0 solution found (or input valid / plan clean), 1 invalid input, 2 infeasible,
3 no solution within limits, 4 solver or internal error (including a plan the independent
checker rejects), 5 unbounded.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer
from rich.console import Console
from typer.core import TyperGroup

from offtake.domain.findings import InvalidInstance
from offtake.solvers.options import DEFAULT_MIP_GAP

if TYPE_CHECKING:
    from offtake.analysis.saa import SaaResult
    from offtake.runtime import Executor

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Choose rare-earth magnet offtake contracts at least cost.")


class _QuietPipe(io.TextIOBase):
    """Standard output that goes quiet when its reader has gone (`offtake solve ... | head`):
    the command still runs to its end (its files are written) and exits with its own code,
    with no BrokenPipeError traceback. Writes to whatever `sys.stdout` is at the time."""

    gone = False

    def write(self, s: str) -> int:
        if not self.gone:
            try:
                sys.stdout.write(s)
            except BrokenPipeError:
                self._reader_gone()
        return len(s)

    def flush(self) -> None:
        if not self.gone:
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.gone = True
        # so that the interpreter's last flush of stdout does not fail either
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def isatty(self) -> bool:
        return sys.stdout.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(sys.stdout, "encoding", None) or "utf-8"


console = Console(width=140, file=cast(IO[str], _QuietPipe()))


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import PackageNotFoundError, version

        def v(name: str) -> str:
            try:
                return version(name)
            except PackageNotFoundError:
                return "not installed"

        console.print(f"offtake {v('offtake')} (highspy {v('highspy')}, pyomo {v('pyomo')}, "
                      f"Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="print the versions of offtake, HiGHS and Pyomo and exit")] = False) -> None:
    """Choose rare-earth magnet offtake contracts at least cost."""

EXIT = {"optimal": 0, "feasible": 0, "invalid": 1, "infeasible": 2, "unbounded": 5,
        "no_solution": 3, "error": 4}


SetOption = Annotated[list[str] | None, typer.Option(
    "--set", metavar="PATH=VALUE",
    help="change one value of the instance before running (repeatable), by ID path, e.g. "
    "rules.SUPPLIER-CAP-50.max_share=0.65 or buyers.US-EV-OEM.demand_t.MAGNET_SH.2030=3500")]


ExecutorOption = Annotated[str | None, typer.Option(
    "--executor", metavar="serial|process|dask",
    help="where the command's solves run (scenario LPs, sweep points, coalitions, forced "
    "items): in this process, a local process pool, or on Dask "
    "(default: serial with --workers 1, else process)")]
SchedulerOption = Annotated[str | None, typer.Option(
    "--scheduler", metavar="ADDRESS",
    help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (only with --executor dask; "
    "without it dask starts a local cluster of --workers workers)")]


def _executor_options(kind: str | None, workers: int | None, scheduler: str | None,
                      default_workers: int) -> tuple[str, int | None, str | None]:
    """--executor, --workers and --scheduler checked and completed for `make_executor`, or
    a message naming the option and exit 1. Without --executor: serial for one worker
    (`default_workers` when --workers is not given), else a process pool."""
    from offtake.runtime import KINDS
    problem = ""
    if kind is not None and kind not in KINDS:
        problem = f"--executor must be one of {', '.join(KINDS)}, not {kind!r}"
    elif workers is not None and workers < 1:
        problem = f"--workers must be at least 1, not {workers}"
    elif scheduler is not None and kind != "dask":
        problem = ("--scheduler needs --executor dask"
                   + (f", not --executor {kind}" if kind else ""))
    elif scheduler is not None and workers is not None:
        problem = ("--workers sizes the local cluster that --executor dask starts; with "
                   "--scheduler the cluster's own workers run the tasks: drop --workers")
    elif kind == "serial" and workers not in (None, 1):
        problem = (f"--executor serial runs in this process: --workers {workers} needs "
                   "--executor process or dask")
    if problem:
        console.print(f"[red]{problem}[/]")
        raise typer.Exit(EXIT["invalid"])
    if kind is None:
        workers = default_workers if workers is None else workers
        kind = "serial" if workers == 1 else "process"
    return kind, workers, scheduler


@contextmanager
def _executor_or_exit(kind: str, workers: int | None, scheduler: str | None,
                      timeout: float | None = None,
                      preload: tuple[str, ...] | None = None) -> Iterator[Executor]:
    """The executor of checked options (`runtime.make_executor`; `timeout`: seconds per
    task; `preload`: what its workers import, default the evaluation's tasks), closed on
    the way out (with a local Dask cluster: the cluster too); exit 1 when Dask is missing
    or the scheduler cannot be reached, 4 when the local workers cannot start."""
    from offtake.analysis.evaluate import WORKER_MODULES
    from offtake.runtime import make_executor
    try:
        ex = make_executor(kind, workers=workers, scheduler=scheduler, timeout=timeout,
                           preload=WORKER_MODULES if preload is None else preload)
    except ImportError as exc:
        console.print(f"[red]--executor {kind}: {exc}[/]")
        raise typer.Exit(EXIT["invalid"]) from exc
    except (OSError, ValueError) as exc:  # no scheduler there, or not an address
        if scheduler is None:
            console.print(f"[red]--executor {kind}: its workers did not start: {exc}[/]")
            raise typer.Exit(EXIT["error"]) from exc
        console.print(f"[red]--scheduler {scheduler}: cannot connect: {exc}[/]")
        raise typer.Exit(EXIT["invalid"]) from exc
    with ex:
        if ex.requested != ex.kind:
            console.print(f"[yellow]--executor {ex.requested}: {ex.note}[/]")
        yield ex


def _solver_or_exit() -> None:
    """Refuse a highspy that gives wrong answers, cleanly (exit 4), before any solve."""
    from offtake.solvers.highs import SolverVersionError, check_solver_version

    try:
        check_solver_version()
    except SolverVersionError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT["error"]) from exc


def _findings_table(findings, title: str):
    """The findings as a Rich table (pandas and the report module load on first use)."""
    from offtake.report.console import findings_table

    return findings_table(findings, title)


def _load_or_exit(instance: Path, sets: list[str] | None = None):
    """The loaded instance with the `--set`s applied, or print every finding and exit 1."""
    from offtake.domain.transforms import apply_sets
    from offtake.io.loader import load_instance
    loaded = load_instance(instance)
    if loaded.instance is None:
        console.print(_findings_table(loaded.findings, f"Findings in {instance}"))
        raise typer.Exit(EXIT["invalid"])
    try:
        loaded.instance = apply_sets(loaded.instance, sets or [])
    except InvalidInstance as exc:
        _invalid_set(exc)
    return loaded


def _invalid_set(exc: InvalidInstance, options: str = "--set") -> NoReturn:
    """Print the findings of a bad --set (or --relax, --rule) and exit 1."""
    console.print(_findings_table(exc.findings, f"Findings in {options}"))
    raise typer.Exit(EXIT["invalid"]) from exc


@app.command()
def validate(instance: Annotated[Path, typer.Argument(help="instance (YAML, .xlsx or CSV folder)")],
             sets: SetOption = None) -> None:
    """Validate an instance; print every finding. Exit 0 if valid, 1 if not."""
    from offtake.domain.transforms import apply_sets
    from offtake.formulation.data import build_data
    from offtake.formulation.ruledata import origin_gaps
    from offtake.io.loader import load_instance
    loaded = load_instance(instance)
    findings = list(loaded.findings)
    of_sets: list = []
    if loaded.instance is not None and sets:
        try:
            loaded.instance = apply_sets(loaded.instance, sets)
        except InvalidInstance as exc:
            of_sets = exc.findings
            loaded.instance = None
    if loaded.instance is not None:
        findings += origin_gaps(loaded.instance, build_data(loaded.instance))
    if findings:
        console.print(_findings_table(findings, f"Findings in {instance}"))
    if of_sets:
        console.print(_findings_table(of_sets, f"Findings in --set ({instance} with "
                                               f"{', '.join(sets or [])})"))
    console.print("[green]valid[/]" if loaded.ok else "[red]invalid[/]")
    raise typer.Exit(0 if loaded.ok else 1)


@app.command()
def template(
    out: Annotated[Path, typer.Argument(
        help="workbook to write (.xlsx), a folder for one CSV file per sheet, or (with "
        "--from) a YAML file")],
    from_: Annotated[Path | None, typer.Option(
        "--from", help="fill it from this instance (YAML, workbook or CSV folder)")] = None,
) -> None:
    """Write an instance as a spreadsheet (blank, or filled from an instance): one sheet per
    table, units in the headers, drop-downs for IDs and enumerations, a notes sheet.
    `validate`, `solve` and every other command read it back. With --from and OUT.yaml:
    the instance (e.g. a filled-in workbook) as YAML."""
    from offtake.io.loader import instance_yaml, load_instance
    from offtake.io.spreadsheet import write_csv_folder, write_workbook
    inst = None
    if from_ is not None:
        loaded = load_instance(from_)
        if loaded.instance is None:
            console.print(_findings_table(loaded.findings, f"Findings in {from_}"))
            raise typer.Exit(EXIT["invalid"])
        inst = loaded.instance
    if out.suffix.lower() == ".xlsx":
        out.parent.mkdir(parents=True, exist_ok=True)
        write_workbook(out, inst)
    elif out.suffix.lower() in (".yaml", ".yml") and inst is not None:
        out.write_text(instance_yaml(inst), encoding="utf-8")
    elif out.suffix:
        console.print(f"[red]{out}: write a workbook (.xlsx), a folder (no suffix) or, with "
                      "--from, a YAML file[/]")
        raise typer.Exit(EXIT["invalid"])
    else:
        write_csv_folder(out, inst)
    console.print(f"written {out}" + (f" from {from_}" if from_ else " (blank template)"))


def _without_gc(command: Callable[..., None]) -> Callable[..., None]:
    """Run a one-solve command with the cyclic garbage collector off (on again after, for a
    caller that lives on: the tests' CliRunner). Building and reading back a Pyomo model
    makes millions of objects and no cycles worth collecting; the collector's passes over
    them cost the medium instance 0.4 s of 4 s end to end, for the same peak memory."""
    import functools

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        import gc

        was = gc.isenabled()
        gc.disable()
        try:
            command(*args, **kwargs)
        finally:
            if was:
                gc.enable()
    return run


@app.command()
@_without_gc
def solve(
    instance: Annotated[Path, typer.Argument(help="instance (YAML, .xlsx or CSV folder)")],
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("out"),
    time_limit: Annotated[float | None, typer.Option(
        help="seconds for HiGHS in all: the MIP, then the shadow-price LP in what is left")]
    = None,
    mip_gap: Annotated[float, typer.Option(help="relative MIP gap")] = DEFAULT_MIP_GAP,
    threads: Annotated[int | None, typer.Option(help="HiGHS threads")] = None,
    write_model: Annotated[Path | None, typer.Option(help="write the model as MPS")] = None,
    relax: Annotated[list[str] | None, typer.Option(
        help="drop this rule (repeatable) to see the plan without it")] = None,
    cvar_weight: Annotated[float, typer.Option(
        help="lambda: minimise expected cost + lambda x CVaR")] = 0.0,
    cvar_alpha: Annotated[float, typer.Option(help="CVaR level alpha in (0, 1)")] = 0.95,
    buyers: Annotated[str | None, typer.Option(
        "--buyers", metavar="A,B",
        help="solve for these buyers only (comma-separated): the instance restricted to them, "
        "as `offtake consortium` solves a coalition")] = None,
    force: Annotated[list[str] | None, typer.Option(
        "--force", metavar="ID", help="sign this offer or build this option (repeatable)")] = None,
    forbid: Annotated[list[str] | None, typer.Option(
        "--forbid", metavar="ID",
        help="do not sign this offer or build this option (repeatable)")] = None,
    sets: SetOption = None,
    rows: Annotated[str, typer.Option(
        "--rows", metavar="N|all", help="binding rule rows to print (default 20)")] = "20",
) -> None:
    """Solve an instance, write DIR/summary.json, the tables and results.xlsx, and check
    the plan."""
    from offtake.pipeline.run import run
    from offtake.report.console import diagnosis_table, print_run
    from offtake.results.folder import FolderBusy
    from offtake.solvers.highs import SolveOptions
    _solver_or_exit()
    if cvar_weight < 0 or not 0 < cvar_alpha < 1:
        console.print("[red]need --cvar-weight >= 0 and 0 < --cvar-alpha < 1[/]")
        raise typer.Exit(EXIT["invalid"])
    if rows != "all" and not (rows.isdigit() and int(rows) > 0):
        console.print(f"[red]--rows must be a positive whole number or 'all', not {rows!r}[/]")
        raise typer.Exit(EXIT["invalid"])
    options = SolveOptions(time_limit=time_limit, mip_gap=mip_gap, threads=threads,
                           write_model=write_model, cvar_weight=cvar_weight,
                           cvar_alpha=cvar_alpha)
    try:
        result = run(instance, out, options, relax=relax or [], sets=sets or [],
                     buyers=[b.strip() for b in (buyers or "").split(",") if b.strip()],
                     force=force or [], forbid=forbid or [])
    except InvalidInstance as exc:  # a bad --set; an unknown rule, buyer, offer or option
        _invalid_set(exc, "--set / --relax / --buyers / --force / --forbid")
    except (ValueError, FolderBusy) as exc:  # bad options; another run writing --out
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT["invalid"]) from exc
    if result.results is None:
        console.print(_findings_table(result.load.findings, f"Findings in {instance}"))
        raise typer.Exit(EXIT["invalid"])
    warnings = [f for f in result.load.findings if f.severity == "warning"] + result.warnings
    if warnings:
        console.print(_findings_table(warnings, "Warnings"))
    print_run(console, result.results, result.check, None if rows == "all" else int(rows))
    if result.diagnosis is not None:
        console.print(diagnosis_table(result.diagnosis))
    if result.results.has_solution:
        from offtake.report.workbook import write_results_workbook
        write_results_workbook(result.results, out / "results.xlsx")
    console.print(f"written to {out}/")
    code = EXIT[result.results.status]
    if result.check is not None and result.check.violations:
        code = EXIT["error"]
    raise typer.Exit(code)


@app.command()
def report(
    out: Annotated[Path, typer.Argument(help="folder written by `offtake solve` or "
                                        "`offtake saa`")],
    html: Annotated[Path | None, typer.Option(
        help="HTML file to write (default DIR/report.html)")] = None,
) -> None:
    """One self-contained HTML report (pictures embedded) of a solved folder, or of a sample
    average approximation's, for readers without the tool, and its figures as PNG files in
    DIR."""
    if not (out / "summary.json").exists():
        console.print(f"[red]{out}: no summary.json; run `offtake solve INSTANCE --out "
                      f"{out}` first[/]")
        raise typer.Exit(EXIT["invalid"])
    from offtake.report.html import write_report
    try:
        path, pngs = write_report(out, html)
    except ValueError as exc:  # a folder whose files cannot be read back (names the file)
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT["invalid"]) from exc
    console.print(f"written {path} ({path.stat().st_size / 1024:,.0f} kB, {len(pngs)} "
                  f"figures, also as {out}/report_*.png)")


@app.command()
def check(
    instance: Annotated[Path, typer.Argument(help="instance (YAML, .xlsx or CSV folder)")],
    out: Annotated[Path, typer.Argument(help="folder written by `offtake solve`")],
) -> None:
    """Recompute every constraint and the objective from the instance and DIR's tables."""
    from offtake.check import check_folder
    from offtake.report.console import violations_table
    loaded = _load_or_exit(instance)
    report = check_folder(loaded.instance, out, sha256=loaded.sha256)
    if report.status == "no_plan":
        console.print(f"[yellow]{report.note}[/]")
        raise typer.Exit(EXIT["no_solution"])
    if report.status != "checked":
        console.print(f"[red]{report.note}[/]")
        raise typer.Exit(EXIT["invalid"])
    if report.violations:
        console.print(violations_table(report))
        raise typer.Exit(EXIT["error"])
    console.print(f"[green]no violations[/]; recomputed objective {report.objective:,.2f}")


@app.command()
def value(
    instance: Annotated[Path, typer.Argument(help="instance with scenarios (YAML, .xlsx, CSVs)")],
    out: Annotated[Path | None, typer.Option(help="write value.json here")] = None,
    time_limit: Annotated[float | None, typer.Option(help="seconds per solve")] = None,
    sets: SetOption = None,
    ev: Annotated[str, typer.Option(
        "--ev", metavar="data|parameters",
        help="the expected-value problem: average the model data (prices after floors and "
        "ceilings) or the uncertain parameters (price indices; the textbook EV)")] = "data",
) -> None:
    """Value of modelling uncertainty: RP, EV, EEV, WS, VSS = EEV - RP, EVPI = RP - WS (and
    the EEV of a second EV optimum, when the EV problem has tied optima)."""
    from offtake.analysis.stochastic import stochastic_value
    from offtake.report import plots
    from offtake.report.console import value_table
    from offtake.solvers.options import SolveOptions
    _solver_or_exit()
    if ev not in ("data", "parameters"):
        console.print(f"[red]--ev must be data or parameters, not {ev!r}[/]")
        raise typer.Exit(EXIT["invalid"])
    loaded = _load_or_exit(instance, sets)
    v = stochastic_value(loaded.instance, SolveOptions(time_limit=time_limit), ev=ev)
    currency = loaded.instance.meta.currency
    console.print(value_table(v, currency))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        run = {"instance_sha256": loaded.sha256, "set": list(sets or []), "buyers": [],
               "forced": [], "forbidden": []}
        (out / "value.json").write_text(json.dumps({**v.as_dict(), "run": run}, indent=2)
                                        + "\n")
        fig = plots.cost_distribution(v.probability, {"stochastic plan (RP)": v.rp_costs,
                                                      "expected-value plan (EEV)": v.eev_costs},
                                      currency, "Scenario cost: stochastic against "
                                      "expected-value plan")
        fig.savefig(out / "cost_distribution.png")
        console.print(f"written to {out}/ (value.json, cost_distribution.png)")
    raise typer.Exit(0 if v.rp is not None else EXIT["no_solution"])


@app.command()
def evaluate(
    instance: Annotated[Path, typer.Argument(help="instance with scenarios (YAML, .xlsx, CSVs)")],
    plan: Annotated[Path, typer.Option(help="plan.json written by `offtake solve`")],
    out: Annotated[Path, typer.Option(help="folder for evaluation.csv/.json/.png")] =
    Path("out"),
    executor: ExecutorOption = None,
    workers: Annotated[int | None, typer.Option(
        help="worker processes (of the pool, or of dask's local cluster) "
        "(default: 1, serial; with --executor process or dask: one per core)")] = None,
    scheduler: SchedulerOption = None,
    cvar_alpha: Annotated[float, typer.Option(help="level of VaR and CVaR")] = 0.95,
    sets: SetOption = None,
) -> None:
    """Cost of a fixed portfolio in every scenario of INSTANCE (e.g. optimised on a few
    scenarios, evaluated on thousands): per-scenario cost, its distribution and risk;
    DIR/evaluation.json records the executor that ran them."""
    from offtake.analysis.evaluate import EvaluationError, evaluate_portfolio
    from offtake.report import plots
    from offtake.report.console import evaluation_table
    _solver_or_exit()
    kind, workers, scheduler = _executor_options(executor, workers, scheduler, 1)
    loaded = _load_or_exit(instance, sets)
    if not 0 < cvar_alpha < 1:
        console.print("[red]need 0 < --cvar-alpha < 1[/]")
        raise typer.Exit(EXIT["invalid"])
    with _executor_or_exit(kind, workers, scheduler) as ex:
        try:
            table, report = evaluate_portfolio(loaded.instance, plan, alpha=cvar_alpha,
                                               executor=ex)
        except (ValueError, EvaluationError) as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(EXIT["invalid"]) from exc
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "evaluation.csv", index=False)
    (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    currency = loaded.instance.meta.currency
    feasible = table[table["status"] == "optimal"]
    fig = plots.cost_distribution(
        dict(zip(table["scenario"], table["probability"], strict=True)),
        {"portfolio": dict(zip(feasible["scenario"], feasible["cost"], strict=True))},
        currency, f"Scenario cost of the portfolio over {len(table)} scenarios")
    fig.savefig(out / "evaluation.png")
    console.print(evaluation_table(report, currency))
    written = "evaluation.csv, evaluation.json, evaluation.png"
    if report["infeasible_in"]:
        from offtake.analysis.evaluate import explain_plan
        from offtake.report.console import diagnosis_table

        diag = explain_plan(loaded.instance, plan, report["infeasible_in"])
        diag.write(out)
        console.print(diagnosis_table(diag))
        written += ", infeasibility.json"
    console.print(f"written to {out}/ ({written})")
    raise typer.Exit(0 if not report["infeasible_in"] else EXIT["infeasible"])


@app.command()
def decompose(
    instance: Annotated[Path, typer.Argument(help="instance with scenarios (YAML, .xlsx, CSVs)")],
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out"),
    executor: ExecutorOption = None,
    workers: Annotated[int | None, typer.Option(
        help="worker processes for the scenario LPs (of the pool, or of dask's local "
        "cluster) (default: 2, a process pool; with --executor process or dask: one per "
        "core)")] = None,
    scheduler: SchedulerOption = None,
    gap: Annotated[float, typer.Option(help="relative gap at which it stops")] = 1e-6,
    time_limit: Annotated[float | None, typer.Option(help="seconds")] = None,
    cvar_weight: Annotated[float, typer.Option(
        help="lambda: minimise expected cost + lambda x CVaR")] = 0.0,
    cvar_alpha: Annotated[float, typer.Option(help="CVaR level alpha in (0, 1)")] = 0.95,
    max_groups: Annotated[int, typer.Option(
        help="most scenario groups with different capacities/demands")] = 8,
    cost_clusters: Annotated[int, typer.Option(
        help="cost variables for the scenarios outside the master (0: one per scenario)")] = 16,
) -> None:
    """The stochastic optimum by decomposition instead of the extensive form (same optimum;
    experimental: slower than the extensive form at 10 scenarios, ahead of it at 100 within
    a time limit, see benchmarks/bench_decompose.py): DIR/decomposition.json (with the
    executor that ran the scenario LPs), plan.json, scenario_costs.csv."""
    from offtake.analysis.decompose import (
        DecomposeOptions,
        DecompositionError,
        decompose_instance,
    )
    from offtake.report.console import decomposition_table
    _solver_or_exit()
    kind, workers, scheduler = _executor_options(executor, workers, scheduler, 2)
    loaded = _load_or_exit(instance)
    if gap <= 0 or cvar_weight < 0 or not 0 < cvar_alpha < 1 or cost_clusters < 0:
        console.print("[red]need --gap > 0, --cvar-weight >= 0, 0 < --cvar-alpha < 1 and "
                      "--cost-clusters >= 0[/]")
        raise typer.Exit(EXIT["invalid"])
    options = DecomposeOptions(gap=gap, time_limit=time_limit, max_groups=max_groups,
                               cost_clusters=cost_clusters or None)
    with _executor_or_exit(kind, workers, scheduler) as ex:
        try:
            res, table = decompose_instance(loaded.instance, out, options,
                                            cvar_weight=cvar_weight, cvar_alpha=cvar_alpha,
                                            executor=ex)
        except DecompositionError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(EXIT["error"]) from exc
    console.print(decomposition_table(res, loaded.instance.meta.currency))
    console.print(f"written to {out}/ (decomposition.json, plan.json, scenario_costs.csv)")
    raise typer.Exit(0 if res.status == "optimal" else EXIT["no_solution"])


@app.command()
def saa(
    instance: Annotated[Path, typer.Argument(help="YAML instance with a scenario_spec")],
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out"),
    replications: Annotated[int, typer.Option(
        "--replications", "-M", help="M: independent samples for the lower bound")] = 10,
    sample: Annotated[int, typer.Option(
        "--sample", "-N", help="N: scenarios per sample")] = 10,
    candidate_sample: Annotated[int | None, typer.Option(
        help="scenarios of the candidate's own sample (default N)")] = None,
    candidate_pool: Annotated[int | None, typer.Option(
        help="draw this many scenarios and keep the candidate's sample among them by "
        "forward selection (scenario reduction)")] = None,
    evaluation: Annotated[int, typer.Option(
        help="out-of-sample scenarios for the upper bound")] = 2000,
    seed: Annotated[int, typer.Option(help="seed every sample derives from")] = 0,
    method: Annotated[str, typer.Option(
        metavar="latin_hypercube|monte_carlo",
        help="how the candidate's and the replications' samples are drawn (the "
        "out-of-sample one is always Monte Carlo)")] = "latin_hypercube",
    confidence: Annotated[float, typer.Option(help="level of the intervals")] = 0.95,
    mip_gap: Annotated[float, typer.Option(help="relative MIP gap of each solve")] = 1e-4,
    time_limit: Annotated[float | None, typer.Option(help="seconds per solve")] = None,
    grow_to: Annotated[float | None, typer.Option(
        "--grow-to", metavar="GAP",
        help="double N until the paired gap's interval is below GAP, relative to the "
        "candidate's in-sample cost (e.g. 0.005)")]
    = None,
    max_sample: Annotated[int, typer.Option(help="largest N when growing")] = 1000,
    budget: Annotated[float | None, typer.Option(help="seconds for the run when growing")]
    = None,
    executor: ExecutorOption = None,
    workers: Annotated[int | None, typer.Option(
        help="worker processes (of the pool, or of dask's local cluster) (default: 2, a "
        "process pool; with --executor process or dask: one per core)")] = None,
    scheduler: SchedulerOption = None,
    sets: SetOption = None,
) -> None:
    """Sample average approximation with a certified gap (Mak-Morton-Wood): M samples of N
    scenarios drawn from the instance's scenario_spec are solved on the executor, a
    candidate plan from its own sample is priced in each of them and out of sample; the
    lower and upper bounds with confidence limits and the gap's confidence intervals. Writes
    DIR/saa.json, summary.json, replications.csv, evaluation.csv and plan.json."""
    from offtake.analysis.saa import (
        WORKER_MODULES,
        SaaError,
        SaaOptions,
        run_saa,
        spec_of_file,
    )
    from offtake.report.console import saa_table
    from offtake.report.tables import saa_replications_frame
    from offtake.results.folder import written_by
    from offtake.results.tables import write_plan
    _solver_or_exit()
    held = written_by(out)
    if held not in (None, "saa"):
        console.print(f"[red]{out} holds the output of offtake {held}; choose another --out "
                      "(the SAA files would sit beside an unrelated plan)[/]")
        raise typer.Exit(EXIT["invalid"])
    kind, workers, scheduler = _executor_options(executor, workers, scheduler, 2)
    options = SaaOptions(replications=replications, sample=sample,
                         candidate_sample=candidate_sample, candidate_pool=candidate_pool,
                         evaluation=evaluation, seed=seed,
                         method=method, confidence=confidence, mip_gap=mip_gap,
                         time_limit=time_limit, grow_to=grow_to, max_sample=max_sample,
                         budget=budget)
    try:
        options.check()
        spec = spec_of_file(instance)
    except (SaaError, ValueError) as exc:  # a spec the schema refuses is a ValidationError
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT["invalid"]) from exc
    loaded = _load_or_exit(instance, sets)
    with _executor_or_exit(kind, workers, scheduler, preload=WORKER_MODULES) as ex:
        try:
            res = run_saa(loaded.instance, spec, options, ex,
                          progress=lambda text: console.print(f"[dim]{text}[/]"))
        except InvalidInstance as exc:
            _invalid_set(exc, "scenario_spec")
        except SaaError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(EXIT["no_solution"]) from exc
    out.mkdir(parents=True, exist_ok=True)
    (out / "saa.json").write_text(json.dumps(res.as_dict(), indent=2, default=str) + "\n")
    summary = {"command": "saa", "instance": str(instance), "instance_sha256": loaded.sha256,
               "currency": loaded.instance.meta.currency, **res.summary()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    saa_replications_frame(res).to_csv(out / "replications.csv", index=False)
    rows = ["scenario,cost"] + [f"{s},{c!r}" for s, c in res.evaluation_costs.items()]
    rows += [f"{s}," for s in res.evaluation_failed]
    (out / "evaluation.csv").write_text("\n".join(rows) + "\n")
    write_plan(out / "plan.json", res.plan)
    console.print(saa_table(res, loaded.instance.meta.currency))
    _say_where_the_candidate_fails(res, instance, out)
    console.print(f"written to {out}/ (saa.json, summary.json, replications.csv, "
                  f"evaluation.csv, plan.json); `offtake report {out}` makes the HTML report")
    raise typer.Exit(0 if summary["status"] == "ok" else EXIT["no_solution"])


def _say_where_the_candidate_fails(res: SaaResult, instance: Path, out: Path) -> None:
    """Why the upper bound or a replication's paired gap is missing: the scenarios where the
    candidate cannot be carried out (a hard rule, or a contract it cannot take), with the
    reason HiGHS gave, and how to find out more."""
    failed = res.evaluation_failed
    inside = res.final.failed_in
    if not failed and not inside:
        return
    if failed:
        shown = "; ".join(f"{s}: {why}" for s, why in list(failed.items())[:3])
        console.print(f"[yellow]The candidate cannot be carried out in {len(failed)} of "
                      f"{res.options.evaluation} out-of-sample scenarios (e.g. {shown}): its "
                      "expected cost, the upper bound and both gap intervals are undefined.[/]")
    if inside:
        console.print(f"[yellow]In the replications it cannot be carried out in "
                      f"{len(inside)} scenario(s) (e.g. {', '.join(inside[:3])}): those "
                      "replications have no paired gap.[/]")
    console.print(f"[yellow]`offtake evaluate {instance} --plan {out}/plan.json` on such "
                  "scenarios names the rules that break it; a larger sample (-N, "
                  "--candidate-pool) gives a candidate that has seen them.[/]")


@app.command()
def reduce(
    instance: Annotated[Path, typer.Argument(help="instance with scenarios (YAML, .xlsx, CSVs)")],
    k: Annotated[int, typer.Option("-k", help="scenarios to keep")],
    out: Annotated[Path, typer.Option(help="the reduced instance (YAML) to write")],
    draw_n: Annotated[int | None, typer.Option(
        "--draw", metavar="N",
        help="reduce N scenarios drawn from the instance's scenario_spec instead of its own")]
    = None,
    seed: Annotated[int, typer.Option(help="seed of --draw")] = 0,
    sets: SetOption = None,
) -> None:
    """Scenario reduction by forward selection: keep K scenarios, give each dropped one's
    probability to its nearest kept one, report the Kantorovich distance to the original
    distribution; write the reduced instance (valid YAML, its scenarios explicit) and
    OUT.reduction.json."""
    from offtake.analysis.reduce import (
        ReductionError,
        reduce_scenarios,
        reduced_instance,
    )
    from offtake.analysis.saa import SaaError, Sampler, spec_of_file
    from offtake.io.loader import instance_yaml
    from offtake.report.console import render
    from offtake.report.tables import reduction_frame
    if k < 1 or (draw_n is not None and draw_n < 1):
        console.print("[red]need -k >= 1 and --draw >= 1[/]")
        raise typer.Exit(EXIT["invalid"])
    loaded = _load_or_exit(instance, sets)
    inst = loaded.instance
    try:
        if draw_n is not None:
            sampler = Sampler(inst, spec_of_file(instance))
            inst = sampler.instance(sampler.scenarios(draw_n, seed, "monte_carlo"))
        red = reduce_scenarios(inst, k)
    except (SaaError, ReductionError, ValueError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT["invalid"]) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# {len(red.kept)} of {red.scenarios} scenarios of {instance.name} kept "
                   "by forward selection (offtake reduce)\n"
                   + instance_yaml(reduced_instance(inst, red)))
    report = out.with_suffix(".reduction.json")
    report.write_text(json.dumps(red.as_dict(), indent=2) + "\n")
    console.print(render(reduction_frame(red)))
    console.print(f"written {out} and {report}")


@app.command()
def frontier(
    instance: Annotated[Path, typer.Argument(help="instance with scenarios (YAML, .xlsx, CSVs)")],
    lambdas: Annotated[str, typer.Option(help="comma-separated risk weights")] =
    "0,0.1,0.25,0.5,1,2",
    cvar_alpha: Annotated[float, typer.Option(help="CVaR level alpha in (0, 1)")] = 0.95,
    out: Annotated[Path, typer.Option(help="folder for frontier.csv and .png")] = Path("out"),
) -> None:
    """Efficient frontier: expected cost against CVaR over a range of lambda (`offtake
    pareto --metric cvar` with its plans in DIR/store; runs in this process)."""
    from offtake.analysis.pareto import frontier_table, run_pareto
    from offtake.report import plots
    from offtake.report.console import render
    from offtake.report.sweep import value_text
    from offtake.solvers.options import SolveOptions
    _solver_or_exit()
    loaded = _load_or_exit(instance)
    lams = _numbers(lambdas, "--lambdas")
    if any(x < 0 for x in lams) or not 0 < cvar_alpha < 1:
        console.print("[red]need lambdas >= 0 and 0 < --cvar-alpha < 1[/]")
        raise typer.Exit(EXIT["invalid"])
    out.mkdir(parents=True, exist_ok=True)
    store = _store_or_exit(out / "store", create=True)
    with _executor_or_exit("serial", None, None, preload=()) as ex:
        result = run_pareto(loaded.instance, loaded.sha256, "cvar", store, ex,
                            SolveOptions(cvar_alpha=cvar_alpha), lambdas=lams,
                            method="weights")
    table = frontier_table(result)
    table.to_csv(out / "frontier.csv", index=False)
    plots.frontier(table, loaded.instance.meta.currency, cvar_alpha).savefig(
        out / "frontier.png")
    console.print(render(table, title=f"Efficient frontier ({loaded.instance.meta.currency}, "
                         f"discounted; CVaR {cvar_alpha:.0%})",
                         formats=dict.fromkeys(table.columns, value_text)))
    console.print(f"written to {out}/ (frontier.csv, frontier.png, store/)")


def _numbers(text: str, option: str) -> list[float]:
    """Comma-separated numbers, or a message naming the option and exit 1."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        console.print(f"[red]{option} must be numbers separated by commas: {text}[/]")
        raise typer.Exit(EXIT["invalid"]) from exc


@app.command()
def compare(
    instance: Annotated[Path | None, typer.Argument(
        help="instance (YAML, .xlsx or CSV folder), with --rule")] = None,
    rule: Annotated[list[str] | None, typer.Option(
        "--rule", help="rule to relax (repeatable)")] = None,
    out: Annotated[Path | None, typer.Option(help="write compare.csv here")] = None,
    time_limit: Annotated[float | None, typer.Option(help="seconds per solve")] = None,
    sets: SetOption = None,
    run: Annotated[list[Path] | None, typer.Option(
        "--run", help="a folder written by offtake solve (repeatable)")] = None,
    store: Annotated[Path | None, typer.Option(
        "--store", help="a results store of offtake sweep or pareto")] = None,
    point: Annotated[list[str] | None, typer.Option(
        "--point", help="a point of --store: its index, SWEEP:INDEX or key (repeatable; "
        "default every point)")] = None,
) -> None:
    """Cost of compliance (INSTANCE --rule R: solve with every rule and without each named
    rule), or side by side any stored runs (--run DIR) and points of a results store
    (--store DIR [--point N]): key figures, offers signed in some and not in others, and
    contracted tonnes per year where the plans differ (compare.csv, signed.csv, volumes.csv
    with --out)."""
    if run or store is not None:
        _compare_stored(run or [], store, point or [], out)
        return
    if instance is None or not rule:
        console.print("[red]compare needs INSTANCE --rule RULE (cost of compliance) or "
                      "--run DIR / --store DIR (stored solves side by side)[/]")
        raise typer.Exit(EXIT["invalid"])
    from offtake.analysis.compliance import compare as compare_rules
    from offtake.report.console import compare_table
    from offtake.solvers.options import SolveOptions
    _solver_or_exit()
    loaded = _load_or_exit(instance, sets)
    try:
        table = compare_rules(loaded.instance, rule, SolveOptions(time_limit=time_limit))
    except InvalidInstance as exc:  # an unknown rule
        _invalid_set(exc, "--rule")
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT["invalid"]) from exc
    console.print(compare_table(table, loaded.instance.meta.currency))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "compare.csv", index=False)


def _compare_stored(runs: list[Path], store: Path | None, points: list[str],
                    out: Path | None) -> None:
    from offtake.analysis.comparison import (
        check_currencies,
        distinct_labels,
        instance_note,
        item_from_run,
        items_from_store,
        key_figures,
        signed_differences,
        volume_differences,
    )
    from offtake.analysis.store import StoreError
    from offtake.report.console import render
    from offtake.report.sweep import value_text
    try:
        items = [item_from_run(r, _run_label(r, runs)) for r in runs]
        if store is not None:
            items += items_from_store(_store_or_exit(store), points)
        items = distinct_labels(items)
        check_currencies(items)
    except StoreError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT["invalid"]) from exc
    if len(items) < 2:
        console.print("[red]compare needs at least two runs or points[/]")
        raise typer.Exit(EXIT["invalid"])
    note = instance_note(items)
    if note:
        console.print(f"[yellow]Note: {note}[/]")
    frames = {"compare": key_figures(items), "signed": signed_differences(items),
              "volumes": volume_differences(items)}
    for frame in frames.values():
        formats = dict.fromkeys(frame.columns, value_text)
        formats["year"] = "{}".format
        console.print(render(frame, formats=formats,
                             right=[c for c in frame.columns if c not in ("measure", "offer")]))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in frames.items():
            frame.to_csv(out / f"{name}.csv", index=False)
        console.print(f"written to {out}/ (compare.csv, signed.csv, volumes.csv)")


def _run_label(run: Path, runs: list[Path]) -> str:
    """A run's column: its folder's name, or its path where two runs' folders share a
    name (a/run and b/run)."""
    return str(run) if sum(r.name == run.name for r in runs) > 1 else run.name


# --- sweeps and Pareto fronts ------------------------------------------------------------
class _SweepGroup(TyperGroup):
    """`offtake sweep SPEC.yaml ...` runs a spec (the `run` command); `offtake sweep show` and
    `offtake sweep plot` read a store."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


sweep_app = typer.Typer(cls=_SweepGroup, no_args_is_help=True, help=(
    "Many solves of one instance with a few values changed (a spec's axes over --set "
    "paths), into a results store: `offtake sweep SPEC.yaml --store DIR`, then `offtake "
    "sweep show DIR` and `offtake sweep plot DIR --x AXIS --y METRIC`."))
app.add_typer(sweep_app, name="sweep")
StoreOption = Annotated[Path, typer.Option("--store", help="results store (a folder)")]


def _store_or_exit(path: Path, create: bool = False):
    """The store at `path` (made when `create`), or a message and exit 1."""
    try:
        from offtake.analysis.store import StoreError, SweepStore
    except ImportError as exc:  # pragma: no cover - the sweep extra installs them
        console.print(f"[red]the results store needs pyarrow and duckdb: pip install "
                      f"'offtake[sweep]' ({exc})[/]")
        raise typer.Exit(EXIT["invalid"]) from exc
    try:
        return SweepStore(path, create=create)
    except StoreError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT["invalid"]) from exc


@sweep_app.command("run")
def sweep_run(
    spec: Annotated[Path, typer.Argument(help="sweep spec (YAML)")],
    store: StoreOption,
    executor: ExecutorOption = None,
    workers: Annotated[int | None, typer.Option(
        help="worker processes (of the pool, or of dask's local cluster) (default: one per "
        "core)")] = None,
    scheduler: SchedulerOption = None,
    time_limit: Annotated[float | None, typer.Option(
        help="wall-clock seconds per point: a point still running then is stopped and "
        "recorded as 'timeout' (HiGHS's own limit is the spec's options.time_limit)")] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="solve every point again, stored or not (each new record replaces "
        "the stored one of its point)")] = False,
) -> None:
    """Solve the points of SPEC that the store does not hold yet (a point that failed or
    timed out is tried again), one record per point saved as it finishes; Ctrl-C keeps
    every finished point and a second run goes on from there."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from offtake.analysis.spec import check_paths, load_spec
    from offtake.analysis.store import StoreError
    from offtake.analysis.sweep import WORKER_MODULES, run_sweep
    from offtake.io.loader import load_instance
    from offtake.runtime.executor import default_workers
    from offtake.solvers.highs import SolverVersionError, check_solver_version
    try:
        check_solver_version()
    except SolverVersionError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT["error"]) from exc
    kind, workers, scheduler = _executor_options(executor, workers, scheduler,
                                                 default_workers())
    if time_limit is not None and (time_limit <= 0 or kind == "serial"):
        console.print("[red]--time-limit needs a positive number of seconds and --executor "
                      "process or dask (a serial run cannot stop a running solve)[/]")
        raise typer.Exit(EXIT["invalid"])
    try:
        loaded = load_spec(spec)
        # the base instance and every axis's path, before a store is made or a bar drawn
        base = load_instance(loaded.instance_path)
        if base.instance is None:
            raise InvalidInstance(base.findings)
        check_paths(loaded, base.instance)
    except InvalidInstance as exc:
        console.print(_findings_table(exc.findings, f"Findings in {spec}"))
        raise typer.Exit(EXIT["invalid"]) from exc
    target = _store_or_exit(store, create=True)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                        TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                        console=console)
    bar = progress.add_task(loaded.spec.name or spec.stem, total=None, note="")

    def started(todo: int, total: int) -> None:
        progress.update(bar, total=todo, note=f"({total - todo} of {total} already stored)")

    def saved(record: dict, done: int, todo: int) -> None:
        progress.update(bar, completed=done)
        if record["status"] in ("failed", "timeout", "invalid", "error"):
            progress.console.print(f"[yellow]point {record['index']} "
                                   f"({', '.join(json.loads(record['sets']))}): "
                                   f"{record['status']}: {record['message']}[/]")

    with _executor_or_exit(kind, workers, scheduler, timeout=time_limit,
                           preload=WORKER_MODULES) as ex:
        try:
            with progress:
                report = run_sweep(loaded, target, ex, on_point=saved, on_start=started,
                                   fresh=fresh)
        except InvalidInstance as exc:
            console.print(_findings_table(exc.findings, f"Findings in {spec}"))
            raise typer.Exit(EXIT["invalid"]) from exc
        except StoreError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(EXIT["invalid"]) from exc
        except KeyboardInterrupt as exc:
            console.print(f"[yellow]interrupted: the finished points are in {store}/; run "
                          "the same command again to go on[/]")
            raise typer.Exit(130) from exc
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.statuses.items())) or "nothing"
    rate = report.ran / report.seconds * 60 if report.seconds > 0 and report.ran else 0.0
    console.print(f"{report.total} points: {report.skipped} already stored, solved {counts} "
                  f"in {report.seconds:.1f} s ({rate:.1f} points per minute, "
                  f"{ex.kind} x {ex.workers}); records in {store}/")
    failed = sum(report.statuses.get(s, 0) for s in ("failed", "timeout"))
    raise typer.Exit(EXIT["error"] if failed else 0)


def _columns(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


@sweep_app.command("show")
def sweep_show(
    store: Annotated[Path, typer.Argument(help="results store (a folder)")],
    where: Annotated[str | None, typer.Option(
        help="a DuckDB SQL condition, e.g. \"status = 'optimal' AND objective < 4e9\"; "
        "quote names with ':' or '.': \"fiscal:US DoD\" > 0")] = None,
    columns: Annotated[str | None, typer.Option(
        help="comma-separated columns to show besides the axes (default: status, objective, "
        "gap, expected cost, fiscal cost, signed offers, seconds, warm)")] = None,
    every: Annotated[bool, typer.Option(
        "--all", help="every record, also older ones of a point (other options or code)")]
    = False,
    list_columns: Annotated[bool, typer.Option(
        "--list-columns", help="print the store's columns and exit")] = False,
    csv: Annotated[Path | None, typer.Option(help="also write the table as CSV")] = None,
) -> None:
    """The store's records as a table (the newest record of each point)."""
    from offtake.analysis.store import StoreError
    from offtake.report.console import render
    from offtake.report.sweep import points_frame, value_text
    target = _store_or_exit(store)
    try:
        frame = target.frame(where=where, latest=not every)
        if list_columns:
            console.print("\n".join(frame.columns))
            return
        table = points_frame(frame, _columns(columns))
    except (StoreError, KeyError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT["invalid"]) from exc
    console.print(render(table, formats=dict.fromkeys(table.columns, value_text),
                         right=[c for c in table.columns if c not in ("sweep", "status")]))
    if csv is not None:
        table.to_csv(csv, index=False)
        console.print(f"written to {csv}")


@sweep_app.command("plot")
def sweep_plot(
    store: Annotated[Path, typer.Argument(help="results store (a folder)")],
    y: Annotated[list[str], typer.Option(
        "--y", help="metric column (repeatable), e.g. objective, fiscal_total, 'fiscal:US DoD', "
        "cost:tariffs, rule_share:CRMA-DIV-65")],
    x: Annotated[str | None, typer.Option(
        "--x", help="axis column (e.g. rules.CRMA-DIV-65.max_share); without it: a tornado "
        "of a one-at-a-time sweep")] = None,
    baseline: Annotated[float | None, typer.Option(
        help="draw each curve relative to its point at this x (the cost of compliance, "
        "measured from the loosest bound)")] = None,
    where: Annotated[str | None, typer.Option(help="a DuckDB SQL condition on the records")]
    = None,
    sweep: Annotated[str | None, typer.Option(
        help="the sweep to draw, by its name (needed when the store holds several)")] = None,
    title: Annotated[str | None, typer.Option(help="the figure's title")] = None,
    out: Annotated[Path | None, typer.Option(
        help="image file (default: DIR/<y>-against-<x>.png)")] = None,
) -> None:
    """Curves of metrics against an axis (cost of compliance, fiscal cost against a floor
    level), or with no --x a tornado of one-at-a-time changes, of one sweep of the store."""
    from offtake.analysis.store import StoreError
    from offtake.report.sweep import curve, tornado
    target = _store_or_exit(store)
    try:
        frame = target.frame(where=where)
        if frame.empty:
            raise StoreError(f"no records in {store}" + (f" where {where}" if where else ""))
        names = sorted(frame["sweep"].dropna().unique())
        if sweep is not None and sweep not in names:
            raise StoreError(f"no sweep {sweep!r} in {store}; it holds {', '.join(names)}")
        if sweep is None and len(names) > 1:
            raise StoreError(f"{store} holds {len(names)} sweeps ({', '.join(names)}): "
                             "choose one with --sweep (points of different sweeps do not "
                             "belong on one figure)")
        frame = frame[frame["sweep"] == (sweep or names[0])].reset_index(drop=True)
        fig = curve(frame, x, y, baseline, title) if x else tornado(frame, y[0], title)
    except (StoreError, ValueError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT["invalid"]) from exc
    name = "-".join(y) + (f"-against-{x}" if x else "-tornado")
    path = out or store / ("".join(c if c.isalnum() or c in "-_." else "_" for c in name)
                           + ".png")
    fig.savefig(path)
    console.print(f"written to {path}")


@app.command()
def dashboard(
    store: Annotated[Path, typer.Option(
        help="folder of saved runs: output folders of `offtake solve`, results stores of "
        "`offtake sweep`; what-if runs are written under STORE/whatif")] = Path("."),
    port: Annotated[int, typer.Option(help="local port to serve on")] = 8501,
    instances: Annotated[list[Path] | None, typer.Option(
        "--instances", help="folder holding the runs' instance files, found by their "
        "SHA-256 (repeatable; default: ./instances and STORE)")] = None,
    executor: Annotated[str, typer.Option(
        help="where what-if runs are solved: process (a worker process) or serial")]
    = "process",
) -> None:
    """A local web app of saved runs (portfolio, costs, chain of custody, rules, scenarios,
    sweeps) and what-if runs compared with their base. Needs the `dashboard` extra."""
    import importlib.util
    if importlib.util.find_spec("streamlit") is None:
        console.print("[red]the dashboard needs Streamlit: pip install -e .[dashboard] "
                      "(python3 dev.py test installs it)[/]")
        raise typer.Exit(EXIT["invalid"])
    if not store.is_dir():
        console.print(f"[red]{store}: no such folder[/]")
        raise typer.Exit(EXIT["invalid"])
    if executor not in ("process", "serial"):
        console.print(f"[red]--executor must be process or serial, not {executor!r}[/]")
        raise typer.Exit(EXIT["invalid"])
    script = Path(__file__).with_name("dashboard.py")
    folders = instances if instances else [Path("instances"), store]
    cmd = [sys.executable, "-m", "streamlit", "run", str(script),
           "--server.headless=true", f"--server.port={port}", "--server.address=127.0.0.1",
           "--browser.gatherUsageStats=false", "--server.fileWatcherType=none", "--",
           "--store", str(store.resolve()), "--executor", executor]
    for folder in folders:
        cmd += ["--instances", str(folder.resolve())]
    console.print(f"offtake dashboard of {store} on http://127.0.0.1:{port} (Ctrl-C stops)")
    sys.stdout.flush()
    os.execv(sys.executable, cmd)  # the server replaces this process: a signal reaches it


@app.command()
def consortium(
    instance: Annotated[Path, typer.Argument(help="instance (YAML, .xlsx or CSV folder)")],
    members: Annotated[str | None, typer.Option(
        "--members", metavar="A,B,...", help="the members (default every buyer)")] = None,
    market: Annotated[str, typer.Option(
        metavar="alone|residual",
        help="what a coalition may buy: the whole market as if alone, or what the other "
        "members leave when they buy alone")] = "alone",
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out"),
    executor: ExecutorOption = None,
    workers: Annotated[int | None, typer.Option(
        help="worker processes (of the pool, or of dask's local cluster) (default: one per "
        "core)")] = None,
    scheduler: SchedulerOption = None,
    mip_gap: Annotated[float, typer.Option(help="relative MIP gap of each coalition")] = 1e-6,
    time_limit: Annotated[float | None, typer.Option(
        help="seconds per coalition solve")] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="solve every coalition again (ignore DIR/coalitions.jsonl)")] = False,
    sets: SetOption = None,
) -> None:
    """Pooled demand: the cost of every coalition of the members (2^n - 1 solves, each the
    instance restricted to its buyers, on the executor), the savings of pooling, the plants
    each coalition builds, and the grand coalition's cost split by proportional, Shapley,
    nucleolus and least-core methods with a core check each. Writes DIR/coalitions.csv,
    allocation.csv, consortium.json and consortium.png; DIR/coalitions.jsonl keeps every
    finished coalition, so an interrupted run resumes where it stopped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from offtake.analysis.consortium import (
        JOURNAL,
        MARKETS,
        WORKER_MODULES,
        ConsortiumOptions,
        analyse_consortium,
    )
    from offtake.report import plots
    from offtake.report.console import render
    from offtake.report.tables import allocation_frame, coalitions_frame, consortium_frame
    from offtake.runtime.executor import default_workers
    _solver_or_exit()
    if market not in MARKETS or mip_gap <= 0 or (time_limit is not None and time_limit <= 0):
        console.print(f"[red]need --market {' or '.join(MARKETS)}, --mip-gap > 0 and a "
                      "positive --time-limit[/]")
        raise typer.Exit(EXIT["invalid"])
    kind, workers, scheduler = _executor_options(executor, workers, scheduler,
                                                 default_workers())
    loaded = _load_or_exit(instance, sets)
    names = [m.strip() for m in members.split(",") if m.strip()] if members else None
    if fresh and (out / JOURNAL).exists():
        (out / JOURNAL).unlink()
    options = ConsortiumOptions(market=market, mip_gap=mip_gap, time_limit=time_limit)
    bar = Progress("coalitions", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=True)
    task = bar.add_task("coalitions", total=None)

    def progress(done: int, total: int, c) -> None:
        bar.update(task, completed=done, total=total)

    with _executor_or_exit(kind, workers, scheduler, preload=WORKER_MODULES) as ex, bar:
        try:
            res = analyse_consortium(loaded.instance, names, options, executor=ex,
                                     out_dir=out, progress=progress)
        except InvalidInstance as exc:
            _invalid_set(exc, "--members")
    out.mkdir(parents=True, exist_ok=True)
    res.coalitions_frame().to_csv(out / "coalitions.csv", index=False)
    res.allocation_frame().to_csv(out / "allocation.csv", index=False)
    (out / "consortium.json").write_text(json.dumps(res.as_dict(), indent=2, default=str)
                                         + "\n")
    console.print(render(consortium_frame(res)))
    console.print(render(coalitions_frame(res)))
    if res.allocations:
        console.print(render(allocation_frame(res)))
        plots.allocations(res.allocation_frame(), res.currency,
                          f"{res.instance}: who pays what of the grand coalition's cost"
                          ).savefig(out / "consortium.png")
    written = "coalitions.csv, allocation.csv, consortium.json" + (
        ", consortium.png" if res.allocations else "")
    console.print(f"written to {out}/ ({written}; {JOURNAL} to resume)")
    raise typer.Exit(0 if not res.failed else EXIT["no_solution"])


@app.command("why-not")
def why_not(
    instance: Annotated[Path, typer.Argument(help="instance (YAML, .xlsx or CSV folder)")],
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out"),
    only: Annotated[list[str] | None, typer.Option(
        "--only", metavar="ID", help="only this offer or build option (repeatable)")] = None,
    executor: ExecutorOption = None,
    workers: Annotated[int | None, typer.Option(
        help="worker processes (default: one per core)")] = None,
    scheduler: SchedulerOption = None,
    mip_gap: Annotated[float, typer.Option(help="relative MIP gap of every solve")] = 1e-6,
    time_limit: Annotated[float | None, typer.Option(help="seconds per solve")] = None,
    buyers: Annotated[str | None, typer.Option(
        "--buyers", metavar="A,B", help="for these buyers only (as `solve --buyers`)")] = None,
    sets: SetOption = None,
) -> None:
    """Solve INSTANCE as `offtake solve` does (DIR's tables written and checked), then, for
    each offer left unsigned and each build option left unbuilt, solve again with it forced:
    the cost of forcing it in, and the price or build cost at which it would enter (a forced
    item that is infeasible names the rules in the way). DIR/why_not.csv."""
    from offtake.analysis.whynot import WORKER_MODULES
    from offtake.analysis.whynot import why_not as why_not_table
    from offtake.domain.transforms import apply_sets, restrict_to_buyers
    from offtake.pipeline.run import run
    from offtake.report.console import gap_text, render
    from offtake.report.tables import why_not_frame
    from offtake.runtime.executor import default_workers
    from offtake.solvers.options import SolveOptions
    _solver_or_exit()
    kind, workers, scheduler = _executor_options(executor, workers, scheduler,
                                                 default_workers())
    options = SolveOptions(mip_gap=mip_gap, time_limit=time_limit)
    kept = [b.strip() for b in (buyers or "").split(",") if b.strip()]
    try:
        result = run(instance, out, options, sets=sets or [], buyers=kept)
    except InvalidInstance as exc:
        _invalid_set(exc, "--set / --buyers")
    if result.results is None or result.load.instance is None:
        console.print(_findings_table(result.load.findings, f"Findings in {instance}"))
        raise typer.Exit(EXIT["invalid"])
    res = result.results
    if not res.has_solution or res.objective is None:
        console.print(f"[red]no optimum to compare with: {res.status}[/]")
        raise typer.Exit(EXIT[res.status])
    offers, builds = res.tables["offers"], res.tables.get("builds")
    signed = dict(zip(offers["offer_id"], offers["signed"], strict=True))
    built = ({} if builds is None else dict(zip(builds["build_id"], builds["built"],
                                                strict=True)))
    inst = apply_sets(result.load.instance, sets or [])
    if kept:
        inst = restrict_to_buyers(inst, kept)[0]
    with _executor_or_exit(kind, workers, scheduler, preload=WORKER_MODULES) as ex:
        table = why_not_table(inst, res.objective, signed, built, options, executor=ex,
                              only=only or ())
    table.to_csv(out / "why_not.csv", index=False)
    console.print(f"optimum {res.objective:,.0f} {res.currency} ({res.status}, gap "
                  f"{gap_text(res.mip_gap or 0)})")
    if table.empty:
        console.print("every offer is signed and every build option built: nothing to explain")
    else:
        console.print(render(why_not_frame(table, res.currency), overflow="fold", formats={
            "break_even_price_per_kg": lambda x: "" if x is None or x != x else f"{x:,.2f}"}))
    console.print(f"written to {out}/ (the solve's tables and why_not.csv)")
    failed = int((table["status"] == "failed").sum()) if not table.empty else 0
    if failed:
        console.print(f"[red]{failed} of {len(table)} forced solves failed (see their notes)[/]")
        raise typer.Exit(EXIT["error"])


@app.command()
def pareto(
    instance: Annotated[Path, typer.Argument(help="instance (YAML, .xlsx or CSV folder)")],
    metric: Annotated[str, typer.Option(
        help="non_cn_content (share of demand with no step in the --exclude countries at "
        "--stages), recycled_share, largest_country_share (at --stages), "
        "emission_intensity (kg CO2e per kg delivered, pooled) or cvar")],
    store: StoreOption,
    points: Annotated[int, typer.Option(help="points of a share front (with the cheapest)")]
    = 11,
    to: Annotated[float | None, typer.Option(
        help="the last bound of a share front (default 1 for content and recycled share, "
        "0 for the largest country share and the emission intensity, in kg/kg)")] = None,
    stages: Annotated[str, typer.Option(help="comma-separated stages the share reads")] =
    "MINE,SEP_L,SEP_H,METAL,MAGNET",
    exclude: Annotated[str, typer.Option(help="countries that do not count as content")] =
    "CN",
    buyers: Annotated[str | None, typer.Option(
        help="comma-separated buyers whose pooled demand the share is of (default all)")]
    = None,
    lambdas: Annotated[str, typer.Option(
        help="risk weights of a cvar front by --method weights")] = "0,0.1,0.25,0.5,1,2",
    method: Annotated[str, typer.Option(
        help="a cvar front by 'epsilon' (least expected cost under a CVaR limit moved from "
        "the cheapest plan's CVaR to the least, or to --to in money: every point of the "
        "front) or 'weights' (expected cost + lambda CVaR over --lambdas: the supported "
        "points only)")] = "epsilon",
    cvar_alpha: Annotated[float, typer.Option(help="CVaR level alpha in (0, 1)")] = 0.95,
    mip_gap: Annotated[float, typer.Option(help="relative MIP gap")] = DEFAULT_MIP_GAP,
    executor: ExecutorOption = None,
    workers: Annotated[int | None, typer.Option(
        help="worker processes (default: one per core)")] = None,
    scheduler: SchedulerOption = None,
    time_limit: Annotated[float | None, typer.Option(
        help="wall-clock seconds per point (not with --executor serial)")] = None,
    sets: SetOption = None,
) -> None:
    """Pareto front of least cost against a share that rules can read (epsilon constraint:
    the share's rule added with a bound moved from the cheapest plan's share to --to) or
    of expected cost against CVaR (epsilon constraint on CVaR, or weighted sums over
    --lambdas with --method weights). Each point's record and plan go to the
    store; prints the front (dominated points marked, the knee named) and writes
    DIR/pareto-METRIC.csv and .png."""
    from offtake.analysis.pareto import METRICS, front_frame, run_pareto
    from offtake.analysis.store import StoreError
    from offtake.report.console import render
    from offtake.report.sweep import front, value_text
    from offtake.runtime.executor import default_workers
    from offtake.solvers.options import SolveOptions
    _solver_or_exit()
    if metric not in METRICS:
        console.print(f"[red]--metric must be one of {', '.join(METRICS)}, not {metric!r}[/]")
        raise typer.Exit(EXIT["invalid"])
    share_to = to is not None and (not 0 <= to <= 1 if metric not in ("cvar",
                                                                     "emission_intensity")
                                    else metric == "emission_intensity" and to < 0)
    if points < 1 or not 0 < cvar_alpha < 1 or share_to or method not in ("epsilon",
                                                                           "weights"):
        console.print("[red]need --points >= 1, 0 < --cvar-alpha < 1, --method epsilon or "
                      "weights and 0 <= --to <= 1 (a share; money for --metric cvar, kg/kg "
                      ">= 0 for emission_intensity)[/]")
        raise typer.Exit(EXIT["invalid"])
    kind, workers, scheduler = _executor_options(executor, workers, scheduler,
                                                 default_workers())
    if time_limit is not None and (time_limit <= 0 or kind == "serial"):
        console.print("[red]--time-limit needs a positive number of seconds and --executor "
                      "process or dask[/]")
        raise typer.Exit(EXIT["invalid"])
    loaded = _load_or_exit(instance, sets)
    target = _store_or_exit(store, create=True)
    from offtake.analysis.sweep import WORKER_MODULES
    with _executor_or_exit(kind, workers, scheduler, timeout=time_limit,
                           preload=WORKER_MODULES) as ex:
        try:
            result = run_pareto(
                loaded.instance, loaded.sha256, metric, target, ex,
                SolveOptions(mip_gap=mip_gap, cvar_alpha=cvar_alpha), points=points, to=to,
                stages=[s.strip() for s in stages.split(",") if s.strip()],
                exclude=[c.strip() for c in exclude.split(",") if c.strip()],
                buyers=[b.strip() for b in buyers.split(",")] if buyers else None,
                lambdas=_numbers(lambdas, "--lambdas"),
                method="weights" if method == "weights" else "epsilon",
                on_point=lambda rec, n, total: console.print(
                    f"  point {rec['index']}: {rec['status']}"
                    + (f", {rec['objective']:,.0f}" if rec.get("objective") is not None
                       else f" {rec.get('message', '')}")))
        except (InvalidInstance, ValueError) as exc:
            if isinstance(exc, InvalidInstance):
                _invalid_set(exc, "--metric / --stages / --exclude / --buyers")
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(EXIT["invalid"]) from exc
        except StoreError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(EXIT["invalid"]) from exc
    table = front_frame(result)
    currency = loaded.instance.meta.currency
    console.print(render(table.drop(columns=["key", "signed"]),
                         formats=dict.fromkeys(table.columns, value_text)))
    table.to_csv(store / f"pareto-{metric}.csv", index=False)
    words = result.metric.axis([c.strip() for c in exclude.split(",") if c.strip()],
                               [s.strip() for s in stages.split(",") if s.strip()])
    front(table, words, "expected cost" if metric == "cvar" else "least cost", currency,
          share=metric != "cvar", unit="kg/kg" if metric == "emission_intensity" else None,
          title=f"{loaded.instance.meta.name}: least cost against "
          f"{result.metric.label}").savefig(store / f"pareto-{metric}.png")
    console.print(f"written to {store}/ (pareto-{metric}.csv, pareto-{metric}.png, a record "
                  "and a plan per point)")
    raise typer.Exit(0 if len(table) else EXIT["no_solution"])


if __name__ == "__main__":  # pragma: no cover
    app()
