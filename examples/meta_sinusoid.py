"""Few-shot sinusoid regression by MAML (IAD) or first-order MAML (FOA + IAD).

Tasks y = A sin(x + phase), A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5], generated with
NumPy (no download). The same MLP 1-40-40-1 is the model at both levels: the lower level
adapts it to a task's support set in K SGD steps, the upper level learns the
initialisation so that adapted models predict the query set well:

    f(y; task) = MSE(support) [+ lam/2 ||y - theta||^2],   F(y_K(theta); task) = MSE(query),
    y_0 = theta.

The optional proximal term (``proximal = lam``) makes IAD + CG/NS the implicit iMAML
meta-gradient (Rajeswaran et al., NeurIPS 2019); without it the implicit gradient with
respect to theta is zero and only the unrolled IAD is meaningful.

Reported: meta-test MSE on 20 held-out tasks after K adaptation steps, for the learned
initialisation and, as the baseline, for the initialisation before meta-training.
Reference: Finn et al., ICML 2017; Nichol et al., 2018.
"""

from __future__ import annotations

import numpy as np

from jboat_core.numerics import FunctionalModel
from jboat_core import Task, import_jittor

jt = import_jittor()


def sample_tasks(rng, n_tasks: int, shots: int, queries: int):
    tasks = []
    for _ in range(n_tasks):
        amp, phase = rng.uniform(0.1, 5.0), rng.uniform(0, np.pi)
        xs = rng.uniform(-5, 5, (shots + queries, 1)).astype(np.float32)
        ys = (amp * np.sin(xs + phase)).astype(np.float32)
        tasks.append(({"x": jt.array(xs[:shots]), "y": jt.array(ys[:shots])},
                      {"x": jt.array(xs[shots:]), "y": jt.array(ys[shots:])}))
    return tasks


class MLP(jt.nn.Module):
    def __init__(self, hidden: int = 40):
        self.net = jt.nn.Sequential(jt.nn.Linear(1, hidden), jt.nn.ReLU(),
                                    jt.nn.Linear(hidden, hidden), jt.nn.ReLU(),
                                    jt.nn.Linear(hidden, 1))

    def execute(self, x):
        return self.net(x)


def mse(model, feed, **kw):
    return ((model(feed["x"], **kw) - feed["y"]) ** 2).mean()


def build(params: dict, seed: int) -> Task:
    shots, queries = int(params.get("shots", 10)), int(params.get("queries", 10))
    meta_batch = int(params.get("meta_batch", 4))
    adapt_steps, adapt_lr = int(params.get("adapt_steps", 3)), float(params.get("adapt_lr", 0.05))
    hidden = int(params.get("hidden", 40))
    proximal = float(params.get("proximal", 0.0))
    model = MLP(hidden)
    theta = model.parameters()  # the meta-parameters (updated in place by the optimizer)
    test_tasks = sample_tasks(np.random.RandomState(10_000 + seed), 20, shots, 100)
    initial = [p.numpy().copy() for p in model.parameters()]

    def ll_objective(feed, upper, lower, **kw):
        loss = mse(lower, feed, **kw)
        if proximal > 0:  # iMAML's proximal term: the adapted weights stay near theta
            y = kw.get("params") or theta
            loss = loss + 0.5 * proximal * sum(((a - b) ** 2).sum() for a, b in zip(y, theta))
        return loss

    def ul_objective(feed, upper, lower, **kw):
        return mse(lower, feed, **kw)

    def gda_loss(ll_feed_dict, ul_feed_dict, upper, lower, **kw):
        a = ll_feed_dict["alpha"]
        return a * ul_objective(ul_feed_dict, upper, lower, **kw) + (1 - a) * ll_objective(
            ll_feed_dict, upper, lower, **kw)

    def feeds(it: int):
        tasks = sample_tasks(np.random.RandomState(seed * 1_000_003 + it), meta_batch,
                             shots, queries)
        return [t[0] for t in tasks], [t[1] for t in tasks]

    def meta_test_mse() -> float:
        errs = []
        for support, query in test_tasks:
            fm = FunctionalModel(model, track=False)
            for _ in range(adapt_steps):
                y = fm.parameters()
                g = jt.grad(mse(fm, support, params=y), y)
                fm.update_params([(p - adapt_lr * gi).detach() for p, gi in zip(y, g)])
            errs.append(mse(fm, query))
        return float(jt.concat([e.reshape(1) for e in errs]).mean().item())

    def evaluate() -> dict:
        return {"meta_test_mse": meta_test_mse()}

    def baseline() -> dict:
        trained = [p.numpy().copy() for p in model.parameters()]
        for p, a in zip(model.parameters(), initial):
            p.update(jt.array(a))
        out = {"meta_test_mse_before_meta_training": meta_test_mse()}
        for p, a in zip(model.parameters(), trained):
            p.update(jt.array(a))
        return out

    return Task(model, model, ll_objective, ul_objective, feeds=feeds, evaluate=evaluate,
                baseline=baseline, gda_loss=gda_loss)
