"""MESO: Moreau-envelope single-loop, Hessian-free solver (MEHA)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, FirstOrderSolver, Result, SolveState, hookimpl

JBOAT_API_VERSION = API_VERSION


class MESOConfig(BaseModel):
    """Settings of MESO (upstream section ``"MESO"``)."""

    model_config = ConfigDict(extra="forbid")
    eta: float = Field(0.001, gt=0, description="eta_theta: step size of the proximal "
                       "variable theta")
    gamma_1: float = Field(0.01, ge=0, description="gamma_1 = 1/gamma: proximal weight of "
                           "the Moreau envelope")
    c0: float = Field(0.2, gt=0, description="penalty schedule c_t = c0 (t+1)^(1/4)")
    y_hat_lr: float = Field(0.1, description="accepted for upstream configs; unused (MEHA "
                            "has no y-hat step)")


class MESO(FirstOrderSolver):
    r"""Moreau-envelope based single-loop Hessian-free bilevel solver (MEHA) [1].

    With c_t = c0 (t+1)^{1/4} and the persistent proximal variable theta (a copy of y at
    the first iteration, kept across iterations and in checkpoints):

    .. math::
        \theta^+ &= \theta - \eta_\theta\big(\nabla_y f(x,\theta) + \gamma_1(\theta - y)\big),\\
        d_y &= \tfrac{1}{c_t}\nabla_y F(x,y) + \nabla_y f(x,y) - \gamma_1(y - \theta^+),\\
        d_x &= \tfrac{1}{c_t}\nabla_x F(x,y) + \nabla_x f(x,y) - \nabla_x f(x,\theta^+),

    the lower optimizer steps along d_y, the upper one along d_x (both at (x_k, y_k): the
    paper's y step uses x_{k+1}; here the two are simultaneous). One step per outer
    iteration: ``lower_iters`` is not used.

    c_0 is the configured ``c0``, theta+ is a constant in the y step and d_x is taken
    before the y step, as the paper writes the updates.

    References
    ----------
    [1] Liu R., Liu Z., Yao W., Zeng S., Zhang J., "Moreau envelope for nonconvex bi-level
    optimization: a single-loop and Hessian-free solution strategy", ICML 2024.
    """

    name = "MESO"
    #: the kit's correctness check: the convergence run's settings (cosine 0.997; a
    #: penalty method, so its magnitude is not the hyper-gradient's).
    exact_settings = {"lower_iters": 1, "eta": 0.1, "gamma_1": 1.0, "c0": 1.0}
    stage = "solve"
    role = "terminal"
    config_model = MESOConfig
    summary = "Moreau-envelope single-loop Hessian-free solver (MEHA)"
    formula = ("theta+ = theta - eta (grad_y f(theta) + g1 (theta - y)); d_y = grad_y F/c + "
               "grad_y f - g1 (y - theta+); d_x = grad_x F/c + grad_x f(y) - grad_x f(theta+)")
    reference = ("Liu et al., Moreau envelope for nonconvex bi-level optimization: a "
                 "single-loop and Hessian-free solution strategy, ICML 2024")

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, constant, detach

        cfg, pt = self.config, Point(self, state)
        y = pt.y
        theta = state.memory.get("theta") or detach(y)
        c = cfg.c0 * (state.current_iter + 1) ** 0.25
        g_th = pt.grad_y(pt.f(theta, "f(x, theta)"), theta, "grad f(theta)")
        g1, eta = constant(cfg.gamma_1, y[0]), constant(cfg.eta, y[0])
        theta_new = [(t - (g + (t - v) * g1) * eta).detach()
                     for t, g, v in zip(theta, g_th, y)]
        F_y = pt.F(y)
        gFy, gFx = pt.grad_yx(F_y, y, "grad F")
        f_y = pt.f(y)
        gfy, gfx = pt.grad_yx(f_y, y, "grad f")
        gfx_th = pt.grad_x(pt.f(theta_new, "f(x, theta+)"), "grad_x f(theta+)")
        c = constant(c, y[0])
        d_y = [a / c + b - (v - t) * g1 for a, b, v, t in zip(gFy, gfy, y, theta_new)]
        d_x = [a / c + b - t for a, b, t in zip(gFx, gfx, gfx_th)]
        return Result(upper_loss=F_y.detach(), lower_loss=f_y.detach(),
                      hyper_gradients=d_x, ll_gradients=d_y, memory={"theta": theta_new})


@hookimpl
def jboat_register_first_order(register):
    register(MESO)
