"""JBOAT's ``jboat.gm_ol``: lower-level dynamics operators, resolved through the registry."""

from jboat._alias import registered
from jboat_core.compat.seed import (DynamicalSystem, SequentialDS,
                                    makes_functional_dynamical_system)

__getattr__, _names = registered("NGD", "DM", "DI", "GDA")
__all__ = ["DynamicalSystem", "SequentialDS", "makes_functional_dynamical_system", *_names]
