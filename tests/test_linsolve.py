"""The linear solvers of the implicit operators (``jboat_core.numerics.linsolve``).

Float32 Jittor against float64 NumPy references that stop the way the docstrings say
(tolerance 1e-5 relative); the stop tests are read in batches, so the result must not
depend on the batch size (``check_every``), and ``tol = 0`` must never sync.
"""

import numpy as np
import pytest

pytestmark = pytest.mark.jittor

N = 5
EIGS = np.array([1.0, 2.0, 4.0, 8.0, 16.0])


def _problem():
    rng = np.random.RandomState(3)
    Q, _ = np.linalg.qr(rng.randn(N, N))
    return (Q * EIGS) @ Q.T, rng.randn(N)


def _jt_operator(A):
    from jboat_core.platform._jittor import jittor
    jt = jittor()
    Aj = jt.array(A.astype(np.float32))
    return jt, (lambda v: [(Aj * v[0]).sum(1)])


def _np_cg(A, b, maxiter, tol):
    """Textbook CG that stops (returns the current iterate) when ||r|| < tol or p'Ap <= 0."""
    x, r = np.zeros_like(b), b.copy()
    p, rs = r.copy(), r @ r
    norms = []
    for _ in range(maxiter):
        norms.append(np.sqrt(rs))
        ap = A @ p
        if np.sqrt(rs) < tol or p @ ap <= 0:
            break
        alpha = rs / (p @ ap)
        x, r = x + alpha * p, r - alpha * ap
        rs_new = r @ r
        p, rs = r + rs_new / rs * p, rs_new
    return x, norms


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_cg_solves_spd_system():
    from jboat_core.numerics.linsolve import solve_cg
    A, b = _problem()
    jt, mv = _jt_operator(A)
    (x,) = solve_cg(mv, [jt.array(b.astype(np.float32))], maxiter=3 * N, tol=0.0)
    assert _rel(x.numpy(), np.linalg.solve(A, b)) < 1e-5


@pytest.mark.parametrize("check_every", [1, 2, 100])
def test_cg_stops_at_tolerance_whatever_the_check_interval(check_every):
    from jboat_core.numerics.linsolve import solve_cg
    A, b = _problem()
    _, norms = _np_cg(A, b, N, 0.0)
    tol = float(np.sqrt(norms[2] * norms[3]))  # between the 3rd and 4th residuals
    want, _ = _np_cg(A, b, 20, tol)
    assert _rel(want, np.linalg.solve(A, b)) > 1e-3  # really stopped early
    jt, mv = _jt_operator(A)
    (x,) = solve_cg(mv, [jt.array(b.astype(np.float32))], maxiter=20, tol=tol,
                    check_every=check_every)
    assert _rel(x.numpy(), want) < 1e-5


def test_cg_freezes_at_non_positive_curvature():
    from jboat_core.numerics.linsolve import solve_cg
    jt, mv = _jt_operator(np.diag([2.0, -1.0]))
    (x,) = solve_cg(mv, [jt.array(np.ones(2, np.float32))], maxiter=10, tol=1e-30)
    # step 1: alpha = 2, x = [2, 2]; step 2: p'Ap = -72 <= 0, frozen (no NaN, no blow-up)
    np.testing.assert_allclose(x.numpy(), [2.0, 2.0], rtol=1e-6)
    jt, mv = _jt_operator(np.diag([4.0, -1.0]))
    (x,) = solve_cg(mv, [jt.array(np.array([1.0, 2.0], np.float32))], maxiter=5, tol=1e-30)
    np.testing.assert_array_equal(x.numpy(), [0.0, 0.0])  # p'Ap = 0 at once: x_0


@pytest.mark.parametrize("tol,check_every,expected_syncs",
                         [(0.0, 5, 0), (1e-30, 5, 2), (1e-30, 10, 0), (1e-30, 100, 0),
                          (1e-30, 4, 3)])
def test_cg_sync_budget(monkeypatch, tol, check_every, expected_syncs):
    import jboat_core.numerics.linsolve as linsolve
    calls = []
    real = linsolve.sync_floats
    monkeypatch.setattr(linsolve, "sync_floats", lambda *v: calls.append(1) or real(*v))
    A, b = _problem()
    jt, mv = _jt_operator(A)
    linsolve.solve_cg(mv, [jt.array(b.astype(np.float32))], maxiter=10, tol=tol,
                      check_every=check_every)
    # every check_every iterations and at the end; none when one batch would cover all
    assert len(calls) == expected_syncs


@pytest.mark.parametrize("check_every", [1, 3, 10, 30, 100])
def test_neumann_stops_after_first_small_term(check_every):
    from jboat_core.numerics.linsolve import solve_neumann
    A, b = _problem()
    alpha = 1.0 / 16.0
    terms, v = [b], b
    for _ in range(30):
        v = v - alpha * A @ v
        terms.append(v)
    norms = [np.linalg.norm(t) for t in terms]
    tol = float(np.sqrt(norms[4] * norms[5]))  # terms 1..4 are above it, term 5 below
    want = alpha * np.sum(terms[:6], axis=0)
    jt, mv = _jt_operator(A)
    (x,) = solve_neumann(mv, [jt.array(b.astype(np.float32))], maxiter=30, tol=tol,
                         alpha=alpha, check_every=check_every)
    assert _rel(x.numpy(), want) < 1e-5
    (full,) = solve_neumann(mv, [jt.array(b.astype(np.float32))], maxiter=30, alpha=alpha)
    assert _rel(full.numpy(), alpha * np.sum(terms, axis=0)) < 1e-5


@pytest.mark.parametrize("solver", ["solve_cg", "solve_neumann"])
def test_check_every_must_be_positive(solver):
    import jboat_core.numerics.linsolve as linsolve
    with pytest.raises(ValueError, match="check_every=0"):
        getattr(linsolve, solver)(lambda v: v, [], check_every=0)


@pytest.mark.parametrize("A,b", [
    (np.diag([1.0, 0.0]), np.array([1.0, 0.0])),   # residual vanishes after one iteration
    (np.diag([1.0, 0.0]), np.array([1.0, 1.0])),   # singular: p'Ap = 0 at iteration 2
    (np.diag([1.0, -1.0]), np.array([1.0, 1.0])),  # indefinite: p'Ap = 0 at once
], ids=["converged", "singular", "indefinite"])
def test_cg_without_tolerance_never_divides_by_zero(A, b):
    """tol = 0 (k iterations, no sync): after the residual vanishes or at non-positive
    curvature every further step is zero; the result is what CG had then, never NaN."""
    from jboat_core.numerics.linsolve import solve_cg
    jt, matvec = _jt_operator(A)
    x = solve_cg(matvec, [jt.array(b.astype(np.float32))], maxiter=50, tol=0.0)[0].numpy()
    assert np.all(np.isfinite(x))
    expected, _ = _np_cg(A, b, 50, 1e-30)
    assert np.allclose(x, expected, atol=1e-6), (x, expected)


def test_damping_solves_the_shifted_system(builtin_registry):
    """CG and NS with damping lambda solve (H + lambda I) v = grad_y F: on the ridge
    problem their hyper-gradient equals the IFT formula with H + lambda I."""
    from helpers import rel_err, run_chain
    from jboat_core.testing.problems import ridge_problem
    lam = 0.5
    p = ridge_problem()
    p = ridge_problem(y0=p.solution())
    y, x = p.y0(), p.x()
    H = p.hessian() + lam * np.eye(len(y))
    exact = -(np.exp(x) * y) * np.linalg.solve(H, p.grad_F(y))
    _, g_cg, _ = run_chain(p, ["CG"], 1, 1e-8, {"CG": {"k": 20, "damping": lam}})
    _, g_ns, _ = run_chain(p, ["NS"], 1, 1e-8, {"NS": {"k": 400, "alpha": 0.3,
                                                        "damping": lam}})
    assert rel_err(g_cg, exact) < 1e-4 and rel_err(g_ns, exact) < 1e-4


def test_cg_on_a_nonconvex_tanh_lower_level_stays_finite(builtin_registry):
    """A 2-layer tanh lower level (indefinite Hessian): CG with tolerance 0 and k = 200
    used to return NaN; now finite, with or without damping."""
    from jboat_core import Problem
    from jboat_core.platform._jittor import jittor
    jt = jittor()
    jt.set_global_seed(0)
    rng = np.random.RandomState(0)
    X, t = jt.array(rng.randn(32, 4).astype("float32")), jt.array(rng.randn(32, 1).astype("float32"))
    net = jt.nn.Sequential(jt.nn.Linear(4, 8), jt.nn.Tanh(), jt.nn.Linear(8, 1))

    class Scale(jt.nn.Module):
        def __init__(self):
            self.s = jt.zeros((1,))

    hyper = Scale()
    f = lambda feed, ul, ll, **kw: ((ll(X, **kw) - t) ** 2).mean() + ul.s.exp().sum() * sum(  # noqa: E731
        (v * v).sum() for v in (kw.get("params") or net.parameters())) * 1e-3
    F = lambda feed, ul, ll, **kw: ((ll(X, **kw) - t) ** 2).mean()  # noqa: E731
    for damping in (0.0, 0.1):
        prob = Problem({"na_op": ["CG"], "lower_iters": 2, "return_grad": True,
                        "CG": {"k": 200, "tolerance": 0.0, "damping": damping}},
                       ll_objective=f, ul_objective=F, ll_model=net, ul_model=hyper,
                       ll_opt=jt.optim.SGD(net.parameters(), 0.1),
                       ul_opt=jt.optim.SGD(hyper.parameters(), 0.1))
        g = prob.run_iter({}, {}, 0)["hyper_gradients"][0].numpy()
        assert np.all(np.isfinite(g)), (damping, g)
