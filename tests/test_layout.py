"""The package's shape: imports flow one way between the folders, no module imports itself
back through others, and the checker loads nothing of the formulation or of Pyomo."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from conftest import ROOT

PACKAGE = ROOT / "src" / "offtake"

LAYERS = {
    "domain": 0, "io": 1, "formulation": 2, "solvers": 2, "results": 3, "check": 3,
    "runtime": 3, "pipeline": 4, "analysis": 5, "report": 6, "apps": 7,
}
"""Rank of each folder: a module imports only from its own folder or from a lower rank."""


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Modules of the package imported by `name` (inside functions too; not under
    TYPE_CHECKING)."""
    found: set[str] = set()
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import"
            mod = node.module or ""
            found |= {f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod
                      for a in node.names}
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, tree, set(mods)) for name, tree in mods.items()}


def folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_folder_has_a_rank():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders == set(LAYERS)
    assert {p.name for p in PACKAGE.glob("*.py")} == {"__init__.py"}, "modules live in folders"


def test_imports_flow_one_way_between_folders():
    bad = []
    for mod, deps in graph().items():
        here = folder(mod)
        for dep in deps:
            there = folder(dep)
            if here is None or there is None or here == there:
                continue
            if LAYERS[there] >= LAYERS[here]:
                bad.append(f"{mod} -> {dep}")
    assert bad == []


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_cycles():
    g = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph().items()}
    assert find_cycle(g) is None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_checker_loads_no_pyomo_and_no_formulation():
    code = ("import sys, offtake.check\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'pyomo'"
            " or m.startswith(('offtake.formulation', 'offtake.solvers', 'offtake.pipeline')))\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


HEAVY = ("pyomo", "highspy", "scipy", "matplotlib", "pandas", "dask", "distributed")


def _loaded_heavy(code: str) -> list[str]:
    probe = (f"{code}\nimport sys\n"
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def test_the_cli_starts_without_heavy_libraries():
    """`offtake --help` imports the CLI only: no Pyomo, HiGHS, scipy, matplotlib, pandas or
    Dask (each command imports what it runs)."""
    assert _loaded_heavy("import offtake.apps.cli") == []


def test_validate_loads_no_solver_stack():
    """`offtake validate` reads, validates and derives data: no Pyomo, HiGHS or scipy."""
    code = ("from typer.testing import CliRunner\nfrom offtake.apps.cli import app\n"
            "r = CliRunner().invoke(app, ['validate', 'instances/us_ev_oem_small.yaml'])\n"
            "assert r.exit_code == 0, r.output")
    assert set(_loaded_heavy(code)) <= {"pandas"}


def test_a_plain_solve_loads_no_scipy():
    """Importing scipy after Pyomo costs about a second (Pyomo's hook imports scipy.stats);
    one solve needs none of it."""
    code = ("from offtake.io.loader import load_or_raise\n"
            "from offtake.pipeline.solve import solve_instance\n"
            "r = solve_instance(load_or_raise('instances/tiny_two_offers.yaml'))\n"
            "assert r.status == 'optimal'")
    assert "scipy" not in _loaded_heavy(code)


def test_the_solve_path_loads_pyomo_core_without_its_plugins():
    """`pyomo.environ` loads every Pyomo plugin (GDP, contrib.cp, network, solver interfaces),
    about 0.35 s more than `pyomo.core` on every solve; building the model and compiling it to
    arrays needs only the core. A whole solve, duals and the checker included, must not
    bring in the plugins."""
    code = ("import sys\nfrom offtake.io.loader import load_or_raise\n"
            "from offtake.pipeline.solve import solve_instance\n"
            "r = solve_instance(load_or_raise('instances/tiny_two_offers.yaml'))\n"
            "assert r.status == 'optimal'\n"
            "print(sorted(m for m in sys.modules if m.startswith(('pyomo.environ', "
            "'pyomo.gdp', 'pyomo.contrib', 'pyomo.network', 'pyomo.solvers'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_shipped_files_name_no_path_of_a_machine():
    """Instances cite their sources, never where a fact sheet lies on someone's disk."""
    pattern = re.compile(r"(?<![\w.])(/work/|/home/|/Users/|/tmp/|[A-Z]:\\\\)")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "instances").rglob("*"))
                 if p.is_file() for n, line in enumerate(p.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []
