"""The registry a plugin's tests compose in, built explicitly (tests never depend on the
plugins that happen to be installed): ``Registry.from_entry_points(entry_points)`` (jboat's
built-ins plus the plugin's own, from its ``pyproject.toml``), ``Registry.with_classes``,
and ``set_registry(reg)`` to make it the process-wide one (returns the previous). The
road ``plugins-example/tests/conftest.py`` takes. Importing it does not import Jittor."""

from __future__ import annotations

from ..plugins.registry import Registry, get_registry, set_registry

__all__ = ["Registry", "get_registry", "set_registry"]
