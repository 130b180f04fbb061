"""CGN: implicit hyper-gradient with conjugate gradient on the normal equations.

This module is the plugin: the entry point ``cgn = "jboat_example_plugin.cgn"`` names it,
it declares the contract version it is written for (``JBOAT_API_VERSION = 2``, a literal)
and registers ``CGN`` through the
``jboat_register_hypergradients`` hook. Importing it does not import Jittor.
"""

from __future__ import annotations

import functools

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import ChainState, HyperGradient, Result, hookimpl

from .cgnr import solve_cgnr

JBOAT_API_VERSION = 2


class CGNConfig(BaseModel):
    """Settings of CGN (the ``"CGN"`` section of a solver config)."""

    model_config = ConfigDict(extra="forbid")
    k: int = Field(10, ge=1, description="maximum CGNR iterations (2 Hessian-vector products "
                   "each)")
    tolerance: float = Field(0.0, ge=0, description="stop when the normal-equation residual "
                             "||H(grad_y F - H v) - damping v|| < tolerance (0: always k "
                             "iterations, no per-iteration sync)")
    damping: float = Field(0.0, ge=0, description="Tikhonov damping lambda of the normal "
                           "equations (H^2 + lambda I) v = H grad_y F; 0: exact IFT solve, "
                           "> 0: regularised v for a singular or ill-conditioned Hessian")


class CGN(HyperGradient):
    r"""Implicit hyper-gradient, linear system solved by CG on the normal equations [1, 2].

    .. math:: g_x = \nabla_x F - \nabla^2_{xy} f\, v,\qquad
              (H^\top H + \lambda I)\, v = H^\top \nabla_y F,\qquad H = \nabla^2_{yy} f,

    with k CGNR iterations, evaluated at the lower-level point y (y_K, or y_{k*} after
    PTT) held constant. With :math:`\lambda = 0` and CGNR converged, v solves
    :math:`H v = \nabla_y F` and g_x is the implicit-function-theorem hyper-gradient.

    Unlike CG, which needs H positive definite (and stops at the first direction of
    non-positive curvature), CGNR converges for any non-singular H: a lower level stopped
    at a saddle point or in a non-convex region. The Hessian is symmetric, so
    :math:`H^\top = H` and an iteration costs two Hessian-vector products (k CGNR
    iterations: about 2k + 3 in all, memory independent of K). Convergence depends on
    :math:`\kappa(H)^2`: prefer CG when H is known to be positive definite.

    References
    ----------
    [1] Pedregosa F., "Hyperparameter optimization with approximate gradient", ICML 2016.
    [2] Saad Y., "Iterative Methods for Sparse Linear Systems", 2nd ed., SIAM 2003,
    section 8.3 (CGNR).
    """

    name = "CGN"
    stage = "implicit"
    order = 15
    role = "terminal"
    config_model = CGNConfig
    approximates = "implicit"  # checked by the conformance kit against the exact IFT
    exact_settings = {"k": 20}  # CGNR steps enough for the kit's 5-dimensional problem
    summary = ("Implicit gradient (IFT), H v = grad_y F solved by CG on the normal equations "
               "(CGNR; H may be indefinite)")
    formula = ("g_x = grad_x F - d2f/dxdy · v,  (H^T H + lambda I) v = H^T grad_y F,  "
               "H = d2f/dy2  (k CGNR steps)")
    reference = ("Pedregosa, Hyperparameter optimization with approximate gradient, ICML 2016; "
                 "CGNR: Saad, Iterative Methods for Sparse Linear Systems, SIAM 2003, sec. 8.3")

    def step(self, state: ChainState) -> Result:
        from jboat_core.numerics import implicit_step  # imports Jittor: only here

        solve = functools.partial(solve_cgnr, maxiter=self.config.k,
                                  tol=self.config.tolerance, damping=self.config.damping)
        # evaluates at y_K (or y_k* after PTT), w.r.t. ul_var (or y_0 after IAD), with
        # the objective the dynamics descended (GDA), plus DI's gradient if asked
        return implicit_step(self, state, solve)

@hookimpl
def jboat_register_hypergradients(register):
    register(CGN)
