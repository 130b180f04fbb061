"""The built-in linear solvers of the implicit operators, registered by name
(``linear_solver = "gmres"`` in CG's or NS's section): cg, neumann, normal_cg, gmres,
bicgstab, minres, dense. Importing this module does not import Jittor."""

from __future__ import annotations

from jboat_core.contract import API_VERSION, LinearSolver, hookimpl

JBOAT_API_VERSION = API_VERSION


def cg(matvec, b, *, rmatvec=None, maxiter: int = 10, tol: float = 1e-10,
       check_every: int = 10):
    """``jboat_core.numerics.solve_cg`` (A symmetric positive definite)."""
    from jboat_core.numerics import solve_cg
    return solve_cg(matvec, b, maxiter=maxiter, tol=tol, check_every=check_every)


def neumann(matvec, b, *, rmatvec=None, maxiter: int = 10, tol: float = 0.0,
            alpha: float = 1.0, check_every: int = 10):
    """``jboat_core.numerics.solve_neumann`` (spectral radius of I - alpha A below 1)."""
    from jboat_core.numerics import solve_neumann
    return solve_neumann(matvec, b, maxiter=maxiter, tol=tol, alpha=alpha,
                         check_every=check_every)


_HERE = __name__

SOLVERS = (
    LinearSolver(name="cg", function=f"{_HERE}:cg", requires_symmetric=True,
                 summary="Conjugate gradient: symmetric positive definite A (k products)",
                 formula="x_{i+1} = x_i + alpha_i p_i, p_i A-conjugate",
                 reference="Hestenes & Stiefel, Methods of conjugate gradients, 1952"),
    LinearSolver(name="neumann", function=f"{_HERE}:neumann",
                 summary="Truncated Neumann series: any A with ||I - alpha A|| < 1 "
                         "(a contraction's fixed point: alpha = 1)",
                 formula="x = alpha sum_{i<=k} (I - alpha A)^i b",
                 reference="Lorraine et al., Optimizing millions of hyperparameters by "
                           "implicit differentiation, AISTATS 2020"),
    LinearSolver(name="normal_cg", function="jboat_core.numerics:solve_normal_cg", uses_transpose=True,
                 summary="CG on the normal equations A^T A x = A^T b: any A, squared "
                         "condition number, two products per iteration",
                 formula="CGLS on A^T A x = A^T b",
                 reference="Hestenes & Stiefel, 1952; JAXopt solve_normal_cg"),
    LinearSolver(name="gmres", function="jboat_core.numerics:solve_gmres",
                 summary="Restarted GMRES(m): any square A, minimal residual per cycle",
                 formula="x = argmin_{x in K_m} ||b - A x||, restart every m",
                 reference="Saad & Schultz, GMRES, SIAM J. Sci. Stat. Comput. 1986"),
    LinearSolver(name="bicgstab", function="jboat_core.numerics:solve_bicgstab",
                 summary="BiCGSTAB: any square A, short recurrences, two products per "
                         "iteration",
                 formula="Bi-CG with a stabilising minimal-residual step",
                 reference="van der Vorst, Bi-CGSTAB, SIAM J. Sci. Stat. Comput. 1992"),
    LinearSolver(name="minres", function="jboat_core.numerics:solve_minres", requires_symmetric=True,
                 summary="MINRES: symmetric A, indefinite allowed (nonconvex lower levels)",
                 formula="x = argmin_{x in K_k} ||b - A x||, Lanczos + Givens",
                 reference="Paige & Saunders, SIAM J. Numer. Anal. 1975"),
    LinearSolver(name="dense", function="jboat_core.numerics:solve_dense",
                 summary="Direct solve: A assembled (n products), LU in float64; small y "
                         "only (n <= 4096)",
                 formula="x = numpy.linalg.solve(A, b)",
                 reference="Golub & Van Loan, Matrix Computations"),
)


@hookimpl
def jboat_register_linear_solvers(register):
    for solver in SOLVERS:
        register(solver)
