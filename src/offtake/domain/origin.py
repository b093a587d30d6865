"""Chain of custody: origin tags and how they propagate through the network.

A tonne of material carries an origin *tag*: the set of (stage, country) steps its whole
chain went through, every input branch included (e.g. a magnet made in the US from Malaysian-
separated NdPr mined in Australia and Malaysian Dy: MINE:AU | SEP_L:MY | SEP_H:MY | MAGNET:US).
Flows, processing and deliveries are indexed by tag, so shares by origin stay linear and exact:
no averaging of origins ever happens (a processor's output is indexed by the combination of
its input tags). Rules ask questions of a tag: "has a step at SEP_L in CN?", "are all its
MINE and SEP_L steps in the FTA group?", "did it go through RECYCLE?".

Pure functions; no Pyomo. Tags are canonical strings so they can index Pyomo sets and CSVs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import product
from typing import Any

from offtake.domain.schema import Stage

STAGE_ORDER = {s.value: i for i, s in enumerate(Stage)}
Step = tuple[str, str]  # (stage code, country code)


def make_tag(steps: Iterable[Step]) -> str:
    """Canonical text of a set of steps: stages in chain order, then countries."""
    uniq = sorted(set(steps), key=lambda s: (STAGE_ORDER[s[0]], s[1]))
    return "|".join(f"{stage}:{country}" for stage, country in uniq)


def steps(tag: str) -> frozenset[Step]:
    if not tag:
        return frozenset()
    return frozenset(tuple(part.split(":", 1)) for part in tag.split("|"))  # type: ignore[misc]


def own_feed_tag(facility: Any) -> str:
    """Tag of material a facility sells from its own feed: its declared upstream plus itself."""
    declared = {(s.value, c) for s, c in facility.feed_origin.items()}
    return make_tag(declared | {(facility.stage.value, facility.country)})


def spot_tag(market: Any) -> str:
    return make_tag((s.value, c) for s, c in market.feed_origin.items())


def processed_tag(facility: Any, input_tags: Iterable[str]) -> str:
    """Tag of a processor's output made from inputs with these tags."""
    merged: set[Step] = {(facility.stage.value, facility.country)}
    for t in input_tags:
        merged |= steps(t)
    return make_tag(merged)


def combo_key(inputs: Mapping[str, str]) -> str:
    """Text key of one combination of input tags, e.g. 'NDPR_METAL=MINE:AU|...;DY_OXIDE=...'."""
    return ";".join(f"{k}={inputs[k]}" for k in sorted(inputs))


def combos(facility: Any, tags_in: Mapping[str, set[str]]) -> list[tuple[str, dict[str, str], str]]:
    """Every combination of input tags a processor can receive: (key, inputs, output tag)."""
    materials = sorted(facility.recipe)
    if any(not tags_in.get(k) for k in materials):
        return []
    out = []
    for choice in product(*(sorted(tags_in[k]) for k in materials)):
        inputs = dict(zip(materials, choice, strict=True))
        out.append((combo_key(inputs), inputs, processed_tag(facility, choice)))
    return out


# --- questions rules ask of a tag ------------------------------------------------------------
def has_step_in(tag: str, stages: set[str], countries: set[str]) -> bool:
    """True if some step of the tag at one of `stages` lies in one of `countries`."""
    return any(s in stages and c in countries for s, c in steps(tag))


def all_steps_in(tag: str, stages: set[str], countries: set[str]) -> bool:
    """True if the tag has a step at every listed stage and all those steps lie in
    `countries` (a stage with no recorded step does not qualify)."""
    st = steps(tag)
    return all(any(s == stage for s, _ in st) for stage in stages) and all(
        c in countries for s, c in st if s in stages)


def countries_at(tag: str, stage: str) -> set[str]:
    return {c for s, c in steps(tag) if s == stage}


def is_recycled(tag: str) -> bool:
    return any(s == Stage.RECYCLE.value for s, _ in steps(tag))
