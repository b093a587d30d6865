"""Findings: what validation and checking say about an input or a result.

Owns the `Finding` record (stable code, severity, file, location, message, hint) and the
`InvalidInstance` error that carries a list of them. Used by io, validation, check and cli;
imports nothing from the rest of the package.
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

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.file}: {self.location}" if self.file else self.location
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
