"""JBOAT's module path ``jboat.fo_ol.vfo``: ``VFO`` is the operator registered under "VFO"."""

from jboat._alias import registered

__getattr__, __all__ = registered("VFO")
