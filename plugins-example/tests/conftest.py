"""Test set-up of jboat-example-plugin: Jittor as jboat sets it up, an explicit registry.

The tests do not depend on what is installed: the registry holds jboat's built-in
operators plus CGN, registered through the entry point declared in this distribution's
own ``pyproject.toml``, whether or not the plugin is pip-installed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The conformance kit imports the plugin module in a subprocess: make it importable there
# even when the distribution is not installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from _entrypoints import builtin_entry_points, plugin_entry_points  # noqa: E402
from jboat_core.testing.registry import Registry, set_registry  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def plugin_registry():
    """jboat's built-ins plus this plugin, installed as the process-wide registry (the
    conformance kit's run check uses ``get_registry()``)."""
    ours = plugin_entry_points()
    reg = Registry.from_entry_points(builtin_entry_points() + ours, strict=False)
    failed = [f for f in reg.failures if f.origin.distribution == ours[0].dist.name]
    assert not failed, "\n".join(f"{f.origin}: {f.error}" for f in failed)
    old = set_registry(reg)
    yield reg
    set_registry(old)
