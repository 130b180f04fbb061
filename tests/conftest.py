"""Test configuration: CPU-only Jittor, and only jboat's own plugins.

``JBOAT_LOAD_PLUGINS=jboat`` keeps whatever third-party plugins happen to be installed out
of the tests (the test that means to load them sets its own environment).
"""

import os

os.environ.setdefault("JBOAT_CPU_ONLY", "1")
os.environ["JBOAT_LOAD_PLUGINS"] = "jboat"
os.environ.pop("JBOAT_DISABLE_PLUGINS", None)
os.environ.pop("JBOAT_STRICT_PLUGINS", None)

import pytest  # noqa: E402

from jboat_core import registry as _registry  # noqa: E402


@pytest.fixture
def builtin_registry():
    """A fresh registry of the built-in operators only."""
    reg = _registry.Registry.load()
    old = _registry.set_registry(reg)
    yield reg
    _registry.set_registry(old)
