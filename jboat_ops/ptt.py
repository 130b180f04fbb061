"""PTT: pessimistic trajectory truncation (IAPTT-GM)."""

from __future__ import annotations

from jboat_core.contract import (API_VERSION, ChainState, HyperGradient,
                                 OperatorRuntimeError, hookimpl)

JBOAT_API_VERSION = API_VERSION


class PTT(HyperGradient):
    r"""Pessimistic trajectory truncation [1].

    The dynamics evaluate F after every inner step and report
    :math:`k^* = 1 + \arg\max_{k=1..K} F(x, y_k)` as ``max_loss_iter``; PTT then makes the
    next operator evaluate at :math:`y_{k^*}`, so e.g. PTT+RAD gives
    :math:`\frac{d}{dx} F(x, y_{k^*}(x))` through the first k* steps only. After RGT the
    argmax runs over the differentiable steps T+1..K only (an earlier iterate would be a
    constant with zero hyper-gradient).

    ``parameters(time=k*)`` is the real k*-th iterate (each step's snapshot is its own
    Var, never an alias of y_K).

    References
    ----------
    [1] Liu R., Liu Y., Zeng S., Zhang J., "Towards gradient-based bilevel optimization
    with non-convex followers and beyond", NeurIPS 2021.
    """

    name = "PTT"
    stage = "trajectory"
    order = 10
    role = "modifier"
    needs_trajectory = True
    summary = "Pessimistic trajectory truncation: evaluate at the worst iterate y_k*"
    formula = "k* = 1 + argmax_k F(x, y_k); next operator uses y_k*"
    reference = "Liu et al., Towards gradient-based bilevel optimization with non-convex followers and beyond, NeurIPS 2021"

    @classmethod
    def configure_dynamics(cls, plan, config):
        return plan.replace(track=True, pessimistic=True)

    def step(self, state: ChainState) -> ChainState:
        if state.k_star < 1:
            raise OperatorRuntimeError(self.name, "max_loss_iter", f"got {state.k_star!r}; PTT "
                                       "needs k* >= 1 from dynamics run with this chain's "
                                       "dynamics_plan() (NGD records it when pessimistic=True)")
        if state.point is not None:
            return state
        return state.replace(point=state.fmodel.parameters(time=state.k_star))


@hookimpl
def jboat_register_hypergradients(register):
    register(PTT)
