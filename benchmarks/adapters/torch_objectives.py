"""The benchmark objectives in PyTorch (for upstream ``boat-torch``), the same formulas
as :mod:`benchmarks.adapters.jt_objectives`, float32 on the CPU."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as Fn


class Vec(torch.nn.Module):
    """One parameter vector ``w``; ``forward(A)`` returns (A w, w), ``forward()`` w."""

    def __init__(self, value):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(np.asarray(value, dtype=np.float32)))

    def forward(self, A=None):
        if A is None:
            return self.w
        return A @ self.w, self.w


def ll_loss(feed, ul_model, ll_model, **kw):
    pred, w = ll_model(feed["A"], **kw)
    if feed["kind"] == "ridge":
        return ((pred - feed["b"]) ** 2).sum() / (2 * feed["n"]) + \
            0.5 * (torch.exp(ul_model()) * w * w).sum()
    return (torch.sigmoid(ul_model()) * Fn.softplus(-feed["t"] * pred)).sum() / feed["n"] + \
        0.5 * feed["mu"] * (w * w).sum()


def ul_loss(feed, ul_model, ll_model, **kw):
    pred, _ = ll_model(feed["A"], **kw)
    if feed["kind"] == "ridge":
        return ((pred - feed["b"]) ** 2).sum() / (2 * feed["n"])
    return Fn.softplus(-feed["t"] * pred).mean()


def ul_loss_reg(feed, ul_model, ll_model, **kw):
    """F + rho/2 |x|^2 (``feed["rho"]``): an upper objective that depends on x itself."""
    x = ul_model()
    return ul_loss(feed, ul_model, ll_model, **kw) + (x * x).sum() * (feed.get("rho", 0.0) / 2)


def build(prob, y0):
    D = prob.data
    f32 = lambda a: torch.tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    if prob.kind == "ridge":
        ll_feed = {"kind": "ridge", "A": f32(D["A1"]), "b": f32(D["b1"]), "n": len(D["b1"])}
        ul_feed = {"kind": "ridge", "A": f32(D["A2"]), "b": f32(D["b2"]), "n": len(D["b2"])}
    else:
        ll_feed = {"kind": "logistic", "A": f32(D["A"]), "t": f32(D["t"]), "n": len(D["t"]),
                   "mu": prob.mu}
        ul_feed = {"kind": "logistic", "A": f32(D["C"]), "t": f32(D["s"]), "n": len(D["s"])}
    return Vec(y0), Vec(D["x"]), ll_feed, ul_feed


def units(ll_model, ul_model, ll_feed):
    v = torch.tensor(np.random.RandomState(0).randn(ll_model.w.shape[0]).astype(np.float32))

    def grad_unit():
        (g,) = torch.autograd.grad(ll_loss(ll_feed, ul_model, ll_model), ll_model.w)
        return g.numpy()

    def hvp_unit():
        (g,) = torch.autograd.grad(ll_loss(ll_feed, ul_model, ll_model), ll_model.w,
                                   create_graph=True)
        (h,) = torch.autograd.grad((g * v).sum(), ll_model.w)
        return h.numpy()

    return grad_unit, hvp_unit
