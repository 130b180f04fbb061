"""JBOAT's module path ``jboat.na_ol.foa``: ``FOA`` is the operator registered under "FOA"."""

from jboat._alias import registered

__getattr__, __all__ = registered("FOA")
