"""Validated instance transforms: the one way to change an instance.

Every feature that edits an instance (the CLI's `--set` and `--relax`, what-if studies, the
cost of compliance, sub-instances for some buyers) goes through these functions. Each one
dumps the instance to plain data, changes the data, and validates it again through the same
path as a loaded file (`offtake.domain.intake.validate_mapping`): field checks and the
whole-instance checks (references, years, probabilities, unservable demand) all run again, so
a change that breaks the instance is reported instead of slipping through the way
`model_copy(update=...)` lets it.

Problems raise `InvalidInstance` with located `Finding`s. Locations name list items by ID, as
every finding does (`offers[OFF-MP-IND].max_t_per_year`); a path error is located at the path
as written (`offers.OFF-MP-INDD`) and carries a did-you-mean hint.

Paths (`set_value`, `apply_sets`) are dot-separated: a top-level section
(`meta`, `horizon`, `offers`, ...), then, in a list, an item's ID (list items without IDs, such
as `offers.<id>.tiers` or a scenario's `capacity` changes, by position from 0), in a model a
field name, in a mapping a key (years are whole numbers: `demand_t.MAGNET_SH.2030`). IDs that
contain dots are matched against the existing IDs, longest first. A year under a field that is
a constant (`capacity_t: 1200`) turns the constant into one value per year first (over the
horizon; for an offer's `price_per_kg` over the offer's window; for a rule's `min_share` over
the rule's years), then sets that year.

Owns no file formats; imports only the domain (and pydantic).
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from offtake.domain.findings import Finding, InvalidInstance, errors, nearest
from offtake.domain.intake import parse_yaml, validate_mapping
from offtake.domain.schema import LIST_SECTIONS, SECTION_MODELS, Instance
from offtake.domain.validation import check_instance

__all__ = [
    "apply_sets",
    "decide",
    "forbid_offer",
    "force_offer",
    "from_data",
    "keep_buyers",
    "keep_buyers_noted",
    "parse_assignment",
    "relax_rules",
    "restrict_to_buyers",
    "revalidate",
    "set_offer_decision",
    "set_value",
    "set_values",
    "to_data",
]

ITEM_NAMES = {
    "country_groups": "country group", "materials": "material", "facilities": "facility",
    "buyers": "buyer", "offers": "offer", "spot_markets": "spot market",
    "price_indices": "price index", "tariffs": "tariff", "rules": "rule",
    "scenarios": "scenario",
}
"""What one item of each list section is called in messages."""


# --- data in and out -------------------------------------------------------------------------
def to_data(inst: Instance) -> dict[str, Any]:
    """The instance as plain data (dicts, lists, scalars; year keys stay whole numbers), ready
    to change and validate again with `from_data`."""
    return inst.model_dump(mode="python", by_alias=True)


def from_data(raw: dict[str, Any]) -> Instance:
    """Validate plain data exactly as a loaded file is validated; `InvalidInstance` with every
    finding (located by item ID) if it has errors."""
    return _validate(raw)[0]


def _validate(raw: dict[str, Any]) -> tuple[Instance, list[Finding]]:
    """The validated instance and its warnings, located by item ID."""
    result = validate_mapping(raw)
    if result.instance is None:
        raise InvalidInstance(result.findings)
    return result.instance, result.findings


def revalidate(inst: Instance) -> Instance:
    """The instance validated again from its data: catches an instance built by
    `model_copy(update=...)` or `model_construct`, which skip validation."""
    return from_data(to_data(inst))


# --- setting values by path ------------------------------------------------------------------
def set_value(inst: Instance, path: str, value: Any) -> Instance:
    """The instance with the field at `path` set to `value` (a Python value: 0.5, "forced",
    [..], {2030: 3500}; text is not parsed here, see `apply_sets`), validated again."""
    return set_values(inst, [(path, value)])


def set_values(inst: Instance, edits: Sequence[tuple[str, Any]]) -> Instance:
    """Several `set_value`s, validated once at the end (so that changes that only hold
    together, like two scenario probabilities, can be made); every path problem is reported
    at once."""
    return _set(inst, edits, [])


def _set(inst: Instance, edits: Sequence[tuple[str, Any]], problems: list[Finding]
         ) -> Instance:
    if not edits and not problems:
        return inst
    raw = to_data(inst)
    for path, value in edits:
        try:
            container, key = _resolve(raw, path)
        except _PathError as exc:
            problems.append(exc.finding)
            continue
        container[key] = value
    if problems:
        raise InvalidInstance(problems)
    return from_data(raw)


def parse_assignment(text: str) -> tuple[str, Any]:
    """'PATH=VALUE' -> (path, value), the value read as YAML reads it ('0.5' -> 0.5,
    'true' -> True, 'null' -> None, '[A, B]' -> a list, 'NO' -> 'NO'); `InvalidInstance` if
    the text is not of that form."""
    path, sep, value = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise InvalidInstance([Finding("bad_set", "error", text, "expected PATH=VALUE",
                                       "e.g. rules.SUPPLIER-CAP-50.max_share=0.65")])
    try:
        return path, parse_yaml(value.strip())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise InvalidInstance([Finding("bad_set", "error", path,
                                       f"value {value.strip()!r} is not valid YAML: {first}",
                                       "quote text that holds ':' or starts with '[' or '{'")]
                              ) from exc


def apply_sets(inst: Instance, assignments: Iterable[str]) -> Instance:
    """The instance with each 'PATH=VALUE' applied (see `parse_assignment`, `set_values`):
    what the CLI's repeatable `--set` does."""
    edits: list[tuple[str, Any]] = []
    problems: list[Finding] = []
    for text in assignments:
        try:
            edits.append(parse_assignment(text))
        except InvalidInstance as exc:
            problems += exc.findings
    return _set(inst, edits, problems)


class _PathError(Exception):
    def __init__(self, finding: Finding):
        super().__init__(str(finding))
        self.finding = finding


def _resolve(raw: dict[str, Any], path: str) -> tuple[Any, Any]:
    """The container (dict or list) in `raw` and the key that `path` names in it."""
    segs = path.split(".")
    if not path or any(s == "" for s in segs):
        raise _PathError(Finding("bad_path", "error", path, "empty path or empty segment",
                                 "write section.id.field, e.g. offers.OFF-A.max_t_per_year"))
    walk = _Walk(path, segs)
    node: Any = raw
    ann: Any = Instance
    container: Any = None
    key: Any = None
    new_key: Any
    i = 0
    while True:
        model = _model_of(ann, node)
        if isinstance(node, dict) and model is not None:
            new_key, child, used = walk.field(i, model), _field_annotation(model, segs[i]), 1
            walk.field_name = segs[i]
        elif isinstance(node, list):
            new_key, used = walk.item(i, node)
            child = _list_item(ann)
        elif isinstance(node, dict):
            new_key, used = walk.key(i, node, _dict_args(ann))
            child = (_dict_args(ann) or (None, None))[1]
        elif node is not None and _year_keyed(ann) and container is not None:
            node = container[key] = {y: node for y in walk.series_years(raw)}
            continue  # the constant is now a by-year mapping: look the year up in it
        else:
            raise walk.error("not_a_container", i,
                             f"'{walk.upto(i)}' is a single value ({node!r}); it has no "
                             f"'{segs[i]}'", f"set it as a whole: {walk.upto(i)}=...")
        if i + used == len(segs):
            return node, new_key
        if isinstance(node, dict) and new_key not in node:
            raise walk.error("unknown_key", i, f"no '{segs[i]}' in '{walk.upto(i)}'",
                             nearest(segs[i], [str(k) for k in node]))
        container, key, node, ann = node, new_key, node[new_key], child
        if walk.depth_item is None and isinstance(container, list) and segs[0] in LIST_SECTIONS:
            walk.depth_item = node
        i += used


class _Walk:
    """Matching one path's segments, and the findings that name where it went wrong."""

    def __init__(self, path: str, segs: list[str]):
        self.path = path
        self.segs = segs
        self.depth_item: dict[str, Any] | None = None
        """The item of the top-level list section the path is in (for series years)."""
        self.field_name = ""
        """The last model field the path went through."""

    def upto(self, i: int) -> str:
        return ".".join(self.segs[:i]) or "(top level)"

    def error(self, code: str, i: int, message: str, hint: str = "") -> _PathError:
        return _PathError(Finding(code, "error", self.path, message, hint))

    def field(self, i: int, model: type[BaseModel]) -> str:
        seg = self.segs[i]
        names = _field_names(model)
        if seg in names:
            return seg
        if i == 0:
            raise self.error("unknown_section", i, f"unknown section '{seg}'",
                             _elsewhere(seg) or nearest(seg, names)
                             or f"sections: {', '.join(sorted(names))}")
        raise self.error("unknown_field", i, f"'{self.upto(i)}' has no field '{seg}'",
                         _elsewhere(seg) or nearest(seg, names)
                         or f"fields: {', '.join(sorted(names))}")

    def item(self, i: int, items: list[Any]) -> tuple[int, int]:
        """(position, segments used) of the list item the path names."""
        seg = self.segs[i]
        if items and all(isinstance(x, dict) and isinstance(x.get("id"), str) for x in items):
            ids = [x["id"] for x in items]
            for end in range(len(self.segs), i, -1):  # IDs may hold dots: longest first
                candidate = ".".join(self.segs[i:end])
                if candidate in ids:
                    return ids.index(candidate), end - i
            what = ITEM_NAMES.get(self.segs[i - 1], "item") if i == 1 else "item"
            raise self.error("unknown_id", i, f"unknown {what} '{seg}' in '{self.upto(i)}'",
                             nearest(seg, ids) or f"IDs: {', '.join(ids[:20])}"
                             + (" ..." if len(ids) > 20 else ""))
        if not re.fullmatch(r"\d+", seg) or int(seg) >= len(items):
            raise self.error("bad_index", i, f"'{self.upto(i)}' has {len(items)} item(s); "
                             f"'{seg}' is not one of them",
                             f"items without IDs are numbered from 0 to {len(items) - 1}"
                             if items else "the list is empty: set it as a whole")
        return int(seg), 1

    def key(self, i: int, mapping: dict[Any, Any], args: tuple[Any, Any] | None
            ) -> tuple[Any, int]:
        """(key, segments used) of the mapping entry the path names."""
        seg = self.segs[i]
        if (args is not None and _is_int(args[0])) or any(isinstance(k, int) for k in mapping):
            if not re.fullmatch(r"\d+", seg):
                raise self.error("bad_key", i, f"'{self.upto(i)}' is by year; '{seg}' is not a "
                                 "year", "years are whole numbers, e.g. 2030")
            return int(seg), 1
        keys = [str(k) for k in mapping]
        for end in range(len(self.segs), i, -1):
            candidate = ".".join(self.segs[i:end])
            if candidate in keys:
                return candidate, end - i
        return seg, 1

    def series_years(self, raw: dict[str, Any]) -> list[int]:
        """Years a constant expands over: the offer's window for its price, the rule's years
        for its share ramp, else the horizon."""
        h = raw["horizon"]
        years = list(range(h["first_year"], h["last_year"] + 1))
        item = self.depth_item or {}
        if self.segs[0] == "offers" and self.field_name == "price_per_kg":
            return list(range(item["first_year"], item["last_year"] + 1))
        if self.segs[0] == "rules" and self.field_name == "min_share":
            return list((item.get("scope") or {}).get("years") or years)
        return years


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _field_annotation(model: type[BaseModel], name: str) -> Any:
    for n, f in model.model_fields.items():
        if name in (n, f.alias):
            return f.annotation
    return None


def _elsewhere(name: str) -> str:
    """A hint naming the section that does have a field called `name`."""
    for section, model in SECTION_MODELS.items():
        if name in _field_names(model):
            where = f"{section}.<id>.{name}" if section in LIST_SECTIONS else f"{section}.{name}"
            return f"did you mean '{where}'?"
    return ""


def _unwrap(ann: Any) -> Any:
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    return ann


def _members(ann: Any) -> list[Any]:
    """The types a (possibly annotated, optional) union may hold."""
    ann = _unwrap(ann)
    if get_origin(ann) in (Union, types.UnionType):
        return [m for a in get_args(ann) for m in _members(a)]
    return [ann]


def _model_of(ann: Any, node: Any) -> type[BaseModel] | None:
    """The model a node of this annotation is; for a union of rule kinds, the one whose
    `kind` the node names."""
    models = [m for m in _members(ann) if isinstance(m, type) and issubclass(m, BaseModel)]
    if len(models) <= 1:
        return models[0] if models else None
    kind = node.get("kind") if isinstance(node, dict) else None
    for m in models:
        literal = _unwrap(m.model_fields["kind"].annotation) if "kind" in m.model_fields else None
        if get_origin(literal) is Literal and kind in get_args(literal):
            return m
    return None


def _list_item(ann: Any) -> Any:
    for m in _members(ann):
        if get_origin(m) is list:
            return get_args(m)[0]
    return None


def _dict_args(ann: Any) -> tuple[Any, Any] | None:
    for m in _members(ann):
        if get_origin(m) is dict:
            k, v = get_args(m)
            return k, v
    return None


def _is_int(ann: Any) -> bool:
    return _unwrap(ann) is int


def _year_keyed(ann: Any) -> bool:
    """Whether a field may be given one value per year (a constant or a by-year mapping)."""
    args = _dict_args(ann)
    return args is not None and _is_int(args[0])


# --- sub-instances and decisions -------------------------------------------------------------
def _unknown(section: str, wanted: Iterable[str], known: list[str], action: str
             ) -> list[Finding]:
    return [Finding("unknown_id", "error", f"{section}[{x}]",
                    f"unknown {ITEM_NAMES[section]} '{x}' to {action}", nearest(x, known))
            for x in wanted if x not in known]


def relax_rules(inst: Instance, rule_ids: Sequence[str]) -> Instance:
    """The instance without the named rules, validated again (`InvalidInstance` naming the
    nearest rule for an unknown ID)."""
    if not rule_ids:
        return inst
    raw = to_data(inst)
    bad = _unknown("rules", rule_ids, [r["id"] for r in raw["rules"]], "relax")
    if bad:
        raise InvalidInstance(bad)
    raw["rules"] = [r for r in raw["rules"] if r["id"] not in set(rule_ids)]
    return from_data(raw)


def set_offer_decision(inst: Instance, offer_id: str,
                       decision: Literal["free", "forced", "forbidden"]) -> Instance:
    """The instance with the offer's `decision` set, validated again."""
    raw = to_data(inst)
    bad = _unknown("offers", [offer_id], [o["id"] for o in raw["offers"]], "decide")
    if bad:
        raise InvalidInstance(bad)
    for o in raw["offers"]:
        if o["id"] == offer_id:
            o["decision"] = decision
    return from_data(raw)


def force_offer(inst: Instance, offer_id: str) -> Instance:
    """The offer must be signed (already signed, or a what-if)."""
    return set_offer_decision(inst, offer_id, "forced")


def forbid_offer(inst: Instance, offer_id: str) -> Instance:
    """The offer must not be signed."""
    return set_offer_decision(inst, offer_id, "forbidden")


def decide(inst: Instance, force: Sequence[str] = (), forbid: Sequence[str] = ()
           ) -> Instance:
    """The instance with offers and build options decided (validated once, at the end): each
    ID in `force` forced (an offer signed, a build option built), each in `forbid` forbidden.
    Offers and build options share one namespace. An unknown ID (with the nearest known one)
    or an ID both forced and forbidden raises `InvalidInstance`."""
    if not force and not forbid:
        return inst
    raw = to_data(inst)
    items: dict[str, tuple[str, dict]] = {o["id"]: (f"offers.{o['id']}", o)
                                          for o in raw["offers"]}
    for f in raw["facilities"]:
        for j in f["builds"]:
            items[j["id"]] = (f"facilities.{f['id']}.builds.{j['id']}", j)
    problems = [Finding("decided_twice", "error", x, f"'{x}' is both forced and forbidden",
                        "name it in one of --force / --forbid")
                for x in sorted(set(force) & set(forbid))]
    for decision, verb, ids in (("forced", "force", force), ("forbidden", "forbid", forbid)):
        for x in ids:
            if x not in items:
                problems.append(Finding("unknown_id", "error", x,
                                        f"no offer or build option '{x}' to {verb}",
                                        nearest(x, list(items)) or "offers and build options: "
                                        + ", ".join(sorted(items)[:20])))
                continue
            where, item = items[x]
            item["decision"] = decision
    if problems:
        raise InvalidInstance(problems)
    return from_data(raw)


def restrict_to_buyers(inst: Instance, buyer_ids: Sequence[str]
                       ) -> tuple[Instance, list[Finding]]:
    """The instance as some of its buyers face it on their own: the rules scoped only to the
    other buyers dropped (they bind nobody left; each named in a note), then
    `keep_buyers_noted`. What `offtake solve --buyers` and each coalition of `offtake
    consortium` solve."""
    keep = set(buyer_ids)
    known = {b.id for b in inst.buyers}
    dropped = [r.id for r in inst.rules if r.scope.buyers is not None
               and not set(r.scope.buyers) & keep and keep <= known]
    notes = [Finding("rule_dropped", "warning", f"rules.{rid}",
                     f"rule '{rid}' applies only to buyers not kept: dropped") for rid in dropped]
    out, more = keep_buyers_noted(relax_rules(inst, dropped), buyer_ids)
    return out, notes + more


def _keep_stockpiles(raw: dict[str, Any], keep: set[str], gone: list[str],
                     notes: list[Finding]) -> None:
    """keep_buyers_noted for `stockpiles`: see there."""
    dropped = set()
    stockpiles = []
    for sp in raw.get("stockpiles") or []:
        if sp["holder"] in gone or sp["location"] in gone:
            who = sp["holder"] if sp["holder"] in gone else sp["location"]
            notes.append(Finding("stockpile_dropped", "warning", f"stockpiles[{sp['id']}]",
                                 f"stockpile '{sp['id']}' went with removed buyer '{who}'"))
            dropped.add(sp["id"])
            continue
        if sp["release_to"] is not None:
            sp["release_to"] = [b for b in sp["release_to"] if b in keep]
        stockpiles.append(sp)
    raw["stockpiles"] = stockpiles
    for sc in raw["scenarios"]:
        windows = []
        for w in sc.get("releases") or []:
            if w["stockpiles"] is not None:
                w["stockpiles"] = [x for x in w["stockpiles"] if x not in dropped]
                if not w["stockpiles"]:
                    continue
            windows.append(w)
        sc["releases"] = windows


def keep_buyers(inst: Instance, buyer_ids: Sequence[str]) -> Instance:
    """The instance for some buyers only; see `keep_buyers_noted` (whose notes this drops)."""
    return keep_buyers_noted(inst, buyer_ids)[0]


def keep_buyers_noted(inst: Instance, buyer_ids: Sequence[str]
                      ) -> tuple[Instance, list[Finding]]:
    """The instance for the named buyers only, and notes (warnings) on what went with the
    others. Everything that names a buyer follows:

    * an offer's `buyers` list loses the removed buyers; an offer open only to removed buyers
      is dropped (it could deliver to nobody) with a note, unless it is `forced`, which is an
      error (a signed contract does not disappear with its buyer);
    * a rule's `scope.buyers` loses the removed buyers; a rule scoped only to removed buyers is
      an error (it would bind nothing: relax it, or keep one of its buyers);
    * network arcs into a removed buyer are dropped;
    * a scenario's demand change loses the removed buyers, and is dropped if it named only
      removed buyers (it scaled only their demand);
    * a stockpile held by a removed buyer, or located at one, goes with it (a note), and
      leaves the scenarios' release windows; `release_to` lists lose the removed buyers.

    Offers, rules and changes that name no buyer (all buyers) stay as they are. The notes also
    hold the warnings the smaller instance has and the original had not (a facility left with
    no buyer, a rule whose buyer class is gone).
    """
    raw = to_data(inst)
    known = [b["id"] for b in raw["buyers"]]
    problems = _unknown("buyers", buyer_ids, known, "keep")
    if not buyer_ids:
        problems.append(Finding("no_buyer", "error", "buyers", "no buyer to keep",
                                f"name at least one of {known}"))
    if problems:
        raise InvalidInstance(problems)
    keep = set(buyer_ids)
    gone = sorted(set(known) - keep)
    notes: list[Finding] = []
    raw["buyers"] = [b for b in raw["buyers"] if b["id"] in keep]
    offers = []
    for o in raw["offers"]:
        if o["buyers"] is not None:
            left = [b for b in o["buyers"] if b in keep]
            if not left:
                named = sorted(set(o["buyers"]))
                if o["decision"] == "forced":
                    problems.append(Finding(
                        "forced_offer_without_buyer", "error", f"offers[{o['id']}]",
                        f"forced offer '{o['id']}' is open only to removed buyer(s) {named}",
                        "keep one of its buyers, or set its decision to free"))
                else:
                    notes.append(Finding(
                        "offer_dropped", "warning", f"offers[{o['id']}]",
                        f"offer '{o['id']}' was open only to removed buyer(s) {named}: dropped"))
                continue
            o["buyers"] = left
        offers.append(o)
    raw["offers"] = offers
    for r in raw["rules"]:
        scoped = r["scope"]["buyers"]
        if scoped is not None:
            left = [b for b in scoped if b in keep]
            if not left:
                problems.append(Finding(
                    "rule_scope_removed", "error", f"rules[{r['id']}].scope.buyers",
                    f"rule '{r['id']}' applies only to removed buyer(s) {sorted(set(scoped))}: "
                    "it would bind nothing",
                    f"relax it as well (relax_rules, --relax {r['id']}), or keep one of its "
                    "buyers"))
            r["scope"]["buyers"] = left
    raw["network"]["arcs"] = [a for a in raw["network"]["arcs"] if a["to"] not in gone]
    for sc in raw["scenarios"]:
        changes = []
        for ch in sc["demand"]:
            if ch["buyers"] is not None:
                ch["buyers"] = [b for b in ch["buyers"] if b in keep]
                if not ch["buyers"]:
                    continue
            changes.append(ch)
        sc["demand"] = changes
    _keep_stockpiles(raw, keep, gone, notes)
    if errors(problems):
        raise InvalidInstance(problems + notes)
    before = {(f.code, f.message) for f in check_instance(inst)}
    out, warnings = _validate(raw)
    return out, notes + [w for w in warnings if (w.code, w.message) not in before]
