"""Float64 NumPy references of the stochastic bilevel solvers (test_stochastic.py).

Two finite-sum problems whose objectives are means over the examples, written once in
Jittor (for the solvers) and once here in float64 with hand-derived gradients,
Hessian-vector and cross-derivative products on any subset of the examples; and each
solver's step (SOBA, SABA, MASOBA, StocBiO, AmIGO, TTSA) computed from these and the
minibatch indices the solver drew (``record.info["draws"]``), independently of jboat's code.
"""

from __future__ import annotations

import numpy as np

from ..numerics.autodiff import constant


def _sig(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


class Quadratic:
    """f = mean_i (a_i'y - b_i - e_i'x)^2 / 2 + mu/2 |y|^2,
    F = mean_j (c_j'y - c0_j)^2 / 2 + lam/2 |x|^2 (strongly convex, y*(x) linear)."""

    def __init__(self, seed=0, n=24, m=20, d=4, p=3, mu=0.5, lam=0.1):
        rng = np.random.RandomState(seed)
        self.A, self.b, self.E = rng.randn(n, d), rng.randn(n), 0.5 * rng.randn(n, p)
        self.C, self.c = rng.randn(m, d), rng.randn(m)
        self.mu, self.lam, self.n, self.m = mu, lam, n, m
        self.x0, self.y0 = 0.3 * rng.randn(p), rng.randn(d)

    def lower_feed(self):
        """The lower feed (NumPy arrays, the whole sum)."""
        return {"A": self.A, "b": self.b, "E": self.E}

    def upper_feed(self):
        """The upper feed (NumPy arrays, the whole sum)."""
        return {"C": self.C, "c": self.c}

    def objectives(self, jt):
        """(f, F) as jboat objectives on the feeds above."""
        from jboat_core.testing.problems import shifted_quadratic
        return shifted_quadratic(self.mu, self.lam)

    def _low(self, idx):
        s = slice(None) if idx is None else idx
        return self.A[s], self.b[s], self.E[s]

    def gf(self, x, y, idx=None):
        """grad_y f on the examples ``idx`` (None: all)."""
        A, b, E = self._low(idx)
        return A.T @ (A @ y - b - E @ x) / len(b) + self.mu * y

    def hv(self, x, y, v, idx=None):
        """H v = d2f/dy2 . v on the examples ``idx``."""
        A, b, _ = self._low(idx)
        return A.T @ (A @ v) / len(b) + self.mu * v

    def jv(self, x, y, v, idx=None):
        """J v = d2f/dxdy . v on the examples ``idx``."""
        A, b, E = self._low(idx)
        return -E.T @ (A @ v) / len(b)

    def gFy(self, x, y, idx=None):
        """grad_y F on the examples ``idx``."""
        s = slice(None) if idx is None else idx
        C, c = self.C[s], self.c[s]
        return C.T @ (C @ y - c) / len(c)

    def gFx(self, x, y, idx=None):
        """grad_x F."""
        return self.lam * x

    # exact bilevel quantities
    def ystar(self, x):
        """y*(x), the exact lower solution."""
        M = self.A.T @ self.A / self.n + self.mu * np.eye(len(self.y0))
        return np.linalg.solve(M, self.A.T @ (self.b + self.E @ x) / self.n)

    def hessian(self, x=None, y=None):
        """d2f/dy2 (constant: f is quadratic in y)."""
        return self.A.T @ self.A / self.n + self.mu * np.eye(len(self.y0))

    def value(self, x):
        """F(x, y*(x))."""
        r = self.C @ self.ystar(x) - self.c
        return 0.5 * r @ r / self.m + 0.5 * self.lam * x @ x

    def hypergradient(self, x):
        """The exact hyper-gradient at x (the implicit function theorem)."""
        y = self.ystar(x)
        v = np.linalg.solve(self.hessian(), self.gFy(x, y))
        return self.gFx(x, y) - self.jv(x, y, v)

    def xstar(self):
        """The exact minimiser of F(x, y*(x)) (a quadratic: its gradient is affine)."""
        p = len(self.x0)
        g0 = self.hypergradient(np.zeros(p))
        G = np.stack([self.hypergradient(e) - g0 for e in np.eye(p)], 1)
        return np.linalg.solve(G, -g0)


class Logistic:
    """f = mean_i softplus(-t_i a_i'y) + 1/2 sum_k e^{x_k} y_k^2 (one penalty per feature),
    F = mean_j softplus(-s_j c_j'y) + lam/2 |x|^2."""

    def __init__(self, seed=1, n=24, m=20, d=4, lam=0.01):
        rng = np.random.RandomState(seed)
        w = rng.randn(d)
        self.A, self.C = rng.randn(n, d), rng.randn(m, d)
        self.t = np.sign(self.A @ w + 0.5 * rng.randn(n))
        self.s = np.sign(self.C @ w + 0.5 * rng.randn(m))
        self.lam, self.n, self.m = lam, n, m
        self.x0, self.y0 = 0.3 * rng.randn(d) - 1.0, rng.randn(d)

    def lower_feed(self):
        """The lower feed (NumPy arrays, the whole sum)."""
        return {"A": self.A, "t": self.t}

    def upper_feed(self):
        """The upper feed (NumPy arrays, the whole sum)."""
        return {"A": self.C, "t": self.s}

    def objectives(self, jt):
        """(f, F) as jboat objectives on the feeds above."""
        lam = self.lam

        def f(feed, ul, ll, **kw):
            """f(x, y)."""
            z, _ = ll(feed["A"], **kw)
            y = kw["params"][0] if kw.get("params") is not None else ll.w
            return jt.nn.softplus(-feed["t"] * z).mean() + (jt.exp(ul()) * y * y).sum() * 0.5

        def F(feed, ul, ll, **kw):
            """F(x, y)."""
            z, _ = ll(feed["A"], **kw)
            return jt.nn.softplus(-feed["t"] * z).mean() + (ul() * ul()).sum() * constant(
                0.5 * lam, z)
        return f, F

    def _low(self, idx):
        s = slice(None) if idx is None else idx
        return self.A[s], self.t[s]

    def gf(self, x, y, idx=None):
        """grad_y f on the examples ``idx`` (None: all)."""
        A, t = self._low(idx)
        return -A.T @ (t * _sig(-t * (A @ y))) / len(t) + np.exp(x) * y

    def hv(self, x, y, v, idx=None):
        """H v = d2f/dy2 . v on the examples ``idx``."""
        A, t = self._low(idx)
        s = _sig(t * (A @ y))
        return A.T @ (s * (1 - s) * (A @ v)) / len(t) + np.exp(x) * v

    def jv(self, x, y, v, idx=None):
        """J v = d2f/dxdy . v on the examples ``idx``."""
        return np.exp(x) * y * v

    def gFy(self, x, y, idx=None):
        """grad_y F on the examples ``idx``."""
        s_ = slice(None) if idx is None else idx
        C, s = self.C[s_], self.s[s_]
        return -C.T @ (s * _sig(-s * (C @ y))) / len(s)

    def gFx(self, x, y, idx=None):
        """grad_x F."""
        return self.lam * x


# -- the solvers' steps, from the drawn indices -----------------------------------------
def _take(draws, label):
    got, idx = draws.pop(0)
    assert got == label, (got, label)
    return idx


def soba(P, x, y, st, draws, rho, **cfg):
    """SOBA's step from the drawn indices: (g_x, y_new, {"v"})."""
    v = st.get("v", np.zeros_like(y))
    j, i = _take(draws, "lower"), _take(draws, "upper")
    d_y = P.gf(x, y, j)
    v_new = v - (cfg.get("v_lr") or rho) * (P.hv(x, y, v, j) + P.gFy(x, y, i))
    d_x = P.jv(x, y, v, j) + P.gFx(x, y, i)
    return d_x, y - rho * d_y, {"v": v_new}


def masoba(P, x, y, st, draws, rho, theta=0.1, v_radius=None, **cfg):
    """MA-SOBA's step from the drawn indices: (g_x, y_new, {"v", "h"})."""
    d_x, y_new, out = soba(P, x, y, st, draws, rho)
    v = out["v"]
    if v_radius is not None:
        v = v * min(1.0, v_radius / np.linalg.norm(v))
    h = (1 - theta) * st.get("h", np.zeros_like(x)) + theta * d_x
    return h, y_new, {"v": v, "h": h}


def saba_blocks(n, b, seed, stream):
    """The fixed SAGA blocks of n examples in blocks of b (the solver's permutation)."""
    perm = np.random.default_rng([seed, 0, stream]).permutation(n)
    blocks = np.array_split(perm, -(-n // b))
    return blocks, np.array([len(k) for k in blocks], float) / n


def saba(P, x, y, st, draws, rho, batch_size=8, seed=0, **cfg):
    """SABA's step from the drawn blocks: (g_x, y_new, {"v" and the tables})."""
    v = st.get("v", np.zeros_like(y))
    low, wl = saba_blocks(P.n, batch_size, seed, 0)
    up, wu = saba_blocks(P.m, batch_size, seed, 1)
    lower_q = {"g_y": lambda B: P.gf(x, y, B), "hv": lambda B: P.hv(x, y, v, B),
               "jv": lambda B: P.jv(x, y, v, B)}
    upper_q = {"gFy": lambda B: P.gFy(x, y, B), "gFx": lambda B: P.gFx(x, y, B)}
    T = {k: st[k] for k in list(lower_q) + list(upper_q)} if "g_y" in st else \
        {**{k: np.stack([q(B) for B in low]) for k, q in lower_q.items()},
         **{k: np.stack([q(B) for B in up]) for k, q in upper_q.items()}}
    j = int(_take(draws, "lower block")[0])
    i = int(_take(draws, "upper block")[0])
    est, new = {}, {}
    for k, q in lower_q.items():
        val = q(low[j])
        est[k] = val - T[k][j] + wl @ T[k]
        new[k] = T[k].copy()
        new[k][j] = val
    for k, q in upper_q.items():
        val = q(up[i])
        est[k] = val - T[k][i] + wu @ T[k]
        new[k] = T[k].copy()
        new[k][i] = val
    v_new = v - rho * (est["hv"] + est["gFy"])
    return est["jv"] + est["gFx"], y - rho * est["g_y"], {"v": v_new, **new}


def stocbio(P, x, y, st, draws, rho, K=2, neumann_iters=3, eta=None, **cfg):
    """StocBiO's step from the drawn indices: (g_x, y_new, memory)."""
    eta = eta or rho
    for _ in range(K):
        y = y - rho * P.gf(x, y, _take(draws, "lower"))
    i = _take(draws, "upper")
    gFy, gFx = P.gFy(x, y, i), P.gFx(x, y, i)
    p, total = gFy, gFy
    for _ in range(neumann_iters):
        p = p - eta * P.hv(x, y, p, _take(draws, "lower"))
        total = total + p
    v = eta * total
    return gFx - P.jv(x, y, v, _take(draws, "lower")), y, {}


def amigo(P, x, y, st, draws, rho, K=2, v_iters=None, **cfg):
    """AmIGO's step from the drawn indices: (g_x, y_new, {"v"})."""
    for _ in range(K):
        y = y - rho * P.gf(x, y, _take(draws, "lower"))
    v = st.get("v", np.zeros_like(y))
    i = _take(draws, "upper")
    gFy, gFx = P.gFy(x, y, i), P.gFx(x, y, i)
    for _ in range(v_iters or K):
        v = v - rho * (P.hv(x, y, v, _take(draws, "lower")) + gFy)
    return gFx + P.jv(x, y, v, _take(draws, "lower")), y, {"v": v}


def ttsa(P, x, y, st, draws, rho, t=0, neumann_iters=4, eta=None, **cfg):
    """TTSA's step from the drawn indices: (g_x, y_new, memory)."""
    eta = eta or rho
    y = y - rho * (t + 1) ** -0.4 * P.gf(x, y, _take(draws, "lower"))
    i = _take(draws, "upper")
    gFy, gFx = P.gFy(x, y, i), P.gFx(x, y, i)
    z = gFy
    for _ in range(int(_take(draws, "p")[0])):
        z = z - eta * P.hv(x, y, z, _take(draws, "lower"))
    jv = P.jv(x, y, neumann_iters * eta * z, _take(draws, "lower"))
    return (gFx - jv) * (t + 1) ** -0.6, y, {}


# -- the built-in solvers, run through Problem against their steps -------------------------
RHO = 0.1   # lower optimizer's learning rate: the papers' inner step size
B = 8       # minibatch size (n = 24 lower, m = 20 upper examples)
K = 2       # lower_iters (StocBiO, AmIGO)
#: Settings of each built-in stochastic solver and its step.
CASES = {
    "SOBA": ({}, soba),
    "MASOBA": ({"theta": 0.3, "v_radius": 0.5},
               lambda *a, **k: masoba(*a, theta=0.3, v_radius=0.5)),
    "SABA": ({}, lambda *a, **k: saba(*a, batch_size=B, seed=3)),
    "StocBiO": ({"neumann_iters": 3, "eta": 0.05},
                lambda *a, **k: stocbio(*a, K=K, neumann_iters=3, eta=0.05)),
    "AmIGO": ({"v_iters": 3}, lambda *a, **k: amigo(*a, K=K, v_iters=3)),
    "TTSA": ({"neumann_iters": 4}, lambda *a, t=0, **k: ttsa(*a, t=t, neumann_iters=4)),
}
#: Relative tolerance per dtype (float32 measured below 2e-6).
TOL = {"float32": 1e-4, "float64": 1e-10}


def problem(P, name, section, registry=None, batch_size=B, seed=3, ul_lr=0.1,
            return_grad=True, lower_iters=K, dtype: str = "float32", op=None):
    """``(Problem, lower model, upper model, lower feed, upper feed)`` of solver ``name``
    on the problem ``P`` (``Quadratic`` or ``Logistic``), every Var of ``dtype``; ``op``:
    the operator run (default ``name``; a variant of the built-in)."""
    name = op or name
    from ..solver.problem import Problem
    from .problems import Vector, jt
    f, F = P.objectives(jt)
    ll, ul = Vector(P.y0, dtype), Vector(P.x0, dtype)
    cfg = {"fo_op": [name], "lower_iters": lower_iters, "return_grad": return_grad,
           name: {"batch_size": batch_size, "seed": seed, **section}}
    prob = Problem(cfg, ll_objective=f, ul_objective=F, ll_model=ll, ul_model=ul,
                   ll_opt=jt.optim.SGD(list(ll.parameters()), RHO),
                   ul_opt=jt.optim.SGD(list(ul.parameters()), ul_lr), registry=registry)
    var = lambda d: {k: jt.array(np.asarray(v, np.float64), dtype)  # noqa: E731
                     for k, v in d.items()}
    return prob, ll, ul, var(P.lower_feed()), var(P.upper_feed())


def _rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - b) / max(np.linalg.norm(b), 1e-12))


def follow(kind: str, name: str, dtype: str = "float32", registry=None, iterations: int = 3,
           op: str | None = None):
    """Relative errors ``[(label, error)]`` of the hyper-gradient and the new lower
    variable at each of ``iterations`` outer iterations against the paper's step computed
    from the solver's draws (``kind``: "quadratic" or "logistic")."""
    P = Quadratic() if kind == "quadratic" else Logistic()
    section, formula = CASES[name]
    prob, ll, ul, lf, uf = problem(P, name, section, registry, dtype=dtype, op=op)
    x, y, st, out = P.x0.copy(), P.y0.copy(), {}, []
    for t in range(iterations):
        record = prob.run_iter(lf, uf, t)
        g = record["hyper_gradients"][0].numpy()
        draws = [(label, idx) for label, idx in record.info["draws"]]
        g_ref, y, st = formula(P, x, y, st, draws, RHO, t=t)
        if draws:
            raise AssertionError(f"{name}: draws left unused by the reference: {draws}")
        out += [(f"iteration {t} g_x", _rel(g, g_ref)),
                (f"iteration {t} y", _rel(ll.w.numpy(), y))]
    return out
