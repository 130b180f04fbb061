"""RAD: reverse-mode differentiation through the unrolled lower-level trajectory."""

from __future__ import annotations

from jboat_core import API_VERSION, HyperGradientOperator, hookimpl
from jboat_core.chain import finished, lower_point, require_last

JBOAT_API_VERSION = API_VERSION


class RAD(HyperGradientOperator):
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
    summary = "Reverse-mode AD through the unrolled lower-level trajectory (RHG)"
    formula = "g_x = dF(x, y_K(x))/dx through all K inner steps"
    reference = "Franceschi et al., Forward and reverse gradient-based hyperparameter optimization, ICML 2017"

    def compute_gradients(self, ll_feed_dict, ul_feed_dict, auxiliary_model, max_loss_iter=0,
                          next_operation=None, **kwargs):
        from jboat_core.autodiff import detach, grads, upper_at

        require_last(self, next_operation)
        y = lower_point(auxiliary_model, kwargs)
        F = upper_at(self, ul_feed_dict, auxiliary_model, y)
        n = len(self.ul_var)
        wrt = self.ul_var + (auxiliary_model.parameters(time=0) if kwargs.get("init_gradients")
                             else [])
        g = detach(grads(F, wrt, self.name, "dF/dx through the trajectory"))
        return finished(self, F.detach(), g[:n], g[n:] or None)


@hookimpl
def jboat_register_hypergradients(register):
    register(RAD)
