"""ALTO: alternating optimization, the first-order baseline."""

from __future__ import annotations

from jboat_core.contract import API_VERSION, FirstOrderSolver, Result, SolveState, hookimpl

JBOAT_API_VERSION = API_VERSION


class ALTO(FirstOrderSolver):
    r"""Alternating optimization [1]: one lower step, then the upper gradient without the
    implicit term,

    .. math:: y_1 = y - \eta \nabla_y f(x, y),\qquad g_x = \nabla_x F(x, y_1),

    the lower optimizer steps along :math:`\nabla_y f(x, y)` (for plain SGD its new point
    is y_1; g_x is evaluated at the SGD point y_1 whatever the optimizer). Exactly one
    lower step per outer iteration, as BOAT's torch ALTO (``lower_iters`` is not used).
    It drops :math:`-\nabla^2_{xy} f\, H^{-1}\nabla_y F`, so it is exact only when x does
    not act on y*; a baseline.

    References
    ----------
    [1] BOAT's ``ALTO`` operator (callous-youth/BOAT, PR #89; boat-torch 1.1.1), which cites
    no paper: the textbook alternating-gradient baseline of bilevel optimization.
    """

    name = "ALTO"
    stage = "solve"
    role = "terminal"
    summary = "Alternating optimization: one lower step, then grad_x F at the new point"
    formula = "y_1 = y - eta grad_y f(x, y); g_x = grad_x F(x, y_1)"
    reference = "BOAT 1.1.1 ALTO (callous-youth/BOAT PR #89): alternating baseline, no paper"

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, axpy, detach

        pt = Point(self, state)
        f_y = pt.f(pt.y)
        gy = pt.grad_y(f_y, pt.y, "grad_y f")
        y1 = detach(axpy(-pt.lr, gy, pt.y))
        F1 = pt.F(y1, "F(x, y_1)")
        return Result(upper_loss=F1.detach(), lower_loss=f_y.detach(),
                      hyper_gradients=pt.grad_x(F1, "grad_x F(y_1)"),
                      ll_gradients=gy)


@hookimpl
def jboat_register_first_order(register):
    register(ALTO)
