"""Abstract bases of the three operator kinds: ``HyperGradient`` (the seed's NA
operators), ``DynamicalSystem`` (lower-level dynamics such as NGD) and
``FirstOrderSolver`` (solvers that replace dynamics + hyper-gradient, such as VFO).

API 2: an operator implements ``step(state)`` on the typed states of
``jboat_core.contract.protocol``. The seed's and upstream's methods
(``compute_gradients(**kwargs)``, ``optimize(...)``) are concrete here: they translate the
keyword form to a state, call ``step`` and translate back, so ``jboat.na_ol.cg.CG`` keeps
the seed's signature. An operator written for API 1 overrides those methods instead; its
inherited ``step`` then runs them through the same translation (the API-1 adapter).
Every kind is built the same way from the runtime context: ``cls.build(runtime)``.
Importing this module does not import Jittor.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from .metadata import OperatorMeta
from .protocol import (ChainState, DynamicsPlan, DynamicsState, Result, SolveState)
from .runtime import Runtime
from .sections import operator_section, validate_section


def zero_probe(values):
    """``sum_i sum(0 * v_i)``: a one-element Var that is NaN/Inf iff one of ``values`` is
    (one reduction per tensor, computed with the iteration's results)."""
    total = None
    for v in values:
        term = (v * 0.0).sum()
        total = term if total is None else total + term
    return total


def _adapter(fn):
    """Mark ``fn`` as one of the bases' translations between API 1 and API 2 (not an
    operator's own implementation)."""
    fn._jboat_adapter = True
    return fn


def _is_adapter(fn) -> bool:
    return getattr(fn, "_jboat_adapter", False)


class _MutablePlan:
    """A writable copy of a ``DynamicsPlan`` for API-1 ``configure_dynamics``, which set
    attributes on the plan instead of returning a new one."""

    def __init__(self, plan: DynamicsPlan):
        self.__dict__.update(plan.__dict__)  # flat fields: no deep copy

    def replace(self, **changes) -> DynamicsPlan:
        """API 2's way, on this copy: a frozen plan with ``changes``."""
        return DynamicsPlan(**{**self.__dict__, **changes})


class _Operator(OperatorMeta):
    """Shared plumbing of every operator kind (abstract)."""

    #: The seed's and JBOAT's method an API-1 operator overrides (per kind).
    _api1_method: ClassVar[str] = ""

    def _store(self, solver_config: Any) -> None:
        self._solver_config = solver_config if solver_config is not None else {}
        self.state: dict[str, list] = {}
        self.runtime = Runtime.coerce(solver_config)
        self.config = validate_section(type(self), operator_section(self.runtime, self.name))

    @property
    def solver_config(self):
        """What the operator was constructed with (the seed's attribute); read
        ``self.runtime`` and ``self.config`` instead."""
        return self._solver_config

    solver_configs = solver_config  # upstream Jittor's spelling

    @classmethod
    def build(cls, runtime: Runtime) -> "_Operator":
        """The operator for a composition: every kind is built the same way, from the
        runtime context (objectives, models, variables, K and the sections), through its
        seed constructor called with keywords."""
        raise NotImplementedError

    @classmethod
    def api_version(cls) -> int:
        """2 when the class implements ``step``; 1 when it implements only the keyword
        method of API 1 (it then runs through the adapter); 0 with neither."""
        if not _is_adapter(cls.step):
            return 2
        return 0 if _is_adapter(getattr(cls, cls._api1_method)) else 1

    @classmethod
    def configure_dynamics(cls, plan: DynamicsPlan, config: BaseModel) -> DynamicsPlan:
        """What this operator needs of the lower-level dynamics: ``plan`` with its
        requests added (default: tracking if ``needs_trajectory``). Override to request
        more (PTT, FOA, RGT do): ``return plan.replace(first_order=True)``."""
        return plan.replace(track=True) if cls.needs_trajectory else plan

    @classmethod
    def plan_with(cls, plan: DynamicsPlan, config: BaseModel) -> DynamicsPlan:
        """``configure_dynamics`` for API 2 (returns a plan) and API 1 (sets attributes)."""
        mutable = _MutablePlan(plan)
        out = cls.configure_dynamics(mutable, config)
        if isinstance(out, DynamicsPlan):
            return out
        if isinstance(out, _MutablePlan):
            mutable = out
        return DynamicsPlan(**mutable.__dict__)

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

    def state_schema(self, lower: tuple, upper: tuple) -> dict | None:
        """What ``get_state`` returns, before the operator has run (a checkpoint is checked
        against it before it is restored; once the operator holds state, the live state
        itself is the schema).

        Parameters
        ----------
        lower, upper : tuple of ArraySpec
            The shapes and dtypes of the lower and the upper variables.

        Returns
        -------
        dict or None
            State name -> list of specs (``ArraySpec``, or ``Rows`` for tables of rows,
            from ``jboat_core.contract``); None (the default): any names, each list shaped
            like the lower or the upper variables.
        """
        return None

    def set_state(self, state: dict) -> None:
        """Restore what ``get_state`` returned."""
        import numpy as np

        from ..platform._jittor import jittor

        jt = jittor()
        # not stop_grad: methods differentiate at their state (MESO's grad f(theta));
        # each array keeps its dtype (jt.array alone would turn float64 into float32)
        self.state = {k: [jt.array(a, str(np.asarray(a).dtype)) for a in arrays]
                      for k, arrays in state.items()}

    # -- finiteness ---------------------------------------------------------------------
    def finite_checks(self, outputs=()) -> list:
        """One-element Vars the solver computes with the iteration's results (one Jittor
        execution) and ``check_finite`` then reads: a probe of the proposed state."""
        self._probe = None
        if not self._pending:
            return []
        self._probe = zero_probe([v for vs in self._pending.values() for v in vs])
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
        from ..errors import DivergedError

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

    The step (API 2)
    ----------------
    ``step(state: ChainState) -> ChainState | Result``: a modifier returns the next
    operator's state (``state.replace(point=..., wrt=...)``), a terminal operator a
    ``Result`` (``protocol.result(self, F, grads, ll_init_gradients)``).
    ``compute_gradients(**kwargs)`` is the seed's keyword form of the same step.
    """

    kind: ClassVar[str] = "hypergradient"
    _api1_method: ClassVar[str] = "compute_gradients"

    def __init__(self, ll_objective, ul_objective, ul_model, ll_model, ll_var, ul_var,
                 solver_config):
        self.ll_objective = ll_objective
        self.ul_objective = ul_objective
        self.ul_model = ul_model
        self.ll_model = ll_model
        self.ll_var = list(ll_var) if ll_var is not None else []
        self.ul_var = list(ul_var) if ul_var is not None else []
        self._store(solver_config)

    @classmethod
    def build(cls, runtime: Runtime) -> "HyperGradient":
        return cls(ll_objective=runtime.ll_objective, ul_objective=runtime.ul_objective,
                   ll_model=runtime.ll_model, ul_model=runtime.ul_model,
                   ll_var=runtime.ll_var, ul_var=runtime.ul_var, solver_config=runtime)

    @_adapter
    def step(self, state: ChainState) -> ChainState | Result:
        """One step of the chain (API 2; see the class docstring). Inherited by an API-1
        operator, it calls its ``compute_gradients(**kwargs)`` and reads the answer."""
        if _is_adapter(type(self).compute_gradients):
            raise NotImplementedError(f"{self.name}: implement step(state) (API 2)")
        out = self.compute_gradients(**state.as_kwargs())
        if isinstance(out, Mapping) and out.get("hyper_gradient_finished"):
            return Result.from_dict(out, self.name)
        if isinstance(out, Mapping):
            return ChainState.from_kwargs(out)
        return out

    @_adapter
    def compute_gradients(self, **kwargs):
        """The seed's keyword form of ``step``: JBOAT's arguments in
        (``ll_feed_dict``, ``ul_feed_dict``, ``auxiliary_model``, ``max_loss_iter``,
        ``next_operation``...), the next operator's arguments or the terminal dict
        (``hyper_gradient_finished``, ``upper_loss``, ``hyper_gradients``...) out."""
        out = self.step(ChainState.from_kwargs(kwargs))
        return out.as_dict() if isinstance(out, Result) else out.as_kwargs()


class HyperGradientOperator(HyperGradient, abc.ABC):
    """Abstract base of concrete hyper-gradient operators, with the seed operators'
    constructor order ``(ll_objective, ul_objective, ll_model, ul_model, ll_var, ul_var,
    solver_config)``."""

    def __init__(self, ll_objective, ul_objective, ll_model, ul_model, ll_var, ul_var,
                 solver_config):
        super().__init__(ll_objective, ul_objective, ul_model, ll_model, ll_var, ul_var,
                         solver_config)

    @_adapter
    def compute_gradients(self, ll_feed_dict, ul_feed_dict, auxiliary_model, max_loss_iter=0,
                          hyper_gradient_finished=False, next_operation=None, **kwargs):
        """The seed operators' keyword form of ``step`` (``jboat.na_ol.cg.CG``'s signature):
        the next operator's arguments, or the terminal dict."""
        return HyperGradient.compute_gradients(
            self, ll_feed_dict=ll_feed_dict, ul_feed_dict=ul_feed_dict,
            auxiliary_model=auxiliary_model, max_loss_iter=max_loss_iter,
            hyper_gradient_finished=hyper_gradient_finished, next_operation=next_operation,
            **kwargs)


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

    The step (API 2)
    ----------------
    ``step(state: DynamicsState) -> DynamicsState | Result``: the state updated for the
    next dynamics operator or the chain (the inner loop sets ``k_star``, ``lower_loss``,
    ``lower_objective``), or the terminal ``Result`` (``provides_hypergradient``, DM).
    """

    kind: ClassVar[str] = "dynamics"
    _api1_method: ClassVar[str] = "optimize"
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
    (keeps a ``jboat_core.numerics.Tape``, as NGD does): ``checkpoint_every`` in the solver
    config is refused when the composition's dynamics do not."""

    def __init__(self, ll_objective, ul_objective, ll_model, ul_model, lower_loop,
                 solver_config):
        self.ll_objective = ll_objective
        self.ul_objective = ul_objective
        self.ll_model = ll_model
        self.ul_model = ul_model
        self.lower_loop = int(lower_loop)
        self._store(solver_config)

    @classmethod
    def build(cls, runtime: Runtime) -> "DynamicalSystem":
        return cls(ll_objective=runtime.ll_objective, ul_objective=runtime.ul_objective,
                   ll_model=runtime.ll_model, ul_model=runtime.ul_model,
                   lower_loop=runtime.lower_iters, solver_config=runtime)

    @_adapter
    def step(self, state: DynamicsState) -> DynamicsState | Result:
        """The dynamics of one outer iteration (API 2; see the class docstring). Inherited
        by an API-1 operator, it calls its ``optimize(**kwargs)`` and reads the answer
        (a pass-through dict, ``max_loss_iter`` or a terminal dict, and the attributes
        ``lower_loss`` / ``lower_objective``)."""
        if _is_adapter(type(self).optimize):
            raise NotImplementedError(f"{self.name}: implement step(state) (API 2)")
        out = self.optimize(**state.as_kwargs())
        if isinstance(out, Mapping) and out.get("hyper_gradient_finished"):
            return Result.from_dict(out, self.name)
        if isinstance(out, Mapping):
            return state.updated_from(out)
        return state.replace(k_star=out if isinstance(out, int) else -1,
                             lower_loss=getattr(self, "lower_loss", None),
                             lower_objective=getattr(self, "lower_objective", None))

    @_adapter
    def optimize(self, ll_feed_dict, ul_feed_dict, auxiliary_model, auxiliary_opt,
                 current_iter=0, next_operation=None, plan=None, **kwargs):
        """Upstream's keyword form of ``step``: the next dynamics operator's arguments, or
        for the last one ``max_loss_iter`` (k*, or -1) or the terminal dict (DM)."""
        state = DynamicsState(ll_feed_dict, ul_feed_dict, auxiliary_model, auxiliary_opt,
                              plan or DynamicsPlan(), int(current_iter),
                              next_operation=next_operation).updated_from(kwargs)
        out = self.step(state)
        if isinstance(out, Result):
            return out.as_dict()
        if next_operation is not None:
            return out.as_kwargs() | {"max_loss_iter": out.k_star}
        return out.k_star


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

    The step (API 2)
    ----------------
    ``step(state: SolveState) -> Result``: ``hyper_gradients`` go to the upper
    optimizer, ``ll_gradients`` to the lower optimizer, ``ll_update`` (new values)
    replaces the lower variables (applied first, so ``ll_gradients`` may be computed at
    the new values), ``lower_loss`` to the history. ``optimize(ll_feed_dict,
    ul_feed_dict, current_iter)`` is upstream's form, returning the same as a dict.

    State kept across iterations (MESO's theta, PGDO's y-hat): ``step`` proposes it
    with ``self.propose(name=[Vars])`` (see ``_Operator``); it is adopted only when the
    iteration is finite.
    """

    kind: ClassVar[str] = "first_order"
    _api1_method: ClassVar[str] = "optimize"

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

    @classmethod
    def build(cls, runtime: Runtime) -> "FirstOrderSolver":
        return cls(ll_objective=runtime.ll_objective, ul_objective=runtime.ul_objective,
                   ll_model=runtime.ll_model, ul_model=runtime.ul_model,
                   lower_loop=runtime.lower_iters, ll_var=runtime.ll_var,
                   ul_var=runtime.ul_var, solver_config=runtime)

    @_adapter
    def step(self, state: SolveState) -> Result:
        """One outer iteration (API 2; see the class docstring). Inherited by an API-1
        solver, it calls its ``optimize`` and reads the dict."""
        if _is_adapter(type(self).optimize):
            raise NotImplementedError(f"{self.name}: implement step(state) (API 2)")
        out = self.optimize(state.ll_feed, state.ul_feed, state.current_iter)
        return out if isinstance(out, Result) else Result.from_dict(out, self.name)

    @_adapter
    def optimize(self, ll_feed_dict, ul_feed_dict, current_iter=0, **kwargs) -> dict:
        """Upstream's form of ``step``: the ``Result`` as a dict."""
        return self.step(SolveState(ll_feed_dict, ul_feed_dict, int(current_iter))).as_dict()
