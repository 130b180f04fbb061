"""Public names only (issue 31.7): what a user or a plugin author copies imports jboat
through its public surfaces, never an internal module.

Parsed (``ast``): every Python file of ``examples/`` and ``plugins-example/``, every
Python code block of README.md, CONTRIBUTING.md and ``docs/*.md``, and every file
``jboat new-plugin`` writes (each family). Allowed:

* ``jboat_core``, ``jboat_core.contract``, ``jboat_core.numerics`` (the three surfaces);
* ``jboat_core.testing`` and its modules in test files only (``tests/``, ``test_*.py``,
  ``conftest.py``, and doc blocks written to such a path or that define ``test_``
  functions): the kit is for tests;
* ``jboat`` and ``jboat.*``: JBOAT's seed API, kept as documented aliases (README,
  docs/coming-from-jboat.md) so JBOAT's scripts run unchanged;
* ``jboat_ops.*`` nowhere: a built-in is reached by its name in a config (``"CG"``), not
  by importing its module; its metadata by ``jboat show-op``.

One exception, listed in ``EXCEPTIONS`` with its reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SURFACES = {"jboat_core", "jboat_core.contract", "jboat_core.numerics"}
#: File -> internal modules it may import, and why.
EXCEPTIONS = {
    "examples/darts_digits.py": ({"jboat_core.testing.networks"},
                                 "the DARTS supernet is shared with the kit's tests and "
                                 "benchmarks; it moves to a public module when one exists"),
}
BLOCK = re.compile(r"(?:<!--\s*file:\s*(?P<path>\S+)\s*-->[ \t]*\n)?```(?:python|py)[ \t]*\n"
                   r"(?P<body>.*?)^```", re.S | re.M)


def _is_test(path: str, source: str = "") -> bool:
    name = Path(path).name
    return ("tests" in Path(path).parts or name.startswith("test_") or name == "conftest.py"
            or re.search(r"^\s*def test_|conformance_tests\(", source, re.M) is not None)


def bad_imports(source: str, test: bool) -> list[str]:
    """The modules of ``source`` imported outside the public surfaces."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            mods = [node.module or ""]
        else:
            continue
        for mod in mods:
            top = mod.split(".")[0]
            if top == "jboat" or top not in ("jboat_core", "jboat_ops") or mod in SURFACES:
                continue
            if test and (mod == "jboat_core.testing" or mod.startswith("jboat_core.testing.")):
                continue
            out.append(f"line {node.lineno}: {mod}")
    return out


def sources() -> list[tuple[str, str, bool]]:
    """``(label, source, is_test)`` of every file and block checked (generated too)."""
    found = []
    for path in sorted([*ROOT.glob("examples/**/*.py"), *ROOT.glob("plugins-example/**/*.py")]):
        rel = str(path.relative_to(ROOT))
        text = path.read_text(encoding="utf-8")
        found.append((rel, text, _is_test(rel, text)))
    for doc in sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *ROOT.glob("docs/*.md")]):
        text = doc.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            label = f"{doc.relative_to(ROOT)}:{line}"
            found.append((label, m["body"], _is_test(m["path"] or "", m["body"])))
    return found


@pytest.mark.parametrize("label,source,test", sources(), ids=lambda v: v if isinstance(v, str) and len(v) < 60 and "\n" not in v else "")
def test_examples_and_docs_use_public_names(label, source, test):
    try:
        bad = bad_imports(source, test)
    except SyntaxError:
        pytest.skip(f"{label}: not Python as a whole (a fragment)")
    allowed = EXCEPTIONS.get(label, (set(), ""))[0]
    bad = [b for b in bad if b.split(": ", 1)[1] not in allowed]
    assert not bad, f"{label} imports internal modules: {', '.join(bad)}"


def test_generated_plugins_use_public_names(tmp_path):
    from jboat_core.run.scaffold import families, write_plugin

    for family in families():
        root, files = write_plugin(f"Pub{family.title().replace('_', '')}", family, tmp_path)
        for path in files:
            if path.suffix == ".py":
                rel = str(path.relative_to(root))
                bad = bad_imports(path.read_text(), _is_test(rel))
                assert not bad, f"{family}: {rel} imports internal modules: {', '.join(bad)}"


def test_the_checker_catches_internal_imports():
    assert bad_imports("from jboat_core.solver.problem import Problem", False)
    assert bad_imports("import jboat_ops.cg", False)
    assert bad_imports("from jboat_core.testing import conformance", False)
    assert not bad_imports("from jboat_core.testing import conformance", True)
    assert not bad_imports("import jboat as boat\nfrom jboat.na_ol.cg import CG\n"
                           "from jboat_core.contract import Result", False)
