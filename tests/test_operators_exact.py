"""Every operator against an exact float64 hyper-gradient, in the regime where it is exact.

Float32 Jittor against float64 NumPy. Tolerances (relative L2 error unless stated):
* unrolled operators (RAD, PTT+RAD, RGT+RAD, IAD, FOA+IAD) against the analytic unrolled
  gradient: 1e-5 (float32 round-off over a few steps);
* implicit operators (CG, NS, IAD+CG) at y*: cosine >= 0.999 and 1e-4;
* FD against the one-step unrolled gradient (K = 1, where DARTS' formula is exact for ridge,
  grad_x f being quadratic in y): 1e-3 (finite-difference cancellation in float32);
* IGA: 1e-5 against its own formula on ridge, and exact (1e-5) against the IFT gradient on a
  scalar lower level where f = s/2 (y - phi(x))^2.
"""

import numpy as np
import pytest

from helpers import cosine, rel_err, run_chain

pytestmark = pytest.mark.jittor

K, LR = 4, 0.1


@pytest.fixture
def ridge(builtin_registry):
    from jboat_core.testing.problems import ridge_problem
    return ridge_problem()


@pytest.fixture
def ridge_at_solution(builtin_registry):
    from jboat_core.testing.problems import ridge_problem
    return ridge_problem(y0=ridge_problem().solution())


def test_rad_equals_unrolled(ridge):
    _, g, _ = run_chain(ridge, ["RAD"], K, LR)
    assert rel_err(g, ridge.unrolled(K, LR)) < 1e-5


def test_rad_with_enough_steps_reaches_ift(ridge):
    _, g, _ = run_chain(ridge, ["RAD"], 300, LR)
    assert cosine(g, ridge.exact()) >= 0.999


def test_ptt_rad_differentiates_at_worst_iterate(builtin_registry):
    from jboat_core.testing.problems import ridge_problem
    prob = ridge_problem(seed=3)
    ys, _ = prob.trajectory(K, LR)
    k_star = 1 + int(np.argmax([prob.F(y) for y in ys[1:]]))
    result, g, fm = run_chain(prob, ["PTT", "RAD"], K, LR)
    assert rel_err(g, prob.unrolled(K, LR, at=k_star)) < 1e-5
    assert np.allclose(fm.parameters(time=k_star)[0].numpy(), ys[k_star], atol=1e-5)


def test_rgt_rad_backpropagates_through_last_steps(ridge):
    _, g, _ = run_chain(ridge, ["RGT", "RAD"], K, LR, {"RGT": {"truncate_iter": 2}})
    ref = ridge.unrolled(K, LR, truncate=2)
    assert rel_err(g, ref) < 1e-5
    assert rel_err(ref, ridge.unrolled(K, LR)) > 1e-2  # truncation really changes it


@pytest.mark.parametrize("name,cfg", [("CG", {"CG": {"k": 20, "tolerance": 1e-8}}),
                                      ("NS", {"NS": {"k": 300}})])
def test_implicit_at_solution_equals_ift(ridge_at_solution, name, cfg):
    _, g, _ = run_chain(ridge_at_solution, [name], 1, LR, cfg)
    ex = ridge_at_solution.exact()
    assert cosine(g, ex) >= 0.999 and rel_err(g, ex) < 1e-4


def test_cg_on_weighted_logistic(builtin_registry):
    from jboat_core.testing.problems import logistic_problem
    prob = logistic_problem()
    _, g, _ = run_chain(prob, ["CG"], 1, 0.01, {"CG": {"k": 30, "tolerance": 1e-9}})
    ex = prob.exact()
    assert cosine(g, ex) >= 0.999 and rel_err(g, ex) < 1e-4


def test_ns_partial_sum_formula(ridge_at_solution):
    """NS with k terms equals -eta d2f/dxdy sum_{i<=k} (I - eta H)^i grad F exactly."""
    p, k = ridge_at_solution, 3
    _, g, _ = run_chain(p, ["NS"], 1, LR, {"NS": {"k": k}})
    y = p.y0() - LR * p.grad_f(p.y0())  # one NGD step from y* (stays at y*)
    M = np.eye(len(y)) - LR * p.hessian()
    s = sum(np.linalg.matrix_power(M, i) for i in range(k + 1)) @ p.grad_F(y)
    assert rel_err(g, -LR * np.exp(p.x()) * y * s) < 1e-4


def test_fd_equals_one_step_unrolled(ridge):
    _, g, _ = run_chain(ridge, ["FD"], 1, LR, {"FD": {"r": 1e-2}})
    assert rel_err(g, ridge.unrolled(1, LR)) < 1e-3


def test_iga_matches_its_formula(ridge):
    _, g, _ = run_chain(ridge, ["IGA"], 2, LR)
    ys, _ = ridge.trajectory(2, LR)
    y, x = ys[2], ridge.x()
    dF, df, dfx = ridge.grad_F(y), ridge.grad_f(y), 0.5 * np.exp(x) * y * y
    assert rel_err(g, -(dF @ df) / (df @ df) * dfx) < 1e-5


def test_iga_exact_for_scalar_quadratic_lower_level(builtin_registry):
    """f = s/2 (y - a.x)^2, F = (y - 1)^2 / 2 + |x|^2 / 2: IGA equals the IFT gradient
    x + (y* - 1)... evaluated at any y != a.x: grad_x F - grad_yF * (-a)."""
    from jboat_core.platform._jittor import jittor
    from jboat_core.testing.problems import BilevelProblem, Vector
    jt = jittor()
    a, s = np.array([0.5, -1.0, 2.0]), 3.0
    aj = jt.array(a.astype(np.float32))

    def f(feed, ul, ll, **kw):
        y = ll(**kw) if not kw.get("params") else kw["params"][0]
        return 0.5 * s * ((y - (aj * ul()).sum()) ** 2).sum()

    def F(feed, ul, ll, **kw):
        y = kw["params"][0] if kw.get("params") else ll()
        return 0.5 * ((y - 1) ** 2).sum() + 0.5 * (ul() * ul()).sum()

    x = np.array([0.3, 0.1, -0.2])
    prob = BilevelProblem(Vector([2.0]), Vector(x), f, F, {}, {})
    _, g, fm = run_chain(prob, ["IGA"], 1, 0.1)
    y = float(fm.parameters()[0].numpy()[0])
    assert abs(y - a @ x) > 1e-2  # away from the solution, where IGA is 0/0
    exact = x + (y - 1.0) * a  # grad_x F - d2f/dxdy H^-1 grad_y F with H = s
    assert rel_err(g, exact) < 1e-5


def test_iad_is_second_order_maml(ridge):
    result, g, _ = run_chain(ridge, ["IAD"], K, LR)
    assert rel_err(g, ridge.dF_dy0(K, LR)) < 1e-5


def test_foa_iad_is_first_order_maml(ridge):
    _, g, _ = run_chain(ridge, ["FOA", "IAD"], K, LR)
    ys, _ = ridge.trajectory(K, LR)
    assert rel_err(g, ridge.grad_F(ys[K])) < 1e-5


def test_iad_cg_is_imaml(builtin_registry):
    """Meta-learning with one model at both levels: f(y; y0) = L(y) + lam/2 |y - y0|^2, L
    quadratic. IAD hands y_0 to CG, which returns the implicit meta-gradient
    lam H^-1 grad F(y*), H = A'A/n + lam I (iMAML, Rajeswaran et al., NeurIPS 2019)."""
    from jboat_core.platform._jittor import jittor
    from jboat_core.testing.problems import BilevelProblem, Vector
    jt = jittor()
    rng = np.random.RandomState(5)
    n, d, lam = 20, 5, 0.5
    A1, b1, A2, b2 = rng.randn(n, d), rng.randn(n), rng.randn(n, d), rng.randn(n)
    theta = rng.randn(d)
    H = A1.T @ A1 / n + lam * np.eye(d)
    y_star = np.linalg.solve(H, A1.T @ b1 / n + lam * theta)
    J = lambda a: jt.array(a.astype(np.float32))  # noqa: E731
    model = Vector(theta)

    def f(feed, ul, ll, **kw):
        pred, _ = ll(feed["A"], **kw)  # ll is the functional view: params substituted
        y = kw["params"][0]
        return ((pred - feed["b"]) ** 2).sum() / (2 * n) + 0.5 * lam * ((y - ul.w) ** 2).sum()

    def F(feed, ul, ll, **kw):
        pred, _ = ll(feed["A"], **kw)
        return ((pred - feed["b"]) ** 2).sum() / (2 * n)

    prob = BilevelProblem(model, model, f, F, {"A": J(A1), "b": J(b1)}, {"A": J(A2), "b": J(b2)})
    _, g, fm = run_chain(prob, ["IAD", "CG"], 150, 0.3, {"CG": {"k": 20, "tolerance": 1e-9}})
    assert np.allclose(fm.parameters()[0].numpy(), y_star, atol=1e-5)
    grad_F = A2.T @ (A2 @ y_star - b2) / n
    assert rel_err(g, lam * np.linalg.solve(H, grad_F)) < 1e-4


def test_di_gradient_through_trajectory(ridge):
    result, _, _ = run_chain(ridge, ["RAD"], K, LR, init=True)
    g0 = result["ll_init_gradients"][0].numpy()
    assert rel_err(g0, ridge.dF_dy0(K, LR)) < 1e-5
