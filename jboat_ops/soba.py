"""SOBA: stochastic bilevel algorithm, joint single-loop steps on y, v and x."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, FirstOrderSolver, Result, SolveState, hookimpl

JBOAT_API_VERSION = API_VERSION


class SOBAConfig(BaseModel):
    """Settings of SOBA (the ``"SOBA"`` section)."""

    model_config = ConfigDict(extra="forbid")
    batch_size: int | None = Field(64, ge=1, description="examples per minibatch, both "
                                   "levels (None or >= n: the whole feed, deterministic)")
    seed: int = Field(0, ge=0, description="seed of the minibatch draws (with the outer "
                      "iteration: a resumed run draws the same minibatches)")
    v_lr: float | None = Field(None, gt=0, description="step size rho of v (None: the "
                               "lower optimizer's learning rate, the paper's choice)")


class SOBA(FirstOrderSolver):
    r"""SOBA: stochastic bilevel optimization with one sample per level per step [1].

    With v approximating :math:`v^*(x) = -[\nabla^2_{yy} f]^{-1} \nabla_y F`, one lower
    minibatch j and one upper minibatch i (independent, ``jboat_core.numerics.sampling``):

    .. math::
        D_y &= \nabla_y f_j(x, y),\qquad
        D_v = \nabla^2_{yy} f_j(x, y)\, v + \nabla_y F_i(x, y),\qquad
        D_x = \nabla^2_{xy} f_j(x, y)\, v + \nabla_x F_i(x, y),\\
        y &\leftarrow y - \rho D_y,\qquad v \leftarrow v - \rho D_v,\qquad
        x \leftarrow x - \gamma D_x,

    all three directions at (x_t, y_t, v_t). One gradient of f, one Hessian-vector and one
    cross-derivative product (one backward pass through grad_y f_j . v) and one gradient of
    F per step. D_y goes to the lower optimizer (SGD with learning rate rho is the paper's
    step), D_x to the upper one (gamma), v takes a plain step of ``v_lr`` (default rho)
    and is operator state (v_0 = 0, in checkpoints).

    Choices the paper leaves open: the same lower minibatch j for D_y, D_v and D_x (as
    Algorithm 1 writes); minibatches of ``batch_size`` distinct examples (the analysis
    uses one); constant step sizes (the paper's experiments; its theory decreases them as
    t^{-2/5} and t^{-3/5}: use a scheduler on the optimizers, or TTSA). Draw order per
    step: lower j, upper i. ``lower_iters`` is not used.

    References
    ----------
    [1] Dagreou M., Ablin P., Vaiter S., Moreau T., "A framework for bilevel optimization
    that enables stochastic and global variance reduction algorithms", NeurIPS 2022.
    """

    name = "SOBA"
    stage = "solve"
    role = "terminal"
    config_model = SOBAConfig
    summary = "Stochastic single-loop bilevel solver: joint minibatch steps on y, v and x"
    formula = ("D_y = grad_y f_j; D_v = H_j v + grad_y F_i; D_x = J_j v + grad_x F_i; "
               "y -= rho D_y, v -= rho D_v, x -= gamma D_x")
    reference = ("Dagreou et al., A framework for bilevel optimization that enables "
                 "stochastic and global variance reduction algorithms, NeurIPS 2022")

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, constant

        pt = Point(self, state)
        y = pt.y
        v = state.memory.get("v") or [p.detach() * 0 for p in y]
        rho = constant(self.config.v_lr or pt.lr, y[0])
        f, g_y, hv, jv = pt.f_products(y, v, pt.batch("lower"))
        F, gFy, gFx = pt.grad_F(y, pt.batch("upper"))
        v_new = [a - (b + c) * rho for a, b, c in zip(v, hv, gFy)]
        return Result(upper_loss=F, lower_loss=f, ll_gradients=g_y,
                      hyper_gradients=[a + b for a, b in zip(jv, gFx)],
                      memory={"v": v_new}, info=pt.info())


@hookimpl
def jboat_register_first_order(register):
    register(SOBA)
