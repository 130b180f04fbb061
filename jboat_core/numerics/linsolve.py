"""Linear solvers ``solve(matvec, b) -> x`` for implicit hyper-gradients (as in JAXopt's
``linear_solve`` and TorchOpt's ``linear_solve``), on lists of Jittor Vars.

``matvec`` must return detached Vars (see ``autodiff.linear_operator``), so the iterates
carry no graph and memory does not grow with the number of iterations.
"""

from __future__ import annotations

from .autodiff import axpy, constant, sync_floats, vdot


class _StopTests:
    """Stop tests of an iterative solver, read in batches: the one-element Vars of each
    iteration are kept and read with one host sync every ``check_every`` iterations and
    at the last one; the first iteration whose values satisfy ``stop`` wins, so the
    result does not depend on ``check_every`` (only the wasted work does)."""

    def __init__(self, solver: str, maxiter: int, check_every: int, stop):
        if check_every < 1:
            raise ValueError(f"{solver}: check_every={check_every!r} must be >= 1")
        self.maxiter, self.check_every, self.stop = int(maxiter), check_every, stop
        self.pending: list[tuple[tuple, object]] = []

    @property
    def one_batch(self) -> bool:
        """One batch would cover every iteration: the tests would be read once, after all
        the work, so the solver applies the same stops on the device instead (no sync)."""
        return self.check_every >= self.maxiter

    def add(self, i: int, values: tuple, result):
        """Record iteration ``i``'s test Vars and the result to return if it is the stop;
        return the stopping iteration's result once a batch is read, else None."""
        self.pending.append((values, result))
        if len(self.pending) < self.check_every and i + 1 < self.maxiter:
            return None
        floats = iter(sync_floats(*[v for vals, _ in self.pending for v in vals]))
        batch, self.pending = self.pending, []
        for vals, res in batch:
            if self.stop(*[next(floats) for _ in vals]):
                return res
        return None


def _safe_div(num, den, ok, zero):
    """num / den where ``ok`` (a one-element bool Var), else 0, without a host sync: the
    quotient is formed either way and ``ternary`` selects, so a 0/0 or x/0 where ``ok`` is
    false never reaches the result (``zero`` is a constant made once per solve; two ops)."""
    from .autodiff import jt
    return jt.ternary(ok, num / den, zero)


def solve_cg(matvec, b, maxiter: int = 10, tol: float = 1e-10, check_every: int = 10):
    """Conjugate gradient for ``A x = b`` with A symmetric positive definite.

    x_0 = 0, r_0 = p_0 = b; per iteration alpha = r'r / p'Ap, x += alpha p,
    r -= alpha Ap, beta = r_new'r_new / r'r, p = r + beta p.

    With ``tol > 0`` the result is the iterate at which CG stops: the first iteration
    whose residual satisfies ||r|| < tol or whose direction has non-positive curvature
    p'Ap <= 0 (A not positive definite). With ``check_every < maxiter`` the stop tests are
    read in batches: one host sync every ``check_every`` iterations and one at the end;
    iterations run past a stop inside a batch are discarded, so the result does not depend
    on ``check_every``, only the wasted work does. With ``check_every >= maxiter`` (the
    default, 10 = k) or ``tol = 0`` there is no sync: every iteration runs and the stops
    are applied on the device, from the first iteration with p'Ap <= 0 or r'r < tol^2
    (r'r = 0 for ``tol = 0``) on every step is zero, so x stays at the stopping iterate and
    iterations after the residual vanishes (or at non-positive curvature) never divide by
    zero (upstream, and jboat before, returned NaN there). Returns the last iterate
    (upstream returned the one before it on convergence).

    References
    ----------
    Hestenes M.R., Stiefel E., "Methods of conjugate gradients for solving linear systems",
    J. Res. Nat. Bur. Standards, 1952.
    """
    tests = _StopTests("solve_cg", maxiter, check_every,
                       lambda rs_f, pap_f: rs_f ** 0.5 < tol or pap_f <= 0)
    on_device = tol <= 0 or tests.one_batch
    floor = float(tol) ** 2 if tol > 0 else 0.0
    x = [r * 0 for r in b]
    r = list(b)
    p = list(b)
    rs = vdot(r, r)
    going = None  # one-element bool Var: no stop met so far (stops applied on the device)
    # Constants made once per solve: a Python number in an op is a new constant op (one
    # more kernel) every iteration.
    zero = rs * 0
    lowest = zero + floor
    for i in range(int(maxiter)):
        ap = matvec(p)
        pap = vdot(p, ap)
        x_before, rs_before = x, rs
        ok = (pap > zero) & ((rs >= lowest) if floor > 0 else (rs > zero))
        going = ok if going is None else going & ok
        alpha = _safe_div(rs, pap, going, zero)
        x = axpy(alpha, p, x)
        r = [ri - ai * alpha for ri, ai in zip(r, ap)]  # no negated alpha: one op fewer
        rs_new = vdot(r, r)
        p = axpy(_safe_div(rs_new, rs, going, zero), p, r)
        rs = rs_new
        if not on_device:
            stopped = tests.add(i, (rs_before, pap), x_before)
            if stopped is not None:
                return stopped
    return x


def solve_neumann(matvec, b, maxiter: int = 10, tol: float = 0.0, alpha: float = 1.0,
                  check_every: int = 10):
    """Truncated Neumann series: x = alpha * sum_{i=0}^{k} (I - alpha A)^i b ~ A^{-1} b.

    Converges when ||I - alpha A|| < 1 (alpha below 2 / lambda_max). With ``tol > 0`` the
    series stops after the first term whose norm is below ``tol``; with ``check_every <
    maxiter`` the tests are read in batches of ``check_every`` terms (one host sync each,
    terms past the stop discarded, so the result does not depend on it); with
    ``check_every >= maxiter`` every term is computed and the terms after the stop are
    multiplied by 0 on the device (no sync). ``tol = 0``: always k terms, no sync.

    References
    ----------
    Lorraine J., Vicol P., Duvenaud D., "Optimizing millions of hyperparameters by implicit
    differentiation", AISTATS 2020.
    """
    tests = _StopTests("solve_neumann", maxiter, check_every, lambda vv: vv ** 0.5 < tol)
    on_device = tol > 0 and tests.one_batch
    if on_device:
        going = vdot(b, b) * 0 + 1  # 1 while every term so far had norm >= tol, then 0
    v = list(b)
    s = list(b)
    for i in range(int(maxiter)):
        v = axpy(-alpha, matvec(v), v)
        if on_device:
            s = [si + vi * going for si, vi in zip(s, v)]
            going = going * (vdot(v, v) >= float(tol) ** 2).cast(going.dtype)
            continue
        s = [si + vi for si, vi in zip(s, v)]
        if tol > 0:
            stopped = tests.add(i, (vdot(v, v),), s)  # s includes the newest term
            if stopped is not None:
                s = stopped
                break
    return [si * constant(alpha, si) for si in s]


class BoundSolver:
    """A registered linear solver with its options: ``solve(matvec, b, rmatvec=None) -> x``
    (what ``implicit_step`` takes); ``spec`` is its ``LinearSolver`` declaration, so that an
    implicit operator refuses a solver that needs symmetry on a non-symmetric system."""

    def __init__(self, spec, function, options: dict):
        import inspect

        self.spec, self.function = spec, function
        params = inspect.signature(function).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            self.options = dict(options)
        else:  # the options this solver takes (CG's check_every means nothing to GMRES)
            self.options = {k: v for k, v in options.items() if k in params}

    def __call__(self, matvec, b, rmatvec=None):
        return self.function(matvec, b, rmatvec=rmatvec, **self.options)


def linear_solver(op, name: str, **options) -> BoundSolver:
    """The linear solver registered as ``name`` (``jboat_core.contract.LinearSolver``,
    found in ``op.runtime``'s registry), bound to ``options`` (``maxiter``, ``tol``, and
    whatever else its function takes; options it does not take are dropped).

    Example: ``implicit_step(self, state, linear_solver(self, "gmres", maxiter=50, tol=1e-10))``.
    """
    from ..contract.components import find_component

    spec = find_component(op.runtime, "linear_solver", name)
    return BoundSolver(spec, spec.load(), options)
