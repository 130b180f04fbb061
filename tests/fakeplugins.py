"""Fake entry points for registry tests: no installation needed."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from jboat_core.contract import API_VERSION, HyperGradient, hookimpl


@dataclass
class FakeDist:
    name: str
    version: str = "1.0"


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    dist: FakeDist | None = None

    def load(self):
        __import__(self.value)
        return sys.modules[self.value]


def make_module(name: str, *classes, api=API_VERSION, hook=True, body=None):
    """A module registering ``classes`` through ``jboat_register_hypergradients``."""
    mod = types.ModuleType(name)
    if api is not None:
        mod.JBOAT_API_VERSION = api
    if hook:
        @hookimpl
        def jboat_register_hypergradients(register):
            for c in classes:
                register(c)
        mod.jboat_register_hypergradients = jboat_register_hypergradients
    if body:
        body(mod)
    sys.modules[name] = mod
    return mod


def ep(name: str, module: str, dist: str = "fake-dist", version: str = "1.0"):
    return FakeEntryPoint(name, module, FakeDist(dist, version))


class XConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = 3


def op_class(name="XOP", stage="implicit", role="terminal", **attrs):
    """A concrete operator class with valid metadata (override any attribute)."""
    ns = dict(name=name, stage=stage, role=role, summary=f"{name} test operator",
              reference="Test et al., 2026", config_model=XConfig,
              step=lambda self, state: None)
    ns.update(attrs)
    return type(name, (HyperGradient,), ns)
