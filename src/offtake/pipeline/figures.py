"""Key figures of one solved model, read straight from the model's values (no result tables):
what a sweep or a Pareto front records for each point.

* the cost by registered term (expected) and in each scenario, and its distribution (mean,
  VaR, CVaR, worst), from the objective's own expressions (`cost_<term>`,
  `scenario_term_cost`);
* third parties' fiscal cost per payer, expected and in each scenario: floor support (the
  `fiscal_floor_support` rows of `costs.csv`, from the `delivered` expression) plus the
  government-paid builds (`fiscal_build_support`, the same in every scenario) and the
  stockpiles a government holds (`fiscal_stockpile`);
* the objective per buyer, directly: each cost term's linear form split by the buyer its
  variables are indexed by; what no single buyer's variable carries (signing, prepayments,
  rebates, credits, supplier counts, builds) is `shared`, not split (`costs.csv` splits
  those items by the rule of formulation.md, "Cost per buyer", from the result tables);
* content: of the tonnes delivered of each material (expected, all buyers and years), the
  share with a step at each (stage, country), and the recycled share (a RECYCLE step), as
  `origin.csv` counts them;
* the shares the rules read: for each share rule, the lowest and the highest share over its
  rows (share of demand or of the rule's base, as `rules.csv` reports it);
* emissions (formulation.md, Emissions and concentration): each buyer's expected t CO2e
  (E_bts over the years), and the concentration of supply: for each material, stage and
  `over` (country or company), the HHI and the largest share of all buyers' supply in a year
  and scenario, averaged with the weights pi_s x tonnes (as `concentration.csv`'s pooled
  rows, or its one buyer's);
* the signed offers and built plants.

Used by `pipeline.solve.WarmSolver` (and so by sweeps); must not build result tables, write
files or call the solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyomo.core as pyo
from pyomo.repn.standard_repn import generate_standard_repn

from offtake.domain.origin import steps
from offtake.domain.registry import COST_TERMS
from offtake.domain.risk import summary
from offtake.formulation.data import EXPECTED, ModelData
from offtake.formulation.emissions import emission_values
from offtake.formulation.expressions import delivered
from offtake.formulation.rules import row_form, row_scenarios
from offtake.formulation.stockpiles import government_costs
from offtake.results.concentration import release_source

SHARED = "shared"
"""The `buyer_cost` entry for costs that no single buyer's variable carries."""
RECYCLE = "RECYCLE"


@dataclass(frozen=True)
class KeyFigures:
    """Plain numbers (picklable, no Pyomo): see the module's docstring. Money is discounted,
    in the instance's currency; shares are fractions."""

    cost_terms: dict[str, float]
    """Expected cost by registered term (they sum to the objective without risk)."""
    scenario_costs: dict[str, float]
    """Total cost in each scenario."""
    risk: dict[str, float]
    """mean, std, var, cvar, best, worst and alpha of the scenario cost."""
    fiscal: dict[str, float]
    """Payer -> expected fiscal cost (floor support and builds) outside the objective."""
    fiscal_by_scenario: dict[tuple[str, str], float]
    """(payer, scenario) -> fiscal cost in that scenario."""
    buyer_cost: dict[str, float]
    """Buyer (or `shared`) -> expected cost its own variables carry; they sum to the cost
    terms' total."""
    content: dict[tuple[str, str, str], float]
    """(material, stage, country) -> share of the material's delivered tonnes with that step."""
    recycled: dict[str, float]
    """Material -> share of its delivered tonnes with a RECYCLE step."""
    delivered_t: dict[str, float]
    """Material -> expected tonnes delivered to buyers (all years)."""
    rule_shares: dict[str, tuple[float | None, float | None]]
    """Share rule -> (lowest, highest) share over its rows (None: no row with a base)."""
    rule_senses: dict[str, str] = field(default_factory=dict)
    """Share rule -> 'le' (a cap: its highest share binds) or 'ge' (a floor: its lowest)."""
    signed: tuple[str, ...] = ()
    built: tuple[str, ...] = ()
    emissions_t: dict[str, float] = field(default_factory=dict)
    """Buyer -> expected t CO2e of what it receives (all years)."""
    concentration: dict[tuple[str, str, str], tuple[float, float]] = field(
        default_factory=dict)
    """(material, stage, over) -> (HHI, largest share) of all buyers' supply, weighted mean
    over years and scenarios (weights pi_s x tonnes)."""

    def rule_share(self, rule_id: str) -> float | None:
        """The share of the rule's binding side: the highest for a cap, the lowest for a
        floor."""
        low, high = self.rule_shares[rule_id]
        return high if self.rule_senses.get(rule_id) == "le" else low


def key_figures(m: pyo.ConcreteModel, d: ModelData, plan: dict[str, dict]) -> KeyFigures:
    """The key figures of `m` (solved, values loaded), built from `d`; `plan` is its
    first-stage values (`first_stage_values`)."""
    scen = {s: sum(pyo.value(m.scenario_term_cost[n, s]) for n in COST_TERMS)
            for s in d.SCENARIOS}
    risk = summary([scen[s] for s in d.SCENARIOS], [d.probability[s] for s in d.SCENARIOS],
                   d.cvar_alpha)
    fiscal, by_scenario = _fiscal(m, d)
    content, recycled, tonnes = _content(m, d)
    shares, senses = _rule_shares(m, d)
    return KeyFigures(
        cost_terms={n: float(pyo.value(getattr(m, f"cost_{n}"))) for n in COST_TERMS},
        scenario_costs=scen, risk=risk, fiscal=fiscal, fiscal_by_scenario=by_scenario,
        buyer_cost=_buyer_cost(m, d), content=content, recycled=recycled,
        delivered_t=tonnes, rule_shares=shares, rule_senses=senses,
        signed=tuple(o for o, x in plan.get("v_signed", {}).items() if round(x or 0) == 1),
        built=tuple(str(j) for j, x in plan.get("v_built", {}).items() if round(x or 0) == 1),
        emissions_t=_emissions(m, d), concentration=_concentration(m, d))


def _emissions(m: pyo.ConcreteModel, d: ModelData) -> dict[str, float]:
    """Buyer -> sum over years and scenarios of pi_s E_bts."""
    out = dict.fromkeys(d.BUYERS, 0.0)
    for (b, _, s), x in emission_values(m, d).items():
        out[b] += d.probability[s] * x
    return out


def _concentration(m: pyo.ConcreteModel, d: ModelData
                   ) -> dict[tuple[str, str, str], tuple[float, float]]:
    """HHI and largest share of all buyers' supply by (material, stage, over), per year and
    scenario, then their pi_s x tonnes weighted mean."""
    units: dict[tuple, dict[str, float]] = {}

    def add(unit: tuple[str, str, str, str], y: int, s: str, x: float) -> None:
        if x <= 1e-9:
            return
        mat, stage, country, company = unit
        for over, name in (("country", country), ("company", company)):
            by = units.setdefault((mat, stage, over, y, s), {})
            by[name] = by.get(name, 0.0) + x

    for o, b, y in m.OFFER_BUYER_YEARS:
        for s in d.SCENARIOS:
            add(d.supply_unit[d.offer_supplier[o]], y, s, pyo.value(delivered(m, o, b, y, s)))
    for f, _b, _c, y, s in m.PRODUCTIONS:
        add(d.supply_unit[f], y, s, m.v_production_t[f, _b, _c, y, s].value or 0.0)
    spots, stocks = set(d.SPOTS), set(d.STOCKPILES)
    for _b, i, _j, _t, y, s in m.FLOWS:
        if i in spots:
            add(d.supply_unit[i], y, s, m.v_flow_t[_b, i, _j, _t, y, s].value or 0.0)
        elif i in stocks:  # a release: supply at the last stage of its tag
            stage, countries = release_source(_t)
            x = (m.v_flow_t[_b, i, _j, _t, y, s].value or 0.0) / len(countries)
            for country in countries:
                add((d.arc_material[i, _j], stage, country, f"stockpile:{i}"), y, s, x)
    acc: dict[tuple[str, str, str], list[float]] = {}
    for (mat, stage, over, _, s), by in units.items():
        total = sum(by.values())
        w = d.probability[s] * total
        a = acc.setdefault((mat, stage, over), [0.0, 0.0, 0.0])
        a[0] += w * sum((x / total) ** 2 for x in by.values())
        a[1] += w * max(by.values()) / total
        a[2] += w
    return {k: (a[0] / a[2], a[1] / a[2]) for k, a in acc.items() if a[2] > 0}


def _fiscal(m: pyo.ConcreteModel, d: ModelData
            ) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """Floor top-ups paid by third parties (discounted fiscal price x delivered tonnes), the
    discounted cost of the builds a government pays and of the stockpiles it holds."""
    per: dict[tuple[str, str], float] = {}
    for j, payer in d.build_government.items():
        cost = d.discount[d.build_cost_year[j]] * d.build_cost[j] * round(m.v_built[j].value
                                                                          or 0.0)
        for s in d.SCENARIOS:
            per[payer, s] = per.get((payer, s), 0.0) + cost
    for o, b, y in m.OFFER_BUYER_YEARS:
        floor_payer = d.offer_payer.get(o)
        if not floor_payer:
            continue
        for s in d.SCENARIOS:
            rate = d.offer_fiscal_per_t[o, y, s]
            if rate:
                per[floor_payer, s] = per.get((floor_payer, s), 0.0) + (
                    d.discount[y] * rate * pyo.value(delivered(m, o, b, y, s)))
    for key, x in government_costs(m, d).items():  # stockpiles a government holds
        per[key] = per.get(key, 0.0) + x
    expected: dict[str, float] = {}
    for (payer, s), x in per.items():
        expected[payer] = expected.get(payer, 0.0) + d.probability[s] * x
    for payer in {*d.offer_payer.values(), *d.build_government.values()}:
        expected.setdefault(payer, 0.0)
    return expected, per


def _buyer_cost(m: pyo.ConcreteModel, d: ModelData) -> dict[str, float]:
    """Each cost term's linear form, term by term, credited to the one buyer its variable's
    index names, or the buyer holding the stockpile it names (`shared` when it names
    none)."""
    buyers = set(d.BUYERS)
    held = {p: h for p, h in d.stockpile_holder.items() if d.stockpile_buyer_held[p]}
    out = dict.fromkeys([*d.BUYERS, SHARED], 0.0)
    for n in COST_TERMS:
        repn = generate_standard_repn(getattr(m, f"cost_{n}").expr, quadratic=False)
        out[SHARED] += float(pyo.value(repn.constant))
        for v, coef in zip(repn.linear_vars, repn.linear_coefs, strict=True):
            x = v.value or 0.0
            if not x:
                continue
            index = v.index()
            key = index if isinstance(index, tuple) else (index,)
            named = buyers.intersection(key) or {held[x] for x in key if x in held}
            who = next(iter(named)) if len(named) == 1 else SHARED
            out[who] += float(coef) * x
    return out


def _content(m: pyo.ConcreteModel, d: ModelData
             ) -> tuple[dict[tuple[str, str, str], float], dict[str, float], dict[str, float]]:
    tonnes: dict[str, float] = {}
    by_step: dict[tuple[str, str, str], float] = {}
    recycled: dict[str, float] = {}
    for b, i, j, t in d.BUYER_ARC_TAGS:
        if j != b:
            continue
        material = d.arc_material[i, j]
        tonnes.setdefault(material, 0.0)
        recycled.setdefault(material, 0.0)
        tag_steps = steps(t)
        for step in tag_steps:
            by_step.setdefault((material, *step), 0.0)
        q = sum(d.probability[s] * (m.v_flow_t[b, i, j, t, y, s].value or 0.0)
                for y in d.YEARS for s in d.SCENARIOS)
        if q <= 0:
            continue
        tonnes[material] += q
        for step in tag_steps:
            by_step[material, *step] += q
        if any(stage == RECYCLE for stage, _ in tag_steps):
            recycled[material] += q
    content = {k: (x / tonnes[k[0]] if tonnes[k[0]] > 0 else 0.0) for k, x in by_step.items()}
    return content, {k: (x / tonnes[k] if tonnes[k] > 0 else 0.0)
                     for k, x in recycled.items()}, tonnes


def _rule_shares(m: pyo.ConcreteModel, d: ModelData
                 ) -> tuple[dict[str, tuple[float | None, float | None]], dict[str, str]]:
    """Per share rule, the lowest and highest share over its rows (as `rules.csv`: of
    demand when the row is of demand, else of its denominator)."""
    found: dict[str, list[float]] = {}
    senses: dict[str, str] = {}
    for rows in d.rule_rows.values():
        for row in rows:
            found.setdefault(row.rule, [])
            senses[row.rule] = row.sense
            for s in row_scenarios(d, row):
                weights = d.probability if s == EXPECTED else {s: 1.0}
                num = pyo.value(row_form(m, d, row, s, part="num"))
                if row.demand_t:
                    base = sum(w * row.demand_t.get(x, 0.0) for x, w in weights.items())
                else:
                    base = pyo.value(row_form(m, d, row, s, part="den"))
                if base > 0:
                    found[row.rule].append(num / base)
    return ({r: (min(x), max(x)) if x else (None, None) for r, x in found.items()}, senses)
