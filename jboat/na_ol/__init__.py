"""JBOAT's ``jboat.na_ol``: hyper-gradient operators (the seed API), resolved through the
registry; ``HyperGradient``, ``SequentialHG`` and ``makes_functional_na_operation`` are
``jboat_core``'s own."""

from jboat._alias import registered
from jboat_core.contract.operators import HyperGradient
from jboat_core.plugins.ordering import validate_and_adjust_order
from jboat_core.solver.sequential import SequentialHG, makes_functional_na_operation

_OPS = ("FD", "CG", "NS", "IGA", "RAD", "IAD", "FOA", "RGT", "PTT")
__getattr__, _names = registered(*_OPS)
__all__ = ["HyperGradient", "SequentialHG", "makes_functional_na_operation",
           "validate_and_adjust_order", *_names]
