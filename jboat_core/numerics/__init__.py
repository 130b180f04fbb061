"""The math an operator computes with: automatic differentiation helpers, linear
solvers, the implicit hyper-gradient, first-order helpers, the functional lower model and
the differentiable optimizers.

Part of a plugin author's surface, with ``jboat_core.contract``. Its names load lazily:
importing ``jboat_core.numerics`` does not import Jittor; reading one of the names below
does (import them inside ``step``).
"""

from __future__ import annotations

import importlib

#: Public name -> the module of this package that defines it.
_WHERE = {
    # autodiff: gradients as lists, checked objectives
    "axpy": "autodiff", "check_scalar": "autodiff", "constant": "autodiff",
    "detach": "autodiff", "flush": "autodiff",
    "grads": "autodiff", "init_gradients": "autodiff",
    "linear_operator": "autodiff", "lower_at": "autodiff", "upper_at": "autodiff",
    "terminal_result": "autodiff",
    "vdot": "autodiff", "vjp": "autodiff",
    # linear solvers: solve(matvec, b) -> x, b and x lists of Vars
    "solve_cg": "linsolve", "solve_neumann": "linsolve",
    "BoundSolver": "linsolve", "linear_solver": "linsolve",
    "solve_gmres": "krylov", "solve_bicgstab": "krylov", "solve_minres": "krylov",
    "solve_normal_cg": "krylov", "solve_dense": "krylov",
    # implicit-function-theorem hyper-gradient
    "implicit_hypergradient": "implicit", "implicit_step": "implicit",
    # checkpointed reverse mode through an inner loop
    "Tape": "tape", "trajectory_grads": "autodiff",
    # forward-mode tangents through an inner loop; PTT's worst iterate
    "Tangents": "forward", "WorstIterate": "pessimistic",
    # first-order and stochastic solvers: the objectives at any point, on any minibatch;
    # the one inner gradient loop; minibatches and SAGA tables
    "Point": "firstorder", "descend": "firstorder", "minibatch": "sampling",
    "saga": "sampling",
    # the functional lower model and differentiable optimizers
    "FunctionalModel": "functional", "DifferentiableAdam": "diffopt",
    "DifferentiableOptimizer": "diffopt", "DifferentiableSGD": "diffopt",
}

__all__ = sorted(_WHERE)


#: Names exported before 0.2, resolved with a ``DeprecationWarning`` until 0.3.
_DEPRECATED = {"jt": ("autodiff", "jt", "Jittor itself: `import jittor as jt` inside step"),
               "Oracle": ("firstorder", "Point", "Point(op, state) serves first-order and "
                          "stochastic solvers alike (grad_f, f_products, hvp, cross, grad_F "
                          "with a feed)")}


def __getattr__(name: str):
    if name in _DEPRECATED:
        import warnings

        module, attr, advice = _DEPRECATED[name]
        warnings.warn(f"jboat_core.numerics.{name} is deprecated: {advice}; it goes in jboat "
                      "0.3", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
