"""Abstract bases of the three operator kinds: ``HyperGradient`` (the seed's NA
operators), ``DynamicalSystem`` (lower-level dynamics such as NGD) and
``FirstOrderSolver`` (solvers that replace dynamics + hyper-gradient, such as VFO).
Importing this module does not import Jittor."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

from .metadata import OperatorMeta
from .runtime import Runtime
from .sections import operator_section, validate_section


@dataclass
class DynamicsPlan:
    """What the hyper-gradient chain asks of the lower-level dynamics.

    Built by ``SequentialHG.dynamics_plan()``: every operator of the chain contributes
    through its ``configure_dynamics`` class method, so the dynamics never look for
    operator names.

    Attributes
    ----------
    track : bool
        Keep the differentiable trajectory y_0..y_K (memory O(K)); else O(1).
    pessimistic : bool
        Evaluate F(x, y_k) after every step and report k* = argmax_k F (PTT).
    first_order : bool
        Stop gradients through the inner gradients: y_{k+1} = y_k - eta sg(grad f) (FOA).
    truncate : int
        Number of leading steps taken outside the graph (RGT).
    record_loss : bool
        Keep the lower objective of the last inner step as ``lower_loss`` (the solver's
        history asks for it; off by default because Jittor computes every live Var).
    """

    track: bool = False
    pessimistic: bool = False
    first_order: bool = False
    truncate: int = 0
    record_loss: bool = False


class _Operator(OperatorMeta):
    """Shared plumbing of every operator kind (abstract)."""

    def _store(self, solver_config: Any) -> None:
        self.solver_config = solver_config if solver_config is not None else {}
        self.solver_configs = self.solver_config  # upstream Jittor spelling
        self.state: dict[str, list] = {}
        self.runtime = Runtime.coerce(solver_config)
        self.config = validate_section(type(self), operator_section(self.runtime, self.name))

    @classmethod
    def configure_dynamics(cls, plan: DynamicsPlan, config: BaseModel) -> None:
        """Adjust the lower-level dynamics this operator needs (default: tracking if
        ``needs_trajectory``). Override to request more (PTT, FOA, RGT do)."""
        if cls.needs_trajectory:
            plan.track = True

    @classmethod
    def check_solver(cls, config: BaseModel, solver: Any) -> list[str]:
        """Checks across this operator's section and the shared settings of ``solver``
        (a ``SolverConfig``); return ``"key: message"`` strings (default: none)."""
        return []

    # -- state kept across outer iterations (DM's duals, MESO's theta...) --------------
    # An operator proposes new state with ``self.propose(name=[Vars])`` while it runs;
    # the solver computes a probe of it with the iteration's results (``finite_checks``),
    # reads it (``check_finite``) and adopts the state (``commit``) only when the
    # iteration is finite, so a diverged iteration changes no state. ``self.state`` holds
    # the adopted lists; checkpoints save them (``get_state`` / ``set_state``).
    _pending: dict | None = None
    _probe = None
    #: True when the operator's results carry ``ul_lr``, the upper learning rate the
    #: solver sets before each upper step (DM): checkpoints then keep that rate instead of
    #: requiring the task file's (``Problem.state_schema``).
    schedules_ul_lr: bool = False

    def propose(self, **lists) -> None:
        """Propose new persistent state (lists of Vars), adopted by ``commit``."""
        self._pending = {k: [v.detach() for v in vs] for k, vs in lists.items()}

    def commit(self) -> None:
        """Adopt the state proposed by the last run. The solver calls it only after the
        iteration passed its finiteness checks."""
        if self._pending:
            self.state.update(self._pending)
        self._pending = None

    def discard(self) -> None:
        """Drop the state proposed by the last run (``Problem.evaluate``)."""
        self._pending = None

    def get_state(self) -> dict:
        """The adopted state as NumPy arrays (written to checkpoints)."""
        return {k: [v.numpy().copy() for v in vs] for k, vs in self.state.items()}

    def set_state(self, state: dict) -> None:
        """Restore what ``get_state`` returned."""
        from ._jittor import jittor

        jt = jittor()
        # not stop_grad: methods differentiate at their state (MESO's grad f(theta))
        self.state = {k: [jt.array(a) for a in arrays] for k, arrays in state.items()}

    # -- finiteness ---------------------------------------------------------------------
    def finite_checks(self, outputs=()) -> list:
        """One-element Vars the solver computes with the iteration's results (one Jittor
        execution) and ``check_finite`` then reads: a probe of the proposed state."""
        from .autodiff import vdot

        self._probe = None
        if not self._pending:
            return []
        values = [v for vs in self._pending.values() for v in vs]
        self._probe = vdot(values, [0.0] * len(values))
        return [self._probe]

    def check_finite(self) -> None:
        """Raise ``DivergedError`` naming the step if the proposed state is NaN/Inf (the
        solver checks every result and loss itself)."""
        import math

        probe, self._probe = self._probe, None
        if probe is not None and not math.isfinite(float(probe.item())):
            names = ", ".join(self._pending)
            self._pending = None
            raise self.diverged_state(names)

    def diverged_state(self, names: str):
        """The error for a NaN/Inf proposed state ``names`` (override to advise better)."""
        from .errors import DivergedError

        return DivergedError(self.name, "state", f"the new {names} is NaN/Inf; lower the "
                             "step sizes of the method's config section")


class HyperGradient(_Operator, abc.ABC):
    """Base class for computing hyper-gradients of upper-level variables in BLO.

    Keeps the seed's constructor. Concrete operators usually subclass
    ``HyperGradientOperator``, whose constructor takes ``(ll_objective, ul_objective,
    ll_model, ul_model, ...)`` like every seed operator.

    Parameters
    ----------
    ll_objective, ul_objective : callable
        ``f(ll_feed_dict, ul_model, ll_model, **kw)`` and
        ``F(ul_feed_dict, ul_model, ll_model, **kw)``, each returning a scalar Var; ``kw``
        carries ``params=[...]`` for the lower model.
    ul_model, ll_model : jittor.Module
        Upper- and lower-level models.
    ll_var, ul_var : list of jittor.Var
        Lower- and upper-level variables.
    solver_config : Runtime, SolverConfig or dict
        The operator reads its own section (validated by ``config_model``) as
        ``self.config`` and the runtime context as ``self.runtime``.

    Returns of ``compute_gradients``
    --------------------------------
    A pass-through operator returns the keyword arguments of the next operator
    (``ll_feed_dict``, ``ul_feed_dict``, ``auxiliary_model``, ``max_loss_iter``,
    ``hyper_gradient_finished``, ``lower_model_params``, ``hparams``). A terminal one returns
    ``{"upper_loss": Var, "hyper_gradient_finished": True, "hyper_gradients": [Var per
    ul_var], "ll_init_gradients": [Var per lower variable] or None}``.
    """

    kind: ClassVar[str] = "hypergradient"

    def __init__(self, ll_objective, ul_objective, ul_model, ll_model, ll_var, ul_var,
                 solver_config):
        self.ll_objective = ll_objective
        self.ul_objective = ul_objective
        self.ul_model = ul_model
        self.ll_model = ll_model
        self.ll_var = list(ll_var) if ll_var is not None else []
        self.ul_var = list(ul_var) if ul_var is not None else []
        self._store(solver_config)

    @abc.abstractmethod
    def compute_gradients(self, **kwargs):
        """Compute (or pass on) the hyper-gradients; see the class docstring."""


class HyperGradientOperator(HyperGradient, abc.ABC):
    """Abstract base of concrete hyper-gradient operators, with the seed operators'
    constructor order ``(ll_objective, ul_objective, ll_model, ul_model, ll_var, ul_var,
    solver_config)``."""

    def __init__(self, ll_objective, ul_objective, ll_model, ul_model, ll_var, ul_var,
                 solver_config):
        super().__init__(ll_objective, ul_objective, ul_model, ll_model, ll_var, ul_var,
                         solver_config)


class DynamicalSystem(_Operator, abc.ABC):
    """Base class of lower-level dynamics operators (gradient mappings: NGD, GDA, DI, DM).

    Parameters
    ----------
    ll_objective, ul_objective : callable
        As for ``HyperGradient``.
    ll_model, ul_model : jittor.Module
    lower_loop : int
        Number K of lower-level steps per outer iteration.
    solver_config : Runtime, SolverConfig or dict
    """

    kind: ClassVar[str] = "dynamics"
    learns_initialisation: ClassVar[bool] = False
    """Declared True by an operator (DI) that makes the solver learn y_0 too."""
    provides_hypergradient: ClassVar[bool] = False
    """Declared True by an operator (DM) whose ``optimize`` returns the terminal result
    itself (``hyper_gradients``...), so the solver skips the hyper-gradient chain."""

    def __init__(self, ll_objective, ul_objective, ll_model, ul_model, lower_loop,
                 solver_config):
        self.ll_objective = ll_objective
        self.ul_objective = ul_objective
        self.ll_model = ll_model
        self.ul_model = ul_model
        self.lower_loop = int(lower_loop)
        self.lower_loss = None  # lower objective at the last inner step (plan.record_loss)
        self.lower_objective = None  # objective implicit operators should use (GDA: phi)
        self._store(solver_config)

    @abc.abstractmethod
    def optimize(self, **kwargs):
        """Run (or configure) the lower-level dynamics of one outer iteration."""


class FirstOrderSolver(_Operator, abc.ABC):
    """Base class of first-order bilevel solvers (VSO, VFO, MESO, PGDO, ALTO, GAFFO).

    A first-order solver replaces the whole dynamics + hyper-gradient pipeline of one
    outer iteration: it works on the real models (no unrolled graph) and returns the
    directions the solver applies, after its finiteness checks, through the user's
    optimizers. Upstream's constructor order is kept.

    Parameters
    ----------
    ll_objective, ul_objective : callable
        ``f(ll_feed_dict, ul_model, ll_model, **kw)``, ``F(ul_feed_dict, ul_model,
        ll_model, **kw)``; ``kw`` may carry ``params=[...]`` (lower variables in the
        lower model's order), which the objective forwards to ``ll_model(...)``.
    ll_model, ul_model : jittor.Module
    lower_loop : int
        K, the number of inner steps the method takes per outer iteration.
    ll_var, ul_var : list of jittor.Var
    solver_config : Runtime, SolverConfig or dict

    Returns of ``optimize``
    -----------------------
    ``{"upper_loss": Var, "hyper_gradients": [Var per ul_var], "ll_gradients": [Var per
    lower variable] or None, "ll_update": [Var per lower variable] or None,
    "lower_loss": Var (optional, for the history)}``:
    ``hyper_gradients`` go to the upper optimizer, ``ll_gradients`` to the lower
    optimizer, ``ll_update`` (new values) replaces the lower variables (applied first, so
    ``ll_gradients`` may be computed at the new values).

    State kept across iterations (MESO's theta, PGDO's y-hat): ``optimize`` proposes it
    with ``self.propose(name=[Vars])`` (see ``_Operator``); it is adopted only when the
    iteration is finite.
    """

    kind: ClassVar[str] = "first_order"

    def __init__(self, ll_objective, ul_objective, ll_model, ul_model, lower_loop, ll_var,
                 ul_var, solver_config):
        self.ll_objective = ll_objective
        self.ul_objective = ul_objective
        self.ll_model = ll_model
        self.ul_model = ul_model
        self.lower_loop = int(lower_loop)
        self.ll_var = list(ll_var) if ll_var is not None else []
        self.ul_var = list(ul_var) if ul_var is not None else []
        self._store(solver_config)

    @abc.abstractmethod
    def optimize(self, ll_feed_dict, ul_feed_dict, current_iter=0, **kwargs) -> dict:
        """Compute one outer iteration's updates; see the class docstring."""
