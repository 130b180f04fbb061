"""JBOAT's ``jboat.fo_ol``: first-order solvers, resolved through the registry (ALTO and
GAFFO are BOAT's torch-only ones, here on Jittor too)."""

from jboat._alias import registered
from jboat_core.compat.seed import FirstOrderSolver

__getattr__, _names = registered("VSO", "VFO", "MESO", "PGDO", "ALTO", "GAFFO")
__all__ = ["FirstOrderSolver", *_names]
