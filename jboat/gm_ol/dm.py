"""JBOAT's module path ``jboat.gm_ol.dm``: ``DM`` is the operator registered under "DM"."""

from jboat._alias import registered

__getattr__, __all__ = registered("DM")
