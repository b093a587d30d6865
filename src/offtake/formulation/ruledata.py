"""Rows of the procurement rules: each rule of the instance turned into linear rows over the
model's quantities (see `data.RuleRow`), one builder per rule kind, named after the kind.

Scope semantics (all kinds): `scope.buyers` (default every buyer), `scope.materials`
(default: what those buyers demand, or for supplier shares what is offered to them),
`scope.years` (default the horizon; exclusions also start at `from_year`). Share rules hold for
each buyer separately unless `pooled: true`.

Pure functions over the schema and derived sets; no Pyomo.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from offtake.domain.findings import Finding
from offtake.domain.network import at, offer_eligible
from offtake.domain.origin import all_steps_in, countries_at, has_step_in, is_recycled, steps
from offtake.domain.registry import RULE_KINDS, count_kinds, implementation_table
from offtake.domain.schema import Instance


@dataclass(frozen=True)
class RuleRow:
    """One row of a procurement rule, in linear form, for one year (and every scenario):

        sum(num terms) - share * sum(den terms)  (<= or >=)  rhs

    Terms are keys of model quantities: arrivals (buyer, material, tag), contract volumes
    (offer, buyer), spot flows (buyer, market, to, tag), processing (facility, buyer); for
    kinds decided on the portfolio alone (`first_stage`), weighted commitments (offer, buyer,
    weight) and build options (option, coefficient) only.
    """

    row_id: str
    rule: str
    kind: str
    label: str
    """What the row is about, e.g. 'B1|SEP_L|CN|MAGNET' (buyer group | stage | country | ...)."""
    year: int
    sense: str  # "le" or "ge"
    share: float
    rhs: dict[str, float]
    """Right-hand side per scenario (share x demand for shares of demand, else 0)."""
    num_arrivals: tuple[tuple[str, str, str], ...] = ()
    den_arrivals: tuple[tuple[str, str, str], ...] = ()
    num_volumes: tuple[tuple[str, str], ...] = ()
    den_volumes: tuple[tuple[str, str], ...] = ()
    den_spot: tuple[tuple[str, str, str, str], ...] = ()
    num_production: tuple[tuple[str, str], ...] = ()
    den_production: tuple[tuple[str, str], ...] = ()
    num_commitments: tuple[tuple[str, str, float], ...] = ()
    """(offer, buyer, weight): weight x the contracted volume q_obt (first stage; the weight is
    the take-or-pay share for take-or-pay offers, 1 for the others)."""
    den_builds: tuple[tuple[str, float], ...] = ()
    """(build option, coefficient): coefficient x b_j (first stage)."""
    num_weighted: tuple[tuple[str, tuple, float], ...] = ()
    """(what, key, weight): weight x a quantity, what = "flow" (buyer, from, to, tag),
    "made" (facility, buyer: all its combinations) or "volume" (offer, buyer: delivered)."""
    demand_t: dict[str, float] = field(default_factory=dict)
    """For shares of demand: the demand per scenario the share applies to."""



POOL = "pooled"

ROW_BUILDERS, row_builder = implementation_table("rule kind", lambda: RULE_KINDS)
"""Row builder of each rule kind of form "rows": fn(rule, context) -> [RuleRow]."""


def count_rule_offers(inst: Instance, years: tuple[int, ...]) -> list[tuple[str, str, str]]:
    """(rule, supplier unit, offer) for max_suppliers and min_suppliers rules."""
    fac = {f.id: f for f in inst.facilities}
    out = []
    for r in inst.rules:
        if r.kind not in count_kinds():
            continue
        count: str = getattr(r, "count", "facility")  # count kinds: facility | company
        sc = r.scope
        for o in inst.offers:
            eligible = [b.id for b in inst.buyers if offer_eligible(o, b.id)]
            if sc.buyers is not None and not set(eligible) & set(sc.buyers):
                continue
            if sc.materials is not None and o.material not in sc.materials:
                continue
            active = [y for y in years if o.first_year <= y <= o.last_year]
            if not active or (sc.years is not None and not set(active) & set(sc.years)):
                continue
            unit = o.supplier if count == "facility" else fac[o.supplier].company
            out.append((r.id, unit, o.id))
    return out


def rule_rows(inst: Instance, d: Any) -> dict[str, tuple]:
    """Rows of every share / exclusion / offtake rule, grouped by kind."""
    ctx = RowContext(inst, d)
    rows: dict[str, list] = defaultdict(list)
    for r in inst.rules:
        if RULE_KINDS[r.kind].form == "rows":
            rows[r.kind] += ROW_BUILDERS[r.kind](r, ctx)
    return {k: tuple(v) for k, v in rows.items()}


class RowContext:
    """Lookups shared by the row builders."""

    def __init__(self, inst: Instance, d: Any) -> None:
        self.Row = RuleRow
        self.inst, self.d = inst, d
        self.groups = {g.id: set(g.members) for g in inst.country_groups}
        self.company = {f.id: f.company for f in inst.facilities}
        self.buyer_class = {b.id: b.buyer_class for b in inst.buyers}
        self.demanded = {b.id: set(b.demand_t) for b in inst.buyers}
        self.arrivals: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
        for b, m, t in d.ARRIVALS:
            self.arrivals[(b, m)].append((b, m, t))
        self.spot_flows: dict[tuple[str, str], list] = defaultdict(list)
        for b, i, j, t in d.BUYER_ARC_TAGS:
            if i in d.spot_material:
                self.spot_flows[(b, d.spot_material[i])].append((b, i, j, t))
        self.sales: dict[tuple[str, int], list[tuple[str, str]]] = defaultdict(list)
        for o, b, y in d.OFFER_BUYER_YEARS:
            self.sales[(d.offer_supplier[o], y)].append((o, b))
        self.tolled = sorted({(f, b) for f, b, _ in d.COMBOS})

    def buyers(self, r: Any) -> list[str]:
        return sorted(r.scope.buyers) if r.scope.buyers is not None else list(self.d.BUYERS)

    def buyer_groups(self, r: Any) -> list[tuple[str, list[str]]]:
        bs = self.buyers(r)
        return [(POOL, bs)] if getattr(r, "pooled", False) else [(b, [b]) for b in bs]

    def years(self, r: Any) -> list[int]:
        ys = r.scope.years if r.scope.years is not None else self.d.YEARS
        start = getattr(r, "from_year", None) or 0
        return [y for y in sorted(ys) if y >= start]

    def materials(self, r: Any, buyers: Iterable[str]) -> list[str]:
        if r.scope.materials is not None:
            return sorted(r.scope.materials)
        return sorted(set().union(*(self.demanded[b] for b in buyers)))

    def countries(self, r: Any) -> set[str]:
        out = set(getattr(r, "countries", []))
        for g in getattr(r, "groups", []):
            out |= self.groups[g]
        return out

    def demand(self, buyers: Iterable[str], m: str, y: int) -> dict[str, float]:
        """Demand of the buyers per scenario."""
        return {s: sum(self.d.demand_t.get((b, m, y, s), 0.0) for b in buyers)
                for s in self.d.SCENARIOS}

    def zero(self) -> dict[str, float]:
        return dict.fromkeys(self.d.SCENARIOS, 0.0)


def make_row(ctx: RowContext, r: Any, label: str, y: int, sense: str, share: float,
             rhs: dict[str, float] | None, **terms: Any) -> Any:
    """The row `label` of rule r in year y: num terms - share x den terms (sense) rhs; rhs
    None is 0 in every scenario. Its id is `<rule>|<label>|<year>`."""
    rhs = ctx.zero() if rhs is None else rhs
    return ctx.Row(row_id=f"{r.id}|{label}|{y}", rule=r.id, kind=r.kind, label=label, year=y,
                   sense=sense, share=share, rhs=rhs, **terms)


@row_builder("max_supplier_share")
def max_supplier_share_rows(r: Any, ctx: RowContext) -> list:
    d, out = ctx.d, []
    for g, bs in ctx.buyer_groups(r):
        for y in ctx.years(r):
            for m in ctx.materials(r, bs) if r.scope.materials else sorted(
                    {d.offer_material[o] for o, b, yy in d.OFFER_BUYER_YEARS
                     if b in bs and yy == y}):
                bought = [(o, b) for o, b, yy in d.OFFER_BUYER_YEARS
                          if yy == y and b in bs and d.offer_material[o] == m]
                spot = [k for b in bs for k in ctx.spot_flows[(b, m)]]
                units: dict[str, list] = defaultdict(list)
                for o, b in bought:
                    unit = d.offer_supplier[o] if r.by == "facility" else ctx.company[
                        d.offer_supplier[o]]
                    units[unit].append((o, b))
                for unit, mine in sorted(units.items()):
                    out.append(make_row(ctx, r, f"{g}|{unit}|{m}", y, "le", r.max_share, None,
                                    num_volumes=tuple(mine), den_volumes=tuple(bought),
                                    den_spot=tuple(spot)))
    return out


@row_builder("max_country_share")
def max_country_share_rows(r: Any, ctx: RowContext) -> list:
    """Caps relative to demand (CRMA counts shares of consumption), so buying surplus from
    elsewhere cannot dilute a country's share."""
    exempt = set(r.exempt_countries)
    for g in r.exempt_groups:
        exempt |= ctx.groups[g]
    out = []
    for g, bs in ctx.buyer_groups(r):
        for m in ctx.materials(r, bs):
            keys = [k for b in bs for k in ctx.arrivals[(b, m)]]
            for stage in r.stages:
                found = sorted(set().union(*(countries_at(t, stage.value) for _, _, t in keys))
                               - exempt) if keys else []
                for c in found:
                    num = tuple(k for k in keys if c in countries_at(k[2], stage.value))
                    for y in ctx.years(r):
                        demand = ctx.demand(bs, m, y)
                        if max(demand.values()) <= 0:
                            continue
                        out.append(make_row(ctx, r, f"{g}|{stage.value}|{c}|{m}", y, "le",
                                        r.max_share, {s: r.max_share * x for s, x in
                                                      demand.items()},
                                        num_arrivals=num, demand_t=demand))
    return out


def _demand_share_rows(r: Any, ctx: RowContext, qualifies: Callable[[str], bool]) -> list:
    out = []
    for g, bs in ctx.buyer_groups(r):
        for m in ctx.materials(r, bs):
            keys = [k for b in bs for k in ctx.arrivals[(b, m)]]
            num = tuple(k for k in keys if qualifies(k[2]))
            for y in ctx.years(r):
                demand = ctx.demand(bs, m, y)
                share = at(r.min_share, y)
                if max(demand.values()) <= 0 or share <= 0:
                    continue
                out.append(make_row(ctx, r, f"{g}|{m}", y, "ge", share,
                                {s: share * x for s, x in demand.items()},
                                num_arrivals=num, demand_t=demand))
    return out


@row_builder("min_content_share")
def min_content_share_rows(r: Any, ctx: RowContext) -> list:
    stages, countries = {s.value for s in r.stages}, ctx.countries(r)

    def qualifies(t: str) -> bool:
        if r.recycled_qualifies and countries_at(t, "RECYCLE") & countries:
            return True
        return all_steps_in(t, stages, countries)

    return _demand_share_rows(r, ctx, qualifies)


@row_builder("min_recycled_share")
def min_recycled_share_rows(r: Any, ctx: RowContext) -> list:
    return _demand_share_rows(r, ctx, is_recycled)


@row_builder("exclusion")
def exclusion_rows(r: Any, ctx: RowContext) -> list:
    stages, countries = {s.value for s in r.stages}, ctx.countries(r)
    out = []
    for b in ctx.buyers(r):
        for m in ctx.materials(r, [b]):
            num = tuple(k for k in ctx.arrivals[(b, m)] if has_step_in(k[2], stages, countries))
            if not num:
                continue
            for y in ctx.years(r):
                out.append(make_row(ctx, r, f"{b}|{m}", y, "le", 0.0, None, num_arrivals=num))
    return out


@row_builder("bankability")
def bankability_rows(r: Any, ctx: RowContext) -> list:
    """One row per listed facility and year in the first `first_years` years of operation of
    one of its build options (in the rule's years): committed offtake of the scoped buyers >=
    min_share x the ramped nameplate of the options in their window."""
    d, out = ctx.d, []
    buyers, years = set(ctx.buyers(r)), set(ctx.years(r))
    for f in r.facilities:
        window: dict[int, list[tuple[str, float]]] = defaultdict(list)
        for j in d.BUILDS:
            if d.build_facility[j] != f:
                continue
            for y in range(d.build_start[j], d.build_start[j] + r.first_years):
                if y in years and d.build_nameplate_t.get((j, y), 0.0) > 0:
                    window[y].append((j, d.build_nameplate_t[j, y]))
        for y, dens in sorted(window.items()):
            commits = tuple((o, b, d.offer_top_share.get(o, 1.0))
                            for o, b, yy in d.OFFER_BUYER_YEARS
                            if yy == y and b in buyers and d.offer_supplier[o] == f)
            out.append(make_row(ctx, r, f, y, "ge", r.min_share, None,
                                num_commitments=commits, den_builds=tuple(dens)))
    return out


@row_builder("max_offtake_share")
def max_offtake_share_rows(r: Any, ctx: RowContext) -> list:
    out = []
    scoped = set(ctx.buyers(r))
    cls = {b for b, c in ctx.buyer_class.items() if c == r.buyer_class and b in scoped}
    for f in r.facilities:
        tolled = [(ff, b) for ff, b in ctx.tolled if ff == f]
        for y in ctx.years(r):
            sales = ctx.sales[(f, y)]
            num_v = tuple(k for k in sales if k[1] in cls)
            num_p = tuple(k for k in tolled if k[1] in cls)
            if not num_v and not num_p:
                continue
            out.append(make_row(ctx, r, f, y, "le", r.max_share, None, num_volumes=num_v,
                            den_volumes=tuple(sales), num_production=num_p,
                            den_production=tuple(tolled)))
    return out




def emission_upstream(d: Any, b: str, m: str) -> set[str]:
    """U_bk: the nodes from which a path of arcs leads to buyer b ending in an arc that
    carries material m (formulation.md, Emissions and concentration)."""
    into: dict[str, list[str]] = defaultdict(list)
    for i, j in d.ARCS:
        into[j].append(i)
    found = {i for i in into[b] if d.arc_material[i, b] == m}
    todo = list(found)
    while todo:
        for i in into[todo.pop()]:
            if i not in found:
                found.add(i)
                todo.append(i)
    return found


@row_builder("max_emission_intensity")
def max_emission_intensity_rows(r: Any, ctx: RowContext) -> list:
    """One row per group, material that can arrive and year: emissions of the activities
    upstream of the material (weighted flows, processing, own-feed sales) <= cap x arrivals."""
    d, out = ctx.d, []
    for g, bs in ctx.buyer_groups(r):
        for m in ctx.materials(r, bs):
            den = tuple(k for b in bs for k in ctx.arrivals[(b, m)])
            if not den:
                continue
            up = {b: emission_upstream(d, b, m) for b in bs}
            fixed: tuple[tuple[str, tuple, float], ...] = tuple(
                ("flow", (b, i, j, t), d.flow_emission[i, j])
                for b, i, j, t in d.BUYER_ARC_TAGS if b in up
                and (j in up[b] or (j == b and d.arc_material[i, j] == m))
                and (i, j) in d.flow_emission)
            fixed += tuple(("made", (f, b), d.facility_emission[f]) for f, b in ctx.tolled
                           if b in up and f in up[b] and f in d.facility_emission)
            for y in ctx.years(r):
                sold = tuple(("volume", (o, b), d.offer_emission[o])
                             for o, b, yy in d.OFFER_BUYER_YEARS
                             if yy == y and b in up and d.offer_supplier[o] in up[b]
                             and o in d.offer_emission)
                out.append(make_row(ctx, r, f"{g}|{m}", y, "le", at(r.max_kg_per_kg, y), None,
                                    num_weighted=fixed + sold, den_arrivals=den))
    return out


def origin_gaps(inst: Instance, d: Any) -> list[Finding]:
    """Warnings for deliveries an origin rule cannot fully see: chains that can reach a scoped
    buyer but record no step at a stage the rule reads (recycled chains are exempt: they have
    no mine or separation step by nature). Exclusions cannot see such steps; content rules do
    not count such chains."""
    ctx = RowContext(inst, d)
    out = []
    for r in inst.rules:
        read = {s.value for s in getattr(r, "stages", [])}
        if not read:
            continue
        for b in ctx.buyers(r):
            for m in ctx.materials(r, [b]):
                blind = sorted(t for _, _, t in ctx.arrivals[(b, m)] if not is_recycled(t)
                               and read - {s for s, _ in steps(t)})
                if blind:
                    out.append(Finding(
                        "origin_unknown", "warning", f"rules[{r.id}]",
                        f"rule '{r.id}' reads stages {sorted(read)}, but {len(blind)} chain(s) "
                        f"that can deliver {m} to '{b}' record no step at some of them, e.g. "
                        f"'{blind[0] or '(no steps)'}'",
                        "declare the upstream countries in feed_origin of the selling facility "
                        "or spot market"))
    return out
