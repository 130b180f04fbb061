"""JBOAT's module path ``jboat.na_ol.ns``: ``NS`` is the operator registered under "NS"."""

from jboat._alias import registered

__getattr__, __all__ = registered("NS")
