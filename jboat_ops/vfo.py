"""VFO: value-function-based first-order method (BOME)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, FirstOrderSolver, Result, SolveState, hookimpl

JBOAT_API_VERSION = API_VERSION


class VFOConfig(BaseModel):
    """Settings of VFO (upstream section ``"VFO"``)."""

    model_config = ConfigDict(extra="forbid")
    y_hat_lr: float = Field(0.1, gt=0, description="step size of the K gradient steps that "
                            "approximate y*(x) by y-hat")
    u1: float = Field(0.1, ge=0, description="phi = u1 q: the control barrier's strength")
    eta: float = Field(0.5, description="accepted for upstream configs; unused")


class VFO(FirstOrderSolver):
    r"""BOME: bilevel optimization made easy, a value-function first-order method [1].

    With :math:`\hat y` = K gradient steps of size ``y_hat_lr`` on f(x, .) from y, the
    value-function gap :math:`q = f(x, y) - f(x, \hat y)` (:math:`\hat y` constant), and
    the stacked gradients :math:`\nabla F = (\nabla_y F, \nabla_x F)`,
    :math:`\nabla q = (\nabla_y f(x,y), \nabla_x f(x,y) - \nabla_x f(x,\hat y))`:

    .. math:: \lambda = \max\Big(0, \frac{u_1 q - \langle\nabla F, \nabla q\rangle}
              {\|\nabla q\|^2 + 10^{-8}}\Big),\qquad d = \nabla F + \lambda \nabla q,

    the lower variables take a step of the lower optimizer along d_y and the upper
    optimizer one along d_x, both evaluated at (x_k, y_k).

    The directions are computed per variable (no slices of a stacked vector), and y takes
    exactly one step per outer iteration, as BOME writes it.

    References
    ----------
    [1] Liu B., Ye M., Wright S., Stone P., Liu Q., "BOME! Bilevel optimization made easy:
    a simple first-order approach", NeurIPS 2022.
    """

    name = "VFO"
    #: the kit's correctness check: the convergence run's settings (cosine 0.996).
    exact_settings = {"lower_iters": 10, "y_hat_lr": 0.1, "u1": 1.0}
    stage = "solve"
    role = "terminal"
    config_model = VFOConfig
    summary = "Value-function first-order method with a dynamic barrier (BOME)"
    formula = ("q = f(y) - f(y_hat); lam = relu((u1 q - <grad F, grad q>) / |grad q|^2); "
               "d = grad F + lam grad q; y, x step along d")
    reference = "Liu et al., BOME! Bilevel optimization made easy: a simple first-order approach, NeurIPS 2022"

    def step(self, state: SolveState) -> Result:
        import jittor as jt

        from jboat_core.numerics import Point, constant, descend, vdot

        cfg, pt = self.config, Point(self, state)
        y = pt.y
        y_hat = descend(pt, y, cfg.y_hat_lr, self.lower_iters, step="y-hat")
        f_y, f_hat = pt.f(y), pt.f(y_hat, "f(x, y-hat)")
        F_y = pt.F(y)
        gFy, gFx = pt.grad_yx(F_y, y, "grad F")
        gfy, gfx = pt.grad_yx(f_y, y, "grad f")
        gqx = [a - b for a, b in zip(gfx, pt.grad_x(f_hat, "grad_x f(y-hat)"))]
        q = (f_y - f_hat).detach()
        dot = vdot(gFy, gfy) + vdot(gFx, gqx) if gqx else vdot(gFy, gfy)
        norm = vdot(gfy, gfy) + (vdot(gqx, gqx) if gqx else 0.0)
        lam = jt.maximum((q * constant(cfg.u1, q) - dot) / (norm + 1e-8), 0.0)
        return Result(upper_loss=F_y.detach(), lower_loss=f_y.detach(),
                      hyper_gradients=[a + b * lam for a, b in zip(gFx, gqx)],
                      ll_gradients=[a + b * lam for a, b in zip(gFy, gfy)])


@hookimpl
def jboat_register_first_order(register):
    register(VFO)
