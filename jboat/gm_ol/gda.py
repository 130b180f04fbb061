"""JBOAT's module path ``jboat.gm_ol.gda``: ``GDA`` is the operator registered under "GDA"."""

from jboat._alias import registered

__getattr__, __all__ = registered("GDA")
