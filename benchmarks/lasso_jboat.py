"""jboat's side of the Lasso hyper-gradient benchmark (issue 33.6): one JSON line.

Problem: lower level  w*(x) = argmin_w 1/(2n) ||X w - t||^2 + sum_i exp(x_i) |w_i|
(one x: the Lasso; one x per feature with ``--weighted 1``), upper level the validation
mean squared error F(w) = ||X_v w - t_v||^2 / n_v; the hyper-gradient dF(w*(x))/dx at
x_0 = log(0.1 lambda_max), lambda_max = ||X'y||_inf / n, in float64.

Data: ``diabetes`` = sklearn.datasets.load_diabetes (442 x 10), features and target
standardized; ``synthetic`` = sklearn.datasets.make_regression(n_samples=10000,
n_features=2000, n_informative=50, noise=1.0, random_state=0); both split 50/50 into
train / validation with ``train_test_split(test_size=0.5, random_state=0)``.

Per round: the lower level is solved to ||w_{k+1} - w_k|| < 1e-10 by FISTA (NumPy
float64, from zero), then jboat's ``Problem.evaluate`` with PGD (prox ``l1``, warm
started at that solution, one step) and CG with ``linear_solver = "gmres"`` gives the
implicit hyper-gradient (exact on the support, Bertrand et al. 2020).

Output (one line of JSON; the JAXopt side prints the same keys)::

    {"framework": "jboat", "data": "diabetes" | "synthetic", "weighted": 0 | 1,
     "hypergrad": [float, ...],          # dF/dx, 1 or d entries (the last round's)
     "time_hypergrad_s": [float, ...],   # per round: Problem.evaluate (PGD step + CG)
     "time_outer_iter_s": [float, ...],  # per round: lower solve + hyper-gradient
     "threads": int,                     # OMP_NUM_THREADS, else os.cpu_count()
     "lower_loss": float}                # f + penalty at w*

Run: ``python benchmarks/lasso_jboat.py --data diabetes --weighted 0 --rounds 3``.
The first round includes Jittor's compilation of new kernels (later rounds hit the cache).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def load(name: str):
    """(X_train, t_train, X_val, t_val) as float64."""
    from sklearn.datasets import load_diabetes, make_regression
    from sklearn.model_selection import train_test_split

    if name == "diabetes":
        X, t = load_diabetes(return_X_y=True)
        X = (X - X.mean(0)) / X.std(0)
        t = (t - t.mean()) / t.std()
    else:
        X, t = make_regression(n_samples=10000, n_features=2000, n_informative=50,
                               noise=1.0, random_state=0)
    Xa, Xb, ta, tb = train_test_split(X, t, test_size=0.5, random_state=0)
    return (np.asarray(Xa, np.float64), np.asarray(ta, np.float64),
            np.asarray(Xb, np.float64), np.asarray(tb, np.float64))


def fista(X, t, lam, L, tol=1e-10, iters=100000):
    """The weighted Lasso by FISTA to ||w_{k+1} - w_k|| < tol."""
    n = X.shape[0]
    w = np.zeros(X.shape[1])
    z, s = w.copy(), 1.0
    for _ in range(iters):
        g = X.T @ (X @ z - t) / n
        u = z - g / L
        w_new = np.sign(u) * np.maximum(np.abs(u) - lam / L, 0.0)
        s_new = (1 + np.sqrt(1 + 4 * s * s)) / 2
        z = w_new + (s - 1) / s_new * (w_new - w)
        if np.linalg.norm(w_new - w) < tol:
            return w_new
        w, s = w_new, s_new
    return w


def registry():
    """The installed operators, with PGD and the components added when the installed
    entry points predate them (an editable install's stale metadata)."""
    from jboat_core.plugins.registry import Registry
    from jboat_ops.linear_solvers import SOLVERS
    from jboat_ops.pgd import PGD
    from jboat_ops.prox import PROX_MAPS

    reg = Registry.load()
    if "PGD" not in reg.operators:
        reg = reg.with_classes([PGD], "jboat")
    missing = [c for c in SOLVERS + PROX_MAPS if c.name not in reg.components[c.kind]]
    return reg.with_components(missing, "jboat") if missing else reg


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["diabetes", "synthetic"], default="diabetes")
    p.add_argument("--weighted", type=int, choices=[0, 1], default=0)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)

    from jboat_core import Problem, import_jittor
    from jboat_core.testing.sparse import sparse_problem

    jt = import_jittor()
    jt.flags.auto_convert_64_to_32 = 0
    reg = registry()
    X, t, Xv, tv = load(args.data)
    n, d = X.shape
    lam_max = np.abs(X.T @ t).max() / n
    x0 = np.full(d if args.weighted else 1, np.log(0.1 * lam_max))
    lam = np.broadcast_to(np.exp(x0), (d,))
    L = float(np.linalg.norm(X, 2) ** 2 / n)
    times_h, times_o, grad, loss = [], [], None, None
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        w = fista(X, t, lam, L)
        prob = sparse_problem("lasso", X=X, t=t, Xv=Xv, tv=tv, x0=x0, y0=w)
        cfg = {"gm_op": ["PGD"], "na_op": ["CG"], "lower_iters": 1,
               "PGD": {"prox": "l1"},
               "CG": {"k": 1000, "tolerance": 1e-12, "linear_solver": "gmres"}}
        problem = Problem(cfg, ll_objective=prob.ll_objective,
                          ul_objective=prob.ul_objective, ll_model=prob.ll_model,
                          ul_model=prob.ul_model, ll_opt=jt.optim.SGD(prob.ll_var, 1.0 / L),
                          ul_opt=jt.optim.Adam(prob.ul_var, 0.01), registry=reg)
        t1 = time.perf_counter()
        out = problem.evaluate(prob.ll_feed, prob.ul_feed, 0)
        grad = out["hyper_gradients"][0].numpy().astype(np.float64)
        t2 = time.perf_counter()
        times_h.append(t2 - t1)
        times_o.append(t2 - t0)
        loss = float(np.sum((X @ w - t) ** 2) / (2 * n) + np.sum(lam * np.abs(w)))
    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    print(json.dumps({"framework": "jboat", "data": args.data, "weighted": args.weighted,
                      "hypergrad": grad.tolist(), "time_hypergrad_s": times_h,
                      "time_outer_iter_s": times_o, "threads": threads,
                      "lower_loss": loss}))


if __name__ == "__main__":
    main()
