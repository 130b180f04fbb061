"""Float64 targets of the composition matrix, computed without jboat's machinery.

What an operator's hyper-gradient must equal, by what it declares it computes, on a
problem of ``jboat_core.testing.models`` (any lower model):

* ``unrolled`` (RAD, FMD, and PTT / RGT before them): central differences in float64 of
  F(x, y_t(x)), y_t the t-th iterate of the lower optimizer started at y_0 (t = K, or
  k* = 1 + argmax_k F(y_k) over the differentiable steps with PTT; with RGT the first T
  steps are taken at the unperturbed x, so nothing flows through them);
* ``initialisation`` (IAD; MAML): the same differences with respect to y_0 = theta; after
  FOA (stopped inner gradients) grad_y F(y_K);
* ``implicit`` (CG): the implicit-function-theorem hyper-gradient at the evaluated point,
  grad_x F - (d2 phi/dx dy)^T H^-1 grad_y F with the Hessian H of the lower objective the
  chain differentiates (f, or GDA's phi at the point's alpha) built column by column and
  solved densely; NS: its truncated series alpha sum_{i<=k} (I - alpha H)^i grad_y F,
  formed densely; IGA and FD (DARTS): their closed forms at that point;
* DM: two outer iterations of its primal-dual formulas.

Independent of jboat: the lower optimizer's steps (SGD, SGD with momentum, Adam: the
formulas of ``jittor.optim``) are taken in NumPy float64; Jittor is used in float64 only
for gradients of the objectives at given points (``jt.grad``), on its own float64 copy of
the models, with the lower model's variables substituted by a 15-line helper of this
module (not jboat's functional model). Importing this module imports Jittor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..platform._jittor import jittor
from .models import MatrixProblem, trainable

jt = jittor()

#: Central-difference step (relative to max(1, |x_i|)): truncation ~ h^2, rounding
#: ~ 1e-16 / h, both below 1e-9 relative for these problems.
FD_STEP = 1e-5


@dataclass(frozen=True)
class Dynamics:
    """The lower dynamics a composition runs, as the reference reproduces them.

    Attributes
    ----------
    K : int
        Inner steps.
    optimizer : str
        ``"sgd"``, ``"momentum"`` (SGD, momentum 0.9) or ``"adam"``.
    lr : float
    truncate : int
        RGT's T (0: none).
    pessimistic : bool
        PTT: evaluate at y_{k*}.
    gda : tuple or None
        GDA's ``(alpha_init, alpha_decay)``: the steps descend phi_{alpha_k}.
    """

    K: int
    optimizer: str = "sgd"
    lr: float = 0.05
    truncate: int = 0
    pessimistic: bool = False
    gda: tuple | None = None


class _Swap:
    """``module`` with ``values`` (Vars, ``trainable`` order) in place of its trainable
    parameters, for one call."""

    def __init__(self, module):
        self.module = module
        self.places = []
        params = {id(p): i for i, p in enumerate(trainable(module))}

        def visit(parents, key, mod, name):
            """Record where each trainable Var sits in ``mod``."""
            store = mod.__dict__
            for k, v in list(store.items()):
                if isinstance(v, jt.Var) and id(v) in params:
                    self.places.append((store, k, params[id(v)]))

        module.dfs([], None, visit, None)
        self.saved = [(store, k, store[k]) for store, k, _ in self.places]

    def __call__(self, values, *args):
        for store, k, i in self.places:
            store[k] = values[i]
        try:
            return self.module(*args)
        finally:
            for store, k, v in self.saved:
                store[k] = v


class _Lower:
    """The reference's stand-in for the functional lower model: ``ll(a, params=ys)``."""

    def __init__(self, module):
        self.swap = _Swap(module)

    def __call__(self, a, params=None, **kw):
        return self.swap(params, a)


class _Upper:
    """The stand-in for the upper model: ``ul()`` returns the current x."""

    def __init__(self, x):
        self.x = x

    def __call__(self):
        return self.x


def _var(a):
    return jt.array(np.asarray(a, dtype=np.float64), "float64")


@dataclass
class Reference:
    """Float64 evaluations of one problem at any (x, y): its own float64 models, feeds and
    objectives, with values rounded as the run's ``dtype`` rounds them.

    Parameters
    ----------
    problem : MatrixProblem
    dtype : str
        The dtype of the run being checked (its initial values and data are rounded to
        it, then computed with in float64).
    y0 : list of numpy.ndarray, optional
        Start of the lower loop (default the problem's initial values).
    """

    problem: MatrixProblem
    dtype: str = "float64"
    y0: list | None = None
    built: object = field(init=False, repr=False)

    def __post_init__(self):
        p = self.problem
        rnd = lambda a: np.asarray(np.asarray(a, dtype=self.dtype), np.float64)  # noqa: E731
        self.rounded = MatrixProblem(p.model, p.kind, {k: rnd(v) for k, v in p.data.items()},
                                     [rnd(v) for v in (self.y0 or p.init)],
                                     None if p.x0 is None else rnd(p.x0), p.proximal)
        b = self.built = self.rounded.build("float64")
        self.ll = _Lower(b.ll_model)
        self.meta = p.kind == "meta"
        self.theta_vars = trainable(b.ll_model) if self.meta else None

    # -- the upper variables x ------------------------------------------------------------
    @property
    def x0(self) -> np.ndarray:
        """The upper variables, flat: the log-weights, or theta (meta)."""
        if self.meta:
            return np.concatenate([np.ravel(v) for v in self.rounded.init])
        return self.rounded.x0.copy()

    def _set_x(self, x: np.ndarray):
        """Make the objectives see x (theta's values for meta: the anchor of f)."""
        if self.meta:
            for v, a in zip(self.theta_vars, self.split(x)):
                v.update(_var(a))
            return None
        return _var(x)

    def split(self, flat) -> list:
        """A flat vector as arrays of the lower variables' shapes."""
        shapes = [np.shape(v) for v in self.rounded.init]
        out, i = [], 0
        for s in shapes:
            n = int(np.prod(s))
            out.append(np.asarray(flat[i:i + n]).reshape(s))
            i += n
        return out

    # -- objectives -----------------------------------------------------------------------
    def _ul(self, xv):
        return _Upper(xv) if xv is not None else None

    def f(self, xv, ys, alpha=None):
        """f (or phi_alpha) at Vars ``ys`` with x as set by ``_set_x`` (Var ``xv``)."""
        b = self.built
        if alpha is None:
            return b.ll_objective(b.ll_feed, self._ul(xv), self.ll, params=ys)
        return b.gda_loss({**b.ll_feed, "alpha": alpha}, b.ul_feed, self._ul(xv), self.ll,
                          params=ys)

    def F(self, xv, ys):
        """F at Vars ``ys`` (x as set by ``_set_x``)."""
        b = self.built
        return b.ul_objective(b.ul_feed, self._ul(xv), self.ll, params=ys)

    def grad_f(self, x, y, alpha=None) -> list:
        """grad_y f(x, y) (float64 arrays)."""
        xv = self._set_x(x)
        ys = [_var(a) for a in y]
        g = jt.grad(self.f(xv, ys, alpha), ys)
        return [v.numpy() for v in g]

    def value_F(self, x, y) -> float:
        """F(x, y) as a float (arrays in)."""
        return float(self.F(self._set_x(x), [_var(a) for a in y]).item())

    # -- the lower dynamics ---------------------------------------------------------------
    def trajectory(self, x, dyn: Dynamics, x_early=None, y0=None) -> list:
        """y_0..y_K under ``dyn`` at upper values ``x`` (``x_early`` for the first
        ``dyn.truncate`` steps: RGT's constants), NumPy float64."""
        y = [np.array(a, dtype=np.float64) for a in (y0 if y0 is not None else self.y_start(x))]
        state = _OptState(dyn.optimizer, dyn.lr, y)
        ys = [y]
        for k in range(dyn.K):
            at = x_early if (x_early is not None and k < dyn.truncate) else x
            alpha = dyn.gda[0] * dyn.gda[1] ** k if dyn.gda else None
            y = state.step(y, self.grad_f(at, y, alpha))
            ys.append(y)
        return ys

    def y_start(self, x) -> list:
        """y_0: theta itself (meta), else the problem's initial lower values."""
        return self.split(x) if self.meta else [a.copy() for a in self.rounded.init]

    def k_star(self, x, dyn: Dynamics) -> int:
        """PTT's k* = T + 1 + argmax of F(y_k), k = T+1..K (1-based)."""
        ys = self.trajectory(x, dyn)
        values = [self.value_F(x, ys[k]) for k in range(dyn.truncate + 1, dyn.K + 1)]
        return dyn.truncate + 1 + int(np.argmax(values))

    def point(self, x, dyn: Dynamics) -> tuple[int, list]:
        """(t, y_t): the point the chain evaluates at (y_K, or y_{k*} with PTT)."""
        t = self.k_star(x, dyn) if dyn.pessimistic else dyn.K
        return t, self.trajectory(x, dyn)[t]

    def alpha_at(self, t: int, dyn: Dynamics):
        """The GDA weight of the objective an implicit operator differentiates at y_t."""
        return dyn.gda[0] * dyn.gda[1] ** max(t - 1, 0) if dyn.gda else None

    # -- targets --------------------------------------------------------------------------
    def unrolled(self, dyn: Dynamics, t: int | None = None, step: float = FD_STEP) -> np.ndarray:
        """d F(x, y_t(x)) / dx by central differences of ``step``, flat (t: given, e.g. the
        run's k*; else k* or K as ``point`` decides)."""
        x0 = self.x0
        if t is None:
            t = self.k_star(x0, dyn) if dyn.pessimistic else dyn.K

        def value(x):
            """F(x, y_t(x))."""
            early = x0 if dyn.truncate else None
            y0 = self.y_start(x0 if dyn.truncate else x)
            return self.value_F(x, self.trajectory(x, dyn, early, y0)[t])

        return central_differences(value, x0, step)

    def first_order_maml(self, dyn: Dynamics, at=None) -> np.ndarray:
        """FOA + IAD: grad_y F(y_t) (d y_t / d y_0 = I with stopped inner gradients; 0
        after RGT, whose constant steps cut y_0 off); ``at``: the point ``(t, y_t)``."""
        x0 = self.x0
        if dyn.truncate:
            return np.zeros_like(x0)
        _, y = at or self.point(x0, dyn)
        xv = self._set_x(x0)
        ys = [_var(a) for a in y]
        return _flat(jt.grad(self.F(xv, ys), ys))

    def second_order(self, x, y, alpha=None):
        """(H, M, b, c) at (x, y): the Hessian of f (or phi_alpha) in y, the mixed block
        d2/dx dy (rows: y), grad_y F and grad_x F, dense float64."""
        xv = self._set_x(x)
        ys = [_var(a) for a in y]
        xs = self.theta_vars if self.meta else [xv]
        fval = self.f(xv, ys, alpha)
        gy = jt.grad(fval, ys)
        n = sum(int(np.prod(a.shape)) for a in y)
        H, M = np.zeros((n, n)), np.zeros((n, sum(int(v.numel()) for v in xs)))
        basis = np.eye(n)
        for i in range(n):
            e = [_var(a) for a in self.split_y(basis[i], y)]
            s = sum([(g * u).sum() for g, u in zip(gy, e)][1:], (gy[0] * e[0]).sum())
            cols = jt.grad(s, ys + xs)
            H[:, i] = _flat(cols[:len(ys)])
            M[i, :] = _flat(cols[len(ys):])
        Fv = self.F(xv, ys)
        dF = jt.grad(Fv, ys + xs)
        return H, M, _flat(dF[:len(ys)]), _flat(dF[len(ys):])

    @staticmethod
    def split_y(flat, like) -> list:
        """A flat vector as arrays shaped like ``like``."""
        out, i = [], 0
        for a in like:
            n = int(np.prod(np.shape(a)))
            out.append(np.asarray(flat[i:i + n]).reshape(np.shape(a)))
            i += n
        return out

    def implicit(self, dyn: Dynamics, solver: str = "exact", alpha_ns: float | None = None,
                 terms: int = 0, damping: float = 0.0, at=None) -> np.ndarray:
        """The implicit hyper-gradient at the evaluated point (``at``: ``(t, y)``, e.g. the
        run's own; default the reference's): ``solver="exact"`` (dense solve of
        (H + damping I) v = grad_y F), or ``"neumann"`` (NS's series with ``alpha_ns`` and
        ``terms`` terms after the first)."""
        x0 = self.x0
        t, y = at or self.point(x0, dyn)
        H, M, b, c = self.second_order(x0, y, self.alpha_at(t, dyn))
        A = H + damping * np.eye(len(b))
        if solver == "exact":
            v = np.linalg.solve(A, b)
        else:
            term, v = b.copy(), b.copy()
            for _ in range(terms):
                term = term - alpha_ns * (A @ term)
                v = v + term
            v = alpha_ns * v
        return c - M.T @ v

    def iga(self, dyn: Dynamics, at=None) -> np.ndarray:
        """IGA's closed form: grad_x F - (<grad_y F, grad_y f>/|grad_y f|^2) grad_x f."""
        x0 = self.x0
        t, y = at or self.point(x0, dyn)
        xv = self._set_x(x0)
        ys = [_var(a) for a in y]
        xs = self.theta_vars if self.meta else [xv]
        df = jt.grad(self.f(xv, ys, self.alpha_at(t, dyn)), ys + xs)
        dF = jt.grad(self.F(xv, ys), ys + xs)
        fy, fx = _flat(df[:len(ys)]), _flat(df[len(ys):])
        Fy, Fx = _flat(dF[:len(ys)]), _flat(dF[len(ys):])
        lam = -(Fy @ fy) / max(fy @ fy, 1e-30)
        return Fx + lam * fx

    def darts(self, dyn: Dynamics, r: float, xi: float, at=None) -> np.ndarray:
        """FD's closed form (DARTS): grad_x F(y') - xi [grad_x f(w + e v) - grad_x f(w - e
        v)] / (2 e), v = grad_y F(y'), e = r / |v|, w = y_0, y' the evaluated point."""
        x0 = self.x0
        t, y = at or self.point(x0, dyn)
        w = self.y_start(x0)
        xv = self._set_x(x0)
        ys = [_var(a) for a in y]
        xs = self.theta_vars if self.meta else [xv]
        dF = jt.grad(self.F(xv, ys), ys + xs)
        v, gx = [a.numpy() for a in dF[:len(ys)]], _flat(dF[len(ys):])
        eps = r / max(np.sqrt(sum(float((a * a).sum()) for a in v)), 1e-30)
        alpha = self.alpha_at(t, dyn)

        def grad_x_f(sign):
            """grad_x f at w + sign e v."""
            point = [_var(wi + sign * eps * vi) for wi, vi in zip(w, v)]
            return _flat(jt.grad(self.f(xv, point, alpha), xs))

        return gx - xi * (grad_x_f(1.0) - grad_x_f(-1.0)) / (2 * eps)

    def converged(self, x=None) -> list:
        """A lower minimiser with |grad_y f(x, y)| < 1e-9: L-BFGS from y_0 (SciPy), then
        Newton steps on the dense Hessian while it is positive definite and the gradient
        shrinks (float64)."""
        from scipy.optimize import minimize

        x = self.x0 if x is None else x
        like = self.y_start(x)
        xv = self._set_x(x)

        def fun(flat):
            """(f, grad_y f) at a flat y, for SciPy."""
            ys = [_var(a) for a in self.split_y(flat, like)]
            value = self.f(xv, ys)
            return float(value.item()), _flat(jt.grad(value, ys))

        flat = np.concatenate([np.ravel(a) for a in like])
        flat = minimize(fun, flat, jac=True, method="L-BFGS-B",
                        options={"maxiter": 20000, "gtol": 1e-11, "ftol": 0.0}).x
        for _ in range(10):
            g = fun(flat)[1]
            if np.linalg.norm(g) < 1e-12:
                break
            H, *_ = self.second_order(x, self.split_y(flat, like))
            if np.linalg.eigvalsh((H + H.T) / 2).min() <= 0:
                break
            new = flat - np.linalg.solve(H, g)
            if np.linalg.norm(fun(new)[1]) >= np.linalg.norm(g):
                break
            flat = new
        if np.linalg.norm(fun(flat)[1]) > 1e-9:
            raise RuntimeError(f"the lower level did not converge: |grad f| = "
                               f"{np.linalg.norm(fun(flat)[1]):.2e}")
        return self.split_y(flat, like)


def _flat(vs) -> np.ndarray:
    return np.concatenate([np.ravel(v.numpy()) for v in vs])


def central_differences(value, x0: np.ndarray, step: float = FD_STEP) -> np.ndarray:
    """(value(x0 + h e_i) - value(x0 - h e_i)) / 2h for every coordinate i."""
    g = np.zeros_like(x0)
    for i in range(len(x0)):
        h = step * max(1.0, abs(x0[i]))
        e = np.zeros_like(x0)
        e[i] = h
        g[i] = (value(x0 + e) - value(x0 - e)) / (2 * h)
    return g


class _OptState:
    """The lower optimizer's update, as ``jittor.optim`` defines it, in NumPy float64."""

    MOMENTUM, BETAS, EPS = 0.9, (0.9, 0.999), 1e-8

    def __init__(self, kind: str, lr: float, y: list):
        self.kind, self.lr, self.n = kind, lr, 0
        self.v = [np.zeros_like(a) for a in y]
        self.m = [np.zeros_like(a) for a in y]

    def step(self, y: list, g: list) -> list:
        """The next iterate from y and the gradient g."""
        self.n += 1
        if self.kind == "sgd":
            return [a - self.lr * b for a, b in zip(y, g)]
        if self.kind == "momentum":
            self.v = [self.MOMENTUM * v + b for v, b in zip(self.v, g)]
            return [a - self.lr * v for a, v in zip(y, self.v)]
        b0, b1 = self.BETAS
        self.m = [b0 * m + (1 - b0) * b for m, b in zip(self.m, g)]
        self.v = [b1 * v + (1 - b1) * b * b for v, b in zip(self.v, g)]
        size = self.lr * np.sqrt(1 - b1 ** self.n) / (1 - b0 ** self.n)
        return [a - m * size / (np.sqrt(v) + self.EPS) for a, m, v in zip(y, self.m, self.v)]
