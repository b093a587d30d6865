"""Reading instance files into the schema, with every problem of a file reported at once.

Owns file formats (YAML now) and the translation of parse and pydantic errors into
`Finding`s that name the file, the path to the field (`offers[3].supplier`), the bad value and
a hint. Each section, and each item of a list section, is validated on its own so that one bad
row does not hide the others; whole-instance checks then run on what parsed.

Must not import Pyomo or anything downstream of the schema.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from pydantic import ValidationError

from offtake.domain.findings import Finding, InvalidInstance, errors, format_loc, nearest
from offtake.domain.scenarios import expand_raw
from offtake.domain.schema import LIST_SECTIONS, SECTION_MODELS, Instance, rule_adapter
from offtake.domain.validation import check_instance

_FREE_TEXT_KEYS = {"name", "description", "source", "notes", "company"}


class _YamlLoader(yaml.SafeLoader):
    """YAML 1.2-style booleans: only true/false. YAML 1.1 reads NO (Norway), ON, Y as booleans."""


_YamlLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
for _first in "tTfF":
    _YamlLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list(_first),
    )


@dataclass
class LoadResult:
    """An instance (None if it has errors) and every finding about its file."""

    instance: Instance | None
    findings: list[Finding] = field(default_factory=list)
    sha256: str = ""

    @property
    def ok(self) -> bool:
        return self.instance is not None


def read_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_YamlLoader)  # noqa: S506 - SafeLoader subclass


def load_instance(path: str | Path) -> LoadResult:
    """Read and validate an instance file; never raises for bad content."""
    path = Path(path)
    fname = str(path)
    if not path.exists():
        return LoadResult(None, [Finding("file_not_found", "error", "", "file not found",
                                         file=fname)])
    try:
        raw = read_yaml(path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return LoadResult(None, [Finding("yaml_syntax", "error", loc, str(exc).splitlines()[0],
                                         file=fname)])
    digest = hashlib.sha256(path.read_bytes())
    provenance: dict[tuple[str, int], tuple[str, int]] = {}
    include_findings: list[Finding] = []
    if isinstance(raw, dict) and "include" in raw:
        raw, provenance, include_findings = _merge_includes(path, raw, digest)
    result = validate_mapping(raw)
    result.findings = include_findings + [_locate(f, fname, provenance)
                                          for f in result.findings]
    if errors(include_findings):
        result.instance = None
    result.sha256 = digest.hexdigest()
    return result


PACK_SECTIONS = ("pack", "country_groups", "rules")


def _merge_includes(path: Path, raw: dict, digest: Any) -> tuple[dict, dict, list[Finding]]:
    """Append the country groups and rules of each included policy pack to the instance.

    Returns the merged document, where each appended item came from (pack file, index in the
    pack) so that findings name the pack's own file and row, and findings about the packs.
    """
    raw = dict(raw)
    includes = raw.pop("include")
    findings: list[Finding] = []
    provenance: dict[tuple[str, int], tuple[str, int]] = {}
    if not isinstance(includes, list):
        return raw, provenance, [Finding("wrong_type", "error", "include",
                                         "include must be a list of pack files", file=str(path))]
    for i, entry in enumerate(includes):
        rel, scope, problem = _include_entry(entry)
        if problem:
            findings.append(Finding("wrong_type", "error", f"include[{i}]", problem,
                                    "write `- path.yaml` or `- {pack: path.yaml, scope: "
                                    "{buyers: [...]}}`", file=str(path)))
            continue
        pack_path = path.parent / str(rel)
        if not pack_path.exists():
            findings.append(Finding("file_not_found", "error", f"include[{i}]",
                                    f"policy pack '{rel}' not found", file=str(path)))
            continue
        try:
            pack = read_yaml(pack_path)
        except yaml.YAMLError as exc:
            findings.append(Finding("yaml_syntax", "error", "", str(exc).splitlines()[0],
                                    file=str(pack_path)))
            continue
        digest.update(pack_path.read_bytes())
        if not isinstance(pack, dict):
            findings.append(Finding("wrong_type", "error", "", "a policy pack is a mapping",
                                    file=str(pack_path)))
            continue
        for key in pack:
            if key not in PACK_SECTIONS:
                findings.append(Finding("unknown_field", "error", str(key),
                                        f"unknown section '{key}' in a policy pack",
                                        nearest(str(key), PACK_SECTIONS)
                                        or f"expected one of {list(PACK_SECTIONS)}",
                                        file=str(pack_path)))
        for section in ("country_groups", "rules"):
            items = pack.get(section) or []
            if section == "rules" and scope:
                items = [_scoped(item, scope) for item in items]
            merged = list(raw.get(section) or [])
            for j, item in enumerate(items):
                provenance[(section, len(merged))] = (str(pack_path), j)
                merged.append(item)
            if items:
                raw[section] = merged
    return raw, provenance, findings


def _include_entry(entry: Any) -> tuple[str, dict, str]:
    """(pack path, scope applied to its rules, problem) of one `include` entry."""
    if isinstance(entry, str):
        return entry, {}, ""
    if isinstance(entry, dict) and isinstance(entry.get("pack"), str) and set(entry) <= {
            "pack", "scope"} and isinstance(entry.get("scope", {}), dict):
        return entry["pack"], entry.get("scope", {}), ""
    return "", {}, f"an include entry is a pack path or {{pack, scope}}; got {entry!r}"


def _scoped(rule: Any, scope: dict) -> Any:
    """A pack rule with the including instance's scope keys laid over its own."""
    if not isinstance(rule, dict):
        return rule
    own = rule.get("scope") if isinstance(rule.get("scope"), dict) else {}
    return {**rule, "scope": {**own, **scope}}


_LOC = re.compile(r"^(country_groups|rules)\[(\d+)\](.*)$")


def _locate(f: Finding, fname: str, provenance: dict[tuple[str, int], tuple[str, int]]
            ) -> Finding:
    """Attach the file, translating locations of items that came from a policy pack."""
    m = _LOC.match(f.location)
    if m and (m.group(1), int(m.group(2))) in provenance:
        pack, j = provenance[(m.group(1), int(m.group(2)))]
        return Finding(f.code, f.severity, f"{m.group(1)}[{j}]{m.group(3)}", f.message,
                       f.hint, pack)
    return _with_file(f, fname)


def load_or_raise(path: str | Path) -> Instance:
    res = load_instance(path)
    if res.instance is None:
        raise InvalidInstance(res.findings)
    return res.instance


def validate_mapping(raw: Any) -> LoadResult:
    """Validate an already-parsed document (dict) section by section."""
    if not isinstance(raw, dict) or not raw:
        return LoadResult(None, [Finding("empty_instance", "error", "(top level)",
                                         "the file holds no instance: nothing to optimise")])
    findings: list[Finding] = []
    raw = _strip_ids(raw, [], findings)
    try:
        raw = expand_raw(raw)
    except ValidationError as exc:
        return LoadResult(None, findings + _pydantic_findings(exc, ["scenario_spec"]))
    except (ValueError, KeyError, TypeError) as exc:
        return LoadResult(None, findings + [Finding("bad_scenario_spec", "error",
                                                    "scenario_spec", str(exc))])
    known = set(Instance.model_fields)
    for key in raw:
        if key not in known:
            findings.append(Finding("unknown_field", "error", str(key),
                                    f"unknown section '{key}'",
                                    nearest(str(key), known) or f"expected one of {sorted(known)}"))
    parts: dict[str, Any] = {"unparsed_ids": set()}
    for name, finfo in Instance.model_fields.items():
        if name not in raw:
            if finfo.is_required():
                findings.append(Finding("missing_field", "error", name,
                                        f"required section '{name}' is missing"))
                parts[name] = None
            else:
                parts[name] = finfo.get_default(call_default_factory=True)
            continue
        parts[name] = _validate_section(name, raw[name], findings, parts["unparsed_ids"])
    if parts.get("meta") is None or parts.get("horizon") is None:
        return LoadResult(None, findings)
    findings += check_instance(SimpleNamespace(**parts), partial=bool(errors(findings)))
    if errors(findings):
        return LoadResult(None, findings)
    try:
        inst = Instance.model_validate(raw)
    except ValidationError as exc:  # should not happen: same checks as above
        findings += _pydantic_findings(exc, [])
        return LoadResult(None, findings)
    return LoadResult(inst, findings)


def _validate_section(name: str, value: Any, findings: list[Finding], unparsed: set) -> Any:
    if name in LIST_SECTIONS:
        if value is None:
            return []
        if not isinstance(value, list):
            findings.append(Finding("wrong_type", "error", name, f"'{name}' must be a list"))
            return []
        out = []
        for i, item in enumerate(value):
            try:
                if name == "rules":
                    out.append(rule_adapter().validate_python(item))
                else:
                    out.append(SECTION_MODELS[name].model_validate(item))
            except ValidationError as exc:
                findings += _pydantic_findings(exc, [name, i])
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    unparsed.add(item["id"])
        return out
    try:
        return SECTION_MODELS[name].model_validate(value)
    except ValidationError as exc:
        findings += _pydantic_findings(exc, [name])
        return None


_SCALAR_TYPE_ERRORS = {"float_type", "int_type", "string_type", "bool_type", "is_instance_of"}


def _pydantic_findings(exc: ValidationError, prefix: list[str | int]) -> list[Finding]:
    out = []
    errs = exc.errors(include_url=False)
    for err in errs:
        if _wrong_union_branch(err, errs):
            continue
        loc = prefix + [p for p in err["loc"] if not _is_union_tag(p)]
        value = err.get("input")
        msg = err["msg"]
        hint = ""
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = f"unknown field '{loc[-1]}'"
            hint = _field_hint(exc, err)
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
    error when the mapping branch has its own, more precise errors."""
    if err["type"] not in _SCALAR_TYPE_ERRORS or not isinstance(err.get("input"), dict | list):
        return False
    plain = [p for p in err["loc"] if not _is_union_tag(p)]
    return any(len(e["loc"]) > len(err["loc"])
               and [p for p in e["loc"] if not _is_union_tag(p)][: len(plain)] == plain
               for e in errs if e is not err)


def _is_union_tag(part: Any) -> bool:
    """pydantic inserts union member names (e.g. 'float', 'dict[int,float]') into locations."""
    return isinstance(part, str) and (part in ("float", "int", "str", "bool", "none")
                                      or part.startswith(("dict[", "list[", "tuple[",
                                                          "function-", "constrained-")))


def _field_hint(exc: ValidationError, err: Any) -> str:
    model = _model_named(exc.title)
    if model is None:
        return ""
    loc = [p for p in err["loc"] if not _is_union_tag(p)]
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        sub = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        model = _inner_model(sub.annotation) if sub is not None else None
        if model is None:
            return ""
    names = {f.alias or n for n, f in model.model_fields.items()}
    return nearest(str(loc[-1]), names) or f"expected fields: {sorted(names)}"


def _model_named(title: str) -> Any:
    from offtake.domain import schema

    return getattr(schema, title, None) or getattr(schema, title.split("[")[0], None)


def _inner_model(annotation: Any) -> Any:
    from typing import get_args

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


def _with_file(f: Finding, fname: str) -> Finding:
    return Finding(f.code, f.severity, f.location, f.message, f.hint, fname)
