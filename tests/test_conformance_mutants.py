"""Correctness by default (issue 31.4): the conformance kit checks the math of every kind
without a declaration, so the mutants a plugin author might write fail it with a message
that says what is wrong, and their correct twins pass."""

from __future__ import annotations

import pytest

from jboat_core.contract import DynamicalSystem, DynamicsState, EmptyConfig
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


def test_a_first_order_solver_with_a_wrong_sign_fails(builtin_registry):
    from jboat_ops.soba import SOBA

    assert conformance.check_correct(SOBA, registry=builtin_registry) == "solution"
    with pytest.raises(AssertionError, match=r"SOBAFLIP: .* has cosine -"):
        conformance.check_correct(_flipped(SOBA, "SOBAFLIP"), registry=builtin_registry)


def test_unchecked_is_a_skip_with_the_reason(builtin_registry):
    from jboat_ops.rad import RAD

    why = type("RADWHY", (RAD,), {"name": "RADWHY", "unchecked": "its target is elsewhere"})
    with pytest.raises(pytest.skip.Exception, match="RADWHY is unchecked: its target is "
                                                    "elsewhere"):
        conformance.check_correct(why, registry=builtin_registry)
