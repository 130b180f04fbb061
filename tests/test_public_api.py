"""No break without notice: the three public surfaces (``jboat_core``,
``jboat_core.contract``, ``jboat_core.numerics``) equal the committed snapshot of the
current version (``tests/public_api/<version>.json``), and everything that changed since
the previous version's snapshot (a name gone from a surface, a signature changed) is
recorded in CHANGELOG.md's section of the current version; every deprecated name still
resolves and is listed there with its removal version.

After a deliberate change: record it in CHANGELOG.md, then ``python tests/public_api.py
--write``.
"""

from __future__ import annotations

import importlib
import json
import re
import warnings
from pathlib import Path

import pytest

import public_api

ROOT = Path(__file__).resolve().parents[1]
CHANGELOG = ROOT / "CHANGELOG.md"


def _version_key(name: str) -> tuple:
    return tuple(int(p) for p in name.split("."))


def _section(version: str) -> str:
    text = CHANGELOG.read_text()
    m = re.search(rf"^## \[{re.escape(version)}\].*?(?=^## \[|\Z)", text, re.M | re.S)
    assert m, f"CHANGELOG.md has no section '## [{version}]'"
    return m.group(0)


@pytest.mark.jittor  # reading jboat_core.numerics' names imports Jittor
def test_surfaces_equal_the_snapshot():
    live = public_api.snapshot()
    path = public_api.path()
    assert path.exists(), (f"no snapshot of version {public_api.version()}: record the "
                           "changes in CHANGELOG.md, then `python tests/public_api.py --write`")
    saved = json.loads(path.read_text())
    diff = []
    for surface in public_api.SURFACES:
        a, b = saved.get(surface, {}), live[surface]
        diff += [f"+ {surface}.{n}" for n in sorted(set(b) - set(a))]
        diff += [f"- {surface}.{n}" for n in sorted(set(a) - set(b))]
        diff += [f"~ {surface}.{n}" for n in sorted(set(a) & set(b)) if a[n] != b[n]]
    assert not diff, ("the public surfaces differ from " + path.name + ":\n  "
                      + "\n  ".join(diff) + "\nrecord the change in CHANGELOG.md, then run "
                      "`python tests/public_api.py --write`")


def test_changes_since_the_previous_version_are_in_the_changelog():
    """Every name that left a surface or changed its signature since the previous
    version's snapshot is named in this version's CHANGELOG section."""
    versions = sorted((p.stem for p in public_api.FOLDER.glob("*.json")), key=_version_key)
    current = public_api.version()
    assert current in versions
    older = [v for v in versions if _version_key(v) < _version_key(current)]
    if not older:
        pytest.skip("no previous snapshot")
    before = json.loads(public_api.path(older[-1]).read_text())
    now = json.loads(public_api.path(current).read_text())
    section = _section(current)
    missing = []
    for surface in public_api.SURFACES:
        a, b = before.get(surface, {}), now.get(surface, {})
        for name in sorted(a):
            if name not in b or a[name] != b[name]:
                if f"`{surface}.{name}" not in section and f"`{name}`" not in section:
                    missing.append(f"{surface}.{name}")
    assert not missing, (f"changed since {older[-1]} but not in CHANGELOG.md [{current}]: "
                         f"{missing}")


def _deprecated() -> list[tuple[str, str]]:
    """(module, name) of every deprecated alias jboat serves."""
    import jboat_core
    import jboat_core.numerics
    from jboat_core.compat.moved import MOVED

    out = [("jboat_core", n) for n in jboat_core._DEPRECATED]
    out += [("jboat_core.numerics", n) for n in jboat_core.numerics._DEPRECATED]
    out += [("jboat_core.contract", "HyperGradientOperator")]
    out += [(f"jboat_core.{old}", "") for old in MOVED]
    return out


def test_every_deprecation_resolves_and_is_in_the_changelog():
    section = _section(public_api.version())
    assert "jboat 0.3" in section or "0.3" in section
    missing = []
    for module, name in _deprecated():
        shown = f"{module}.{name}" if name else module
        if f"`{shown}`" not in section and f"`{shown}(" not in section:
            missing.append(shown)
        if not name or module == "jboat_core.numerics":
            continue  # module paths: test_layout imports them; numerics imports Jittor
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            value = getattr(importlib.import_module(module), name)
        assert value is not None
        assert any(issubclass(w.category, DeprecationWarning) and "0.3" in str(w.message)
                   for w in seen), f"{shown}: no DeprecationWarning naming the removal"
    assert not missing, f"deprecated but not in CHANGELOG.md: {missing}"
