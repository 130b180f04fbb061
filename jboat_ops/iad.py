"""IAD: initialisation-based auto-differentiation (MAML)."""

from __future__ import annotations

from jboat_core.contract import (API_VERSION, ChainState, HyperGradient, Result, hookimpl,
                                 result, to_upper)

JBOAT_API_VERSION = API_VERSION


class IAD(HyperGradient):
    r"""Initialisation-based auto-differentiation: the MAML meta-gradient [1].

    Terminal:  :math:`g = \frac{d}{dy_0} F(y_K(y_0))`, given to ``ul_var`` (the
    meta-parameters): by identity when they are the lower variables themselves (the same
    model at both levels), else positionally, with shapes checked. For SGD on a
    quadratic f this is :math:`\prod_k (I - \eta H)^T \nabla_y F(y_K)`; after FOA (stopped
    inner gradients) it is first-order MAML, :math:`\nabla_y F(y_K)`.

    Followed by CG/NS: passes ``hparams = y_0`` so the implicit operator differentiates
    with respect to the initialisation (iMAML when f has a proximal term
    :math:`\frac{\lambda}{2}\|y - y_0\|^2`).

    The snapshots y_0..y_K are distinct Vars, so the second-order terms are kept (the
    full MAML meta-gradient, not first-order MAML unless FOA asks for it).

    References
    ----------
    [1] Finn C., Abbeel P., Levine S., "Model-agnostic meta-learning for fast adaptation of
    deep networks", ICML 2017.
    """

    name = "IAD"
    stage = "gradient"
    order = 10
    role = "either"
    followed_by = ("implicit",)
    needs_trajectory = True
    keeps_initialisation = True  # meta-learns y_0: no warm start
    conflicts = ("DI",)
    approximates = "initialisation"
    summary = "Initialisation-based AD: MAML meta-gradient dF(y_K)/dy_0"
    formula = "g = dF(y_K(y_0))/dy_0 (terminal) | hparams = y_0 for CG/NS (pass-through)"
    reference = "Finn et al., Model-agnostic meta-learning for fast adaptation of deep networks, ICML 2017"

    def step(self, state: ChainState) -> ChainState | Result:
        y = state.ll_point()
        y0 = state.fmodel.parameters(time=0)
        if state.next_operation is not None:
            return state.replace(point=y, wrt=y0)
        from jboat_core.numerics import detach, trajectory_grads, upper_at

        F = upper_at(self, state.ul_feed, state.fmodel, y)
        g = detach(trajectory_grads(F, y0, state.fmodel, self.name,
                                    "dF/dy_0 through the trajectory"))
        return result(self, F.detach(), to_upper(self, y0, g))


@hookimpl
def jboat_register_hypergradients(register):
    register(IAD)
