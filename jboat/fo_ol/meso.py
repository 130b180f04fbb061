"""JBOAT's module path ``jboat.fo_ol.meso``: ``MESO`` is the operator registered under "MESO"."""

from jboat._alias import registered

__getattr__, __all__ = registered("MESO")
