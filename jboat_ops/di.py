"""DI: dynamic (learned) initialisation of the lower level."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, DynamicalSystem, DynamicsState, hookimpl


JBOAT_API_VERSION = API_VERSION


class DIConfig(BaseModel):
    """Settings of DI (upstream ``"DI": {"lr": 0.1}``)."""

    model_config = ConfigDict(extra="forbid")
    lr: float = Field(0.1, gt=0, description="learning rate of the initialisation update "
                      "(an optimizer of the upper-level optimizer's class)")


class DI(DynamicalSystem):
    r"""Dynamic initialisation [1]: the lower level's starting point y_0 is learned too.

    The terminal hyper-gradient operator also returns :math:`g_{y_0} = dF(x, y)/dy_0`
    through the trajectory, and after the upper step the solver applies
    :math:`y_0 \leftarrow y_0 - \mathrm{lr}_{DI}\, g_{y_0}` with an optimizer of the
    upper-level optimizer's class, so y_0 is learned as the upper variables are. With untracked
    (implicit) operators y does not depend on y_0 and the gradient is zero. Not combinable
    with IAD, which already learns the initialisation.

    References
    ----------
    [1] Liu R., Liu Y., Zeng S., Zhang J., "Towards gradient-based bilevel optimization
    with non-convex followers and beyond", NeurIPS 2021.
    """

    name = "DI"
    stage = "prepare"
    order = 20
    role = "modifier"
    learns_initialisation = True
    conflicts = ("IAD",)
    config_model = DIConfig
    summary = "Dynamic initialisation: also learn the lower level's starting point y_0"
    formula = "y_0 <- y_0 - lr_DI * dF(x, y_K(y_0))/dy_0"
    reference = "Liu et al., Towards gradient-based bilevel optimization with non-convex followers and beyond, NeurIPS 2021"

    def step(self, state: DynamicsState) -> DynamicsState:
        return state  # the solver learns y_0 (learns_initialisation); nothing to change here

@hookimpl
def jboat_register_dynamics(register):
    register(DI)
