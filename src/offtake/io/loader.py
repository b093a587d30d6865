"""Reading instance files into the schema, with every problem of a file reported at once.

Owns files: reading YAML, merging included policy packs (findings about a pack's rules name
the pack's own file and row), the instance hash, and the file name on each finding. Turning
the parsed document into a validated instance, with located findings, is
`offtake.domain.intake.validate_mapping` (shared with the instance transforms).

Must not import Pyomo or anything downstream of the schema.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from offtake.domain.findings import Finding, InvalidInstance, errors, nearest
from offtake.domain.intake import LoadResult, item_names, parse_yaml, validate_mapping
from offtake.domain.schema import Instance

__all__ = ["LoadResult", "load_instance", "load_or_raise", "read_yaml", "validate_mapping"]


def read_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return parse_yaml(fh)


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
    result = validate_mapping(raw, place=lambda f: _locate(f, fname, provenance, raw))
    result.findings = include_findings + result.findings
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
    own = rule.get("scope")
    if not isinstance(own, dict):
        own = {}
    return {**rule, "scope": {**own, **scope}}


_LOC = re.compile(r"^(country_groups|rules)\[(\d+)\](.*)$")


def _locate(f: Finding, fname: str, provenance: dict[tuple[str, int], tuple[str, int]],
            raw: Any) -> Finding:
    """Attach the file: for an item that came from a policy pack, the pack's own file (and,
    where the item has no ID to name it by, its row in the pack)."""
    m = _LOC.match(f.location)
    if m and (m.group(1), int(m.group(2))) in provenance:
        pack, j = provenance[(m.group(1), int(m.group(2)))]
        names = item_names(raw if isinstance(raw, dict) else {}).get(m.group(1), [])
        i = int(m.group(2))
        if i < len(names) and names[i] is not None:  # named by ID later
            return replace(f, file=pack)
        return replace(f, location=f"{m.group(1)}[{j}]{m.group(3)}", file=pack)
    return replace(f, file=fname)


def load_or_raise(path: str | Path) -> Instance:
    res = load_instance(path)
    if res.instance is None:
        raise InvalidInstance(res.findings)
    return res.instance


