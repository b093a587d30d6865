"""Origin tags as text: the canonical tag of a set of (stage, country) steps, the combination
of input tags a processor's production row names, and the three tag predicates the rules use
(formulation.md, "Origin tags" and "Procurement rules").

Owns `tag_text` / `parse_tag`, `combination_text` / `parse_combination`, `output_tag` and the
predicates `has_step_in`, `all_steps_in`, `is_recycled`. Pure text and sets: reads nothing of
the plan and no context, so every other checker module may import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from offtake.domain.schema import Facility

STAGE_ORDER = ("MINE", "CRACK", "SEP_L", "SEP_H", "METAL", "MAGNET", "RECYCLE", "OTHER")
"""Stage order of a canonical origin tag (formulation.md, "Origin tags")."""

Step = tuple[str, str]
"""(stage, country) of one step of a chain."""


def step_at(stage: object, country: str) -> Step:
    """The step of a stage (a Stage or its text) in a country."""
    return (str(stage), country)


def feed_steps(feed_origin: dict) -> set[Step]:
    """The steps of a feed_origin mapping (stage -> country)."""
    return {step_at(stage, country) for stage, country in feed_origin.items()}


def tag_text(steps: Iterable[Step]) -> str:
    """Canonical tag: stages in STAGE_ORDER, then countries alphabetically, `STAGE:CC` joined
    by `|`; the empty set is ''."""
    order = {stage: n for n, stage in enumerate(STAGE_ORDER)}
    ordered = sorted(set(steps), key=lambda sc: (order.get(sc[0], len(order)), sc[0], sc[1]))
    return "|".join(f"{stage}:{country}" for stage, country in ordered)


_STEP_TEXT = re.compile(r"^([A-Z_]+):([A-Z]{2})$")


def parse_tag(text: str) -> frozenset[Step] | None:
    """The steps of a canonical tag, or None when `text` is not canonical."""
    if text == "":
        return frozenset()
    steps = []
    for part in text.split("|"):
        m = _STEP_TEXT.match(part)
        if m is None or m.group(1) not in STAGE_ORDER:
            return None
        steps.append((m.group(1), m.group(2)))
    return frozenset(steps) if tag_text(steps) == text else None


def combination_text(inputs: dict[str, str]) -> str:
    """A combination `k1=tag1;k2=tag2`, inputs sorted by material id."""
    return ";".join(f"{k}={inputs[k]}" for k in sorted(inputs))


def parse_combination(text: str) -> dict[str, str] | None:
    """Input material -> input tag of a combination, or None when it is malformed (a part
    without '=', a repeated material, materials out of order)."""
    if text == "":
        return {}
    out: dict[str, str] = {}
    for part in text.split(";"):
        k, sep, tag = part.partition("=")
        if not sep or not k or k in out:
            return None
        out[k] = tag
    return out if combination_text(out) == text else None


def output_tag(fac: Facility, inputs: dict[str, str]) -> str | None:
    """Tag of what processor `fac` makes from a combination: its own step plus every input
    tag's steps; None when an input tag is not canonical."""
    steps = {step_at(fac.stage, fac.country)}
    for tag in inputs.values():
        parsed = parse_tag(tag)
        if parsed is None:
            return None
        steps |= parsed
    return tag_text(steps)


def has_step_in(steps: frozenset[Step], stages: set[str], countries: set[str]) -> bool:
    """Predicate 1: a step at one of `stages` in one of `countries`."""
    return any(s in stages and cc in countries for s, cc in steps)


def all_steps_in(steps: frozenset[Step], stages: set[str], countries: set[str]) -> bool:
    """Predicate 2: a step at every listed stage, and all steps at those stages in
    `countries`."""
    at_stages = [(s, cc) for s, cc in steps if s in stages]
    return ({s for s, _ in at_stages} >= stages) and all(cc in countries for _, cc in at_stages)


def is_recycled(steps: frozenset[Step]) -> bool:
    """Predicate 3: a RECYCLE step (a tonne counts whole when any input branch was recycled)."""
    return any(s == "RECYCLE" for s, _ in steps)
