"""The CGNR solver on NumPy float64 arrays (no Jittor): exact on SPD, symmetric
indefinite and non-symmetric systems, damped least squares, early stop, zero input."""

import numpy as np
import pytest

from jboat_example_plugin.cgnr import solve_cgnr

N = 6


def _orthogonal(rng, n=N):
    q, _ = np.linalg.qr(rng.randn(n, n))
    return q


def _spd(rng):
    q = _orthogonal(rng)
    return q @ np.diag([0.5, 0.8, 1.0, 1.5, 2.0, 3.0]) @ q.T


def _indefinite(rng):
    q = _orthogonal(rng)
    return q @ np.diag([-2.0, -0.7, 0.6, 1.0, 1.5, 2.5]) @ q.T


def _nonsymmetric(rng):
    return np.eye(N) * 2 + rng.randn(N, N)


def _solve(A, b, **kw):
    (x,) = solve_cgnr(lambda v: [A @ v[0]], [b], rmatvec=lambda v: [A.T @ v[0]], **kw)
    return x


@pytest.mark.parametrize("make", [_spd, _indefinite, _nonsymmetric])
def test_exact_in_n_iterations(make):
    rng = np.random.RandomState(0)
    A, b = make(rng), rng.randn(N)
    x = _solve(A, b, maxiter=3 * N)  # n in exact arithmetic; slack for rounding
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-8, atol=1e-10)


def test_symmetric_default_uses_matvec_for_the_transpose():
    rng = np.random.RandomState(1)
    A, b = _indefinite(rng), rng.randn(N)
    (x,) = solve_cgnr(lambda v: [A @ v[0]], [b], maxiter=3 * N)
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-8, atol=1e-10)


def test_damping_solves_the_regularised_normal_equations():
    rng = np.random.RandomState(2)
    A = _nonsymmetric(rng)
    A[:, 0] = A[:, 1]  # singular: only the damped problem has a unique solution
    b, lam = rng.randn(N), 0.3
    x = _solve(A, b, maxiter=3 * N, damping=lam)
    expected = np.linalg.solve(A.T @ A + lam * np.eye(N), A.T @ b)
    np.testing.assert_allclose(x, expected, rtol=1e-8, atol=1e-10)


def test_list_of_blocks():
    rng = np.random.RandomState(3)
    A, b = _indefinite(rng), rng.randn(N)

    def matvec(v):
        y = A @ np.concatenate([v[0], v[1].ravel()])
        return [y[:2], y[2:].reshape(2, 2)]

    x = solve_cgnr(matvec, [b[:2], b[2:].reshape(2, 2)], maxiter=3 * N)
    assert [xi.shape for xi in x] == [(2,), (2, 2)]
    np.testing.assert_allclose(np.concatenate([x[0], x[1].ravel()]), np.linalg.solve(A, b),
                               rtol=1e-8, atol=1e-10)


def test_tolerance_stops_early():
    rng = np.random.RandomState(4)
    A, b = _spd(rng), rng.randn(N)
    calls = []

    def matvec(v):
        calls.append(1)
        return [A @ v[0]]

    (x,) = solve_cgnr(matvec, [b], maxiter=100, tol=1e-8)
    assert len(calls) < 1 + 2 * 100
    np.testing.assert_allclose(A @ x, b, atol=1e-7)


def test_zero_rhs_gives_zero_not_nan():
    A = _spd(np.random.RandomState(5))
    x = _solve(A, np.zeros(N), maxiter=5)
    assert np.all(x == 0)


def test_negative_damping_is_an_error():
    with pytest.raises(ValueError, match="damping=-1.0 must be >= 0"):
        solve_cgnr(lambda v: v, [np.ones(2)], damping=-1.0)
