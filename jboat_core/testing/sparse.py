"""Non-smooth and constrained bilevel problems with exact hyper-gradients (float64 NumPy
references), for PGD and the implicit chains.

Lasso (weighted or not) and elastic net, lower level
    min_w 1/(2n) ||X w - t||^2 + sum_i lam_i (rho |w_i| + (1 - rho)/2 w_i^2),
lam = exp(x) (one lambda: x of shape [1]; one per feature: x of shape [d]), rho = 1 for
the Lasso; upper level F(w) = ||X_v w - t_v||^2 / n_v (the validation mean squared error).
On the support S of w* (Bertrand et al., ICML 2020), with G = X'X/n:

    dw_S/dlam_j = -(G_SS + lam (1 - rho) I)^{-1} (rho s_S + (1 - rho) w_S) e_j,

so for one lambda dF/dx = lam <grad_S F, -(G_SS + ...)^{-1} (rho s_S + (1-rho) w_S)> and
for the weighted Lasso dF/dx_j = -lam_j s_j [G_SS^{-1} grad_S F]_j on S, 0 off it.

Constrained quadratics (non-negative least squares, simplex): lower level
    min_{w in C} 1/(2n) ||X w - t||^2 + 1/2 sum_i exp(x_i) w_i^2,
solved exactly by projected gradient then the KKT system on the active set; their
hyper-gradients are checked against central finite differences of that exact solution.
Importing this module imports Jittor.
"""

from __future__ import annotations

import numpy as np

from ..platform._jittor import jittor
from .problems import BilevelProblem, Vector

jt = jittor()


def _soft(z, t):
    return np.sign(z) * np.maximum(np.abs(z) - t, 0.0)


def _proj_simplex(z, r=1.0):
    u = np.sort(z)[::-1]
    css = np.cumsum(u)
    theta = np.max((css - r) / np.arange(1, len(z) + 1))
    return np.maximum(z - theta, 0.0)


def _fista(grad, prox, L, w0, iters, tol):
    """FISTA to ||w_{k+1} - w_k|| < tol (NumPy float64)."""
    w, z, s = w0.copy(), w0.copy(), 1.0
    for _ in range(iters):
        w_new = prox(z - grad(z) / L, 1.0 / L)
        s_new = (1 + np.sqrt(1 + 4 * s * s)) / 2
        z = w_new + (s - 1) / s_new * (w_new - w)
        if np.linalg.norm(w_new - w) < tol:
            return w_new
        w, s = w_new, s_new
    return w


class SparseProblem(BilevelProblem):
    """A PGD bilevel problem (``sparse_problem``) with its float64 references."""

    kind: str = "lasso"

    # -- data ----------------------------------------------------------------------
    def _d(self):
        D = self.np_data
        return D["X"], D["t"], D["Xv"], D["tv"], D["X"].shape[0]

    def lam(self, x=None):
        """lambda = exp(x) at x (default the current upper variable)."""
        x = self.x() if x is None else np.asarray(x, float)
        return np.exp(x)

    def lipschitz(self, x=None) -> float:
        """L, the Lipschitz constant of grad_y f (eta = 1/L is PGD's safe step)."""
        X, _, _, _, n = self._d()
        L = np.linalg.eigvalsh(X.T @ X / n).max()
        if self.kind in ("nnls", "simplex"):
            L += np.exp(self.x() if x is None else x).max()
        if self.kind == "enet":
            L += (self.lam(x) * (1 - self.np_data["rho"])).max()
        return float(L)

    def grad_F(self, w):
        """grad_w F = 2 X_v'(X_v w - t_v) / n_v."""
        _, _, Xv, tv, _ = self._d()
        return 2 * Xv.T @ (Xv @ w - tv) / len(tv)

    def F(self, w):
        """F(w) = ||X_v w - t_v||^2 / n_v, the validation mean squared error."""
        _, _, Xv, tv, _ = self._d()
        return float(np.mean((Xv @ w - tv) ** 2))

    # -- exact lower solution ------------------------------------------------------
    def solution(self, x=None, tol: float = 1e-13, iters: int = 200000):
        """w*(x): FISTA, then the optimality system solved exactly on the active set."""
        X, t, _, _, n = self._d()
        x = self.x() if x is None else np.asarray(x, float)
        lam, G, q = np.exp(x), X.T @ X / n, X.T @ t / n
        d = G.shape[0]
        L = self.lipschitz(x)
        if self.kind in ("lasso", "enet"):
            rho = self.np_data["rho"]
            lam_v = np.broadcast_to(lam, (d,))
            grad = lambda w: G @ w - q + lam_v * (1 - rho) * w  # noqa: E731
            prox = lambda z, s: _soft(z, s * lam_v * rho)  # noqa: E731
            w = _fista(grad, prox, L, np.zeros(d), iters, tol)
            S = np.abs(w) > 0
            s = np.sign(w[S])
            A = G[np.ix_(S, S)] + np.diag(lam_v[S] * (1 - rho))
            w = np.zeros(d)
            w[S] = np.linalg.solve(A, q[S] - lam_v[S] * rho * s)
            return w
        lam_v = np.broadcast_to(lam, (d,))
        grad = lambda w: G @ w - q + lam_v * w  # noqa: E731
        proj = (lambda z, s: np.maximum(z, 0.0)) if self.kind == "nnls" else (
            lambda z, s: _proj_simplex(z))
        w = _fista(grad, proj, L, np.full(d, 1.0 / d), iters, tol)
        S = w > 0
        A = G[np.ix_(S, S)] + np.diag(lam_v[S])
        w = np.zeros(d)
        if self.kind == "nnls":
            w[S] = np.linalg.solve(A, q[S])
            return w
        k = int(S.sum())  # KKT with sum w_S = 1: [A 1; 1' 0] [w; mu] = [q; 1]
        K = np.zeros((k + 1, k + 1))
        K[:k, :k], K[:k, k], K[k, :k] = A, 1.0, 1.0
        w[S] = np.linalg.solve(K, np.concatenate([q[S], [1.0]]))[:k]
        return w

    # -- exact hyper-gradients -----------------------------------------------------
    def exact(self, w=None):
        """dF(w*(x))/dx by the closed form on the support (Lasso, elastic net)."""
        X, _, _, _, n = self._d()
        w = self.solution() if w is None else w
        lam = self.lam()
        rho = self.np_data["rho"]
        d = len(w)
        lam_v = np.broadcast_to(lam, (d,))
        S = np.abs(w) > 0
        A = (X.T @ X / n)[np.ix_(S, S)] + np.diag(lam_v[S] * (1 - rho))
        u = np.linalg.solve(A, self.grad_F(w)[S])  # A symmetric
        dl = -(rho * np.sign(w[S]) + (1 - rho) * w[S])  # d(A w_S)/dlam_j, per j on S
        if lam.size == 1:
            return np.array([lam[0] * float(u @ dl)])
        g = np.zeros(d)
        g[S] = lam_v[S] * u * dl
        return g

    def finite_differences(self, h: float = 1e-6):
        """dF(w*(x))/dx by central differences of the exact solution."""
        x = self.x()
        g = np.zeros_like(x)
        for i in range(len(x)):
            e = np.zeros_like(x)
            e[i] = h
            g[i] = (self.F(self.solution(x + e)) - self.F(self.solution(x - e))) / (2 * h)
        return g


def sparse_problem(kind: str = "lasso", X=None, t=None, Xv=None, tv=None, x0=None,
                   y0=None, rho: float = 1.0, dtype: str = "float64", seed: int = 0,
                   n: int = 40, d: int = 8) -> SparseProblem:
    """A ``SparseProblem`` (``kind`` ``"lasso"``, ``"enet"`` (with ``rho``), ``"nnls"``,
    ``"simplex"``) on the given data, or Gaussian data from ``seed`` (n x d, a sparse
    truth); ``x0`` the upper variable (default log(0.1 lam_max) for the Lasso, zeros
    else; give one entry per feature for the weighted case), ``y0`` the lower start
    (default zeros)."""
    rng = np.random.RandomState(seed)
    if X is None:
        X = rng.randn(n, d)
        truth = np.zeros(d)
        truth[: max(1, d // 3)] = rng.randn(max(1, d // 3)) * 2
        t = X @ truth + 0.3 * rng.randn(n)
        Xv = rng.randn(n, d)
        tv = Xv @ truth + 0.3 * rng.randn(n)
    nn = X.shape[0]
    if x0 is None:
        lam_max = np.abs(X.T @ t).max() / nn
        x0 = [np.log(0.1 * lam_max)] if kind in ("lasso", "enet") else np.zeros(X.shape[1])
    x0 = np.atleast_1d(np.asarray(x0, float))
    y0 = np.zeros(X.shape[1]) if y0 is None else np.asarray(y0, float)
    c = 1.0 / (2 * nn)

    def ll_objective(feed, ul_model, ll_model, **kw):
        """f(x, w) = ||X w - t||^2 / (2n) (+ 1/2 sum e^{x_i} w_i^2 for nnls / simplex)."""
        pred, _ = ll_model(feed["A"], **kw)
        r = pred - feed["b"]
        out = (r * r).sum() * feed["c"]
        if kind in ("nnls", "simplex"):
            w = kw["params"][0] if kw.get("params") is not None else ll_model.w
            out = out + (jt.exp(ul_model()) * w * w).sum() * 0.5
        return out

    def ul_objective(feed, ul_model, ll_model, **kw):
        """F(w) = ||X_v w - t_v||^2 / n_v."""
        pred, _ = ll_model(feed["A"], **kw)
        r = pred - feed["b"]
        return (r * r).sum() * feed["c"]

    var = lambda a: jt.array(np.asarray(a, np.float64), dtype)  # noqa: E731
    prob = SparseProblem(Vector(y0, dtype), Vector(x0, dtype), ll_objective, ul_objective,
                         {"A": var(X), "b": var(t), "c": var([c])},
                         {"A": var(Xv), "b": var(tv), "c": var([1.0 / len(tv)])},
                         {"X": X, "t": t, "Xv": Xv, "tv": tv, "rho": rho})
    prob.kind = kind
    return prob


def pgd_config(kind: str, rho: float = 1.0) -> dict:
    """PGD's section for ``kind`` (the prox map and its options)."""
    if kind == "lasso":
        return {"prox": "l1"}
    if kind == "enet":
        return {"prox": "elastic_net", "options": {"l1_ratio": rho}}
    return {"prox": {"nnls": "nonneg"}.get(kind, kind), "strength": "constant"}
