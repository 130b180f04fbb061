"""CGNR, conjugate gradient on the normal equations, as a linear solver
``solve(matvec, b) -> x`` for ``jboat_core.numerics.implicit.implicit_hypergradient``.

The solver works on lists of arrays supporting ``*``, ``+`` and ``.sum()`` (Jittor Vars or
NumPy arrays); it imports neither, so importing the plugin stays Jittor-free.
"""

from __future__ import annotations

TINY = 1e-30
"""Added to the denominators: a zero search direction (an exact solution, or a singular
operator) then gives a zero step instead of 0/0, without a per-iteration sync."""


def _dot(xs, ys):
    """Sum over the list of <x, y> (a one-element array/Var)."""
    total = None
    for x, y in zip(xs, ys):
        term = (x * y).sum()
        total = term if total is None else total + term
    return total


def _axpy(a, xs, ys):
    """a * x + y, elementwise over the lists."""
    return [x * a + y for x, y in zip(xs, ys)]


def solve_cgnr(matvec, b, maxiter: int = 10, tol: float = 0.0, damping: float = 0.0,
               rmatvec=None):
    r"""Solve ``A x = b`` by conjugate gradient on the normal equations (CGNR).

    Minimises :math:`\|A x - b\|^2 + \lambda \|x\|^2`, i.e. solves

    .. math:: (A^\top A + \lambda I)\, x = A^\top b,

    whose matrix is symmetric positive definite for *any* non-singular A (indefinite or
    non-symmetric) and, with :math:`\lambda > 0`, for any A at all. Plain CG needs A itself
    positive definite. The price: convergence depends on :math:`\kappa(A)^2` instead of
    :math:`\kappa(A)`, and each iteration costs two products (A p and A^T r).

    Iteration (CGNR as in Saad 2003, section 8.3, with the damping term of CGLS)::

        x_0 = 0, r_0 = b, z_0 = A^T b, p_0 = z_0
        w = A p,  alpha = z'z / (w'w + lambda p'p)
        x += alpha p,  r -= alpha w
        z_new = A^T r - lambda x,  beta = z_new'z_new / z'z,  p = z_new + beta p

    Parameters
    ----------
    matvec : callable
        ``v -> A v`` on a list of arrays; must return detached arrays (as
        ``jboat_core.numerics.autodiff.linear_operator`` does) so memory stays flat.
    b : list of arrays
        Right-hand side.
    maxiter : int
        Maximum number of iterations k (1 + 2k products).
    tol : float
        Stop when the normal-equation residual ``||A^T(b - A x) - lambda x|| < tol``. Costs
        one sync per iteration; ``0`` (default) never syncs and always runs ``maxiter``.
    damping : float
        Tikhonov damping lambda >= 0 (0: the exact solution of ``A x = b``).
    rmatvec : callable, optional
        ``v -> A^T v``; default ``matvec`` (A symmetric, e.g. a Hessian).

    Returns
    -------
    list of arrays
        The last iterate x_k.

    References
    ----------
    Hestenes M.R., Stiefel E., "Methods of conjugate gradients for solving linear systems",
    J. Res. Nat. Bur. Standards 49(6), 1952.
    Saad Y., "Iterative Methods for Sparse Linear Systems", 2nd ed., SIAM 2003, section 8.3.
    """
    if damping < 0:
        raise ValueError(f"solve_cgnr: damping={damping!r} must be >= 0")
    rmatvec = rmatvec or matvec
    x = [bi * 0 for bi in b]
    r = list(b)
    z = rmatvec(r)
    p = list(z)
    zz = _dot(z, z)
    for _ in range(int(maxiter)):
        if tol > 0 and float(zz.item()) ** 0.5 < tol:
            break
        w = matvec(p)
        ww = _dot(w, w)
        if damping:
            ww = ww + _dot(p, p) * damping
        alpha = zz / (ww + TINY)
        x = _axpy(alpha, p, x)
        r = _axpy(-alpha, w, r)
        z = rmatvec(r)
        if damping:
            z = _axpy(-damping, x, z)
        zz_new = _dot(z, z)
        p = _axpy(zz_new / (zz + TINY), p, z)
        zz = zz_new
    return x
