"""The abstract bases of the three operator kinds: ``DynamicalSystem`` (lower-level
dynamics such as NGD), ``HyperGradient`` (the chain's operators: RAD, CG...) and
``FirstOrderSolver`` (solvers that replace both, such as VFO).

What a plugin author implements is declared: ``step(state)`` is abstract (the registry
refuses a class that does not implement it, naming the plugin, the class and the method),
and the metadata are class attributes (``jboat_core.contract.metadata``). Every kind is
built the same way, by the one keyword-only constructor, from the problem's runtime
context (``cls.build(runtime)``), and reads the same attributes: ``ll_objective``,
``ul_objective``, ``ll_model``, ``ul_model``, ``ll_var``, ``ul_var``, ``lower_iters``,
``config`` (its validated section) and ``runtime``; everything that changes per call
(feeds, iteration, its memory) comes in the state. An operator keeps nothing on ``self``
between calls: what it keeps goes in the ``memory`` of what it returns
(``jboat_core.contract.protocol``).

JBOAT's constructors and keyword methods (``CG(ll_objective, ..., solver_config)``,
``compute_gradients(**kwargs)``, ``optimize(...)``) are the compatibility wing's
(``jboat_core.compat``), as are the adapters of API-1 plugins. Importing this module does
not import Jittor.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel

from .metadata import OperatorMeta
from .protocol import NO_MEMORY, DynamicsPlan
from .runtime import Runtime
from .sections import validate_section
from .spec import API_VERSION


def zero_probe(values):
    """``sum_i sum(0 * v_i)``: a one-element Var that is NaN/Inf iff one of ``values`` is
    (one reduction per tensor, computed with the iteration's results)."""
    total = None
    for v in values:
        term = (v * 0.0).sum()
        total = term if total is None else total + term
    return total


#: ``solver_config -> Runtime`` for the 0.1 positional constructors (a Runtime, a
#: SolverConfig or a ``boat_config``-shaped mapping): the compatibility wing's
#: ``coerce_runtime``, set when ``jboat_core`` is imported (the contract imports nothing
#: from that wing).
LEGACY_RUNTIME: Callable[[Any], Runtime] | None = None


class Operator(OperatorMeta, abc.ABC):
    """The base of every kind (abstract): the constructor and the class-level hooks.

    Parameters
    ----------
    ll_objective, ul_objective : callable
        f and F: ``f(ll_feed_dict, ul_model, ll_model, **kw)``, ``F(ul_feed_dict,
        ul_model, ll_model, **kw)``, each a scalar Var; ``kw`` carries ``params=[...]``,
        the lower variables to evaluate at (in the lower model's order).
    ll_model, ul_model : jittor.Module
    ll_var, ul_var : list of jittor.Var
        The lower and upper variables (matched to the models by identity).
    lower_iters : int
        K, the number of lower-level steps per outer iteration.
    runtime : Runtime
        The problem's context (optimizers, the composition, processes, sections).
    config : pydantic model or mapping, optional
        The operator's section; default the runtime's section of this name, validated by
        ``config_model``.
    """

    #: True when the operator's results carry ``ul_lr``, the upper learning rate the
    #: solver sets before each upper step (DM): checkpoints then keep that rate instead of
    #: requiring the task file's.
    schedules_ul_lr: ClassVar[bool] = False

    #: The 0.1 positional constructor of the kind (deprecated, goes in 0.3): the names
    #: its positions map to; ``solver_config`` becomes the runtime (``LEGACY_RUNTIME``).
    _positional_0_1: ClassVar[tuple] = ()

    def __init__(self, *legacy, ll_objective=None, ul_objective=None, ll_model=None,
                 ul_model=None, ll_var=None, ul_var=None, lower_iters: int = 10,
                 runtime: Runtime | None = None, config: Any = None):
        if legacy:
            kw = self._from_positional(legacy)
            ll_objective, ul_objective = kw.get("ll_objective"), kw.get("ul_objective")
            ll_model, ul_model = kw.get("ll_model"), kw.get("ul_model")
            ll_var, ul_var = kw.get("ll_var", ll_var), kw.get("ul_var", ul_var)
            lower_iters = kw.get("lower_loop", lower_iters)
            if runtime is None and kw.get("solver_config") is not None:
                runtime = LEGACY_RUNTIME(kw["solver_config"])
        self.ll_objective = ll_objective
        self.ul_objective = ul_objective
        self.ll_model = ll_model
        self.ul_model = ul_model
        self.ll_var = list(ll_var) if ll_var is not None else []
        self.ul_var = list(ul_var) if ul_var is not None else []
        self.lower_iters = int(lower_iters)
        self.runtime = runtime if runtime is not None else Runtime()
        if config is None:
            config = self.runtime.operators.get(self.name)
        self.config = validate_section(type(self), config)

    def _from_positional(self, args: tuple) -> dict:
        """The 0.1 positional arguments as keywords (with a DeprecationWarning)."""
        names = self._positional_0_1
        if not names or len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes keyword arguments only "
                            f"(ll_objective=, ul_objective=, ll_model=, ul_model=, ll_var=, "
                            f"ul_var=, lower_iters=, runtime=, config=); got {len(args)} "
                            "positional")
        warnings.warn(f"{type(self).__name__}({', '.join(names[:len(args)])}) by position is "
                      "the 0.1 constructor; pass keywords (ll_objective=, ..., lower_iters=, "
                      "config=); positions go in jboat 0.3", DeprecationWarning, stacklevel=3)
        return dict(zip(names, args))

    @classmethod
    def build(cls, runtime: Runtime) -> "Operator":
        """The operator for a composition, from the problem's runtime context."""
        return cls(ll_objective=runtime.ll_objective, ul_objective=runtime.ul_objective,
                   ll_model=runtime.ll_model, ul_model=runtime.ul_model,
                   ll_var=runtime.ll_var, ul_var=runtime.ul_var,
                   lower_iters=runtime.lower_iters, runtime=runtime)

    @abc.abstractmethod
    def step(self, state):
        """One step of the operator on its kind's state (see the kind's base)."""

    @classmethod
    def api_version(cls) -> int:
        """The contract version the class is written for (the compatibility wing's
        adapters of API-1 classes say 1)."""
        return API_VERSION

    @classmethod
    def configure_dynamics(cls, plan: DynamicsPlan, config: BaseModel) -> DynamicsPlan:
        """What this operator needs of the lower-level dynamics: ``plan`` with its
        requests added (default: tracking if ``needs_trajectory``). Override to request
        more (PTT, FOA, RGT do): ``return plan.replace(stop_inner_grads=True)``."""
        return plan.replace(track=True) if cls.needs_trajectory else plan

    @classmethod
    def check_solver(cls, config: BaseModel, solver: Any) -> list[str]:
        """Checks across this operator's section and the shared settings of ``solver``
        (a ``SolverConfig``); return ``"key: message"`` strings (default: none)."""
        return []

    @classmethod
    def memory_schema(cls, lower: tuple, upper: tuple) -> dict | None:
        """What the operator keeps in its memory, before it has run (a checkpoint is
        checked against it before it is restored; once the operator holds memory, the
        live memory is the schema).

        Parameters
        ----------
        lower, upper : tuple of ArraySpec
            The shapes and dtypes of the lower and the upper variables.

        Returns
        -------
        dict or None
            Memory name -> list of specs (``ArraySpec``, or ``Rows`` for tables of rows);
            None (the default): any names, each list shaped like the lower or the upper
            variables.
        """
        return None

    # -- API 2 before 0.2: kept until 0.3 -------------------------------------------------
    @property
    def lower_loop(self) -> int:
        """Deprecated: ``lower_iters``."""
        warnings.warn(f"{self.name}.lower_loop is now lower_iters; the old name goes in "
                      "jboat 0.3", DeprecationWarning, stacklevel=2)
        return self.lower_iters

    @property
    def state(self):
        """Deprecated: the memory comes in ``state.memory``."""
        warnings.warn(f"{self.name}: self.state is now state.memory (what step receives); "
                      "self.state goes in jboat 0.3", DeprecationWarning, stacklevel=2)
        return dict(self.__dict__.get("_legacy_memory", NO_MEMORY))

    def propose(self, **lists) -> None:
        """Deprecated: return the memory in what ``step`` returns (``memory=``)."""
        warnings.warn(f"{self.name}: self.propose(...) is now the memory= of what step "
                      "returns; propose goes in jboat 0.3", DeprecationWarning, stacklevel=2)
        self.__dict__["_legacy_proposed"] = {k: [v.detach() for v in vs]
                                             for k, vs in lists.items()}


class HyperGradient(Operator):
    """Base class of hyper-gradient operators (the chain: RAD, CG, PTT...).

    The step (API 2)
    ----------------
    ``step(state: ChainState) -> ChainState | Result``: a modifier returns the next
    operator's state (``state.replace(point=..., wrt=...)``), a terminal operator a
    ``Result`` (``jboat_core.contract.result(self, F, grads, ...)``). The lower point to
    evaluate at is ``state.ll_point()``, the lower objective to differentiate
    ``state.ll_objective``, eta ``state.ll_lr``.
    """

    kind: ClassVar[str] = "hypergradient"
    _positional_0_1 = ("ll_objective", "ul_objective", "ul_model", "ll_model", "ll_var",
                       "ul_var", "solver_config")


class DynamicalSystem(Operator):
    """Base class of lower-level dynamics operators (gradient mappings: NGD, GDA, DI, DM).

    The step (API 2)
    ----------------
    ``step(state: DynamicsState) -> DynamicsState | Result``: the state updated for the
    next dynamics operator or the chain (an inner loop sets ``k_star``, ``lower_loss``,
    ``ll_objective``), or the terminal ``Result`` (``provides_hypergradient``, DM).
    """

    kind: ClassVar[str] = "dynamics"
    _positional_0_1 = ("ll_objective", "ul_objective", "ll_model", "ul_model", "lower_loop",
                       "solver_config")
    learns_initialisation: ClassVar[bool] = False
    """Declared True by an operator (DI) that makes the solver learn y_0 too."""
    provides_hypergradient: ClassVar[bool] = False
    """Declared True by an operator (DM) whose step returns the ``Result`` itself, so the
    solver skips the hyper-gradient chain."""
    supports_forward_mode: ClassVar[bool] = False
    """Declared True by an operator whose inner loop carries tangents when
    ``plan.forward_mode`` (``jboat_core.numerics.Tangents``, as NGD does): FMD needs it."""
    supports_checkpointing: ClassVar[bool] = False
    """Declared True by an operator whose inner loop honours ``plan.checkpoint_every``
    (keeps a ``jboat_core.numerics.Tape``, as NGD does)."""


class FirstOrderSolver(Operator):
    """Base class of first-order bilevel solvers (VSO, VFO, MESO, PGDO, ALTO, GAFFO and
    the stochastic ones).

    A first-order solver replaces the whole dynamics + hyper-gradient pipeline of one
    outer iteration: it works on the real models (no unrolled graph) and returns the
    directions the solver applies, after its finiteness checks, through the user's
    optimizers.

    The step (API 2)
    ----------------
    ``step(state: SolveState) -> Result``: ``hyper_gradients`` go to the upper
    optimizer, ``ll_gradients`` to the lower optimizer, ``ll_update`` (new values)
    replaces the lower variables (applied first, so ``ll_gradients`` may be computed at
    the new values), ``lower_loss`` to the history, ``memory`` to its next iteration
    (MESO's theta, PGDO's y-hat).
    """

    kind: ClassVar[str] = "first_order"
    _positional_0_1 = ("ll_objective", "ul_objective", "ll_model", "ul_model", "lower_loop",
                       "ll_var", "ul_var", "solver_config")


def __getattr__(name: str):
    if name == "HyperGradientOperator":
        warnings.warn("HyperGradientOperator is now HyperGradient (one base, one keyword "
                      "constructor); the old name goes in jboat 0.3", DeprecationWarning,
                      stacklevel=2)
        return HyperGradient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
