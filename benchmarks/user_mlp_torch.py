"""The user-shaped MLP hyper-cleaning problem in PyTorch (for upstream ``boat-torch``),
the same formulas as :mod:`benchmarks.user_mlp_jt`, written as a user writes them
(``torch.nn.Linear``, ``F.cross_entropy``), float32 on the CPU."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as Fn


class MLP(torch.nn.Module):
    """d-h-c perceptron with one ReLU."""

    def __init__(self, d: int, h: int, c: int):
        super().__init__()
        self.fc1 = torch.nn.Linear(d, h)
        self.fc2 = torch.nn.Linear(h, c)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Weights(torch.nn.Module):
    """One logit per training example; the example's weight is its sigmoid."""

    def __init__(self, n: int):
        super().__init__()
        self.x = torch.nn.Parameter(torch.zeros(n))

    def forward(self):
        return self.x


def ll_loss(feed, ul_model, ll_model, **kw):
    """Weighted training cross-entropy (the lower objective)."""
    ce = Fn.cross_entropy(ll_model(feed["X"], **kw), feed["y"], reduction="none")
    return (torch.sigmoid(ul_model()) * ce).mean()


def ul_loss(feed, ul_model, ll_model, **kw):
    """Validation cross-entropy (the upper objective)."""
    return Fn.cross_entropy(ll_model(feed["X"], **kw), feed["y"])


def build(data: dict, init: dict):
    d, h = init["W1"].shape[1], init["W1"].shape[0]
    c = init["W2"].shape[0]
    ll, ul = MLP(d, h, c), Weights(len(data["ytr"]))
    with torch.no_grad():
        for layer, (W, b) in ((ll.fc1, ("W1", "b1")), (ll.fc2, ("W2", "b2"))):
            layer.weight.copy_(torch.from_numpy(init[W]))
            layer.bias.copy_(torch.from_numpy(init[b]))
    ll_feed = {"X": torch.from_numpy(data["Xtr"]), "y": torch.from_numpy(data["ytr"].astype(np.int64))}
    ul_feed = {"X": torch.from_numpy(data["Xval"]), "y": torch.from_numpy(data["yval"].astype(np.int64))}
    return ll, ul, ll_feed, ul_feed


def upper_value(ul_feed, ul_model, ll_model) -> float:
    with torch.no_grad():
        return float(ul_loss(ul_feed, ul_model, ll_model).item())
