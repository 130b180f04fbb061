"""PTT: pessimistic trajectory truncation (IAPTT-GM)."""

from __future__ import annotations

from jboat_core import API_VERSION, HyperGradientOperator, hookimpl
from jboat_core.chain import passthrough, require_next
from jboat_core.errors import OperatorRuntimeError

JBOAT_API_VERSION = API_VERSION


class PTT(HyperGradientOperator):
    r"""Pessimistic trajectory truncation [1].

    The dynamics evaluate F after every inner step and report
    :math:`k^* = 1 + \arg\max_{k=1..K} F(x, y_k)` as ``max_loss_iter``; PTT then makes the
    next operator evaluate at :math:`y_{k^*}`, so e.g. PTT+RAD gives
    :math:`\frac{d}{dx} F(x, y_{k^*}(x))` through the first k* steps only. After RGT the
    argmax runs over the differentiable steps T+1..K only (an earlier iterate would be a
    constant with zero hyper-gradient).

    Upstream Jittor's snapshot aliasing made PTT a no-op (always y_K); here
    ``parameters(time=k*)`` is the real k*-th iterate.

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
        plan.track = True
        plan.pessimistic = True

    def compute_gradients(self, ll_feed_dict, ul_feed_dict, auxiliary_model, max_loss_iter=0,
                          hyper_gradient_finished=False, next_operation=None, **kwargs):
        require_next(self, next_operation, hyper_gradient_finished)
        if not isinstance(max_loss_iter, int) or max_loss_iter < 1:
            raise OperatorRuntimeError(self.name, "max_loss_iter", f"got {max_loss_iter!r}; PTT "
                                       "needs k* >= 1 from dynamics run with this chain's "
                                       "dynamics_plan() (NGD records it when pessimistic=True)")
        y = kwargs.get("lower_model_params")
        if y is None:
            y = auxiliary_model.parameters(time=max_loss_iter)
        return passthrough(ll_feed_dict, ul_feed_dict, auxiliary_model, max_loss_iter, kwargs,
                           lower_model_params=y)


@hookimpl
def jboat_register_hypergradients(register):
    register(PTT)
