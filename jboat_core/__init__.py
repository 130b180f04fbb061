"""jboat for users: solve a bilevel problem with composed hyper-gradient operators.

One of jboat's three public surfaces (``__all__`` below; ``tests/test_public_api.py``
compares them with the committed snapshot ``tests/public_api.json``):

* ``jboat_core``: what a user writes against: ``Problem`` and what it returns
  (``Evaluation``, ``IterationRecord``), ``Task`` (what a task file's ``build`` returns),
  the solver configs and presets, ``import_jittor``, ``constant``, the errors and warnings;
* ``jboat_core.contract``: what an operator author writes against (CONTRIBUTING.md);
* ``jboat_core.numerics``: the math helpers operators compute with.

Everything else is internal: the wings ``platform``, ``plugins``, ``solver``, ``run`` and
``compat`` (JBOAT's seed API under ``jboat``, API-1 plugins, old import paths, until 0.3).
``jboat_core.testing`` is a tool for tests, not an API to build on: a plugin's tests call
its conformance kit (``conformance_tests``) and reference problems. Names this module
exported before 0.2 still resolve, with a ``DeprecationWarning`` naming their new home
(``CHANGELOG.md``). Importing ``jboat_core`` never imports Jittor.
"""

from __future__ import annotations

import importlib
import warnings

from .errors import (ChainError, ConfigError, DivergedError, JboatError, MetadataError,
                     OperatorRuntimeError, PluginError, PrecisionWarning, UnknownOperatorError)
from .numerics.variables import InvisibleModuleWarning
from .platform._jittor import jittor as import_jittor
from .contract.optimality import LowerSolver, custom_fixed_point, custom_root
from .plugins.config import SolverConfig, load_solver_config, parse_solver_config
from .plugins.presets import Preset
from .run.task import Task, TaskError
from .solver.problem import Problem
from .solver.records import Evaluation, IterationRecord

__version__ = "0.2.0"


def constant(value, like):
    """``value`` as a factor for ``like``'s dtype, exactly.

    Jittor stores Python numbers as float32, so ``v64 * 0.1`` is off by 1.5e-8: for
    float64 objectives (gradient checks) write
    ``f = data + squares * jboat_core.constant(1e-2, like=squares)``.

    Parameters
    ----------
    value : float
    like : jittor.Var

    Returns
    -------
    float or jittor.Var
        A one-element float64 Var when ``like`` is float64 and float32 does not hold
        ``value``; else ``value`` itself.
    """
    from .numerics.autodiff import constant as _constant

    return _constant(value, like)


__all__ = [
    "ChainError", "ConfigError", "DivergedError", "Evaluation", "InvisibleModuleWarning",
    "IterationRecord", "JboatError", "LowerSolver", "MetadataError", "OperatorRuntimeError", "PluginError",
    "PrecisionWarning", "Preset", "Problem", "SolverConfig", "Task", "TaskError",
    "UnknownOperatorError", "constant", "custom_fixed_point", "custom_root", "import_jittor", "load_solver_config",
    "parse_solver_config",
]

#: Names exported here before 0.2 -> (module, attribute, advice); each works until 0.3
#: with a ``DeprecationWarning``.
_DEPRECATED = {
    **{n: ("jboat_core.contract", n, "operator authors import it from jboat_core.contract")
       for n in ("API_VERSION", "ChainState", "DynamicsState", "Result", "SolveState",
                 "result", "DynamicalSystem", "DynamicsPlan", "EmptyConfig",
                 "FirstOrderSolver", "HyperGradient", "KINDS", "Kind", "Runtime", "hookimpl",
                 "hookspec")},
    **{n: ("jboat_core.numerics", n, "operators import it from jboat_core.numerics")
       for n in ("DifferentiableAdam", "DifferentiableOptimizer", "DifferentiableSGD",
                 "FunctionalModel")},
    **{n: ("jboat_core.numerics.variables", n, "internal: Problem binds the variables")
       for n in ("Binding", "bind_variables")},
    **{n: ("jboat_core.plugins.registry", n, "internal: list operators with `jboat list-ops`")
       for n in ("Registry", "get_registry", "set_registry")},
    **{n: ("jboat_core.plugins.ordering", n, "internal: Problem and `jboat validate` order "
           "and check compositions") for n in ("default_gradient_order",
                                                "validate_composition")},
    "validate_and_adjust_order": ("jboat_core.plugins.ordering", "validate_and_adjust_order",
                                  "the seed's is jboat.na_ol.sequential_hg."
                                  "validate_and_adjust_order"),
    **{n: ("jboat_core.compat.seed", n, "the seed API is jboat.na_ol.sequential_hg")
       for n in ("SequentialHG", "makes_functional_na_operation")},
    "HyperGradientOperator": ("jboat_core.compat.api1", "HyperGradientOperator",
                              "write step (API 2) on jboat_core.contract.HyperGradient"),
    **{n: ("jboat_core.compat.api1", n, "API 1's helper; write step (API 2) instead "
           "(CONTRIBUTING.md)")
       for n in ("finished", "lower_point", "passthrough", "require_last", "require_next")},
}


def __getattr__(name: str):
    if name not in _DEPRECATED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr, advice = _DEPRECATED[name]
    warnings.warn(f"jboat_core.{name} is deprecated: {advice} ({module}.{attr}); "
                  "jboat_core.{name} goes in jboat 0.3".replace("{name}", name),
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), attr)


def __dir__():
    return sorted(__all__)


from . import compat as _compat  # noqa: E402  (old import paths, API-1 adapters)

_compat.install()
