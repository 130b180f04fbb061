"""FOA: first-order approximation of the unrolled dynamics (FOMAML / Reptile style)."""

from __future__ import annotations

from jboat_core.contract import API_VERSION, ChainState, HyperGradient, hookimpl

JBOAT_API_VERSION = API_VERSION


class FOA(HyperGradient):
    r"""First-order approximation [1]: the inner steps use stopped gradients,

    .. math:: y_{k+1} = y_k - \eta\,\mathrm{sg}\big(\nabla_y f(x, y_k)\big),
              \quad \frac{dy_K}{dy_0} = I,

    so FOA followed by IAD gives first-order MAML, :math:`\nabla_y F(y_K)`. FOA computes
    nothing itself and must be followed (FOA alone would give no hyper-gradient).

    References
    ----------
    [1] Nichol A., Achiam J., Schulman J., "On first-order meta-learning algorithms",
    arXiv:1803.02999, 2018.
    """

    name = "FOA"
    stage = "trajectory"
    order = 20
    role = "modifier"
    requires_any = ("IAD",)
    summary = "First-order approximation: inner steps with stopped gradients (FOMAML)"
    formula = "y_{k+1} = y_k - eta * stopgrad(grad_y f); with IAD: g = grad_y F(y_K)"
    reference = "Nichol et al., On first-order meta-learning algorithms, arXiv:1803.02999, 2018"

    @classmethod
    def configure_dynamics(cls, plan, config):
        return plan.replace(stop_inner_grads=True)

    def step(self, state: ChainState) -> ChainState:
        return state  # it acts through configure_dynamics only


@hookimpl
def jboat_register_hypergradients(register):
    register(FOA)
