"""What the dashboard can show from a folder of saved runs (`offtake dashboard --store DIR`):
the output folders of `offtake solve` (a `summary.json`), the results stores of
`offtake sweep` / `offtake pareto` (a `points/` folder), the output folders of
`offtake consortium` (a `consortium.json`), and the what-if runs the dashboard made itself
(under `DIR/whatif/`). DIR itself may be any of these.

Also finds the instance file a run was solved from, by the SHA-256 its summary records.

Reads folders only; imports no solver, no Pyomo and no web framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

WHATIF = "whatif"
"""The sub-folder of the store where the dashboard's what-if runs are written."""
INSTANCE_SUFFIXES = (".yaml", ".yml", ".xlsx")


@dataclass(frozen=True)
class Catalog:
    """The saved runs under one folder, by name (the folder's path relative to the store,
    '.' for the store itself)."""

    root: Path
    runs: dict[str, Path]
    """Output folders of a solve (with summary.json)."""
    stores: dict[str, Path]
    """Results stores of sweeps (with points/)."""
    consortia: dict[str, Path] = field(default_factory=dict)
    """Output folders of `offtake consortium` (with consortium.json)."""


def _name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel or "."


def scan(root: str | Path, depth: int = 3) -> Catalog:
    """The output folders, sweep stores and consortium results at most `depth` folders
    below `root`, sorted by name; what-if runs first by the order they were made (their
    names start with a stamp)."""
    base = Path(root)
    runs: dict[str, Path] = {}
    stores: dict[str, Path] = {}
    consortia: dict[str, Path] = {}

    def walk(folder: Path, level: int) -> None:
        if (folder / "summary.json").is_file():
            runs[_name(base, folder)] = folder
        if (folder / "consortium.json").is_file():
            consortia[_name(base, folder)] = folder
        if (folder / "points").is_dir():
            stores[_name(base, folder)] = folder
            return  # a store's plans/ and points/ hold no runs
        if level >= depth:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir()
                              and not p.name.startswith("."))
        except OSError:
            return
        for child in children:
            walk(child, level + 1)

    if base.is_dir():
        walk(base, 0)
    return Catalog(base, dict(sorted(runs.items())), dict(sorted(stores.items())),
                   dict(sorted(consortia.items())))


def sha256_of(path: Path) -> str | None:
    """The SHA-256 the loader records for an instance file (its bytes and those of the
    packs it includes), or None when it does not load. Kept per file and modification time."""
    stamp = path.stat().st_mtime_ns
    known = _SHA.get(path)
    if known is not None and known[0] == stamp:
        return known[1]
    from offtake.io.loader import load_instance

    digest = load_instance(path).sha256 or None
    _SHA[path] = (stamp, digest)
    return digest


_SHA: dict[Path, tuple[int, str | None]] = {}


def find_instance(sha256: str, folders: list[Path]) -> Path | None:
    """The instance file (YAML or workbook) in `folders` (not below them) whose SHA-256 as
    the loader records it is `sha256`, or None."""
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in INSTANCE_SUFFIXES and path.is_file() \
                    and sha256_of(path) == sha256:
                return path
    return None
