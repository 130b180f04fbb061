"""PGDO: penalty-based bilevel gradient descent (PBGD)."""

from __future__ import annotations

import warnings
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from jboat_core.contract import API_VERSION, FirstOrderSolver, Result, SolveState, hookimpl

JBOAT_API_VERSION = API_VERSION


class PGDOConfig(BaseModel):
    """Settings of PGDO (upstream section ``"PGDO"``; Jittor spelt ``updata_y_ahead``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    y_hat_lr: float = Field(0.1, gt=0, description="step size of the K gradient steps "
                            "on y-hat (value-function estimate, warm-started)")
    gamma_init: float = Field(0.0, ge=0, description="penalty weight gamma at t = 0")
    gamma_max: float = Field(0.2, ge=0, description="gamma grows linearly to gamma_max")
    gamma_argmax_step: int = Field(5000, gt=0, description="outer iteration at which gamma "
                                   "reaches gamma_max")
    update_y_ahead: bool = Field(False, validation_alias=AliasChoices(
        "update_y_ahead", "updata_y_ahead"), description="first take K plain gradient steps "
        "on f from y (upstream's meta-learning aid; Jittor spelling updata_y_ahead accepted)")
    penalty: Literal["difference", "gradient"] = Field(
        "difference", description="'difference': gamma (f(y) - f(y_hat)) (V-PBGD); "
        "'gradient': gamma ||grad_y f(y)||^2 (G-PBGD, second order)")

    @model_validator(mode="after")
    def _gamma_order(self):
        if self.gamma_init > self.gamma_max:
            warnings.warn(f"PGDO: gamma_init={self.gamma_init} > gamma_max={self.gamma_max}; "
                          "gamma stays at gamma_init", UserWarning, stacklevel=2)
        return self


class PGDO(FirstOrderSolver):
    r"""Penalty-based bilevel gradient descent [1].

    With :math:`\gamma_t = \min(\gamma_0 + t(\gamma_{max} - \gamma_0)/N, \gamma_{max})`
    (a function of t, so it resumes exactly) and :math:`s_t = \min(1/\gamma_t, 1)`:

    .. math::
        L = s_t\big(F(x,y) + \gamma_t (f(x,y) - f(x,\hat y))\big)\ \text{(difference)},\quad
        L = s_t\big(F(x,y) + \gamma_t \|\nabla_y f(x,y)\|^2\big)\ \text{(gradient)},

    where :math:`\hat y` (persistent, warm-started, in checkpoints) takes K gradient steps
    on f(x, .) per iteration and is held constant; the lower optimizer steps along
    :math:`\nabla_y L`, the upper one along :math:`\nabla_x L`. The gradient penalty is
    differentiated through :math:`\nabla_y f` (Hessian-vector products).

    Both gradients of L come from one differentiation of one graph, so the upper gradient
    and the gradient penalty both contribute.

    References
    ----------
    [1] Shen H., Chen T., "On penalty-based bilevel gradient descent method", ICML 2023.
    """

    name = "PGDO"
    #: the kit's correctness check: the convergence run's settings (cosine 0.999; a
    #: penalty method, so its magnitude is not the hyper-gradient's).
    exact_settings = {"lower_iters": 10, "gamma_init": 3.0, "gamma_max": 3.0}
    stage = "solve"
    role = "terminal"
    config_model = PGDOConfig
    summary = "Penalty-based bilevel gradient descent (value-function or gradient penalty)"
    formula = ("L = s (F(y) + gamma (f(y) - f(y_hat))) or s (F(y) + gamma |grad_y f(y)|^2); "
               "y, x step along grad L")
    reference = "Shen and Chen, On penalty-based bilevel gradient descent method, ICML 2023"

    def gamma(self, t: int) -> tuple[float, float]:
        """(gamma_t, s_t) of outer iteration t."""
        cfg = self.config
        top = max(cfg.gamma_max, cfg.gamma_init)
        gamma = min(cfg.gamma_init + t * (top - cfg.gamma_init) / cfg.gamma_argmax_step, top)
        return gamma, min(1.0 / (gamma + 1e-8), 1.0)

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, constant, descend, grads, vdot

        cfg, pt = self.config, Point(self, state)
        gamma, s = self.gamma(state.current_iter)
        y, update, memory = pt.y, None, None
        if cfg.update_y_ahead:
            y = update = descend(pt, pt.y, pt.lr, self.lower_iters, step="y ahead")
        F_y, f_y = pt.F(y), pt.f(y)
        if cfg.penalty == "difference":
            y_hat = descend(pt, state.memory.get("y_hat") or pt.y, cfg.y_hat_lr,
                            self.lower_iters, step="y-hat")  # first call: from y before ahead
            penalty = f_y - pt.f(y_hat, "f(x, y-hat)")  # y-hat constant, x is not
            memory = {"y_hat": y_hat}
        else:
            gy = pt.mean(grads(f_y, y, self.name, "grad_y f (kept in the graph)"))
            penalty = vdot(gy, gy)
        d_y, d_x = pt.grad_yx((F_y + penalty * constant(gamma, F_y)) * constant(s, F_y), y,
                              "grad L")
        return Result(upper_loss=F_y.detach(), lower_loss=f_y.detach(), hyper_gradients=d_x,
                      ll_gradients=d_y, ll_update=update, memory=memory)


@hookimpl
def jboat_register_first_order(register):
    register(PGDO)
