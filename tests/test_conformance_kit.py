"""The conformance kit itself: it checks correctness, not only finiteness, so mutants of
correct operators (a sign flipped, a scale, a dropped state) fail it; and it runs an
operator that is not installed (classes or a registry)."""

from __future__ import annotations

import pytest

from jboat_core.contract import Result
from jboat_core.testing import conformance

pytestmark = pytest.mark.jittor


def _ops():
    from jboat_ops.cg import CG
    from jboat_ops.rad import RAD
    from jboat_ops.iad import IAD
    return CG, RAD, IAD


def _mutant(base, name, change):
    """``base`` with its step's hyper-gradients changed by ``change`` (a new class, not
    installed: the kit adds it to the registry it composes in)."""
    def step(self, state):
        out = base.step(self, state)
        return out.replace(hyper_gradients=[change(g) for g in out.hyper_gradients])
    return type(name, (base,), {"name": name, "step": step})


@pytest.mark.parametrize("case", ["CG", "RAD", "IAD"])
def test_correct_operators_pass(builtin_registry, case):
    cls = {c.name: c for c in _ops()}[case]
    conformance.check_correct(cls, registry=builtin_registry)


@pytest.mark.parametrize("case,change", [
    ("CG", lambda g: -g), ("CG", lambda g: g * 1.5), ("RAD", lambda g: -g),
    ("RAD", lambda g: g * 0.5), ("IAD", lambda g: -g)])
def test_mutants_fail(builtin_registry, case, change):
    base = {c.name: c for c in _ops()}[case]
    mutant = _mutant(base, f"{case}MUT", change)
    with pytest.raises(AssertionError, match=f"{case}MUT declares approximates"):
        conformance.check_correct(mutant, registry=builtin_registry)


def test_an_operator_that_forgets_its_state_fails_the_resume_check(builtin_registry):
    """DM keeps its dual variables in its memory; a mutant that keeps them in a plain
    attribute (lost by a checkpoint) is caught, by the resume check and by the check that
    an operator keeps nothing on itself."""
    from jboat_ops.dm import DM

    def step(self, state):
        saved = self.__dict__.get("_mine")
        if saved is not None:
            state = state.replace(memory={"v": saved})
        out = DM.step(self, state)
        self.__dict__["_mine"] = out.memory["v"]
        return out.replace(memory=None)

    forgetful = type("DMLOST", (DM,), {"name": "DMLOST", "step": step})
    conformance.check_state_survives_resume(DM, registry=builtin_registry)
    with pytest.raises(AssertionError, match="DMLOST: .*resumed from a checkpoint diverges"):
        conformance.check_state_survives_resume(forgetful, registry=builtin_registry)
    with pytest.raises(AssertionError, match="DMLOST: step set _mine on the operator"):
        conformance.check_runs_through_problem(forgetful, registry=builtin_registry)


def test_a_state_not_shaped_like_the_variables_must_be_declared(builtin_registry):
    """SABA's SAGA tables (one row per block) resume because SABA declares them
    (``memory_schema``); the same operator without the declaration is caught by the kit,
    as ``jboat run --resume`` would refuse its checkpoint (the kit once bypassed that
    check, and no SABA checkpoint could be resumed)."""
    from jboat_ops.saba import SABA

    undeclared = type("SABANODECL", (SABA,), {"name": "SABANODECL",
                                              "memory_schema": classmethod(
                                                  lambda cls, lo, up: None)})
    conformance.check_state_survives_resume(SABA, registry=builtin_registry)
    with pytest.raises(AssertionError, match=r"SABANODECL: jboat run --resume would refuse "
                                             r"its checkpoint \(state.operators.SABANODECL.g_y"):
        conformance.check_state_survives_resume(undeclared, registry=builtin_registry)


def test_unchecked_is_skipped_with_the_reason(builtin_registry):
    from jboat_ops.iga import IGA

    why = type("IGAWHY", (IGA,), {"name": "IGAWHY", "unchecked": "approximate by design"})
    with pytest.raises(pytest.skip.Exception, match="IGAWHY is unchecked: approximate by "
                                                    "design"):
        conformance.check_correct(why, registry=builtin_registry)


def test_kit_takes_a_registry_with_classes(builtin_registry):
    """An uninstalled class, given to ``with_classes``, composes with the built-ins."""
    from jboat_ops.rad import RAD

    twin = type("RADTWIN", (RAD,), {"name": "RADTWIN"})
    reg = builtin_registry.with_classes([twin], distribution="my-dist")
    rec = reg.get("RADTWIN")
    assert rec.cls is twin and rec.origin.distribution == "my-dist"
    assert "RADTWIN" not in builtin_registry.names()
    conformance.check_correct(twin, registry=reg)
    assert isinstance(Result(0, []), Result)
