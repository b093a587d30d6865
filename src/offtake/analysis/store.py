"""The results store of sweeps and Pareto fronts: a folder of Parquet records, one per point,
queried with DuckDB (or read into pandas), and the plan of each point with a solution.

    DIR/store.json            format version
    DIR/spec.yaml             the last spec run into the store
    DIR/points/<key>.parquet  one record (one row) per point, as each point finishes
    DIR/segments/<id>.parquet many records, merged from points/ (`compact`)
    DIR/plans/<key>.json      the point's plan (first-stage values, as plan.json)

A record's `key` names everything its numbers depend on (instance hash, the point's changes,
the solve options, the code version), so a record is reused only for exactly that solve.
Every file is written to a temporary name in its folder and renamed into place (atomic on
POSIX and Windows): a reader never sees half a record, and a run killed at any moment leaves
the records it finished; the plan is written before its record, so a record always has its
plan. One run writes into a store at a time (`lock`); reading needs no lock.

One file per record keeps every write small and atomic, but reading thousands of small files
is slow (DuckDB reads each file's schema: 5,000 records of 85 columns took 35 s to read and
12 s to list their statuses). So a writer merges the record files into one segment once
`compact_at` of them have piled up, and all segments into one at the end of a run: the
segment is written and renamed into place first, the record files it holds are deleted
after, so a run killed in between leaves the same record twice, never none. Readers
therefore take, for each key, the record that finished last.

Query it with DuckDB: `SELECT * FROM read_parquet(['DIR/segments/*.parquet',
'DIR/points/*.parquet'], union_by_name=true)` (column names hold ':' and '.', quote them:
"cost:tariffs"; a key may appear twice, see above), or `SweepStore(DIR).frame()`.

Owns the folder layout; knows nothing of solves (records are plain dicts).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from offtake.results.folder import TEMP_PREFIX, write_atomically, write_text
from offtake.results.tables import plan_to_json, read_plan

FORMAT = 1
COMPACT_AT = 256
"""Record files under points/ at which a writer merges them into a segment."""
FAILED = ("failed", "timeout")
"""Statuses of points that did not run to the end (tried again when a sweep is resumed)."""


POINT_COLUMNS = ("sweep", "index", "point_id", "instance_sha256")
"""What makes a point (`frame(latest=True)` keeps the newest record of each)."""


class StoreError(RuntimeError):
    pass


class SweepStore:
    """A results store in folder `root` (made when missing)."""

    def __init__(self, root: str | Path, create: bool = True, compact_at: int = COMPACT_AT):
        self.root = Path(root)
        self.points = self.root / "points"
        self.segments = self.root / "segments"
        self.plans = self.root / "plans"
        self.compact_at = compact_at
        meta = self.root / "store.json"
        if not create:
            if not self.points.is_dir():
                raise StoreError(f"{self.root} is not a results store (no points/ folder)")
            return
        if self.root.exists() and any(self.root.iterdir()) and not meta.exists():
            raise StoreError(f"{self.root} exists and is not a results store: choose an "
                             "empty or new folder")
        self.points.mkdir(parents=True, exist_ok=True)
        self.segments.mkdir(parents=True, exist_ok=True)
        self.plans.mkdir(parents=True, exist_ok=True)
        if not meta.exists():
            write_text(meta, json.dumps({"format": FORMAT}) + "\n")
        elif json.loads(meta.read_text()).get("format") != FORMAT:
            raise StoreError(f"{meta}: store format {json.loads(meta.read_text())} is not "
                             f"{FORMAT}")

    # --- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store for one writer; StoreError when another process holds it."""
        path = self.root / "lock"
        handle = open(path, "a+")  # noqa: SIM115 - held for the context
        try:
            try:
                import fcntl

                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # pragma: no cover - Windows: no advisory lock
                pass
            except OSError as exc:
                handle.seek(0)
                raise StoreError(f"{self.root} is in use by another run (process "
                                 f"{handle.read().strip() or '?'})") from exc
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            self._clean()
            yield
            if len(self._segment_files()) > 1:
                self.compact(segments=True)
        finally:
            handle.close()

    def _clean(self) -> None:
        """Temporary files of a writer that was killed (only under the lock)."""
        for folder in (self.points, self.segments, self.plans, self.root):
            for tmp in folder.glob(f"{TEMP_PREFIX}*"):
                tmp.unlink(missing_ok=True)

    def write(self, record: dict[str, Any], plan: dict[str, dict] | None = None) -> None:
        """Save one point's record (and plan), atomically; a record with the same key is
        replaced."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        key = record["key"]
        if plan:
            write_text(self.plans / f"{key}.json", json.dumps(plan_to_json(plan)) + "\n")
        table = pa.Table.from_pylist([record])
        write_atomically(self.points / f"{key}.parquet",
                         lambda path: pq.write_table(table, path, compression="zstd"))
        if len(self._point_files()) >= self.compact_at:
            self.compact()

    def compact(self, segments: bool = False) -> int:
        """Merge the record files (and, with `segments`, the segments too) into one new
        segment, the newest record of each key only; returns the records in it. Only the
        writer that holds the lock may call it (`write` and `lock` do)."""
        points = self._point_files()
        old = self._segment_files() if segments else []
        if not points and len(old) <= 1:
            return 0
        self.segments.mkdir(exist_ok=True)
        rows: list[int] = []

        def merge(tmp: Path) -> None:
            target = str(tmp).replace("'", "''")
            counted = self._run(f"COPY ({_LATEST}) TO '{target}' (FORMAT parquet, "
                                "COMPRESSION zstd)", [*old, *points], frame=False)
            rows.append(int(counted))

        write_atomically(self.segments / f"{uuid.uuid4().hex}.parquet", merge)
        for path in [*points, *old]:
            path.unlink(missing_ok=True)
        return rows[0]

    def save_spec(self, text: str) -> None:
        write_text(self.root / "spec.yaml", text)

    # --- reading ---------------------------------------------------------------------------
    def spec_text(self) -> str | None:
        path = self.root / "spec.yaml"
        return path.read_text() if path.exists() else None

    def statuses(self) -> dict[str, str]:
        """key -> status of every record."""
        frame = self._query("SELECT key, status FROM points")
        return dict(zip(frame["key"], frame["status"], strict=True))

    def frame(self, where: str | None = None, latest: bool = True,
              columns: list[str] | None = None) -> pd.DataFrame:
        """The records (all columns, or `columns` plus key), ordered by their position in
        the sweep; `where` is a DuckDB SQL condition ("status = 'optimal'", quote column
        names with ':' as "cost:tariffs"); `latest`: only the newest record of each point
        of each sweep (the store may hold older records of a point solved with other
        options or code). A point is its sweep, its place in it, its changes and the
        instance they change: points of one sweep that differ in their options alone (a
        CVaR front's) stay apart, and so do the unchanged base points of two sweeps."""
        sql = f"SELECT * FROM {'latest' if latest else 'points'}"
        if where:
            sql += f" WHERE {where}"
        sql += " ORDER BY sweep, \"index\", finished_at"
        frame = self._query(sql)
        if columns is not None and not frame.empty:
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise StoreError(f"no column {', '.join(missing)} in {self.root}; columns: "
                                 + ", ".join(frame.columns))
            frame = frame[list(dict.fromkeys(["key", *columns]))]
        return frame.reset_index(drop=True)

    def plan(self, key: str) -> dict[str, dict]:
        path = self.plans / f"{key}.json"
        if not path.exists():
            raise StoreError(f"no plan for {key} in {self.root} (the point has no solution)")
        return read_plan(path)

    def _point_files(self) -> list[Path]:
        return sorted(self.points.glob("*.parquet"))

    def _segment_files(self) -> list[Path]:
        return sorted(self.segments.glob("*.parquet")) if self.segments.is_dir() else []

    def _query(self, sql: str) -> pd.DataFrame:
        """`sql` over the view `points`: every record, the newest of each key. A writer may
        merge files while this reads: the file list is taken again once if one vanished."""
        for attempt in (0, 1):
            files = [*self._segment_files(), *self._point_files()]
            if not files:
                return pd.DataFrame(columns=["key", "point_id", "sweep", "index", "status",
                                             "finished_at"])
            try:
                return self._run(sql, files)
            except FileNotFoundError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _run(self, sql: str, files: list[Path], frame: bool = True) -> Any:
        """`sql` with the views `records` (every row of `files`), `points` (the newest
        record of each key) and `latest` (the newest record of each point, POINT_COLUMNS,
        of those the records have); a DataFrame, or (frame=False) the first value of the
        result."""
        import duckdb

        con = duckdb.connect()
        try:
            listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
            con.execute(f"CREATE VIEW records AS SELECT * FROM read_parquet([{listed}], "
                        "union_by_name = true)")
            con.execute(f"CREATE VIEW points AS {_LATEST}")
            present = {d[0] for d in con.execute("SELECT * FROM records LIMIT 0").description}
            by = ", ".join(f'"{c}"' for c in POINT_COLUMNS if c in present)
            con.execute("CREATE VIEW latest AS SELECT * FROM points QUALIFY row_number() "
                        f"OVER (PARTITION BY {by} ORDER BY finished_at DESC) = 1")
            try:
                result = con.execute(sql)
                if frame:
                    return result.df()
                row = result.fetchone()
                return row[0] if row else None
            except duckdb.IOException as exc:
                if any(not f.exists() for f in files):
                    raise FileNotFoundError(str(exc)) from exc
                raise StoreError(f"query on {self.root} failed: {exc}") from exc
            except duckdb.Error as exc:
                raise StoreError(f"query on {self.root} failed: {exc}") from exc
        finally:
            con.close()


_LATEST = ("SELECT * FROM records QUALIFY row_number() OVER "
           "(PARTITION BY key ORDER BY finished_at DESC) = 1")
"""The newest record of each key (a key is in two files after a merge that was cut short)."""


