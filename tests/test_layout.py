"""The core's layout: each wing imports only the wings below it, no module circle, and
built-in operators and the example plugin import only the plugin author's surface.

The wings, bottom to top (``jboat_core/__init__.py`` says what each is for)::

    errors < platform < contract < numerics, plugins < solver < compat, run, testing

``compat`` (JBOAT's seed API, API-1 plugins, old import paths) sits above the others and
nothing below imports it: ``contract`` is API 2 only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "jboat_core"

#: What each wing may import (besides itself).
ALLOWED = {
    "errors": set(),
    "platform": {"errors"},
    "contract": {"errors", "platform"},
    "numerics": {"errors", "platform", "contract"},
    "plugins": {"errors", "platform", "contract"},
    "solver": {"errors", "platform", "contract", "numerics", "plugins"},
    "run": {"errors", "platform", "contract", "numerics", "plugins", "solver"},
    "testing": {"errors", "platform", "contract", "numerics", "plugins", "solver"},
    "compat": {"errors", "platform", "contract", "numerics", "plugins", "solver"},
}
#: The face module of the package (``jboat_core/__init__.py``).
FACE = {"__init__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute module names of ``jboat_core`` that ``path`` imports (lazy imports too)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("jboat_core")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("jboat_core"):
                continue
            found.add(mod)
            for alias in node.names:  # ``from . import x`` may name a module
                if (CORE.parent / (mod.replace(".", "/") + f"/{alias.name}.py")).exists():
                    found.add(f"{mod}.{alias.name}")
    return found


def _wing(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "face"
    return parts[1] if parts[1] in ALLOWED else "face"


def _core_modules():
    return sorted(p for p in CORE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_core_module_is_in_a_wing():
    loose = [p.name for p in CORE.glob("*.py") if p.stem not in FACE | {"errors"}]
    assert not loose, f"modules outside a wing: {loose}"
    assert {p.name for p in CORE.iterdir() if p.is_dir() and p.name != "__pycache__"} == (
        set(ALLOWED) - {"errors"})


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_wing_imports_only_wings_below(path):
    wing = _wing(_module_name(path))
    if wing == "face":
        return
    bad = sorted(m for m in _imports(path)
                 if _wing(m) not in ALLOWED[wing] | {wing} and m != "jboat_core")
    assert not bad, f"{wing} may import {sorted(ALLOWED[wing])} only: {bad}"
    assert "jboat_core" not in _imports(path) or wing == "testing", (
        "import the wing's module, not the package face (it imports every wing)")


def test_no_module_circle():
    graph = {_module_name(p): {m for m in _imports(p) if m != "jboat_core"}
             for p in _core_modules()}
    graph = {k: {m for m in v if m in graph} for k, v in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("circle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state and not node.endswith("__init__"):
            visit(node)


# -- the plugin author's surface ------------------------------------------------------
#: Modules a plugin may import names from, each through its ``__all__``.
SURFACE = ("jboat_core", "jboat_core.contract", "jboat_core.numerics")
PLUGIN_SOURCES = sorted([*(ROOT / "jboat_ops").glob("*.py"),
                         *(ROOT / "plugins-example" / "jboat_example_plugin").glob("*.py")])


def _surface_names(module: str) -> set[str]:
    import importlib

    return set(importlib.import_module(module).__all__)


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_operators_import_only_the_plugin_surface(path):
    """Built-in operators and the example plugin take what a third-party plugin takes:
    names of ``jboat_core``, ``jboat_core.contract`` and ``jboat_core.numerics`` that their
    ``__all__`` declares (lazy imports inside ``step`` included)."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names
                    if a.name.startswith("jboat_core") and a.name not in SURFACE]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jboat_core"):
            if node.module not in SURFACE:
                bad.append(node.module)
                continue
            public = _surface_names(node.module)
            bad += [f"{node.module}.{a.name}" for a in node.names if a.name not in public]
    assert not bad, (f"{path.name} imports outside the plugin surface {SURFACE}: {bad}; "
                     "use the public name (docs/plugins.md, 'What a plugin imports')")


def test_surface_names_exist():
    """Every name a surface module declares can be read (numerics loads them lazily, which
    needs Jittor: only the declaration is checked here)."""
    import jboat_core
    import jboat_core.contract

    for module in (jboat_core, jboat_core.contract):
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"{module.__name__}.__all__ names missing objects: {missing}"
    import jboat_core.numerics as numerics

    for name in numerics.__all__:
        where = numerics._WHERE[name]
        source = (CORE / "numerics" / f"{where}.py").read_text()
        assert (f"def {name}(" in source or f"class {name}" in source
                or f"\n{name} = " in source or f"import {name}" in source
                or f", {name}" in source), f"numerics.{name} is not in {where}.py"


def test_hook_spec_matches_kinds():
    """The hook spec is plain ``@hookspec`` functions: one registration hook per kind of
    ``KINDS``, one for presets and one per component kind of ``COMPONENTS``, nothing
    else."""
    from jboat_core.contract import COMPONENTS, KINDS
    from jboat_core.contract.spec import JboatHookSpec

    hooks = {n for n, v in vars(JboatHookSpec).items() if callable(v) and not n.startswith("_")}
    assert hooks == ({k.hook for k in KINDS.values()} | {"jboat_register_presets"}
                     | {c.hook for c in COMPONENTS.values()})
    for name in hooks:
        assert getattr(JboatHookSpec, name).__doc__, f"{name} has no docstring"


@pytest.mark.jittor  # the moved numerics modules import Jittor
def test_old_import_paths_work_for_one_version():
    """Every old path (the flat layout of 0.1: ``jboat_core.runner``, ``._jittor``,
    ``.chain``...; 0.2's modules that moved to the compatibility wing) gives the moved
    module itself, with a DeprecationWarning naming the new path; what task files and
    API-1 plugins imported from them is there."""
    import subprocess
    import sys

    from jboat_core.compat.moved import MOVED

    code = ("import importlib, warnings, sys\n"
            "warnings.simplefilter('error', DeprecationWarning)\n"
            f"moved = {MOVED!r}\n"
            "import jboat_core\n"
            "for old, new in moved.items():\n"
            "    try:\n"
            "        importlib.import_module('jboat_core.' + old)\n"
            "    except DeprecationWarning as w:\n"
            "        assert 'jboat_core.' + new in str(w), w\n"
            "    else:\n"
            "        raise SystemExit('no warning for ' + old)\n"
            "warnings.simplefilter('ignore')\n"
            "for old, new in moved.items():\n"
            "    a = importlib.import_module('jboat_core.' + old)\n"
            "    assert a is importlib.import_module('jboat_core.' + new), old\n"
            "from jboat_core.chain import finished, passthrough\n"
            "from jboat_core.hypergradient import HyperGradient\n"
            "from jboat_core.runner import Task\n"
            "from jboat_core._jittor import jittor\n"
            "from jboat_core.implicit import implicit_result, implicit_hypergradient\n"
            "from jboat_core.solve import hypergradient_step\n"
            "from jboat_core.solver.sequential import SequentialHG\n"
            "sys.exit(0)\n")
    env = {**__import__("os").environ}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout


def test_testing_helpers_have_docstrings():
    """``jboat_core.testing`` is read by plugin authors: every public class, function and
    method (the generated test classes aside) says what it is."""
    missing = []
    for path in sorted((CORE / "testing").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith(
                    ("_", "test_", "f32", "out", "inn")) and not ast.get_docstring(node):
                missing.append(f"{path.name}:{node.lineno} {node.name}")
    assert not missing, missing
