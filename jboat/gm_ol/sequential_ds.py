"""JBOAT's ``jboat.gm_ol.sequential_ds``: composition of dynamics operators."""

from jboat_core.compat.seed import SequentialDS, makes_functional_dynamical_system

__all__ = ["SequentialDS", "makes_functional_dynamical_system"]
