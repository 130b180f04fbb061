"""The Lasso hyper-gradient benchmark's problem, shared by every side (issue 33 item 6).

NumPy and scikit-learn only: imported by jboat's venv (``benchmarks.lasso_jboat``), the
JAXopt venv (``benchmarks.lasso_jaxopt``) and the float64 reference
(``benchmarks.lasso_reference``), so all of them solve exactly this problem.

Lower level (weighted Lasso, Tibshirani 1996; Bertrand et al., "Implicit differentiation of
Lasso-type models for hyperparameter optimization", ICML 2020):

    w*(x) = argmin_w  1/(2 n_tr) ||X_tr w - y_tr||^2 + sum_i exp(x_i) |w_i|

with one ``x`` shared by every feature (``weighted = 0``: x has shape (1,)) or one per
feature (``weighted = 1``: x has shape (d,)). Upper level, the validation loss

    F(x) = 1/(2 n_val) ||X_val w*(x) - y_val||^2,

and the benchmark's hyper-gradient is dF/dx at x0 = log(0.1 lambda_max) in every coordinate,
lambda_max = ||X_tr^T y_tr||_inf / n_tr (the smallest penalty giving w* = 0). Float64.

Data (:func:`load`): ``diabetes`` = ``sklearn.datasets.load_diabetes`` (442 x 10, features
standardized over all rows, ddof 0, target centered); ``synthetic`` =
``make_regression(n_samples=10000, n_features=2000, n_informative=50, noise=1.0,
random_state=0)`` as generated (no intercept, unit-variance features). Rows are split after
``numpy.random.RandomState(0).permutation(n)``: the first half trains, the rest validates
(:func:`load`); :func:`load_three_way` cuts the same permutation 50/25/25 into train,
validation and test for the selection benchmark (``benchmarks.lasso_selection``).

Protocol of a side's script ``benchmarks.lasso_SIDE`` (run by ``benchmarks.lasso`` as
``python -m benchmarks.lasso_SIDE --data D --weighted 0|1`` from the repository root with
the threads set in its environment; one process = one round; one JSON line on stdout with
the keys of :data:`SCHEMA`, more keys allowed; the selection benchmark also imports
``make_provider(X_tr, y_tr, X_val, y_val) -> new()`` from it, see
``benchmarks.lasso_selection``): ``hypergrad``: dF/dx at x0 (a list, length 1 or
d). ``time_hypergrad_s``: a list, the seconds of each timed hyper-gradient from a cold start
(w = 0): the lower solve to :data:`TOL` (proximal gradient with the fixed step 1 /
:func:`lipschitz`) and dF/dx, ended when the result is on the host. ``time_outer_iter_s``: a
list, the seconds of each of :data:`OUTER_ITERS` outer iterations of hyper-gradient descent
from x0: the lower solve warm-started at the previous w*, dF/dx, and :func:`outer_update`.
The harness takes each list's median as the round's value. Compilation / warm-up calls
are run untimed before. ``lower_loss``: :func:`lower_loss` at x0 of the returned w*.
"""

from __future__ import annotations

import numpy as np

DATASETS = ("diabetes", "synthetic")
SYNTHETIC = {"n_samples": 10000, "n_features": 2000, "n_informative": 50, "noise": 1.0,
             "random_state": 0}
SEED = 0
LAMBDA_FRACTION = 0.1
TOL = 1e-10
OUTER_ITERS = 5
OUTER_STEP = 0.1
SCHEMA = ("framework", "data", "weighted", "hypergrad", "time_hypergrad_s",
          "time_outer_iter_s", "threads", "lower_loss")


def _raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole data set ``name`` as float64 (X, y), before any split."""
    from sklearn import datasets
    if name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True, scaled=False)
        X = (X - X.mean(0)) / X.std(0)
        return np.ascontiguousarray(X, np.float64), np.asarray(y - y.mean(), np.float64)
    if name == "synthetic":
        X, y = datasets.make_regression(**SYNTHETIC)
        return np.ascontiguousarray(X, np.float64), np.asarray(y, np.float64)
    raise ValueError(f"lasso_data: unknown data set {name!r}; choose one of {DATASETS}")


def _cut(name: str, fractions: tuple[float, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(X, y) pieces of ``name`` in the order of ``fractions`` after the seeded permutation."""
    X, y = _raw(name)
    order = np.random.RandomState(SEED).permutation(len(y))
    ends = np.floor(np.cumsum(fractions) * len(y)).astype(int)
    ends[-1] = len(y)
    pieces = np.split(order, ends[:-1])
    return [(X[p], y[p]) for p in pieces]


def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_tr, y_tr, X_val, y_val)`` of ``name``: the 50/50 split of the hyper-gradient
    benchmark (train = first floor(n/2) rows of the permutation)."""
    (X_tr, y_tr), (X_val, y_val) = _cut(name, (0.5, 0.5))
    return X_tr, y_tr, X_val, y_val


def load_three_way(name: str) -> tuple[np.ndarray, ...]:
    """``(X_tr, y_tr, X_val, y_val, X_te, y_te)``: the same permutation cut 50/25/25 (the
    selection benchmark; its train half is the train half of :func:`load`)."""
    pieces = _cut(name, (0.5, 0.25, 0.25))
    return tuple(a for piece in pieces for a in piece)


def lambda_max(X_tr: np.ndarray, y_tr: np.ndarray) -> float:
    """||X_tr^T y_tr||_inf / n_tr: the smallest single penalty with w* = 0."""
    return float(np.max(np.abs(X_tr.T @ y_tr)) / len(y_tr))


def x0(X_tr: np.ndarray, y_tr: np.ndarray, weighted: bool) -> np.ndarray:
    """The start x0 = log(0.1 lambda_max): shape (d,) if ``weighted`` else (1,)."""
    size = X_tr.shape[1] if weighted else 1
    return np.full(size, np.log(LAMBDA_FRACTION * lambda_max(X_tr, y_tr)))


def lipschitz(X_tr: np.ndarray) -> float:
    """L = ||X_tr||_2^2 / n_tr, the Lipschitz constant of the smooth part's gradient
    (Lanczos, ``scipy.sparse.linalg.svds`` from a fixed start; the step is 1/L)."""
    from scipy.sparse.linalg import svds
    v0 = np.ones(min(X_tr.shape)) / np.sqrt(min(X_tr.shape))
    sigma = svds(X_tr, k=1, v0=v0, tol=1e-12, return_singular_vectors=False)[0]
    return float(sigma**2 / len(X_tr))


def penalties(x: np.ndarray, d: int) -> np.ndarray:
    """The per-feature penalties exp(x) broadcast to shape (d,)."""
    return np.broadcast_to(np.exp(np.asarray(x, np.float64)), (d,)).copy()


def lower_loss(w: np.ndarray, x: np.ndarray, X_tr: np.ndarray, y_tr: np.ndarray) -> float:
    """The lower objective 1/(2 n_tr) ||X_tr w - y_tr||^2 + sum_i exp(x_i) |w_i|."""
    r = X_tr @ w - y_tr
    return float(r @ r / (2 * len(y_tr)) + penalties(x, len(w)) @ np.abs(w))


def upper_loss(w: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> float:
    """F = 1/(2 n_val) ||X_val w - y_val||^2."""
    r = X_val @ w - y_val
    return float(r @ r / (2 * len(y_val)))


def outer_update(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The timed outer iteration's upper step, x - OUTER_STEP g / ||g||_inf (scale-free, so
    the same on both data sets; x unchanged if g = 0)."""
    scale = float(np.max(np.abs(g)))
    return x if scale == 0.0 else x - OUTER_STEP * np.asarray(g) / scale
