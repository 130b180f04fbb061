"""Bad input gives one clear error naming the operator and the step."""

import numpy as np
import pytest

from jboat_core import ChainError, OperatorRuntimeError

from helpers import run_chain

pytestmark = pytest.mark.jittor


@pytest.fixture
def ridge(builtin_registry):
    from jboat_core.testing.problems import ridge_problem
    return ridge_problem()


def test_non_scalar_lower_objective(ridge):
    vector_f = lambda feed, ul, ll, **kw: ll(feed["A"], **kw)[0]  # noqa: E731
    ridge.ll_objective = vector_f
    with pytest.raises(OperatorRuntimeError, match=r"NGD: inner step 1: .*shape \[20\].*scalar"):
        run_chain(ridge, ["RAD"], 2, 0.1)


def test_non_scalar_upper_objective(ridge):
    ridge.ul_objective = lambda feed, ul, ll, **kw: ll(feed["A"], **kw)[0]  # noqa: E731
    with pytest.raises(OperatorRuntimeError, match=r"^CG: upper objective at y: .*scalar"):
        run_chain(ridge, ["CG"], 2, 0.1)


def test_nan_in_lower_loop_names_the_step(ridge):
    with pytest.raises(OperatorRuntimeError, match=r"NGD: inner step \d+: .*NaN/Inf"):
        run_chain(ridge, ["RAD"], 60, 1e4)  # a divergent step size


def test_nan_upper_objective_is_reported_after_a_finite_lower_loop(ridge):
    F = ridge.ul_objective
    ridge.ul_objective = lambda *a, **kw: F(*a, **kw) * float("nan")  # noqa: E731
    with pytest.raises(OperatorRuntimeError, match=r"RAD: result: the hyper-gradient or the "
                       r"update it computed is NaN/Inf although the lower loop stayed finite"):
        run_chain(ridge, ["RAD"], 2, 0.1)


def test_finite_check_can_be_switched_off(ridge):
    _, g, _ = run_chain(ridge, ["RAD"], 60, 1e4, {"NGD": {"check_finite": False},
                                                   "check_finite": False})
    assert not np.all(np.isfinite(g))  # diverged, and nobody raised


def test_mismatched_parameter_list(ridge):
    from jboat_core.numerics import FunctionalModel
    from jboat_core.platform._jittor import jittor
    jt = jittor()
    fm = FunctionalModel(ridge.ll_model)
    with pytest.raises(OperatorRuntimeError, match="params has 2 entries but Vector has 1"):
        fm(ridge.ll_feed["A"], params=[jt.zeros(5), jt.zeros(5)])


def test_hypergradients_not_mirroring_ul_var(builtin_registry):
    """IAD maps dF/dy_0 onto ul_var positionally: shapes must match."""
    from jboat_core.testing.problems import ridge_problem
    prob = ridge_problem()
    from jboat_core.testing.problems import Vector
    prob.ul_model = Vector(np.zeros(3))
    prob.ll_objective = lambda feed, ul, ll, **kw: (ll(feed["A"], **kw)[0] ** 2).mean()  # noqa: E731
    with pytest.raises(OperatorRuntimeError, match=r"IAD: result: .*shape \[5\].*\[3\]"):
        run_chain(prob, ["IAD"], 2, 0.1)


def test_invalid_chain_refused_before_computing(ridge):
    with pytest.raises(ChainError, match="terminal-not-last"):
        run_chain(ridge, ["RAD", "FD"], 2, 0.1)


def test_ptt_without_recorded_kstar(ridge):
    from jboat.na_ol.ptt import PTT  # the seed form: JBOAT's constructor and keywords
    from jboat_core.numerics import FunctionalModel
    op = PTT(ridge.ll_objective, ridge.ul_objective, ridge.ll_model, ridge.ul_model,
             ridge.ll_var, ridge.ul_var, {})
    with pytest.raises(OperatorRuntimeError, match="PTT: max_loss_iter: got 0"):
        op.compute_gradients(ridge.ll_feed, ridge.ul_feed, FunctionalModel(ridge.ll_model),
                             max_loss_iter=0, next_operation="RAD")


def test_unsupported_lower_optimizer(ridge):
    from jboat_core.platform._jittor import jittor
    jt = jittor()
    with pytest.raises(TypeError, match="RMSprop has no differentiable version"):
        run_chain(ridge, ["RAD"], 2, 0.1, optimizer=lambda p: jt.optim.RMSprop(p, 0.1))
