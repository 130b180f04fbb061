"""The plugin hook specification of jboat.

A plugin is a module named by an entry point of the ``jboat`` group. It declares the
spec version it was written for and implements one or more hooks, each of which hands
operator classes to a ``register`` callback::

    import jboat_core

    JBOAT_API_VERSION = jboat_core.API_VERSION

    @jboat_core.hookimpl
    def jboat_register_hypergradients(register):
        register(MyOperator)

There is one registration hook per operator kind (``jboat_core.kinds.KINDS``):
``jboat_register_dynamics``, ``jboat_register_hypergradients`` and
``jboat_register_first_order``. pluggy collects the hook implementations once, when the
registry loads; the solver then calls the registered classes directly (no ``pm.hook``
call in the per-iteration path). Nothing here imports Jittor.
"""

from __future__ import annotations

import pluggy

from .kinds import KINDS

PROJECT_NAME = "jboat"
"""The pluggy project name and the entry-point group of jboat plugins."""

API_VERSION = 1
"""Version of the hook spec and of the operator contract. A plugin declares the version it
was written for as the module attribute ``JBOAT_API_VERSION``; the registry refuses (and
reports) a plugin whose version differs. Version 1 gained hooks over time (first-order
solvers, presets); a plugin implements any subset, so older version-1 plugins load."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


def _registration_hook(kind):
    def hook(self, register):
        pass
    hook.__name__ = kind.hook
    hook.__doc__ = (f"{kind.hook_doc}\n\n        Parameters\n        ----------\n"
                    "        register : callable\n            Call ``register(cls)`` once "
                    "per class. Its metadata is validated at\n            that moment; a "
                    "bad declaration is reported against this plugin.\n        ")
    return hookspec(hook)


def jboat_register_presets(register):
    """Register named presets (``jboat_core.Preset`` objects): classical algorithms as
    solver configs, selected with ``preset = "NAME"``.

    Parameters
    ----------
    register : callable
        Call ``register(preset)`` once per preset.
    """


#: Hooks a jboat plugin may implement: one ``register`` hook per operator kind, and one
#: for presets.
JboatHookSpec = type("JboatHookSpec", (), {
    "__doc__": "Hooks a jboat plugin may implement (one per operator kind, and presets).",
    **{k.hook: _registration_hook(k) for k in KINDS.values()},
    "jboat_register_presets": hookspec(lambda self, register: None),
})
JboatHookSpec.jboat_register_presets.__doc__ = jboat_register_presets.__doc__
JboatHookSpec.jboat_register_presets.__name__ = "jboat_register_presets"
