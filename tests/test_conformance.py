"""The shared conformance suite over every registered operator (built-ins here; plugin
authors run the same checks from ``jboat_core.testing.conformance``)."""

import pytest

from jboat_core.plugins.registry import Registry
from jboat_core.testing import conformance

RECORDS = Registry.load().records()  # conftest restricted loading to the built-ins

@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r.name)
def test_metadata(rec):
    conformance.check_metadata(rec.cls)

@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r.name)
def test_config_roundtrip(rec):
    conformance.check_config_roundtrip(rec.cls)

def test_registration_imports_no_jittor():
    import subprocess
    import sys
    code = ("import sys; from jboat_core import Registry; r = Registry.load(); "
            "assert len(r.names()) >= 10 and not r.failures, r.failures; "
            "sys.exit(3 if 'jittor' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr or "jittor was imported"

@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r.name)
def test_import_without_jittor(rec):
    conformance.check_import_without_jittor(rec.cls.__module__)

@pytest.mark.jittor
@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r.name)
def test_runs_through_problem(builtin_registry, rec):
    """Every operator of every kind, through Problem: one finite hyper-gradient per
    ul_var, and the upper variables move."""
    conformance.check_returns_hypergradients(rec.cls, registry=builtin_registry)
    conformance.check_runs_through_problem(rec.cls, registry=builtin_registry)


@pytest.mark.jittor
@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r.name)
def test_nan_changes_nothing(builtin_registry, rec):
    conformance.check_finite_guard(rec.cls, registry=builtin_registry)


@pytest.mark.jittor
@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r.name)
def test_state_survives_resume(builtin_registry, rec):
    conformance.check_state_survives_resume(rec.cls, registry=builtin_registry)


@pytest.mark.jittor
@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r.name)
def test_correct(builtin_registry, rec):
    """Every operator of every kind, against its float64 target (correctness by default;
    an operator the kit cannot check is skipped with its ``unchecked`` reason)."""
    conformance.check_correct(rec.cls, registry=builtin_registry)
