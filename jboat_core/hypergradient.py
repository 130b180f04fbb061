"""Former home of the operator bases; they live in ``jboat_core.operators`` now. This
module re-exports them so that plugins importing ``jboat_core.hypergradient`` keep working."""

from .operators import (DynamicalSystem, DynamicsPlan, FirstOrderSolver, HyperGradient,
                        HyperGradientOperator)
from .sections import operator_section, validate_section

__all__ = ["DynamicalSystem", "DynamicsPlan", "FirstOrderSolver", "HyperGradient",
           "HyperGradientOperator", "operator_section", "validate_section"]
