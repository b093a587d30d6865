"""Writing an output folder so that it never lies: one writer at a time, every file replaced
whole, and a completion marker written last.

`writing(out_dir)` takes the folder's lock (a sibling file `<dir>.lock` holding the writer's
process id; a lock whose process is gone is taken over), removes the marker, and writes the
marker again only when the block ends without an error. A run killed half way therefore
leaves a folder without the marker, which `offtake check` refuses, instead of an older run's
summary beside newer tables. `write_text` and `write_frame` replace a file whole (a temporary
file in the same folder, then a rename), so no file is ever half written. Files the run does
not write (the user's own, a later command's) are left alone, except the views made from an
older run's tables (`DERIVED`: results.xlsx, the HTML report and its figures), which a new run
removes.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

MARKER = "COMPLETE"
"""Written last, after every table, summary.json and plan.json of a run."""


class FolderBusy(RuntimeError):
    """Another process is writing this output folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """Hold `<out_dir>.lock` for the block; FolderBusy when a live process holds it."""
    lock = out_dir.with_name(out_dir.name + ".lock")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and holder != os.getpid() and _alive(holder):
                raise FolderBusy(f"{out_dir} is being written by process {holder} (lock "
                                 f"{lock}); wait for it, or choose another --out") from None
            lock.unlink(missing_ok=True)  # left by a process that is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    else:  # pragma: no cover - another writer took the stale lock between our two tries
        raise FolderBusy(f"{out_dir} is being written by another process (lock {lock})")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


@contextmanager
def writing(out_dir: str | Path) -> Iterator[Path]:
    """Lock the folder, drop its marker, yield it; write the marker when the block succeeds."""
    out = Path(out_dir)
    with locked(out):
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).unlink(missing_ok=True)
        yield out
        write_text(out / MARKER, json.dumps({"pid": os.getpid()}) + "\n")


def is_complete(out_dir: str | Path) -> bool:
    return (Path(out_dir) / MARKER).exists()


def written_by(out_dir: str | Path) -> str | None:
    """The command whose output the folder holds: summary.json's `command` ('saa', ...),
    'solve' for a solve's summary (it has none), None without a readable summary.json."""
    try:
        summary = json.loads((Path(out_dir) / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return str(summary.get("command") or "solve") if isinstance(summary, dict) else None


TEMP_PREFIX = ".tmp-"
"""How a temporary file of `write_atomically` starts (a killed writer's are found by it)."""


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write(temporary path)` in the same folder, then rename it to `path`, so that `path` is
    never half written. The temporary file is created as an ordinary file is (mode 0666 less
    the umask; mkstemp's would be 0600 and stay so after the rename)."""
    tmp = path.parent / f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(8)}"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Replace `path` whole with `text`."""
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Replace `path` whole with the frame as CSV."""
    write_text(path, frame.to_csv(index=False))


DERIVED = ("results.xlsx", "report.html", "report_*.png")
"""Views of a run that later steps write from its tables (the workbook after a solve, the
HTML report and its figures): a new run removes them, so they never describe an older run."""


def remove_derived(out_dir: str | Path) -> None:
    """Remove the views of an older run (`DERIVED`) from the folder."""
    for pattern in DERIVED:
        for path in Path(out_dir).glob(pattern):
            path.unlink(missing_ok=True)


VALUE_FILE = "value.json"
"""What `offtake value --out DIR` writes: RP, EV, EEV, WS, VSS and EVPI of one instance."""


def value_of_run(out_dir: str | Path, instance_sha256: str, options: dict
                 ) -> tuple[dict | None, str]:
    """value.json of the folder when it was computed for the run in it (the same instance
    file, the same --set changes, buyers, forced and forbidden offers), else None and why
    not: a folder solved again after `offtake value` would otherwise show the value of
    another instance beside its plan."""
    path = Path(out_dir) / VALUE_FILE
    if not path.exists():
        return None, ""
    value = json.loads(path.read_text())
    run = value.get("run")
    keys = ("set", "buyers", "forced", "forbidden")
    if not isinstance(run, dict) or run.get("instance_sha256") != instance_sha256 or any(
            list(run.get(k) or []) != list(options.get(k) or []) for k in keys):
        return None, (f"{path} is left out: it was computed for another instance or other "
                      "changes than this run's (run `offtake value` with the same instance "
                      "and --set again)")
    return value, ""
