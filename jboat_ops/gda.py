"""GDA: gradient-descent aggregation of the upper and lower objectives (BDA)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import (API_VERSION, DynamicalSystem, DynamicsState, OperatorRuntimeError,
                                 hookimpl)


JBOAT_API_VERSION = API_VERSION


class GDAConfig(BaseModel):
    """Settings of GDA (upstream section ``"GDA": {"alpha_init": 0.5, "alpha_decay": 0.9}``)."""

    model_config = ConfigDict(extra="forbid")
    alpha_init: float = Field(0.5, gt=0, lt=1, description="alpha_0 of the aggregation")
    alpha_decay: float = Field(0.9, gt=0, le=1, description="alpha_k = alpha_0 * decay^k "
                               "over the inner steps")


class GDA(DynamicalSystem):
    r"""Gradient-descent aggregation [1]: the inner steps descend the user's aggregated
    objective :math:`\varphi_{\alpha_k}(x, y)` (``gda_loss``, e.g.
    :math:`\alpha F + (1-\alpha) f`) with :math:`\alpha_k = \alpha_0 \cdot
    \mathrm{decay}^k`, k = 0..K-1, restarting at alpha_0 every outer iteration. Implicit
    operators then use :math:`\varphi` at the alpha of the point they evaluate (the last
    step, or step k* after PTT), the objective that point is stationary for.

    ``gda_loss(ll_feed_dict, ul_feed_dict, ul_model, ll_model, **kw)`` reads alpha from
    ``ll_feed_dict["alpha"]`` (JBOAT's convention) and receives a copy: the user's dict is
    never modified.

    References
    ----------
    [1] Liu R., Mu P., Yuan X., Zeng S., Zhang J., "A generic first-order algorithmic
    framework for bi-level programming beyond lower-level singleton", ICML 2020.
    """

    name = "GDA"
    stage = "prepare"
    order = 10
    role = "modifier"
    requires_runtime = ("gda_loss",)
    config_model = GDAConfig
    summary = "Gradient-descent aggregation: inner steps on alpha_k F + (1 - alpha_k) f (BDA)"
    formula = "y_{k+1} = y_k - eta grad_y phi_{alpha_k}(x, y_k), alpha_k = alpha_0 decay^k"
    reference = "Liu et al., A generic first-order algorithmic framework for bi-level programming beyond lower-level singleton, ICML 2020"

    def step(self, state: DynamicsState) -> DynamicsState:
        gda_loss = self.runtime.gda_loss
        if gda_loss is None:
            raise OperatorRuntimeError(self.name, "config", "needs gda_loss(ll_feed_dict, "
                                       "ul_feed_dict, ul_model, ll_model, **kw): pass it to "
                                       "Problem(gda_loss=...) or put it in solver_config")
        alpha, decay = self.config.alpha_init, self.config.alpha_decay
        return state.replace(aggregate=gda_loss, alpha_at=lambda k: alpha * decay ** k)

@hookimpl
def jboat_register_dynamics(register):
    register(GDA)
