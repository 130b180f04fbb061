"""JBOAT's ``jboat.na_ol.sequential_hg``: composition of hyper-gradient operators."""

from jboat_core.compat.seed import (SequentialHG, makes_functional_na_operation,
                                    validate_and_adjust_order)

__all__ = ["SequentialHG", "makes_functional_na_operation", "validate_and_adjust_order"]
