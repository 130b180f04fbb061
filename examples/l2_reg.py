"""Per-feature L2 hyper-parameter learning for linear regression (synthetic data).

40 features of which 8 carry signal; 60 training and 60 validation examples. The upper
level learns one log-penalty x_i per feature:

    f(x, w) = ||X_tr w - t_tr||^2 / (2n) + 1/2 sum_i exp(min(x_i, x_max)) w_i^2,
    F(w)    = ||X_val w - t_val||^2 / (2m).

Reported: test MSE of the lower-level model; the baseline is ridge regression with the
single penalty chosen on the validation set from a grid (closed form, float64).
Reference: Pedregosa, ICML 2016; Lorraine et al., AISTATS 2020.
"""

from __future__ import annotations

import numpy as np

from jboat_core import Task, import_jittor

jt = import_jittor()


def make_data(seed: int, d: int, informative: int, n: int, m: int, n_test: int, noise: float):
    rng = np.random.RandomState(seed)
    w = np.zeros(d)
    w[:informative] = rng.randn(informative) * 2
    def split(k):
        X = rng.randn(k, d)
        return X, X @ w + noise * rng.randn(k)
    return split(n), split(m), split(n_test)


class Linear(jt.nn.Module):
    def __init__(self, d: int):
        self.w = jt.zeros((d,))

    def execute(self, X):
        return jt.matmul(X, self.w.reshape(-1, 1)).reshape(-1)


class LogPenalty(jt.nn.Module):
    def __init__(self, d: int, init: float):
        self.x = jt.full((d,), init)

    def execute(self):
        return self.x


def build(params: dict, seed: int) -> Task:
    d, informative = int(params.get("d", 40)), int(params.get("informative", 8))
    n, m = int(params.get("n_train", 60)), int(params.get("n_val", 60))
    noise = float(params.get("noise", 1.0))
    max_log_penalty = float(params.get("max_log_penalty", 3.0))
    (Xtr, ttr), (Xva, tva), (Xte, tte) = make_data(seed, d, informative, n, m, 1000, noise)
    f32 = lambda a: jt.array(np.asarray(a, np.float32))  # noqa: E731
    ll_feed, ul_feed = {"X": f32(Xtr), "t": f32(ttr)}, {"X": f32(Xva), "t": f32(tva)}
    ll_model, ul_model = Linear(d), LogPenalty(d, float(params.get("log_penalty_init", 0.0)))

    def ll_objective(feed, upper, lower, **kw):
        w = kw["params"][0] if kw.get("params") is not None else lower.w
        r = lower(feed["X"], **kw) - feed["t"]
        penalty = jt.exp(upper().minimum(max_log_penalty))  # bounded: keeps GD stable
        return (r * r).mean() / 2 + 0.5 * (penalty * w * w).sum()

    def ul_objective(feed, upper, lower, **kw):
        r = lower(feed["X"], **kw) - feed["t"]
        return (r * r).mean() / 2

    def gda_loss(ll_feed_dict, ul_feed_dict, upper, lower, **kw):
        a = ll_feed_dict["alpha"]
        return a * ul_objective(ul_feed_dict, upper, lower, **kw) + (1 - a) * ll_objective(
            ll_feed_dict, upper, lower, **kw)

    def test_mse(w) -> float:
        return float(np.mean((Xte @ w - tte) ** 2))

    def evaluate() -> dict:
        return {"test_mse": test_mse(ll_model.w.numpy().astype(np.float64))}

    def baseline() -> dict:
        best = None
        for lam in np.logspace(-4, 2, 61):
            w = np.linalg.solve(Xtr.T @ Xtr / n + lam * np.eye(d), Xtr.T @ ttr / n)
            val = np.mean((Xva @ w - tva) ** 2)
            if best is None or val < best[0]:
                best = (val, lam, w)
        return {"test_mse": test_mse(best[2]), "best_single_penalty": float(best[1])}

    return Task(ll_model, ul_model, ll_objective, ul_objective,
                feeds=lambda it: (ll_feed, ul_feed), evaluate=evaluate, baseline=baseline,
                gda_loss=gda_loss)
