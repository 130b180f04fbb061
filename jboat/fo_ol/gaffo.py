"""JBOAT's module path ``jboat.fo_ol.gaffo``: ``GAFFO`` is the operator registered under "GAFFO"."""

from jboat._alias import registered

__getattr__, __all__ = registered("GAFFO")
