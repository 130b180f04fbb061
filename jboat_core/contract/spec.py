"""The plugin hook specification of jboat.

A plugin is a module named by an entry point of the ``jboat`` group. It declares the
contract version it was written for and implements one or more hooks, each of which hands
operator classes to a ``register`` callback::

    from jboat_core.contract import hookimpl

    JBOAT_API_VERSION = 2

    @hookimpl
    def jboat_register_hypergradients(register):
        register(MyOperator)

There is one registration hook per operator kind (``jboat_core.contract.kinds.KINDS``;
``tests/test_layout.py`` checks the two lists agree), one for presets and one per
component kind (``jboat_core.contract.components.COMPONENTS``: linear solvers, prox maps). pluggy collects
the hook implementations once, when the registry loads; the solver then calls the
registered classes directly (no ``pm.hook`` call in the per-iteration path). Nothing here
imports Jittor.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "jboat"
"""The pluggy project name and the entry-point group of jboat plugins."""

API_VERSION = 2
"""Version of the operator contract. Version 2 is the typed step protocol
(``jboat_core.contract.protocol``: ``step(state)``). A plugin declares the version it was
written for as the module attribute ``JBOAT_API_VERSION``."""

SUPPORTED_API_VERSIONS = (1, 2)
"""Versions the registry loads: version 1 (JBOAT's keyword protocol,
``compute_gradients(**kwargs)`` / ``optimize(...)``) runs through the adapter of the
operator bases and is marked in ``jboat list-ops --verbose``."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class JboatHookSpec:
    """Hooks a jboat plugin may implement: one ``register`` hook per operator kind, and
    one for presets. Each ``register(obj)`` validates ``obj`` at once; a bad declaration is
    reported against the plugin that made it."""

    @hookspec
    def jboat_register_dynamics(self, register):
        """Register lower-level dynamics operators (subclasses of ``DynamicalSystem``),
        e.g. NGD, GDA, DI, DM.

        Parameters
        ----------
        register : callable
            Call ``register(cls)`` once per class.
        """

    @hookspec
    def jboat_register_hypergradients(self, register):
        """Register hyper-gradient operators (subclasses of ``HyperGradient``, usually
        through ``HyperGradientOperator``), e.g. RAD, CG.

        Parameters
        ----------
        register : callable
            Call ``register(cls)`` once per class.
        """

    @hookspec
    def jboat_register_first_order(self, register):
        """Register first-order solvers (subclasses of ``FirstOrderSolver``), which replace
        dynamics and hyper-gradient operators, e.g. VFO.

        Parameters
        ----------
        register : callable
            Call ``register(cls)`` once per class.
        """

    @hookspec
    def jboat_register_presets(self, register):
        """Register named presets (``jboat_core.Preset`` objects): classical algorithms as
        solver configs, selected with ``preset = "NAME"``.

        Parameters
        ----------
        register : callable
            Call ``register(preset)`` once per preset.
        """

    @hookspec
    def jboat_register_linear_solvers(self, register):
        """Register linear solvers (``jboat_core.contract.LinearSolver`` declarations) the
        implicit operators choose by name (``linear_solver = "gmres"``).

        Parameters
        ----------
        register : callable
            Call ``register(solver)`` once per declaration.
        """

    @hookspec
    def jboat_register_prox_maps(self, register):
        """Register proximal operators and projections (``jboat_core.contract.ProxMap``
        declarations) that PGD chooses by name (``prox = "l1"``).

        Parameters
        ----------
        register : callable
            Call ``register(prox_map)`` once per declaration.
        """
