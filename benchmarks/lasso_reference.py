"""The exact Lasso hyper-gradient in float64 NumPy: the target both sides are checked with.

    python -m benchmarks.lasso_reference --data diabetes --weighted 1   # one JSON line

The lower problem of :mod:`benchmarks.lasso_data` is solved by scikit-learn's coordinate
descent on rescaled columns (weighted Lasso with penalties lam: w_i = a u_i / lam_i turns
sum_i lam_i |w_i| into a ||u||_1, a = mean(lam), a plain ``Lasso(alpha=a)`` on X diag(a/lam)),
then polished to machine precision on its support S with signs s: the optimality condition
there is linear,

    H w_S = X_S^T y / n - lam_S * s,   H = X_S^T X_S / n,

and the solution is accepted only if it keeps the signs s and every feature off S satisfies
|X_j^T (y - X w) / n| < lam_j (strict: at a tie w* is not differentiable). On that piece
(Bertrand et al., ICML 2020, Prop. 1; JMLR 2022)

    dw_S/dlam_j = -H^{-1} e_j s_j (j in S),   dw_{S^c}/dlam = 0,

so with g = X_val,S^T (X_val w - y_val) / n_val (grad F on S) and v = H^{-1} g,

    dF/dx_j = -v_j s_j lam_j  (j in S, 0 off S),   dF/dx = -sum_j v_j s_j lam_j (single x).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from benchmarks import lasso_data


def _coordinate_descent(X: np.ndarray, y: np.ndarray, lam: np.ndarray,
                        w0: np.ndarray | None) -> np.ndarray:
    """scikit-learn's Lasso on columns rescaled by a/lam (see the module docstring)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso
    a = float(lam.mean())
    scale = a / lam
    model = Lasso(alpha=a, fit_intercept=False, tol=1e-12, max_iter=100_000,
                  warm_start=w0 is not None, selection="cyclic")
    if w0 is not None:
        model.coef_ = w0 / scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X * scale, y)
    return model.coef_ * scale


def _polish(X: np.ndarray, y: np.ndarray, lam: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The exact solution on w's support and signs, or ValueError if they are not optimal."""
    n = len(y)
    S = np.flatnonzero(w)
    s = np.sign(w[S])
    out = np.zeros_like(w)
    if S.size:
        H = X[:, S].T @ X[:, S] / n
        out[S] = np.linalg.solve(H, X[:, S].T @ y / n - lam[S] * s)
        if np.any(np.sign(out[S]) != s):
            raise ValueError("lasso_reference: the polished solution changes a sign; "
                             "the coordinate-descent support is not the solution's")
    corr = np.abs(X.T @ (y - X @ out) / n)
    off = np.setdiff1d(np.arange(len(w)), S)
    if np.any(corr[off] >= lam[off] * (1 - 1e-12)):
        raise ValueError("lasso_reference: a feature off the support has a tight or violated "
                         "KKT condition; w* is not differentiable at this x (move x)")
    return out


def solve(x: np.ndarray, X_tr: np.ndarray, y_tr: np.ndarray,
          w0: np.ndarray | None = None) -> np.ndarray:
    """w*(x) of the weighted Lasso to machine precision (``w0``: a warm start)."""
    lam = lasso_data.penalties(x, X_tr.shape[1])
    return _polish(X_tr, y_tr, lam, _coordinate_descent(X_tr, y_tr, lam, w0))


def hypergradient_at(x: np.ndarray, w: np.ndarray, X_tr, y_tr, X_val, y_val) -> np.ndarray:
    """dF/dx at x, given the exact w = w*(x) (shape of x: (1,) or (d,))."""
    lam = lasso_data.penalties(x, X_tr.shape[1])
    S = np.flatnonzero(w)
    per_feature = np.zeros(X_tr.shape[1])
    if S.size:
        H = X_tr[:, S].T @ X_tr[:, S] / len(y_tr)
        g = X_val[:, S].T @ (X_val @ w - y_val) / len(y_val)
        per_feature[S] = -np.linalg.solve(H, g) * np.sign(w[S]) * lam[S]
    return per_feature if np.size(x) > 1 else np.array([per_feature.sum()])


def value_and_hypergradient(x: np.ndarray, X_tr, y_tr, X_val, y_val,
                            w0: np.ndarray | None = None):
    """``(F(x), dF/dx, w*(x))``: a provider for hyper-gradient descent."""
    w = solve(x, X_tr, y_tr, w0)
    return (lasso_data.upper_loss(w, X_val, y_val),
            hypergradient_at(x, w, X_tr, y_tr, X_val, y_val), w)


def reference(data: str, weighted: bool) -> dict:
    """The benchmark's target record: dF/dx at x0, the lower loss, the support size."""
    X_tr, y_tr, X_val, y_val = lasso_data.load(data)
    x = lasso_data.x0(X_tr, y_tr, weighted)
    start = time.perf_counter()
    F, g, w = value_and_hypergradient(x, X_tr, y_tr, X_val, y_val)
    return {"framework": "reference", "data": data, "weighted": int(weighted),
            "hypergrad": g.tolist(), "upper_loss": F,
            "lower_loss": lasso_data.lower_loss(w, x, X_tr, y_tr),
            "support": int(np.count_nonzero(w)), "time_s": time.perf_counter() - start}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=lasso_data.DATASETS, default="diabetes")
    parser.add_argument("--weighted", type=int, choices=(0, 1), default=0)
    args = parser.parse_args(argv)
    print(json.dumps(reference(args.data, bool(args.weighted))))


if __name__ == "__main__":
    main()
