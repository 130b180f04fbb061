"""A plugin written for API 1 (``tests/fixtures/api1_plugin``: ``plugins-example`` as it
was, keyword protocol and old import paths) loads through entry points, runs through the
adapter of the operator bases with the numbers of the exact references, and is marked in
``jboat list-ops --verbose``."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from jboat_core.plugins.registry import Registry

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "api1_plugin"


@dataclass(frozen=True)
class _Dist:
    name: str
    version: str


@dataclass(frozen=True)
class _EntryPoint:
    name: str
    value: str
    dist: _Dist

    def load(self):
        import importlib
        return importlib.import_module(self.value)


@pytest.fixture(scope="module")
def api1_registry():
    """The built-ins plus the fixture's two entry points, as if it were installed."""
    sys.path.insert(0, str(FIXTURE))
    try:
        builtins = [ep for ep in metadata.entry_points(group="jboat")
                    if ep.dist is not None and ep.dist.name == "jboat"]
        dist = _Dist("jboat-api1-plugin", "0.1.0")
        fixture = [_EntryPoint("cgn", "jboat_api1_plugin.cgn", dist),
                   _EntryPoint("f2sa", "jboat_api1_plugin.f2sa", dist)]
        yield Registry.from_entry_points(builtins + fixture)
    finally:
        sys.path.remove(str(FIXTURE))


def test_loads_as_api1_with_a_note(api1_registry):
    assert not api1_registry.failures, api1_registry.failures
    for name in ("CGN", "F2SA"):
        rec = api1_registry.get(name)
        assert rec.api_version == 1 and rec.cls.api_version() == 1
        assert "written for API 1: runs through the adapter" in rec.note
        assert rec.as_dict()["api_version"] == 1
    assert api1_registry.get("CG").api_version == 2 and api1_registry.get("CG").note == ""


def test_list_ops_verbose_shows_the_note(api1_registry, capsys):
    from types import SimpleNamespace

    from jboat_core.run.cli import cmd_list_ops

    cmd_list_ops(SimpleNamespace(kind=None, json=False, verbose=True), api1_registry)
    out = capsys.readouterr().out
    assert "note: CGN: written for API 1: runs through the adapter" in out
    assert "note: CG:" not in out


@pytest.mark.jittor
def test_api1_cgn_is_exact_through_the_adapter(api1_registry):
    """CGN (API 1, compute_gradients) in Problem: the IFT hyper-gradient at y_K, as the
    conformance kit checks an API-2 operator."""
    from jboat_core.testing import conformance

    cls = api1_registry.get("CGN").cls
    original = cls.api1_original
    assert "compute_gradients" in vars(original) and "step" not in vars(original)
    conformance.check_correct(type("CGN", (cls,), {"approximates": "implicit",
                                                    "exact_settings": {"k": 20}}),
                              registry=None)


@pytest.mark.jittor
def test_api1_first_order_keeps_its_state_through_resume(api1_registry):
    from jboat_core.testing import conformance

    cls = api1_registry.get("F2SA").cls
    conformance.check_runs_through_problem(cls, registry=api1_registry)
    conformance.check_state_survives_resume(cls, registry=api1_registry)
    problem, prob, _ = conformance.conformance_problem(cls, registry=api1_registry)
    problem.run_iter(prob.ll_feed, prob.ul_feed, 0)
    z = problem.memories["F2SA"]["z"]
    assert len(z) == 1 and np.all(np.isfinite(z[0].numpy()))
