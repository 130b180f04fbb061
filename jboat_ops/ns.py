"""NS: implicit hyper-gradient with a truncated Neumann series."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, ChainState, HyperGradient, Result, hookimpl

JBOAT_API_VERSION = API_VERSION


class NSConfig(BaseModel):
    """Settings of NS (its own section ``"NS"``, independent of CG's)."""

    model_config = ConfigDict(extra="forbid")
    k: int = Field(10, ge=1, description="number of Neumann terms after the first")
    tolerance: float = Field(0.0, ge=0, description="stop after the first term whose norm "
                             "< tolerance (0: always k terms, no sync)")
    damping: float = Field(0.0, ge=0, description="lambda: solve (H + lambda I) v = grad_y F "
                           "(for indefinite Hessians of nonconvex lower levels; 0: exact IFT)")
    check_every: int = Field(10, ge=1, description="with tolerance > 0 and check_every < k, "
                             "test for the stop every this many terms and at the end "
                             "(one host sync each); with check_every >= k (the default) "
                             "the stop is applied on the device, no sync; the result "
                             "does not depend on it")
    alpha: float | None = Field(None, gt=0, description="series step; default: the "
                                "lower-level learning rate eta for NGD's gradient form, 1 "
                                "for a declared fixed point or root (PGD)")
    linear_solver: str = Field("neumann", description="the registered linear solver (`jboat "
                               "list-ops`) with maxiter = k, tol = tolerance (and alpha for "
                               "neumann)")


class NS(HyperGradient):
    r"""Implicit hyper-gradient with a Neumann-series inverse [1].

    .. math:: g_x = \nabla_x F - \alpha\, \nabla^2_{xy} f \sum_{i=0}^{k}
              (I - \alpha \nabla^2_{yy} f)^i\, \nabla_y F,

    at y held constant, alpha = eta by default; for a fixed point the dynamics declared
    (PGD: y = T(x, y)) the series is :math:`\sum_i (\partial_y T^\top)^i \nabla_y F` (alpha
    = 1 by default) and g_x = grad_x F + (d_x T)^T v; with ``damping`` lambda the series inverts
    H + lambda I. Converges to the IFT hyper-gradient when
    :math:`\|I - \alpha H\| < 1` and k grows (error :math:`\|I-\alpha H\|^{k+1}`); cost
    k + 2 Hessian-vector products. The cotangents of the vector-Jacobian products are
    constants, so each product is exact.

    References
    ----------
    [1] Lorraine J., Vicol P., Duvenaud D., "Optimizing millions of hyperparameters by
    implicit differentiation", AISTATS 2020.
    """

    name = "NS"
    stage = "implicit"
    order = 20
    role = "terminal"
    config_model = NSConfig
    approximates = "implicit"
    exact_settings = {"k": 400, "tolerance": 0.0}
    summary = "Implicit gradient (IFT) with a truncated Neumann series for H^-1 grad_y F"
    formula = "g_x = grad_x F - alpha d2f/dxdy · sum_{i<=k} (I - alpha H)^i grad_y F"
    reference = "Lorraine et al., Optimizing millions of hyperparameters by implicit differentiation, AISTATS 2020"

    def step(self, state: ChainState) -> Result:
        from jboat_core.numerics import implicit_step, linear_solver

        cfg = self.config
        gradient = state.optimality is None or state.optimality.form == "gradient"
        alpha = cfg.alpha if cfg.alpha is not None else (state.ll_lr if gradient else 1.0)
        solve = linear_solver(self, cfg.linear_solver, maxiter=cfg.k, tol=cfg.tolerance,
                              alpha=alpha, check_every=cfg.check_every)
        return implicit_step(self, state, solve, cfg.damping)


@hookimpl
def jboat_register_hypergradients(register):
    register(NS)
