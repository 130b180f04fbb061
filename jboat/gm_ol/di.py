"""JBOAT's module path ``jboat.gm_ol.di``: ``DI`` is the operator registered under "DI"."""

from jboat._alias import registered

__getattr__, __all__ = registered("DI")
