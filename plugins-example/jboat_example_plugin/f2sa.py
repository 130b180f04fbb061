"""F2SA: a fully first-order bilevel solver, the example of a third-party first-order
solver.

This module is the plugin: the entry point ``f2sa = "jboat_example_plugin.f2sa"`` names
it, it declares the contract version it is written for (``JBOAT_API_VERSION = 2``, a
literal) and registers ``F2SA`` through the
``jboat_register_first_order`` hook. Importing it does not import Jittor.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import FirstOrderSolver, Result, SolveState, hookimpl

JBOAT_API_VERSION = 2


class F2SAConfig(BaseModel):
    """Settings of F2SA (the ``"F2SA"`` section of a solver config)."""

    model_config = ConfigDict(extra="forbid")
    lam0: float = Field(1.0, gt=0, description="penalty multiplier lambda at t = 0")
    lam_growth: float = Field(0.01, ge=0, description="lambda_t = lam0 + lam_growth * t")
    z_lr: float = Field(0.1, gt=0, description="step size of the K gradient steps on z")


class F2SA(FirstOrderSolver):
    r"""Fully first-order stochastic approximation (F2SA) [1].

    The penalised Lagrangian
    :math:`\mathcal L_\lambda(x, y, z) = F(x, y) + \lambda\,(f(x, y) - f(x, z))`
    with :math:`\lambda_t = \lambda_0 + \delta t` and a persistent auxiliary point z
    (K gradient steps on f(x, .) per iteration, warm-started, kept in checkpoints):

    .. math::
        z &\leftarrow z - \alpha_z \nabla_z f(x, z)\ \ (K \text{ times}),\\
        d_y &= \nabla_y F(x, y) + \lambda \nabla_y f(x, y),\qquad
        d_x = \nabla_x F(x, y) + \lambda\big(\nabla_x f(x, y) - \nabla_x f(x, z)\big),

    the lower optimizer steps along d_y, the upper one along d_x. No second derivative
    anywhere: with y near the minimiser of F + lambda f and z near y*(x), d_x is the
    implicit hyper-gradient up to O(1/lambda).

    References
    ----------
    [1] Kwon J., Kwon D., Wright S., Nowak R., "A fully first-order method for stochastic
    bilevel optimization", ICML 2023.
    """

    name = "F2SA"
    stage = "solve"
    role = "terminal"
    config_model = F2SAConfig
    summary = "Fully first-order bilevel solver: penalised Lagrangian, no second derivatives"
    formula = ("z: K steps on f; d_y = grad_y F + lam grad_y f; "
               "d_x = grad_x F + lam (grad_x f(y) - grad_x f(z)), lam = lam0 + growth t")
    reference = ("Kwon et al., A fully first-order method for stochastic bilevel "
                 "optimization, ICML 2023")

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, descend  # imports Jittor: only here

        pt = Point(self, state)   # pt.f(y), pt.F(y), pt.grad_yx(...)
        z = descend(pt, state.memory.get("z") or pt.y, self.config.z_lr, self.lower_iters)
        lam = self.config.lam0 + self.config.lam_growth * state.current_iter
        F_y, f_y = pt.F(pt.y), pt.f(pt.y)
        L = F_y + (f_y - pt.f(z)) * lam                  # z is a constant point
        d_y, d_x = pt.grad_yx(L, pt.y)
        return Result(upper_loss=F_y.detach(), lower_loss=f_y.detach(),
                      hyper_gradients=d_x, ll_gradients=d_y,
                      memory={"z": z})     # the next step's state.memory, once checked

@hookimpl
def jboat_register_first_order(register):
    register(F2SA)
