"""Weighted-Lasso selection by hyper-gradient against scikit-learn's ``LassoCV`` grid
(issue 33 item 6, the user's question).

    ~/.venvs/jboat/bin/python -m benchmarks.lasso_selection                       # NumPy reference
    PYTHONPATH=. /opt/bench-jaxopt/bin/python -m benchmarks.lasso_selection --provider jaxopt
    ~/.venvs/jboat/bin/python -m benchmarks.lasso_selection --provider jboat      # see below

Data: :func:`benchmarks.lasso_data.load_three_way` (50/25/25 train / validation / test;
default ``synthetic``, 10,000 x 2,000). Errors are 1/(2 n) ||X w - y||^2 on a split.

* **Grid**: ``LassoCV(cv=5, fit_intercept=False)`` with scikit-learn's default grid (100
  alphas, eps 1e-3) on the train split, ``n_jobs=1``; its fit time (path on 5 folds and the
  refit), then its validation and test errors.
* **Hyper-gradient descent** on F(x) = validation error of w*(x), from x0 =
  log(0.1 lambda_max), Adam (``--lr``, betas 0.9 / 0.999), in two stages:
  ``--single-iters`` iterations on one penalty shared by every feature, then ``--iters``
  on one log-penalty per feature. (Per feature from the start it stalls: a feature off
  the support has dF/dx_i = 0, so an informative feature left out at x0 never comes back;
  on ``synthetic`` the support at x0 has 41 features, 50 are informative, and F stalled at
  123, 19 x LassoCV's validation error, after 100 iterations.) The lower solve is
  warm-started at the previous w* inside the provider. Reported: the time (provider calls
  and Adam steps only) until F first reaches LassoCV's validation error, the test error
  there, and the best iterate's. Test
  errors are evaluated outside the timed part with the exact w*(x) of
  :mod:`benchmarks.lasso_reference`.

Providers (``--provider``): a provider is made by ``factory(X_tr, y_tr, X_val, y_val)``,
which returns ``new()``; ``new()`` returns a fresh ``provider(x) -> (F, dF/dx)`` (cold start,
then warm starts). ``new()`` is called once for an untimed warm-up call at x0 (compilation)
and once more for the timed run. ``reference``: scikit-learn coordinate descent polished on
the support and the closed form (:mod:`benchmarks.lasso_reference`); ``jaxopt``:
:func:`benchmarks.lasso_jaxopt.make_grad` (run in ``/opt/bench-jaxopt``); ``jboat``:
``benchmarks.lasso_jboat.make_provider`` with the same signature as ``factory``, to be
written with jboat's proximal operators (refused in one line while it does not exist).
Results: ``results/lasso_selection_PROVIDER.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from benchmarks import lasso_data, lasso_reference


def reference_factory(X_tr, y_tr, X_val, y_val):
    """``new()`` of NumPy / scikit-learn providers (exact w*, closed-form dF/dx)."""
    def new():
        state = {"w": None}

        def provider(x):
            F, g, state["w"] = lasso_reference.value_and_hypergradient(
                x, X_tr, y_tr, X_val, y_val, state["w"])
            return F, g
        return provider
    return new


def jaxopt_factory(X_tr, y_tr, X_val, y_val):
    """``new()`` of JAXopt providers (one jitted function shared by all of them)."""
    from benchmarks.lasso_jaxopt import make_grad
    grad = make_grad(X_tr, y_tr, X_val, y_val, weighted=True)

    def new():
        state = {"w": np.zeros(X_tr.shape[1])}

        def provider(x):
            (F, (w, _)), g = grad(x, state["w"])
            state["w"] = np.asarray(w)
            return float(F), np.asarray(g)
        return provider
    return new


def jboat_factory(X_tr, y_tr, X_val, y_val):
    """``benchmarks.lasso_jboat.make_provider``, or NotImplementedError saying what is missing."""
    try:
        from benchmarks.lasso_jboat import make_provider
    except ImportError as exc:
        raise NotImplementedError(
            "lasso_selection --provider jboat: benchmarks.lasso_jboat.make_provider(X_tr, "
            f"y_tr, X_val, y_val) cannot be imported ({exc}); run from the repository root "
            "with jboat installed, or use --provider reference or jaxopt") from None
    return make_provider(X_tr, y_tr, X_val, y_val)


PROVIDERS = {"reference": reference_factory, "jaxopt": jaxopt_factory, "jboat": jboat_factory}


def lasso_cv(X_tr, y_tr, X_val, y_val, X_te, y_te) -> dict:
    """LassoCV's fit time, chosen alpha, support and errors."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LassoCV
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LassoCV(cv=5, fit_intercept=False, n_jobs=1).fit(X_tr, y_tr)
    seconds = time.perf_counter() - start
    w = model.coef_
    return {"time_s": seconds, "alpha": float(model.alpha_), "n_alphas": len(model.alphas_),
            "support": int(np.count_nonzero(w)),
            "val_error": lasso_data.upper_loss(w, X_val, y_val),
            "test_error": lasso_data.upper_loss(w, X_te, y_te)}


class Adam:
    """Adam (Kingma & Ba, ICLR 2015) on a NumPy vector: x - lr m_hat / (sqrt(v_hat) + eps)."""

    def __init__(self, lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0
        self.m = self.v = 0.0

    def step(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        return x - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def descend(provider, x0: np.ndarray, single_iters: int, iters: int, lr: float) -> list:
    """Hyper-gradient descent in two stages: ``single_iters`` Adam steps on one shared
    log-penalty s (x = s 1, dF/ds = sum_i dF/dx_i), then ``iters`` on x in R^d from there.
    Returns ``[(seconds so far, F(x_k), x_k)]`` (F from the provider at x_k; the clock
    counts provider calls and steps only)."""
    trace, elapsed = [], 0.0
    s, adam = x0[:1].copy(), Adam(lr)
    x = np.full_like(x0, s[0])
    for k in range(single_iters + iters):
        if k == single_iters:
            adam = Adam(lr)
        start = time.perf_counter()
        F, g = provider(x)
        g = np.asarray(g)
        if k < single_iters:
            s = adam.step(s, np.array([g.sum()]))
            x_next = np.full_like(x0, s[0])
        else:
            x_next = adam.step(x, g)
        elapsed += time.perf_counter() - start
        trace.append((elapsed, float(F), x))
        x = x_next
    return trace


def select(provider_name: str, data: str, single_iters: int, iters: int, lr: float) -> dict:
    """The LassoCV baseline and the hyper-gradient run of ``provider_name``, one record."""
    X_tr, y_tr, X_val, y_val, X_te, y_te = lasso_data.load_three_way(data)
    new = PROVIDERS[provider_name](X_tr, y_tr, X_val, y_val)
    cv = lasso_cv(X_tr, y_tr, X_val, y_val, X_te, y_te)
    x0 = lasso_data.x0(X_tr, y_tr, weighted=True)
    warm_start = time.perf_counter()
    new()(x0)
    warmup_s = time.perf_counter() - warm_start
    trace = descend(new(), x0, single_iters, iters, lr)

    def test_error(x):
        return lasso_data.upper_loss(lasso_reference.solve(x, X_tr, y_tr), X_te, y_te)

    hit = next((k for k, (_, F, _) in enumerate(trace) if F <= cv["val_error"]), None)
    best = min(range(len(trace)), key=lambda k: trace[k][1])
    return {"provider": provider_name, "data": data, "single_iters": single_iters,
            "iters": single_iters + iters, "lr": lr,
            "lassocv": cv, "warmup_s": warmup_s,
            "val_errors": [F for _, F, _ in trace], "times_s": [t for t, _, _ in trace],
            "start": {"val_error": trace[0][1], "test_error": test_error(trace[0][2])},
            "reached": None if hit is None else {
                "iter": hit, "time_s": trace[hit][0], "val_error": trace[hit][1],
                "test_error": test_error(trace[hit][2])},
            "best": {"iter": best, "time_s": trace[best][0], "val_error": trace[best][1],
                     "test_error": test_error(trace[best][2])},
            "total_s": trace[-1][0]}


def table(rec: dict) -> str:
    """The Markdown table of one :func:`select` record."""
    cv, r, b = rec["lassocv"], rec["reached"], rec["best"]
    rows = [
        "| method | time s | validation error | test error | note |",
        "|---|---|---|---|---|",
        f"| LassoCV (5-fold, {cv['n_alphas']} alphas) | {cv['time_s']:.3g} | "
        f"{cv['val_error']:.4g} | {cv['test_error']:.4g} | alpha {cv['alpha']:.4g}, "
        f"{cv['support']} features |",
        f"| hyper-gradient ({rec['provider']}), start x0 | 0 | {rec['start']['val_error']:.4g} "
        f"| {rec['start']['test_error']:.4g} | log(0.1 lambda_max) on every feature |",
    ]
    if r is None:
        rows.append(f"| hyper-gradient ({rec['provider']}), LassoCV's validation error | - | "
                    f"- | - | not reached in {rec['iters']} iterations |")
    else:
        rows.append(f"| hyper-gradient ({rec['provider']}), LassoCV's validation error "
                    f"reached | {r['time_s']:.3g} | {r['val_error']:.4g} | "
                    f"{r['test_error']:.4g} | iteration {r['iter']} |")
    rows.append(f"| hyper-gradient ({rec['provider']}), best of {rec['iters']} | "
                f"{b['time_s']:.3g} | {b['val_error']:.4g} | {b['test_error']:.4g} | "
                f"iteration {b['iter']}; all {rec['iters']}: {rec['total_s']:.3g} s |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=sorted(PROVIDERS), default="reference")
    parser.add_argument("--data", choices=lasso_data.DATASETS, default="synthetic")
    parser.add_argument("--single-iters", type=int, default=30,
                        help="first stage: one shared penalty")
    parser.add_argument("--iters", type=int, default=50, help="second stage: one per feature")
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--out", default="", help="results name ('' : print only)")
    args = parser.parse_args(argv)
    try:
        rec = select(args.provider, args.data, args.single_iters, args.iters, args.lr)
    except NotImplementedError as exc:
        raise SystemExit(str(exc))
    from benchmarks.lasso import machine
    rec["machine"] = machine()
    text = table(rec) + (f"\nData {args.data} (50/25/25), Adam (lr {args.lr}): "
                         f"{args.single_iters} iterations on one shared penalty, then "
                         f"{args.iters} on one per feature; threads: OMP_NUM_THREADS="
                         f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, XLA_FLAGS="
                         f"{os.environ.get('XLA_FLAGS', 'unset')}; {rec['machine']['nproc']} cores "
                         f"({rec['machine']['cpu']}), {rec['machine']['date']}.\n")
    if args.out:
        from benchmarks.rounds import publish
        publish(args.out, [rec], text)
    else:
        print(text)


if __name__ == "__main__":
    main()
