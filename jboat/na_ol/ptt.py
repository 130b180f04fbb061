"""JBOAT's module path ``jboat.na_ol.ptt``: ``PTT`` is the operator registered under "PTT"."""

from jboat._alias import registered

__getattr__, __all__ = registered("PTT")
