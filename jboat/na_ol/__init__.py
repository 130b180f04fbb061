"""JBOAT's ``jboat.na_ol``: hyper-gradient operators (the seed API), resolved through the
registry; ``HyperGradient``, ``SequentialHG``, ``makes_functional_na_operation`` and
``validate_and_adjust_order`` are the compatibility wing's (``jboat_core.compat.seed``)."""

from jboat._alias import registered
from jboat_core.compat.seed import (HyperGradient, SequentialHG, makes_functional_na_operation,
                                    validate_and_adjust_order)

_OPS = ("FD", "CG", "NS", "IGA", "RAD", "IAD", "FOA", "RGT", "PTT")
__getattr__, _names = registered(*_OPS)
__all__ = ["HyperGradient", "SequentialHG", "makes_functional_na_operation",
           "validate_and_adjust_order", *_names]
