"""Float64 references on small real networks (Conv-BN net, DARTS-style supernet).

Every reference here is independent of jboat's operator code: a float64 twin of the
network (same initial values), plain ``jt.grad`` and in-place updates of the twin's own
parameters (no functional model), central finite differences of the unrolled upper
objective, and NumPy Newton solves of convex heads. The operators run in float32 through
``Problem.evaluate`` (the path ``Problem.run_iter`` takes).

Tolerances: directional derivatives along 3 unit directions (the computed gradient's and
2 random ones) agree within ``TOL`` of the gradient's norm, for the best of three steps
h in {1e-4, 3e-4, 1e-3}. Sources of error: float32 arithmetic in the operators (~1e-6
relative per op, accumulated over a few hundred ops), Jittor's float32 constants inside
float64 graphs (~1e-8 relative, divided by h: ~1e-4 at h = 1e-4), O(h^2) truncation, and
ReLU kinks that a perturbation of size h crosses (measured: up to 0.5 % of the norm at
h = 1e-3 on the supernet, 2e-5 at h = 3e-4). A wrong gradient (e.g. a 1 % scale error)
fails at every h; the best of three only discounts an unlucky kink.
"""

from __future__ import annotations

import numpy as np

from jboat_core.numerics.functional import walk
from jboat_core.testing.networks import ConvBNNet, SuperNet, digits, jt

TOL = 1e-3
STEPS = (1e-4, 3e-4, 1e-3)


class Weights(jt.nn.Module):
    """One upper-level vector (per-example logits, for hyper-cleaning)."""

    def __init__(self, n: int):
        self.x = jt.zeros((n,))

    def execute(self):
        return self.x


def ce_per_example(logits, target):
    """Numerically stable cross entropy per example (any float dtype)."""
    m = logits.max(1, keepdims=True).detach()
    lse = (logits - m).exp().sum(1).log() + m.reshape((-1,))
    onehot = jt.array(np.eye(logits.shape[1])[target.numpy()]).cast(logits.dtype)
    return lse - (logits * onehot).sum(1)


def ce(logits, target):
    return ce_per_example(logits, target).mean()


def feeds(n: int = 16, seed: int = 0):
    """Train and validation feeds of ``n`` digits each."""
    train, val, _ = digits(n, n, seed=seed)
    return train, val


def twin64(model, factory):
    """A float64 copy of ``model`` (same values in every Var of the module walk)."""
    other = factory()
    mp, _, mb = walk(model)
    op, _, ob = walk(other)
    for a, b in zip(mp + mb, op + ob):
        b.assign(jt.array(a.numpy().astype(np.float64)))
        if a.is_stop_grad():
            b.stop_grad()
    return other


def to64(feed):
    return {k: (v.float64() if v.dtype == "float32" else v) for k, v in feed.items()}


def set_values(vars_, values):
    for v, a in zip(vars_, values):
        v.update(jt.array(np.asarray(a, dtype=np.float64)))


def directional_errors(grads, base, phi, seed: int = 0, steps=STEPS):
    """Relative errors min_h |<g, d> - (phi(base + h d) - phi(base - h d)) / 2h| / |g| over
    the gradient's direction and two random unit directions (``grads``/``base``: lists of
    NumPy arrays of the same shapes)."""
    g = np.concatenate([a.ravel() for a in grads]).astype(np.float64)
    norm = np.linalg.norm(g)
    rng = np.random.RandomState(seed)
    dirs = [g / norm] + [rng.randn(g.size) for _ in range(2)]
    errs = []
    for d in dirs:
        d = d / np.linalg.norm(d)
        parts, k = [], 0
        for a in base:
            parts.append(d[k:k + a.size].reshape(a.shape))
            k += a.size
        best = np.inf
        for h in steps:
            plus = phi([b + h * p for b, p in zip(base, parts)])
            minus = phi([b - h * p for b, p in zip(base, parts)])
            best = min(best, abs((plus - minus) / (2 * h) - g @ d) / norm)
        errs.append(best)
    return errs


def unrolled(model, lower, f, F, ll_feed, ul_feed, lr, K, *, upper=None, x=None, x0=None,
             y0=None, truncate=0, stop=None, ul_model=None, objective_at=None):
    """F after K SGD steps on f, on the float64 twin ``model`` (its own parameters updated
    in place). ``x``: values of ``upper`` for the differentiable steps; ``x0``: for the
    first ``truncate`` steps (RGT) and default; ``stop``: evaluate F at step ``stop`` (PTT);
    ``objective_at(k)``: the objective of step k (GDA)."""
    if y0 is not None:
        set_values(lower, y0)
    for k in range(K):
        if upper is not None:
            set_values(upper, x0 if (k < truncate and x0 is not None) else x)
        obj = objective_at(k) if objective_at else f
        loss = obj(ll_feed, ul_model, model)
        g = jt.grad(loss, lower)
        for p, gi in zip(lower, g):
            p.update((p - gi * lr).detach())
        if stop is not None and k + 1 == stop:
            break
    if upper is not None:
        set_values(upper, x)
    return float(F(ul_feed, ul_model, model).item())


def newton_head(Z, t, lam, classes, iters: int = 30):
    """argmin_{W,b} mean CE(Z W' + b, t) + lam/2 (|W|^2 + |b|^2), by Newton (float64)."""
    n, d = Z.shape
    Zt = np.hstack([Z, np.ones((n, 1))])
    Y = np.eye(classes)[t]
    theta = np.zeros((classes, d + 1))
    for _ in range(iters):
        logits = Zt @ theta.T
        P = np.exp(logits - logits.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        grad = (P - Y).T @ Zt / n + lam * theta
        H = np.zeros((classes * (d + 1),) * 2)
        for i in range(n):
            S = np.diag(P[i]) - np.outer(P[i], P[i])
            H += np.kron(S, np.outer(Zt[i], Zt[i])) / n
        H += lam * np.eye(H.shape[0])
        theta -= np.linalg.solve(H, grad.ravel()).reshape(theta.shape)
    return theta[:, :d], theta[:, d]


def head_loss(Z, t, W, b):
    logits = Z @ W.T + b
    m = logits.max(1, keepdims=True)
    lse = np.log(np.exp(logits - m).sum(1)) + m[:, 0]
    return float(np.mean(lse - logits[np.arange(len(t)), t]))


NETS = {
    "convbn": lambda: ConvBNNet(channels=2, classes=10, size=8),
    "supernet": lambda: SuperNet(channels=2, nodes=2, classes=10, size=8),
}
