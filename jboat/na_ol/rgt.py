"""JBOAT's module path ``jboat.na_ol.rgt``: ``RGT`` is the operator registered under "RGT"."""

from jboat._alias import registered

__getattr__, __all__ = registered("RGT")
