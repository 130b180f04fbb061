"""Linear solvers ``solve(matvec, b) -> x`` for implicit hyper-gradients (as in JAXopt's
``linear_solve`` and TorchOpt's ``linear_solve``), on lists of Jittor Vars.

``matvec`` must return detached Vars (see ``autodiff.linear_operator``), so the iterates
carry no graph and memory does not grow with the number of iterations.
"""

from __future__ import annotations

from .autodiff import axpy, sync_floats, vdot


def solve_cg(matvec, b, maxiter: int = 10, tol: float = 1e-10):
    """Conjugate gradient for ``A x = b`` with A symmetric positive definite.

    x_0 = 0, r_0 = p_0 = b; per iteration alpha = r'r / p'Ap, x += alpha p,
    r -= alpha Ap, beta = r_new'r_new / r'r, p = r + beta p.

    Returns the last iterate (upstream returned the one before it on convergence). Stops
    early when ||r|| < tol (one sync per iteration; ``tol=0`` never syncs) or at the first
    direction of non-positive curvature p'Ap <= 0 (A not positive definite).

    References
    ----------
    Hestenes M.R., Stiefel E., "Methods of conjugate gradients for solving linear systems",
    J. Res. Nat. Bur. Standards, 1952.
    """
    x = [r * 0 for r in b]
    r = list(b)
    p = list(b)
    rs = vdot(r, r)
    for _ in range(int(maxiter)):
        ap = matvec(p)
        pap = vdot(p, ap)
        if tol > 0:
            rs_f, pap_f = sync_floats(rs, pap)
            if rs_f ** 0.5 < tol or pap_f <= 0:
                break
        alpha = rs / pap
        x = axpy(alpha, p, x)
        r = axpy(-alpha, ap, r)
        rs_new = vdot(r, r)
        p = axpy(rs_new / rs, p, r)
        rs = rs_new
    return x


def solve_neumann(matvec, b, maxiter: int = 10, tol: float = 0.0, alpha: float = 1.0):
    """Truncated Neumann series: x = alpha * sum_{i=0}^{k} (I - alpha A)^i b ~ A^{-1} b.

    Converges when ||I - alpha A|| < 1 (alpha below 2 / lambda_max). Stops early when the
    newest term's norm is below ``tol`` (one sync per iteration; ``tol=0`` never syncs).

    References
    ----------
    Lorraine J., Vicol P., Duvenaud D., "Optimizing millions of hyperparameters by implicit
    differentiation", AISTATS 2020.
    """
    v = list(b)
    s = list(b)
    for _ in range(int(maxiter)):
        v = axpy(-alpha, matvec(v), v)
        s = [si + vi for si, vi in zip(s, v)]
        if tol > 0 and sync_floats(vdot(v, v))[0] ** 0.5 < tol:
            break
    return [si * alpha for si in s]
