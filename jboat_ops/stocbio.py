"""StocBiO: stochastic bilevel optimizer with a Neumann-series hyper-gradient."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, FirstOrderSolver, Result, SolveState, hookimpl

JBOAT_API_VERSION = API_VERSION


class StocBiOConfig(BaseModel):
    """Settings of StocBiO (the ``"StocBiO"`` section)."""

    model_config = ConfigDict(extra="forbid")
    batch_size: int | None = Field(64, ge=1, description="examples per minibatch, both "
                                   "levels (None or >= n: the whole feed, deterministic)")
    seed: int = Field(0, ge=0, description="seed of the minibatch draws (with the outer "
                      "iteration: a resumed run draws the same minibatches)")
    neumann_iters: int = Field(10, ge=0, description="Q: Hessian-vector products of the "
                               "Neumann series, each on its own minibatch")
    eta: float | None = Field(None, gt=0, description="eta of the Neumann series (below "
                              "1/L; None: the lower optimizer's learning rate)")


class StocBiO(FirstOrderSolver):
    r"""StocBiO: stochastic bilevel optimizer [1].

    D = ``lower_iters`` warm-started SGD steps on f (a fresh minibatch S_t each, step
    alpha = the lower optimizer's learning rate), then the hyper-gradient estimate at
    (x, y^D) with an upper minibatch D_F, a lower minibatch D_G and Q independent lower
    minibatches B_1..B_Q:

    .. math::
        y^{t} &= y^{t-1} - \alpha \nabla_y f_{S_t}(x, y^{t-1}),\quad t = 1..D,\\
        v_Q &= \eta \sum_{q=0}^{Q} \prod_{j=1}^{q}\big(I - \eta \nabla^2_{yy} f_{B_j}(x, y^D)\big)
               \nabla_y F_{D_F}(x, y^D),\\
        \widehat{\nabla}\Phi &= \nabla_x F_{D_F}(x, y^D)
               - \nabla^2_{xy} f_{D_G}(x, y^D)\, v_Q,\qquad
        x \leftarrow x - \beta \widehat{\nabla}\Phi.

    v_Q estimates [grad_yy f]^{-1} grad_y F (the truncated Neumann series, bias
    (1 - eta mu)^{Q+1}). y^D replaces the lower variables (``ll_update``: the steps are the
    paper's plain SGD whatever the lower optimizer), the estimate goes to the upper
    optimizer (SGD with learning rate beta is the paper's step). Cost per step: D + 1
    gradients of f (D steps), one gradient of F, Q Hessian-vector products and one
    cross-derivative product.

    Choices the paper leaves open: the products are accumulated as
    :math:`p_q = (I - \eta H_{B_q}) p_{q-1}` (the term q uses B_1..B_q: the same law as
    the paper's indexing B_{Q-q}..B_Q, its authors' code does this); minibatches of
    ``batch_size`` distinct examples at both levels; eta defaults to the inner step size
    alpha. Draw order per step: S_1..S_D, D_F, B_1..B_Q, D_G. No state kept across
    iterations beyond y (warm start through the lower variables).

    References
    ----------
    [1] Ji K., Yang J., Liang Y., "Bilevel optimization: convergence analysis and enhanced
    design", ICML 2021.
    """

    name = "StocBiO"
    stage = "solve"
    role = "terminal"
    config_model = StocBiOConfig
    summary = "Stochastic bilevel optimizer: inner SGD, Neumann-series hyper-gradient"
    formula = ("y: D SGD steps; v = eta sum_q prod_j (I - eta H_Bj) grad_y F; "
               "g_x = grad_x F - J_DG v")
    reference = ("Ji, Yang, Liang, Bilevel optimization: convergence analysis and enhanced "
                 "design, ICML 2021")

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, constant, descend

        cfg, pt = self.config, Point(self, state)
        y = descend(pt, pt.y, pt.lr, self.lower_iters, step="inner SGD", batch="lower")
        f = pt.last_loss
        eta = constant(cfg.eta or pt.lr, y[0])
        F, gFy, gFx = pt.grad_F(y, pt.batch("upper"))
        p, total = gFy, gFy
        for q in range(cfg.neumann_iters):
            hp = pt.hvp(y, p, pt.batch("lower"), f"Neumann term {q + 1}")
            p = [a - b * eta for a, b in zip(p, hp)]
            total = [a + b for a, b in zip(total, p)]
        v = [a * eta for a in total]
        jv = pt.cross(y, v, pt.batch("lower"))
        return Result(upper_loss=F, lower_loss=f, ll_update=y,
                      hyper_gradients=[a - b for a, b in zip(gFx, jv)], info=pt.info())


@hookimpl
def jboat_register_first_order(register):
    register(StocBiO)
