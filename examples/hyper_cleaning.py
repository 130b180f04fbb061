"""Data hyper-cleaning on scikit-learn's digits (shipped with the wheel: no download).

Half of the training labels are replaced by a different random label. The upper level
learns one weight sigmoid(x_i) per training example so that a softmax-regression model
trained on the weighted training loss does well on a small clean validation set:

    f(x, W) = 1/n sum_i sigmoid(x_i) CE(W; a_i, t_i) + mu/2 ||W||^2   (noisy training set)
    F(W)    = 1/m sum_j CE(W; c_j, s_j)                               (clean validation set)

Reported: test accuracy; the baseline's test accuracy (the same model trained on the
corrupted data without weights, to convergence); precision/recall/F1 of flagging the
corrupted examples as those with x_i < 0. Reference: Franceschi et al., ICML 2017.
"""

from __future__ import annotations

import numpy as np

from jboat_core import Task, import_jittor

jt = import_jittor()


def load_data(n_train: int, n_val: int, corruption: float, seed: int):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(y))
    X, y = X[order] / 16.0, y[order]
    Xtr, ytr = X[:n_train], y[:n_train].copy()
    Xval, yval = X[n_train:n_train + n_val], y[n_train:n_train + n_val]
    Xte, yte = X[n_train + n_val:], y[n_train + n_val:]
    corrupted = np.zeros(n_train, bool)
    corrupted[rng.choice(n_train, int(round(corruption * n_train)), replace=False)] = True
    ytr[corrupted] = (ytr[corrupted] + rng.randint(1, 10, corrupted.sum())) % 10
    return (Xtr, ytr, corrupted), (Xval, yval), (Xte, yte)


class Linear(jt.nn.Module):
    """Softmax regression: logits = X W + b."""

    def __init__(self, d: int, c: int):
        self.W = jt.zeros((d, c))
        self.b = jt.zeros((c,))

    def execute(self, X):
        return jt.matmul(X, self.W) + self.b


class Weights(jt.nn.Module):
    """One logit x_i per training example."""

    def __init__(self, n: int):
        self.x = jt.zeros((n,))

    def execute(self):
        return self.x


def cross_entropy(logits, onehot):
    """Per-example cross-entropy, numerically stable."""
    m = logits.max(1, keepdims=True).detach()
    lse = jt.log(jt.exp(logits - m).sum(1)) + m.squeeze(1)
    return lse - (logits * onehot).sum(1)


def _np_train(X, y, weights, lr, steps, mu):
    """Softmax regression by full-batch gradient descent (float64 NumPy): the baseline."""
    n, d = X.shape
    W, b, Y = np.zeros((d, 10)), np.zeros(10), np.eye(10)[y]
    for _ in range(steps):
        z = X @ W + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - Y) * weights[:, None] / n
        W -= lr * (X.T @ g + mu * W)
        b -= lr * g.sum(0)
    return W, b


def build(params: dict, seed: int) -> Task:
    n_train = int(params.get("n_train", 600))
    n_val = int(params.get("n_val", 300))
    mu = float(params.get("mu", 1e-3))
    corruption = float(params.get("corruption", 0.5))
    baseline_steps = int(params.get("baseline_steps", 2000))
    baseline_lr = float(params.get("baseline_lr", 0.5))
    (Xtr, ytr, corrupted), (Xval, yval), (Xte, yte) = load_data(n_train, n_val, corruption, seed)
    f32 = lambda a: jt.array(np.asarray(a, np.float32))  # noqa: E731
    # "idx" names each example's weight: under mpirun every process takes a shard of the
    # rows of the feed (jboat_core.platform.parallel), and x_i must follow its example.
    ll_feed = {"X": f32(Xtr), "Y": f32(np.eye(10)[ytr]),
               "idx": jt.array(np.arange(n_train, dtype=np.int32))}
    ul_feed = {"X": f32(Xval), "Y": f32(np.eye(10)[yval])}
    ll_model, ul_model = Linear(Xtr.shape[1], 10), Weights(n_train)

    def ll_objective(feed, upper, lower, **kw):
        ce = cross_entropy(lower(feed["X"], **kw), feed["Y"])
        W = kw["params"][0] if kw.get("params") is not None else lower.W
        return (jt.sigmoid(upper()[feed["idx"]]) * ce).mean() + 0.5 * mu * (W * W).sum()

    def ul_objective(feed, upper, lower, **kw):
        return cross_entropy(lower(feed["X"], **kw), feed["Y"]).mean()

    def gda_loss(ll_feed_dict, ul_feed_dict, upper, lower, **kw):
        a = ll_feed_dict["alpha"]
        return a * ul_objective(ul_feed_dict, upper, lower, **kw) + (1 - a) * ll_objective(
            ll_feed_dict, upper, lower, **kw)

    Xte32 = f32(Xte)

    def evaluate() -> dict:
        pred = ll_model(Xte32).numpy().argmax(1)
        flagged = ul_model.x.numpy() < 0
        tp = float((flagged & corrupted).sum())
        precision = tp / max(flagged.sum(), 1)
        recall = tp / max(corrupted.sum(), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        return {"test_accuracy": float((pred == yte).mean()), "precision": precision,
                "recall": recall, "f1": f1}

    def baseline() -> dict:
        W, b = _np_train(Xtr, ytr, np.ones(n_train), baseline_lr, baseline_steps, mu)
        Wc, bc = _np_train(Xtr[~corrupted], ytr[~corrupted], np.ones((~corrupted).sum()),
                           baseline_lr, baseline_steps, mu)
        acc = lambda W, b: float(((Xte @ W + b).argmax(1) == yte).mean())  # noqa: E731
        return {"test_accuracy": acc(W, b), "clean_only_test_accuracy": acc(Wc, bc)}

    return Task(ll_model, ul_model, ll_objective, ul_objective,
                feeds=lambda it: (ll_feed, ul_feed), evaluate=evaluate, baseline=baseline,
                gda_loss=gda_loss)
