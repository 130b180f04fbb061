"""TTSA: two-timescale stochastic approximation for bilevel optimization."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, FirstOrderSolver, Result, SolveState, hookimpl

JBOAT_API_VERSION = API_VERSION


class TTSAConfig(BaseModel):
    """Settings of TTSA (the ``"TTSA"`` section)."""

    model_config = ConfigDict(extra="forbid")
    batch_size: int | None = Field(64, ge=1, description="examples per minibatch, both "
                                   "levels (None or >= n: the whole feed, deterministic)")
    seed: int = Field(0, ge=0, description="seed of the minibatch and truncation draws (with "
                      "the outer iteration: a resumed run draws the same)")
    neumann_iters: int = Field(10, ge=1, description="t_max: the random truncation p is "
                               "uniform on {0, ..., t_max - 1}")
    eta: float | None = Field(None, gt=0, description="1/L of the Neumann estimator (None: "
                              "the lower optimizer's learning rate)")
    y_decay: float = Field(0.4, ge=0, description="beta_t = beta (t + 1)^-y_decay (the "
                           "paper's 2/5: the fast time scale)")
    x_decay: float = Field(0.6, ge=0, description="alpha_t = alpha (t + 1)^-x_decay (the "
                           "paper's 3/5: the slow time scale)")


class TTSA(FirstOrderSolver):
    r"""TTSA: two-timescale stochastic approximation [1].

    One stochastic gradient step on y with the fast step size beta_t, then one step on x
    with the slow step size alpha_t along a randomly truncated Neumann estimate of the
    hyper-gradient at the new y:

    .. math::
        y_{t+1} &= y_t - \beta_t \nabla_y f_{S}(x_t, y_t),\\
        h_t &= \nabla_x F_{D}(x_t, y_{t+1}) - \nabla^2_{xy} f_{B_0}(x_t, y_{t+1})\,
              \Big[t_{max}\,\eta \prod_{i=1}^{p}\big(I - \eta\nabla^2_{yy} f_{B_i}(x_t, y_{t+1})
              \big)\Big]\nabla_y F_{D}(x_t, y_{t+1}),\\
        x_{t+1} &= x_t - \alpha_t h_t,\qquad
        \beta_t = \beta (t+1)^{-2/5},\ \alpha_t = \alpha (t+1)^{-3/5},

    with p uniform on {0..t_max-1} (an unbiased estimate of the truncated series
    :math:`\eta\sum_{q<t_{max}}(I - \eta H)^q`). beta is the lower optimizer's learning
    rate and y_{t+1} replaces the lower variables (``ll_update``); alpha is the upper
    optimizer's learning rate: the direction given to it is (t+1)^{-3/5} h_t, which is the
    paper's step for SGD. Cost per step: one gradient of f, one of F, p Hessian-vector
    products and one cross-derivative product.

    Choices the paper leaves open: the decay exponents (2/5, 3/5: the strongly convex
    case of its theorem; ``y_decay``, ``x_decay``); no projection of x (X = R^d);
    minibatches of ``batch_size`` distinct examples; eta = 1/L defaults to the lower step
    size. Draw order per step: S, D, p, B_1..B_p, B_0. No state beyond y.

    References
    ----------
    [1] Hong M., Wai H.-T., Wang Z., Yang Z., "A two-timescale stochastic algorithm
    framework for bilevel optimization: complexity analysis and application to
    actor-critic", SIAM J. Optim. 33(1), 2023.
    """

    name = "TTSA"
    #: the kit's correctness check: 200 iterations (its steps decay; cosine 0.997).
    exact_settings = {"lower_iters": 1, "neumann_iters": 20, "eta": 0.25, "iterations": 200}
    stage = "solve"
    role = "terminal"
    config_model = TTSAConfig
    summary = "Two-timescale stochastic approximation: fast y, slow x, random Neumann truncation"
    formula = ("y -= beta_t grad_y f_S; h = grad_x F - J [t_max eta prod_{i<=p} (I - eta H_i)] "
               "grad_y F; x -= alpha_t h")
    reference = ("Hong, Wai, Wang, Yang, A two-timescale stochastic algorithm framework for "
                 "bilevel optimization, SIAM J. Optim. 2023")

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, constant

        cfg, pt = self.config, Point(self, state)
        t = state.current_iter
        like = pt.y[0]
        beta = constant(pt.lr * (t + 1) ** -cfg.y_decay, like)
        eta = constant(cfg.eta or pt.lr, like)
        f, g = pt.grad_f(pt.y, pt.batch("lower"), "y step")
        y = [a.detach() - b * beta for a, b in zip(pt.y, g)]
        F, gFy, gFx = pt.grad_F(y, pt.batch("upper"))
        z = gFy
        for i in range(pt.integer(cfg.neumann_iters)):
            hz = pt.hvp(y, z, pt.batch("lower"), f"Neumann factor {i + 1}")
            z = [a - b * eta for a, b in zip(z, hz)]
        factor = constant(cfg.neumann_iters * (cfg.eta or pt.lr), like)
        jv = pt.cross(y, [a * factor for a in z], pt.batch("lower"))
        scale = constant((t + 1) ** -cfg.x_decay, like)
        return Result(upper_loss=F, lower_loss=f, ll_update=y,
                      hyper_gradients=[(a - b) * scale for a, b in zip(gFx, jv)],
                      info=pt.info())


@hookimpl
def jboat_register_first_order(register):
    register(TTSA)
