"""Strategic stockpiles (formulation.md, stockpile_balance, stockpile_level,
stockpile_release): the purchase and level variables, the three constraint families and the
three cost terms. Releases are flows on the arc stockpile -> location (`v_flow_t`), so the
processors and the buyers downstream, the origin tags and the rules read them without
further code.

Reads only `ModelData`; never the schema, never a solver.
"""

from __future__ import annotations

import pyomo.core as pyo

from offtake.formulation.data import ModelData
from offtake.formulation.expressions import family_builder, group_by
from offtake.formulation.objective import cost_term


def add_stockpile_variables(m: pyo.ConcreteModel, d: ModelData) -> None:
    """Purchases (first stage: `v_stockpile_order_t[p, k, t]`; per scenario:
    `v_stockpile_buy_t[p, k, t, s]`) and end-of-year levels by tag
    (`v_stockpile_level_t[p, tag, t, s]`, at most the capacity)."""
    first = d.stockpile_first_stage
    m.STOCKPILE_ORDERS = pyo.Set(initialize=[(p, k, y) for p, k in d.STOCKPILE_MARKETS
                                             if first[p] for y in d.YEARS],
                                 dimen=3, ordered=True)
    m.STOCKPILE_BUYS = pyo.Set(initialize=[(p, k, y, s) for p, k in d.STOCKPILE_MARKETS
                                           if not first[p] for y in d.YEARS
                                           for s in d.SCENARIOS], dimen=4, ordered=True)
    m.STOCKPILE_LEVELS = pyo.Set(initialize=[(p, t, y, s) for p, t in d.STOCKPILE_TAGS
                                             for y in d.YEARS for s in d.SCENARIOS],
                                 dimen=4, ordered=True)
    m.v_stockpile_order_t = pyo.Var(m.STOCKPILE_ORDERS, domain=pyo.NonNegativeReals)
    m.v_stockpile_buy_t = pyo.Var(m.STOCKPILE_BUYS, domain=pyo.NonNegativeReals)
    m.v_stockpile_level_t = pyo.Var(
        m.STOCKPILE_LEVELS, domain=pyo.NonNegativeReals,
        bounds=lambda _, p, t, y, s: (0, d.stockpile_capacity_t[p]))


def bought(m: pyo.ConcreteModel, d: ModelData, p: str, k: str, y: int, s: str):
    """y_pkt(s): what stockpile p buys on market k in year y (scenario s)."""
    if d.stockpile_first_stage[p]:
        return m.v_stockpile_order_t[p, k, y]
    return m.v_stockpile_buy_t[p, k, y, s]


def stockpile_purchases_by_market(m: pyo.ConcreteModel, d: ModelData) -> dict:
    """(market, year, scenario) -> the stockpiles' purchases there (for spot_availability)."""
    return group_by([(p, k, y, s) for p, k in d.STOCKPILE_MARKETS for y in d.YEARS
                     for s in d.SCENARIOS], lambda x: (x[1], x[2], x[3]),
                    lambda x: bought(m, d, *x))


def _releases(m: pyo.ConcreteModel, d: ModelData) -> dict:
    """(stockpile, tag, year, scenario) -> the release flows (every buyer)."""
    stockpiles = set(d.STOCKPILES)
    if not stockpiles:
        return {}
    return group_by([k for k in m.FLOWS if k[1] in stockpiles],
                    lambda k: (k[1], k[3], k[4], k[5]), lambda k: m.v_flow_t[k])


@family_builder("stockpile_balance")
def add_stockpile_balance(m: pyo.ConcreteModel, d: ModelData) -> None:
    """The level of each origin tag in a stockpile carries over from the year before, rises by
    the purchases on markets of that tag and falls by the releases of that tag.

    .. math:: L_{p\\tau ts} = L_{p\\tau,t-1,s} + \\sum_{\\kappa \\in K_p:\\ \\mathrm{tag}(\\kappa)
        =\\tau} y_{p\\kappa t(s)} - \\sum_b x_{b,p\\to\\ell_p,\\tau,ts}, \\qquad
        L_{p\\tau,t_1-1,s} = [\\tau = \\tau^0_p]\\, L^0_p

    Reads stockpiles' initial_t, initial_origin and markets. Dual: value of one more tonne of
    that origin in the stockpile at the end of the year (currency per t).
    """
    released = _releases(m, d)
    markets = group_by(d.STOCKPILE_MARKETS, lambda k: (k[0], d.stockpile_market_tag[k]),
                       lambda k: k[1])
    prev = dict(zip(d.YEARS[1:], d.YEARS[:-1], strict=True))

    def before(p, t, y, s):
        if y in prev:
            return m.v_stockpile_level_t[p, t, prev[y], s]
        return d.stockpile_initial_t.get((p, t), 0.0)

    m.stockpile_balance = pyo.Constraint(
        m.STOCKPILE_LEVELS,
        rule=lambda _, p, t, y, s: m.v_stockpile_level_t[p, t, y, s]
        == before(p, t, y, s) + sum(bought(m, d, p, k, y, s) for k in markets.get((p, t), []))
        - sum(released.get((p, t, y, s), [])))


@family_builder("stockpile_level")
def add_stockpile_level(m: pyo.ConcreteModel, d: ModelData) -> None:
    """The level stays within the capacity, at or above the minimum level where the stockpile
    may not release, and the purchases of a year within their bounds.

    .. math:: \\sum_\\tau L_{p\\tau ts} \\le C_p, \\qquad \\sum_\\tau L_{p\\tau ts} \\ge (1 -
        \\rho_{pts})\\, M_{pt}, \\qquad \\underline U_{pt} \\le \\sum_{\\kappa} y_{p\\kappa t(s)}
        \\le \\overline U_{pt}

    Reads stockpiles' capacity_t, min_level_t, purchase_min_t, purchase_max_t. Dual: value
    of a tonne more of capacity, of a tonne less of minimum level, or of a tonne more or less
    of allowed purchases (currency per t).
    """
    tags = group_by(d.STOCKPILE_TAGS, lambda k: k[0], lambda k: k[1])
    markets = group_by(d.STOCKPILE_MARKETS, lambda k: k[0], lambda k: k[1])
    every = [(p, y, s) for p in d.STOCKPILES if tags.get(p) for y in d.YEARS
             for s in d.SCENARIOS]

    def level(p, y, s):
        return sum(m.v_stockpile_level_t[p, t, y, s] for t in tags[p])

    m.STOCKPILE_YEARS = pyo.Set(initialize=every, dimen=3, ordered=True)
    m.stockpile_level_max = pyo.Constraint(
        m.STOCKPILE_YEARS, rule=lambda _, p, y, s: level(p, y, s) <= d.stockpile_capacity_t[p])
    m.STOCKPILE_MIN_YEARS = pyo.Set(initialize=[k for k in every
                                                if k in d.stockpile_min_level_t],
                                    dimen=3, ordered=True)
    m.stockpile_level_min = pyo.Constraint(
        m.STOCKPILE_MIN_YEARS,
        rule=lambda _, p, y, s: level(p, y, s) >= d.stockpile_min_level_t[p, y, s])
    periods = [(p, y, s) for p in d.STOCKPILES if markets.get(p) for y in d.YEARS
               for s in (d.SCENARIOS[:1] if d.stockpile_first_stage[p] else d.SCENARIOS)]

    def purchases(p, y, s):
        return sum(bought(m, d, p, k, y, s) for k in markets[p])

    m.STOCKPILE_PURCHASE_YEARS = pyo.Set(initialize=periods, dimen=3, ordered=True)
    m.stockpile_purchase_min = pyo.Constraint(
        [k for k in periods if d.stockpile_purchase_min_t[k[:2]] > 0],
        rule=lambda _, p, y, s: purchases(p, y, s) >= d.stockpile_purchase_min_t[p, y])
    m.stockpile_purchase_max = pyo.Constraint(
        [k for k in periods if k[:2] in d.stockpile_purchase_max_t],
        rule=lambda _, p, y, s: purchases(p, y, s) <= d.stockpile_purchase_max_t[p, y])


@family_builder("stockpile_release")
def add_stockpile_release(m: pyo.ConcreteModel, d: ModelData) -> None:
    """A stockpile releases only where it may: at any time, or in the years and scenarios a
    disruption hits (the scenario's release windows).

    .. math:: \\sum_{b,\\tau} x_{b,p\\to\\ell_p,\\tau,ts} \\le \\rho_{pts}\\, C_p \\qquad
        \\forall (p,t,s)

    Reads stockpiles' release, scenarios' releases. Dual: value of releasing one more tonne
    in that year and scenario (currency per t).
    """
    released = group_by(list(_releases(m, d).items()), lambda kv: (kv[0][0], *kv[0][2:]),
                        lambda kv: kv[1])
    m.STOCKPILE_RELEASE_YEARS = pyo.Set(initialize=sorted(released), dimen=3, ordered=True)
    m.stockpile_release_max = pyo.Constraint(
        m.STOCKPILE_RELEASE_YEARS,
        rule=lambda _, p, y, s: sum(x for xs in released[p, y, s] for x in xs)
        <= d.stockpile_release_cap_t[p, y, s])


@cost_term("stockpile_purchases")
def _stockpile_purchases(m, d):
    parts: dict[str, list] = {s: [] for s in d.SCENARIOS}
    for p, k in d.STOCKPILE_MARKETS:
        if d.stockpile_buyer_held[p]:
            for y in d.YEARS:
                for s in d.SCENARIOS:
                    parts[s].append(d.discount[y] * d.spot_price_per_t[k, y, s]
                                    * bought(m, d, p, k, y, s))
    return {s: sum(v) for s, v in parts.items()}


@cost_term("stockpile_holding")
def _stockpile_holding(m, d):
    parts: dict[str, list] = {s: [] for s in d.SCENARIOS}
    for p, t, y, s in m.STOCKPILE_LEVELS:
        if d.stockpile_buyer_held[p] and d.stockpile_holding_per_t[p] > 0:
            parts[s].append(d.discount[y] * d.stockpile_holding_per_t[p]
                            * m.v_stockpile_level_t[p, t, y, s])
    return {s: sum(v) for s, v in parts.items()}


@cost_term("stockpile_releases")
def _stockpile_releases(m, d):
    parts: dict[str, list] = {s: [] for s in d.SCENARIOS}
    stockpiles = {p for p in d.STOCKPILES if not d.stockpile_buyer_held[p]}
    for b, i, j, t, y, s in (m.FLOWS if stockpiles else ()):
        if i in stockpiles:
            price = d.stockpile_release_price_per_t[i, y]
            if price > 0:
                parts[s].append(d.discount[y] * price * m.v_flow_t[b, i, j, t, y, s])
    return {s: sum(v) for s, v in parts.items()}


def government_costs(m: pyo.ConcreteModel, d: ModelData) -> dict[tuple[str, str], float]:
    """(government holder, scenario) -> the discounted fiscal cost of its stockpiles at the
    solved values: purchases and holding less the release payments buyers make to it
    (`fiscal_stockpile`; not in the objective)."""
    out: dict[tuple[str, str], float] = {}
    held = {p for p in d.STOCKPILES if not d.stockpile_buyer_held[p]}
    if not held:
        return out
    for p in held:
        for s in d.SCENARIOS:
            out.setdefault((d.stockpile_holder[p], s), 0.0)
    for p, k in d.STOCKPILE_MARKETS:
        if p in held:
            for y in d.YEARS:
                for s in d.SCENARIOS:
                    out[d.stockpile_holder[p], s] += d.discount[y] * d.spot_price_per_t[
                        k, y, s] * pyo.value(bought(m, d, p, k, y, s))
    for p, _t, y, s in m.STOCKPILE_LEVELS:
        if p in held:
            out[d.stockpile_holder[p], s] += (d.discount[y] * d.stockpile_holding_per_t[p]
                                              * (m.v_stockpile_level_t[p, _t, y, s].value or 0.0))
    for _b, i, _j, _t, y, s in m.FLOWS:
        if i in held:
            out[d.stockpile_holder[i], s] -= (d.discount[y] * d.stockpile_release_price_per_t[i, y]
                                              * (m.v_flow_t[_b, i, _j, _t, y, s].value or 0.0))
    return out
