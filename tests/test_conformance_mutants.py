"""Correctness by default (issue 31.4): the conformance kit checks the math of every kind
without a declaration, so the mutants a plugin author might write fail it with a message
that says what is wrong, and their correct twins pass."""

from __future__ import annotations

import pytest

from jboat_core.contract import (ChainState, DynamicalSystem, DynamicsState, EmptyConfig,
                                 HyperGradient)
from jboat_core.testing import conformance

pytestmark = pytest.mark.jittor


class Nesterov(DynamicalSystem):
    r"""Nesterov's accelerated gradient on the lower level (a plugin's own inner update).

    .. math:: v_{k+1} = \mu v_k - \eta \nabla_y f(x, y_k + \mu v_k),\quad
              y_{k+1} = y_k + v_{k+1}
    """

    name, stage, order, role = "NesterovT", "solve", 50, "terminal"
    config_model = EmptyConfig
    summary = "Nesterov's accelerated gradient (mu = 0.5)"
    reference = "Nesterov, A method of solving a convex programming problem, 1983"
    sign = 1.0  # + v: the update; the mutant reverses it

    def step(self, state: DynamicsState) -> DynamicsState:
        import jittor as jt

        from jboat_core.numerics import constant

        plan, fmodel, eta, mu = state.plan, state.fmodel, state.dopt.lr, 0.5
        v = [y * 0 for y in fmodel.parameters()]
        loss, upper = None, []
        for k in range(self.lower_iters):
            y = fmodel.parameters()
            ahead = [yi + vi * constant(mu, vi) for yi, vi in zip(y, v)]
            f = state.objective_at(k, self.ll_objective)
            loss = f(state.ll_feed, self.ul_model, fmodel, params=ahead)
            g = list(jt.grad(loss, ahead))
            v = [vi * constant(mu, vi) - gi * constant(eta, gi) for vi, gi in zip(v, g)]
            new = [yi + vi * constant(self.sign, vi) for yi, vi in zip(y, v)]
            fmodel.update_params(new if plan.track else [n.detach() for n in new])
            if plan.pessimistic:  # PTT: F after each step, k* the step of the largest
                upper.append(float(self.ul_objective(state.ul_feed, self.ul_model, fmodel,
                                                     params=new).item()))
        k_star = 1 + upper.index(max(upper)) if upper else -1
        return state.replace(k_star=k_star, lower_loss=loss.detach() if loss is not None else None,
                             ll_objective=state.objective_at(self.lower_iters - 1,
                                                             self.ll_objective))


ReversedNesterov = type("ReversedNesterovT", (Nesterov,),
                        {"name": "ReversedNesterovT", "sign": -1.0})


def _flipped(base, name, **attrs):
    """``base`` with its hyper-gradients negated (a new class, not installed)."""
    def step(self, state):
        out = base.step(self, state)
        return out.replace(hyper_gradients=[-g for g in out.hyper_gradients])
    return type(name, (base,), {"name": name, "step": step, **attrs})


def test_a_sign_flipped_hypergradient_without_a_claim_fails(builtin_registry):
    from jboat_ops.rad import RAD

    mutant = _flipped(RAD, "RADFLIP", approximates="")
    with pytest.raises(AssertionError, match=r"RADFLIP \(no approximates declared\) but "
                                             r"its hyper-gradient matches no float64 target"):
        conformance.check_correct(mutant, registry=builtin_registry)


def test_an_undeclared_operator_is_checked_against_what_it_matches(builtin_registry):
    from jboat_ops.cg import CG
    from jboat_ops.rad import RAD

    rad = type("RADNOCLAIM", (RAD,), {"name": "RADNOCLAIM", "approximates": ""})
    cg = type("CGNOCLAIM", (CG,), {"name": "CGNOCLAIM", "approximates": ""})
    assert conformance.check_correct(rad, registry=builtin_registry) == "unrolled"
    assert conformance.check_correct(cg, registry=builtin_registry) == "implicit"


def test_a_wrong_claim_fails_with_a_hint(builtin_registry):
    """CG is right, its claim is wrong: the message says what to declare."""
    from jboat_ops.cg import CG

    wrong = type("CGWRONG", (CG,), {"name": "CGWRONG", "approximates": "unrolled"})
    with pytest.raises(AssertionError, match=r"^CGWRONG declares approximates='unrolled' but "
                                             r"its hyper-gradient matches the 'implicit' "
                                             r"target .*declare approximates = 'implicit'$"):
        conformance.check_correct(wrong, registry=builtin_registry)


def test_a_correct_nesterov_passes(builtin_registry):
    assert conformance.check_correct(Nesterov, registry=builtin_registry) == "unrolled"


def test_a_reversed_momentum_nesterov_fails(builtin_registry):
    with pytest.raises(AssertionError, match="ReversedNesterovT: its dynamics do not descend"):
        conformance.check_correct(ReversedNesterov, registry=builtin_registry)


def test_a_dynamics_update_that_breaks_the_graph_fails(builtin_registry):
    """Detaching the momentum: RAD no longer differentiates what the dynamics computed."""
    def step(self, state):
        return Nesterov.step(self, state.replace(plan=state.plan.replace(track=False)))

    broken = type("DetachedNesterovT", (Nesterov,), {"name": "DetachedNesterovT",
                                                     "step": step})
    with pytest.raises(AssertionError, match="DetachedNesterovT: RAD after its dynamics is "
                                             "off the central differences"):
        conformance.check_correct(broken, registry=builtin_registry)


def test_a_first_order_solver_with_a_wrong_sign_fails(builtin_registry, monkeypatch):
    """Without a reference trajectory (a third party's solver), the cosine check."""
    from jboat_core.testing import correctness
    from jboat_ops.soba import SOBA

    monkeypatch.setattr(correctness, "claim", lambda cls: "")
    assert conformance.check_correct(SOBA, registry=builtin_registry) == "solution"
    with pytest.raises(AssertionError, match=r"SOBAFLIP: .* has cosine -"):
        conformance.check_correct(_flipped(SOBA, "SOBAFLIP"), registry=builtin_registry)


@pytest.mark.parametrize("name", ["ALTO", "GAFFO", "SOBA"])
def test_a_solver_with_a_reference_follows_its_trajectory(builtin_registry, name):
    """ALTO and GAFFO (no hyper-gradient of F(x, y*(x)) by design) and every solver with a
    float64 reference trajectory are compared step by step; a sign-flipped variant fails."""
    cls = builtin_registry.get(name).cls
    assert conformance.check_correct(cls, registry=builtin_registry) == "trajectory"
    with pytest.raises(AssertionError, match=rf"{name}FLIP: its outer iterations leave the "
                                             rf"float64 trajectory of {name}'s formula"):
        conformance.check_correct(_flipped(cls, f"{name}FLIP"), registry=builtin_registry)


# -- modifiers and closed forms, checked in their composition ----------------------------
@pytest.mark.parametrize("name, target", [
    ("PTT", "central differences of F(y_t(x))"), ("RGT", "central differences of F(y_t(x))"),
    ("FOA", "first-order MAML: grad_y F(y_t)"), ("IGA", "IGA's closed form"),
    ("DM", "DM's formulas, 2 iterations")])
def test_the_builtins_once_unchecked_are_checked(builtin_registry, name, target):
    cls = builtin_registry.get(name).cls
    assert not cls.unchecked
    assert conformance.check_correct(cls, registry=builtin_registry) == target


def _ptt_wrong_k_star():
    from jboat_ops.ptt import PTT

    def step(self, state):
        k = state.k_star - 1 if state.k_star > 1 else state.k_star + 1
        return state.replace(point=state.fmodel.parameters(time=k))
    return type("PTTOFFBYONE", (PTT,), {"name": "PTTOFFBYONE", "step": step})


def _rgt_wrong_truncation():
    from jboat_ops.rgt import RGT

    def configure_dynamics(cls, plan, config):
        return plan.replace(truncate=config.truncate_iter + 1)
    return type("RGTLONG", (RGT,), {"name": "RGTLONG",
                                    "configure_dynamics": classmethod(configure_dynamics)})


def _iga_wrong_sign():
    from jboat_ops.iga import IGA

    return _flipped(IGA, "IGAFLIP")


def _dm_wrong_sign():
    from jboat_ops.dm import DM

    return _flipped(DM, "DMFLIP")


@pytest.mark.parametrize("make", [_ptt_wrong_k_star, _rgt_wrong_truncation, _iga_wrong_sign,
                                  _dm_wrong_sign])
def test_a_wrong_variant_of_a_builtin_fails(builtin_registry, make):
    mutant = make()
    with pytest.raises(AssertionError, match=rf"^{mutant.name}: its composition .* is off "
                                             r"(central differences|IGA's|DM's)"):
        conformance.check_correct(mutant, registry=builtin_registry)


class Midpoint(HyperGradient):
    """A third party's modifier: evaluate at the iterate y_{K/2} (an iterate: the kit's
    target is dF(y_t(x))/dx at the t it reads back from the ChainState)."""

    name, stage, order, role = "MidpointT", "trajectory", 50, "modifier"
    summary = "evaluate at the middle iterate"
    reference = "none"

    @classmethod
    def configure_dynamics(cls, plan, config):
        return plan.replace(track=True)

    def step(self, state: ChainState) -> ChainState:
        return state.replace(point=state.fmodel.parameters(time=self.lower_iters // 2))


class Averaged(HyperGradient):
    """A third party's modifier: evaluate at (y_{K-1} + y_K) / 2, no iterate (the kit's
    target: central differences of the run's own F at that point)."""

    name, stage, order, role = "AveragedT", "trajectory", 50, "modifier"
    summary = "evaluate at the average of the last two iterates"
    reference = "none"
    detach_one = False

    @classmethod
    def configure_dynamics(cls, plan, config):
        return plan.replace(track=True)

    def step(self, state: ChainState) -> ChainState:
        a = state.fmodel.parameters(time=self.lower_iters - 1)
        b = state.fmodel.parameters(time=self.lower_iters)
        if self.detach_one:
            a = [v.detach() for v in a]
        return state.replace(point=[(u + v) * 0.5 for u, v in zip(a, b)])


def test_a_third_party_modifier_is_checked_at_the_point_it_chose(builtin_registry):
    assert conformance.check_correct(Midpoint, registry=builtin_registry) == \
        "central differences of F(y_t(x))"
    assert conformance.check_correct(Averaged, registry=builtin_registry) == \
        "central differences of the run's own F"
    broken = type("AveragedDetachedT", (Averaged,), {"name": "AveragedDetachedT",
                                                     "detach_one": True})
    with pytest.raises(AssertionError, match=r"^AveragedDetachedT: its composition .* is off "
                                             r"central differences of the run's own F"):
        conformance.check_correct(broken, registry=builtin_registry)


def test_a_third_party_pessimistic_modifier_must_evaluate_at_k_star(builtin_registry):
    """A plan with pessimistic=True is PTT's claim: the point is y_k*, whatever the name."""
    def configure_dynamics(cls, plan, config):
        return plan.replace(track=True, pessimistic=True)

    wrong = type("PessimistT", (Midpoint,), {
        "name": "PessimistT", "configure_dynamics": classmethod(configure_dynamics)})
    with pytest.raises(AssertionError, match=r"^PessimistT: its composition .* is off "):
        conformance.check_correct(wrong, registry=builtin_registry)


def test_unchecked_is_a_skip_with_the_reason(builtin_registry):
    from jboat_ops.rad import RAD

    why = type("RADWHY", (RAD,), {"name": "RADWHY", "unchecked": "its target is elsewhere"})
    with pytest.raises(pytest.skip.Exception, match="RADWHY is unchecked: its target is "
                                                    "elsewhere"):
        conformance.check_correct(why, registry=builtin_registry)
