"""JBOAT's ``jboat.na_ol.sequential_hg``: composition of hyper-gradient operators."""

from jboat_core.plugins.ordering import validate_and_adjust_order
from jboat_core.solver.sequential import SequentialHG, makes_functional_na_operation

__all__ = ["SequentialHG", "makes_functional_na_operation", "validate_and_adjust_order"]
