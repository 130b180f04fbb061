"""JBOAT's module path ``jboat.fo_ol.alto``: ``ALTO`` is the operator registered under "ALTO"."""

from jboat._alias import registered

__getattr__, __all__ = registered("ALTO")
