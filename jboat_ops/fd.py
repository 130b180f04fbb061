"""FD: finite-difference hyper-gradient (DARTS second-order approximation)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, ChainState, HyperGradient, Result, hookimpl

JBOAT_API_VERSION = API_VERSION


class FDConfig(BaseModel):
    """Settings of FD."""

    model_config = ConfigDict(extra="forbid")
    r: float = Field(1e-2, gt=0, description="perturbation radius; epsilon = r / ||v||")
    xi: float | None = Field(None, gt=0, description="virtual step size; default: the "
                             "lower-level learning rate eta")


class FD(HyperGradient):
    r"""Finite-difference hyper-gradient, DARTS' second-order approximation [1].

    With y' the lower-level point (y_K, or y_{k*} after PTT), w = y_0 and
    :math:`v = \nabla_{y'} F(x, y')`, :math:`\epsilon = r/\|v\|`:

    .. math:: g_x = \nabla_x F(x, y') - \xi\,
              \frac{\nabla_x f(x, w + \epsilon v) - \nabla_x f(x, w - \epsilon v)}{2\epsilon}

    i.e. :math:`\nabla_x F - \xi \nabla^2_{xy} f(x, w)\, v` without second-order autodiff
    (3 gradient evaluations). With K = 1 and xi = eta this is exactly the one-step unrolled
    hyper-gradient up to O(epsilon^2) (exact when grad_x f is quadratic in y, as in ridge).
    The perturbed points are evaluated functionally: the real lower model is never
    modified and nothing is printed.

    References
    ----------
    [1] Liu H., Simonyan K., Yang Y., "DARTS: Differentiable architecture search", ICLR 2019.
    """

    name = "FD"
    stage = "gradient"
    order = 30
    role = "terminal"
    conflicts = ("RGT",)
    config_model = FDConfig
    approximates = "unrolled"
    exact_settings = {"lower_iters": 1}
    summary = "Finite-difference hyper-gradient (DARTS second-order approximation)"
    formula = "g_x = grad_x F(y') - xi [grad_x f(w+eps v) - grad_x f(w-eps v)]/(2 eps), v = grad_y F(y')"
    reference = "Liu et al., DARTS: Differentiable architecture search, ICLR 2019"

    def step(self, state: ChainState) -> Result:
        import jittor as jt

        from jboat_core.numerics import (constant, detach, grads, lower_at, terminal_result,
                                         upper_at, vdot)

        y, fmodel = state.ll_point(), state.fmodel
        xi = self.config.xi if self.config.xi is not None else state.ll_lr
        yd = detach(y)
        F = upper_at(self, state.ul_feed, fmodel, yd)
        n = len(self.ul_var)
        dF = detach(grads(F, self.ul_var + yd, self.name, "grad F"))
        gx, v = dF[:n], self.runtime.parallel.data_mean(dF[n:])
        norm = jt.sqrt(vdot(v, v))
        eps = constant(self.config.r, norm) / jt.maximum(norm, 1e-30)
        w = detach(fmodel.parameters(time=0))
        f_obj = state.ll_objective

        def grad_x_f(sign: float, where: str):
            point = [wi + vi * (eps * sign) for wi, vi in zip(w, v)]
            return grads(lower_at(self, state.ll_feed, fmodel, point, f"f at {where}", f_obj),
                         self.ul_var, self.name, f"grad_x f({where})")

        plus, minus = grad_x_f(1.0, "w + eps v"), grad_x_f(-1.0, "w - eps v")
        scale = constant(xi, eps) / (eps * 2)
        g = [(gi - (p - m) * scale).detach() for gi, p, m in zip(gx, plus, minus)]
        return terminal_result(self, state, F, g, y)


@hookimpl
def jboat_register_hypergradients(register):
    register(FD)
