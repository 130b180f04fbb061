"""RAD: reverse-mode differentiation through the unrolled lower-level trajectory."""

from __future__ import annotations

from jboat_core.contract import (API_VERSION, ChainState, HyperGradient, Result,
                                 hookimpl, result)

JBOAT_API_VERSION = API_VERSION


class RAD(HyperGradient):
    r"""Reverse auto-differentiation (RHG) hyper-gradient [1].

    .. math:: g_x = \frac{d}{dx} F\big(x, y_K(x)\big),\quad y_{k+1} = U(y_k, \nabla_y f(x, y_k))

    backpropagated through all K differentiable inner steps (the trajectory is tracked,
    memory O(K)). With PTT before it, F is evaluated at y_{k*}; with RGT, the first T steps
    are constants. With DI, also returns dF/dy_0.

    Exact for the unrolled problem: equals the forward-mode recursion
    J_{k+1} = (I - eta H) J_k - eta d_x grad_y f(x, y_k), g = J_K^T grad_y F(y_K) + grad_x F.

    References
    ----------
    [1] Franceschi L., Donini M., Frasconi P., Pontil M., "Forward and reverse
    gradient-based hyperparameter optimization", ICML 2017.
    """

    name = "RAD"
    stage = "gradient"
    order = 20
    role = "terminal"
    needs_trajectory = True
    approximates = "unrolled"
    summary = "Reverse-mode AD through the unrolled lower-level trajectory (RHG)"
    formula = "g_x = dF(x, y_K(x))/dx through all K inner steps"
    reference = "Franceschi et al., Forward and reverse gradient-based hyperparameter optimization, ICML 2017"

    def step(self, state: ChainState) -> Result:
        from jboat_core.numerics import detach, trajectory_grads, upper_at

        y = state.ll_point()
        F = upper_at(self, state.ul_feed, state.fmodel, y)
        n = len(self.ul_var)
        wrt = self.ul_var + (state.fmodel.parameters(time=0) if state.init_gradients else [])
        g = detach(trajectory_grads(F, wrt, state.fmodel, self.name,
                                    "dF/dx through the trajectory"))
        return result(self, F.detach(), g[:n], g[n:] or None)


@hookimpl
def jboat_register_hypergradients(register):
    register(RAD)
