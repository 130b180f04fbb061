"""FMD: forward-mode hyper-gradients, and the inner learning rate (and momentum) as
upper-level variables for every unrolled chain.

References: RAD (itself checked against the analytic unrolled gradient in
``test_operators_exact.py``) at relative L2 error 1e-5, the analytic float64 unrolled
gradient ``Ridge.unrolled`` at 1e-5, and float64 central differences of the unrolled upper
objective with respect to the learning rate at 1e-4 (h = 1e-6 in float64).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.jittor

K, LR = 6, 0.1


def _rel(a, b):
    a = np.concatenate([np.ravel(v) for v in a])
    b = np.concatenate([np.ravel(v) for v in b])
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _evaluate(na_op, opt="sgd", learn=(), extra=None, lower_iters=K):
    """Hyper-gradients on the ridge problem; ``learn`` names optimizer hyper-parameters
    ("lr", "momentum") that become upper variables next to x."""
    from jboat_core import Problem
    from jboat_core.testing.problems import jt, ridge_problem

    prob = ridge_problem(seed=4)
    hyper = {"lr": jt.array(np.float32([LR])), "momentum": jt.array(np.float32([0.5]))}
    lr = hyper["lr"] if "lr" in learn else LR
    momentum = hyper["momentum"] if "momentum" in learn else 0.5
    ll_opt = {"sgd": lambda: jt.optim.SGD(prob.ll_var, lr),
              "momentum": lambda: jt.optim.SGD(prob.ll_var, lr, momentum=momentum),
              "adam": lambda: jt.optim.Adam(prob.ll_var, 0.05)}[opt]()
    ul_var = prob.ul_var + [hyper[k] for k in learn]
    problem = Problem({"na_op": na_op, "lower_iters": lower_iters, "return_grad": True,
                       **(extra or {})},
                      ll_objective=prob.ll_objective, ul_objective=prob.ul_objective,
                      ll_model=prob.ll_model, ul_model=prob.ul_model, ul_var=ul_var,
                      ll_opt=ll_opt, ul_opt=jt.optim.SGD(ul_var, 0.1))
    result = problem.evaluate(prob.ll_feed, prob.ul_feed, 0)
    return [g.numpy() for g in result["hyper_gradients"]], prob, problem


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_fmd_equals_rad(opt):
    fmd, prob, problem = _evaluate(["FMD"], opt)
    rad, _, _ = _evaluate(["RAD"], opt)
    assert _rel(fmd, rad) < 1e-5
    if opt == "sgd":
        assert _rel(fmd, [prob.unrolled(K, LR)]) < 1e-5
    assert not problem.plan.track  # no trajectory kept: memory independent of K


def test_fmd_with_truncation_equals_rgt_rad():
    extra = {"RGT": {"truncate_iter": 2}}
    fmd, _, _ = _evaluate(["RGT", "FMD"], extra=extra)
    rad, prob, _ = _evaluate(["RGT", "RAD"], extra=extra)
    assert _rel(fmd, rad) < 1e-5 and _rel(rad, [prob.unrolled(K, LR, truncate=2)]) < 1e-5


def _unrolled_F(prob, lr, momentum=0.0):
    """F(y_K) in float64 after K SGD(lr, momentum) steps from y_0 (jittor.optim.SGD's rule,
    dampening 0: v = momentum v + g, y -= lr v)."""
    y, v = prob.y0(), None
    for _ in range(K):
        g = prob.grad_f(y)
        v = g if v is None else momentum * v + g
        y = y - lr * v
    return prob.F(y)


@pytest.mark.parametrize("op", ["FMD", "RAD"])
def test_learning_rate_as_an_upper_variable(op):
    """The inner step size learned next to x: dF/d lr by forward and reverse mode equals
    float64 central differences of the unrolled F."""
    grads, prob, _ = _evaluate([op], learn=("lr",))
    h = 1e-6
    want = (_unrolled_F(prob, LR + h) - _unrolled_F(prob, LR - h)) / (2 * h)
    assert abs(float(grads[1][0]) - want) <= 1e-4 * abs(want) + 1e-7, (grads[1], want)
    assert _rel(grads[:1], [prob.unrolled(K, LR)]) < 1e-5


@pytest.mark.parametrize("op", ["FMD", "RAD"])
def test_momentum_and_learning_rate_as_upper_variables(op):
    grads, prob, _ = _evaluate([op], "momentum", learn=("lr", "momentum"))
    h = 1e-6
    d_lr = (_unrolled_F(prob, LR + h, 0.5) - _unrolled_F(prob, LR - h, 0.5)) / (2 * h)
    d_mu = (_unrolled_F(prob, LR, 0.5 + h) - _unrolled_F(prob, LR, 0.5 - h)) / (2 * h)
    got = [float(grads[1][0]), float(grads[2][0])]
    for g, w in zip(got, (d_lr, d_mu)):
        assert abs(g - w) <= 1e-4 * abs(w) + 1e-7, (got, d_lr, d_mu)


def test_refused_above_max_scalars():
    from jboat_core import OperatorRuntimeError
    with pytest.raises(OperatorRuntimeError, match=r"FMD: config: .*5 > max_scalars=3"):
        _evaluate(["FMD"], extra={"FMD": {"max_scalars": 3}})


def test_refused_with_ptt_and_without_tangent_dynamics(builtin_registry):
    from jboat_core import ChainError, ConfigError, parse_solver_config
    from jboat_core.contract import DynamicalSystem

    with pytest.raises((ChainError, ConfigError), match="PTT"):
        parse_solver_config({"na_op": ["PTT", "FMD"]})

    class Loop(DynamicalSystem):
        name, stage, role = "LOOP", "solve", "terminal"
        summary, reference = "a loop without tangents", "none"

        def step(self, state):
            return state

    reg = builtin_registry.with_classes([Loop], distribution="my-loops")
    with pytest.raises(ConfigError, match=r"LOOP \(my-loops\) do not declare "
                       "supports_forward_mode"):
        parse_solver_config({"gm_op": ["LOOP"], "na_op": ["FMD"]}, reg)
