"""IGA: implicit gradient approximation (rank-one surrogate of the IFT correction)."""

from __future__ import annotations

from jboat_core.contract import API_VERSION, ChainState, HyperGradient, Result, hookimpl

JBOAT_API_VERSION = API_VERSION


class IGA(HyperGradient):
    r"""Implicit gradient approximation [1].

    .. math:: \lambda = -\frac{\langle \nabla_y F, \nabla_y f\rangle}{\|\nabla_y f\|^2},
              \qquad g_x = \nabla_x \big[F + \lambda f\big] = \nabla_x F -
              \frac{\langle \nabla_y F, \nabla_y f\rangle}{\|\nabla_y f\|^2} \nabla_x f,

    at y held constant and lambda a constant. Exact (equal to the IFT hyper-gradient) when
    y is scalar and f is quadratic in y - phi(x), e.g. f = s/2 (y - phi(x))^2 at any
    y != phi(x); otherwise a rank-one approximation. When grad_y f = 0 (the lower level is
    solved exactly) lambda is 0 (nothing to project on). Cost: 2 gradients.

    References
    ----------
    [1] Liu R., Gao J., Liu X., Fan X., "Learning with constraint learning: new perspective,
    solution strategy and various applications", IEEE TPAMI 2024.
    """

    name = "IGA"
    stage = "gradient"
    order = 40
    role = "terminal"
    summary = "Implicit gradient approximation: grad_x F + lambda grad_x f, lambda by projection"
    formula = "g_x = grad_x F - (<grad_y F, grad_y f>/||grad_y f||^2) grad_x f"
    reference = "Liu et al., Learning with constraint learning: new perspective, solution strategy and various applications, TPAMI 2024"

    def step(self, state: ChainState) -> Result:
        import jittor as jt

        from jboat_core.numerics import (detach, grads, lower_at, terminal_result, upper_at,
                                         vdot)

        y = state.ll_point()
        yd = detach(y)
        n = len(yd)
        F = upper_at(self, state.ul_feed, state.fmodel, yd)
        f = lower_at(self, state.ll_feed, state.fmodel, yd, objective=state.ll_objective)
        dF = detach(grads(F, yd + self.ul_var, self.name, "grad F"))
        df = detach(grads(f, yd + self.ul_var, self.name, "grad f"))
        par = self.runtime.parallel  # lambda from the global lower gradients
        Fy, fy = par.data_mean(dF[:n]), par.data_mean(df[:n])
        lam = -vdot(Fy, fy) / jt.maximum(vdot(fy, fy), 1e-30)
        g = [(a + b * lam).detach() for a, b in zip(dF[n:], df[n:])]
        return terminal_result(self, state, F, g, y)


@hookimpl
def jboat_register_hypergradients(register):
    register(IGA)
