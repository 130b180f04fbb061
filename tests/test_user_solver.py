"""Bring your own solver (issue 33.4): a scikit-learn Lasso inside
``custom_fixed_point`` gives, through ``Problem`` with ``gm_op = ["SOLVED"]`` and CG
(gmres), the hyper-gradient of the built-in PGD route and of the closed form on the
support (one lambda and one weight per feature); ``custom_root()`` with a NumPy ridge
solver gives the exact IFT hyper-gradient; unrolled chains are refused."""

from __future__ import annotations

import numpy as np
import pytest

from jboat_core import custom_fixed_point, custom_root
from jboat_core.plugins.registry import Registry
from jboat_ops.linear_solvers import SOLVERS
from jboat_ops.pgd import PGD
from jboat_ops.prox import PROX_MAPS
from jboat_ops.solved import SOLVED

pytestmark = pytest.mark.jittor
sklearn = pytest.importorskip("sklearn")

REGISTRY = Registry.load().with_classes([PGD, SOLVED]).with_components(
    SOLVERS + PROX_MAPS, distribution="jboat")


def _jt():
    from jboat_core import import_jittor

    jt = import_jittor()
    jt.flags.auto_convert_64_to_32 = 0
    return jt


def _problem(weighted):
    from jboat_core.testing.sparse import sparse_problem

    base = sparse_problem("lasso")
    x0 = base.x()
    if weighted:
        d = base.np_data["X"].shape[1]
        x0 = np.full(d, x0[0]) + 0.2 * np.random.RandomState(1).randn(d)
    return sparse_problem("lasso", x0=x0)


def sklearn_lasso(prob):
    """scikit-learn's Lasso as the lower solver, weights by rescaling the columns."""
    from sklearn.linear_model import Lasso

    X, t = prob.np_data["X"], prob.np_data["t"]

    def solve(x, y0, feed):
        lam = np.broadcast_to(np.exp(x[0]), (X.shape[1],))
        scale = lam.min() / lam  # sum lam_i |w_i| = lam_min ||u||_1 with w = scale * u
        model = Lasso(alpha=lam.min(), fit_intercept=False, tol=1e-14, max_iter=100000)
        model.fit(X * scale, t)
        return [model.coef_ * scale]
    return solve


def prox_step(eta):
    """T(x, w) = S_{eta e^x}(w - eta grad f(w)): the Lasso's optimality as a fixed point."""
    from jboat_ops.prox import l1

    jt = _jt()

    def T(feed, ul_model, ll_model, params):
        (w,) = params
        pred, _ = ll_model(feed["A"], params=params)
        f = ((pred - feed["b"]) ** 2).sum() * feed["c"]
        (g,) = jt.grad(f, [w])
        e = jboat_constant(eta, w)
        return [l1(w - g * e, jt.exp(ul_model()) * e)]
    return T


def jboat_constant(v, like):
    from jboat_core import constant
    return constant(v, like)


def _run(prob, gm, section, ll_solver=None, lower_iters=5):
    from jboat_core import Problem
    from jboat_core.testing.sparse import pgd_config

    jt = _jt()
    cfg = {"gm_op": [gm], "na_op": ["CG"], "lower_iters": lower_iters, "CG": section}
    if gm == "PGD":
        cfg["PGD"] = pgd_config("lasso")
    problem = Problem(cfg, ll_objective=prob.ll_objective, ul_objective=prob.ul_objective,
                      ll_model=prob.ll_model, ul_model=prob.ul_model,
                      ll_opt=jt.optim.SGD(prob.ll_var, 1.0 / prob.lipschitz()),
                      ul_opt=jt.optim.Adam(prob.ul_var, 0.01), registry=REGISTRY,
                      ll_solver=ll_solver)
    return problem.evaluate(prob.ll_feed, prob.ul_feed, 0)["hyper_gradients"][0].numpy()


@pytest.mark.parametrize("weighted", [False, True], ids=["one-lambda", "per-feature"])
def test_sklearn_lasso_inside_equals_the_prox_route(weighted):
    from jboat_core.testing.sparse import sparse_problem

    prob = _problem(weighted)
    eta = 1.0 / prob.lipschitz()
    solver = custom_fixed_point(prox_step(eta))(sklearn_lasso(prob))
    section = {"k": 200, "tolerance": 1e-14, "linear_solver": "gmres"}
    user = _run(prob, "SOLVED", section, solver)
    w = prob.solution()
    exact = prob.exact(w)
    assert np.linalg.norm(user - exact) < 1e-8 * np.linalg.norm(exact), (user, exact)
    warm = sparse_problem("lasso", x0=prob.x(), y0=w)
    builtin = _run(warm, "PGD", section)
    assert np.linalg.norm(user - builtin) < 1e-8 * np.linalg.norm(builtin)


def test_custom_root_on_the_objectives_gradient_is_the_ift():
    from jboat_core.testing.problems import ridge_problem

    jt = _jt()
    prob = ridge_problem(dtype="float64")

    @custom_root()
    def ridge(x, y0, feed):
        return [prob.solution(x[0])]

    from jboat_core import Problem

    problem = Problem({"gm_op": ["SOLVED"], "na_op": ["CG"], "lower_iters": 1,
                       "CG": {"k": 50, "tolerance": 1e-14}},
                      ll_objective=prob.ll_objective, ul_objective=prob.ul_objective,
                      ll_model=prob.ll_model, ul_model=prob.ul_model,
                      ll_opt=jt.optim.SGD(prob.ll_var, 0.1),
                      ul_opt=jt.optim.Adam(prob.ul_var, 0.01), registry=REGISTRY,
                      ll_solver=ridge)
    got = problem.evaluate(prob.ll_feed, prob.ul_feed, 0)["hyper_gradients"][0].numpy()
    want = prob.exact()
    assert np.linalg.norm(got - want) < 1e-10 * np.linalg.norm(want)


def test_unrolled_chain_is_refused():
    from jboat_core.contract import OperatorRuntimeError

    prob = _problem(False)
    solver = custom_root()(sklearn_lasso(prob))
    from jboat_core import Problem

    jt = _jt()
    problem = Problem({"gm_op": ["SOLVED"], "na_op": ["RAD"], "lower_iters": 1},
                      ll_objective=prob.ll_objective, ul_objective=prob.ul_objective,
                      ll_model=prob.ll_model, ul_model=prob.ul_model,
                      ll_opt=jt.optim.SGD(prob.ll_var, 0.1),
                      ul_opt=jt.optim.Adam(prob.ul_var, 0.01), registry=REGISTRY,
                      ll_solver=solver)
    with pytest.raises(OperatorRuntimeError, match="implicit operator"):
        problem.evaluate(prob.ll_feed, prob.ul_feed, 0)
