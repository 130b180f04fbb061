"""JBOAT's ``jboat.gm_ol.dynamical_system``: upstream's base class of dynamics operators."""

from jboat_core.compat.seed import DynamicalSystem

__all__ = ["DynamicalSystem"]
