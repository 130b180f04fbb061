"""JBOAT's ``jboat.na_ol.hyper_gradient``: the base class of hyper-gradient operators."""

from jboat_core.contract.operators import HyperGradient

__all__ = ["HyperGradient"]
