"""The user-shaped MLP hyper-cleaning problem in Jittor, written as a user writes it
(``jt.nn.Linear`` layers, Jittor's own cross-entropy), shared by jboat and upstream
boat-jit so both run the very same graph (``benchmarks.user_mlp``).

Signature (upstream's): ``obj(feed, ul_model, ll_model, **kw)``; ``kw`` may carry
``params=`` (the lower weights of the inner loop), forwarded to the model call."""

from __future__ import annotations

import jittor as jt
import numpy as np


class MLP(jt.nn.Module):
    """d-h-c perceptron with one ReLU."""

    def __init__(self, d: int, h: int, c: int):
        super().__init__()
        self.fc1 = jt.nn.Linear(d, h)
        self.fc2 = jt.nn.Linear(h, c)

    def execute(self, x):
        return self.fc2(jt.nn.relu(self.fc1(x)))


class Weights(jt.nn.Module):
    """One logit per training example; the example's weight is its sigmoid."""

    def __init__(self, n: int):
        super().__init__()
        self.x = jt.zeros((n,))

    def execute(self):
        return self.x


def ll_loss(feed, ul_model, ll_model, **kw):
    """Weighted training cross-entropy (the lower objective)."""
    ce = jt.nn.cross_entropy_loss(ll_model(feed["X"], **kw), feed["y"], reduction="none")
    return (jt.sigmoid(ul_model()) * ce).mean()


def ul_loss(feed, ul_model, ll_model, **kw):
    """Validation cross-entropy (the upper objective)."""
    return jt.nn.cross_entropy_loss(ll_model(feed["X"], **kw), feed["y"])


def build(data: dict, init: dict):
    """(ll_model, ul_model, ll_feed, ul_feed); the MLP starts at ``init``'s NumPy weights
    (the same start in every framework)."""
    d, h = init["W1"].shape[1], init["W1"].shape[0]
    c = init["W2"].shape[0]
    ll, ul = MLP(d, h, c), Weights(len(data["ytr"]))
    for layer, (W, b) in ((ll.fc1, ("W1", "b1")), (ll.fc2, ("W2", "b2"))):
        layer.weight.assign(jt.array(init[W]))
        layer.bias.assign(jt.array(init[b]))
    ll_feed = {"X": jt.array(data["Xtr"]), "y": jt.array(data["ytr"].astype(np.int32))}
    ul_feed = {"X": jt.array(data["Xval"]), "y": jt.array(data["yval"].astype(np.int32))}
    return ll, ul, ll_feed, ul_feed


def upper_value(ul_feed, ul_model, ll_model) -> float:
    with jt.no_grad():
        return float(ul_loss(ul_feed, ul_model, ll_model).item())
