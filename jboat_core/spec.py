"""The plugin hook specification of jboat.

A plugin is a module named by an entry point of the ``jboat`` group. It declares the
spec version it was written for and implements one or both hooks, each of which hands
operator classes to a ``register`` callback::

    import jboat_core

    JBOAT_API_VERSION = jboat_core.API_VERSION

    @jboat_core.hookimpl
    def jboat_register_hypergradients(register):
        register(MyOperator)

pluggy collects the hook implementations once, when the registry loads; the solver then
calls the registered classes directly (no ``pm.hook`` call in the per-iteration path).
Nothing here imports Jittor.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "jboat"
"""The pluggy project name and the entry-point group of jboat plugins."""

API_VERSION = 1
"""Version of the hook spec and of the operator contract. A plugin declares the version it
was written for as the module attribute ``JBOAT_API_VERSION``; the registry refuses (and
reports) a plugin whose version differs."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class JboatHookSpec:
    """Hooks a jboat plugin may implement."""

    @hookspec
    def jboat_register_hypergradients(self, register):
        """Register hyper-gradient operators (subclasses of ``HyperGradient``).

        Parameters
        ----------
        register : callable
            Call ``register(cls)`` once per operator class. The class's metadata is
            validated at that moment; a bad declaration is reported against this plugin.
        """

    @hookspec
    def jboat_register_dynamics(self, register):
        """Register lower-level dynamics operators (subclasses of ``DynamicalSystem``),
        e.g. NGD, GDA, DI, DM.

        Parameters
        ----------
        register : callable
            Call ``register(cls)`` once per operator class.
        """
