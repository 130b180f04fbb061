"""Bilevel problems with exact hyper-gradients (float64 NumPy references).

Ridge: f(x, y) = ||A1 y - b1||^2 / (2n) + 1/2 sum_i exp(x_i) y_i^2,  F(y) = ||A2 y - b2||^2/(2n)
    H = A1'A1/n + diag(e^x),  d2f/dxdy = diag(e^x * y),  y* = H^-1 A1'b1/n,
    IFT: g = -(e^x * y*) * H^-1 grad F(y*).
Weighted logistic: f(x, w) = 1/n sum_i sigmoid(x_i) softplus(-t_i a_i'w) + mu/2 ||w||^2,
    F(w) = mean_j softplus(-s_j c_j'w), reference w* by Newton to ||grad|| < 1e-10.
Importing this module imports Jittor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..numerics.autodiff import constant
from ..platform._jittor import jittor

jt = jittor()


def softplus(z):
    """log(1 + exp(z)) for Jittor Vars, smooth everywhere (``jittor.nn.softplus``, linear
    above 20). The max/abs form has a kink at z = 0 where Jittor's subgradient is wrong."""
    return jt.nn.softplus(z)


def _np_softplus(z):
    """log(1 + exp(z)) in float64, stable for large |z|."""
    return np.logaddexp(0.0, z)


def _np_sigmoid(z):
    """1 / (1 + exp(-z)) in float64, stable for large |z|."""
    return 0.5 * (1 + np.tanh(0.5 * z))


class Vector(jt.nn.Module):
    """A module holding one parameter vector ``w`` (of ``dtype``); ``execute(A)`` returns
    (A w, w'w)."""

    def __init__(self, value, dtype: str = "float32"):
        self.w = jt.array(np.asarray(value, dtype=np.float64), dtype)

    def execute(self, A=None):
        """``w`` alone, or ``(A w, w'w)`` for a matrix ``A`` (the lower models' forward)."""
        if A is None:
            return self.w
        return (A * self.w).sum(1), (self.w * self.w).sum()


@dataclass
class BilevelProblem:
    """Everything an operator needs, plus float64 references.

    Attributes
    ----------
    ll_model, ul_model : Vector
        Lower model (its ``w`` is y) and upper model (its ``w`` is x).
    ll_objective, ul_objective : callable
        f and F in jboat's signature ``(feed, ul_model, ll_model, **kw)``.
    ll_feed, ul_feed : dict
        The feeds (Vars of the problem's dtype, float32 by default).
    np_data : dict
        The same data in float64 NumPy, for the references.
    """

    ll_model: object
    ul_model: object
    ll_objective: object
    ul_objective: object
    ll_feed: dict
    ul_feed: dict
    np_data: dict = field(default_factory=dict)

    @property
    def ll_var(self):
        """The lower variables (``[ll_model.w]``)."""
        return list(self.ll_model.parameters())

    @property
    def ul_var(self):
        """The upper variables (``[ul_model.w]``)."""
        return list(self.ul_model.parameters())

    def x(self):
        """The current upper variable x, as float64."""
        return self.ul_model.w.numpy().astype(np.float64)

    def y0(self):
        """The current lower variable (y_0 of the next inner loop), as float64."""
        return self.ll_model.w.numpy().astype(np.float64)


# ---------------------------------------------------------------- ridge ---------------
def ridge_problem(seed: int = 0, d: int = 5, n: int = 20, y0=None, x0=None,
                  dtype: str = "float32") -> "Ridge":
    """The ridge problem of the module docstring: ``d`` features, ``n`` examples per level,
    Gaussian data from ``seed``; x_0 = 0.1 N(0, I) and y_0 = N(0, I) unless given (e.g.
    ``y0=ridge_problem().solution()`` starts the lower level at y*(x)). Same ``seed``,
    same problem. ``dtype``: of every Var (the objectives compute in it exactly: numbers
    that float32 does not hold go through ``numerics.constant``)."""
    rng = np.random.RandomState(seed)
    A1, b1 = rng.randn(n, d), rng.randn(n)
    A2, b2 = rng.randn(n, d), rng.randn(n)
    x = 0.1 * rng.randn(d) if x0 is None else np.asarray(x0, float)
    y = rng.randn(d) if y0 is None else np.asarray(y0, float)

    def ll_objective(feed, ul_model, ll_model, **kw):
        """f(x, y) = ||A1 y - b1||^2 / (2n) + 1/2 sum_i e^{x_i} y_i^2."""
        pred, _ = ll_model(feed["A"], **kw)
        w = kw["params"][0] if kw.get("params") is not None else ll_model.w
        return ((pred - feed["b"]) ** 2).sum() / (2 * n) + (jt.exp(ul_model()) * w * w).sum() * 0.5

    def ul_objective(feed, ul_model, ll_model, **kw):
        """F(y) = ||A2 y - b2||^2 / (2n)."""
        pred, _ = ll_model(feed["A"], **kw)
        return ((pred - feed["b"]) ** 2).sum() / (2 * n)

    var = lambda a: jt.array(a, dtype)  # noqa: E731
    return Ridge(Vector(y, dtype), Vector(x, dtype), ll_objective, ul_objective,
                 {"A": var(A1), "b": var(b1)}, {"A": var(A2), "b": var(b2)},
                 {"A1": A1, "b1": b1, "A2": A2, "b2": b2, "n": n})


class Ridge(BilevelProblem):
    """Ridge regression with per-feature L2 weights exp(x)."""

    def hessian(self, x=None):
        """H = d2f/dy2 = A1'A1/n + diag(e^x) (independent of y), at x (default current)."""
        D = self.np_data
        x = self.x() if x is None else x
        return D["A1"].T @ D["A1"] / D["n"] + np.diag(np.exp(x))

    def grad_f(self, y, x=None):
        """grad_y f(x, y) = A1'(A1 y - b1)/n + e^x * y."""
        D = self.np_data
        x = self.x() if x is None else x
        return D["A1"].T @ (D["A1"] @ y - D["b1"]) / D["n"] + np.exp(x) * y

    def grad_F(self, y):
        """grad_y F(y) = A2'(A2 y - b2)/n (F does not depend on x)."""
        D = self.np_data
        return D["A2"].T @ (D["A2"] @ y - D["b2"]) / D["n"]

    def F(self, y):
        """F(y) = ||A2 y - b2||^2 / (2n)."""
        D = self.np_data
        return 0.5 * np.sum((D["A2"] @ y - D["b2"]) ** 2) / D["n"]

    def solution(self, x=None):
        """y*(x) = H^-1 A1'b1/n, the exact lower solution."""
        D = self.np_data
        return np.linalg.solve(self.hessian(x), D["A1"].T @ D["b1"] / D["n"])

    def exact(self, y=None):
        """The implicit (IFT) hyper-gradient evaluated at the lower point y (default
        y*): g = -(e^x * y) * H^-1 grad F(y), i.e. grad_x F - d2f/dxdy H^-1 grad_y F with
        the Hessian solved exactly. What CG/NS approximate (at y_K)."""
        x = self.x()
        y = self.solution() if y is None else y
        return -(np.exp(x) * y) * np.linalg.solve(self.hessian(), self.grad_F(y))

    def trajectory(self, K: int, lr: float, truncate: int = 0):
        """SGD iterates y_0..y_K and the forward-mode Jacobians dy_k/dx (J_k = 0 up to the
        truncation point)."""
        x, H = self.x(), self.hessian()
        y, J = self.y0(), np.zeros((len(self.y0()), len(x)))
        ys, Js = [y], [J]
        for k in range(K):
            J = (np.eye(len(y)) - lr * H) @ J - lr * np.diag(np.exp(x) * y)
            if k < truncate:
                J = np.zeros_like(J)
            y = y - lr * self.grad_f(y)
            ys.append(y)
            Js.append(J)
        return ys, Js

    def unrolled(self, K: int, lr: float, at: int | None = None, truncate: int = 0):
        """dF(y_at(x))/dx through SGD steps (RAD/PTT/RGT reference)."""
        ys, Js = self.trajectory(K, lr, truncate)
        at = K if at is None else at
        return Js[at].T @ self.grad_F(ys[at])

    def dF_dy0(self, K: int, lr: float):
        """dF(y_K)/dy_0 through K SGD steps (IAD/MAML reference)."""
        ys, _ = self.trajectory(K, lr)
        M = np.linalg.matrix_power(np.eye(len(ys[0])) - lr * self.hessian(), K)
        return M.T @ self.grad_F(ys[K])


# ------------------------------------------------------------- logistic ---------------
def logistic_problem(seed: int = 1, d: int = 4, n: int = 24, m: int = 30,
                     mu: float = 0.1, dtype: str = "float32") -> "Logistic":
    """The weighted logistic problem of the module docstring: ``n`` lower and ``m`` upper
    examples of ``d`` features, one weight sigmoid(x_i) per lower example, L2 weight
    ``mu``; the lower model starts at w*(x) (rounded to ``dtype``, every Var's)."""
    rng = np.random.RandomState(seed)
    A, C = rng.randn(n, d), rng.randn(m, d)
    w_true = rng.randn(d)
    t = np.sign(A @ w_true + 0.5 * rng.randn(n))
    s = np.sign(C @ w_true + 0.5 * rng.randn(m))
    x = rng.randn(n)
    prob = Logistic(None, None, None, None, {}, {},
                    {"A": A, "t": t, "C": C, "s": s, "n": n, "m": m, "mu": mu, "x": x})
    w_star = prob.solution()

    def ll_objective(feed, ul_model, ll_model, **kw):
        """f(x, w) = 1/n sum_i sigmoid(x_i) softplus(-t_i a_i'w) + mu/2 ||w||^2."""
        z, sq = ll_model(feed["A"], **kw)
        return ((jt.sigmoid(ul_model()) * softplus(-feed["t"] * z)).sum() / n
                + sq * constant(0.5 * mu, sq))

    def ul_objective(feed, ul_model, ll_model, **kw):
        """F(w) = mean_j softplus(-s_j c_j'w)."""
        z, _ = ll_model(feed["A"], **kw)
        return softplus(-feed["t"] * z).mean()

    var = lambda a: jt.array(np.asarray(a, dtype=np.float64), dtype)  # noqa: E731
    prob.ll_model, prob.ul_model = Vector(w_star, dtype), Vector(x, dtype)
    prob.ll_objective, prob.ul_objective = ll_objective, ul_objective
    prob.ll_feed = {"A": var(A), "t": var(t)}
    prob.ul_feed = {"A": var(C), "t": var(s)}
    return prob


class Logistic(BilevelProblem):
    """Logistic regression with per-example weights sigmoid(x); y_0 = w* (float32)."""

    def _parts(self, w):
        """(data, margins t * A w, sigmoid(x), sigmoid(-margins))."""
        D = self.np_data
        z = D["t"] * (D["A"] @ w)
        return D, z, _np_sigmoid(D["x"]), _np_sigmoid(-z)

    def grad_f(self, w):
        """grad_w f(x, w)."""
        D, z, sx, sm = self._parts(w)
        return -(D["A"].T @ (sx * D["t"] * sm)) / D["n"] + D["mu"] * w

    def hessian(self, w):
        """d2f/dw2 at w."""
        D, z, sx, sm = self._parts(w)
        return (D["A"].T * (sx * sm * (1 - sm))) @ D["A"] / D["n"] + D["mu"] * np.eye(len(w))

    def grad_F(self, w):
        """grad_w F(w)."""
        D = self.np_data
        z = D["s"] * (D["C"] @ w)
        return -(D["C"].T @ (D["s"] * _np_sigmoid(-z))) / D["m"]

    def solution(self, tol: float = 1e-10):
        """w*(x) by Newton's method to ||grad f|| < ``tol``."""
        w = np.zeros(self.np_data["A"].shape[1])
        for _ in range(100):
            g = self.grad_f(w)
            if np.linalg.norm(g) < tol:
                break
            w = w - np.linalg.solve(self.hessian(w), g)
        assert np.linalg.norm(self.grad_f(w)) < tol, "Newton did not converge"
        return w

    def exact(self):
        """The IFT hyper-gradient at w*(x) (float64)."""
        D = self.np_data
        w = self.solution()
        _, z, sx, sm = self._parts(w)
        dl = -(D["A"] * (D["t"] * sm)[:, None])          # rows: grad_w loss_i
        v = np.linalg.solve(self.hessian(w), self.grad_F(w))
        return -(sx * (1 - sx)) / D["n"] * (dl @ v)


# -- mean objectives (data-parallel tests and benchmarks) -------------------------------
def mean_ridge_feeds(n: int, d: int, rng, scale: float = 1.0) -> tuple[dict, dict]:
    """Lower and upper feeds ``{"A": (n, d), "b": (n,)}`` of Gaussian data (A times
    ``scale``), as float32 Vars."""
    def f32(a):
        return jt.array(a.astype(np.float32))

    return ({"A": f32(rng.randn(n, d) * scale), "b": f32(rng.randn(n))},
            {"A": f32(rng.randn(n, d) * scale), "b": f32(rng.randn(n))})


def mean_mse(feed, ul, ll, **kw):
    r"""Mean squared error :math:`\frac{1}{2n}\|A y - b\|^2`: a mean over the examples, so
    N processes on equal shards compute the same value as one on the union."""
    pred, _ = ll(feed["A"], **kw)
    return ((pred - feed["b"]) ** 2).mean() * 0.5


def mean_ridge(feed, ul, ll, **kw):
    r"""Lower objective with per-feature penalties,
    :math:`\frac{1}{2n}\|A y - b\|^2 + \frac12 \sum_i e^{x_i} y_i^2`."""
    y = kw.get("params") or [ll.w]
    return mean_mse(feed, ul, ll, **kw) + (ul().exp() * y[0] * y[0]).sum() * 0.5


def mean_upper(feed, ul, ll, **kw):
    r"""Upper objective :math:`\frac{1}{2n}\|A y - b\|^2 + 0.05 \|x\|^2` (finite x*)."""
    return mean_mse(feed, ul, ll, **kw) + (ul() * ul()).sum() * 0.05


def shifted_quadratic(mu: float, lam: float):
    r"""``(f, F)`` of the finite-sum quadratic bilevel problem of the stochastic solvers'
    tests and benchmark, both means over the examples:

    .. math:: f(x, y) = \frac{1}{2n}\sum_i (a_i^\top y - b_i - e_i^\top x)^2
              + \frac{\mu}{2}\|y\|^2,\qquad
              F(x, y) = \frac{1}{2m}\sum_j (c_j^\top y - c_{0j})^2 + \frac{\lambda}{2}\|x\|^2

    Feeds: lower ``{"A", "b", "E"}``, upper ``{"C", "c"}``; the lower model returns
    ``(A y, |y|^2)`` (``Vector``), the upper model x.
    """
    def f(feed, ul, ll, **kw):
        """The lower objective f(x, y)."""
        pred, sq = ll(feed["A"], **kw)
        r = pred - feed["b"] - (feed["E"] * ul()).sum(1)
        return (r * r).mean() * 0.5 + sq * constant(0.5 * mu, sq)

    def F(feed, ul, ll, **kw):
        """The upper objective F(x, y)."""
        pred, _ = ll(feed["C"], **kw)
        r = pred - feed["c"]
        return (r * r).mean() * 0.5 + (ul() * ul()).sum() * constant(0.5 * lam, r)

    return f, F
