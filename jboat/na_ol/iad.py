"""JBOAT's module path ``jboat.na_ol.iad``: ``IAD`` is the operator registered under "IAD"."""

from jboat._alias import registered

__getattr__, __all__ = registered("IAD")
