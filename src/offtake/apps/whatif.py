"""What-if runs of the dashboard: a saved run's instance with a few changes ('PATH=VALUE'
through the validated transforms, offers or build options forced or forbidden), solved in
the background on the runtime executor and written as an ordinary output folder under
`STORE/whatif/<name>/`, with `STORE/whatif/<name>.json` saying what was asked and what became
of it (queued, running, done, failed).

The changes are checked here, before anything is queued, exactly as the CLI checks `--set`,
`--force` and `--forbid` (`domain.transforms`): a bad path or value is a located finding. The
base run's own changes (its `--set`, forced and forbidden IDs, buyers, relaxed rules) and
solve options come along, so the what-if differs from its base by the new changes only.

`Jobs` drains a queue with one thread that hands each job to one executor of
`offtake.runtime` (`make_executor`, `Executor.map`): a web page submits and returns at once,
polls `Jobs.records()` for progress, and a finished run stays on disk whatever happens to the
page or the server. A record still 'queued' or 'running' when no live job has it (the server
stopped) reads as 'interrupted'.

Imports no web framework; the solver is loaded in the worker.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from offtake.apps.catalog import WHATIF
from offtake.domain.findings import Finding, InvalidInstance
from offtake.domain.schema import Instance
from offtake.domain.transforms import to_data

STATES = ("queued", "running", "done", "failed", "interrupted")


@dataclass(frozen=True)
class WhatIf:
    """One what-if: the instance file, the base run it is compared with, and the changes
    (its own on top of the base run's)."""

    instance: str
    base: str
    sets: tuple[str, ...] = ()
    force: tuple[str, ...] = ()
    forbid: tuple[str, ...] = ()
    buyers: tuple[str, ...] = ()
    relax: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    """SolveOptions fields of the base run (time limit, gap, CVaR weight and alpha)."""
    changes: tuple[str, ...] = ()
    """What was changed against the base, as a person reads it (the new sets and IDs)."""


def from_base(base_dir: str | Path, instance: str | Path, sets: list[str],
              force: list[str], forbid: list[str]) -> WhatIf:
    """A what-if of the run in `base_dir` (solved from `instance`) with these changes on top
    of the base run's own."""
    summary = json.loads((Path(base_dir) / "summary.json").read_text())
    opts = summary.get("options") or {}
    keep = {k: opts[k] for k in ("time_limit", "mip_gap", "cvar_weight", "cvar_alpha")
            if opts.get(k) is not None}
    changes = [*sets, *(f"force {x}" for x in force), *(f"forbid {x}" for x in forbid)]
    return WhatIf(
        instance=str(instance), base=str(base_dir),
        sets=(*opts.get("set", []), *sets),
        force=tuple(dict.fromkeys([*opts.get("forced", []), *force])),
        forbid=tuple(dict.fromkeys([*opts.get("forbidden", []), *forbid])),
        buyers=tuple(opts.get("buyers", [])),
        relax=tuple(summary.get("relaxed_rules") or opts.get("relaxed_rules") or []),
        options=keep, changes=tuple(changes))


def findings_of(job: WhatIf) -> list[Finding]:
    """The findings that keep the what-if from running (the instance's errors, a bad path
    or value, an unknown or twice-decided ID, an unknown buyer or rule): empty when it can
    run. The same transforms as the CLI's, in the same order as `pipeline.run`."""
    from offtake.domain.transforms import apply_sets, decide, keep_buyers_noted, relax_rules
    from offtake.io.loader import load_instance

    loaded = load_instance(job.instance)
    if loaded.instance is None:
        return [f for f in loaded.findings if f.severity == "error"]
    try:
        inst = apply_sets(loaded.instance, job.sets)
        if job.buyers:
            inst = keep_buyers_noted(inst, list(job.buyers))[0]
        relax_rules(decide(inst, job.force, job.forbid), list(job.relax))
    except InvalidInstance as exc:
        return list(exc.findings)
    return []


SECTIONS = {"rules": "rule", "offers": "offer", "facilities": "facility",
            "scenarios": "scenario", "spot_markets": "spot market",
            "price_indices": "price index", "tariffs": "tariff", "buyers": "buyer",
            "materials": "material"}
"""The instance's sections whose numbers the what-if page offers, by the name of one item."""


def numbers_of(inst: Instance) -> dict[str, dict[str, tuple[str, float]]]:
    """Every number of the instance's items a what-if can change one at a time, as a
    person picks it: {'rule SUPPLIER-CAP-50': {'max_share': ('rules.SUPPLIER-CAP-50.max_share',
    0.5)}, 'facility MP-IND': {'capacity_t 2027': ('facilities.MP-IND.capacity_t.2027',
    1000.0), ...}, ...}: item (section, ID) -> field (a year or key of a series after a
    space) -> (the PATH of `offtake solve --set PATH=VALUE`, its current value). Whole and
    yes/no fields, empty ones and numbers inside lists are left out."""
    raw = to_data(inst)
    out: dict[str, dict[str, tuple[str, float]]] = {}
    for section, noun in SECTIONS.items():
        for item in raw.get(section) or []:
            fields: dict[str, tuple[str, float]] = {}
            for name, value in item.items():
                if name != "id":
                    _leaves(f"{section}.{item['id']}.{name}", name, value, fields)
            if fields:
                out[f"{noun} {item['id']}"] = fields
    return out


def _leaves(path: str, label: str, value: Any, into: dict[str, tuple[str, float]]) -> None:
    if isinstance(value, float):
        into[label] = (path, value)
    elif isinstance(value, dict):
        for key, sub in value.items():
            text = str(getattr(key, "value", key))
            _leaves(f"{path}.{text}", f"{label} {text}", sub, into)


def assignment(path: str, value: float) -> str:
    """'PATH=VALUE' for `apply_sets`, the value written so YAML reads it back as a number."""
    return f"{path}={float(value)!r}"


def solve_whatif(_shared: Any, item: tuple[WhatIf, str]) -> dict[str, Any]:
    """Run one what-if into folder `item[1]` (in a worker of the executor): the same steps as
    `offtake solve` (`pipeline.run.run`: solve, write, check). Its status, objective and
    the checker's violations."""
    from offtake.pipeline.run import run
    from offtake.solvers.options import SolveOptions

    job, out = item
    result = run(job.instance, out, SolveOptions(**job.options), relax=list(job.relax),
                 sets=list(job.sets), buyers=list(job.buyers) or None,
                 force=list(job.force), forbid=list(job.forbid))
    if result.results is None:
        raise InvalidInstance([f for f in result.load.findings if f.severity == "error"])
    r = result.results
    return {"status": r.status, "objective": r.objective,
            "violations": None if result.check is None else len(result.check.violations)}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:40] or "whatif"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


class Jobs:
    """What-if runs of one store, run one after the other in the background on one
    executor (`kind`: 'process' by default, a worker process for the solves)."""

    def __init__(self, store: str | Path, kind: str = "process"):
        self.folder = Path(store) / WHATIF
        self.kind = kind
        self._queue: queue.Queue[tuple[WhatIf, str]] = queue.Queue()
        self._live: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, job: WhatIf, label: str = "") -> str:
        """Queue a what-if (its changes must have been checked: `findings_of`); its name.
        Returns at once."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{_slug(label or Path(job.base).name)}"
        name, i = base, 1
        while (self.folder / f"{name}.json").exists():
            i += 1
            name = f"{base}-{i}"
        record = {"name": name, "state": "queued", "submitted": time.time(),
                  "started": None, "finished": None, "error": "", "result": None,
                  "out": str(self.folder / name), "job": asdict(job)}
        _write_json(self.folder / f"{name}.json", record)
        with self._lock:
            self._live.add(name)
            self._queue.put((job, name))
            self._start()
        return name

    def warm(self) -> None:
        """Start the executor now (a process pool's worker starts and imports the solve
        path), so that the first what-if does not wait for that. It stops again after a
        minute without work."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        """The draining thread, started if none runs (the caller holds the lock)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._drain, name="offtake-whatif",
                                            daemon=True)
            self._thread.start()

    def _update(self, name: str, **changes: Any) -> None:
        path = self.folder / f"{name}.json"
        record = json.loads(path.read_text())
        record.update(changes)
        _write_json(path, record)

    def _drain(self) -> None:
        from offtake.runtime import make_executor

        with make_executor(self.kind, workers=1,
                           preload=("offtake.pipeline.run",) if self.kind == "process"
                           else ()) as ex:
            while True:
                try:
                    job, name = self._queue.get(timeout=60)
                except queue.Empty:
                    with self._lock:
                        if self._queue.empty():
                            self._thread = None
                            return
                    continue
                self._update(name, state="running", started=time.time())
                try:
                    [res] = ex.map(solve_whatif, [(job, str(self.folder / name))])
                    if res.ok:
                        self._update(name, state="done", finished=time.time(),
                                     result=res.value)
                    else:
                        self._update(name, state="failed", finished=time.time(),
                                     error=res.error)
                except Exception as exc:  # the record must say so, never stay 'running'
                    self._update(name, state="failed", finished=time.time(),
                                 error=f"{type(exc).__name__}: {exc}\n"
                                       + traceback.format_exc(limit=3))
                finally:
                    with self._lock:
                        self._live.discard(name)

    def records(self) -> list[dict[str, Any]]:
        """Every what-if of the store, newest first; one still queued or running that no
        live job has is 'interrupted'."""
        out: list[dict[str, Any]] = []
        if not self.folder.is_dir():
            return out
        with self._lock:
            live = set(self._live)
        for path in sorted(self.folder.glob("*.json"), reverse=True):
            try:
                rec = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if rec.get("state") in ("queued", "running") and rec.get("name") not in live:
                rec = {**rec, "state": "interrupted"}
            out.append(rec)
        return out

    def busy(self) -> bool:
        with self._lock:
            return bool(self._live)


def job_of(record: dict[str, Any]) -> WhatIf:
    """The WhatIf of a record of `Jobs.records`."""
    j = dict(record["job"])
    for key in ("sets", "force", "forbid", "buyers", "relax", "changes"):
        j[key] = tuple(j.get(key) or ())
    return replace(WhatIf(instance=j["instance"], base=j["base"]),
                   **{k: v for k, v in j.items() if k not in ("instance", "base")})
