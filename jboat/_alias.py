"""Module-level aliases resolved through the registry (no copies, no Jittor import).

``jboat.na_ol.cg.CG`` is the class the registry holds under ``"CG"``: with the built-ins
that is ``jboat_ops.cg.CG`` itself; the lookup happens on first attribute access, so
importing a ``jboat`` module never loads plugins or Jittor.
"""

from __future__ import annotations


def registered(*names: str):
    """``(__getattr__, __all__)`` for a module exporting the operators ``names``."""

    def __getattr__(attr: str):
        if attr in names:
            from jboat_core.plugins.registry import get_registry
            return get_registry().get(attr).cls
        raise AttributeError(f"module has no attribute {attr!r}")

    return __getattr__, list(names)
