"""Sweep specifications: which instance, which solve options, and which values to give which
instance paths (`--set` syntax), combined into points.

A spec is a YAML file read into the strict `SweepSpec` model:

    name: crma-curve                       # optional; default: the file's name
    instance: ../instances/medium_multitier.yaml   # relative to the spec's folder (or to
                                           # the current folder if not found there)
    sets: [offers.OFF-MP.decision=forced]  # optional: applied to every point first
    axes:
      - {set: rules.CRMA-DIV-65.max_share, range: {start: 0.5, stop: 1.0, step: 0.05}}
      - {set: offers.OFF-MP.floor_per_kg, values: [90, 100, 110], name: floor}
      - {set: scenarios.HIGH.probability, sample: {n: 8, low: 0.1, high: 0.5, seed: 7}}
    combine: product                       # product | zip | one_at_a_time
    options: {mip_gap: 1.0e-6, time_limit: 300}

An axis gives one path a list of `values`, a `range` (start, stop and step; stop included
when a whole number of steps reaches it) or a seeded uniform `sample`. `product` makes
every combination, `zip` pairs the i-th values of all axes (same lengths), `one_at_a_time`
moves each axis alone from the base instance (the base point first: a tornado).

Every point is the base instance changed by `apply_sets` with 'PATH=VALUE' texts, exactly as
`offtake solve --set` does, and validated again. Problems with the spec itself are findings
located in its file (`axes[1].range.step`); `check_paths` reports paths the instance does not
have, located at the axis.

Owns the spec format; imports only the domain and io (no Pyomo, no solver).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from offtake.domain.findings import Finding, InvalidInstance, format_loc, nearest
from offtake.domain.intake import parse_yaml
from offtake.domain.schema import Instance
from offtake.domain.transforms import apply_sets

Scalar = bool | int | float | str
RESERVED = {"key", "point_id", "sweep", "index", "instance", "instance_sha256", "currency",
            "code_version", "options", "sets", "axes", "status", "message", "objective",
            "bound", "gap", "seconds", "warm", "attempts", "worker", "finished_at",
            "expected_cost", "fiscal_total", "signed", "n_signed", "built", "epsilon",
            "lambda"}
"""Record columns (`analysis.sweep.point_record`) an axis may not be named after."""
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """start, start + step, ... up to stop (included when reached, to 1e-9 of a step)."""

    start: Finite
    stop: Finite
    step: Annotated[float, Field(gt=0, allow_inf_nan=False)]

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.stop < self.start:
            raise ValueError(f"stop ({self.stop:g}) is below start ({self.start:g})")
        if (self.stop - self.start) / self.step > 100_000:
            raise ValueError("more than 100,000 values: use a larger step")
        return self

    def values(self) -> list[float]:
        n = math.floor((self.stop - self.start) / self.step + 1e-9)
        return [_tidy(self.start + k * self.step) for k in range(n + 1)]


class Sample(_Strict):
    """`n` values drawn uniformly from [low, high] with `seed` (the same every run)."""

    n: Annotated[int, Field(ge=1, le=100_000)]
    low: Finite
    high: Finite
    seed: int = 0

    @model_validator(mode="after")
    def _ordered(self) -> Sample:
        if self.high <= self.low:
            raise ValueError(f"high ({self.high:g}) must be above low ({self.low:g})")
        return self

    def values(self) -> list[float]:
        rng = random.Random(self.seed)
        return [_tidy(rng.uniform(self.low, self.high)) for _ in range(self.n)]


class Axis(_Strict):
    """One instance path (`--set` syntax) and the values it takes."""

    set: Annotated[str, Field(min_length=1, pattern=r"^[^=\s]+$")]
    """The path, as for `--set PATH=VALUE`, e.g. rules.CRMA-DIV-65.max_share."""
    name: str | None = None
    """Column name in the store (default: the path)."""
    values: Annotated[list[Scalar], Field(min_length=1)] | None = None
    range: Range | None = None
    sample: Sample | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Axis:
        given = [k for k in ("values", "range", "sample") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of values, range or sample"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.values is not None:
            bad = [v for v in self.values if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                raise ValueError(f"values must be finite, not {bad[0]}")
        return self

    @property
    def label(self) -> str:
        return self.name or self.set

    def points(self) -> list[Scalar]:
        if self.values is not None:
            return list(self.values)
        source = self.range if self.range is not None else self.sample
        assert source is not None
        return list(source.values())


class Options(_Strict):
    """Solve options of every point (`offtake.solvers.options.SolveOptions`)."""

    mip_gap: Annotated[float, Field(ge=0, le=1)] = 1e-6
    time_limit: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """HiGHS's own limit in seconds per point (a point stopped by it is recorded with the
    status HiGHS gives; the wall-clock limit of `offtake sweep --time-limit` stops a worker)."""
    cvar_weight: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    cvar_alpha: Annotated[float, Field(gt=0, lt=1)] = 0.95


class SweepSpec(_Strict):
    """A sweep: base instance, solve options, axes and how they combine."""

    name: str | None = None
    instance: Annotated[str, Field(min_length=1)]
    sets: list[str] = Field(default_factory=list)
    """'PATH=VALUE' changes applied to the base instance before any axis."""
    axes: Annotated[list[Axis], Field(min_length=1)]
    combine: Literal["product", "zip", "one_at_a_time"] = "product"
    options: Options = Field(default_factory=Options)

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        labels = [a.label for a in self.axes]
        taken = sorted(x for x in labels if x in RESERVED or ":" in x)
        if taken:
            raise ValueError(f"axis name {taken[0]!r} is a record column (or has ':'): give "
                             "the axis another name:")
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ValueError(f"axis names must differ: {', '.join(twice)} twice (give name:)")
        if self.combine == "zip":
            sizes = {a.label: len(a.points()) for a in self.axes}
            if len(set(sizes.values())) > 1:
                raise ValueError("zip needs axes of one length, got "
                                 + ", ".join(f"{k}: {n}" for k, n in sizes.items()))
        if self.size() > 1_000_000:
            raise ValueError(f"{self.size():,} points: too many")
        return self

    def size(self) -> int:
        sizes = [len(a.points()) for a in self.axes]
        if self.combine == "product":
            return math.prod(sizes)
        if self.combine == "zip":
            return sizes[0]
        return 1 + sum(sizes)

    def points(self) -> list[Point]:
        """The points in order: product (last axis fastest), zip, or one at a time (the base
        instance first, then each axis's values with the others at their base values)."""
        values = [a.points() for a in self.axes]
        if self.combine == "product":
            combos: list[tuple[Scalar | None, ...]] = list(itertools.product(*values))
        elif self.combine == "zip":
            combos = list(zip(*values, strict=True))
        else:
            combos = [(None,) * len(self.axes)]
            for i, vals in enumerate(values):
                combos += [tuple(v if j == i else None for j in range(len(self.axes)))
                           for v in vals]
        return [Point(n, {a.label: v for a, v in zip(self.axes, combo, strict=True)},
                      tuple(self.sets) + tuple(f"{a.set}={value_text(v)}" for a, v in
                                               zip(self.axes, combo, strict=True)
                                               if v is not None))
                for n, combo in enumerate(combos)]

    def solve_options(self) -> dict[str, Any]:
        return self.options.model_dump()


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its position, each axis's value (None: the axis is at its base
    value, in a one-at-a-time sweep) and the 'PATH=VALUE' changes that make it."""

    index: int
    values: dict[str, Scalar | None]
    sets: tuple[str, ...]

    @property
    def point_id(self) -> str:
        """A name of the changes alone (the same point in any sweep)."""
        return hashlib.sha256("\n".join(self.sets).encode()).hexdigest()[:16]


def value_text(v: Scalar) -> str:
    """A value as the text of '--set PATH=VALUE' that reads back as the same value."""
    if isinstance(v, str):
        return v if parse_yaml(v) == v else json.dumps(v)
    return json.dumps(v)


def _tidy(x: float) -> float:
    """0.30000000000000004 -> 0.3: values of ranges and samples read as written."""
    return float(f"{x:.12g}")


# --- reading a spec file ---------------------------------------------------------------------
@dataclass
class LoadedSpec:
    spec: SweepSpec
    path: Path
    instance_path: Path


def load_spec(path: str | Path) -> LoadedSpec:
    """Read and validate a spec file; `InvalidInstance` with every finding, each located in
    the file (`axes[0].range.step`) with a hint."""
    path = Path(path)
    fname = str(path)
    if not path.exists():
        raise InvalidInstance([Finding("file_not_found", "error", "", "spec file not found",
                                       file=fname)])
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidInstance([Finding("yaml_syntax", "error", loc,
                                       str(exc).splitlines()[0], file=fname)]) from exc
    if not isinstance(raw, dict):
        raise InvalidInstance([Finding("bad_spec", "error", "(top level)",
                                       "a sweep spec is a mapping with instance and axes",
                                       "see offtake.analysis.spec", file=fname)])
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInstance([_finding(e, fname) for e in exc.errors()]) from exc
    instance = Path(spec.instance)
    if not instance.is_absolute():
        beside = path.parent / instance
        instance = beside if beside.exists() or not instance.exists() else instance
    if not instance.exists():
        raise InvalidInstance([Finding("file_not_found", "error", "instance",
                                       f"instance file {spec.instance} not found",
                                       f"looked in {path.parent} and the current folder",
                                       file=fname)])
    if spec.name is None:
        spec = spec.model_copy(update={"name": path.stem})
    return LoadedSpec(spec, path, instance)


FIELD_HINTS = {
    "values": "a list of numbers or words, e.g. values: [0.5, 0.6]",
    "range": "range: {start: 0.5, stop: 1.0, step: 0.05}",
    "sample": "sample: {n: 10, low: 0.1, high: 0.5, seed: 1}",
    "combine": "product, zip or one_at_a_time",
    "set": "an instance path as for --set, e.g. rules.CRMA-DIV-65.max_share",
}


def _finding(err: Any, fname: str) -> Finding:
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-",
                                                                                "list[")))]
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    code = "unknown_field" if err["type"] == "extra_forbidden" else "bad_spec"
    hint = ""
    if err["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        hint = nearest(str(field), known) or "fields: " + ", ".join(known)
    elif field in FIELD_HINTS:
        hint = FIELD_HINTS[field]
    message = err["msg"].removeprefix("Value error, ")
    return Finding(code, "error", format_loc(loc), message, hint, file=fname)


def _fields_at(loc: list[Any]) -> list[str]:
    model: Any = SweepSpec
    for part in loc:
        if isinstance(part, int):
            continue
        ann = model.model_fields[part].annotation if part in model.model_fields else None
        nested = [t for t in (ann, *getattr(ann, "__args__", ())) if isinstance(t, type)
                  and issubclass(t, BaseModel)]
        if part == "axes":
            nested = [Axis]
        if not nested:
            break
        model = nested[0]
    return list(model.model_fields)


def check_paths(loaded: LoadedSpec, base: Instance) -> None:
    """Each axis's path with its first value, and the spec's `sets`, applied to the base
    instance: `InvalidInstance` with the findings located at the axis (`axes[0].set`) in the
    spec file, when a path is not in the instance or its first value is refused."""
    spec, problems = loaded.spec, []
    try:
        base = apply_sets(base, spec.sets)
    except InvalidInstance as exc:
        problems += [_at(f, "sets", loaded.path) for f in exc.findings]
    for i, axis in enumerate(spec.axes):
        first = axis.points()[0]
        try:
            apply_sets(base, [f"{axis.set}={value_text(first)}"])
        except InvalidInstance as exc:
            problems += [_at(f, f"axes[{i}].set", loaded.path, f"{axis.set}={first!r}")
                         for f in exc.findings if f.severity == "error"]
    if problems:
        raise InvalidInstance(problems)


def _at(f: Finding, where: str, path: Path, what: str = "") -> Finding:
    message = f"{f.location}: {f.message}" if f.location else f.message
    if what:
        message = f"{what}: {message}"
    return Finding(f.code, f.severity, where, message, f.hint, file=str(path))
