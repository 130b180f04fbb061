"""JBOAT's module path ``jboat.gm_ol.ngd``: ``NGD`` is the operator registered under "NGD"."""

from jboat._alias import registered

__getattr__, __all__ = registered("NGD")
