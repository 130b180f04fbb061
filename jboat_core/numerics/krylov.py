"""Krylov and direct linear solvers for general systems: GMRES, BiCGSTAB, MINRES,
normal-equation CG and a dense direct solve, ``solve(matvec, b, *, rmatvec=None, maxiter,
tol, ...) -> x`` on lists of arrays (the implicit operators' non-symmetric systems: the
fixed points of proximal and projected steps).

They run on lists of Jittor Vars or of NumPy arrays alike (the tests check them in NumPy
float64): the scalars of the recurrences are read on the host (one sync per inner
product; GMRES and MINRES need them there anyway), numbers enter float64 arithmetic
exactly (``autodiff.constant``). Every method starts at x_0 = 0 and stops at the first
iterate whose residual estimate satisfies ||r|| < ``tol`` (absolute, as ``solve_cg``) or
after ``maxiter`` products with A.

References
----------
Saad Y., Schultz M.H., "GMRES: a generalized minimal residual algorithm for solving
nonsymmetric linear systems", SIAM J. Sci. Stat. Comput., 1986.
van der Vorst H.A., "Bi-CGSTAB: a fast and smoothly converging variant of Bi-CG",
SIAM J. Sci. Stat. Comput., 1992.
Paige C.C., Saunders M.A., "Solution of sparse indefinite systems of linear equations",
SIAM J. Numer. Anal., 1975 (MINRES).
Hestenes M.R., Stiefel E., 1952 (CG on the normal equations, CGLS).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import OperatorRuntimeError


def _is_np(xs) -> bool:
    return isinstance(xs[0], np.ndarray)


def _dot(xs, ys) -> float:
    """sum_i <x_i, y_i>, read as a Python float."""
    total = 0.0
    for x, y in zip(xs, ys):
        v = (x * y).sum()
        total += float(v) if isinstance(v, (float, np.floating, np.ndarray)) else float(v.item())
    return total


def _norm(xs) -> float:
    return math.sqrt(max(_dot(xs, xs), 0.0))


def _c(a: float, like):
    """``a`` as an exact factor for ``like``'s dtype."""
    if isinstance(like, np.ndarray):
        return a
    from .autodiff import constant
    return constant(a, like)


def _lin(a: float, xs, b: float, ys):
    """a x + b y, elementwise over the lists."""
    return [x * _c(a, x) + y * _c(b, y) for x, y in zip(xs, ys)]


def _zeros(bs):
    return [b * 0 for b in bs]


def _sync(xs) -> None:
    """Execute pending Jittor work (a long recurrence keeps its graph short)."""
    if not _is_np(xs):
        from .autodiff import jt
        jt.sync(list(xs))


def solve_gmres(matvec, b, *, rmatvec=None, maxiter: int = 100, tol: float = 1e-10,
                restart: int = 30):
    """Restarted GMRES(m) for a general square A: each cycle builds an orthonormal
    Krylov basis by Arnoldi (modified Gram-Schmidt), minimises ||beta e_1 - H y|| on the
    host and restarts from x + V y; m = ``restart`` products per cycle, ``maxiter`` in
    all. Memory: m + 1 vectors."""
    x = _zeros(b)
    r = list(b)
    used = 0
    while used < maxiter:
        beta = _norm(r)
        if beta < tol or beta == 0.0:
            break
        m = min(int(restart), maxiter - used)
        V = [[ri * _c(1.0 / beta, ri) for ri in r]]
        H = np.zeros((m + 1, m))
        y = np.zeros(0)
        for j in range(m):
            w = matvec(V[j])
            used += 1
            for i in range(j + 1):
                H[i, j] = _dot(w, V[i])
                w = _lin(1.0, w, -H[i, j], V[i])
            H[j + 1, j] = _norm(w)
            e1 = np.zeros(j + 2)
            e1[0] = beta
            y, *_ = np.linalg.lstsq(H[:j + 2, :j + 1], e1, rcond=None)
            res = float(np.linalg.norm(H[:j + 2, :j + 1] @ y - e1))
            if res < tol or H[j + 1, j] <= 1e-300 * beta:
                break
            V.append([wi * _c(1.0 / H[j + 1, j], wi) for wi in w])
            _sync(V[-1])
        for yi, vi in zip(y, V):
            x = _lin(1.0, x, float(yi), vi)
        r = _lin(1.0, b, -1.0, matvec(x))
        used += 1
        _sync(x + r)
    return x


def solve_bicgstab(matvec, b, *, rmatvec=None, maxiter: int = 100, tol: float = 1e-10):
    """BiCGSTAB for a general square A (two products per iteration, ``maxiter`` counts
    iterations); stops on ||r|| < tol or a breakdown (rho or omega = 0)."""
    x = _zeros(b)
    r = list(b)
    rhat = list(b)
    rho = alpha = omega = 1.0
    v = _zeros(b)
    p = _zeros(b)
    for _ in range(int(maxiter)):
        if _norm(r) < tol:
            break
        rho_new = _dot(rhat, r)
        if rho_new == 0.0 or omega == 0.0:
            break
        beta = (rho_new / rho) * (alpha / omega)
        p = _lin(1.0, r, beta, _lin(1.0, p, -omega, v))
        v = matvec(p)
        den = _dot(rhat, v)
        if den == 0.0:
            break
        alpha = rho_new / den
        s = _lin(1.0, r, -alpha, v)
        if _norm(s) < tol:
            x = _lin(1.0, x, alpha, p)
            break
        t = matvec(s)
        tt = _dot(t, t)
        omega = _dot(t, s) / tt if tt > 0 else 0.0
        x = _lin(1.0, x, alpha, _lin(1.0, p, omega / alpha if alpha else 0.0, s))
        r = _lin(1.0, s, -omega, t)
        rho = rho_new
        _sync(x + r + p)
    return x


def solve_minres(matvec, b, *, rmatvec=None, maxiter: int = 100, tol: float = 1e-10):
    """MINRES for a symmetric (possibly indefinite) A: Lanczos with Givens rotations,
    the iterate minimising ||b - A x|| over the Krylov space; stops when the residual
    estimate < tol."""
    x = _zeros(b)
    beta1 = _norm(b)
    if beta1 < tol or beta1 == 0.0:
        return x
    r1, r2, y = list(b), list(b), list(b)
    oldb, beta, dbar, epsln, phibar = 0.0, beta1, 0.0, 0.0, beta1
    cs, sn = -1.0, 0.0
    w, w2 = _zeros(b), _zeros(b)
    for itn in range(int(maxiter)):
        v = [yi * _c(1.0 / beta, yi) for yi in y]
        y = matvec(v)
        if itn >= 1:
            y = _lin(1.0, y, -beta / oldb, r1)
        alfa = _dot(v, y)
        y = _lin(1.0, y, -alfa / beta, r2)
        r1, r2 = r2, y
        oldb, beta = beta, _norm(y)
        oldeps = epsln
        delta = cs * dbar + sn * alfa
        gbar = sn * dbar - cs * alfa
        epsln = sn * beta
        dbar = -cs * beta
        gamma = max(math.hypot(gbar, beta), 1e-300)
        cs, sn = gbar / gamma, beta / gamma
        phi, phibar = cs * phibar, sn * phibar
        w1, w2 = w2, w
        w = [(vi - w1i * _c(oldeps, w1i) - w2i * _c(delta, w2i)) * _c(1.0 / gamma, vi)
             for vi, w1i, w2i in zip(v, w1, w2)]
        x = _lin(1.0, x, phi, w)
        _sync(x + w + y)
        if phibar < tol or beta == 0.0:
            break
    return x


def solve_normal_cg(matvec, b, *, rmatvec=None, maxiter: int = 100, tol: float = 1e-10):
    """CG on the normal equations A^T A x = A^T b (CGLS): any square or rectangular A,
    symmetric or not, at the price of two products per iteration and the squared
    condition number; needs ``rmatvec`` (u -> A^T u). Stops on ||b - A x|| < tol or
    ||A^T r|| = 0."""
    if rmatvec is None:
        raise OperatorRuntimeError("normal_cg", "linear solver", "needs rmatvec (u -> A^T u); "
                                   "the implicit operators provide it")
    x = _zeros(b)
    r = list(b)
    s = rmatvec(r)
    p = list(s)
    gamma = _dot(s, s)
    for _ in range(int(maxiter)):
        if _norm(r) < tol or gamma == 0.0:
            break
        q = matvec(p)
        qq = _dot(q, q)
        if qq == 0.0:
            break
        alpha = gamma / qq
        x = _lin(1.0, x, alpha, p)
        r = _lin(1.0, r, -alpha, q)
        s = rmatvec(r)
        gamma_new = _dot(s, s)
        p = _lin(1.0, s, gamma_new / gamma, p)
        gamma = gamma_new
        _sync(x + r + p)
    return x


def _to_numpy(xs) -> np.ndarray:
    return np.concatenate([np.ravel(x if isinstance(x, np.ndarray) else x.numpy())
                           .astype(np.float64) for x in xs])


def _from_numpy(flat: np.ndarray, like) -> list:
    out, at = [], 0
    for x in like:
        n = int(np.prod(x.shape)) if len(x.shape) else 1
        part = flat[at:at + n].reshape(tuple(x.shape))
        at += n
        if isinstance(x, np.ndarray):
            out.append(part.astype(x.dtype))
        else:
            from .autodiff import jt
            out.append(jt.array(part.astype(np.float64), str(x.dtype)))
    return out


def solve_dense(matvec, b, *, rmatvec=None, maxiter: int = 0, tol: float = 0.0,
                max_size: int = 4096):
    """Direct solve: A assembled column by column (n products with unit vectors, n the
    total size of b), then LU in float64 NumPy (``numpy.linalg.solve``; least squares if
    A is singular). For small lower levels (n <= ``max_size``); ``maxiter`` and ``tol``
    are ignored."""
    n = int(_to_numpy(b).size)
    if n > max_size:
        raise OperatorRuntimeError("dense", "linear solver", f"the system has {n} unknowns > "
                                   f"max_size={max_size}; use gmres or bicgstab")
    A = np.zeros((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        A[:, j] = _to_numpy(matvec(_from_numpy(e, b)))
    rhs = _to_numpy(b)
    try:
        sol = np.linalg.solve(A, rhs)
    except np.linalg.LinAlgError:
        sol = np.linalg.lstsq(A, rhs, rcond=None)[0]
    return _from_numpy(sol, b)
