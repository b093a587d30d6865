"""The results store of sweeps and Pareto fronts: a folder of Parquet records, one per point,
queried with DuckDB (or read into pandas), and the plan of each point with a solution.

    DIR/store.json            format version
    DIR/spec.yaml             the last spec run into the store
    DIR/points/<key>.parquet  one record (one row) per point
    DIR/plans/<key>.json      the point's plan (first-stage values, as plan.json)

A record's `key` names everything its numbers depend on (instance hash, the point's changes,
the solve options, the code version), so a record is reused only for exactly that solve.
Every file is written to a temporary name in its folder and renamed into place (atomic on
POSIX and Windows): a reader never sees half a record, and a run killed at any moment leaves
the records it finished; the plan is written before its record, so a record always has its
plan. One run writes into a store at a time (`lock`); reading needs no lock.

Query it with DuckDB: `SELECT * FROM read_parquet('DIR/points/*.parquet', union_by_name=true)`
(column names hold ':' and '.', quote them: "cost:tariffs"), or `SweepStore(DIR).frame()`.

Owns the folder layout; knows nothing of solves (records are plain dicts).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from offtake.results.tables import plan_to_json, read_plan

FORMAT = 1
FAILED = ("failed", "timeout")
"""Statuses of points that did not run to the end (tried again when a sweep is resumed)."""


class StoreError(RuntimeError):
    pass


class SweepStore:
    """A results store in folder `root` (made when missing)."""

    def __init__(self, root: str | Path, create: bool = True):
        self.root = Path(root)
        self.points = self.root / "points"
        self.plans = self.root / "plans"
        meta = self.root / "store.json"
        if not create:
            if not self.points.is_dir():
                raise StoreError(f"{self.root} is not a results store (no points/ folder)")
            return
        if self.root.exists() and any(self.root.iterdir()) and not meta.exists():
            raise StoreError(f"{self.root} exists and is not a results store: choose an "
                             "empty or new folder")
        self.points.mkdir(parents=True, exist_ok=True)
        self.plans.mkdir(parents=True, exist_ok=True)
        if not meta.exists():
            _atomic_text(meta, json.dumps({"format": FORMAT}) + "\n")
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
        finally:
            handle.close()

    def _clean(self) -> None:
        """Temporary files of a writer that was killed (only under the lock)."""
        for folder in (self.points, self.plans, self.root):
            for tmp in folder.glob(".tmp-*"):
                tmp.unlink(missing_ok=True)

    def write(self, record: dict[str, Any], plan: dict[str, dict] | None = None) -> None:
        """Save one point's record (and plan), atomically; a record with the same key is
        replaced."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        key = record["key"]
        if plan:
            _atomic_text(self.plans / f"{key}.json", json.dumps(plan_to_json(plan)) + "\n")
        table = pa.Table.from_pylist([record])
        _atomic(self.points / f"{key}.parquet",
                lambda path: pq.write_table(table, path, compression="zstd"))

    def save_spec(self, text: str) -> None:
        _atomic_text(self.root / "spec.yaml", text)

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
        (the store may hold older records of a point solved with other options or code)."""
        if latest:
            sql = ("SELECT * FROM points QUALIFY row_number() OVER "
                   "(PARTITION BY point_id ORDER BY finished_at DESC) = 1")
        else:
            sql = "SELECT * FROM points"
        sql = f"SELECT * FROM ({sql})"
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

    def _query(self, sql: str) -> pd.DataFrame:
        import duckdb

        if not any(self.points.glob("*.parquet")):
            return pd.DataFrame(columns=["key", "point_id", "sweep", "index", "status",
                                         "finished_at"])
        con = duckdb.connect()
        try:
            pattern = str(self.points / "*.parquet").replace("'", "''")
            con.execute(f"CREATE VIEW points AS SELECT * FROM read_parquet('{pattern}', "
                        "union_by_name = true)")
            try:
                return con.execute(sql).df()
            except duckdb.Error as exc:
                raise StoreError(f"query on {self.root} failed: {exc}") from exc
        finally:
            con.close()


def _atomic(path: Path, write: Any) -> None:
    """`write(temporary path)`, then rename it to `path` (same folder, so same file system)."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_text(path: Path, text: str) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
