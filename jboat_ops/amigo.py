"""AmIGO: amortized implicit gradient optimization, warm-started inner solves."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, FirstOrderSolver, Result, SolveState, hookimpl

JBOAT_API_VERSION = API_VERSION


class AmIGOConfig(BaseModel):
    """Settings of AmIGO (the ``"AmIGO"`` section)."""

    model_config = ConfigDict(extra="forbid")
    batch_size: int | None = Field(64, ge=1, description="examples per minibatch, both "
                                   "levels (None or >= n: the whole feed, deterministic)")
    seed: int = Field(0, ge=0, description="seed of the minibatch draws (with the outer "
                      "iteration: a resumed run draws the same minibatches)")
    v_iters: int | None = Field(None, ge=1, description="N: SGD steps on the linear system "
                                "per outer iteration (None: lower_iters)")
    v_lr: float | None = Field(None, gt=0, description="step size of v (None: the lower "
                               "optimizer's learning rate)")


class AmIGO(FirstOrderSolver):
    r"""AmIGO: amortized implicit gradient optimization [1].

    Both inner problems are solved approximately by stochastic gradient steps warm-started
    from the previous outer iteration (the amortization): T = ``lower_iters`` SGD steps on
    f from y (a fresh lower minibatch each), then N = ``v_iters`` SGD steps on the
    quadratic :math:`\tfrac12 v^\top H v + v^\top \nabla_y F` from the previous v (a fresh
    lower minibatch for each Hessian-vector product), then the upper direction:

    .. math::
        y &\leftarrow y - \alpha \nabla_y f_{S_t}(x, y)\quad (T\ \text{times}),\\
        v &\leftarrow v - \beta\big(\nabla^2_{yy} f_{B_s}(x, y)\, v
              + \nabla_y F_{D}(x, y)\big)\quad (N\ \text{times}),\\
        D_x &= \nabla_x F_{D}(x, y) + \nabla^2_{xy} f_{B'}(x, y)\, v,\qquad
        x \leftarrow x - \gamma D_x,

    at the new y; v approximates :math:`-[\nabla^2_{yy} f]^{-1}\nabla_y F` and is operator
    state (v_0 = 0, in checkpoints). y replaces the lower variables (``ll_update``; alpha
    = the lower optimizer's learning rate), D_x goes to the upper optimizer.

    Choices the paper leaves open: one upper minibatch D per outer iteration, used for
    grad_y F in all N linear-system steps and for grad_x F (the paper's analysis allows
    fresh or shared ones); the cross-derivative product on its own lower minibatch B';
    plain SGD for both inner solves (the paper also allows variance-reduced ones); N
    defaults to T. Draw order per step: S_1..S_T, D, B_1..B_N, B'.

    References
    ----------
    [1] Arbel M., Mairal J., "Amortized implicit differentiation for stochastic bilevel
    optimization", ICLR 2022.
    """

    name = "AmIGO"
    stage = "solve"
    role = "terminal"
    config_model = AmIGOConfig
    summary = "Amortized implicit gradient: warm-started stochastic inner solves for y and v"
    formula = ("y: T SGD steps on f; v: N SGD steps on v'Hv/2 + v'grad_y F (warm start); "
               "D_x = grad_x F + J v")
    reference = ("Arbel, Mairal, Amortized implicit differentiation for stochastic bilevel "
                 "optimization, ICLR 2022")

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, constant, descend

        cfg, pt = self.config, Point(self, state)
        y = descend(pt, pt.y, pt.lr, self.lower_iters, step="inner SGD", batch="lower")
        f = pt.last_loss
        beta = constant(cfg.v_lr or pt.lr, y[0])
        v = state.memory.get("v") or [p * 0 for p in y]
        F, gFy, gFx = pt.grad_F(y, pt.batch("upper"))
        for s in range(cfg.v_iters or self.lower_iters):
            hv = pt.hvp(y, v, pt.batch("lower"), f"linear-system step {s + 1}")
            v = [a - (b + c) * beta for a, b, c in zip(v, hv, gFy)]
        jv = pt.cross(y, v, pt.batch("lower"))
        return Result(upper_loss=F, lower_loss=f, ll_update=y,
                      hyper_gradients=[a + b for a, b in zip(gFx, jv)],
                      memory={"v": v}, info=pt.info())


@hookimpl
def jboat_register_first_order(register):
    register(AmIGO)
