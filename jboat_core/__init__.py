"""jboat core: hook spec, operator bases, registry, ordering, configs, composition.

Importing ``jboat_core`` never imports Jittor; operators import it when they compute.
"""

from ._jittor import jittor as import_jittor
from .chain import finished, lower_point, passthrough, require_last, require_next
from .config import SolverConfig, load_solver_config, parse_solver_config
from .diffopt import DifferentiableAdam, DifferentiableOptimizer, DifferentiableSGD
from .errors import (ChainError, ConfigError, DivergedError, JboatError, MetadataError,
                     OperatorRuntimeError, PluginError, UnknownOperatorError)
from .functional import FunctionalModel
from .kinds import KINDS, Kind
from .metadata import EmptyConfig
from .operators import (DynamicalSystem, DynamicsPlan, FirstOrderSolver, HyperGradient,
                        HyperGradientOperator)
from .ordering import default_gradient_order, validate_and_adjust_order, validate_composition
from .presets import Preset
from .problem import Problem
from .registry import Registry, get_registry, set_registry
from .runtime import Runtime
from .sequential import SequentialHG, makes_functional_na_operation
from .spec import API_VERSION, hookimpl, hookspec
from .variables import Binding, InvisibleModuleWarning, bind_variables

__version__ = "0.1.0"

__all__ = [
    "API_VERSION", "Binding", "ChainError", "ConfigError", "DifferentiableAdam", "DivergedError",
    "DifferentiableOptimizer", "DifferentiableSGD", "DynamicalSystem", "DynamicsPlan",
    "EmptyConfig", "FirstOrderSolver", "FunctionalModel", "HyperGradient",
    "HyperGradientOperator", "InvisibleModuleWarning", "JboatError", "KINDS", "Kind",
    "MetadataError", "OperatorRuntimeError", "PluginError", "Problem", "Registry", "Runtime",
    "SequentialHG", "SolverConfig", "UnknownOperatorError", "bind_variables",
    "default_gradient_order", "finished", "get_registry", "hookimpl",
    "hookspec", "import_jittor", "load_solver_config", "lower_point",
    "makes_functional_na_operation",
    "parse_solver_config", "passthrough", "require_last", "require_next", "set_registry",
    "validate_and_adjust_order", "validate_composition",
]
