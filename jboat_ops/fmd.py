"""FMD: forward-mode differentiation through the unrolled lower-level trajectory."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import (API_VERSION, ChainState, HyperGradient,
                                 OperatorRuntimeError, Result, hookimpl, result)

JBOAT_API_VERSION = API_VERSION


class FMDConfig(BaseModel):
    """Settings of FMD."""

    model_config = ConfigDict(extra="forbid")
    max_scalars: int = Field(256, ge=1, description="refuse more upper-level scalars than "
                             "this (one tangent of the lower variables' size, and one double "
                             "backward per inner step, each)")


class FMD(HyperGradient):
    r"""Forward-mode hyper-gradient (forward-mode RHG) [1].

    .. math:: Z_{k+1} = \frac{\partial U}{\partial y} Z_k + \frac{\partial U}{\partial x},
              \quad Z_0 = 0,\qquad g_x = \nabla_x F + Z_K^\top \nabla_y F(x, y_K),

    with U the inner step (the lower optimizer's differentiable update, its state carried
    alongside) and Z_k = dy_k/dx, one column per upper-level scalar, carried by the
    dynamics (``plan.forward_mode``; NGD). Exact for the unrolled problem, like RAD, with
    memory independent of K and cost proportional to the number of upper scalars: the
    choice for few hyper-parameters and long inner loops, e.g. the inner learning rate or
    momentum as upper variables (give the lower optimizer a one-element ``jittor.Var`` as
    ``lr``/``momentum`` and pass it in ``ul_var``). Refused above ``max_scalars``. With RGT
    the truncated steps reset Z to 0; PTT (an argmax over iterates) and DI/IAD (tangents of
    y_0, as many as lower scalars) are not combined with it.

    References
    ----------
    [1] Franceschi L., Donini M., Frasconi P., Pontil M., "Forward and reverse
    gradient-based hyperparameter optimization", ICML 2017.
    """

    name = "FMD"
    stage = "gradient"
    order = 25
    role = "terminal"
    conflicts = ("PTT", "DI", "IAD", "FOA")
    config_model = FMDConfig
    approximates = "unrolled"
    summary = "Forward-mode AD through the unrolled trajectory: memory flat in K"
    formula = "Z_{k+1} = dU/dy Z_k + dU/dx, Z_0 = 0; g_x = grad_x F + Z_K^T grad_y F(y_K)"
    reference = "Franceschi et al., Forward and reverse gradient-based hyperparameter optimization, ICML 2017"

    @classmethod
    def configure_dynamics(cls, plan, config):
        return plan.replace(forward_mode=True, forward_limit=config.max_scalars)

    def step(self, state: ChainState) -> Result:
        from jboat_core.numerics import upper_at

        if state.tangents is None:
            raise OperatorRuntimeError(self.name, "dynamics", "got no tangents: the dynamics "
                                       "must carry them (plan.forward_mode; NGD does, a "
                                       "plugin's must declare supports_forward_mode)")
        y = state.ll_point()
        F = upper_at(self, state.ul_feed, state.fmodel, y)
        return result(self, F.detach(), state.tangents.hypergradient(F, y))


@hookimpl
def jboat_register_hypergradients(register):
    register(FMD)
