"""Reading instance files into the schema, with every problem of a file reported at once.

Owns files: reading YAML, merging included policy packs (findings about a pack's rules name
the pack's own file and row), dispatching workbooks (.xlsx) and folders of CSV files to
`offtake.io.spreadsheet` (findings name sheet and cell), the instance hash, and the file name
on each finding. Turning
the parsed document into a validated instance, with located findings, is
`offtake.domain.intake.validate_mapping` (shared with the instance transforms).

Must not import Pyomo or anything downstream of the schema.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from offtake.domain.findings import Finding, InvalidInstance, errors, nearest
from offtake.domain.intake import (
    DuplicateKeyError,
    LoadResult,
    item_names,
    name_items,
    parse_yaml,
    validate_mapping,
)
from offtake.domain.schema import Instance

__all__ = ["LoadResult", "load_instance", "load_or_raise", "read_yaml", "validate_mapping"]


def read_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return parse_yaml(fh)


SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm")
OTHER_FORMATS = {
    ".csv": "a CSV file holds one table; an instance is a folder of CSV files, one per sheet "
            "(`offtake template DIR` writes one), or a workbook (.xlsx)",
    ".xls": "save the workbook as .xlsx (Excel 2007 or later)",
    ".ods": "save the spreadsheet as .xlsx",
    ".json": "write the instance as YAML (JSON is YAML: rename it .yaml)",
}


def _yaml_finding(exc: yaml.YAMLError, fname: str) -> Finding:
    """A file that is not YAML, or repeats a key, as a finding at its line and column."""
    mark = getattr(exc, "problem_mark", None)
    loc = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    if isinstance(exc, DuplicateKeyError):
        return Finding("yaml_duplicate_key", "error", loc, str(exc).splitlines()[0],
                       "delete one of the two: which one the author meant is not known",
                       file=fname)
    return Finding("yaml_syntax", "error", loc, str(exc).splitlines()[0], file=fname)


def load_instance(path: str | Path) -> LoadResult:
    """Read and validate an instance: a YAML file, a workbook (.xlsx) or a folder of CSV
    files; never raises for bad content."""
    path = Path(path)
    fname = str(path)
    if not path.exists():
        return LoadResult(None, [Finding("file_not_found", "error", "", "file not found",
                                         file=fname)])
    if path.is_dir() or path.suffix.lower() in SPREADSHEET_SUFFIXES:
        return load_spreadsheet(path)
    if path.suffix.lower() in OTHER_FORMATS:
        return LoadResult(None, [Finding("unsupported_format", "error", "",
                                         f"'{path.suffix}' files are not instances",
                                         OTHER_FORMATS[path.suffix.lower()], file=fname)])
    try:
        raw = read_yaml(path)
    except yaml.YAMLError as exc:
        return LoadResult(None, [_yaml_finding(exc, fname)])
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


def load_spreadsheet(path: Path) -> LoadResult:
    """Read and validate a workbook or a folder of CSV files (`offtake.io.spreadsheet`):
    every finding names the item by ID and the sheet and cell it came from."""
    from offtake.io import spreadsheet

    if path.is_dir():
        tables = spreadsheet.read_csv_folder(path)
        files = sorted(path.glob("*.csv"))
        if not tables:
            return LoadResult(None, [Finding("empty_instance", "error", "",
                                             "the folder holds no CSV files",
                                             "`offtake template DIR` writes one CSV per sheet",
                                             file=str(path))])
    else:
        try:
            tables = spreadsheet.read_workbook(path)
        except Exception as exc:  # openpyxl raises many kinds of error on a bad file
            return LoadResult(None, [Finding("bad_workbook", "error", "",
                                             f"cannot read the workbook: {exc}",
                                             "save it again as .xlsx", file=str(path))])
        files = [path]
    parsed = spreadsheet.parse_tables(tables)
    result = validate_mapping(parsed.raw, place=parsed.place)
    own = name_items(parsed.findings, parsed.raw)
    bad_cells = {f.cell for f in errors(own)}
    result.findings = own + [f for f in result.findings
                             if not (f.cell and f.cell in bad_cells)]
    if errors(own):
        result.instance = None
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
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
            here = sorted(p.name for p in pack_path.parent.glob("*.yaml")) \
                if pack_path.parent.is_dir() else []
            findings.append(Finding(
                "file_not_found", "error", f"include[{i}]",
                f"policy pack '{rel}' not found: looked for {pack_path.resolve()}",
                "pack paths are relative to the including file's folder"
                + (f"; {pack_path.parent} holds {', '.join(here[:8])}" if here else
                   f"; {pack_path.parent} does not exist"), file=str(path)))
            continue
        try:
            pack = read_yaml(pack_path)
        except yaml.YAMLError as exc:
            findings.append(_yaml_finding(exc, str(pack_path)))
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


def _plain(x: Any) -> Any:
    """Enums as their values, in keys too (what YAML can write)."""
    if isinstance(x, dict):
        return {_plain(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    if isinstance(x, Enum):
        return x.value
    return x


def instance_yaml(inst: Instance) -> str:
    """The instance as YAML text (every field written, included packs inlined), read back by
    `load_instance` as the same instance."""
    from offtake.domain.transforms import to_data

    return yaml.safe_dump(_plain(to_data(inst)), sort_keys=False, allow_unicode=True,
                          width=100)


def load_or_raise(path: str | Path) -> Instance:
    res = load_instance(path)
    if res.instance is None:
        raise InvalidInstance(res.findings)
    return res.instance


