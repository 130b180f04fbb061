"""Sparse regression with one L1 penalty per feature (the weighted Lasso), learned by
implicit hyper-gradients through proximal gradient descent.

Data: ``sklearn.datasets.make_regression`` (400 examples, 50 features, 10 informative,
noise 100), target divided by its training standard deviation, rows split 50/25/25 into
train, validation and test. The upper level learns one log-penalty x_i per feature:

    f(x, w) = ||X_tr w - t_tr||^2 / (2n) + sum_i exp(x_i) |w_i|   (PGD, prox weighted_l1),
    F(w)    = ||X_val w - t_val||^2 / (2m).

The hyper-gradient is the implicit one of PGD's fixed point w = prox(w - eta grad f),
solved by GMRES (the system is not symmetric); at a converged lower level it is exact on
the support (Bertrand et al., "Implicit differentiation of Lasso-type models for
hyperparameter optimization", ICML 2020). x starts at log(0.01 lambda_max) on every feature
(``log_penalty_start`` is that log-fraction), so that the informative features are on the
support at the start: a feature off the support has dF/dx_i = 0 and never comes back.

Reported: validation and test MSE (in units of the training target's variance) of the
lower-level model, and its support; the baseline is scikit-learn's ``LassoCV`` (5-fold
cross-validation on the training split, 100 penalties, one for every feature).
"""

from __future__ import annotations

import numpy as np

from jboat_core import Task, import_jittor

jt = import_jittor()


def make_data(seed: int, n: int, d: int, informative: int, noise: float):
    """((X_tr, t_tr), (X_val, t_val), (X_te, t_te)), float64, the target scaled."""
    from sklearn.datasets import make_regression

    X, t = make_regression(n_samples=n, n_features=d, n_informative=informative,
                           noise=noise, random_state=seed)
    order = np.random.RandomState(seed).permutation(n)
    tr, va, te = np.split(order, [n // 2, (3 * n) // 4])
    t = t / t[tr].std()
    return (X[tr], t[tr]), (X[va], t[va]), (X[te], t[te])


class Linear(jt.nn.Module):
    def __init__(self, d: int):
        self.w = jt.zeros((d,))

    def execute(self, X):
        return jt.matmul(X, self.w)


class LogPenalty(jt.nn.Module):
    def __init__(self, d: int, init: float):
        self.x = jt.full((d,), init)

    def execute(self):
        return self.x


def mse(w, X, t) -> float:
    """||X w - t||^2 / (2 rows), float64."""
    r = X @ w - t
    return float(r @ r / (2 * len(t)))


def lasso_cv(data) -> dict:
    """scikit-learn's LassoCV on the training split; its validation and test MSE."""
    from sklearn.linear_model import LassoCV

    (Xtr, ttr), (Xva, tva), (Xte, tte) = data
    w = LassoCV(cv=5, fit_intercept=False, n_jobs=1).fit(Xtr, ttr).coef_
    return {"val_mse": mse(w, Xva, tva), "test_mse": mse(w, Xte, tte),
            "support": int(np.count_nonzero(w))}


def build(params: dict, seed: int) -> Task:
    n, d = int(params.get("n_samples", 400)), int(params.get("n_features", 50))
    data = make_data(seed, n, d, int(params.get("n_informative", 10)),
                     float(params.get("noise", 10.0)))
    (Xtr, ttr), (Xva, tva), (Xte, tte) = data
    lam_max = np.abs(Xtr.T @ ttr).max() / len(ttr)
    x0 = np.log(lam_max) + float(params.get("log_penalty_start", np.log(0.01)))
    f32 = lambda a: jt.array(np.asarray(a, np.float32))  # noqa: E731
    ll_feed, ul_feed = {"X": f32(Xtr), "t": f32(ttr)}, {"X": f32(Xva), "t": f32(tva)}
    ll_model, ul_model = Linear(d), LogPenalty(d, float(x0))

    def ll_objective(feed, upper, lower, **kw):
        """The smooth part of f; PGD's prox adds sum_i exp(x_i) |w_i|."""
        r = lower(feed["X"], **kw) - feed["t"]
        return (r * r).mean() / 2

    def ul_objective(feed, upper, lower, **kw):
        r = lower(feed["X"], **kw) - feed["t"]
        return (r * r).mean() / 2

    def evaluate() -> dict:
        w = ll_model.w.numpy().astype(np.float64)
        return {"val_mse": mse(w, Xva, tva), "test_mse": mse(w, Xte, tte),
                "support": int(np.count_nonzero(w))}

    return Task(ll_model, ul_model, ll_objective, ul_objective,
                feeds=lambda it: (ll_feed, ul_feed), evaluate=evaluate,
                baseline=lambda: lasso_cv(data))
