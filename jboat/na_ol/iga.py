"""JBOAT's module path ``jboat.na_ol.iga``: ``IGA`` is the operator registered under "IGA"."""

from jboat._alias import registered

__getattr__, __all__ = registered("IGA")
