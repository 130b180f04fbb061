"""Problem: one outer iteration of dynamics, hyper-gradient chain and updates."""

import numpy as np
import pytest

from helpers import rel_err

pytestmark = pytest.mark.jittor

LR, K = 0.1, 4


@pytest.fixture
def jt(builtin_registry):
    from jboat_core.platform._jittor import jittor
    return jittor()


def make(jt, solver, ul="SGD", ul_lr=0.1, gda=False, **kw):
    from jboat_core import Problem
    from jboat_core.testing.problems import ridge_problem
    p = ridge_problem()
    ul_opt = (jt.optim.SGD if ul == "SGD" else jt.optim.Adam)(p.ul_var, ul_lr)
    gda_loss = None
    if gda:
        def gda_loss(ll_feed, ul_feed, upper, lower, **k):
            a = ll_feed["alpha"]
            return a * p.ul_objective(ul_feed, upper, lower, **k) + (1 - a) * p.ll_objective(
                ll_feed, upper, lower, **k)
    prob = Problem({"lower_iters": K, "copy_last_param": False, **solver},
                   ll_objective=p.ll_objective, ul_objective=p.ul_objective,
                   ll_model=p.ll_model, ul_model=p.ul_model,
                   ll_opt=jt.optim.SGD(p.ll_var, LR), ul_opt=ul_opt, gda_loss=gda_loss, **kw)
    return prob, p


def test_upper_step_uses_the_real_optimizer(jt):
    prob, p = make(jt, {"na_op": ["RAD"]}, ul="Adam", ul_lr=0.05)
    x0, g = p.x(), p.unrolled(K, LR)
    rec = prob.run_iter(p.ll_feed, p.ul_feed, 0)
    assert set(rec) >= {"iter", "upper_loss", "lower_loss", "time"}
    # Adam's first step is lr * g / (|g| + eps'): a sign step, not SGD's lr * g.
    assert np.allclose(p.x(), x0 - 0.05 * np.sign(g), atol=1e-4)


def test_return_grad_does_not_accumulate(jt):
    prob, p = make(jt, {"na_op": ["RAD"], "return_grad": True})
    g1 = prob.run_iter(p.ll_feed, p.ul_feed, 0)["hyper_gradients"][0].numpy()
    g2 = prob.run_iter(p.ll_feed, p.ul_feed, 1)["hyper_gradients"][0].numpy()
    assert rel_err(g1, p.unrolled(K, LR)) < 1e-5 and np.allclose(g1, g2)


def test_copy_last_param_warm_starts(jt):
    prob, p = make(jt, {"na_op": ["CG"], "copy_last_param": True})
    ys, _ = p.trajectory(K, LR)
    prob.run_iter(p.ll_feed, p.ul_feed, 0)
    assert np.allclose(p.y0(), ys[K], atol=1e-5)


def test_di_learns_the_initialisation(jt):
    prob, p = make(jt, {"gm_op": ["DI", "NGD"], "na_op": ["RAD"], "DI": {"lr": 0.5}})
    y0, g0 = p.y0(), p.dF_dy0(K, LR)
    prob.run_iter(p.ll_feed, p.ul_feed, 0)
    assert np.allclose(p.y0(), y0 - 0.5 * g0, atol=1e-5)


def test_gda_descends_the_aggregated_objective(jt):
    prob, p = make(jt, {"gm_op": ["GDA", "NGD"], "na_op": ["RAD"], "return_grad": True,
                        "GDA": {"alpha_init": 0.5, "alpha_decay": 0.8}}, gda=True)
    feed_before = dict(p.ll_feed)
    prob.run_iter(p.ll_feed, p.ul_feed, 0)
    assert p.ll_feed == feed_before  # the user's dict is not mutated (upstream added "alpha")
    y = p.y0()
    for k in range(K):
        a = 0.5 * 0.8 ** k
        y = y - LR * (a * p.grad_F(y) + (1 - a) * p.grad_f(y))
    assert isinstance(prob.history[-1]["lower_loss"], float)  # recorded, from the state
    # the trajectory the chain saw ends at y (checked through the UL loss at y_K)
    assert abs(prob.history[-1]["upper_loss"] - p.F(y)) < 1e-5


def test_dm_single_steps_follow_the_formula(jt):
    prob, p = make(jt, {"gm_op": ["DM"], "na_op": ["RAD"], "return_grad": True,
                        "DM": {"eta0": 0.5, "tau": 0.0}})
    y0, x = p.y0(), p.x()
    g1 = prob.run_iter(p.ll_feed, p.ul_feed, 0)["hyper_gradients"][0].numpy()
    assert np.allclose(g1, 0, atol=1e-7)  # grad_x F = 0 and v_0 = 0
    y1 = y0 - LR * p.grad_f(y0)
    assert np.allclose(p.y0(), y1, atol=1e-6)
    v1 = 0.5 * LR * p.grad_F(y0)  # v - eta_v (H v - b) from v = 0
    g2 = prob.run_iter(p.ll_feed, p.ul_feed, 1)["hyper_gradients"][0].numpy()
    assert rel_err(g2, -np.exp(x) * y1 * v1) < 1e-5


def test_accumulate_grad_means_over_tasks(jt):
    prob, p = make(jt, {"na_op": ["RAD"], "return_grad": True, "accumulate_grad": True})
    g = prob.run_iter([p.ll_feed, p.ll_feed], [p.ul_feed, p.ul_feed], 0)["hyper_gradients"]
    assert rel_err(g[0].numpy(), p.unrolled(K, LR)) < 1e-5
    from jboat_core import OperatorRuntimeError
    with pytest.raises(OperatorRuntimeError, match="accumulate_grad needs two"):
        prob.run_iter(p.ll_feed, p.ul_feed, 1)


def test_upstream_boat_config_shape(jt):
    from jboat_core import Problem
    from jboat_core.testing.problems import ridge_problem
    p = ridge_problem()
    cfg = {"gm_op": ["NGD"], "na_op": ["RAD"], "lower_iters": K, "fo_op": None,
           "return_grad": True, "copy_last_param": False, "lower_level_model": p.ll_model,
           "upper_level_model": p.ul_model, "lower_level_var": p.ll_var,
           "upper_level_var": p.ul_var, "lower_level_opt": jt.optim.SGD(p.ll_var, LR),
           "upper_level_opt": jt.optim.SGD(p.ul_var, 0.1), "CG": {"k": 3, "tolerance": 1e-6},
           "lower_level_loss": p.ll_objective, "upper_level_loss": p.ul_objective}
    prob = Problem(cfg)
    g = prob.run_iter(p.ll_feed, p.ul_feed, 0)["hyper_gradients"][0].numpy()
    assert rel_err(g, p.unrolled(K, LR)) < 1e-5


def test_missing_runtime_objects(jt):
    from jboat_core import ConfigError, Problem
    with pytest.raises(ConfigError, match="ll_model: required"):
        Problem({"na_op": ["RAD"]})


def test_declared_runtime_requirement_is_enforced(jt):
    from jboat_core import ConfigError
    with pytest.raises(ConfigError, match="gda_loss: GDA needs it but none was given"):
        make(jt, {"gm_op": ["GDA", "NGD"], "na_op": ["RAD"]})


def test_meta_learning_operator_turns_warm_start_off(jt):
    prob, _ = make(jt, {"na_op": ["IAD"], "copy_last_param": True})
    assert prob.copy_last_param is False  # IAD declares keeps_initialisation
    prob, _ = make(jt, {"na_op": ["RAD"], "copy_last_param": True})
    assert prob.copy_last_param is True


def test_diverged_iteration_changes_nothing(jt):
    from jboat_core import OperatorRuntimeError
    prob, p = make(jt, {"na_op": ["RAD"], "copy_last_param": True})
    prob.ll_opt = jt.optim.SGD(p.ll_var, 1e8)  # a divergent lower step size
    x0, y0 = p.x(), p.y0()
    with pytest.raises(OperatorRuntimeError,
                       match=r"NGD: outer iteration 0, inner step \d+: .*NaN/Inf"):
        prob.run_iter(p.ll_feed, p.ul_feed, 0)
    assert np.array_equal(p.x(), x0) and np.array_equal(p.y0(), y0)


@pytest.mark.jittor
def test_plumbing_modules_run_unfused_unless_asked():
    """conftest: modules outside FUSED_MODULES run unfused (few kernels to compile on a cold
    cache) unless JBOAT_TEST_FUSE=1."""
    import os

    from jboat_core.platform._jittor import jittor
    fused = os.environ.get("JBOAT_TEST_FUSE", "") not in ("", "0")
    assert jittor().flags.no_fuse == (0 if fused else 1)
