"""JBOAT's module path ``jboat.fo_ol.pgdo``: ``PGDO`` is the operator registered under "PGDO"."""

from jboat._alias import registered

__getattr__, __all__ = registered("PGDO")
