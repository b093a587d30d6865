"""From plain data (a parsed YAML document: dicts, lists, scalars) to a validated `Instance`,
with every problem reported at once as a located `Finding`.

Owns the project's YAML dialect (`YamlLoader`: only true/false are booleans, so NO stays
Norway), field-level validation section by section and item by item (one bad row does not hide
the others, nor its own unknown references: see `_without_failing`), the translation of
pydantic errors into findings (`offers[3].supplier`, the bad value, a did-you-mean hint), the
whole-instance checks on what parsed, and the naming of items by ID in every location
(`offers[OFF-MP-IND].max_t_per_year`, see `name_items`). Used by the file loader
(`offtake.io.loader`, which adds files, includes and hashes) and by the instance transforms
(`offtake.domain.transforms`), so that an edited instance goes through exactly the same checks
as a loaded one.

Pure Python over the schema: no files, no Pyomo.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import IO, Annotated, Any, get_args

import yaml
from pydantic import TypeAdapter, ValidationError

from offtake.domain.findings import Finding, errors, format_loc, nearest
from offtake.domain.scenarios import expand_raw
from offtake.domain.schema import LIST_SECTIONS, SECTION_MODELS, Instance, rule_adapter
from offtake.domain.validation import check_instance, check_references

_FREE_TEXT_KEYS = {"name", "description", "source", "notes", "company"}


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key written twice in one mapping (YAML loaders keep the last one silently)."""


class YamlLoader(yaml.SafeLoader):
    """YAML 1.2-style booleans and floats: only true/false are booleans (YAML 1.1 reads NO
    (Norway), ON, Y as booleans), and 1e6 or 2.5E-3 are numbers (YAML 1.1 wants a dot).
    A key given twice in one mapping is an error (DuplicateKeyError at the second one), not
    the last value silently kept; keys brought in by a merge (`<<: *anchor`) may be
    overridden as YAML intends."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: SafeLoader's own error follows
                    continue
                if first is not None:
                    raise DuplicateKeyError(
                        None, None, f"key '{key}' is given twice in one mapping (first on line "
                        f"{first.start_mark.line + 1}); YAML would silently keep the second",
                        key_node.start_mark)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


YamlLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
YamlLoader.add_implicit_resolver(  # 1e6, 5.0e7: floats in YAML 1.2, text in YAML 1.1
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"))
for _first in "tTfF":
    YamlLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list(_first),
    )


def parse_yaml(text: str | IO[str]) -> Any:
    """A YAML document or fragment in the project's dialect ('0.5' -> 0.5, 'true' -> True,
    'null' and '' -> None, '[A, B]' -> a list, 'NO' -> 'NO')."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - SafeLoader subclass


@dataclass
class LoadResult:
    """An instance (None if it has errors), every finding about its document, and the hash of
    the file(s) it came from (set by the loader)."""

    instance: Instance | None
    findings: list[Finding] = field(default_factory=list)
    sha256: str = ""

    @property
    def ok(self) -> bool:
        return self.instance is not None


Place = Callable[[Finding], Finding]
"""What a file format adds to a finding located by position (`offers[3].supplier`): its file,
and for a spreadsheet its sheet and cell."""


def validate_mapping(raw: Any, place: Place | None = None) -> LoadResult:
    """Validate an already-parsed document (dict) section by section. Each finding is first
    given to `place` (located by position in `raw`), then the list items of its location are
    named by ID, unless `place` gave it a location of its own."""
    result, doc = _validate_mapping(raw)
    names = item_names(doc if isinstance(doc, dict) else {})
    out = []
    for f in result.findings:
        g = place(f) if place is not None else f
        out.append(replace(g, location=name_location(g.location, names))
                   if g.location == f.location else g)
    result.findings = out
    return result


def _at_document_position(f: Finding, positions: dict[str, list[int]]) -> Finding:
    """A whole-instance finding located in a list section by the position among the items
    that passed (`buyers[0]`), moved to the item's position in the document (`buyers[1]`
    when the first buyer failed): the later renaming to IDs must find the right item."""
    m = re.match(r"^(\w+)\[(\d+)\]", f.location)
    if not m or m.group(1) not in positions or m.group(1).startswith("failed:"):
        return f
    kept = positions[m.group(1)]
    k = int(m.group(2))
    if k >= len(kept) or kept[k] == k:
        return f
    return replace(f, location=f"{m.group(1)}[{kept[k]}]{f.location[m.end():]}")


def _stand_ins(parts: dict[str, Any]) -> dict[str, Any]:
    """The sections for the whole-instance checks: a missing or invalid section (already a
    finding) stands in as empty (a list section) or as its default, so that the checks of the
    other sections still run instead of failing on None."""
    out = dict(parts)
    for name, finfo in Instance.model_fields.items():
        if out.get(name) is not None:
            continue
        if name in LIST_SECTIONS:
            out[name] = []
        elif not finfo.is_required():
            out[name] = finfo.get_default(call_default_factory=True)
    return out


def _validate_mapping(raw: Any) -> tuple[LoadResult, Any]:
    """The result with findings located by position, and the document they refer to (IDs
    trimmed, scenario_spec expanded)."""
    if not isinstance(raw, dict) or not raw:
        return LoadResult(None, [Finding("empty_instance", "error", "(top level)",
                                         "the file holds no instance: nothing to optimise")]), raw
    findings: list[Finding] = []
    raw = _strip_ids(raw, [], findings)
    try:
        raw = expand_raw(raw)
    except ValidationError as exc:
        return LoadResult(None, findings + _pydantic_findings(exc, ["scenario_spec"])), raw
    except (ValueError, KeyError, TypeError) as exc:
        return LoadResult(None, findings + [Finding("bad_scenario_spec", "error",
                                                    "scenario_spec", str(exc))]), raw
    known = set(Instance.model_fields)
    for key in raw:
        if key not in known:
            findings.append(Finding("unknown_field", "error", str(key),
                                    f"unknown section '{key}'",
                                    nearest(str(key), known) or f"expected one of {sorted(known)}"))
    parts: dict[str, Any] = {"unparsed_ids": set()}
    positions: dict[str, list[int]] = {}
    repaired: dict[str, list[tuple[int, tuple[Any, set]]]] = {}
    for name, finfo in Instance.model_fields.items():
        if name not in raw:
            if finfo.is_required():
                findings.append(Finding("missing_field", "error", name,
                                        f"required section '{name}' is missing"))
                parts[name] = None
            else:
                parts[name] = finfo.get_default(call_default_factory=True)
            continue
        parts[name] = _validate_section(name, raw[name], findings, parts["unparsed_ids"],
                                        positions, repaired)
    if parts.get("meta") is None or parts.get("horizon") is None:
        return LoadResult(None, findings), raw
    failed = {k.split(":", 1)[1] for k in positions if k.startswith("failed:")}
    whole = check_instance(SimpleNamespace(**_stand_ins(parts), failed_sections=failed),
                           partial=bool(errors(findings)))
    findings += [_at_document_position(f, positions) for f in whole]
    findings += _references_of_repaired(parts, repaired)
    if errors(findings):
        return LoadResult(None, findings), raw
    try:
        inst = Instance.model_validate(raw)
    except ValidationError as exc:  # should not happen: same checks as above
        findings += _pydantic_findings(exc, [])
        return LoadResult(None, findings), raw
    return LoadResult(inst, findings), raw


_POSITIONAL = re.compile(r"^([a-z_]+)\[(\d+)\](.*)$", re.S)
_NAMEABLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def item_names(doc: dict[str, Any]) -> dict[str, list[str | None]]:
    """For each list section of a document, the name of each item in locations: its ID
    (trimmed), or None where the item has no valid ID or shares it (case aside) with another
    item of the section (then only its position identifies it)."""
    out: dict[str, list[str | None]] = {}
    for section in LIST_SECTIONS:
        items = doc.get(section)
        if not isinstance(items, list):
            continue
        ids = [x["id"].strip() if isinstance(x, dict) and isinstance(x.get("id"), str)
               and _NAMEABLE.match(x["id"].strip()) else None for x in items]
        seen: dict[str, int] = {}
        for x in ids:
            if x is not None:
                seen[x.lower()] = seen.get(x.lower(), 0) + 1
        out[section] = [x if x is not None and seen[x.lower()] == 1 else None for x in ids]
    return out


def name_location(location: str, names: dict[str, list[str | None]]) -> str:
    """`offers[3].max_t_per_year` -> `offers[OFF-MP-IND].max_t_per_year` (see `item_names`)."""
    m = _POSITIONAL.match(location)
    if not m or m.group(1) not in names:
        return location
    ids, i = names[m.group(1)], int(m.group(2))
    if i >= len(ids) or ids[i] is None:
        return location
    return f"{m.group(1)}[{ids[i]}]{m.group(3)}"


def name_items(findings: Iterable[Finding], doc: dict[str, Any]) -> list[Finding]:
    """The findings with the list items of their locations named by ID (`name_location`)."""
    names = item_names(doc)
    return [replace(f, location=name_location(f.location, names)) for f in findings]


def _validate_section(name: str, value: Any, findings: list[Finding], unparsed: set,
                      positions: dict[str, list[int]],
                      repaired: dict[str, list[tuple[int, tuple[Any, set]]]]) -> Any:
    """The section's model (None if it fails), or for a list section the items that pass;
    `positions[name]` records where each kept item stands in the document, `repaired[name]`
    the failed items that pass without their failing fields (position, model)."""
    if name in LIST_SECTIONS:
        if value is None:
            return []
        if not isinstance(value, list):
            findings.append(Finding("wrong_type", "error", name, f"'{name}' must be a list"))
            return []
        out = []
        kept = positions.setdefault(name, [])
        for i, item in enumerate(value):
            try:
                if name == "rules":
                    out.append(rule_adapter().validate_python(item))
                else:
                    out.append(SECTION_MODELS[name].model_validate(item))
                kept.append(i)
            except ValidationError as exc:
                positions.setdefault("failed:" + name, [])
                kind = item.get("kind") if name == "rules" and isinstance(item, dict) else None
                findings += _pydantic_findings(exc, [name, i], kind)
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    unparsed.add(item["id"])
                trial = _without_failing(name, item, exc)
                if trial is not None:
                    repaired.setdefault(name, []).append((i, trial))
        return out
    try:
        return SECTION_MODELS[name].model_validate(value)
    except ValidationError as exc:
        findings += _pydantic_findings(exc, [name])
        return None


_PLACEHOLDERS: tuple[Any, ...] = (0, 1, "X0", [])
"""Values tried, in order, for a required field that failed (the first its type accepts)."""


def _without_failing(name: str, item: Any, exc: ValidationError) -> tuple[Any, set] | None:
    """The item validated with the top-level fields its errors name left out (optional
    ones) or replaced by a placeholder of their type (required ones), and the names of those
    fields; None when it still fails (or is not a mapping, or a rule: its kind decides its
    fields)."""
    if not isinstance(item, dict) or name == "rules":
        return None
    model = SECTION_MODELS[name]
    bad = {err["loc"][0] for err in exc.errors(include_url=False)
           if err["loc"] and isinstance(err["loc"][0], str)}
    if not bad or not bad <= set(model.model_fields) or "id" in bad:
        return None
    trial = {k: v for k, v in item.items() if k not in bad}
    for key in bad:
        finfo = model.model_fields[key]
        if finfo.is_required():
            kind: Any = finfo.annotation
            adapter: TypeAdapter[Any] = TypeAdapter(
                Annotated[(kind, *finfo.metadata)] if finfo.metadata else kind)
            trial[key] = next((v for v in _PLACEHOLDERS if _accepts(adapter, v)), None)
            if trial[key] is None:
                return None
    try:
        return model.model_validate(trial), bad
    except ValidationError:
        return None


def _accepts(adapter: TypeAdapter[Any], value: Any) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def _references_of_repaired(parts: dict[str, Any],
                            repaired: dict[str, list[tuple[int, tuple[Any, set]]]]
                            ) -> list[Finding]:
    """The unknown references of the items that failed field validation but pass without
    their failing fields: their other fields are checked too (one run reports a bad number
    and an unknown supplier of the same row). Only findings located at those items count:
    they are appended after the parsed items and moved back to their document position."""
    if not repaired:
        return []
    sections = _stand_ins(parts)
    where: dict[str, dict[int, tuple[int, set]]] = {}
    for name, items in repaired.items():
        base = list(sections[name])
        where[name] = {len(base) + j: (i, bad) for j, (i, (_, bad)) in enumerate(items)}
        sections[name] = base + [model for _, (model, _) in items]
    ids = {getattr(m, "id", None) for items in repaired.values() for _, (m, _) in items}
    unparsed = parts["unparsed_ids"] - ids
    out = []
    for f in check_references(SimpleNamespace(**sections), unparsed):
        m = re.match(r"^(\w+)\[(\d+)\]\.?(\w*)", f.location)
        if not m or int(m.group(2)) not in where.get(m.group(1), {}):
            continue
        doc, bad = where[m.group(1)][int(m.group(2))]
        if m.group(3) not in bad:  # not a placeholder's finding
            rest = f.location[m.end(2) + 1:]
            out.append(replace(f, location=f"{m.group(1)}[{doc}]{rest}"))
    return out


_SCALAR_TYPE_ERRORS = {"float_type", "int_type", "string_type", "bool_type", "is_instance_of"}


def _pydantic_findings(exc: ValidationError, prefix: list[str | int],
                       rule_kind: Any = None) -> list[Finding]:
    """Findings of a pydantic error; `rule_kind`: the kind of the rule validated (pydantic puts
    it, the union's tag, first in each location: `rules[0].max_share`, not
    `rules[0].max_supplier_share.max_share`)."""
    out = []
    errs = exc.errors(include_url=False)
    for err in errs:
        if _wrong_union_branch(err, errs):
            continue
        parts = list(err["loc"])
        if rule_kind is not None and parts and parts[0] == rule_kind:
            parts = parts[1:]
        plain = [p for p in parts if not _is_union_tag(p)]
        loc = prefix + plain
        value = err.get("input")
        msg = err["msg"]
        hint = ""
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = f"unknown field '{loc[-1]}'"
            hint = _field_hint(exc, plain, _rule_model(rule_kind))
        elif kind == "missing":
            msg = f"required field '{loc[-1]}' is missing"
        else:
            if not isinstance(value, dict | list):
                msg = f"{msg} (got {value!r})"
            if kind == "string_type" and isinstance(value, int | float):
                hint = "IDs and codes are text: quote them (e.g. '007') so they stay as written"
            elif kind == "less_than_equal" and isinstance(value, int | float) and value <= 100:
                hint = "shares and rates are fractions (0.65 = 65 %)"
            elif kind == "less_than_equal":
                hint = "magnitude beyond sane bounds: check units; unlimited is an explicit flag"
            elif kind == "finite_number":
                hint = "blank or NaN values are not filled in: give a number"
            elif kind in ("float_type", "int_type") and value is None:
                msg = "blank value where a number is required"
        out.append(Finding(f"schema.{kind}", "error", format_loc(loc), msg, hint))
    return out


def _wrong_union_branch(err: Any, errs: list[Any]) -> bool:
    """A 'constant or by-year' field given a mapping fails the constant branch too: drop that
    error when the mapping branch has its own, more precise errors. Given a constant (a
    negative capacity, say), it fails the mapping branch with 'valid dictionary': drop that
    one when the constant branch has said what is wrong."""
    plain = [p for p in err["loc"] if not _is_union_tag(p)]
    if err["type"] in ("dict_type", "list_type") and not isinstance(err.get("input"),
                                                                      dict | list):
        return any(e is not err and e["type"] not in ("dict_type", "list_type")
                   and [p for p in e["loc"] if not _is_union_tag(p)] == plain for e in errs)
    if err["type"] not in _SCALAR_TYPE_ERRORS or not isinstance(err.get("input"), dict | list):
        return False
    return any(len(e["loc"]) > len(err["loc"])
               and [p for p in e["loc"] if not _is_union_tag(p)][: len(plain)] == plain
               for e in errs if e is not err)


def _is_union_tag(part: Any) -> bool:
    """pydantic inserts union member names (e.g. 'float', 'dict[int,float]') into locations."""
    return isinstance(part, str) and (part in ("float", "int", "str", "bool", "none")
                                      or part.startswith(("dict[", "list[", "tuple[",
                                                          "function-", "constrained-")))


def _field_hint(exc: ValidationError, loc: list[Any], model: Any = None) -> str:
    """Did-you-mean for an unknown field at `loc` (inside `model`, else the model the error is
    about)."""
    model = model or _model_named(exc.title)
    if model is None:
        return ""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        sub = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        model = _inner_model(sub.annotation) if sub is not None else None
        if model is None:
            return ""
    names = {f.alias or n for n, f in model.model_fields.items()}
    return nearest(str(loc[-1]), names) or f"expected fields: {sorted(names)}"


def _rule_model(kind: Any) -> Any:
    """The rule model registered for `kind` (None for another or no kind)."""
    if not isinstance(kind, str):
        return None
    for model in _union_members(Instance.model_fields["rules"].annotation):
        literal = getattr(model, "model_fields", {}).get("kind")
        if literal is not None and get_args(literal.annotation) == (kind,):
            return model
    return None


def _union_members(annotation: Any) -> list[Any]:
    """The types inside list[...], Annotated[...] and unions."""
    args = get_args(annotation)
    if not args:
        return [annotation]
    return [m for a in args for m in _union_members(a)]


def _model_named(title: str) -> Any:
    from offtake.domain import schema

    return getattr(schema, title, None) or getattr(schema, title.split("[")[0], None)


def _inner_model(annotation: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


def _strip_ids(node: Any, path: list[str | int], findings: list[Finding]) -> Any:
    """Trim spaces around text values (IDs, codes) with a warning; free text is left alone."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            key = k
            if isinstance(k, str) and k != k.strip():
                key = k.strip()
                findings.append(Finding("whitespace_id", "warning", format_loc(path + [k]),
                                        f"key '{k}' trimmed to '{key}'"))
            out[key] = v if key in _FREE_TEXT_KEYS else _strip_ids(v, path + [key], findings)
        return out
    if isinstance(node, list):
        return [_strip_ids(v, path + [i], findings) for i, v in enumerate(node)]
    if isinstance(node, str) and node != node.strip():
        findings.append(Finding("whitespace_id", "warning", format_loc(path),
                                f"'{node}' trimmed to '{node.strip()}'",
                                "spaces around IDs are dropped"))
        return node.strip()
    return node
