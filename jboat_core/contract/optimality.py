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

__all__ = ["FORMS", "Optimality"]

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
