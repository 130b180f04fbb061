"""JBOAT's module path ``jboat.na_ol.cg``: ``CG`` is the operator registered under "CG"."""

from jboat._alias import registered

__getattr__, __all__ = registered("CG")
