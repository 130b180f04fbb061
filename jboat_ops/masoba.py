"""MA-SOBA: SOBA with a moving average of the upper direction."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, FirstOrderSolver, Result, SolveState, hookimpl

JBOAT_API_VERSION = API_VERSION


class MASOBAConfig(BaseModel):
    """Settings of MA-SOBA (the ``"MASOBA"`` section; preset ``MA-SOBA``)."""

    model_config = ConfigDict(extra="forbid")
    batch_size: int | None = Field(64, ge=1, description="examples per minibatch, both "
                                   "levels (None or >= n: the whole feed, deterministic)")
    seed: int = Field(0, ge=0, description="seed of the minibatch draws (with the outer "
                      "iteration: a resumed run draws the same minibatches)")
    v_lr: float | None = Field(None, gt=0, description="step size of v (None: the lower "
                               "optimizer's learning rate)")
    theta: float = Field(0.1, gt=0, le=1, description="averaging weight: h <- (1 - theta) "
                         "h + theta D_x (1: SOBA)")
    v_radius: float | None = Field(None, gt=0, description="project v onto the ball of this "
                                   "radius after each step (the paper's C_F / mu; None: no "
                                   "projection)")


class MASOBA(FirstOrderSolver):
    r"""MA-SOBA: moving-average SOBA [1].

    SOBA's directions (see ``SOBA``) on one lower minibatch j and one upper minibatch i,
    with the upper direction averaged over the iterations:

    .. math::
        y &\leftarrow y - \beta D_y,\qquad
        v \leftarrow \Pi_{\|v\| \le r}\big(v - \beta D_v\big),\\
        h &\leftarrow (1 - \theta) h + \theta D_x,\qquad x \leftarrow x - \alpha h,

    all directions at (x_t, y_t, v_t). The average removes the bounded-variance
    requirement on the upper estimate's smoothness that SOBA's analysis needs and gives
    the optimal O(eps^-2) sample complexity. v and h are operator state (v_0 = 0, h_0 = 0,
    in checkpoints). D_y goes to the lower optimizer (SGD with learning rate beta is the
    paper's step), h to the upper one (alpha).

    Choices the paper leaves open: h_0 = 0 and the x step taken with the new average
    h_{t+1} (so the first step is theta D_x); constant beta, alpha, theta (the paper's
    theorem takes them constant, of order 1/sqrt(T)); the projection radius r is
    optional (``v_radius``; off by default, as in the paper's experiments); the same lower
    minibatch for D_y, D_v, D_x. Draw order per step: lower j, upper i.

    References
    ----------
    [1] Chen X., Xu T., Zhang Y., "Optimal algorithms for stochastic bilevel optimization
    under relaxed smoothness conditions", ICML 2023.
    """

    name = "MASOBA"
    stage = "solve"
    role = "terminal"
    config_model = MASOBAConfig
    summary = "SOBA with a moving average of the upper direction (optimal sample complexity)"
    formula = ("SOBA's D_y, D_v, D_x; y -= beta D_y, v = proj(v - beta D_v), "
               "h = (1 - theta) h + theta D_x, x -= alpha h")
    reference = ("Chen, Xu, Zhang, Optimal algorithms for stochastic bilevel optimization "
                 "under relaxed smoothness conditions, ICML 2023")

    def step(self, state: SolveState) -> Result:
        import jittor as jt

        from jboat_core.numerics import Point, constant, vdot

        cfg, pt = self.config, Point(self, state)
        y = pt.y
        v = state.memory.get("v") or [p.detach() * 0 for p in y]
        h = state.memory.get("h") or [p.detach() * 0 for p in pt.x]
        rho = constant(cfg.v_lr or pt.lr, y[0])
        f, g_y, hv, jv = pt.f_products(y, v, pt.batch("lower"))
        F, gFy, gFx = pt.grad_F(y, pt.batch("upper"))
        v_new = [a - (b + c) * rho for a, b, c in zip(v, hv, gFy)]
        if cfg.v_radius is not None:
            norm = jt.sqrt(vdot(v_new, v_new))
            shrink = jt.minimum(constant(cfg.v_radius, norm) / (norm + 1e-30), 1.0)
            v_new = [a * shrink for a in v_new]
        keep, take = constant(1 - cfg.theta, y[0]), constant(cfg.theta, y[0])
        h_new = [a * keep + (b + c) * take for a, b, c in zip(h, jv, gFx)]
        return Result(upper_loss=F, lower_loss=f, ll_gradients=g_y, hyper_gradients=h_new,
                      memory={"v": v_new, "h": h_new}, info=pt.info())


@hookimpl
def jboat_register_first_order(register):
    register(MASOBA)
