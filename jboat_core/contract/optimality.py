"""What a dynamics operator's y_K approximates: its optimality condition, declared.

A dynamics operator states the condition its last iterate approximately satisfies, and the
implicit chains (CG, NS, or a plugin's, through ``jboat_core.numerics.implicit_step``)
differentiate *that* condition by the implicit function theorem:

* ``form = "gradient"`` (NGD, and any dynamics that declares nothing): y* is a stationary
  point of the lower objective the chain differentiates, the fixed point of
  T(x, y) = y - eta grad_y f(x, y), i.e. the root of G = grad_y f. The chain solves
  H v = grad_y F (H = d2f/dy2, symmetric) and returns grad_x F - (d2f/dxdy) v. (The
  fixed-point form of the same T gives (eta H) v' = grad_y F and
  grad_x F - eta (d2f/dxdy) v' with v' = v / eta: the same hyper-gradient; the chain
  solves the root form, so NGD's results are today's to the bit.)
* ``form = "fixed_point"``: y* = T(x, y*) for the declared map T (PGD: the proximal or
  projected gradient step T = prox_{eta g}(y - eta grad_y f)). The chain solves

  .. math:: (I - \\partial_y T)^\\top v = \\nabla_y F,\\qquad
            g_x = \\nabla_x F + (\\partial_x T)^\\top v.

* ``form = "root"``: G(x, y*) = 0 for the declared map G. The chain solves
  (d_y G)^T v = grad_y F and returns grad_x F - (d_x G)^T v.

The map is a closure over this iteration's feeds and models: ``map(y) -> list of Vars``
(one per lower variable, their shapes) whose graph reaches ``y`` and the upper variables
(through the upper model), so that vector-Jacobian products in y and x are taken by
reverse mode. ``symmetric`` says whether the linear system's matrix (d_y G, or
I - d_y T) is symmetric: a linear solver that needs symmetry (CG, MINRES) refuses a system
that is not (Bertrand et al. 2020: the prox's system is not symmetric off the support).
Importing this module does not import Jittor.

References
----------
Blondel M. et al., "Efficient and modular implicit differentiation", NeurIPS 2022
(JAXopt's ``custom_root`` / ``custom_fixed_point``).
Bertrand Q. et al., "Implicit differentiation of Lasso-type models for hyperparameter
optimization", ICML 2020.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FORMS", "LowerSolver", "Optimality", "custom_fixed_point", "custom_root"]

#: The forms an optimality condition takes.
FORMS: tuple[str, ...] = ("gradient", "fixed_point", "root")


@dataclass(frozen=True)
class Optimality:
    """The condition y_K approximates (``DynamicsState.optimality``, passed on to the chain
    as ``ChainState.optimality``).

    Attributes
    ----------
    form : str
        ``"gradient"``, ``"fixed_point"`` or ``"root"`` (module docstring).
    map : callable or None
        ``map(y) -> list of Vars``: T(x, y) (fixed point) or G(x, y) (root), x through
        the upper model; None for ``"gradient"`` (the chain differentiates its lower
        objective).
    symmetric : bool
        The system matrix (I - d_y T, or d_y G; H for ``"gradient"``) is symmetric.
    name : str
        How errors name the condition (``"PGD prox l1"``).
    """

    form: str = "gradient"
    map: Callable | None = None
    symmetric: bool = False
    name: str = ""

    def __post_init__(self):
        if self.form not in FORMS:
            raise ValueError(f"Optimality: form={self.form!r} is not one of {FORMS}")
        if self.form != "gradient" and not callable(self.map):
            raise ValueError(f"Optimality {self.name or self.form}: form {self.form!r} needs "
                             "map(y) -> list of Vars")

    @classmethod
    def gradient(cls, name: str = "grad_y f = 0") -> "Optimality":
        """y* = y* - eta grad_y f(x, y*): the lower objective's stationary point (NGD)."""
        return cls("gradient", None, True, name)

    @classmethod
    def fixed_point(cls, T: Callable, symmetric: bool = False,
                    name: str = "y = T(x, y)") -> "Optimality":
        """y* = T(x, y*)."""
        return cls("fixed_point", T, symmetric, name)

    @classmethod
    def root(cls, G: Callable, symmetric: bool = False,
             name: str = "G(x, y) = 0") -> "Optimality":
        """G(x, y*) = 0."""
        return cls("root", G, symmetric, name)


@dataclass(frozen=True)
class LowerSolver:
    """A user's own lower-level solver and its optimality condition (what the dynamics
    operator ``SOLVED`` runs; made by ``custom_root`` / ``custom_fixed_point``).

    Attributes
    ----------
    solve : callable
        ``solve(x, y0, ll_feed) -> y``: ``x`` the upper variables and ``y0`` the lower
        start, as lists of float64 NumPy arrays; returns y*(x) as a list of arrays (one
        per lower variable) computed by any means (NumPy, scikit-learn, a closed form).
        jboat never differentiates through it.
    form : str
        ``"gradient"`` (grad_y f = 0 for the user's f), ``"fixed_point"`` or ``"root"``.
    condition : callable or None
        ``condition(ll_feed, ul_model, ll_model, params=y) -> list of Vars``: T(x, y) or
        G(x, y) in Jittor (objective signature; x through ``ul_model``), differentiable.
    symmetric : bool
        Its system is symmetric (lets CG and MINRES be used).
    """

    solve: Callable
    form: str = "gradient"
    condition: Callable | None = None
    symmetric: bool = False

    def __call__(self, x, y0, ll_feed):
        return self.solve(x, y0, ll_feed)


def custom_root(G: Callable | None = None, symmetric: bool = False):
    """Decorate ``solve(x, y0, ll_feed) -> y`` whose result satisfies G(x, y) = 0
    (JAXopt's ``custom_root``); ``G(ll_feed, ul_model, ll_model, params=y) -> list of
    Vars``. ``G=None``: the stationarity of the problem's own lower objective,
    grad_y f = 0 (symmetric). Pass the result as ``Problem(..., ll_solver=...)`` (or
    ``Task(ll_solver=...)``) with ``gm_op = ["SOLVED"]``.

    Example::

        @custom_root()                      # y = argmin f: grad_y f(x, y) = 0
        def ridge(x, y0, feed):
            A, b = feed_np["A"], feed_np["b"]
            return [np.linalg.solve(A.T @ A / n + np.diag(np.exp(x[0])), A.T @ b / n)]
    """
    def wrap(solve):
        if G is None:
            return LowerSolver(solve, "gradient", None, True)
        return LowerSolver(solve, "root", G, symmetric)
    return wrap


def custom_fixed_point(T: Callable, symmetric: bool = False):
    """Decorate ``solve(x, y0, ll_feed) -> y`` whose result satisfies y = T(x, y)
    (JAXopt's ``custom_fixed_point``); ``T(ll_feed, ul_model, ll_model, params=y) ->
    list of Vars`` (e.g. the Lasso's proximal step, with scikit-learn's Lasso as the
    solver: ``docs/guide/choosing.md``). The system I - d_y T is not symmetric unless
    said: use ``linear_solver = "gmres"`` (or bicgstab, normal_cg, dense, neumann)."""
    def wrap(solve):
        return LowerSolver(solve, "fixed_point", T, symmetric)
    return wrap
