"""Module-level aliases resolved through the registry (no Jittor import).

``jboat.na_ol.cg.CG`` is the seed form of the class the registry holds under ``"CG"``
(``jboat_core.compat.seed.seed_class(jboat_ops.cg.CG)``, a subclass with JBOAT's
constructor and ``compute_gradients``); the lookup happens on first attribute access, so
importing a ``jboat`` module never loads plugins or Jittor.
"""

from __future__ import annotations


def registered(*names: str):
    """``(__getattr__, __all__)`` for a module exporting the operators ``names``."""

    def __getattr__(attr: str):
        if attr in names:
            from jboat_core.compat.seed import seed_operator
            return seed_operator(attr)
        raise AttributeError(f"module has no attribute {attr!r}")

    return __getattr__, list(names)
