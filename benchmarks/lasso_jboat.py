"""jboat's side of the Lasso hyper-gradient benchmark (issue 33.6), with jboat's public API.

    PYTHONPATH=. flock /tmp/jboat-jittor.lock ~/.venvs/jboat/bin/python \
        -m benchmarks.lasso_jboat --data diabetes --weighted 1

Problem and protocol: :mod:`benchmarks.lasso_data` (float64, the same split, x0, TOL and
outer step as the JAXopt side; one JSON line with the keys of ``lasso_data.SCHEMA``).

How jboat computes dF/dx here, as a user writes it:

* **Lower solve**: FISTA (Beck & Teboulle 2009) in NumPy float64 with the fixed step 1/L
  (L from :func:`benchmarks.lasso_data.lipschitz`), warm-started at the previous w*,
  stopped when the prox-gradient mapping L ||w_{k+1} - z_k|| falls below ``lasso_data.TOL``
  (the step-1 fixed-point residual JAXopt's ``ProximalGradient`` stops on, measured at
  the extrapolated point so that no extra gradient is needed).
* **Hyper-gradient**: ``jboat_core.Problem`` with ``gm_op = ["PGD"]`` (prox
  ``weighted_l1``, lambda = exp(x), one x or one per feature), one PGD step from w*, then
  ``na_op = ["CG"]`` with ``linear_solver = "gmres"``: (I - d_w T)^T v = grad_w F for PGD's
  declared fixed point T(w) = prox(w - grad f / L), dF/dx = (d_x T)^T v, which on the
  support is the closed form of Bertrand et al. (ICML 2020). The lower and upper
  objectives are Jittor code on float64 Vars (``jt.matmul``), the Problem is built once
  per process and its variables are assigned the new x and w* at each call.

Timed per call: the FISTA solve and ``Problem.evaluate`` ended by ``.numpy()`` of dF/dx;
the split between the two is in the record (``time_lower_s``, ``time_implicit_s``).
:func:`make_provider` gives ``benchmarks.lasso_selection`` its ``--provider jboat``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from benchmarks import lasso_data

GMRES = {"k": 1000, "tolerance": lasso_data.TOL, "linear_solver": "gmres"}
MAXITER = 100_000


def fista(X, y, lam, L, w0, tol=lasso_data.TOL, maxiter=MAXITER):
    """The weighted Lasso by FISTA from ``w0``: ``(w*, iterations)``."""
    n = len(y)
    w, z, s = w0.copy(), w0.copy(), 1.0
    for k in range(1, maxiter + 1):
        u = z - (X.T @ (X @ z - y)) / (n * L)
        w_new = np.sign(u) * np.maximum(np.abs(u) - lam / L, 0.0)
        if L * np.linalg.norm(w_new - z) < tol:
            return w_new, k
        s_new = (1 + np.sqrt(1 + 4 * s * s)) / 2
        z = w_new + (s - 1) / s_new * (w_new - w)
        w, s = w_new, s_new
    return w, maxiter


class LassoHypergradient:
    """dF/dx of the (weighted) Lasso by jboat: ``self(x, w0) -> (F, dF/dx, w*, info)``."""

    def __init__(self, X_tr, y_tr, X_val, y_val, size: int, gmres: dict | None = None):
        from jboat_core import Problem, import_jittor

        jt = import_jittor()
        jt.flags.auto_convert_64_to_32 = 0
        self.jt, self.data = jt, (X_tr, y_tr, X_val, y_val)
        self.L = lasso_data.lipschitz(X_tr)
        d = X_tr.shape[1]
        self.ll_model, self.ul_model = _vector(jt, np.zeros(d)), _vector(jt, np.zeros(size))
        var = lambda a: jt.array(np.asarray(a, np.float64))  # noqa: E731
        self.ll_feed = {"X": var(X_tr), "y": var(y_tr), "c": 0.5 / len(y_tr)}
        self.ul_feed = {"X": var(X_val), "y": var(y_val), "c": 0.5 / len(y_val)}
        cfg = {"gm_op": ["PGD"], "na_op": ["CG"], "lower_iters": 1,
               "PGD": {"prox": "weighted_l1"}, "CG": {**GMRES, **(gmres or {})}}
        self.problem = Problem(cfg, ll_objective=_mse, ul_objective=_mse,
                               ll_model=self.ll_model, ul_model=self.ul_model,
                               ll_opt=jt.optim.SGD([self.ll_model.w], 1.0 / self.L),
                               ul_opt=jt.optim.Adam([self.ul_model.w], 0.01))

    def __call__(self, x, w0):
        X_tr, y_tr, X_val, y_val = self.data
        x = np.asarray(x, np.float64)
        start = time.perf_counter()
        lam = lasso_data.penalties(x, X_tr.shape[1])
        w, iters = fista(X_tr, y_tr, lam, self.L, np.asarray(w0, np.float64))
        mid = time.perf_counter()
        self.ll_model.w.assign(self.jt.array(w))
        self.ul_model.w.assign(self.jt.array(x))
        out = self.problem.evaluate(self.ll_feed, self.ul_feed, 0)
        g = out["hyper_gradients"][0].numpy().astype(np.float64)
        end = time.perf_counter()
        return (lasso_data.upper_loss(w, X_val, y_val), g, w,
                {"lower_s": mid - start, "implicit_s": end - mid, "lower_iters": iters})


def _vector(jt, value):
    """A Jittor module holding one float64 parameter vector ``w``; ``execute(A) = A w``
    (the class is made here so that importing this module does not import Jittor)."""

    class Vector(jt.nn.Module):
        def __init__(self):
            self.w = jt.array(np.asarray(value, np.float64))

        def execute(self, A=None):
            return self.w if A is None else jt.matmul(A, self.w)

    return Vector()


def _mse(feed, ul_model, ll_model, **kw):
    """c ||A w - b||^2: f (train) and F (validation), c = 1 / (2 n)."""
    r = ll_model(feed["X"], **kw) - feed["y"]
    return (r * r).sum() * feed["c"]


def make_provider(X_tr, y_tr, X_val, y_val):
    """``new()`` for ``benchmarks.lasso_selection --provider jboat``: each ``new()`` gives a
    fresh ``provider(x) -> (F, dF/dx)`` (one log-penalty per feature, x of shape (d,)),
    cold at its first call, warm-started at the previous w* after. One Problem is shared."""
    hg = LassoHypergradient(X_tr, y_tr, X_val, y_val, X_tr.shape[1])

    def new():
        state = {"w": np.zeros(X_tr.shape[1])}

        def provider(x):
            F, g, state["w"], _ = hg(x, state["w"])
            return F, g
        return provider
    return new


def run(data: str, weighted: bool, reps: int) -> dict:
    """The side's record (``lasso_data`` protocol): one untimed call, ``reps`` cold calls,
    ``lasso_data.OUTER_ITERS`` warm-started outer iterations."""
    X_tr, y_tr, X_val, y_val = lasso_data.load(data)
    x0 = lasso_data.x0(X_tr, y_tr, weighted)
    zero = np.zeros(X_tr.shape[1])
    start = time.perf_counter()
    hg = LassoHypergradient(X_tr, y_tr, X_val, y_val, len(x0))
    hg(x0, zero)
    first = time.perf_counter() - start
    cold = []
    for _ in range(reps):
        t0 = time.perf_counter()
        F, g, w, info = hg(x0, zero)
        cold.append((time.perf_counter() - t0, info))
    record = {"framework": "jboat", "data": data, "weighted": int(weighted),
              "hypergrad": g.tolist(), "time_hypergrad_s": [t for t, _ in cold],
              "time_lower_s": [i["lower_s"] for _, i in cold],
              "time_implicit_s": [i["implicit_s"] for _, i in cold],
              "lower_loss": lasso_data.lower_loss(w, x0, X_tr, y_tr),
              "lower_iters": info["lower_iters"], "first_call_s": first, "reps": reps}
    x, w_prev, outer = x0, w, []
    for _ in range(lasso_data.OUTER_ITERS):
        t0 = time.perf_counter()
        _, g, w_prev, _ = hg(x, w_prev)
        x = lasso_data.outer_update(x, g)
        outer.append(time.perf_counter() - t0)
    import jittor
    record.update({"time_outer_iter_s": outer,
                   "threads": int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1),
                   "versions": {"jittor": jittor.__version__, "numpy": np.__version__}})
    return record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=lasso_data.DATASETS, default="diabetes")
    parser.add_argument("--weighted", type=int, choices=(0, 1), default=0)
    parser.add_argument("--reps", type=int, default=5, help="cold hyper-gradients timed")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.data, bool(args.weighted), args.reps)))


if __name__ == "__main__":
    main()
