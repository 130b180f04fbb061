"""CG: implicit hyper-gradient with a conjugate-gradient linear solve."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, ChainState, HyperGradient, Result, hookimpl

JBOAT_API_VERSION = API_VERSION


class CGConfig(BaseModel):
    """Settings of CG (the upstream ``"CG": {"k": 10, "tolerance": 1e-10}`` section)."""

    model_config = ConfigDict(extra="forbid")
    k: int = Field(10, ge=1, description="maximum conjugate-gradient iterations")
    tolerance: float = Field(1e-10, ge=0, description="stop when ||residual|| < tolerance "
                             "(0: always k iterations, no sync)")
    damping: float = Field(0.0, ge=0, description="lambda: solve (H + lambda I) v = grad_y F "
                           "(for indefinite Hessians of nonconvex lower levels; 0: exact IFT)")
    check_every: int = Field(10, ge=1, description="with tolerance > 0 and check_every < k, "
                             "test for the stop every this many iterations and at the end "
                             "(one host sync each); with check_every >= k (the default) "
                             "the stop is applied on the device, no sync; the result "
                             "does not depend on it")
    linear_solver: str = Field("cg", description="the registered linear solver (`jboat "
                               "list-ops`: cg, gmres, bicgstab, minres, normal_cg, dense, "
                               "neumann or a plugin's) with maxiter = k, tol = tolerance; "
                               "cg and minres need a symmetric system (NGD's, not PGD's)")


class CG(HyperGradient):
    r"""Implicit hyper-gradient, linear system solved by conjugate gradient [1].

    .. math:: g_x = \nabla_x F - \nabla^2_{xy} f\, v,\qquad
              \nabla^2_{yy} f\, v = \nabla_y F \ \text{(k CG iterations)},

    evaluated at the lower-level point y (y_K, or y_{k*} after PTT) held constant; with
    ``damping`` lambda > 0 the system is (H + lambda I) v = grad_y F (indefinite Hessians of
    nonconvex lower levels; tolerance 0 never divides by zero, see ``solve_cg``). Exact
    (the implicit-function-theorem hyper-gradient) when y = y*(x) and CG has converged;
    k CG iterations cost about k + 2 Hessian-vector products, memory independent of K.

    The cotangent of every vector-Jacobian product is a constant (so the products are
    exact and memory does not grow across iterations), the last CG iterate is returned,
    and CG stops on non-positive curvature instead of dividing by it.

    References
    ----------
    [1] Pedregosa F., "Hyperparameter optimization with approximate gradient", ICML 2016.
    """

    name = "CG"
    stage = "implicit"
    order = 10
    role = "terminal"
    config_model = CGConfig
    approximates = "implicit"
    summary = "Implicit gradient (IFT) with a conjugate-gradient solve of H v = grad_y F"
    formula = "g_x = grad_x F - d2f/dxdy · v,  (d2f/dy2) v = grad_y F  (k CG steps)"
    reference = "Pedregosa, Hyperparameter optimization with approximate gradient, ICML 2016"

    def step(self, state: ChainState) -> Result:
        from jboat_core.numerics import implicit_step, linear_solver

        cfg = self.config
        solve = linear_solver(self, cfg.linear_solver, maxiter=cfg.k, tol=cfg.tolerance,
                              check_every=cfg.check_every)
        return implicit_step(self, state, solve, cfg.damping)


@hookimpl
def jboat_register_hypergradients(register):
    register(CG)
