"""The web dashboard (`offtake dashboard --store DIR`), a Streamlit script: pages of the saved
runs under DIR (output folders of `offtake solve`, results stores of `offtake sweep` and
`offtake pareto`, output folders of `offtake consortium`) and what-if runs made from them.

Renders the frames of `offtake.report.tables` and the figures of `offtake.report.plots` /
`offtake.report.sweep`; reads runs with `Results.read`, stores with `SweepStore` (a Pareto
front with `analysis.pareto.read_front`), consortia with `analysis.consortium.read_result`;
computes nothing of its own beyond choosing rows to show (a scenario, a rule kind) and the
difference of two runs' figures. What-if runs go through `offtake.apps.whatif`.

Started by `streamlit run` (the CLI does that); arguments after `--`: `--store DIR`,
`--instances DIR` (repeatable; where to look for the instance file of a run),
`--executor KIND`.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from matplotlib.figure import Figure

from offtake.apps.catalog import Catalog, find_instance, scan
from offtake.apps.whatif import Jobs, assignment, findings_of, from_base, numbers_of
from offtake.report import plots, tables
from offtake.results.tables import Results


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="offtake dashboard")
    p.add_argument("--store", default=".")
    p.add_argument("--instances", action="append", default=[])
    p.add_argument("--executor", default="process")
    return p.parse_args(sys.argv[1:])


ARGS = _args()
STORE = Path(ARGS.store).resolve()


# --- reading ---------------------------------------------------------------------------------
def catalog() -> Catalog:
    return scan(STORE)


@st.cache_resource(max_entries=32, show_spinner=False)
def _read(folder: str, stamp: float) -> Results:
    return Results.read(folder)


def read(folder: Path) -> Results:
    """The run in `folder` (read again when its summary changes)."""
    return _read(str(folder), (folder / "summary.json").stat().st_mtime)


# --- showing ---------------------------------------------------------------------------------
def _display(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with text column names and no mixed-type columns (values of a record frame
    as text), ready for the browser."""
    out = frame.copy()
    out.columns = [str(c) for c in out.columns]
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = [_text(v) for v in out[col]]
    return out


def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if abs(v) < 1e-6:
            return "0"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.4g}"
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return str(v)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every number as text (thousands separated, as `_text` writes them),
    its title and caption kept: for tables of money read rather than sorted."""
    out = frame.astype(object)
    out.attrs.update(frame.attrs)
    return out


def show(frame: pd.DataFrame, small: bool = False) -> None:
    """A report frame under its title, with its caption: small frames as a plain table."""
    title = frame.attrs.get("title")
    if title:
        st.subheader(title)
    if frame.empty:
        st.info(frame.attrs.get("caption") or "nothing to show")
        return
    if small:
        st.table(_display(frame).set_index(_display(frame).columns[0]))
    else:
        st.dataframe(_display(frame), hide_index=True, width="stretch")
    if frame.attrs.get("caption"):
        st.caption(frame.attrs["caption"])


def figure(fig: Figure) -> None:
    """A report figure as an image at its own resolution (`report.plots` draws at 120 dpi;
    `st.pyplot` would render it at 200, almost three times the pixels, on every rerun)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    st.image(buf.getvalue())


def pick_run() -> tuple[str, Path] | None:
    """The run chosen in the sidebar (kept in the address: ?run=NAME)."""
    runs = catalog().runs
    if not runs:
        st.warning(f"No output folder of `offtake solve` under {STORE}. Solve an instance "
                   f"with `offtake solve INSTANCE --out {STORE}/NAME` and reload.")
        return None
    names = list(runs)
    wanted = st.query_params.get("run")
    index = names.index(wanted) if wanted in names else 0
    name = st.sidebar.selectbox("Run", names, index=index, key="run_choice")
    st.query_params["run"] = name
    return name, runs[name]


def run_header(name: str, r: Results) -> None:
    money = "-" if r.objective is None else f"{r.objective / 1e6:,.2f} million {r.currency}"
    st.caption(f"run **{name}** · {r.instance_name} · status {r.status} · objective {money}")
    if not r.has_solution:
        st.error(f"No plan: the solver ended with status {r.status}"
                 + (f" ({r.message})" if r.message else ""))


def current() -> tuple[str, Results] | None:
    chosen = pick_run()
    if chosen is None:
        return None
    name, folder = chosen
    r = read(folder)
    run_header(name, r)
    return (name, r) if r.has_solution else None


# --- pages -----------------------------------------------------------------------------------
def portfolio_page() -> None:
    st.title("Portfolio")
    got = current()
    if got is None:
        return
    _, r = got
    plan = tables.plan_frame(r)
    prob = tables.probabilities(r)
    scenarios = [s for s in plan["scenario"].unique() if s != "every scenario"] \
        if not plan.empty else []
    shown = plan
    if scenarios:
        choice = st.selectbox("Scenario", ["expected", *prob], key="portfolio_scenario")
        years = [c for c in plan.columns if isinstance(c, int)]
        if choice == "expected":
            w = [1.0 if s == "every scenario" else prob.get(str(s), 0.0)
                 for s in plan["scenario"]]
            shown = plan.copy()
            shown[years] = shown[years].mul(w, axis=0)
        else:
            shown = plan[plan["scenario"].isin(["every scenario", choice])]
        st.caption("Deliveries differ by scenario: the chart shows the chosen scenario or "
                   "the expected tonnes.")
    figure(plots.portfolio(shown))
    show(tables.contracts_frame(r))
    show(plan)


def costs_page() -> None:
    st.title("Costs")
    got = current()
    if got is None:
        return
    _, r = got
    costs = tables.costs_frame(r)
    figure(plots.waterfall(costs, r.currency))
    show(costs, small=True)
    show(tables.buyer_costs_frame(r))
    show(tables.costs_by_buyer_frame(r))
    fiscal = tables.fiscal_frame(r)
    figure(plots.fiscal(fiscal, r.currency))
    show(fiscal, small=True)


def rules_page() -> None:
    st.title("Rules")
    got = current()
    if got is None:
        return
    _, r = got
    binding = tables.rules_frame(r)
    figure(plots.shadow_prices(binding, r.currency))
    rows = r.tables.get("rules")
    st.subheader(f"Every rule row: slack and shadow price ({r.currency})")
    if rows is None or rows.empty:
        st.info("this instance has no rules")
        return
    kinds = sorted(rows["kind"].astype(str).unique())
    chosen = st.multiselect("Kind", kinds, default=kinds, key="rule_kinds")
    only = st.checkbox("binding or violated only", value=False, key="rules_binding")
    shown = rows[rows["kind"].astype(str).isin(chosen)]
    hot = (shown["binding"].astype(str) == "True") | (shown["violation"] > 1e-6)
    if only:
        shown = shown[hot]
    order = shown.assign(_hot=~hot.loc[shown.index],
                         _p=-shown["shadow_price"].fillna(0).abs())
    shown = order.sort_values(["_hot", "_p"]).drop(columns=["_hot", "_p"])
    st.dataframe(_display(shown), hide_index=True, width="stretch")
    st.caption(f"{len(shown)} of {len(rows)} rows, binding or violated first (dearest "
               "shadow price first); slack in the row's unit")
    show(binding)


def custody_page() -> None:
    st.title("Chain of custody")
    got = current()
    if got is None:
        return
    _, r = got
    links = tables.origin_links_frame(r)
    materials = sorted(set(links["material"])) if not links.empty else []
    if not materials:
        st.warning("No delivered tonne records more than one stage: there is no chain to "
                   "draw (declare feed_origin of the sellers).")
    for m in materials:
        figure(plots.origin_sankey(links, m))
    show(tables.origin_frame(r))
    conc = tables.concentration_frame(r)
    figure(plots.concentration(conc))
    show(conc)
    show(tables.concentration_by_group_frame(r))
    show(tables.emissions_frame(r))


def _value(folder: Path) -> dict[str, Any] | None:
    """value.json of `offtake value --out DIR`, when the run's folder has it and it was
    computed for the run there (else a note why it is left out)."""
    from offtake.results.folder import value_of_run

    summary = read(folder)
    value, stale = value_of_run(folder, summary.instance_sha256, summary.options)
    if stale:
        st.caption(stale)
    return value


def scenarios_page() -> None:
    st.title("Scenarios")
    chosen = pick_run()
    if chosen is None:
        return
    name, folder = chosen
    r = read(folder)
    run_header(name, r)
    if not r.has_solution:
        return
    prob = tables.probabilities(r)
    sc = tables.scenario_costs_frame(r)
    if len(prob) > 1:
        costs_by = dict(zip(sc["scenario"].astype(str), sc["total"], strict=True))
        figure(plots.cost_distribution(
            prob, {"chosen portfolio": costs_by}, r.currency,
            f"Scenario cost of the chosen portfolio ({len(prob)} scenarios)"))
        show(tables.risk_frame(r), small=True)
    else:
        st.info("One scenario: no distribution to show.")
    value = _value(folder)
    if value is not None:
        if value.get("VSS") is None and value.get("RP") is not None:
            st.warning("The plan made for the average scenario (EV) cannot be carried out in "
                       "every scenario (EEV has no value).")
        show(tables.record([(k, v, r.currency) for k, v in value.items()
                            if k not in ("status", "run")],
                           "Value of modelling uncertainty (VSS and EVPI)",
                           "VSS = EEV - RP; EVPI = RP - WS"), small=True)
    elif len(prob) > 1:
        st.info("The value of the stochastic solution (VSS) and of perfect information "
                "(EVPI) are not in this folder: run `offtake value INSTANCE --out "
                f"{folder}` to add them.")
    show(sc)


def sweeps_page() -> None:
    st.title("Sweeps")
    from offtake.analysis.store import StoreError, SweepStore
    from offtake.report import sweep

    stores = catalog().stores
    if not stores:
        st.warning(f"No results store of `offtake sweep` under {STORE}: run `offtake sweep "
                   f"SPEC --store {STORE}/NAME` and reload.")
        return
    names = list(stores)
    wanted = st.query_params.get("store")
    name = st.selectbox("Results store", names,
                        index=names.index(wanted) if wanted in names else 0, key="store")
    st.query_params["store"] = name
    try:
        store = SweepStore(stores[name], create=False)
        frame = store.frame()
        if frame.empty:
            st.info("no records yet")
            return
        fronts = _fronts(store.frame(latest=False))
    except StoreError as exc:
        st.error(str(exc))
        return
    curves = frame[~frame["sweep"].isin(set(fronts["sweep"]))] if len(fronts) else frame
    frame = pd.concat([curves, fronts], ignore_index=True) if len(fronts) else frame
    axes = [a for a in sweep.axes_of(curves) if a in curves.columns]
    numeric = [c for c in curves.columns if pd.api.types.is_numeric_dtype(curves[c])
               and c not in ("index", *axes) and curves[c].notna().any()]
    if axes and numeric and len(curves):
        left, right = st.columns(2)
        x = left.selectbox("Axis", axes, key="sweep_x")
        y = right.selectbox("Metric", numeric,
                            index=numeric.index("objective") if "objective" in numeric else 0,
                            key="sweep_y")
        try:
            figure(sweep.curve(curves, x, [y]))
        except ValueError as exc:
            st.warning(str(exc))
    show(sweep.points_frame(frame))
    st.subheader("Points side by side")
    labels = [f"{s} #{i}" for s, i in zip(frame["sweep"], frame["index"], strict=True)]
    picked = st.multiselect("Points", labels, default=labels[:2], key="sweep_points")
    if picked:
        rows = frame.iloc[[labels.index(p) for p in picked]]
        side = rows.drop(columns=[c for c in ("key", "plan") if c in rows]).T
        side.columns = picked
        st.dataframe(_display(side.rename_axis("column").reset_index()), hide_index=True,
                     width="stretch")


@st.cache_resource(max_entries=8, show_spinner=False)
def _consortium(folder: str, stamp: float) -> Any:
    from offtake.analysis.consortium import read_result

    return read_result(folder)


def consortium_page() -> None:
    st.title("Consortium")
    found = catalog().consortia
    if not found:
        st.warning(f"No output folder of `offtake consortium` under {STORE}: run `offtake "
                   f"consortium INSTANCE --out {STORE}/NAME` and reload.")
        return
    names = list(found)
    wanted = st.query_params.get("consortium")
    name = st.sidebar.selectbox("Consortium", names,
                                index=names.index(wanted) if wanted in names else 0,
                                key="consortium_choice")
    st.query_params["consortium"] = name
    folder = found[name]
    try:
        res = _consortium(str(folder), (folder / "consortium.json").stat().st_mtime)
    except ValueError as exc:
        st.error(str(exc))
        return
    st.caption(f"consortium **{name}** · {res.instance} · members {', '.join(res.members)} · "
               f"market {res.options.market}")
    show(tables.consortium_frame(res), small=True)
    show(_as_text(tables.coalitions_frame(res)))
    if not res.allocations:
        st.warning("Not every coalition has a solution: the grand coalition's cost is not "
                   "split (" + ", ".join("+".join(c.members) for c in res.failed) + ").")
        return
    figure(plots.allocations(res.allocation_frame(), res.currency,
                             f"{res.instance}: who pays what of the grand coalition's cost"))
    show(_as_text(tables.allocation_frame(res)))
    st.subheader(f"Core check ({res.currency})")
    check = pd.DataFrame([{
        "method": a.method, "in the core": a.in_core,
        "coalition that objects": "none" if a.in_core else "+".join(a.worst),
        "it pays more than alone by": None if a.in_core else a.max_excess, "note": a.note}
        for a in res.allocations]).astype(object)
    st.table(_display(check).set_index("method"))
    st.caption("An allocation is in the core when no coalition S pays more than it would "
               "alone: x(S) <= c(S) for every S. "
               + ("The core is empty: every split leaves some coalition better off alone by "
                  f"at least the least-core epsilon, {res.least_core_epsilon:,.0f} "
                  f"{res.currency}." if res.least_core_epsilon else
                  "The core is not empty."))


def _fronts(frame: pd.DataFrame) -> pd.DataFrame:
    """The Pareto fronts of `offtake pareto` in a store (`frame`: every record of it): the
    front figure of `report.sweep.front` (the command's pareto-METRIC.png) and its table,
    dominated points greyed or left out. Returns the records of every front (the newest of
    each key; empty when the store holds no front)."""
    from offtake.analysis.pareto import front_frame, front_sweeps, read_front
    from offtake.report import sweep

    names = front_sweeps(frame)
    if not names:
        return frame.iloc[0:0]
    every = pd.concat([read_front(frame, n).records for n in names], ignore_index=True)
    left, right = st.columns(2)
    name = left.selectbox("Pareto front", names, key="front") if len(names) > 1 else names[0]
    rows = frame[frame["sweep"] == name]
    instances = list(rows["instance"].dropna().unique())
    if len(instances) > 1:
        which = right.selectbox("Instance", instances, key="front_instance")
        rows = rows[rows["instance"] == which]
    hide = st.checkbox("leave dominated points out", value=False, key="front_hide")
    result = read_front(rows, name)
    table = front_frame(result)
    shown = table[~table["dominated"]] if hide else table
    shown.attrs.update(table.attrs)
    cvar = result.metric.name == "cvar"
    intensity = result.metric.name == "emission_intensity"
    words = result.metric.axis() if intensity else result.metric.label + (
        "" if cvar else " (share of demand, worst year)")
    currency = str(rows["currency"].iloc[0]) if "currency" in rows else ""
    figure(sweep.front(shown, words, "expected cost" if cvar else "least cost", currency,
                       share=not cvar, unit="kg/kg" if intensity else None,
                       title=f"{rows['instance'].iloc[0]}: least cost against "
                       f"{result.metric.label}"))
    show(_as_text(shown.drop(columns=["key", "signed"])).rename(columns={
        "metric": result.metric.label, "cost": f"cost ({currency})"}))
    return every


# --- what-if runs ------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def jobs() -> Jobs:
    """The what-if runs of this store (one queue and one executor per server)."""
    return Jobs(STORE, ARGS.executor)


@st.cache_resource(max_entries=8, show_spinner=False)
def _offers(instance: str, stamp: float) -> list[str]:
    from offtake.io.loader import load_instance

    inst = load_instance(instance).instance
    if inst is None:
        return []
    return [o.id for o in inst.offers] + [j.id for f in inst.facilities for j in f.builds]


@st.cache_resource(max_entries=8, show_spinner=False)
def _numbers(instance: str, stamp: float) -> dict[str, dict[str, tuple[str, float]]]:
    from offtake.io.loader import load_instance

    inst = load_instance(instance).instance
    return {} if inst is None else numbers_of(inst)


def _add_change(path: str) -> None:
    """Put 'PATH=VALUE' of the number picked into the changes' box (replacing a line of the
    same path); a button's callback, run before the page is drawn again."""
    line = assignment(path, st.session_state[f"whatif_value:{path}"])
    lines = [x for x in str(st.session_state.get("whatif_sets") or "").splitlines()
             if x.strip() and not x.strip().startswith(f"{path}=")]
    st.session_state["whatif_sets"] = "\n".join([*lines, line])


def _one_number(numbers: dict[str, dict[str, tuple[str, float]]]) -> None:
    """Pick a rule, offer, facility, scenario ... and one of its numbers, see its value in
    the instance, type a new one: the PATH=VALUE line goes into the changes' box below."""
    if not numbers:
        return
    with st.container(border=True):
        st.markdown("**Change one number** (its line goes into the changes below)")
        left, middle, right = st.columns([3, 2, 2])
        item = left.selectbox("Rule, offer, facility, scenario, ...", list(numbers),
                              key="whatif_item")
        fields = numbers[item]
        field = middle.selectbox("Number", list(fields), key=f"whatif_field:{item}")
        path, now = fields[field]
        right.number_input(f"New value (now {now:,.6g})", value=now, format="%g",
                           step=0.05 if abs(now) <= 1 else 10.0 ** (len(str(int(abs(now))))
                                                                    - 2),
                           key=f"whatif_value:{path}")
        st.button("Add to the changes", on_click=_add_change, args=(path,),
                  key="whatif_add")
        st.caption(f"`{path}` is {now:,.6g} in the instance")


def whatif_page() -> None:
    st.title("What-if")
    chosen = pick_run()
    if chosen is None:
        return
    name, folder = chosen
    r = read(folder)
    run_header(name, r)
    folders = [Path(x) for x in ARGS.instances] + [STORE]
    instance = find_instance(r.instance_sha256, folders)
    if instance is None:
        st.warning("The instance file of this run is not in "
                   + ", ".join(str(f) for f in folders) + " (matched by its SHA-256): start "
                   "the dashboard with --instances FOLDER to run what-ifs of it.")
    else:
        st.caption(f"instance {instance}; the base run's own changes and solve options are "
                   "kept")
        jobs().warm()  # the worker starts while the changes are being written
        ids = _offers(str(instance), instance.stat().st_mtime)
        _one_number(_numbers(str(instance), instance.stat().st_mtime))
        with st.form("whatif"):
            text = st.text_area(
                "Changes, one PATH=VALUE a line (as `offtake solve --set`)",
                placeholder="rules.SUPPLIER-CAP-50.max_share=0.7\n"
                            "offers.OFF-MP-IND.price_per_kg.2030=95\n"
                            "scenarios.base.probability=0.4", key="whatif_sets")
            left, right = st.columns(2)
            force = left.multiselect("Force (sign or build)", ids, key="whatif_force")
            forbid = right.multiselect("Forbid", ids, key="whatif_forbid")
            go = st.form_submit_button("Run what-if")
        if go:
            sets = [line.strip() for line in text.splitlines() if line.strip()]
            job = from_base(folder, instance, sets, force, forbid)
            if not job.changes:
                st.warning("No change: write a PATH=VALUE line or pick an ID to force or "
                           "forbid.")
            else:
                findings = findings_of(job)
                if findings:
                    st.error("The what-if was not run: its changes do not hold.")
                    show(tables.findings_frame(findings, "Findings"), small=True)
                else:
                    queued = jobs().submit(job, label=name)
                    st.success(f"queued as {queued}")
    busy = jobs().busy()
    st.fragment(run_every=1.0 if busy else None)(_whatif_runs)(str(folder), busy)


def _whatif_runs(base: str, was_busy: bool) -> None:
    """The what-ifs of this run, newest first: state and time; the chosen one side by side
    with the base. Polled while one is queued or running."""
    records = [rec for rec in jobs().records() if rec["job"]["base"] == base]
    if was_busy and not jobs().busy():
        st.rerun()  # the last one finished: draw the page once more, without polling
    st.subheader("What-if runs of this run")
    if not records:
        st.info("none yet")
        return
    now = time.time()
    for rec in records:
        changes = "; ".join(rec["job"].get("changes") or []) or "-"
        state = rec["state"]
        if state == "running":
            st.info(f"{rec['name']}: running for {now - rec['started']:.0f} s "
                    f"(solve, write, check) · {changes}")
        elif state == "queued":
            st.info(f"{rec['name']}: queued for {now - rec['submitted']:.0f} s · {changes}")
        elif state == "done":
            res = rec.get("result") or {}
            st.write(f"**{rec['name']}**: done in {rec['finished'] - rec['started']:.1f} s, "
                     f"{res.get('status')} · {changes}")
        else:
            st.error(f"{rec['name']}: {state} · {changes}\n\n{rec.get('error', '')}")
    done = [rec for rec in records if rec["state"] == "done"
            and (Path(rec["out"]) / "summary.json").exists()]
    if not done:
        return
    labels = [rec["name"] for rec in done]
    pick = st.selectbox("Compare with the base", labels, key="whatif_pick")
    rec = done[labels.index(pick)]
    _side_by_side(read(Path(base)), read(Path(rec["out"])))


def _side_by_side(base: Results, what: Results) -> None:
    """The base and the what-if: objective and cost by term with their difference, the
    offers signed in one and not the other, both portfolios."""
    st.subheader("Difference to the base")
    money = f"cost ({base.currency})"
    a, b = tables.costs_frame(base), tables.costs_frame(what)
    both = a[["term", money]].merge(b[["term", money]], on="term", how="outer",
                                    suffixes=(" base", " what-if"), sort=False).fillna(0.0)
    both[f"difference ({base.currency})"] = both[f"{money} what-if"] - both[f"{money} base"]
    both = both[(both[[f"{money} base", f"{money} what-if"]].abs() > 0.5).any(axis=1)]
    head = pd.DataFrame({"term": ["status", "objective"],
                         f"{money} base": [base.status, base.objective],
                         f"{money} what-if": [what.status, what.objective],
                         f"difference ({base.currency})": [
                             "", None if base.objective is None or what.objective is None
                             else what.objective - base.objective]})
    diff = pd.concat([head.astype(object), both.astype(object)], ignore_index=True)
    st.table(_display(diff).set_index("term"))
    signed = []
    for r in (base, what):
        c = tables.contracts_frame(r)
        signed.append(set(c["offer"]) if not c.empty else set())
    st.write("Signed only in the what-if: " + (", ".join(sorted(signed[1] - signed[0])) or
                                               "none") +
             " · only in the base: " + (", ".join(sorted(signed[0] - signed[1])) or "none"))
    left, right = st.columns(2)
    with left:
        st.caption("base")
        figure(plots.portfolio(tables.plan_frame(base)))
    with right:
        st.caption("what-if")
        figure(plots.portfolio(tables.plan_frame(what)))


PAGES = [
    st.Page(portfolio_page, title="Portfolio", url_path="portfolio", default=True),
    st.Page(costs_page, title="Costs", url_path="costs"),
    st.Page(custody_page, title="Chain of custody", url_path="custody"),
    st.Page(rules_page, title="Rules", url_path="rules"),
    st.Page(scenarios_page, title="Scenarios", url_path="scenarios"),
    st.Page(sweeps_page, title="Sweeps", url_path="sweeps"),
    st.Page(consortium_page, title="Consortium", url_path="consortium"),
    st.Page(whatif_page, title="What-if", url_path="whatif"),
]


def main() -> None:
    st.set_page_config(page_title="offtake dashboard", layout="wide")
    nav = st.navigation(PAGES)
    st.sidebar.caption(f"store: {STORE}")
    nav.run()


main()
