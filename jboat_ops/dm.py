"""DM: dual multipliers, a single-loop primal-dual bilevel scheme (averaged method of
multipliers)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import (API_VERSION, Check, DivergedError, DynamicalSystem,
                                 DynamicsState, Result, aggregated, hookimpl)

JBOAT_API_VERSION = API_VERSION


class DMConfig(BaseModel):
    """Settings of DM (upstream section ``"DM"``)."""

    model_config = ConfigDict(extra="forbid")
    auxiliary_v_lr: float = Field(0.1, gt=0, description="accepted for upstream configs; "
                                  "the dual step is eta_v below")
    tau: float = Field(0.01, ge=0, description="decay exponent of the step sizes")
    p: float = Field(100.0, gt=0, description="alpha_t = mu0 (t+1)^(-1/p) with GDA")
    mu0: float = Field(0.9, gt=0, le=1, description="initial aggregation weight with GDA")
    eta0: float = Field(0.5, gt=0, description="dual step factor without GDA")
    strategy: Literal["s1", "s2", "s3"] = Field("s1", description="step-size schedule")


class DM(DynamicalSystem):
    r"""Dual multipliers [1]: one primal-dual step per outer iteration.

    With phi = f (or GDA's phi_alpha, alpha_t = mu0 (t+1)^{-1/p}), y the current lower point
    (y_0, or y_K after NGD), H = d2 phi/dy2, b = grad_y F, c = grad_x F:

    * dual update, rule from ``na_op`` (["RAD"]: gradient step, ["CG"]: exact line search
      on 1/2 v'Hv - b'v):  v <- v - eta_v (H v - b)  or  v <- v - iota r, r = Hv - b,
      iota = |r|^2 / (r'Hr + 1e-12);
    * lower update:  y <- y - eta grad_y phi (the real lower-level parameters);
    * upper gradient: g_x = c - d2 phi/dxdy v (old v), applied with step lr_x.

    Step sizes: without GDA eta_v = eta0 (t+1)^{-tau/2} eta and lr_x = lr_x0 (t+1)^{-tau}
    eta; with GDA (s1/s2/s3) eta_v = (t+1)^{-tau/2} alpha^{2,1,0} eta and
    lr_x = (t+1)^{-3tau/2} alpha^{7,5,3} eta. The dual variables are DM's memory (zero at
    the first iteration): the solver adopts the new v only once the iteration passed its
    finiteness checks. ``self.strategy`` starts as the config's and may be changed between
    iterations, as JBOAT's examples do.

    References
    ----------
    [1] Liu R., Liu Y., Yao W., Zeng S., Zhang J., "Averaged method of multipliers for
    bi-level optimization without lower-level strong convexity", ICML 2023.
    """

    name = "DM"
    stage = "solve"
    order = 20
    role = "terminal"
    requires_any = ("RAD", "CG")
    provides_hypergradient = True
    config_model = DMConfig
    schedules_ul_lr = True  # sets the upper learning rate each iteration (checkpointed)
    summary = "Dual multipliers: single-loop primal-dual update of y, v and x"
    formula = "v <- v - eta_v (H v - grad_y F); y <- y - eta grad_y phi; g_x = grad_x F - d2phi/dxdy v"
    reference = "Liu et al., Averaged method of multipliers for bi-level optimization without lower-level strong convexity, ICML 2023"

    @classmethod
    def check_solver(cls, config, solver):
        if len(solver.na_op) != 1 or solver.na_op[0] not in ("RAD", "CG"):
            return [f"na_op: DM needs na_op to be exactly [\"RAD\"] or [\"CG\"] (it selects "
                    f"the dual update rule), got {solver.na_op}"]
        return []

    def step(self, state: DynamicsState) -> Result:
        import jittor as jt

        from jboat_core.numerics import axpy, check_scalar, constant, detach, grads, vdot

        t = int(state.current_iter)
        fmodel = state.fmodel
        y = detach(fmodel.parameters())
        eta = state.dopt.lr
        phi, alpha = self._objective(state, t)
        ul_var = self.ul_var or list(self.ul_model.parameters())
        # dual variables: zero at first, then DM's memory across iterations
        v = state.memory.get("v") or [jt.zeros(p.shape, p.dtype) for p in y]
        f = check_scalar(phi(state.ll_feed, self.ul_model, fmodel, params=y),
                         self.name, "lower objective")
        F = check_scalar(self.ul_objective(state.ul_feed, self.ul_model, fmodel, params=y),
                         self.name, "upper objective")
        n, par = len(y), self.runtime.parallel
        dF = detach(grads(F, y + ul_var, self.name, "grad F"))
        gy = grads(f, y, self.name, "grad phi")
        hv_x = grads(vdot(gy, v), y + ul_var, self.name, "H v")
        hv, mixed = par.data_mean(detach(hv_x[:n])), detach(hv_x[n:])
        r = [a - b for a, b in zip(hv, par.data_mean(dF[:n]))]
        if self._line_search():
            hr = par.data_mean(detach(grads(vdot(gy, r), y, self.name, "H r")))
            step = vdot(r, r) / (vdot(r, hr) + 1e-12)
        else:
            step = self._eta_v(t, eta, alpha)
        new_v = detach(axpy(-step, r, v))
        new_y = [(p - g * constant(eta, p)).detach() for p, g in zip(y, par.data_mean(detach(gy)))]
        g_x = [(c - m).detach() for c, m in zip(dF[n:], mixed)]
        diverged = DivergedError(self.name, f"outer iteration {t}, dual update", "the dual "
                                 "variables v became NaN/Inf; lower eta0 (or the lower "
                                 "learning rate) or check F and f")
        return Result(upper_loss=F.detach(), hyper_gradients=g_x, ll_update=new_y,
                      lower_loss=state.lower_loss, ul_lr=self._lr_x(t, eta, alpha),
                      memory={"v": new_v},
                      checks=(Check(vdot(new_v, [0.0] * n), lambda: diverged),))

    @property
    def strategy(self) -> str:
        """The step-size schedule in use (the config's unless set on the instance)."""
        return self.__dict__.get("_strategy", self.config.strategy)

    @strategy.setter
    def strategy(self, value: str) -> None:
        self._strategy = DMConfig(strategy=value).strategy  # validated: s1, s2 or s3

    def _line_search(self) -> bool:
        """The dual rule ``na_op`` selects: CG's exact line search, else a gradient step."""
        return "CG" in [str(n).upper() for n in self.runtime.na_op]

    def _objective(self, state, t):
        """(phi, alpha_t): f without GDA; GDA's aggregation at alpha_t = mu0 (t+1)^(-1/p)."""
        if state.aggregate is None:
            return self.ll_objective, None
        alpha = self.config.mu0 * (t + 1) ** (-1.0 / self.config.p)
        return aggregated(state.aggregate, alpha, state.ul_feed), alpha

    def _eta_v(self, t, eta, alpha):
        tau = self.config.tau
        if alpha is None:
            return self.config.eta0 * (t + 1) ** (-tau / 2) * eta
        power = {"s1": 2, "s2": 1, "s3": 0}[self.strategy]
        return (t + 1) ** (-tau / 2) * alpha ** power * eta

    def _lr_x(self, t, eta, alpha):
        tau = self.config.tau
        if alpha is None:
            base = self.runtime.ul_lr if self.runtime.ul_lr is not None else 1.0
            return base * (t + 1) ** (-tau) * eta
        power = {"s1": 7, "s2": 5, "s3": 3}[self.strategy]
        return (t + 1) ** (-1.5 * tau) * alpha ** power * eta


@hookimpl
def jboat_register_dynamics(register):
    register(DM)
