#!/usr/bin/env python3
"""Set up a virtual environment and run the project's main job or its tests.

    python3 dev.py demo   # create .venv, install offtake, solve the shipped small instance
    python3 dev.py test   # create .venv, install offtake with test extras, run the whole suite
    python3 dev.py lint   # the static gates: ruff on src, tests and benchmarks; mypy on src

Needs only Python 3.11+. Reinstalls when pyproject.toml changes. Extra arguments go to the
command (`python3 dev.py test -k schema`, `python3 dev.py demo --time-limit 30`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
DEMO = ["instances/us_ev_oem_small.yaml", "--out", "out/us_ev_oem_small"]


def ensure_env() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        sys.exit(f"offtake needs Python 3.11+, this is {sys.version.split()[0]}")
    stamp = VENV / ".offtake-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want and PY.exists():
        return
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("installing offtake and its dependencies into .venv ...", flush=True)
    run([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([str(PY), "-m", "pip", "install", "--quiet", "-e", ".[dev]"])
    stamp.write_text(want)


def run(cmd: list[str]) -> None:
    code = subprocess.call(cmd, cwd=ROOT)
    if code:
        sys.exit(code)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("demo", "test", "lint"):
        sys.exit(__doc__)
    ensure_env()
    task, rest = argv[0], argv[1:]
    if task == "demo":
        run([str(BIN / "offtake"), "solve", *DEMO, *rest])
    elif task == "lint":
        run([str(PY), "-m", "ruff", "check", "src", "tests", "benchmarks", "dev.py", *rest])
        run([str(PY), "-m", "mypy", "src/offtake"])
    else:
        run([str(PY), "-m", "pytest", "-q", *rest])


if __name__ == "__main__":
    main(sys.argv[1:])
