"""JBOAT's ``jboat.gm_ol.dynamical_system``: the base class of dynamics operators."""

from jboat_core.contract.operators import DynamicalSystem

__all__ = ["DynamicalSystem"]
