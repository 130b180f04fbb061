"""The anchor side of the Lasso benchmark: JAXopt's proximal gradient with implicit
differentiation (``jaxopt==0.8.5`` on JAX CPU, its own venv ``/opt/bench-jaxopt``).

    PYTHONPATH=. /opt/bench-jaxopt/bin/python -m benchmarks.lasso_jaxopt --data diabetes \
        --weighted 1

Problem: :mod:`benchmarks.lasso_data` (float64, ``jax_enable_x64``). The lower level is
``ProximalGradient(fun, prox=prox_lasso, implicit_diff=True, tol=TOL, stepsize=1/L,
maxiter=MAXITER)`` (FISTA, JAXopt's default acceleration; the fixed step 1/L with
L = ||X_tr||_2^2 / n_tr from :func:`benchmarks.lasso_data.lipschitz` instead of JAXopt's
default backtracking, which costs extra evaluations per iteration), ``fun(w) = 1/(2 n)
||X_tr w - y_tr||^2`` written as a user writes it, ``hyperparams_prox = exp(x)`` (a
scalar, or one weight per feature: ``prox_lasso`` applies a per-coordinate ``l1reg``).
The hyper-gradient is ``jax.value_and_grad`` of F(w*(x)) through ``solver.run``: JAXopt's
``custom_root`` on ``optimality_fun`` (the prox-gradient fixed point with step 1), whose
linear system is solved by its default ``solve_normal_cg``, here to relative tolerance
``--linsolve-tol`` (default TOL, as the lower solve; JAX's CG default 1e-5 would cap the
agreement near 1e-5).

Timed (``jax.block_until_ready`` on the result): see the protocol in
:mod:`benchmarks.lasso_data`. The first call of each jitted function (XLA compilation) is
run untimed before. Prints one JSON line with the schema of :data:`lasso_data.SCHEMA`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from functools import partial

import numpy as np

from benchmarks import lasso_data

MAXITER = 100_000


def make_grad(X_tr, y_tr, X_val, y_val, weighted: bool, linsolve_tol: float = lasso_data.TOL):
    """The jitted ``grad(x, w0) -> ((F, (w*, iterations)), dF/dx)`` on these arrays."""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jaxopt import ProximalGradient
    from jaxopt.linear_solve import solve_normal_cg
    from jaxopt.prox import prox_lasso

    step = 1.0 / lasso_data.lipschitz(X_tr)
    Xt, yt, Xv, yv = (jnp.asarray(a) for a in (X_tr, y_tr, X_val, y_val))

    def fun(w, X, y):
        r = X @ w - y
        return 0.5 * jnp.dot(r, r) / y.shape[0]

    solver = ProximalGradient(fun=fun, prox=prox_lasso, implicit_diff=True,
                              tol=lasso_data.TOL, stepsize=step, maxiter=MAXITER,
                              implicit_diff_solve=partial(solve_normal_cg, tol=linsolve_tol))

    def outer(x, w0):
        l1reg = jnp.exp(x) if weighted else jnp.exp(x[0])
        w, state = solver.run(w0, l1reg, Xt, yt)
        r = Xv @ w - yv
        return 0.5 * jnp.dot(r, r) / yv.shape[0], (w, state.iter_num)

    return jax.jit(jax.value_and_grad(outer, has_aux=True))


def build(data: str, weighted: bool, linsolve_tol: float):
    """:func:`make_grad` on data set ``data`` (50/50 split), x0 and the train set."""
    X_tr, y_tr, X_val, y_val = lasso_data.load(data)
    grad = make_grad(X_tr, y_tr, X_val, y_val, weighted, linsolve_tol)
    return grad, lasso_data.x0(X_tr, y_tr, weighted), (X_tr, y_tr)


def timed(fn, *args):
    """``(seconds, result)`` of ``fn(*args)`` with the result ready on the host."""
    import jax
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - start, out


def threads() -> int:
    """The thread count set by the harness (``OMP_NUM_THREADS``; XLA_FLAGS say how)."""
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def run(data: str, weighted: bool, reps: int, linsolve_tol: float) -> dict:
    """Cold-start hyper-gradients ``reps`` times and OUTER_ITERS warm-started outer
    iterations, after one untimed compiling call."""
    import jax
    grad, x0, (X_tr, y_tr) = build(data, weighted, linsolve_tol)
    zero = np.zeros(X_tr.shape[1])
    compile_s, _ = timed(grad, x0, zero)
    cold = [timed(grad, x0, zero) for _ in range(reps)]
    (_, (w, iters)), g = cold[-1][1]
    record = {"framework": "jaxopt", "data": data, "weighted": int(weighted),
              "hypergrad": np.asarray(g).tolist(),
              "time_hypergrad_s": [t for t, _ in cold],
              "lower_loss": lasso_data.lower_loss(np.asarray(w), x0, X_tr, y_tr),
              "lower_iters": int(iters)}
    x, w_prev, outer_s = x0, np.asarray(w), []
    for _ in range(lasso_data.OUTER_ITERS):
        seconds, ((_, (w_prev, _)), g) = timed(grad, x, w_prev)
        start = time.perf_counter()
        x = lasso_data.outer_update(x, np.asarray(g))
        outer_s.append(seconds + time.perf_counter() - start)
    record["time_outer_iter_s"] = outer_s
    record.update({"threads": threads(), "first_call_s": compile_s,
                   "reps": reps, "linsolve_tol": linsolve_tol,
                   "versions": {"jax": jax.__version__, "jaxopt": _version("jaxopt"),
                                "numpy": np.__version__},
                   "XLA_FLAGS": os.environ.get("XLA_FLAGS")})
    return record


def _version(dist: str) -> str:
    from importlib.metadata import version
    return version(dist)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=lasso_data.DATASETS, default="diabetes")
    parser.add_argument("--weighted", type=int, choices=(0, 1), default=0)
    parser.add_argument("--reps", type=int, default=5, help="cold hyper-gradients timed")
    parser.add_argument("--linsolve-tol", type=float, default=lasso_data.TOL)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.data, bool(args.weighted), args.reps, args.linsolve_tol)))


if __name__ == "__main__":
    main()
