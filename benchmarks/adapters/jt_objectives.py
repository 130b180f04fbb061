"""The benchmark objectives in Jittor, shared by jboat and upstream boat-jit so both run
the very same graph. Signature (upstream's): ``obj(feed, ul_model, ll_model, **kw)``;
``kw`` may carry ``params=`` (the lower weights to use), forwarded to the model call."""

from __future__ import annotations

import os

import numpy as np

import jittor as jt

#: "mm" (default): jt.matmul(A, w[:, None]), as a user writes ``A @ w``: a 2-D matmul that
#: Jittor's matmul tuner relays to oneDNN (on by default with jboat); "bcast": (A * w).sum(1),
#: the broadcast-multiply-reduce form of the earlier runs, which no tuner relays.
MATMUL = os.environ.get("BENCH_MATMUL", "mm")


def _matvec(A, w):
    if MATMUL == "mm":
        return jt.matmul(A, w.reshape((-1, 1))).reshape((-1,))
    return (A * w).sum(1)


class Vec(jt.nn.Module):
    """One parameter vector ``w``; ``execute(A)`` returns (A w, w), ``execute()`` w."""

    def __init__(self, value):
        super().__init__()
        self.w = jt.array(np.asarray(value, dtype=np.float32))

    def execute(self, A=None):
        if A is None:
            return self.w
        return _matvec(A, self.w), self.w


def softplus(z):
    return z.maximum(0) + jt.log(1 + jt.exp(-z.abs()))


def ll_loss(feed, ul_model, ll_model, **kw):
    pred, w = ll_model(feed["A"], **kw)
    if feed["kind"] == "ridge":
        return ((pred - feed["b"]) ** 2).sum() / (2 * feed["n"]) + \
            0.5 * (jt.exp(ul_model()) * w * w).sum()
    return (jt.sigmoid(ul_model()) * softplus(-feed["t"] * pred)).sum() / feed["n"] + \
        0.5 * feed["mu"] * (w * w).sum()


def ul_loss(feed, ul_model, ll_model, **kw):
    pred, _ = ll_model(feed["A"], **kw)
    if feed["kind"] == "ridge":
        return ((pred - feed["b"]) ** 2).sum() / (2 * feed["n"])
    return softplus(-feed["t"] * pred).mean()


def ul_loss_reg(feed, ul_model, ll_model, **kw):
    """F + rho/2 |x|^2 (``feed["rho"]``): an upper objective that depends on x itself."""
    x = ul_model()
    return ul_loss(feed, ul_model, ll_model, **kw) + (x * x).sum() * (feed.get("rho", 0.0) / 2)


def build(prob, y0):
    """(ll_model, ul_model, ll_feed, ul_feed) for ``prob`` (benchmarks.problems.Problem)."""
    D = prob.data
    f32 = lambda a: jt.array(np.asarray(a, dtype=np.float32))  # noqa: E731
    if prob.kind == "ridge":
        ll_feed = {"kind": "ridge", "A": f32(D["A1"]), "b": f32(D["b1"]), "n": len(D["b1"])}
        ul_feed = {"kind": "ridge", "A": f32(D["A2"]), "b": f32(D["b2"]), "n": len(D["b2"])}
    else:
        ll_feed = {"kind": "logistic", "A": f32(D["A"]), "t": f32(D["t"]), "n": len(D["t"]),
                   "mu": prob.mu}
        ul_feed = {"kind": "logistic", "A": f32(D["C"]), "t": f32(D["s"]), "n": len(D["s"])}
    return Vec(y0), Vec(D["x"]), ll_feed, ul_feed


def units(ll_model, ul_model, ll_feed):
    """(grad_unit, hvp_unit) callables on the real models at y_0."""
    v = jt.array(np.random.RandomState(0).randn(ll_model.w.shape[0]).astype(np.float32))

    def grad_unit():
        return jt.grad(ll_loss(ll_feed, ul_model, ll_model), ll_model.w).numpy()

    def hvp_unit():
        g = jt.grad(ll_loss(ll_feed, ul_model, ll_model), ll_model.w)
        return jt.grad((g * v).sum(), ll_model.w).numpy()

    return grad_unit, hvp_unit
