"""What an operator author writes against (the plugin contract, API version 2).

Everything a plugin needs besides the math helpers of ``jboat_core.numerics``: the
operator bases of the three kinds, the typed step protocol, metadata, the hook markers
and the errors. CONTRIBUTING.md teaches it; ``tests/test_layout.py`` checks that the
built-in operators and the example plugin import nothing else of jboat. Importing it
does not import Jittor.
"""

from ..errors import (ChainError, ConfigError, DivergedError, JboatError, MetadataError,
                      OperatorRuntimeError)
from .kinds import KINDS, Kind
from .metadata import EmptyConfig
from .operators import (DynamicalSystem, FirstOrderSolver, HyperGradient,
                        HyperGradientOperator)
from .protocol import (OUTPUT_FIELDS, RESULT_FIELDS, ChainState, DynamicsPlan, DynamicsState,
                       Result, SolveState, aggregated, result, to_upper)
from .runtime import Runtime
from .spec import API_VERSION, hookimpl, hookspec
from .stateschema import ArraySpec, Rows

__all__ = [
    "API_VERSION", "ArraySpec", "ChainError", "ChainState", "ConfigError", "DivergedError",
    "DynamicalSystem", "DynamicsPlan", "DynamicsState", "EmptyConfig", "FirstOrderSolver",
    "HyperGradient", "HyperGradientOperator", "JboatError", "KINDS", "Kind", "MetadataError",
    "OUTPUT_FIELDS", "OperatorRuntimeError", "RESULT_FIELDS", "Result", "Rows", "Runtime",
    "SolveState", "aggregated", "hookimpl", "hookspec", "result", "to_upper",
]
