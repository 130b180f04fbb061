"""What an operator author writes against: the plugin contract, API version 2.

One of the three public surfaces of jboat (with ``jboat_core`` for users and
``jboat_core.numerics`` for the math helpers): the operator bases of the three kinds
(``step`` abstract), the states an operator receives and the ``Result`` it returns, its
memory (``NO_MEMORY`` the first time), the finiteness ``Check``, presets, metadata, the
hook markers and the errors. CONTRIBUTING.md teaches
it; ``tests/test_layout.py`` checks that the built-in operators and the example plugin
import nothing else of jboat, and ``tests/test_public_api.py`` that its names and
signatures change only with a CHANGELOG entry. Importing it does not import Jittor.
"""

import warnings

from ..errors import (ChainError, ConfigError, DivergedError, JboatError, MetadataError,
                      OperatorRuntimeError)
from .components import COMPONENTS, LinearSolver, ProxMap, find_component
from .kinds import KINDS, Kind
from .optimality import LowerSolver, Optimality, custom_fixed_point, custom_root
from .metadata import EmptyConfig
from .preset import Preset
from .operators import DynamicalSystem, FirstOrderSolver, HyperGradient, Operator
from .protocol import (NO_MEMORY, OUTPUT_FIELDS, RESULT_FIELDS, ChainState, Check,
                       DynamicsPlan, DynamicsState, Result, SolveState, aggregated, result,
                       to_upper)
from .runtime import Runtime
from .spec import API_VERSION, hookimpl, hookspec
from .stateschema import ArraySpec, Rows

__all__ = [
    "API_VERSION", "ArraySpec", "COMPONENTS", "ChainError", "ChainState", "Check",
    "ConfigError", "DivergedError", "DynamicalSystem", "DynamicsPlan", "DynamicsState",
    "EmptyConfig", "FirstOrderSolver", "HyperGradient", "JboatError", "KINDS", "Kind",
    "LinearSolver", "LowerSolver", "MetadataError", "NO_MEMORY", "OUTPUT_FIELDS",
    "Operator", "OperatorRuntimeError", "Optimality", "Preset", "ProxMap",
    "RESULT_FIELDS", "Result", "Rows", "Runtime", "SolveState", "aggregated",
    "custom_fixed_point", "custom_root", "find_component", "hookimpl", "hookspec",
    "result", "to_upper",
]


def __getattr__(name: str):
    if name == "HyperGradientOperator":
        warnings.warn("jboat_core.contract.HyperGradientOperator is now HyperGradient (one "
                      "base, one keyword constructor); the old name goes in jboat 0.3",
                      DeprecationWarning, stacklevel=2)
        return HyperGradient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
