"""The operator kinds, as one table of data.

Every layer that deals with operators (hook spec, registry, metadata checks, config,
ordering, composition, CLI, conformance kit) iterates over ``KINDS`` instead of naming
the kinds one by one: adding a kind is one row here plus its abstract base.
"""

from __future__ import annotations

from dataclasses import dataclass

from .operators import DynamicalSystem, FirstOrderSolver, HyperGradient
from .protocol import ChainState, DynamicsState, SolveState


@dataclass(frozen=True)
class Kind:
    """One operator kind.

    Attributes
    ----------
    name : str
        The ``kind`` class attribute of its operators (``"hypergradient"``).
    base : type
        Abstract base every operator of the kind subclasses.
    hook : str
        Registration hook a plugin implements: ``hook(register)``.
    config_key : str
        Solver-config key listing the chosen operators (``"na_op"``).
    stages : tuple of str
        Stages in execution order; each operator declares one.
    label : str
        How messages name an operator of the kind.
    chain : bool
        True when several operators of the kind compose into a chain (ordered by stage);
        False when exactly one is chosen (first-order solvers).
    state : type
        What the kind's ``step`` receives (``jboat_core.contract.protocol``).
    """

    name: str
    base: type
    hook: str
    config_key: str
    stages: tuple[str, ...]
    label: str
    chain: bool = True
    state: type | None = None


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("dynamics", DynamicalSystem, "jboat_register_dynamics", "gm_op",
         ("prepare", "solve"), "dynamics operator", state=DynamicsState),
    Kind("hypergradient", HyperGradient, "jboat_register_hypergradients", "na_op",
         ("trajectory", "gradient", "implicit"), "hyper-gradient operator", state=ChainState),
    Kind("first_order", FirstOrderSolver, "jboat_register_first_order", "fo_op",
         ("solve",), "first-order solver", chain=False, state=SolveState),
)}
"""The operator kinds by name, as one table of data: each kind's base class, registration
hook, config key (``gm_op``/``na_op``/``fo_op``), stages in execution order, label and
state type. Every layer (hook spec, registry, ordering, config, solver) iterates over it
instead of naming the kinds, so the three kinds are treated alike."""

#: Stages per kind, in execution order (a view of ``KINDS``).
STAGES: dict[str, tuple[str, ...]] = {k.name: k.stages for k in KINDS.values()}

#: Kind of each solver-config key (``"na_op" -> Kind("hypergradient")``).
BY_CONFIG_KEY: dict[str, Kind] = {k.config_key: k for k in KINDS.values()}


def kind_of(cls) -> Kind:
    """The ``Kind`` of an operator class (by its ``kind`` attribute)."""
    return KINDS[cls.kind]
