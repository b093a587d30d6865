"""Instance schema: the contract with the user.

Strict, frozen pydantic v2 models. Every numeric field is finite, non-negative where a negative
value makes no sense, and below a sane magnitude (HiGHS treats 1e20 as infinity); unknown fields
are rejected. Unit conventions live in the field names: quantities in tonnes (`_t`), money per
kilogram (`_per_kg`, the way the rare-earth trade quotes prices), shares as fractions (0-1).

Field-level checks live here; checks that need the whole instance (references, year alignment,
duplicates, cycles, unservable demand) live in `validation.py`, which `Instance` runs after
construction. This module must not import Pyomo or anything downstream of it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

# --- magnitudes ------------------------------------------------------------------------------
MAX_TONNES = 1.0e8  # 100 Mt per year: two orders above world rare-earth mining
MAX_PRICE_PER_KG = 1.0e6  # far above any rare-earth product; catches kg/t and cents mix-ups
MAX_MONEY = 1.0e13  # a one-off payment
DEFAULT_UNMET_PENALTY_PER_KG = 10_000.0  # > 3x the dearest oxide price in the fact sheet
MIN_YEAR, MAX_YEAR = 1990, 2100


class _Strict(BaseModel):
    model_config = ConfigDict(
        strict=True,
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        populate_by_name=True,
        validate_default=True,
    )


# --- scalar types ----------------------------------------------------------------------------
Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"),
]
"""Identifiers: letters, digits, '_', '-', '.'; case-sensitive; no spaces."""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2 code (checked against the ISO list in validation)."""

Tonnes = Annotated[float, Field(ge=0, le=MAX_TONNES)]
PricePerKg = Annotated[float, Field(ge=0, le=MAX_PRICE_PER_KG)]
Money = Annotated[float, Field(ge=0, le=MAX_MONEY)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Year = Annotated[int, Field(ge=MIN_YEAR, le=MAX_YEAR)]
EmissionFactor = Annotated[float, Field(ge=0, le=10_000)]
"""kg CO2e per kg (= t CO2e per t), GWP100; above 10 t per kg is a unit mix-up."""

TonnesSeries = Tonnes | dict[Year, Tonnes]
"""A constant, or one value per year (the years are checked against the horizon or window)."""
PriceSeries = PricePerKg | dict[Year, PricePerKg]


class Stage(StrEnum):
    """Supply-chain stage codes (rare-earth fact sheet, section 0)."""

    MINE = "MINE"
    CRACK = "CRACK"
    SEP_L = "SEP_L"
    SEP_H = "SEP_H"
    METAL = "METAL"
    MAGNET = "MAGNET"
    RECYCLE = "RECYCLE"
    OTHER = "OTHER"


class MaterialForm(StrEnum):
    CONCENTRATE = "concentrate"
    MIXED_COMPOUND = "mixed_compound"
    OXIDE = "oxide"
    METAL = "metal"
    ALLOY = "alloy"
    MAGNET = "magnet"
    SCRAP = "scrap"
    OTHER = "other"


StageField = Annotated[Stage, Field(strict=False)]
"""Stage codes are written as text in files; lax mode turns 'MAGNET' into Stage.MAGNET."""
FormField = Annotated[MaterialForm, Field(strict=False)]


# --- sections --------------------------------------------------------------------------------
class Meta(_Strict):
    name: Annotated[str, StringConstraints(min_length=1)]
    description: str = ""
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    price_year: Year
    sources: dict[str, str] = Field(default_factory=dict)
    """Source IDs cited in the instance (e.g. S05) mapped to a short description."""


class Horizon(_Strict):
    first_year: Year
    last_year: Year
    discount_rate: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    """Annual real discount rate as a fraction (0.08 = 8 %)."""
    base_year: Year | None = None
    """Year whose cash flows are not discounted; defaults to first_year."""

    @model_validator(mode="after")
    def _ordered(self) -> Horizon:
        if self.last_year < self.first_year:
            raise ValueError(
                f"last_year {self.last_year} is before first_year {self.first_year}"
            )
        return self

    @property
    def years(self) -> list[int]:
        return list(range(self.first_year, self.last_year + 1))


class CountryGroup(_Strict):
    id: Id
    members: list[CountryCode] = Field(min_length=1)
    description: str = ""
    source: str = ""


class Material(_Strict):
    id: Id
    name: str = ""
    form: FormField
    unit: Literal["t"] = "t"
    unmet_penalty_per_kg: PricePerKg = DEFAULT_UNMET_PENALTY_PER_KG
    """Cost of each kg of demand left unmet; reported as its own cost term."""
    typical_price_per_kg: Annotated[list[PricePerKg], Field(min_length=2, max_length=2)] | None = (
        None
    )
    holding_cost_per_kg_year: PricePerKg | None = None
    """If set, buyers may hold this material in stock from one year to the next at this cost."""
    """Plausible price range; prices outside it are flagged (a kg/t or oxide/metal mix-up)."""


class BuildOption(_Strict):
    """An option to build capacity at its facility: a new plant (the facility is a
    `candidate`) or an expansion of an existing one. Decided now (first stage, binary); once
    built it operates from its start year, `max(earliest_year, first_year + lead_time_years)`,
    with `ramp[k] x nameplate_t` tonnes a year in its (k+1)-th year of operation (the last
    ramp value from then on)."""

    id: Id
    """Unique among offers and build options (`--force` / `--forbid` name either)."""
    nameplate_t: Annotated[float, Field(gt=0, le=MAX_TONNES)]
    """Capacity added at full ramp, tonnes of the facility's product per year."""
    earliest_year: Year | None = None
    """Earliest operating year (None: the first year the lead time allows)."""
    lead_time_years: Annotated[int, Field(ge=0, le=30)] = 0
    """Years from the decision (the horizon's first year) to the first year of operation."""
    ramp: Annotated[list[Fraction], Field(min_length=1, max_length=30)] = Field(
        default_factory=lambda: [1.0])
    """Share of nameplate available in the 1st, 2nd, ... year of operation (e.g. 0.25, 0.5,
    0.75, 1.0); the last value holds afterwards."""
    cost: Money = 0.0
    """One-off build cost, paid in the year construction starts (start year minus lead time,
    not before the horizon's first year)."""
    paid_by: Annotated[str, StringConstraints(min_length=1)] = "supplier"
    """Who pays the build cost: 'supplier' (recovered in its prices: no cost term), 'buyers'
    or 'consortium' (the instance's buyers, in the objective), or the name of a government
    (a third party: reported as fiscal cost, not in the objective)."""
    requires: Id | None = None
    """Another build option of the same facility that must be built for this one to be
    (e.g. phase 2 requires phase 1)."""
    decision: Literal["free", "forced", "forbidden"] = "free"
    """Whether the optimizer chooses ("free"), must build ("forced": already decided, or a
    what-if) or must not ("forbidden")."""
    source: str = ""
    notes: str = ""


class Facility(_Strict):
    id: Id
    name: str = ""
    company: Annotated[str, StringConstraints(min_length=1)]
    country: CountryCode
    stage: StageField
    product: Id
    capacity_t: TonnesSeries
    """Output capacity in tonnes of `product` per year, shared by every contract and toll."""
    recipe: dict[Id, Annotated[float, Field(gt=0, le=1000)]] = Field(default_factory=dict)
    """Tonnes of each input material per tonne of product. Empty = own feed (a source)."""
    opex_per_kg: PriceSeries = 0.0
    """Processing (toll) cost per kg of product made from buyer-owned inputs."""
    feed_origin: dict[StageField, CountryCode] = Field(default_factory=dict)
    """For own-feed sales: country of each upstream stage not modelled as a facility."""
    emission_kg_per_kg: EmissionFactor = 0.0
    """kg CO2e per kg of product for the step done here (a processor's own process, its
    inputs excluded: they carry their own)."""
    feed_emission_kg_per_kg: EmissionFactor = 0.0
    """kg CO2e per kg sold from own feed for the steps upstream of this facility (the chain
    `feed_origin` describes); added to `emission_kg_per_kg` for own-feed sales."""
    candidate: bool = False
    """A plant not built yet: it exists (has capacity, and its offers can be signed) only if
    one of its `builds` is built; its own `capacity_t` must be 0."""
    builds: list[BuildOption] = Field(default_factory=list)
    """Options to build capacity here (a candidate's plant, or expansions)."""
    source: str = ""
    notes: str = ""


class Arc(_Strict):
    from_: Id = Field(alias="from")
    to: Id
    freight_per_kg: PricePerKg = 0.0
    emission_kg_per_kg: EmissionFactor = 0.0
    """Transport emissions, kg CO2e per kg carried (mode factor x distance)."""
    source: str = ""


class Network(_Strict):
    default_arcs: bool = True
    """Allow every arc whose material fits (a node's product is an input or a demand of the
    next node), i.e. consecutive stages; listed arcs then only set freight."""
    default_freight_per_kg: PricePerKg = 0.0
    default_emission_kg_per_kg: EmissionFactor = 0.0
    """Transport emissions of the default arcs (listed arcs set their own)."""
    arcs: list[Arc] = Field(default_factory=list)


class Buyer(_Strict):
    id: Id
    name: str = ""
    country: CountryCode
    buyer_class: Annotated[str, StringConstraints(min_length=1)] = "commercial"
    demand_t: dict[Id, TonnesSeries] = Field(min_length=1)
    """Tonnes demanded per material and year."""
    source: str = ""


Cause = Literal["export_control", "sanctions", "disaster", "operational", "other"]
"""Why a scenario cuts capacity: `export_control` (an export ban or licensing regime of the
supplier's government), `sanctions` (measures of the buyer's side), `disaster` (natural
disaster, epidemic, war), `operational` (the supplier's own outage, strike or
under-performance), `other`. Offers say which causes their force-majeure clause covers."""


DEFAULT_FORCE_MAJEURE: tuple[Cause, ...] = ("export_control",)
"""What an offer's force-majeure clause covers unless it says otherwise."""


class Tier(_Strict):
    """A volume tier: from `from_t` tonnes on, `discount` (fraction) off the unit price."""

    from_t: Tonnes
    discount: Fraction


class Offer(_Strict):
    id: Id
    supplier: Id
    """Facility that sells; the offered material is its product, from its own feed."""
    material: Id
    buyers: list[Id] | None = None
    """Buyers who may take volume under this offer; None means every buyer."""
    first_year: Year
    last_year: Year
    min_t_per_year: Tonnes = 0.0
    max_t_per_year: Tonnes
    # --- price terms: a fixed price by year, or index-linked with an optional collar ---------
    price_per_kg: PriceSeries | None = None
    """Fixed unit price (over the contract window). Give this or `index`."""
    index: Id | None = None
    """Index-linked: unit price = index x (1 + premium) + adder, per year and scenario."""
    premium: Annotated[float, Field(ge=-0.9, le=10)] = 0.0
    adder_per_kg: Annotated[float, Field(ge=-MAX_PRICE_PER_KG, le=MAX_PRICE_PER_KG)] = 0.0
    floor_per_kg: PricePerKg | None = None
    ceiling_per_kg: PricePerKg | None = None
    floor_paid_by: Annotated[str, StringConstraints(min_length=1)] = "buyer"
    """'buyer' (the buyer pays max(floor, index)) or the name of a third party that tops the
    seller up to the floor (the buyer pays the index; the top-up is fiscal cost)."""
    upside_share: Fraction = 0.0
    """Share of (index price - upside_above_per_kg) returned to whoever pays the floor."""
    upside_above_per_kg: PricePerKg | None = None
    # --- volume tiers ---------------------------------------------------------------------
    tiers: list[Tier] = Field(default_factory=list)
    """Volume discounts; the first tier starts at 0 t. Empty: no tiers."""
    tier_mode: Literal["all_units", "incremental"] = "all_units"
    tier_basis: Literal["annual", "total"] = "annual"
    """Tiers on each year's contracted volume, or (all-units only) on the contract total."""
    # --- commitment, prepayment, term --------------------------------------------------------
    take_or_pay_share: Fraction | None = None
    """Take-or-pay: the buyer commits to the contracted volume and pays for at least this
    share of it whatever it takes; None: contracted volume = delivered volume."""
    shortfall_fraction: Fraction = 1.0
    """Share of the unit price paid per tonne of shortfall below the take-or-pay level."""
    signing_cost: Money = 0.0
    """One-off signing / qualification cost, paid in the contract's first year inside the
    horizon if the offer is signed."""
    prepayment: Money = 0.0
    """One-off payment at signing that reserves the offer's capacity (e.g. Apple-MP)."""
    prepayment_credit_share: Fraction = 0.0
    """Share of the prepayment credited against later purchases under this offer."""
    start_years: list[Year] | None = None
    """Years in which the contract may start (one is chosen if signed); None: first_year."""
    term_years: Annotated[int, Field(ge=1, le=100)] | None = None
    """Contract length from its start; None: until last_year."""
    decision: Literal["free", "forced", "forbidden"] = "free"
    """Whether the optimizer chooses to sign it ("free"), must sign it ("forced": already
    signed, or a what-if), or must not ("forbidden")."""
    # --- under disruption ---------------------------------------------------------------------
    force_majeure: list[Cause] = Field(default_factory=lambda: list(DEFAULT_FORCE_MAJEURE))
    """Causes of a capacity cut that the contract's force-majeure clause covers. A scenario
    that cuts the supplier's capacity curtails the contract pro rata whatever the cause; for
    a covered cause the supplier is excused, for any other it owes `liquidated_damages_per_kg`.
    Empty: no force-majeure clause."""
    liquidated_damages_per_kg: PricePerKg = 0.0
    """What the supplier pays the buyer per kg of contracted volume curtailed by a capacity
    cut that its force-majeure clause does not cover (0: no damages)."""
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    source: str = ""
    notes: str = ""

    @model_validator(mode="after")
    def _terms(self) -> Offer:
        if (self.price_per_kg is None) == (self.index is None):
            raise ValueError("give exactly one of price_per_kg (fixed) or index")
        if self.index is None and (self.floor_per_kg is not None or self.ceiling_per_kg
                                   is not None or self.upside_share > 0):
            raise ValueError("floor, ceiling and upside sharing need an index-linked price")
        if (self.floor_per_kg is not None and self.ceiling_per_kg is not None
                and self.floor_per_kg > self.ceiling_per_kg):
            raise ValueError(f"floor {self.floor_per_kg} is above ceiling {self.ceiling_per_kg}")
        if (self.upside_share > 0) != (self.upside_above_per_kg is not None):
            raise ValueError("upside_share and upside_above_per_kg go together")
        if self.tiers and self.tiers[0].from_t != 0:
            raise ValueError("the first tier must start at from_t: 0")
        if any(b.from_t <= a.from_t for a, b in zip(self.tiers, self.tiers[1:], strict=False)):
            raise ValueError("tiers must have strictly increasing from_t")
        if self.tiers and self.tier_mode == "incremental" and self.tier_basis == "total":
            raise ValueError("incremental tiers are supported on annual volume only")
        if self.tiers and self.take_or_pay_share is not None:
            raise ValueError("an offer cannot have both volume tiers and take-or-pay (yet)")
        return self


class PriceIndex(_Strict):
    """A published price series (e.g. NdPr oxide, China domestic ex-VAT) that index-linked
    offers refer to; scenarios may give their own paths."""

    id: Id
    material: Id | None = None
    price_per_kg: PriceSeries
    by_scenario: dict[Id, PriceSeries] = Field(default_factory=dict)
    source: str = ""


class Tariff(_Strict):
    """An ad valorem duty on purchases (contracts and spot) of `materials` from a seller in
    an origin country by a buyer in a destination country. Duties that match stack (add)."""

    id: Id
    origins: list[CountryCode] = Field(default_factory=list)
    origin_groups: list[Id] = Field(default_factory=list)
    destinations: list[CountryCode] = Field(default_factory=list)
    destination_groups: list[Id] = Field(default_factory=list)
    """Empty destinations: every destination."""
    materials: list[Id] | None = None
    rate: Annotated[float, Field(ge=0, le=10)] | dict[Year, Annotated[float, Field(ge=0, le=10)]]
    """Fraction of the purchase value (0.25 = 25 %), constant or by year (missing years: 0)."""
    rate_above_100_percent: bool = False
    """Say true to allow a rate above 1 (above 100 %, e.g. 1.45 for 145 %); without it such a
    rate is taken for a percent typed as a number (10 meaning 10 %) and rejected."""
    description: str = ""
    source: str = ""

    @model_validator(mode="after")
    def _has_origin(self) -> Tariff:
        if not self.origins and not self.origin_groups:
            raise ValueError("a tariff needs origins or origin_groups")
        rates = self.rate.values() if isinstance(self.rate, dict) else [self.rate]
        high = max(rates, default=0.0)
        if high > 1 and not self.rate_above_100_percent:
            raise ValueError(f"rate {high:g} is {high:.0%} of the purchase value; rates are "
                             f"fractions (0.10 = 10 %): write {high / 100:g} for {high:g} %, or "
                             "set rate_above_100_percent: true for a duty above 100 %")
        return self


class SpotMarket(_Strict):
    id: Id
    material: Id
    origin: CountryCode
    price_per_kg: PriceSeries
    availability_t: TonnesSeries | None = None
    unlimited: bool = False
    """Set true (and leave availability_t out) for a market with no volume limit."""
    feed_origin: dict[StageField, CountryCode] = Field(default_factory=dict)
    """Country of each stage of the spot product's chain, its own last stage included (e.g.
    MINE, SEP_L, METAL, MAGNET all CN for Chinese magnets). Origin rules see only these."""
    resale_haircut: Fraction | None = None
    """If set, buyers may sell surplus into this market at price x (1 - haircut)."""
    emission_kg_per_kg: EmissionFactor = 0.0
    """Cradle-to-gate kg CO2e per kg of what the market sells."""
    source: str = ""

    @model_validator(mode="after")
    def _availability_or_unlimited(self) -> SpotMarket:
        if self.unlimited == (self.availability_t is not None):
            raise ValueError("give exactly one of availability_t or unlimited: true")
        return self


class Stockpile(_Strict):
    """A strategic stockpile (formulation.md, stockpile_balance): held by a buyer (`holder` =
    its id; costs in the objective) or a government (any other name; costs are its fiscal
    cost), of one material, at a location (a facility whose recipe takes the material, or a
    buyer that demands it). Filled by purchases on its spot markets (first stage, or per
    scenario), released to buyers along the arc stockpile -> location: at any time, or only
    where a scenario's `releases` (a disruption) allow it. The stock keeps origin tags."""

    id: Id
    """Unique among nodes (facilities, spot markets, buyers, stockpiles)."""
    holder: Annotated[str, StringConstraints(min_length=1)]
    """A buyer id (a buyer's own stock) or a government's name (a third party)."""
    material: Id
    location: Id
    """Node releases go to: a facility taking `material` in its recipe, or a buyer demanding
    it."""
    capacity_t: Tonnes
    initial_t: Tonnes = 0.0
    """Level before the first year."""
    initial_origin: dict[StageField, CountryCode] = Field(default_factory=dict)
    """Origin of the initial stock: country of each stage of its chain (as `feed_origin`)."""
    holding_cost_per_kg_year: PricePerKg = 0.0
    """Cost per kg held at the end of a year."""
    min_level_t: TonnesSeries | None = None
    """Minimum level at the end of each year, held wherever the stockpile may not release."""
    markets: list[Id] = Field(default_factory=list)
    """Spot markets of `material` it buys on (at their price, within their availability)."""
    purchase_min_t: TonnesSeries = 0.0
    purchase_max_t: TonnesSeries | None = None
    """Purchases per year (all its markets): at least `purchase_min_t`, at most
    `purchase_max_t` (None: only the capacity bounds them). A government's purchases are
    data: give both, equal, and one market."""
    purchase_stage: Literal["first", "scenario"] = "first"
    """"first": purchases decided now, the same in every scenario; "scenario": per scenario."""
    release: Literal["disruption", "any_time"] = "disruption"
    """"disruption": releases only where a scenario's `releases` window covers the year;
    "any_time": in every year and scenario."""
    release_to: list[Id] | None = None
    """Buyers it may release to (None: the holder, for a buyer's stockpile; every buyer, for
    a government's)."""
    release_price_per_kg: PriceSeries = 0.0
    """What a buyer pays a government per kg released to it (0 for a buyer's own stock)."""
    release_freight_per_kg: PricePerKg = 0.0
    """Freight on the arc stockpile -> location."""
    release_emission_kg_per_kg: EmissionFactor | None = None
    """Transport kg CO2e per kg on the arc stockpile -> location (None: the network's
    `default_emission_kg_per_kg`, as on a default arc)."""
    emission_kg_per_kg: EmissionFactor = 0.0
    """Cradle-to-gate kg CO2e per kg of the stocked material, carried by every released tonne
    (formulation.md, Emissions and concentration)."""
    source: str = ""
    notes: str = ""

    @model_validator(mode="after")
    def _levels(self) -> Stockpile:
        if self.initial_t > self.capacity_t:
            raise ValueError(f"initial_t {self.initial_t:g} is above capacity_t "
                             f"{self.capacity_t:g}")
        mins = (list(self.min_level_t.values()) if isinstance(self.min_level_t, dict)
                else [self.min_level_t or 0.0])
        if max(mins, default=0.0) > self.capacity_t:
            raise ValueError(f"min_level_t {max(mins):g} is above capacity_t "
                             f"{self.capacity_t:g}")
        return self


class Scope(_Strict):
    """Which part of the instance a rule speaks about; None means all."""

    buyers: list[Id] | None = None
    materials: list[Id] | None = None
    years: list[Year] | None = None


class RuleBase(_Strict):
    id: Id
    description: str = ""
    source: str = ""
    scope: Scope = Field(default_factory=Scope)
    hard: bool = True
    penalty_per_unit: Money | None = None
    """Soft rules only: cost per unit of violation (unit given by the rule kind)."""
    in_expectation: bool = False
    """Hold on the probability-weighted average over scenarios instead of in every scenario
    (rules on deliveries; supplier counts are decided once and hold in every scenario)."""
    first_stage: ClassVar[bool] = False
    """True for kinds decided on the portfolio alone (supplier counts, bankability): one row
    for every scenario (rows kinds: scenario label '' in rules.csv)."""

    @model_validator(mode="after")
    def _soft_needs_penalty(self) -> RuleBase:
        if not self.hard and self.penalty_per_unit is None:
            raise ValueError("a soft rule (hard: false) needs penalty_per_unit")
        if self.hard and self.penalty_per_unit is not None:
            raise ValueError("penalty_per_unit is only for soft rules (hard: false)")
        if self.in_expectation and self.first_stage:
            raise ValueError(f"{getattr(self, 'kind', '')} rules are first-stage (decided on the "
                             "portfolio alone): in_expectation does not apply")
        return self


ShareSeries = Fraction | dict[Year, Fraction]
"""A share (fraction) that is constant or given per year (a ramp); years must be in scope."""
StageList = Annotated[list[StageField], Field(min_length=1)]


class _CountRule(RuleBase):
    first_stage: ClassVar[bool] = True
    count: Literal["facility", "company"] = "facility"
    """What a distinct supplier is: a facility, or a company (all its facilities)."""


class MaxSuppliersRule(_CountRule):
    """At most `max_count` distinct suppliers with a signed offer in scope.
    Violation unit: suppliers."""

    kind: Literal["max_suppliers"]
    max_count: Annotated[int, Field(ge=0, le=10_000)]


class MinSuppliersRule(_CountRule):
    """At least `min_count` distinct suppliers with a signed offer in scope.
    Violation unit: suppliers."""

    kind: Literal["min_suppliers"]
    min_count: Annotated[int, Field(ge=0, le=10_000)]


class _ShareRule(RuleBase):
    pooled: bool = False
    """False: the share holds for each buyer in scope; True: for their pooled supply."""


class MaxSupplierShareRule(_ShareRule):
    """Single-supplier (or single-company) cap: of the scoped buyers' purchases of a scoped
    material in a year (contracts + spot), at most `max_share` from one supplier unit.
    Violation unit: tonnes above the cap."""

    kind: Literal["max_supplier_share"]
    max_share: Fraction
    by: Literal["facility", "company"] = "facility"


class MaxCountryShareRule(_ShareRule):
    """Country cap (CRMA style): deliveries to the scoped buyers of a scoped material with a
    step at stage S in any single country C are at most `max_share` of their demand (CRMA
    counts shares of consumption), for each listed stage and each country outside the exempt
    groups/countries. Violation unit: tonnes above the cap."""

    kind: Literal["max_country_share"]
    max_share: Fraction
    stages: StageList
    exempt_groups: list[Id] = Field(default_factory=list)
    exempt_countries: list[CountryCode] = Field(default_factory=list)


class MinContentShareRule(_ShareRule):
    """Minimum content (tax-credit style): at least `min_share` of the scoped buyers' demand
    of a scoped material must be delivered by chains whose every step at each listed stage
    lies in the qualifying countries (union of `groups` and `countries`; listing several
    groups declares them mutually recognised). Violation unit: tonnes short."""

    kind: Literal["min_content_share"]
    min_share: ShareSeries
    stages: StageList
    groups: list[Id] = Field(default_factory=list)
    countries: list[CountryCode] = Field(default_factory=list)
    recycled_qualifies: bool = False
    """Also count chains with a RECYCLE step in a qualifying country (as the 30D credit
    counted North-American recycling)."""


class ExclusionRule(RuleBase):
    """Exclusion (DFARS style): from `from_year`, no delivery to a scoped buyer of a scoped
    material may have a step at a listed stage in an excluded country (union of `groups` and
    `countries`). Violation unit: tonnes of excluded content."""

    kind: Literal["exclusion"]
    stages: StageList
    groups: list[Id] = Field(default_factory=list)
    countries: list[CountryCode] = Field(default_factory=list)
    from_year: Year | None = None


class MinRecycledShareRule(_ShareRule):
    """Minimum recycled content: at least `min_share` of the scoped buyers' demand of a scoped
    material must be delivered by chains with a RECYCLE step. Violation unit: tonnes short."""

    kind: Literal["min_recycled_share"]
    min_share: ShareSeries


class MaxOfftakeShareRule(RuleBase):
    """Offtake cap by buyer class: at each listed facility, buyers of class `buyer_class` may
    take at most `max_share` of its output (contract sales + tolling) in a year.
    Violation unit: tonnes above the cap."""

    kind: Literal["max_offtake_share"]
    facilities: Annotated[list[Id], Field(min_length=1)]
    buyer_class: Annotated[str, StringConstraints(min_length=1)]
    max_share: Fraction


class BankabilityRule(RuleBase):
    """Bankability (a lender's condition): a build option of a listed facility is built only
    if the offtake committed to the facility under signed contracts, pooled over the scoped
    buyers, covers at least `min_share` of its ramped nameplate in each of its first
    `first_years` years of operation. Committed offtake: take_or_pay_share x contracted volume
    for take-or-pay offers, the contracted volume for the others. Decided on the portfolio
    alone (first stage). Violation unit: tonnes of committed offtake short."""

    kind: Literal["bankability"]
    first_stage: ClassVar[bool] = True
    facilities: Annotated[list[Id], Field(min_length=1)]
    """Facilities with build options (candidate plants or expansions)."""
    min_share: Fraction
    """Share of the ramped nameplate that committed offtake must cover (lenders: ~0.8)."""
    first_years: Annotated[int, Field(ge=1, le=30)] = 5
    """Years of operation, from the start year, that must be covered (the loan's first
    years)."""


class MaxEmissionIntensityRule(_ShareRule):
    """Emission intensity cap: the emissions of the supply chains delivering a scoped material
    to a buyer (or the pooled group) in a year are at most `max_kg_per_kg` kg CO2e per kg
    delivered (formulation.md, max_emission_intensity). Violation unit: t CO2e above the cap.
    """

    kind: Literal["max_emission_intensity"]
    max_kg_per_kg: EmissionFactor | dict[Year, EmissionFactor]
    """kg CO2e per kg delivered, constant or by year (years must be in the horizon)."""


Rule = Annotated[
    MaxSuppliersRule | MinSuppliersRule | MaxSupplierShareRule | MaxCountryShareRule
    | MinContentShareRule | ExclusionRule | MinRecycledShareRule | MaxOfftakeShareRule
    | BankabilityRule | MaxEmissionIntensityRule,
    Field(discriminator="kind"),
]
"""The built-in rule kinds (for type hints); which kinds an instance may hold is decided by
`offtake.domain.registry`, which calls `set_rule_models`."""


Multiplier = Annotated[float, Field(ge=0, le=100)]


class _Dated(_Strict):
    """A scenario change that applies from `from_year` (None: the first year) through
    `to_year` (None: the last year)."""

    @model_validator(mode="after")
    def _window(self) -> _Dated:
        first, last = getattr(self, "from_year", None), getattr(self, "to_year", None)
        if first is not None and last is not None and last < first:
            raise ValueError(f"to_year {last} is before from_year {first}")
        return self


class CapacityChange(_Dated):
    """Scale the capacity of matching facilities from a year on (through `to_year`, when
    given). A facility matches when it is listed (or none are), its country is in
    `countries` or a member of `groups` (or both are empty), and its stage is listed (or none
    are). Several matching changes multiply."""

    facilities: list[Id] | None = None
    countries: list[CountryCode] = Field(default_factory=list)
    groups: list[Id] = Field(default_factory=list)
    stages: list[StageField] | None = None
    from_year: Year | None = None
    to_year: Year | None = None
    multiplier: Multiplier
    cause: Cause = "other"
    """Why the capacity changes (a cut curtails the facility's contracts pro rata; the
    offer's force-majeure clause decides whether the supplier owes damages for it)."""


class DemandChange(_Dated):
    """Scale the demand of matching buyers and materials from a year on (through
    `to_year`, when given)."""

    buyers: list[Id] | None = None
    materials: list[Id] | None = None
    from_year: Year | None = None
    to_year: Year | None = None
    multiplier: Multiplier


class SpotChange(_Dated):
    """Scale the availability and price of matching spot markets from a year on (through
    `to_year`, when given)."""

    markets: list[Id] | None = None
    origins: list[CountryCode] = Field(default_factory=list)
    from_year: Year | None = None
    to_year: Year | None = None
    availability_multiplier: Multiplier = 1.0
    price_multiplier: Multiplier = 1.0


class ReleaseWindow(_Dated):
    """Years in which stockpiles may release in a scenario (a disruption hits): the listed
    stockpiles (None: every stockpile with `release: disruption`), from `from_year` (None:
    the first year) through `to_year` (None: the last year)."""

    stockpiles: list[Id] | None = None
    from_year: Year | None = None
    to_year: Year | None = None


class _Changes(_Strict):
    index_paths: dict[Id, PriceSeries] = Field(default_factory=dict)
    """Index id -> price path in this scenario (overrides the index's base path)."""
    capacity: list[CapacityChange] = Field(default_factory=list)
    demand: list[DemandChange] = Field(default_factory=list)
    spot: list[SpotChange] = Field(default_factory=list)
    releases: list[ReleaseWindow] = Field(default_factory=list)
    """Windows in which stockpiles may release (formulation.md, stockpile_release)."""


class Scenario(_Changes):
    id: Id
    probability: Fraction
    description: str = ""


class FactorLevel(_Changes):
    id: Id
    probability: Fraction
    description: str = ""


class Factor(_Strict):
    """An uncertain factor with discrete levels; factors are independent."""

    id: Id
    levels: Annotated[list[FactorLevel], Field(min_length=1)]


class IndexSampling(_Strict):
    """Sample `n` price paths of `index` around its base path: geometric Brownian motion
    with annual volatility `volatility` from the first year (mean preserved)."""

    index: Id
    n: Annotated[int, Field(ge=1, le=10_000)] = 1
    """Paths per combination of factor levels (with `draws`: unused, one path per draw)."""
    volatility: Annotated[float, Field(ge=0, le=3)]
    seed: int = 0


Probabilities = dict[Year, Fraction]


class ExportControlEvent(_Strict):
    """An export ban or licensing regime of covered nations on chosen stages and materials:
    it starts in a year (with a probability per year; the rest: not in the horizon) and
    lasts a number of years (with a probability per duration; the rest: until the end of the
    horizon, i.e. not suspended in it). While it lasts, the capacity of the matching
    facilities (country covered, stage and product chosen) is cut to `supply_share`
    (cause export_control: contracts curtailed, see force_majeure), the availability of the
    covered nations' spot markets of the materials too, the listed price indices jump by
    their multipliers and the other origins' spot markets of the materials by
    `outside_price_multiplier`. Becomes a factor whose levels are `none` and
    `from<year>-<k>y` / `from<year>-open`."""

    kind: Literal["export_control"]
    id: Id
    countries: list[CountryCode] = Field(default_factory=list)
    groups: list[Id] = Field(default_factory=list)
    """Covered nations: the union of `countries` and the members of `groups` (not empty)."""
    stages: list[StageField] | None = None
    """Stages controlled (None: all)."""
    materials: list[Id] | None = None
    """Materials controlled: facilities' products and spot markets' materials (None: all)."""
    supply_share: Fraction = 0.0
    """Share of normal supply that still gets out: 0 for a ban, e.g. 0.3 under licensing."""
    start: Probabilities = Field(min_length=1)
    """Probability that the event starts in each year (they sum to at most 1)."""
    duration_years: dict[Annotated[int, Field(ge=1, le=100)], Fraction] = Field(
        default_factory=dict)
    """Probability that it lasts k years (they sum to at most 1; the rest: it is not
    suspended within the horizon)."""
    index_multipliers: dict[Id, Multiplier] = Field(default_factory=dict)
    """Price jumps of price indices while the event lasts."""
    outside_price_multiplier: Multiplier = 1.0
    """Price jump of the spot markets of the materials outside the covered nations."""
    releases: list[Id] = Field(default_factory=list)
    """Stockpiles that may release while the event lasts (a release window in each of its
    levels but `none`)."""
    description: str = ""
    source: str = ""

    @model_validator(mode="after")
    def _probabilities(self) -> ExportControlEvent:
        if not self.countries and not self.groups:
            raise ValueError("an export control needs covered countries or groups")
        for name in ("start", "duration_years"):
            total = sum(getattr(self, name).values())
            if total > 1 + 1e-9:
                raise ValueError(f"{name} probabilities sum to {total:g}, above 1")
        return self


class DeficitEvent(_Strict):
    """A market deficit of some materials (e.g. CRU's 2,920 t Dy/Tb oxide shortfall by 2035):
    with `probability` it grows linearly from `from_year` to its full size in `full_year`,
    where `shortfall_t` of `world_demand_t` finds no supply. In year t the ramp r_t =
    min(1, (t - from_year + 1) / (full_year - from_year + 1)) scales the availability of the
    materials' spot markets by 1 - r_t x shortfall_t / world_demand_t and their prices, and
    those of price indices of the materials, by 1 + r_t (price_multiplier - 1). Becomes a
    factor with levels `none` and `on`."""

    kind: Literal["deficit"]
    id: Id
    materials: Annotated[list[Id], Field(min_length=1)]
    probability: Fraction
    from_year: Year
    full_year: Year
    shortfall_t: Tonnes
    world_demand_t: Annotated[float, Field(gt=0, le=MAX_TONNES)]
    price_multiplier: Multiplier = 1.0
    markets: list[Id] | None = None
    """Spot markets hit (None: every market of the materials)."""
    releases: list[Id] = Field(default_factory=list)
    """Stockpiles that may release from `from_year` on in the level `on`."""
    description: str = ""
    source: str = ""

    @model_validator(mode="after")
    def _sizes(self) -> DeficitEvent:
        if self.full_year < self.from_year:
            raise ValueError(f"full_year {self.full_year} is before from_year {self.from_year}")
        if self.shortfall_t > self.world_demand_t:
            raise ValueError("shortfall_t is above world_demand_t")
        return self


Event = Annotated[ExportControlEvent | DeficitEvent, Field(discriminator="kind")]


class Draws(_Strict):
    """Draw `n` scenarios at random from the spec's distribution (each draws one level of
    every factor and event and, with `sampling`, a price path; probability 1/n each)
    instead of the product of all levels."""

    n: Annotated[int, Field(ge=1, le=100_000)]
    seed: int = 0
    method: Literal["monte_carlo", "latin_hypercube"] = "monte_carlo"
    """Independent draws, or a Latin hypercube: each uniform behind a level choice or a
    yearly price step is stratified into n equal slices, one draw in each."""


class ScenarioSpec(_Strict):
    """A compact scenario set: the product of independent factors' levels (disruption
    `events` are factors too), optionally each combined with sampled index paths
    (probability split evenly); or, with `draws`, a random sample of that distribution."""

    factors: list[Factor] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    sampling: IndexSampling | None = None
    draws: Draws | None = None


class CarbonPrice(_Strict):
    """A price on the emissions of what the buyers receive (formulation.md, Emissions and
    concentration): term `carbon_costs`."""

    per_t_co2e: Annotated[float, Field(ge=0, le=100_000)] | dict[
        Year, Annotated[float, Field(ge=0, le=100_000)]]
    """Currency per t CO2e, constant or by year (missing years: 0)."""
    source: str = ""
    description: str = ""


class Instance(_Strict):
    meta: Meta
    horizon: Horizon
    country_groups: list[CountryGroup] = Field(default_factory=list)
    materials: list[Material] = Field(min_length=1)
    facilities: list[Facility] = Field(default_factory=list)
    network: Network = Field(default_factory=Network)
    buyers: list[Buyer] = Field(min_length=1)
    offers: list[Offer] = Field(default_factory=list)
    spot_markets: list[SpotMarket] = Field(default_factory=list)
    price_indices: list[PriceIndex] = Field(default_factory=list)
    tariffs: list[Tariff] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    carbon_price: CarbonPrice = Field(default_factory=lambda: CarbonPrice(per_t_co2e=0.0))
    """No price by default (0 per t CO2e): every optimum as without emissions."""
    stockpiles: list[Stockpile] = Field(default_factory=list)
    scenarios: list[Scenario] = Field(
        default_factory=lambda: [Scenario(id="base", probability=1.0)]
    )

    @model_validator(mode="after")
    def _consistent(self) -> Instance:
        from offtake.domain.findings import InvalidInstance, errors
        from offtake.domain.validation import check_instance  # the whole-instance checks

        found = errors(check_instance(self))
        if found:
            raise InvalidInstance(found)
        return self


SECTION_MODELS: dict[str, type[_Strict]] = {
    "meta": Meta,
    "horizon": Horizon,
    "country_groups": CountryGroup,
    "materials": Material,
    "facilities": Facility,
    "network": Network,
    "buyers": Buyer,
    "offers": Offer,
    "spot_markets": SpotMarket,
    "price_indices": PriceIndex,
    "tariffs": Tariff,
    "carbon_price": CarbonPrice,
    "stockpiles": Stockpile,
    "scenarios": Scenario,
}
"""Model of each top-level section (for list sections: of each item). Rules use `Rule`."""

LIST_SECTIONS = ("country_groups", "materials", "facilities", "buyers", "offers",
                 "spot_markets", "price_indices", "tariffs", "rules", "scenarios",
                 "stockpiles")


_rule_adapter: TypeAdapter[Any] = TypeAdapter(Rule)


def set_rule_models(models: list[type[RuleBase]]) -> None:
    """Accept rules of exactly these models (discriminated by `kind`) in `Instance.rules` and
    in `rule_adapter()`. Called by the registry when a kind is added or removed."""
    global _rule_adapter
    union: Any = Annotated[Union[tuple(models)], Field(discriminator="kind")]  # noqa: UP007
    Instance.model_fields["rules"].annotation = list[union]  # type: ignore[valid-type]
    Instance.model_rebuild(force=True)
    _rule_adapter = TypeAdapter(union)


def rule_adapter() -> TypeAdapter[Any]:
    """Validator of one rule item against the registered kinds (the loader checks each rule
    on its own so that one bad rule does not hide the others)."""
    return _rule_adapter

