"""Float64 NumPy references for one outer iteration of the first-order solvers, from
their formulas (the operators' docstrings), on the reference problems of
``jboat_core.testing.problems``: ridge (optionally with an explicit upper term
rho/2 |x|^2) and weighted logistic regression. Each function returns
``(g_x, y_new, state)`` for an SGD lower optimizer of learning rate ``eta``.

``CASES`` (a setting of each built-in solver and its formula) and ``follow`` (two outer
iterations through ``Problem``, against the formula, in float32 or float64) serve the
tests and the composition matrix.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    """The logistic function, 1 / (1 + e^-z), computed stably."""
    return 0.5 * (1 + np.tanh(0.5 * z))


def softplus(z):
    """log(1 + e^z), computed stably."""
    return np.logaddexp(0.0, z)


class RidgeNP:
    """f = |A1 y - b1|^2 / 2n + 1/2 sum e^x y^2,  F = |A2 y - b2|^2 / 2n + rho/2 |x|^2."""

    def __init__(self, prob, rho: float = 0.0):
        D = prob.np_data
        self.A1, self.b1, self.A2, self.b2, self.n = D["A1"], D["b1"], D["A2"], D["b2"], D["n"]
        self.rho = rho

    def f(self, x, y):
        """f(x, y)."""
        r = self.A1 @ y - self.b1
        return r @ r / (2 * self.n) + 0.5 * np.sum(np.exp(x) * y * y)

    def F(self, x, y):
        """F(x, y)."""
        r = self.A2 @ y - self.b2
        return r @ r / (2 * self.n) + 0.5 * self.rho * x @ x

    def fy(self, x, y):
        """grad_y f(x, y)."""
        return self.A1.T @ (self.A1 @ y - self.b1) / self.n + np.exp(x) * y

    def fx(self, x, y):
        """grad_x f(x, y)."""
        return 0.5 * np.exp(x) * y * y

    def Fy(self, x, y):
        """grad_y F(x, y)."""
        return self.A2.T @ (self.A2 @ y - self.b2) / self.n

    def Fx(self, x, y):
        """grad_x F(x, y)."""
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
        """f(x, y)."""
        return np.sum(sigmoid(x) * softplus(-self.t * (self.A @ w))) / self.n + \
            0.5 * self.mu * w @ w

    def F(self, x, w):
        """F(x, y)."""
        return np.mean(softplus(-self.s * (self.C @ w)))

    def fy(self, x, w):
        """grad_y f(x, y)."""
        sm = sigmoid(-self.t * (self.A @ w))
        return -(self.A.T @ (sigmoid(x) * self.t * sm)) / self.n + self.mu * w

    def fx(self, x, w):
        """grad_x f(x, y)."""
        sx = sigmoid(x)
        return sx * (1 - sx) * softplus(-self.t * (self.A @ w)) / self.n

    def Fy(self, x, w):
        """grad_y F(x, y)."""
        return -(self.C.T @ (self.s * sigmoid(-self.s * (self.C @ w)))) / self.m

    def Fx(self, x, w):
        """grad_x F(x, y)."""
        return np.zeros_like(x)

    def penalty_grads(self, x, w):
        """(d/dy, d/dx) of |grad_y f|^2."""
        g = self.fy(x, w)
        sx, sm = sigmoid(x), sigmoid(-self.t * (self.A @ w))
        H = (self.A.T * (sx * sm * (1 - sm))) @ self.A / self.n + self.mu * np.eye(len(w))
        dgdx = -(self.A * (self.t * sm)[:, None]).T * (sx * (1 - sx)) / self.n  # d x n
        return 2 * H @ g, 2 * dgdx.T @ g


def descend(P, x, v, lr, steps, extra=None):
    """``steps`` gradient steps v <- v - lr (grad_y f(x, v) + extra(v))."""
    for _ in range(steps):
        v = v - lr * (P.fy(x, v) + (extra(v) if extra else 0))
    return v


def vso(P, x, y, t, eta, K, z_loop=5, z_lr=0.01, ll_l2_reg=0.1, ul_l2_reg=0.01,
        ul_ln_reg=10.0, reg_decay=1.0):
    """VSO's step from its formula: (g_x, z, memory)."""
    c = reg_decay * t + 1.0
    mu, th, tau = ll_l2_reg / c, ul_l2_reg / c, ul_ln_reg / c
    z = descend(P, x, y, eta, z_loop, lambda v: 2 * mu * v)
    lz = P.f(x, z) + mu * z @ z
    u = z.copy()
    for _ in range(K):
        u = u - z_lr * (P.Fy(x, u) + 2 * th * u + tau * P.fy(x, u) / lz)
    return P.Fx(x, u) + tau * (P.fx(x, u) - P.fx(x, z)) / lz, z, {}


def vfo(P, x, y, t, eta, K, y_hat_lr=0.1, u1=0.1):
    """VFO's step from its formula: (g_x, y_new, memory)."""
    yh = descend(P, x, y, y_hat_lr, K)
    q = P.f(x, y) - P.f(x, yh)
    dqy, dqx = P.fy(x, y), P.fx(x, y) - P.fx(x, yh)
    dFy, dFx = P.Fy(x, y), P.Fx(x, y)
    lam = max(0.0, (u1 * q - (dFy @ dqy + dFx @ dqx)) / (dqy @ dqy + dqx @ dqx + 1e-8))
    return dFx + lam * dqx, y - eta * (dFy + lam * dqy), {}


def meso(P, x, y, t, eta, K, theta, eta_th=0.001, gamma_1=0.01, c0=0.2):
    """MESO's step from its formula: (g_x, y_new, {"theta"})."""
    c = c0 * (t + 1) ** 0.25
    th = theta - eta_th * (P.fy(x, theta) + gamma_1 * (theta - y))
    d_y = P.Fy(x, y) / c + P.fy(x, y) - gamma_1 * (y - th)
    d_x = P.Fx(x, y) / c + P.fx(x, y) - P.fx(x, th)
    return d_x, y - eta * d_y, {"theta": th}


def pgdo(P, x, y, t, eta, K, y_hat, y_hat_lr=0.1, gamma_init=0.0, gamma_max=0.2,
         gamma_argmax_step=5000, update_y_ahead=False, penalty="difference"):
    """PGDO's step from its formula: (g_x, y_new, {"y_hat"} with the difference penalty)."""
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
    """ALTO's step from its formula: (g_x, y_1, memory)."""
    y1 = y - eta * P.fy(x, y)
    return P.Fx(x, y1), y1, {}


def gaffo(P, x, y, t, eta, K, lam=1.0, sigma=0.01, lower_step_size=None,
          use_sign_lower_step=False, maximize=True, sync_lower_from_upper=True):
    """GAFFO's step from its formula: (g_x, y_1, memory)."""
    s = eta if lower_step_size is None else lower_step_size
    y0 = x.copy() if sync_lower_from_upper else y.copy()
    g0 = P.fy(x, y0)
    y1 = y0 - s * (np.sign(g0) if use_sign_lower_step else g0)
    b = P.fy(x, y1)
    v = P.fy(x, y1 + sigma * b)
    a = P.Fy(x, y1) / max(lam, 1e-8) - (v - b)
    return (-a if maximize else a), y1, {}


# -- the built-in solvers, run through Problem against their formulas ---------------------
K = 3
#: Settings of each built-in first-order solver and its formula (``(P, x, y, t, eta,
#: state) -> (g_x, y_new, state)``).
CASES = {
    "VSO": ({"z_loop": 3, "z_lr": 0.05, "ll_l2_reg": 0.1, "ul_l2_reg": 0.01, "ul_ln_reg": 1.0,
             "reg_decay": 0.5},
            lambda P, x, y, t, eta, s: vso(P, x, y, t, eta, K, z_loop=3, z_lr=0.05,
                                           ul_ln_reg=1.0, reg_decay=0.5)),
    "VFO": ({"y_hat_lr": 0.1, "u1": 10.0},
            lambda P, x, y, t, eta, s: vfo(P, x, y, t, eta, K, u1=10.0)),
    "MESO": ({"eta": 0.05, "gamma_1": 0.5, "c0": 0.2},
             lambda P, x, y, t, eta, s: meso(P, x, y, t, eta, K, s.get("theta", y),
                                             eta_th=0.05, gamma_1=0.5)),
    "PGDO": ({"gamma_init": 0.1, "gamma_max": 2.0, "gamma_argmax_step": 50},
             lambda P, x, y, t, eta, s: pgdo(P, x, y, t, eta, K, s.get("y_hat", y),
                                             gamma_init=0.1, gamma_max=2.0,
                                             gamma_argmax_step=50)),
    "PGDO-gradient": ({"gamma_init": 0.1, "gamma_max": 2.0, "gamma_argmax_step": 50,
                       "penalty": "gradient"},
                      lambda P, x, y, t, eta, s: pgdo(P, x, y, t, eta, K, y, gamma_init=0.1,
                                                      gamma_max=2.0, gamma_argmax_step=50,
                                                      penalty="gradient")),
    "PGDO-ahead": ({"gamma_init": 0.1, "gamma_max": 2.0, "gamma_argmax_step": 50,
                    "updata_y_ahead": True},
                   lambda P, x, y, t, eta, s: pgdo(P, x, y, t, eta, K, s.get("y_hat", y),
                                                   gamma_init=0.1, gamma_max=2.0,
                                                   gamma_argmax_step=50, update_y_ahead=True)),
    "ALTO": ({}, lambda P, x, y, t, eta, s: alto(P, x, y, t, eta, K)),
    "GAFFO": ({"lambda": 0.5, "maximize": False},
              lambda P, x, y, t, eta, s: gaffo(P, x, y, t, eta, K, lam=0.5, maximize=False)),
}
#: Relative tolerance of ``follow`` per dtype (float32 against float64 over a few dozen
#: operations: measured 1e-7 to 1e-5; float64: rounding only).
TOL = {"float32": 1e-4, "float64": 1e-10}


def problem(kind: str, name: str, dtype: str = "float32", registry=None, op=None):
    """``(Problem, problem, NumPy reference, eta)`` of solver ``name`` (a key of
    ``CASES``) on ``kind`` ("ridge", with F + rho/2 |x|^2; or "logistic"), in ``dtype``;
    ``op``: the operator run (default ``name``'s; a variant of the built-in)."""
    from ..numerics.autodiff import constant
    from ..solver.problem import Problem
    from .problems import jt, logistic_problem, ridge_problem

    section, _ = CASES[name]
    if kind == "ridge":
        p, rho, eta = ridge_problem(dtype=dtype), 0.1, 0.1
        P = RidgeNP(p, rho)

        def F(feed, ul, ll, **kw):
            """The ridge F plus rho/2 |x|^2."""
            return p.ul_objective(feed, ul, ll, **kw) + (ul() * ul()).sum() * constant(
                rho / 2, ul())
    else:
        p, eta = logistic_problem(dtype=dtype), 0.5
        p.ll_model.w.update(p.ll_model.w + jt.array(0.3 * np.random.RandomState(5).randn(4),
                                                    dtype))
        P, F = LogisticNP(p), p.ul_objective
    op = op or name.split("-")[0]
    prob = Problem({"fo_op": op, "lower_iters": K, "return_grad": True, op: section},
                   ll_objective=p.ll_objective, ul_objective=F, ll_model=p.ll_model,
                   ul_model=p.ul_model, ll_opt=jt.optim.SGD(p.ll_var, eta),
                   ul_opt=jt.optim.SGD(p.ul_var, 0.1), registry=registry)
    return prob, p, P, eta


def _rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - b) / max(np.linalg.norm(b), 1e-12))


def follow(kind: str, name: str, dtype: str = "float32", registry=None, iterations: int = 2,
           op: str | None = None):
    """Relative errors ``[(label, error)]`` of the hyper-gradient and the new lower
    variable at each of ``iterations`` outer iterations against the formula of ``name``
    (``op``: the operator run, default the built-in ``name`` names)."""
    prob, p, P, eta = problem(kind, name, dtype, registry, op)
    _, formula = CASES[name]
    x, y, state, out = p.x(), p.y0(), {}, []
    for t in range(iterations):
        g = prob.run_iter(p.ll_feed, p.ul_feed, t)["hyper_gradients"][0].numpy()
        g_ref, y, state = formula(P, x, y, t, eta, {**state})
        out += [(f"iteration {t} g_x", _rel(g, g_ref)), (f"iteration {t} y", _rel(p.y0(), y))]
    return out
