"""Entry points for the tests: this distribution's, read from its ``pyproject.toml`` (so the
declared line itself is exercised, installed or not), and jboat's built-ins."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Dist:
    name: str
    version: str


@dataclass(frozen=True)
class EntryPoint:
    """An entry point read from pyproject.toml (``importlib.metadata`` only knows installed
    distributions)."""

    name: str
    value: str
    dist: Dist

    def load(self):
        return importlib.import_module(self.value)


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def plugin_entry_points() -> list[EntryPoint]:
    project = pyproject()["project"]
    dist = Dist(project["name"], project["version"])
    return [EntryPoint(name, value, dist)
            for name, value in project["entry-points"]["jboat"].items()]


def builtin_entry_points() -> list:
    """The entry points of the ``jboat`` distribution itself (like JBOAT_LOAD_PLUGINS=jboat)."""
    return [ep for ep in metadata.entry_points(group="jboat")
            if ep.dist is not None and ep.dist.name.lower() == "jboat"]
