"""``Point``: the objectives of one outer iteration of a first-order or stochastic solver
(VSO, VFO, MESO, PGDO, ALTO, GAFFO, SOBA, SABA, MA-SOBA, StocBiO, AmIGO, TTSA and
plugins), evaluated at any lower point, on the whole feeds or on minibatches drawn from
them; and ``descend``, the one inner gradient loop they share.

Every value and derivative is the mean over processes (``runtime.parallel``); under one
process that is the value itself. Import inside ``step`` only: it imports Jittor.
"""

from __future__ import annotations

import warnings

import numpy as np

from .autodiff import axpy, check_scalar, detach, flush, grads, vdot
from .functional import FunctionalModel
from .sampling import _Level, minibatch

__all__ = ["Point", "descend"]

_LEVELS = ("lower", "upper")


class Point:
    """The objectives of one outer iteration, at any lower point, on any feed.

    Parameters
    ----------
    op : FirstOrderSolver
        Its objectives, models and variables; a stochastic solver's config has ``seed``
        and ``batch_size`` (the draws, ``jboat_core.numerics.sampling``).
    state : SolveState
        The iteration's feeds and number.

    Attributes
    ----------
    y, x : list of jittor.Var
        The real lower variables (the lower model's order) and the upper variables.
    lr : float
        eta, the lower optimizer's learning rate.
    draws : list of (str, numpy.ndarray)
        Every minibatch drawn this iteration, in order: ``("lower" | "upper", indices)``
        (None: the whole feed), SABA's ``("lower block" | "upper block", [j])``, TTSA's
        ``("p", [p])``.
    calls : dict
        Per-example oracle evaluations through ``grad_f``, ``grad_F``, ``f_products``,
        ``hvp`` and ``cross``: ``grad`` and ``hvp`` (a minibatch of b counts b).
    last_loss : jittor.Var or None
        The objective at the last step of the last ``descend``.

    Every evaluation takes ``feed``: None for this iteration's whole feed of its level,
    or a minibatch from ``batch``/``block``.
    """

    def __init__(self, op, state, *legacy):
        if legacy:  # Point(op, ll_feed_dict, ul_feed_dict) before 0.2
            warnings.warn("Point(op, ll_feed_dict, ul_feed_dict) is now Point(op, state); the "
                          "old form goes in jboat 0.3", DeprecationWarning, stacklevel=2)
            ll_feed, ul_feed, current_iter = state, legacy[0], 0
        else:
            ll_feed, ul_feed, current_iter = state.ll_feed, state.ul_feed, state.current_iter
        self.op, self.name = op, type(op).name
        self.ll_feed, self.ul_feed = ll_feed, ul_feed
        self.model = FunctionalModel(op.ll_model, track=False, variables=op.ll_var or None)
        self.y = self.model.variables
        self.x = list(op.ul_var)
        self.par = op.runtime.parallel
        cfg = op.config
        self.seed, self.iter = int(getattr(cfg, "seed", 0) or 0), int(current_iter)
        self.rank = self.par.rank if self.par.active else 0
        size = getattr(cfg, "batch_size", None)
        self._levels = {"lower": (ll_feed, size, "ll_feed_dict", 0),
                        "upper": (ul_feed, size, "ul_feed_dict", 1)}
        self._level_cache: dict = {}
        self.draws: list = []
        self.calls = {"grad": 0, "hvp": 0}
        self.last_loss = None

    # -- the learning rate and what the solver reports --------------------------------
    @property
    def lr(self) -> float:
        """eta, the lower optimizer's learning rate."""
        lr = self.op.runtime.ll_lr
        if lr is None:
            from ..errors import OperatorRuntimeError
            raise OperatorRuntimeError(self.name, "config", "needs the lower optimizer "
                                       "(ll_opt) for its learning rate")
        return lr

    def info(self) -> dict:
        """What the iteration drew and evaluated (``Result(info=point.info())``)."""
        return {"draws": list(self.draws), "calls": dict(self.calls)}

    def mean(self, values) -> list:
        """The mean over processes of quantities that are means over the data."""
        return self.par.data_mean(values)

    # -- draws ----------------------------------------------------------------------------
    def _level(self, level: str) -> _Level:
        if level not in _LEVELS:
            raise ValueError(f"level must be 'lower' or 'upper', got {level!r}")
        if level not in self._level_cache:
            feed, size, what, stream = self._levels[level]
            self._level_cache[level] = _Level(feed, size, self.name, what, self.seed,
                                              self.rank, stream)
        return self._level_cache[level]

    def rng(self) -> np.random.Generator:
        """The generator of the next draw of this iteration (a new stream each call)."""
        return np.random.default_rng([self.seed, self.iter, len(self.draws), self.rank])

    def batch(self, level: str):
        """A fresh minibatch feed of ``level`` (``"lower"`` or ``"upper"``; the whole
        feed when ``batch_size`` is None or covers it)."""
        lv = self._level(level)
        if lv.full:
            self.draws.append((level, None))
            return lv.feed
        idx = np.sort(self.rng().choice(lv.n, size=lv.size, replace=False))
        self.draws.append((level, idx))
        return minibatch(lv.feed, lv.keys, idx)

    def blocks(self, level: str) -> tuple[int, list]:
        """(number of SAGA blocks, their feeds) of ``level``."""
        lv = self._level(level)
        blocks, _ = lv.partition()
        return len(blocks), [lv.feed if b is None else minibatch(lv.feed, lv.keys, b)
                             for b in blocks]

    def block(self, level: str) -> tuple[int, object, np.ndarray]:
        """(j, feed of block j, the blocks' probabilities): block j drawn with probability
        |B_j| / n."""
        lv = self._level(level)
        blocks, weights = lv.partition()
        j = int(self.rng().choice(len(blocks), p=weights))
        self.draws.append((f"{level} block", np.array([j])))
        feed = lv.feed if blocks[j] is None else minibatch(lv.feed, lv.keys, blocks[j])
        return j, feed, weights

    def integer(self, high: int) -> int:
        """A uniform integer in [0, high) (TTSA's random truncation)."""
        p = int(self.rng().integers(high))
        self.draws.append(("p", np.array([p])))
        return p

    def _count(self, feed, level: str, kind: str, times: int = 1) -> None:
        keys = self._level(level).keys if isinstance(feed, dict) else []
        size = int(feed[keys[0]].shape[0]) if keys else 1
        self.calls[kind] += times * size

    # -- values ---------------------------------------------------------------------------
    def _f(self, feed, y, step):
        op = self.op
        feed = self.ll_feed if feed is None else feed
        return check_scalar(op.ll_objective(feed, op.ul_model, self.model, params=list(y)),
                            self.name, step)

    def _F(self, feed, y, step):
        op = self.op
        feed = self.ul_feed if feed is None else feed
        return check_scalar(op.ul_objective(feed, op.ul_model, self.model, params=list(y)),
                            self.name, step)

    def f(self, y, step: str = "lower objective", feed=None):
        """f(x, y), a scalar Var (differentiable; y may be the real variables or any
        point)."""
        return self.par.data_mean1(self._f(feed, y, step))

    def F(self, y, step: str = "upper objective", feed=None):
        """F(x, y), a scalar Var (differentiable)."""
        return self.par.data_mean1(self._F(feed, y, step))

    # -- derivatives of a value -----------------------------------------------------------
    def grad_y(self, value, y, step: str = "") -> list:
        """d value / d y, detached."""
        return self.mean(detach(grads(value, list(y), self.name, step)))

    def grad_x(self, value, step: str = "") -> list:
        """d value / d x (partial: auxiliary points are constants), detached."""
        return self.mean(detach(grads(value, self.x, self.name, step)))

    def grad_yx(self, value, y, step: str = "") -> tuple[list, list]:
        """(d value / d y, d value / d x), detached, from one backward pass."""
        g = self.mean(detach(grads(value, list(y) + self.x, self.name, step)))
        return g[:len(y)], g[len(y):]

    # -- oracles: values and derivatives in one collective --------------------------------
    def _mean(self, value, lists):
        """One collective: the value and the lists, averaged over processes."""
        flat = [value.reshape((1,))] + [g for gs in lists for g in gs]
        out = self.mean(flat)
        value, k, res = out[0], 1, []
        for gs in lists:
            res.append(out[k:k + len(gs)])
            k += len(gs)
        return (value, *res)

    def grad_f(self, y, feed=None, step: str = "grad_y f"):
        """(f(y), grad_y f(y)) on ``feed``, detached."""
        y = detach(y)
        f = self._f(feed, y, step)
        self._count(feed if feed is not None else self.ll_feed, "lower", "grad")
        return self._mean(f.detach(), [detach(grads(f, y, self.name, step))])

    def grad_F(self, y, feed=None, step: str = "grad F"):
        """(F(y), grad_y F, grad_x F) on ``feed``, detached, one backward pass."""
        y = detach(y)
        F = self._F(feed, y, step)
        g = detach(grads(F, y + self.x, self.name, step))
        self._count(feed if feed is not None else self.ul_feed, "upper", "grad")
        return self._mean(F.detach(), [g[:len(y)], g[len(y):]])

    def f_products(self, y, v, feed=None, cross: bool = True, gradient: bool = True,
                   step: str = "f products"):
        """(f, grad_y f, H v, J v) at y on ``feed``, one backward pass for both products:
        H = d2f/dy2, J = d2f/dxdy (``cross`` False: J v is None; ``gradient`` False:
        grad_y f is still computed, as the products need it, but not counted)."""
        y = detach(y)
        f = self._f(feed, y, step)
        g = grads(f, y, self.name, step)
        s = vdot(g, detach(v))
        wrt = y + (self.x if cross else [])
        d = grads(s, wrt, self.name, step + " (second order)")
        counted = feed if feed is not None else self.ll_feed
        self._count(counted, "lower", "grad", int(gradient))
        self._count(counted, "lower", "hvp", 1 + int(cross))
        f, g, hv, jv = self._mean(f.detach(), [detach(g), detach(d[:len(y)]),
                                               detach(d[len(y):])])
        return f, g, hv, (jv if cross else None)

    def hvp(self, y, v, feed=None, step: str = "Hessian-vector product"):
        """H v at y on ``feed``."""
        return self.f_products(y, v, feed, cross=False, gradient=False, step=step)[2]

    def cross(self, y, v, feed=None, step: str = "cross-derivative product"):
        """J v = d2 f / dx dy . v at y on ``feed``."""
        y = detach(y)
        f = self._f(feed, y, step)
        s = vdot(grads(f, y, self.name, step), detach(v))
        self._count(feed if feed is not None else self.ll_feed, "lower", "hvp")
        return self._mean(f.detach(), [detach(grads(s, self.x, self.name, step))])[1]


def descend(point: Point, start, lr: float, steps: int, objective=None, step: str = "",
            batch: str | None = None) -> list:
    """``steps`` plain gradient steps v <- v - lr grad_v objective(v) from a detached copy
    of ``start``; returns the detached end point (``point.last_loss``: the objective at
    the last step's start).

    Parameters
    ----------
    point : Point
    start : list of jittor.Var
    lr : float
    steps : int
    objective : callable, optional
        ``objective(v, label) -> scalar Var``, like ``point.f`` and ``point.F`` (default
        ``point.f``: f(x, v)).
    step : str
        Label of the loop in error messages.
    batch : {"lower", "upper"}, optional
        Draw a fresh minibatch of this level for every step (stochastic solvers: SGD on
        f); ``objective`` is then f on the minibatch.
    """
    v = detach(start)
    for k in range(int(steps)):
        label = f"{step} step {k + 1}".strip()
        if batch is not None:
            point.last_loss, g = point.grad_f(v, point.batch(batch), label)
        else:
            point.last_loss = (objective or point.f)(v, label)
            g = point.grad_y(point.last_loss, v, label)
        v = detach(axpy(-lr, g, v))
        flush(k, steps, v)
    return v
