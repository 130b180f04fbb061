"""Float64 NumPy references for one outer iteration of the first-order solvers, from
their formulas (the operators' docstrings), on the reference problems of
``jboat_core.testing.problems``: ridge (optionally with an explicit upper term
rho/2 |x|^2) and weighted logistic regression. Each function returns
``(g_x, y_new, state)`` for an SGD lower optimizer of learning rate ``eta``.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def softplus(z):
    return np.logaddexp(0.0, z)


class RidgeNP:
    """f = |A1 y - b1|^2 / 2n + 1/2 sum e^x y^2,  F = |A2 y - b2|^2 / 2n + rho/2 |x|^2."""

    def __init__(self, prob, rho: float = 0.0):
        D = prob.np_data
        self.A1, self.b1, self.A2, self.b2, self.n = D["A1"], D["b1"], D["A2"], D["b2"], D["n"]
        self.rho = rho

    def f(self, x, y):
        r = self.A1 @ y - self.b1
        return r @ r / (2 * self.n) + 0.5 * np.sum(np.exp(x) * y * y)

    def F(self, x, y):
        r = self.A2 @ y - self.b2
        return r @ r / (2 * self.n) + 0.5 * self.rho * x @ x

    def fy(self, x, y):
        return self.A1.T @ (self.A1 @ y - self.b1) / self.n + np.exp(x) * y

    def fx(self, x, y):
        return 0.5 * np.exp(x) * y * y

    def Fy(self, x, y):
        return self.A2.T @ (self.A2 @ y - self.b2) / self.n

    def Fx(self, x, y):
        return self.rho * x

    def penalty_grads(self, x, y):
        """(d/dy, d/dx) of |grad_y f|^2."""
        g = self.fy(x, y)
        H = self.A1.T @ self.A1 / self.n + np.diag(np.exp(x))
        return 2 * H @ g, 2 * np.exp(x) * y * g


class LogisticNP:
    """f = 1/n sum sigmoid(x_i) softplus(-t_i a_i'w) + mu/2 |w|^2,
    F = mean_j softplus(-s_j c_j'w)."""

    def __init__(self, prob):
        D = prob.np_data
        self.A, self.t, self.C, self.s = D["A"], D["t"], D["C"], D["s"]
        self.n, self.m, self.mu = D["n"], D["m"], D["mu"]

    def f(self, x, w):
        return np.sum(sigmoid(x) * softplus(-self.t * (self.A @ w))) / self.n + \
            0.5 * self.mu * w @ w

    def F(self, x, w):
        return np.mean(softplus(-self.s * (self.C @ w)))

    def fy(self, x, w):
        sm = sigmoid(-self.t * (self.A @ w))
        return -(self.A.T @ (sigmoid(x) * self.t * sm)) / self.n + self.mu * w

    def fx(self, x, w):
        sx = sigmoid(x)
        return sx * (1 - sx) * softplus(-self.t * (self.A @ w)) / self.n

    def Fy(self, x, w):
        return -(self.C.T @ (self.s * sigmoid(-self.s * (self.C @ w)))) / self.m

    def Fx(self, x, w):
        return np.zeros_like(x)

    def penalty_grads(self, x, w):
        g = self.fy(x, w)
        sx, sm = sigmoid(x), sigmoid(-self.t * (self.A @ w))
        H = (self.A.T * (sx * sm * (1 - sm))) @ self.A / self.n + self.mu * np.eye(len(w))
        dgdx = -(self.A * (self.t * sm)[:, None]).T * (sx * (1 - sx)) / self.n  # d x n
        return 2 * H @ g, 2 * dgdx.T @ g


def descend(P, x, v, lr, steps, extra=None):
    for _ in range(steps):
        v = v - lr * (P.fy(x, v) + (extra(v) if extra else 0))
    return v


def vso(P, x, y, t, eta, K, z_loop=5, z_lr=0.01, ll_l2_reg=0.1, ul_l2_reg=0.01,
        ul_ln_reg=10.0, reg_decay=1.0):
    c = reg_decay * t + 1.0
    mu, th, tau = ll_l2_reg / c, ul_l2_reg / c, ul_ln_reg / c
    z = descend(P, x, y, eta, z_loop, lambda v: 2 * mu * v)
    lz = P.f(x, z) + mu * z @ z
    u = z.copy()
    for _ in range(K):
        u = u - z_lr * (P.Fy(x, u) + 2 * th * u + tau * P.fy(x, u) / lz)
    return P.Fx(x, u) + tau * (P.fx(x, u) - P.fx(x, z)) / lz, z, {}


def vfo(P, x, y, t, eta, K, y_hat_lr=0.1, u1=0.1):
    yh = descend(P, x, y, y_hat_lr, K)
    q = P.f(x, y) - P.f(x, yh)
    dqy, dqx = P.fy(x, y), P.fx(x, y) - P.fx(x, yh)
    dFy, dFx = P.Fy(x, y), P.Fx(x, y)
    lam = max(0.0, (u1 * q - (dFy @ dqy + dFx @ dqx)) / (dqy @ dqy + dqx @ dqx + 1e-8))
    return dFx + lam * dqx, y - eta * (dFy + lam * dqy), {}


def meso(P, x, y, t, eta, K, theta, eta_th=0.001, gamma_1=0.01, c0=0.2):
    c = c0 * (t + 1) ** 0.25
    th = theta - eta_th * (P.fy(x, theta) + gamma_1 * (theta - y))
    d_y = P.Fy(x, y) / c + P.fy(x, y) - gamma_1 * (y - th)
    d_x = P.Fx(x, y) / c + P.fx(x, y) - P.fx(x, th)
    return d_x, y - eta * d_y, {"theta": th}


def pgdo(P, x, y, t, eta, K, y_hat, y_hat_lr=0.1, gamma_init=0.0, gamma_max=0.2,
         gamma_argmax_step=5000, update_y_ahead=False, penalty="difference"):
    top = max(gamma_max, gamma_init)
    gam = min(gamma_init + t * (top - gamma_init) / gamma_argmax_step, top)
    s = min(1.0 / (gam + 1e-8), 1.0)
    if update_y_ahead:
        y = descend(P, x, y, eta, K)
    state = {}
    if penalty == "difference":
        yh = descend(P, x, y_hat, y_hat_lr, K)
        d_y = s * (P.Fy(x, y) + gam * P.fy(x, y))
        d_x = s * (P.Fx(x, y) + gam * (P.fx(x, y) - P.fx(x, yh)))
        state = {"y_hat": yh}
    else:
        py, px = P.penalty_grads(x, y)
        d_y, d_x = s * (P.Fy(x, y) + gam * py), s * (P.Fx(x, y) + gam * px)
    return d_x, y - eta * d_y, state


def alto(P, x, y, t, eta, K):
    y1 = y - eta * P.fy(x, y)
    return P.Fx(x, y1), y1, {}


def gaffo(P, x, y, t, eta, K, lam=1.0, sigma=0.01, lower_step_size=None,
          use_sign_lower_step=False, maximize=True, sync_lower_from_upper=True):
    s = eta if lower_step_size is None else lower_step_size
    y0 = x.copy() if sync_lower_from_upper else y.copy()
    g0 = P.fy(x, y0)
    y1 = y0 - s * (np.sign(g0) if use_sign_lower_step else g0)
    b = P.fy(x, y1)
    v = P.fy(x, y1 + sigma * b)
    a = P.Fy(x, y1) / max(lam, 1e-8) - (v - b)
    return (-a if maximize else a), y1, {}
