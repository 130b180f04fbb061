"""JBOAT's module path ``jboat.na_ol.fd``: ``FD`` is the operator registered under "FD"."""

from jboat._alias import registered

__getattr__, __all__ = registered("FD")
