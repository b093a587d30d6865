"""Findings: what validation and checking say about an input or a result.

Owns the `Finding` record (stable code, severity, file, location, message, hint, and for a
spreadsheet the sheet and cell) and the `InvalidInstance` error that carries a list of them.
Locations name list items by ID (`offers[OFF-MP-IND].max_t_per_year`); by position
(`offers[3]`) only where an item has no usable ID (none, or one shared with another item).
Used by io, validation, check and cli; imports nothing from the rest of the package.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem found in an input file (or a result), with where it is and how to fix it."""

    code: str
    severity: Severity
    location: str
    message: str
    hint: str = ""
    file: str = ""
    cell: str = ""
    """In a spreadsheet (a workbook or a folder of CSV files): the sheet and cell, `offers!D7`."""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def where(self) -> str:
        """The cell (if any) and the location: `offers!D7 offers[OFF-A].max_t_per_year`."""
        return f"{self.cell} {self.location}" if self.cell else self.location

    def __str__(self) -> str:
        where = f"{self.file}: {self.where}" if self.file else self.where
        text = f"[{self.severity} {self.code}] {where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class InvalidInstance(ValueError):
    """Raised when an instance has at least one error finding; carries every finding."""

    def __init__(self, findings: Sequence[Finding]):
        self.findings = list(findings)
        errors = [f for f in self.findings if f.severity == "error"]
        lines = "\n".join(f"  {f}" for f in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        super().__init__(f"{len(errors)} error(s) in instance:\n{lines}{more}")


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def format_loc(loc: Sequence[str | int]) -> str:
    """('offers', 3, 'supplier') -> 'offers[3].supplier'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def nearest(name: str, known: Iterable[str]) -> str:
    """A 'did you mean' hint naming the closest known name, or '' if none is close."""
    known = list(known)
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    if not match:
        lowered = {k.lower(): k for k in known}
        if name.lower() in lowered:
            match = [lowered[name.lower()]]
    return f"did you mean '{match[0]}'?" if match else ""
