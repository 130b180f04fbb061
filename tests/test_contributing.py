"""The plugin author's guide's walk-through (docs/plugins.md, once in CONTRIBUTING.md) works
as written.

Its marked blocks (``<!-- file: PATH -->`` before a code fence) are written into a fresh
directory; without pip-installing anything, the module is imported from there, registered
through a fake entry point built from the walk-through's own ``pyproject.toml``, listed by
``jboat list-ops``, and the walk-through's own tests are run in-process.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from pathlib import Path

import pytest

from fakeplugins import FakeDist, FakeEntryPoint
from jboat_core.plugins.registry import Registry, set_registry
from jboat_core.run import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
MARKED_BLOCK = re.compile(
    r"<!--\s*(?:file:\s*(?P<path>\S+)|(?P<shell>shell))\s*-->[ \t]*\n"
    r"```[\w-]*\n(?P<body>.*?)^```", re.S | re.M)


def marked_blocks() -> tuple[dict[str, str], list[str]]:
    """``({path: content}, [shell block, ...])`` of the walk-through."""
    files, shells = {}, []
    for m in MARKED_BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        if m["shell"]:
            shells.append(m["body"])
        else:
            assert m["path"] not in files, f"two blocks for {m['path']}"
            files[m["path"]] = m["body"]
    return files, shells


FILES, SHELLS = marked_blocks()


def pyproject() -> dict:
    return tomllib.loads(FILES["pyproject.toml"])


def entry_points() -> list[FakeEntryPoint]:
    project = pyproject()["project"]
    dist = FakeDist(project["name"], project["version"])
    return [FakeEntryPoint(name, value, dist)
            for name, value in project["entry-points"]["jboat"].items()]


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """The walk-through's files in tmp_path, importable (here and in subprocesses)."""
    for rel, body in FILES.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:  # the plugin's modules, imported from tmp_path
        if getattr(sys.modules[name], "__file__", "") and \
                str(tmp_path) in str(sys.modules[name].__file__):
            del sys.modules[name]


@pytest.fixture
def plugin_registry(plugin_dir, builtin_registry):
    """The plugin, registered from its declared entry point, next to the built-ins."""
    reg = Registry.from_entry_points(entry_points(), strict=False)
    assert not reg.failures, "\n".join(f"{f.origin}: {f.error}" for f in reg.failures)
    assert not set(reg.operators) & set(builtin_registry.operators), "clashes with a built-in"
    reg.operators.update(builtin_registry.operators)
    old = set_registry(reg)
    yield reg
    set_registry(old)


def walkthrough_tests():
    """The test module of the walk-through and its zero-argument tests, by name."""
    (test_file,) = [p for p in FILES if Path(p).name.startswith("test_")]
    module = __import__(Path(test_file).stem)
    tests = {}
    for name, obj in vars(module).items():
        if name.startswith("test_") and callable(obj):
            tests[name] = obj
        elif name.startswith("Test") and inspect.isclass(obj):
            for meth in (m for m in dir(obj) if m.startswith("test_")):
                tests[f"{name}.{meth}"] = getattr(obj(), meth)
    for name, fn in tests.items():  # fixtures would need pytest: keep them out of the doc
        assert not inspect.signature(fn).parameters, f"{name} takes arguments"
    return tests


def test_walkthrough_has_the_marked_blocks():
    assert {"pyproject.toml", "test_jboat_mr.py", "jboat_mr.py"} <= set(FILES)
    shell = "\n".join(SHELLS)
    for command in ("pip install -e .", "python -m pytest", "jboat list-ops", "jboat show-op"):
        assert command in shell, f"no shell block runs {command!r}"
    steps = re.findall(r"^(\d+)\. \*\*", DOC.read_text(encoding="utf-8"), re.M)
    assert steps == [str(i) for i in range(1, len(steps) + 1)] and len(steps) >= 5


def test_pyproject_declares_the_module_in_group_jboat():
    data = pyproject()
    assert data["build-system"]["build-backend"] == "setuptools.build_meta"
    (ep,) = entry_points()
    assert ep.value in data["tool"]["setuptools"]["py-modules"]
    assert ep.value.replace(".", "/") + ".py" in FILES, "the entry point names no block"


def test_plugin_registers_and_is_listed(plugin_registry, capsys):
    (ep,) = entry_points()
    rec = plugin_registry.get("MR", kind="hypergradient")
    assert rec.origin.distribution == ep.dist.name == "jboat-mr"
    assert cli.main(["list-ops", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["MR"]["distribution"] == "jboat-mr" and rows["MR"]["stage"] == "implicit"
    assert {"CG", "NS", "RAD"} <= set(rows)
    assert cli.main(["show-op", "MR"]) == 0
    out = capsys.readouterr().out
    assert "k (int, default 20)" in out and "Pedregosa" in out and "formula:" in out


RUN_CHECKS = ("returns", "runs_through", "nan_changes", "state_survives", "correct")


def test_walkthrough_checks_without_jittor(plugin_registry):
    tests = walkthrough_tests()
    run = [n for n in tests if n.startswith("TestConformance")
           and not any(k in n for k in RUN_CHECKS)]
    assert len(run) == 3, sorted(tests)
    for name in run:  # metadata, config round trip, Jittor-free import (subprocess)
        tests[name]()


@pytest.mark.jittor
def test_walkthrough_tests_pass(plugin_registry):
    tests = walkthrough_tests()
    run = [n for n in tests if not n.startswith("TestConformance")
           or any(k in n for k in RUN_CHECKS)]
    assert "test_mr_is_exact_at_the_lower_solution" in run, sorted(tests)
    for name in run:  # the exactness test and the kit's runs through Problem
        tests[name]()


def test_first_order_snippet_is_the_plugin_example_code():
    """The first-order solver shown in the walk-through is the tested plugin's code."""
    text = DOC.read_text(encoding="utf-8")
    snippet = text[text.index("class F2SA(FirstOrderSolver):"):]
    snippet = snippet[:snippet.index("```")]
    source = (ROOT / "plugins-example" / "jboat_example_plugin" / "f2sa.py").read_text()
    lines = [ln.split("#")[0].strip() for ln in snippet.splitlines()[1:]]
    code = {ln.split("#")[0].strip() for ln in source.splitlines()}
    missing = [ln for ln in lines if ln and ln not in code]
    assert not missing, missing


def _snippet(name: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(rf"<!--\s*snippet:\s*{name}\s*-->[ \t]*\n```python\n(.*?)^```", text,
                  re.S | re.M)
    assert m, f"no snippet {name!r} in {DOC.name}"
    return m.group(1)


@pytest.mark.jittor
def test_own_inner_update_snippet_runs_through_the_kit(builtin_registry):
    """The hand-written dynamics of step 9 (heavy-ball momentum): registered next to the
    built-ins, it runs through Problem, keeps nothing on itself, a NaN changes nothing,
    its checkpoint resumes, and it composes with PTT + RAD."""
    import types

    from jboat_core.testing import conformance

    module = types.ModuleType("heavyball_snippet")
    exec(compile(_snippet("dynamics"), "docs/plugins.md", "exec"), module.__dict__)
    cls = module.HeavyBall
    reg = builtin_registry.with_classes([cls])
    conformance.check_metadata(cls)
    conformance.check_runs_through_problem(cls, registry=reg)
    conformance.check_finite_guard(cls, registry=reg)
    conformance.check_state_survives_resume(cls, registry=reg)
    problem, prob, _ = conformance.conformance_problem(
        cls, registry=reg, **{"na_op": ["PTT", "RAD"]})
    record = problem.run_iter(prob.ll_feed, prob.ul_feed, 0)
    assert record.upper_loss == record.upper_loss  # finite: checked by the solver
