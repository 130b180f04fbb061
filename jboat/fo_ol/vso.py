"""JBOAT's module path ``jboat.fo_ol.vso``: ``VSO`` is the operator registered under "VSO"."""

from jboat._alias import registered

__getattr__, __all__ = registered("VSO")
