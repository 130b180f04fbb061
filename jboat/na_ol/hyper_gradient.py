"""JBOAT's ``jboat.na_ol.hyper_gradient``: the seed's base class of hyper-gradient
operators."""

from jboat_core.compat.seed import HyperGradient

__all__ = ["HyperGradient"]
