"""JBOAT's module path ``jboat.na_ol.rad``: ``RAD`` is the operator registered under "RAD"."""

from jboat._alias import registered

__getattr__, __all__ = registered("RAD")
