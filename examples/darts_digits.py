"""Differentiable architecture search (DARTS) on scikit-learn's digits (8x8 images, no
download).

The supernet (``jboat_core.testing.networks.SuperNet``): a Conv-BN stem, one cell of
``nodes`` nodes whose edges mix {none, skip, 3x3 average pool, 3x3 ReLU-Conv-BN} with
weights softmax(alpha), global pooling and a linear classifier. Both levels live in the
one module: the lower variables are the network weights w, the upper variables the
architecture logits alpha (``ul_var=[net.alphas]``):

    f(alpha, w) = CE(train batch; w, alpha),    F(alpha, w) = CE(validation batch; w, alpha).

``darts_digits.toml`` is second-order DARTS (NGD, one step, then FD: the finite-difference
Hessian-vector product of Liu et al.); ``darts_digits_first_order.toml`` is first-order
DARTS (the first-order solver ALTO: one weight step, then grad_alpha F at the new
weights). With ``copy_last_param`` the weights keep training across outer iterations,
SGD momentum included.

Reported at the end: the derived cell (for each node its strongest non-zero edge, as
DARTS derives it), the supernet's test accuracy, and the test accuracy of the derived
architecture trained from scratch on train + validation (``retrain_steps`` SGD steps);
the baseline is a random architecture (the same number of nodes, a random edge and
operation each) trained the same way. Reference: Liu, Simonyan, Yang, ICLR 2019.
"""

from __future__ import annotations

import numpy as np

from jboat_core import Task, import_jittor
from jboat_core.testing.networks import PRIMITIVES, SuperNet

jt = import_jittor()


def load(n_train: int, n_val: int, seed: int):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(y))
    X = (X[order] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = y[order].astype(np.int32)
    a, b = n_train, n_train + n_val
    return (X[:a], y[:a]), (X[a:b], y[a:b]), (X[b:], y[b:])


def cross_entropy(logits, target):
    return jt.nn.cross_entropy_loss(logits, target)


def fixed(genotype, channels: int, nodes: int, seed: int) -> SuperNet:
    """A network of the derived architecture: the supernet with one-hot architecture
    logits (the chosen operation on the chosen edge of each node, ``none`` elsewhere)."""
    jt.set_global_seed(seed)
    net = SuperNet(channels=channels, nodes=nodes, seed=seed)
    logits = np.full(net.alphas.shape, -1e4, np.float32)
    logits[:, PRIMITIVES.index("none")] = 1e4
    k = 0
    for j in range(nodes):
        for i in range(j + 1):
            node, src, op = genotype[j]
            if src == i:
                logits[k] = -1e4
                logits[k, PRIMITIVES.index(op)] = 1e4
            k += 1
    net.alphas.update(jt.array(logits))
    net.alphas.stop_grad()
    return net


def train_fixed(net, X, y, steps: int, lr: float, batch: int, seed: int) -> None:
    opt = jt.optim.SGD(net.weights(), lr, momentum=0.9, weight_decay=3e-4)
    rng = np.random.RandomState(seed)
    for _ in range(steps):
        idx = rng.randint(0, len(y), batch)
        opt.step(cross_entropy(net(jt.array(X[idx])), jt.array(y[idx])))


def accuracy(net, X, y) -> float:
    preds = []
    for s in range(0, len(y), 256):
        preds.append(net(jt.array(X[s:s + 256])).numpy().argmax(1))
    return float((np.concatenate(preds) == y).mean())


def build(params: dict, seed: int) -> Task:
    channels, nodes = int(params.get("channels", 8)), int(params.get("nodes", 3))
    n_train, n_val = int(params.get("n_train", 600)), int(params.get("n_val", 600))
    batch = int(params.get("batch", 64))
    retrain_steps = int(params.get("retrain_steps", 400))
    retrain_lr = float(params.get("retrain_lr", 0.05))
    (Xtr, ytr), (Xval, yval), (Xte, yte) = load(n_train, n_val, seed)
    net = SuperNet(channels=channels, nodes=nodes, seed=seed)

    def objective(feed, upper, lower, **kw):
        return cross_entropy(lower(feed["data"], **kw), feed["target"])

    def feeds(it: int):
        rng = np.random.RandomState(seed * 1_000_003 + it)
        i, j = rng.randint(0, n_train, batch), rng.randint(0, n_val, batch)
        return ({"data": jt.array(Xtr[i]), "target": jt.array(ytr[i])},
                {"data": jt.array(Xval[j]), "target": jt.array(yval[j])})

    def describe(genotype) -> str:
        return ", ".join(f"node{n} <- {op}(s{src})" for n, src, op in genotype)

    def retrained(genotype) -> float:
        X, y = np.concatenate([Xtr, Xval]), np.concatenate([ytr, yval])
        model = fixed(genotype, channels, nodes, seed + 1)
        train_fixed(model, X, y, retrain_steps, retrain_lr, batch, seed + 1)
        return accuracy(model, Xte, yte)

    def evaluate() -> dict:
        return {"supernet_test_accuracy": accuracy(net, Xte, yte),
                "cell": describe(net.genotype())}

    def final() -> dict:
        return {"derived_test_accuracy": retrained(net.genotype())}

    def baseline() -> dict:
        rng = np.random.RandomState(seed + 7)
        genotype = [(j + 1, int(rng.randint(0, j + 1)), str(rng.choice(PRIMITIVES[1:])))
                    for j in range(nodes)]
        return {"random_cell": describe(genotype),
                "random_cell_test_accuracy": retrained(genotype)}

    return Task(net, net, objective, objective, feeds=feeds, evaluate=evaluate,
                baseline=baseline, final=final, ll_var=net.weights(), ul_var=[net.alphas])
