"""RGT: reverse gradient truncation (truncated back-propagation)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, ChainState, HyperGradient, hookimpl

JBOAT_API_VERSION = API_VERSION


class RGTConfig(BaseModel):
    """Settings of RGT."""

    model_config = ConfigDict(extra="forbid")
    truncate_iter: int = Field(1, ge=0, description="leading inner steps T taken outside the "
                               "graph; with RGT in the chain 1 <= T < lower_iters (0 is "
                               "upstream's 'off', accepted when RGT is not chosen)")


class RGT(HyperGradient):
    r"""Reverse gradient truncation [1]: the first T inner steps are constants,

    .. math:: y_T = \mathrm{GD}^T(y_0)\ \text{(no graph)},\qquad
              g_x = \frac{d}{dx} F(x, y_K)\ \text{through steps } T+1..K \text{ only.}

    Each truncated step is evaluated at the current iterate, so y_T is the point T
    gradient steps reach, and the remaining steps carry the gradient.

    References
    ----------
    [1] Shaban A., Cheng C.-A., Hatch N., Boots B., "Truncated back-propagation for bilevel
    optimization", AISTATS 2019.
    """

    name = "RGT"
    stage = "trajectory"
    order = 30
    role = "modifier"
    conflicts = ("FD",)
    config_model = RGTConfig
    summary = "Reverse gradient truncation: back-propagate through the last K-T steps only"
    formula = "y_T constant; g_x = dF(x, y_K)/dx through steps T+1..K"
    reference = "Shaban et al., Truncated back-propagation for bilevel optimization, AISTATS 2019"

    @classmethod
    def configure_dynamics(cls, plan, config):
        return plan.replace(truncate=config.truncate_iter)

    @classmethod
    def check_solver(cls, config, solver):
        if config.truncate_iter < 1:
            return [f"truncate_iter: {config.truncate_iter} truncates nothing; with RGT in "
                    "na_op set it to at least 1 (0 is upstream's 'off': remove RGT instead)"]
        if config.truncate_iter >= solver.lower_iters:
            return [f"truncate_iter: {config.truncate_iter} must be below lower_iters="
                    f"{solver.lower_iters} (no differentiable step would remain)"]
        return []

    def step(self, state: ChainState) -> ChainState:
        return state  # it acts through configure_dynamics only


@hookimpl
def jboat_register_hypergradients(register):
    register(RGT)
