"""Typed results: the status, objective, bound and gap, the cost by registered term, and tidy
tables, with metadata (instance hash, solver version, options, timings).

Built once from the instance, the derived data, the variable values the model layer hands
over, and the solver outcome; written to and read back from an output folder (CSV + JSON).
Reports, the checker and the CLI read only this. Never touches Pyomo.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from offtake.domain.network import at
from offtake.domain.origin import STAGE_ORDER, steps
from offtake.domain.registry import RULE_KINDS, count_kinds
from offtake.domain.risk import summary
from offtake.domain.schema import Instance
from offtake.formulation.data import EXPECTED, FIRST_STAGE_ROW, KG_PER_T, ModelData
from offtake.results.buyer_costs import split_by_buyer
from offtake.results.concentration import COLUMNS as CONCENTRATION_COLUMNS
from offtake.results.concentration import concentration_table
from offtake.results.emissions import COLUMNS as EMISSION_COLUMNS
from offtake.results.emissions import emission_table, source_factors
from offtake.results.folder import remove_derived, write_frame, write_text, writing
from offtake.results.stockpiles import COLUMNS as STOCKPILE_COLUMNS
from offtake.results.stockpiles import FISCAL_TERM as STOCKPILE_FISCAL
from offtake.results.stockpiles import fiscal_stockpile, stockpile_tables
from offtake.solvers.options import SolveOutcome

ZERO = 1e-9
TABLE_COLUMNS: dict[str, list[str]] = {
    "offers": ["offer_id", "supplier", "material", "signed", "start_year", "signing_cost",
               "prepayment", "signing_year"],
    "contracts": ["offer_id", "supplier", "company", "material", "buyer", "year", "scenario",
                  "signed", "volume_t", "delivered_t", "shortfall_t", "price_per_kg",
                  "price_term", "tier", "payment", "shortfall_payment", "tariff_rate", "tariff",
                  "fiscal_payer", "fiscal_per_kg", "fiscal_cost", "tag", "curtailed_t",
                  "damages"],
    "tiers": ["offer_id", "year", "scenario", "tier", "volume_t", "discount", "price_per_kg",
              "rebate"],
    "credits": ["offer_id", "year", "scenario", "credit"],
    "resale": ["buyer", "market", "material", "year", "scenario", "volume_t", "price_per_kg",
               "credit"],
    "stock": ["buyer", "material", "year", "scenario", "stock_t", "holding_cost_per_kg",
              "holding_cost"],
    "flows": ["buyer", "from_node", "to_node", "material", "tag", "year", "scenario", "flow_t",
              "freight_per_kg", "freight_cost"],
    "production": ["facility", "buyer", "inputs", "tag", "year", "scenario", "production_t",
                   "opex_per_kg", "opex_cost"],
    "spot": ["market", "material", "origin", "tag", "buyer", "to_node", "year", "scenario",
             "volume_t", "price_per_kg", "cost", "tariff_rate", "tariff"],
    "unmet": ["buyer", "material", "year", "scenario", "demand_t", "delivered_t", "unmet_t",
              "penalty_per_kg", "penalty"],
    "origin": ["buyer", "material", "year", "scenario", "stage", "country", "tonnes", "share"],
    "emissions": EMISSION_COLUMNS,
    "concentration": CONCENTRATION_COLUMNS,
    "builds": ["build_id", "facility", "built", "start_year", "nameplate_t", "cost",
               "cost_year", "paid_by", "in_objective"],
    "costs": ["term", "value", "payer", "in_objective", "buyer"],
    "scenario_costs": ["scenario", "probability", "term", "value"],
    "rules": ["rule_id", "kind", "row", "year", "scenario", "sense", "lhs", "bound", "slack",
              "violation", "binding", "hard", "unit", "share", "share_bound", "base_t",
              "shadow_price", "shadow_price_per_pp", "dual_basis"],
    **STOCKPILE_COLUMNS,
}
ID_COLUMNS = {"offer_id", "supplier", "company", "material", "buyer", "from_node", "to_node",
              "scenario", "facility", "market", "origin", "term", "rule_id", "kind", "tag",
              "inputs", "row", "stage", "country", "sense", "unit", "dual_basis", "price_term",
              "fiscal_payer", "payer", "build_id", "paid_by", "group", "over", "largest"}
ID_COLUMNS |= {"stockpile", "holder"}


@dataclass
class Results:
    status: str
    objective: float | None
    bound: float | None
    mip_gap: float | None
    currency: str
    solver: str
    solver_version: str
    build_seconds: float
    solve_seconds: float
    instance_name: str
    instance_sha256: str
    model_size: dict[str, int] | None
    message: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    violations: int | None = None
    """Count of the independent checker's violations (None until checked)."""
    risk: dict[str, Any] = field(default_factory=dict)
    """Distribution of the scenario cost: mean, std, VaR and CVaR at alpha, best, worst."""
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    plan: dict[str, dict] = field(default_factory=dict)
    """The portfolio (first-stage values by variable and index), written as plan.json so that
    `offtake evaluate` can price it under another scenario set."""
    timings: dict[str, float] = field(default_factory=dict)
    """Wall seconds by stage (data, build, handover, solve, duals, results; load, check and
    write when run from a file)."""

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible")

    def cost_terms(self) -> dict[str, float]:
        costs = self.tables.get("costs")
        if costs is None or costs.empty:
            return {}
        if "in_objective" in costs:
            costs = costs[costs["in_objective"].astype(str) == "True"]
        out: dict[str, float] = {}  # one row per (term, buyer): the term is their sum
        for term, value in zip(costs["term"], costs["value"].astype(float), strict=True):
            out[term] = out.get(term, 0.0) + value
        return out

    def buyer_costs(self) -> dict[str, dict[str, float]]:
        """buyer -> cost term -> what the buyer pays of it (expected, discounted); the
        buyers' terms sum to the objective (without a risk term). Empty for folders written
        before costs.csv had a `buyer` column."""
        costs = self.tables.get("costs")
        if costs is None or costs.empty or "buyer" not in costs:
            return {}
        mine = costs[(costs["in_objective"].astype(str) == "True")
                     & (costs["buyer"].fillna("").astype(str) != "")]
        out: dict[str, dict[str, float]] = {}
        for term, b, value in zip(mine["term"], mine["buyer"], mine["value"].astype(float),
                                  strict=True):
            out.setdefault(str(b), {})[term] = value
        return out

    def fiscal_costs(self) -> dict[str, float]:
        """Third-party cost per payer (floor top-ups net of upside), not in the objective."""
        costs = self.tables.get("costs")
        if costs is None or costs.empty or "in_objective" not in costs:
            return {}
        third = costs[costs["in_objective"].astype(str) != "True"]
        out: dict[str, float] = {}
        for payer, value in zip(third["payer"], third["value"].astype(float), strict=True):
            out[payer] = out.get(payer, 0.0) + value
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "mip_gap": self.mip_gap,
            "currency": self.currency,
            "solver": self.solver,
            "solver_version": self.solver_version,
            "build_seconds": self.build_seconds,
            "solve_seconds": self.solve_seconds,
            "violations": self.violations,
            "instance_name": self.instance_name,
            "instance_sha256": self.instance_sha256,
            "model_size": self.model_size,
            "message": self.message,
            "options": self.options,
            "relaxed_rules": self.options.get("relaxed_rules", []),
            "risk": self.risk,
            "cost_terms": self.cost_terms(),
            "timings": self.timings,
        }

    def write(self, out_dir: str | Path) -> Path:
        """The output folder: tables, summary.json and plan.json, under the folder's lock,
        marked complete last (`offtake.results.folder`)."""
        with writing(out_dir) as out:
            self.write_files(out)
        return Path(out_dir)

    def write_files(self, out: Path) -> None:
        """The tables, summary.json and plan.json into a folder the caller holds, each file
        replaced whole; tables, a plan and the views (results.xlsx, the HTML report) of an
        older run are removed."""
        remove_derived(out)
        for name in TABLE_COLUMNS:
            stale = out / f"{name}.csv"
            if stale.exists() and name not in self.tables:
                stale.unlink()  # never leave an older run's plan beside a new summary
        for name, frame in self.tables.items():
            write_frame(out / f"{name}.csv", frame)
        self.write_summary(out)
        plan = out / "plan.json"
        if self.plan:
            write_text(plan, json.dumps(plan_to_json(self.plan), indent=1) + "\n")
        elif plan.exists():
            plan.unlink()

    def write_summary(self, out_dir: str | Path) -> None:
        """summary.json alone (after the checker has counted its violations)."""
        write_text(Path(out_dir) / "summary.json", json.dumps(self.summary(), indent=2) + "\n")

    @classmethod
    def read(cls, out_dir: str | Path) -> Results:
        out = Path(out_dir)
        s = json.loads((out / "summary.json").read_text())
        tables = {name: read_table(out / f"{name}.csv") for name in TABLE_COLUMNS
                  if (out / f"{name}.csv").exists()}
        keys = cls.__dataclass_fields__.keys() - {"tables", "plan"}
        plan = read_plan(out / "plan.json") if (out / "plan.json").exists() else {}
        return cls(**{k: s.get(k) for k in keys if k in s}, tables=tables, plan=plan)


def plan_to_json(plan: dict[str, dict]) -> dict[str, list]:
    """{variable: [{"index": [...], "value": x}, ...]}; indexes as lists, values as floats."""
    return {name: [{"index": list(k) if isinstance(k, tuple) else [k], "value": float(v or 0.0)}
                   for k, v in values.items()] for name, values in plan.items()}


def write_plan(path: Path, plan: dict[str, dict]) -> None:
    """plan.json, read back by `read_plan`."""
    Path(path).write_text(json.dumps(plan_to_json(plan), indent=1) + "\n")


def read_plan(path: Path) -> dict[str, dict]:
    """The inverse of `plan_to_json`; a clear ValueError naming the file and entry when the
    file is not a plan."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable plan file ({exc})") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a plan is an object of variables, got {type(raw).__name__}")
    plan: dict[str, dict] = {}
    for name, rows in raw.items():
        if not isinstance(rows, list):
            raise ValueError(f"{path}: {name}: expected a list of index/value entries")
        out = plan[name] = {}
        for i, row in enumerate(rows):
            if (not isinstance(row, dict) or not isinstance(row.get("index"), list)
                    or not isinstance(row.get("value"), int | float)
                    or isinstance(row.get("value"), bool)):
                raise ValueError(f"{path}: {name}[{i}]: expected {{'index': [...], "
                                 f"'value': number}}, got {row!r}")
            idx = row["index"]
            out[tuple(idx) if len(idx) > 1 else idx[0]] = float(row["value"])
    return plan


def read_table(path: Path) -> pd.DataFrame:
    """Read a result CSV keeping IDs as written ('NA' is Namibia, '007' stays '007')."""
    head = pd.read_csv(path, nrows=0)
    dtypes = {c: str for c in head.columns if c in ID_COLUMNS}
    return pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""])


def assemble(
    inst: Instance,
    d: ModelData,
    outcome: SolveOutcome,
    values: dict[str, pd.DataFrame] | None,
    *,
    build_seconds: float,
    sha256: str = "",
    options: dict[str, Any] | None = None,
) -> Results:
    """Results from the solver outcome and (when a solution exists) the variable values."""
    res = Results(
        status=outcome.status,
        objective=outcome.objective,
        bound=outcome.bound,
        mip_gap=outcome.mip_gap,
        currency=inst.meta.currency,
        solver=outcome.solver,
        solver_version=outcome.solver_version,
        build_seconds=build_seconds,
        solve_seconds=outcome.solve_seconds,
        instance_name=inst.meta.name,
        instance_sha256=sha256,
        model_size=None if outcome.size is None else dict(vars(outcome.size)),
        message=outcome.message,
        options=options or {},
    )
    if values is not None and outcome.has_solution:
        res.tables = _tables(inst, d, values)
        totals = res.tables["scenario_costs"].groupby("scenario", sort=False)["value"].sum()
        res.risk = summary([float(totals[s]) for s in d.SCENARIOS],
                           [d.probability[s] for s in d.SCENARIOS], d.cvar_alpha)
        res.risk["cvar_weight"] = d.cvar_weight
    return res


def _clean(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame[col].abs() < ZERO, col] = 0.0
    return frame


def _tables(inst: Instance, d: ModelData, v: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    offers = {o.id: o for o in inst.offers}
    facs = {f.id: f for f in inst.facilities}
    spots = {k.id: k for k in inst.spot_markets}
    signed = dict(zip(v["signed"]["offer_id"], v["signed"]["signed"], strict=True))

    started = {o: int(y0) for o, y0, x in v["start"].itertuples(index=False) if x > 0.5}
    offer_rows = pd.DataFrame(
        [(o, d.offer_supplier[o], d.offer_material[o], signed[o],
          started.get(o, offers[o].first_year if signed[o] else None),
          d.offer_signing_cost[o], d.offer_prepayment[o],
          started.get(o, d.offer_signing_year[o])) for o in d.OFFERS],
        columns=TABLE_COLUMNS["offers"])
    offer_rows["start_year"] = offer_rows["start_year"].astype("Int64")
    c = _contract_rows(d, v, facs, signed)

    f = _clean(v["flows"], "flow_t")
    f = f[f["flow_t"] > 0].reset_index(drop=True)
    arc = list(zip(f["from_node"], f["to_node"], strict=True))
    f["material"] = [d.arc_material[a] for a in arc]
    f["freight_per_kg"] = [d.freight_per_t[a] / KG_PER_T for a in arc]
    f["freight_cost"] = f["flow_t"] * f["freight_per_kg"] * KG_PER_T

    p = _clean(v["production"], "production_t")
    p = p[p["production_t"] > 0].reset_index(drop=True)
    p["tag"] = [d.combo_output[x, cmb] for x, cmb in zip(p["facility"], p["combo"], strict=True)]
    p = p.rename(columns={"combo": "inputs"})
    p["opex_per_kg"] = [at(facs[x].opex_per_kg, y) for x, y in zip(p["facility"], p["year"],
                                                                  strict=True)]
    p["opex_cost"] = p["production_t"] * p["opex_per_kg"] * KG_PER_T

    s = f[f["from_node"].isin(spots)].rename(columns={"from_node": "market", "flow_t": "volume_t"})
    s["origin"] = s["market"].map(lambda k: spots[k].origin)
    s["price_per_kg"] = [d.spot_price_per_t[k, y, sc] / KG_PER_T for k, y, sc in zip(
        s["market"], s["year"], s["scenario"], strict=True)]
    s["cost"] = s["volume_t"] * s["price_per_kg"] * KG_PER_T
    s["tariff_rate"] = [d.spot_tariff_rate[k, b, y] for k, b, y in zip(
        s["market"], s["buyer"], s["year"], strict=True)]
    s["tariff"] = s["tariff_rate"] * s["cost"]

    arrived = f[f["to_node"] == f["buyer"]]
    u = _clean(v["unmet"], "unmet_t")
    arrivals = arrived.groupby(["buyer", "material", "year", "scenario"])["flow_t"].sum()
    keys = list(zip(u["buyer"], u["material"], u["year"], u["scenario"], strict=True))
    u["demand_t"] = [d.demand_t[k] for k in keys]
    u["delivered_t"] = [float(arrivals.get(k, 0.0)) for k in keys]
    u["penalty_per_kg"] = u["material"].map(lambda mat: d.unmet_penalty_per_t[mat] / KG_PER_T)
    u["penalty"] = u["unmet_t"] * u["penalty_per_kg"] * KG_PER_T

    tables = {
        "offers": offer_rows,
        "contracts": c[TABLE_COLUMNS["contracts"]],
        "flows": f[TABLE_COLUMNS["flows"]],
        "production": p[TABLE_COLUMNS["production"]],
        "spot": s[TABLE_COLUMNS["spot"]].reset_index(drop=True),
        "unmet": u[TABLE_COLUMNS["unmet"]],
        "origin": origin_table(arrived),
        "emissions": emission_table(d, source_factors(inst), f, p, c),
        "concentration": concentration_table(inst, c, p, s, f),
        "builds": _build_rows(inst, d, v),
        "scenario_costs": v["scenario_costs"].assign(
            probability=v["scenario_costs"]["scenario"].map(d.probability))[
            TABLE_COLUMNS["scenario_costs"]],
        "tiers": _tier_rows(d, v),
        "credits": v["credit"][v["credit"]["credit"] > 0][TABLE_COLUMNS["credits"]],
        "resale": _resale_rows(d, v),
        "stock": _stock_rows(d, v),
        "rules": pd.concat([_count_rule_rows(inst, d, signed, v), _share_rule_rows(inst, d, v)],
                           ignore_index=True)[TABLE_COLUMNS["rules"]],
    }
    tables.update(stockpile_tables(d, v, tables["flows"]))
    tables["costs"] = _cost_rows(inst, d, v, tables)
    return tables


def origin_table(arrived: pd.DataFrame) -> pd.DataFrame:
    """Tonnes delivered to each buyer with a step at each (stage, country), and their share of
    the buyer's deliveries of that material in that year and scenario. A tonne whose inputs
    passed one stage in two countries counts for both (shares at a stage can sum above 1)."""
    keys = ["buyer", "material", "year", "scenario"]
    rows = []
    for (b, mat, y, sc), grp in arrived.groupby(keys):
        total = grp["flow_t"].sum()
        by_step: dict[tuple[str, str], float] = {}
        for tag, tonnes in grp.groupby("tag")["flow_t"].sum().items():
            for step in steps(str(tag)):
                by_step[step] = by_step.get(step, 0.0) + tonnes
        for (stage, country), tonnes in sorted(by_step.items(),
                                               key=lambda kv: (STAGE_ORDER[kv[0][0]], kv[0][1])):
            rows.append((b, mat, y, sc, stage, country, tonnes, tonnes / total))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["origin"])


def _count_rule_rows(inst: Instance, d: ModelData, signed: dict[str, int],
                     v: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per supplier-count rule: lhs = distinct supplier units with a signed offer."""
    units: dict[str, set[str]] = {}
    for rule_id, unit, o in d.RULE_SUPPLIER_OFFERS:
        if signed.get(o):
            units.setdefault(rule_id, set()).add(unit)
    viol = dict(zip(v["count_violation"]["rule_id"], v["count_violation"]["violation"],
                    strict=True))
    duals = _duals(v)
    rows = []
    for rule in inst.rules:
        if rule.kind not in count_kinds():
            continue
        lhs = float(len(units.get(rule.id, ())))
        bound = float(d.rule_count_bound[rule.id])
        sense = RULE_KINDS[rule.kind].sense
        slack = bound - lhs if sense == "le" else lhs - bound
        price, basis = duals.get((rule.id, ""), (None, ""))
        rows.append(dict(rule_id=rule.id, kind=rule.kind, row="", year=None, scenario="",
                         sense=sense, lhs=lhs,
                         bound=bound, slack=slack, violation=max(0.0, viol.get(rule.id, 0.0)),
                         binding=abs(slack) < ZERO, hard=rule.hard, unit="suppliers",
                         shadow_price=price, dual_basis=basis))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["rules"])


def _duals(v: dict[str, pd.DataFrame]) -> dict[tuple[str, str], tuple[float | None, str]]:
    """(row, scenario) -> (shadow price, how it was obtained), when duals were computed."""
    frame = v.get("rule_duals")
    if frame is None or frame.empty:
        return {}
    return {(r, s): (float(x), b) for r, s, x, b in zip(
        frame["row_id"], frame["scenario"], frame["shadow_price"], frame["basis"], strict=True)}


def _share_rule_rows(inst: Instance, d: ModelData, v: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (rule row, scenario): the linear form in tonnes, the share achieved and
    its bound, and the shadow price per tonne and per percentage point."""
    hard = {r.id: r.hard for r in inst.rules}
    rows = {row.row_id: row for kind_rows in d.rule_rows.values() for row in kind_rows}
    viol = {(r, s): x for r, s, x in zip(v["row_violation"]["row_id"],
                                         v["row_violation"]["scenario"],
                                         v["row_violation"]["violation"], strict=True)}
    duals = _duals(v)
    out = []
    for rid, sc, num, den in v["rule_rows"].itertuples(index=False):
        row = rows[rid]
        weights = d.probability if sc in (EXPECTED, FIRST_STAGE_ROW) else {sc: 1.0}
        demand = sum(w * row.demand_t.get(x, 0.0) for x, w in weights.items())
        rhs = sum(w * row.rhs[x] for x, w in weights.items())
        of_demand = bool(row.demand_t)
        base = demand if of_demand else den
        bound = rhs + row.share * den  # num - share x den (sense) rhs, as num (sense) bound
        slack = bound - num if row.sense == "le" else num - bound
        price, basis = duals.get((rid, sc), (None, ""))
        if price is not None and abs(price) < ZERO:
            price = 0.0  # no "-0" in reports
        tight = abs(slack) < 1e-6
        out.append(dict(
            rule_id=row.rule, kind=row.kind, row=row.label, year=row.year, scenario=sc,
            sense=row.sense, lhs=num, bound=bound, slack=slack,
            violation=max(0.0, viol.get((rid, sc), 0.0)),
            # tight and meaningful: a row reading 0 <= 0 with no price binds nothing
            binding=tight and (num > 1e-6 or bound > 1e-6 or bool(price)),
            hard=hard[row.rule], unit="t",
            share=(num / base) if base > 0 else None,
            share_bound=row.share, base_t=base,
            shadow_price=price,
            shadow_price_per_pp=None if price is None else price * 0.01 * base,
            dual_basis=basis))
    return pd.DataFrame(out, columns=TABLE_COLUMNS["rules"])


def _contract_rows(d: ModelData, v: dict[str, pd.DataFrame], facs: dict,
                   signed: dict[str, int]) -> pd.DataFrame:
    """One row per (offer, buyer, year, scenario): committed and delivered tonnes, the unit
    price and the term that set it, the active tier, payments, tariff and fiscal cost."""
    vol = {(o, b, y): q for o, b, y, q in _clean(v["volume"], "volume_t").itertuples(index=False)}
    dlv = {k[:4]: k[4] for k in v["delivered"].itertuples(index=False)}
    short = {k[:4]: k[4] for k in v["shortfall"].itertuples(index=False)}
    tiers = {(o, p): str(k) for o, p, k, x in v["tier_choice"].itertuples(index=False) if x > 0.5}
    rows = []
    for (o, b, y), q in vol.items():
        for s in d.SCENARIOS:
            price = d.offer_price_per_t[o, y, s] / KG_PER_T
            got = dlv.get((o, b, y, s), q)
            sf = short.get((o, b, y, s), 0.0)
            fiscal = d.offer_fiscal_per_t[o, y, s] / KG_PER_T
            rate = d.contract_tariff_rate[o, b, y]
            rows.append(dict(
                offer_id=o, supplier=d.offer_supplier[o],
                company=facs[d.offer_supplier[o]].company, material=d.offer_material[o],
                buyer=b, year=y, scenario=s, signed=signed[o], volume_t=q, delivered_t=got,
                shortfall_t=sf, price_per_kg=price, price_term=d.offer_price_term[o, y, s],
                tier=tiers.get((o, y), tiers.get((o, 0), "")), payment=price * got * KG_PER_T,
                shortfall_payment=d.offer_shortfall_fraction[o] * price * sf * KG_PER_T,
                tariff_rate=rate, tariff=rate * price * got * KG_PER_T,
                fiscal_payer=d.offer_payer.get(o, ""), fiscal_per_kg=fiscal,
                fiscal_cost=fiscal * got * KG_PER_T, tag=d.offer_tag[o],
                curtailed_t=(1.0 - d.offer_available_share.get((o, y, s), 1.0)) * q,
                damages=d.offer_damages_per_t.get((o, y, s), 0.0) * q))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["contracts"])


def _tier_rows(d: ModelData, v: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for o, y, k, vol in v["tier_volume"].itertuples(index=False):
        if vol <= ZERO:
            continue
        for s in d.SCENARIOS:
            price = d.offer_price_per_t[o, y, s] / KG_PER_T
            disc = d.tier_discount[o, k]
            rows.append((o, y, s, k, vol, disc, price, price * disc * vol * KG_PER_T))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["tiers"])


def _resale_rows(d: ModelData, v: dict[str, pd.DataFrame]) -> pd.DataFrame:
    r = v["resale"][v["resale"]["volume_t"] > ZERO].copy()
    r["material"] = r["market"].map(d.spot_material)
    r["price_per_kg"] = [d.resale_price_per_t[k, y, sc] / KG_PER_T
                         for k, y, sc in zip(r["market"], r["year"], r["scenario"], strict=True)]
    r["credit"] = r["volume_t"] * r["price_per_kg"] * KG_PER_T
    return r[TABLE_COLUMNS["resale"]]


def _stock_rows(d: ModelData, v: dict[str, pd.DataFrame]) -> pd.DataFrame:
    st = v["stock"][v["stock"]["stock_t"] > ZERO].copy()
    st["holding_cost_per_kg"] = st["material"].map(lambda k: d.holding_cost_per_t[k] / KG_PER_T)
    st["holding_cost"] = st["stock_t"] * st["holding_cost_per_kg"] * KG_PER_T
    return st[TABLE_COLUMNS["stock"]]


def _cost_rows(inst: Instance, d: ModelData, v: dict[str, pd.DataFrame],
               tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each registered cost term split by buyer (in the objective: a term is the sum of its
    rows; `results.buyer_costs`), the risk term, then each third party's fiscal cost (floor
    top-ups net of upside, build costs it pays), discounted and expected, outside the
    objective."""
    c = tables["contracts"]
    split = split_by_buyer(inst, d, v, tables)
    rows: list[tuple] = []
    for t, x in zip(v["costs"]["term"], v["costs"]["value"], strict=True):
        shares = _exactly(t, float(x), split[t])
        rows += [(t, shares[b], "buyer", True, b) for b in d.BUYERS]
    if d.cvar_weight > 0:
        rows.append(("risk_cvar", float(v["risk"]["cost_risk"].iloc[0]), "risk", True, ""))
    fiscal: dict[str, float] = {}
    for payer, y, s, cost in zip(c["fiscal_payer"], c["year"], c["scenario"], c["fiscal_cost"],
                                 strict=True):
        if payer:
            fiscal[payer] = fiscal.get(payer, 0.0) + d.probability[s] * d.discount[y] * cost
    rows += [("fiscal_floor_support", x, payer, False, "")
             for payer, x in sorted(fiscal.items())]
    built = dict(zip(v["built"]["build_id"], v["built"]["built"], strict=True))
    support: dict[str, float] = {}
    for j, payer in d.build_government.items():
        support[payer] = support.get(payer, 0.0) + (
            d.discount[d.build_cost_year[j]] * d.build_cost[j] * round(built.get(j, 0.0)))
    rows += [("fiscal_build_support", x, payer, False, "")
             for payer, x in sorted(support.items())]
    rows += [(STOCKPILE_FISCAL, x, payer, False, "")
             for payer, x in sorted(fiscal_stockpile(d, tables).items())]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["costs"])


def _exactly(term: str, total: float, shares: dict[str, float]) -> dict[str, float]:
    """The buyers' shares of a term adjusted to sum to the model's value of the term: the
    rounding difference (|difference| <= 1e-6 relative; more is a bug, raised) goes to the
    largest share."""
    gap = total - sum(shares.values())
    if abs(gap) > 1e-6 * max(1.0, abs(total)):
        raise RuntimeError(f"cost term {term}: the buyers' shares sum to "
                           f"{sum(shares.values()):.10g}, the model's term is {total:.10g}")
    out = dict(shares)
    if out and gap:
        top = max(out, key=lambda b: abs(out[b]))
        out[top] += gap
    return out


def _build_rows(inst: Instance, d: ModelData, v: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per build option modelled: built or not, first year of operation, nameplate,
    cost, the year it is paid, who pays it and whether that is in the objective."""
    built = dict(zip(v["built"]["build_id"], v["built"]["built"], strict=True))
    paid_by = {j.id: j.paid_by for f in inst.facilities for j in f.builds}
    nameplate = {j.id: j.nameplate_t for f in inst.facilities for j in f.builds}
    rows = [(j, d.build_facility[j], int(round(built.get(j, 0.0))), d.build_start[j],
             nameplate[j], d.build_cost[j], d.build_cost_year[j], paid_by[j],
             d.build_paid_by_buyers[j]) for j in d.BUILDS]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["builds"])
