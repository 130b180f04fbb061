"""Benchmark problems as plain NumPy data, with float64 reference hyper-gradients.

The data are drawn exactly as :mod:`jboat_core.testing.problems` draws them (same seeds,
same order), so ``ridge_problem(seed, d, n)`` there and :func:`make_problem` here hold the
same numbers. No framework is imported: the references are computed by reverse-mode
recursions and a conjugate-gradient solve in float64 (no d x d Jacobian is ever formed,
so the large sizes stay cheap).

Ridge:    f(x, y) = ||A1 y - b1||^2/(2n) + 1/2 sum_i exp(x_i) y_i^2,  F(y) = ||A2 y - b2||^2/(2n)
Logistic: f(x, w) = 1/n sum_i sigmoid(x_i) softplus(-t_i a_i'w) + mu/2 ||w||^2,
          F(w) = mean_j softplus(-s_j c_j'w)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: name -> {size -> keyword arguments of the generator}
SIZES = {
    "ridge": {"small": {"d": 50, "n": 100}, "large": {"d": 5000, "n": 1000}},
    "logistic": {"small": {"d": 10, "n": 50, "m": 60}, "large": {"d": 100, "n": 5000, "m": 1000}},
}


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def _f32(a):
    """Round to float32 (what the frameworks see) and compute in float64."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def cg_solve(matvec, b, tol=1e-13, maxiter=10000):
    """Float64 conjugate gradient for a symmetric positive definite operator."""
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rs = r @ r
    for _ in range(maxiter):
        if np.sqrt(rs) <= tol * max(1.0, np.linalg.norm(b)):
            break
        ap = matvec(p)
        alpha = rs / (p @ ap)
        x += alpha * p
        r -= alpha * ap
        rs_new = r @ r
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x


@dataclass
class Problem:
    """One bilevel problem: data (float32-rounded, as float64) and reference formulas.

    Attributes
    ----------
    kind : str
        ``"ridge"`` or ``"logistic"``.
    data : dict of ndarray
        ``A1, b1, A2, b2`` (ridge) or ``A, t, C, s`` (logistic), plus ``x`` (upper variable).
    y_generic : ndarray
        Lower-level start for unrolled operators (ridge: the random y; logistic:
        0.1 * randn, seed 2).
    """

    kind: str
    data: dict
    y_generic: np.ndarray
    mu: float = 0.1

    # ---- sizes -----------------------------------------------------------------------
    @property
    def dim_y(self) -> int:
        return self.data["A1" if self.kind == "ridge" else "A"].shape[1]

    @property
    def dim_x(self) -> int:
        return len(self.data["x"])

    # ---- lower level f ---------------------------------------------------------------
    def grad_f(self, y):
        D = self.data
        if self.kind == "ridge":
            n = len(D["b1"])
            return D["A1"].T @ (D["A1"] @ y - D["b1"]) / n + np.exp(D["x"]) * y
        n = len(D["t"])
        sx, sm = _sigmoid(D["x"]), _sigmoid(-D["t"] * (D["A"] @ y))
        return -(D["A"].T @ (sx * D["t"] * sm)) / n + self.mu * y

    def hvp(self, y, v):
        """d^2 f/dy^2 (y) v."""
        D = self.data
        if self.kind == "ridge":
            return D["A1"].T @ (D["A1"] @ v) / len(D["b1"]) + np.exp(D["x"]) * v
        n = len(D["t"])
        sx, sm = _sigmoid(D["x"]), _sigmoid(-D["t"] * (D["A"] @ y))
        return D["A"].T @ (sx * sm * (1 - sm) * (D["A"] @ v)) / n + self.mu * v

    def mixed_T(self, y, v):
        """(d^2 f / dy dx)^T v = d/dx <grad_y f(x, y), v>."""
        D = self.data
        if self.kind == "ridge":
            return np.exp(D["x"]) * y * v
        n = len(D["t"])
        sx, sm = _sigmoid(D["x"]), _sigmoid(-D["t"] * (D["A"] @ y))
        return -(sx * (1 - sx)) * D["t"] * sm * (D["A"] @ v) / n

    def grad_x_f(self, y):
        D = self.data
        if self.kind == "ridge":
            return 0.5 * np.exp(D["x"]) * y * y
        sx = _sigmoid(D["x"])
        return sx * (1 - sx) * np.logaddexp(0.0, -D["t"] * (D["A"] @ y)) / len(D["t"])

    # ---- upper level F (no explicit x) -------------------------------------------------
    def F(self, y):
        D = self.data
        if self.kind == "ridge":
            return 0.5 * np.sum((D["A2"] @ y - D["b2"]) ** 2) / len(D["b2"])
        return float(np.mean(np.logaddexp(0.0, -D["s"] * (D["C"] @ y))))

    def grad_F(self, y):
        D = self.data
        if self.kind == "ridge":
            return D["A2"].T @ (D["A2"] @ y - D["b2"]) / len(D["b2"])
        return -(D["C"].T @ (D["s"] * _sigmoid(-D["s"] * (D["C"] @ y)))) / len(D["s"])

    # ---- solutions and references ----------------------------------------------------
    def lipschitz(self, iters: int = 50) -> float:
        """Largest eigenvalue of d^2 f/dy^2 at the generic start (power iteration)."""
        v = np.random.RandomState(0).randn(self.dim_y)
        lam = 1.0
        for _ in range(iters):
            w = self.hvp(self.y_generic, v)
            lam = np.linalg.norm(w) / np.linalg.norm(v)
            v = w / np.linalg.norm(w)
        return float(lam)

    def solution(self):
        """y* = argmin f (CG for ridge, Newton-CG for logistic), float64."""
        if self.kind == "ridge":
            D = self.data
            return cg_solve(lambda v: self.hvp(None, v), D["A1"].T @ D["b1"] / len(D["b1"]))
        w = np.zeros(self.dim_y)
        for _ in range(50):
            g = self.grad_f(w)
            if np.linalg.norm(g) < 1e-12:
                break
            w = w - cg_solve(lambda v, w=w: self.hvp(w, v), g)
        return w

    def ift(self, y):
        """-(d^2 f/dy dx)^T H^-1 grad_y F(y): the IFT hyper-gradient (exact at y = y*)."""
        v = cg_solve(lambda u: self.hvp(y, u), self.grad_F(y))
        return -self.mixed_T(y, v)

    def trajectory(self, y0, K: int, lr: float):
        ys = [np.asarray(y0, float)]
        for _ in range(K):
            ys.append(ys[-1] - lr * self.grad_f(ys[-1]))
        return ys

    def unrolled(self, y0, K: int, lr: float, at: int | None = None, truncate: int = 0):
        """(dF(y_at)/dx, dF(y_at)/dy_0) through SGD steps, steps < truncate constant."""
        ys = self.trajectory(y0, K, lr)
        at = K if at is None else at
        lam = self.grad_F(ys[at])
        g = np.zeros(self.dim_x)
        for k in range(at - 1, -1, -1):
            if k >= truncate:
                g -= lr * self.mixed_T(ys[k], lam)
            lam = lam - lr * self.hvp(ys[k], lam)
        return g, lam

    def k_star(self, y0, K: int, lr: float, truncate: int = 0) -> int:
        ys = self.trajectory(y0, K, lr)
        return truncate + 1 + int(np.argmax([self.F(y) for y in ys[truncate + 1:]]))

    def fd_formula(self, y0, K: int, lr: float, r: float):
        """DARTS: -xi [grad_x f(w + eps v) - grad_x f(w - eps v)] / (2 eps), w = y_0,
        v = grad F(y_K), eps = r/||v||, xi = lr."""
        yK = self.trajectory(y0, K, lr)[-1]
        v = self.grad_F(yK)
        eps = r / np.linalg.norm(v)
        return -lr * (self.grad_x_f(y0 + eps * v) - self.grad_x_f(y0 - eps * v)) / (2 * eps)

    def iga_formula(self, y0, K: int, lr: float):
        yK = self.trajectory(y0, K, lr)[-1]
        dF, df = self.grad_F(yK), self.grad_f(yK)
        return -(dF @ df) / (df @ df) * self.grad_x_f(yK)


def make_problem(kind: str, size: str = "small", seed: int | None = None) -> Problem:
    """Draw the data of ``kind`` at ``size`` (see ``SIZES``)."""
    kw = SIZES[kind][size]
    if kind == "ridge":
        d, n = kw["d"], kw["n"]
        rng = np.random.RandomState(0 if seed is None else seed)
        A1, b1 = rng.randn(n, d), rng.randn(n)
        A2, b2 = rng.randn(n, d), rng.randn(n)
        x = 0.1 * rng.randn(d)
        y = rng.randn(d)
        data = {"A1": A1, "b1": b1, "A2": A2, "b2": b2, "x": x}
        return Problem("ridge", {k: _f32(v) for k, v in data.items()}, _f32(y))
    d, n, m = kw["d"], kw["n"], kw["m"]
    rng = np.random.RandomState(1 if seed is None else seed)
    A, C = rng.randn(n, d), rng.randn(m, d)
    w_true = rng.randn(d)
    t = np.sign(A @ w_true + 0.5 * rng.randn(n))
    s = np.sign(C @ w_true + 0.5 * rng.randn(m))
    x = rng.randn(n)
    data = {"A": A, "t": t, "C": C, "s": s, "x": x}
    # Not w = 0: there every margin is exactly 0, the kink of max(z, 0) and |z| in the
    # stable softplus formula, where Jittor's subgradients differ from softplus'(0) = 1/2.
    y_generic = 0.1 * np.random.RandomState(2).randn(d)
    return Problem("logistic", {k: _f32(v) for k, v in data.items()}, _f32(y_generic))
