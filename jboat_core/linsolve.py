"""Linear solvers ``solve(matvec, b) -> x`` for implicit hyper-gradients (as in JAXopt's
``linear_solve`` and TorchOpt's ``linear_solve``), on lists of Jittor Vars.

``matvec`` must return detached Vars (see ``autodiff.linear_operator``), so the iterates
carry no graph and memory does not grow with the number of iterations.
"""

from __future__ import annotations

from .autodiff import axpy, sync_floats, vdot


def _first_stop(pending, stop) -> int | None:
    """Read the pending one-element Vars with a single sync; index of the first entry
    whose values satisfy ``stop``, or None."""
    values = sync_floats(*[v for entry in pending for v in entry[:-1]])
    width = len(pending[0]) - 1
    for j in range(len(pending)):
        if stop(*values[j * width:(j + 1) * width]):
            return j
    return None


def solve_cg(matvec, b, maxiter: int = 10, tol: float = 1e-10, check_every: int = 10):
    """Conjugate gradient for ``A x = b`` with A symmetric positive definite.

    x_0 = 0, r_0 = p_0 = b; per iteration alpha = r'r / p'Ap, x += alpha p,
    r -= alpha Ap, beta = r_new'r_new / r'r, p = r + beta p.

    With ``tol > 0`` the result is the iterate at which CG stops: the first iteration
    whose residual satisfies ||r|| < tol or whose direction has non-positive curvature
    p'Ap <= 0 (A not positive definite). The stop tests are read in batches: one host sync
    every ``check_every`` iterations and one at the end (the default, ``check_every =
    maxiter = 10``, syncs once); iterations run past a stop inside a batch are discarded, so
    the result does not depend on ``check_every``, only the wasted work does. ``tol = 0``:
    always ``maxiter`` iterations and no sync. Returns the last iterate (upstream returned
    the one before it on convergence).

    References
    ----------
    Hestenes M.R., Stiefel E., "Methods of conjugate gradients for solving linear systems",
    J. Res. Nat. Bur. Standards, 1952.
    """
    if check_every < 1:
        raise ValueError(f"solve_cg: check_every={check_every!r} must be >= 1")
    x = [r * 0 for r in b]
    r = list(b)
    p = list(b)
    rs = vdot(r, r)
    pending = []  # (r'r, p'Ap, iterate before the step) of iterations not yet tested

    def stop(rs_f, pap_f):
        return rs_f ** 0.5 < tol or pap_f <= 0

    for i in range(int(maxiter)):
        ap = matvec(p)
        pap = vdot(p, ap)
        if tol > 0:
            pending.append((rs, pap, x))
        alpha = rs / pap
        x = axpy(alpha, p, x)
        r = axpy(-alpha, ap, r)
        rs_new = vdot(r, r)
        p = axpy(rs_new / rs, p, r)
        rs = rs_new
        if pending and (len(pending) == check_every or i + 1 == maxiter):
            j = _first_stop(pending, stop)
            if j is not None:
                return pending[j][-1]
            pending = []
    return x


def solve_neumann(matvec, b, maxiter: int = 10, tol: float = 0.0, alpha: float = 1.0,
                  check_every: int = 10):
    """Truncated Neumann series: x = alpha * sum_{i=0}^{k} (I - alpha A)^i b ~ A^{-1} b.

    Converges when ||I - alpha A|| < 1 (alpha below 2 / lambda_max). With ``tol > 0`` the
    series stops after the first term whose norm is below ``tol``; the tests are read in
    batches of ``check_every`` terms (one host sync each, terms past the stop discarded,
    so the result does not depend on it). ``tol = 0``: always k terms, no sync.

    References
    ----------
    Lorraine J., Vicol P., Duvenaud D., "Optimizing millions of hyperparameters by implicit
    differentiation", AISTATS 2020.
    """
    if check_every < 1:
        raise ValueError(f"solve_neumann: check_every={check_every!r} must be >= 1")
    v = list(b)
    s = list(b)
    pending = []  # (newest term's squared norm, partial sum including it)
    for i in range(int(maxiter)):
        v = axpy(-alpha, matvec(v), v)
        s = [si + vi for si, vi in zip(s, v)]
        if tol > 0:
            pending.append((vdot(v, v), s))
            if len(pending) == check_every or i + 1 == maxiter:
                j = _first_stop(pending, lambda vv: vv ** 0.5 < tol)
                if j is not None:
                    s = pending[j][-1]
                    break
                pending = []
    return [si * alpha for si in s]
