"""Shared machinery of first-order solvers (VSO, VFO, MESO, PGDO, ALTO, GAFFO and
plugins): objectives evaluated at auxiliary lower points, gradient helpers, and the
state a solver keeps across outer iterations (adopted only after the checks).

Import inside ``optimize`` only: it imports Jittor.
"""

from __future__ import annotations

from .autodiff import axpy, check_scalar, detach, flush, grads, jt, vdot
from .functional import FunctionalModel

__all__ = ["Point", "axpy", "descend", "detach", "grads", "jt", "vdot"]


class Point:
    """The objectives of one outer iteration, evaluated at any lower point.

    Parameters
    ----------
    op : FirstOrderSolver
    ll_feed_dict, ul_feed_dict : dict

    Attributes
    ----------
    y : list of jittor.Var
        The real lower variables (the lower model's order).
    x : list of jittor.Var
        The upper variables.
    """

    def __init__(self, op, ll_feed_dict, ul_feed_dict):
        self.op, self.ll_feed, self.ul_feed = op, ll_feed_dict, ul_feed_dict
        self.model = FunctionalModel(op.ll_model, track=False, variables=op.ll_var or None)
        self.y = self.model.variables
        self.x = list(op.ul_var)
        self.name = type(op).name
        self.par = op.runtime.parallel  # values and gradients are means over processes

    def mean(self, values) -> list:
        """The mean over processes of quantities that are means over the data."""
        return self.par.data_mean(values)

    def f(self, y, step: str = "lower objective"):
        """f(x, y) (a scalar Var; y may be the real variables or any point)."""
        return self.par.data_mean1(check_scalar(self.op.ll_objective(
            self.ll_feed, self.op.ul_model, self.model, params=list(y)), self.name, step))

    def F(self, y, step: str = "upper objective"):
        """F(x, y)."""
        return self.par.data_mean1(check_scalar(self.op.ul_objective(
            self.ul_feed, self.op.ul_model, self.model, params=list(y)), self.name, step))

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

    @property
    def lr(self) -> float:
        """eta, the lower optimizer's learning rate."""
        lr = self.op.runtime.ll_lr
        if lr is None:
            from ..errors import OperatorRuntimeError
            raise OperatorRuntimeError(self.name, "config", "needs the lower optimizer "
                                       "(lower_level_opt) for its learning rate")
        return lr


def descend(point: Point, start, lr: float, steps: int, objective=None, step: str = "") -> list:
    """``steps`` plain gradient steps v <- v - lr grad_v objective(v, label) on a detached
    copy of ``start``; returns the detached end point.

    ``objective(v, label) -> scalar Var`` takes the lower point and a label for error
    messages, like ``point.f`` and ``point.F`` (the default is ``point.f``: f(x, v))."""
    v = detach(start)
    objective = objective or point.f
    for k in range(int(steps)):
        g = point.grad_y(objective(v, f"{step} step {k + 1}"), v, f"{step} step {k + 1}")
        v = detach(axpy(-lr, g, v))
        flush(k, steps, v)
    return v
