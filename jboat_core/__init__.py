"""jboat core, in wings (each imports only the wings listed before it):

* ``jboat_core.errors``: the error classes (imports nothing of jboat).
* ``jboat_core.platform``: Jittor's set-up (oneDNN, the CPU/CUDA decision), MPI reductions,
  signals, safe file writes.
* ``jboat_core.contract``: what an operator author writes against: the operator bases, the
  typed step protocol, metadata, config sections, kinds and the hook spec.
* ``jboat_core.numerics``: automatic differentiation, linear solvers, implicit and
  first-order helpers, minibatch sampling and stochastic oracles (``sampling``), the
  functional lower model and differentiable optimizers.
* ``jboat_core.plugins``: plugin discovery (registry), ordering, presets, solver configs.
* ``jboat_core.solver``: the composition runner, ``SequentialHG`` and ``Problem``.
* ``jboat_core.run``: ``jboat run``/``compare``/``doctor``, task files, checkpoints, output
  folders, metrics and the command line.
* ``jboat_core.testing``: exact reference problems and the conformance kit.

Importing ``jboat_core`` never imports Jittor; operators import it when they compute.
"""

from . import _moved

from .platform._jittor import jittor as import_jittor
from .contract.chain import finished, lower_point, passthrough, require_last, require_next
from .contract.protocol import ChainState, DynamicsState, Result, SolveState, result
from .plugins.config import SolverConfig, load_solver_config, parse_solver_config
from .numerics.diffopt import DifferentiableAdam, DifferentiableOptimizer, DifferentiableSGD
from .errors import (ChainError, ConfigError, DivergedError, JboatError, MetadataError,
                     OperatorRuntimeError, PluginError, PrecisionWarning, UnknownOperatorError)
from .numerics.functional import FunctionalModel
from .contract.kinds import KINDS, Kind
from .contract.metadata import EmptyConfig
from .contract.operators import (DynamicalSystem, DynamicsPlan, FirstOrderSolver, HyperGradient,
                        HyperGradientOperator)
from .plugins.ordering import (default_gradient_order, validate_and_adjust_order,
                               validate_composition)
from .plugins.presets import Preset
from .solver.problem import Problem
from .plugins.registry import Registry, get_registry, set_registry
from .contract.runtime import Runtime
from .solver.sequential import SequentialHG, makes_functional_na_operation
from .contract.spec import API_VERSION, hookimpl, hookspec
from .numerics.variables import Binding, InvisibleModuleWarning, bind_variables

_moved.install()


def constant(value, like):
    """``value`` as a factor for ``like``'s dtype, exactly: a one-element float64 Var when
    ``like`` is float64 and float32 does not hold ``value`` (Jittor stores Python numbers as
    float32: ``v64 * 0.1`` is off by 1.5e-8), else ``value`` itself. For float64 objectives
    (gradient checks): ``f = data + squares * jboat_core.constant(1e-2, like=squares)``."""
    from .numerics.autodiff import constant as _constant

    return _constant(value, like)

__version__ = "0.1.0"

__all__ = [
    "API_VERSION", "Binding", "ChainError", "ChainState", "ConfigError", "DifferentiableAdam",
    "DivergedError", "DynamicsState", "Result", "SolveState", "result",
    "DifferentiableOptimizer", "DifferentiableSGD", "DynamicalSystem", "DynamicsPlan",
    "EmptyConfig", "FirstOrderSolver", "FunctionalModel", "HyperGradient",
    "HyperGradientOperator", "InvisibleModuleWarning", "JboatError", "KINDS", "Kind",
    "MetadataError", "OperatorRuntimeError", "PluginError", "PrecisionWarning", "Preset",
    "Problem", "Registry",
    "Runtime",
    "SequentialHG", "SolverConfig", "UnknownOperatorError", "bind_variables",
    "constant", "default_gradient_order", "finished", "get_registry", "hookimpl",
    "hookspec", "import_jittor", "load_solver_config", "lower_point",
    "makes_functional_na_operation",
    "parse_solver_config", "passthrough", "require_last", "require_next", "set_registry",
    "validate_and_adjust_order", "validate_composition",
]
