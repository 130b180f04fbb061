"""The seed API (JBOAT's ``jboat.na_ol``, ``gm_ol``, ``fo_ol``) on API-2 operators.

JBOAT builds an operator positionally, ``CG(ll_objective, ul_objective, ll_model,
ul_model, ll_var, ul_var, solver_config)``, and runs it with keywords,
``compute_gradients(ll_feed_dict, ul_feed_dict, auxiliary_model, max_loss_iter=0, ...)``,
which return the next operator's keywords or the terminal dict. ``seed_class(cls)`` is
the one wrapper class that gives a registered API-2 operator that form (``jboat.na_ol.cg.CG
is seed_class(jboat_ops.cg.CG)``, a subclass: ``isinstance`` holds both ways); its methods
translate the keywords to the typed state, call ``step`` and translate back
(``jboat_core.compat.keywords``). A seed instance keeps the operator's memory on itself
between calls, as JBOAT's operators did (the seed API has no solver to adopt it).

Also here: ``SequentialHG`` / ``makes_functional_na_operation`` (the seed's chain, run by
the one runner, ``jboat_core.solver.engine.run_chain``), upstream's ``SequentialDS`` /
``makes_functional_dynamical_system``, the seed's abstract ``HyperGradient`` (its
constructor order ``(ll_objective, ul_objective, ul_model, ll_model, ...)``) and
``coerce_runtime``, which reads an upstream ``boat_config``-shaped dict.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Mapping
from typing import Any

from ..contract.metadata import split_names
from ..contract.operators import DynamicalSystem as _DS
from ..contract.operators import FirstOrderSolver as _FO
from ..contract.operators import HyperGradient as _HG
from ..contract.protocol import (NO_MEMORY, ChainState, DynamicsPlan, DynamicsState, Result,
                                 SolveState)
from ..contract.runtime import UPSTREAM_KEYS, Runtime
from ..plugins.ordering import validate_and_adjust_order as _validate_and_adjust_order
from ..plugins.registry import Registry, get_registry
from ..solver.engine import dynamics_plan, run_chain, run_dynamics, step_operator
from .keywords import chain_step, dynamics_step, first_order_step, implements_api1
from .keywords import chain_kwargs, chain_state, dynamics_kwargs, dynamics_updated, result_dict

__all__ = ["DynamicalSystem", "FirstOrderSolver", "HyperGradient", "SequentialDS", "SequentialHG", "coerce_runtime",
           "makes_functional_dynamical_system", "makes_functional_na_operation", "seed_class",
           "validate_and_adjust_order"]


# -- the runtime of a seed-built operator ------------------------------------------------
def coerce_runtime(solver_config: Any) -> Runtime:
    """A ``Runtime`` from what a seed operator is constructed with: a ``Runtime`` (as is),
    a ``SolverConfig`` (its sections and composition), an upstream ``boat_config``-shaped
    dict (sections plus runtime objects under upstream or jboat keys) or None."""
    if isinstance(solver_config, Runtime):
        return solver_config
    if solver_config is None:
        return Runtime()
    if isinstance(solver_config, Mapping):
        kw: dict[str, Any] = {}
        for key, value in solver_config.items():
            name = UPSTREAM_KEYS.get(key, key)
            if name in ("ll_opt", "ul_opt", "ll_model", "ul_model", "gda_loss",
                        "ll_objective", "ul_objective"):
                kw[name] = value
            elif name in ("ll_var", "ul_var"):
                kw[name] = list(value or [])
            elif name in ("gm_op", "na_op", "fo_op"):
                kw[name] = tuple(split_names(value))
            elif name == "lower_iters":
                kw[name] = int(value)
        return Runtime(operators=solver_config, **kw)
    return Runtime(operators=dict(getattr(solver_config, "operators", {}) or {}),
                   gm_op=tuple(split_names(getattr(solver_config, "gm_op", None))),
                   na_op=tuple(split_names(getattr(solver_config, "na_op", None))),
                   fo_op=tuple(split_names(getattr(solver_config, "fo_op", None))),
                   lower_iters=int(getattr(solver_config, "lower_iters", 10)),
                   solver=solver_config)


class _Seed:
    """What every seed wrapper shares: the constructor argument, the memory kept on the
    instance, and one step through the solver's ``step_operator``."""

    _seed_memory: Mapping = NO_MEMORY

    def _seed_init(self, solver_config, **parts) -> None:
        runtime = coerce_runtime(solver_config)
        parts.setdefault("lower_iters", runtime.lower_iters)
        for key in ("ll_var", "ul_var"):
            if parts.get(key) is None:
                parts[key] = getattr(runtime, key)
        super().__init__(runtime=runtime, **parts)  # the contract's keyword constructor
        self._solver_config = solver_config if solver_config is not None else {}

    @property
    def solver_config(self):
        """What the operator was constructed with (the seed's attribute)."""
        return self._solver_config

    solver_configs = solver_config  # upstream Jittor's spelling

    def _seed_step(self, state):
        pending: dict = {}
        out = step_operator(self, state, {self.name: self._seed_memory}, pending)
        if self.name in pending:
            self._seed_memory = pending[self.name]
        return out

    def _chain_defaults(self, state: ChainState) -> ChainState:
        changes = {}
        if state.ll_objective is None:
            changes["ll_objective"] = self.ll_objective
        if state.ll_lr is None and self.runtime.ll_lr is not None:
            changes["ll_lr"] = self.runtime.ll_lr
        return state.replace(**changes) if changes else state


class _SeedChainInit(_Seed):
    """The seed constructor of a hyper-gradient operator (``CG(ll_objective, ...)``)."""

    def __init__(self, ll_objective, ul_objective, ll_model, ul_model, ll_var, ul_var,
                 solver_config):
        self._seed_init(solver_config, ll_objective=ll_objective, ul_objective=ul_objective,
                        ll_model=ll_model, ul_model=ul_model, ll_var=ll_var, ul_var=ul_var)

    @classmethod
    def build(cls, runtime: Runtime):
        return cls(runtime.ll_objective, runtime.ul_objective, runtime.ll_model,
                   runtime.ul_model, runtime.ll_var, runtime.ul_var, runtime)


class _SeedChain(_SeedChainInit):
    """The seed form of a hyper-gradient operator (``jboat.na_ol.cg.CG``)."""

    def _seed_call(self, kwargs: dict):
        state, extras = chain_state(kwargs)
        out = self._seed_step(self._chain_defaults(state))
        return result_dict(out) if isinstance(out, Result) else chain_kwargs(out, extras)

    def compute_gradients(self, ll_feed_dict, ul_feed_dict, auxiliary_model, max_loss_iter=0,
                          hyper_gradient_finished=False, next_operation=None, **kwargs):
        """The seed's keyword form of ``step``: JBOAT's arguments in, the next operator's
        arguments or the terminal dict (``hyper_gradient_finished``, ``upper_loss``,
        ``hyper_gradients``...) out."""
        return self._seed_call({**kwargs, "ll_feed_dict": ll_feed_dict,
                                "ul_feed_dict": ul_feed_dict,
                                "auxiliary_model": auxiliary_model,
                                "max_loss_iter": max_loss_iter,
                                "hyper_gradient_finished": hyper_gradient_finished,
                                "next_operation": next_operation})


class _SeedChainWithoutFinished(_SeedChain):
    """RAD's seed form: its ``compute_gradients`` has no ``hyper_gradient_finished``."""

    def compute_gradients(self, ll_feed_dict, ul_feed_dict, auxiliary_model, max_loss_iter=0,
                          next_operation=None, **kwargs):
        """The seed's keyword form of ``step`` (RAD's signature)."""
        return self._seed_call({**kwargs, "ll_feed_dict": ll_feed_dict,
                                "ul_feed_dict": ul_feed_dict,
                                "auxiliary_model": auxiliary_model,
                                "max_loss_iter": max_loss_iter,
                                "next_operation": next_operation})


class _SeedDynamicsInit(_Seed):
    """Upstream's constructor of a dynamics operator (``NGD(ll_objective, ...)``)."""

    def __init__(self, ll_objective, ul_objective, ll_model, ul_model, lower_loop,
                 solver_config):
        self._seed_init(solver_config, ll_objective=ll_objective, ul_objective=ul_objective,
                        ll_model=ll_model, ul_model=ul_model, lower_iters=lower_loop)

    @classmethod
    def build(cls, runtime: Runtime):
        return cls(runtime.ll_objective, runtime.ul_objective, runtime.ll_model,
                   runtime.ul_model, runtime.lower_iters, runtime)


class _SeedDynamics(_SeedDynamicsInit):
    """Upstream's form of a dynamics operator (``jboat.gm_ol.ngd.NGD``)."""

    def optimize(self, ll_feed_dict, ul_feed_dict, auxiliary_model, auxiliary_opt,
                 current_iter=0, next_operation=None, plan=None, **kwargs):
        """Upstream's keyword form of ``step``: the next dynamics operator's arguments, or
        for the last one ``max_loss_iter`` (k*, or -1) or the terminal dict (DM)."""
        state = dynamics_updated(DynamicsState(
            ll_feed_dict, ul_feed_dict, auxiliary_model, auxiliary_opt,
            plan or DynamicsPlan(), int(current_iter), next_operation=next_operation), kwargs)
        out = self._seed_step(state)
        if isinstance(out, Result):
            return result_dict(out)
        if next_operation is not None:
            return dynamics_kwargs(out) | {"max_loss_iter": out.k_star}
        return out.k_star


class _SeedFirstOrderInit(_Seed):
    """Upstream's constructor of a first-order solver (``VFO(ll_objective, ...)``)."""

    def __init__(self, ll_objective, ul_objective, ll_model, ul_model, lower_loop, ll_var,
                 ul_var, solver_config):
        self._seed_init(solver_config, ll_objective=ll_objective, ul_objective=ul_objective,
                        ll_model=ll_model, ul_model=ul_model, lower_iters=lower_loop,
                        ll_var=ll_var, ul_var=ul_var)

    @classmethod
    def build(cls, runtime: Runtime):
        return cls(runtime.ll_objective, runtime.ul_objective, runtime.ll_model,
                   runtime.ul_model, runtime.lower_iters, runtime.ll_var, runtime.ul_var,
                   runtime)


class _SeedFirstOrder(_SeedFirstOrderInit):
    """Upstream's form of a first-order solver (``jboat.fo_ol.vfo.VFO``)."""

    def optimize(self, ll_feed_dict, ul_feed_dict, current_iter=0, **kwargs) -> dict:
        """Upstream's form of ``step``: the ``Result`` as a dict."""
        out = self._seed_step(SolveState(ll_feed_dict, ul_feed_dict, int(current_iter)))
        return result_dict(out)


_SEED_FORMS = {"hypergradient": _SeedChain, "dynamics": _SeedDynamics,
               "first_order": _SeedFirstOrder}
#: The constructors alone, for API-1 classes (they implement the keyword method).
SEED_INIT = {"hypergradient": _SeedChainInit, "dynamics": _SeedDynamicsInit,
             "first_order": _SeedFirstOrderInit}
#: Seed operators whose ``compute_gradients`` has no ``hyper_gradient_finished``.
_WITHOUT_FINISHED = frozenset({"RAD"})


@functools.lru_cache(maxsize=None)
def seed_class(cls: type) -> type:
    """``cls`` (a registered operator class) with the seed's constructor and keyword
    method: one subclass per class, made once."""
    if issubclass(cls, _Seed):
        return cls
    form = SEED_INIT[cls.kind] if implements_api1(cls) else _SEED_FORMS[cls.kind]
    if form is _SeedChain and cls.name in _WITHOUT_FINISHED:
        form = _SeedChainWithoutFinished
    body = {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__, "seed_original": cls}
    return type(cls.__name__, (form, cls), body)


def seed_operator(name: str, kind: str | None = None, registry: Registry | None = None):
    """The seed form of the operator registered under ``name``."""
    return seed_class((registry or get_registry()).get(name, kind=kind).cls)


# -- the seed's abstract base -------------------------------------------------------------
class HyperGradient(_Seed, _HG):
    """The seed's base class of hyper-gradient operators (``jboat.na_ol.hyper_gradient``):
    its constructor order ``(ll_objective, ul_objective, ul_model, ll_model, ll_var,
    ul_var, solver_config)`` and an abstract ``compute_gradients(**kwargs)``; ``step``
    runs it (the keyword form translated both ways). Write new operators on
    ``jboat_core.contract.HyperGradient`` instead (``step``)."""

    def __init__(self, ll_objective, ul_objective, ul_model, ll_model, ll_var, ul_var,
                 solver_config):
        self._seed_init(solver_config, ll_objective=ll_objective, ul_objective=ul_objective,
                        ll_model=ll_model, ul_model=ul_model, ll_var=ll_var, ul_var=ul_var)

    @classmethod
    def build(cls, runtime: Runtime):
        return cls(runtime.ll_objective, runtime.ul_objective, runtime.ul_model,
                   runtime.ll_model, runtime.ll_var, runtime.ul_var, runtime)

    @abc.abstractmethod
    def compute_gradients(self, **kwargs):
        """JBOAT's arguments in, the next operator's arguments or the terminal dict out."""

    def step(self, state: ChainState):
        """``compute_gradients`` on ``state`` as keywords (API 1's translation)."""
        return chain_step(self, state)


class DynamicalSystem(_SeedDynamicsInit, _DS):
    """Upstream's base class of dynamics operators (``jboat.gm_ol.dynamical_system``): the
    constructor ``(ll_objective, ul_objective, ll_model, ul_model, lower_loop,
    solver_config)`` and an abstract ``optimize(**kwargs)``; ``step`` runs it."""

    @abc.abstractmethod
    def optimize(self, **kwargs):
        """Upstream's keyword form of the dynamics."""

    def step(self, state: DynamicsState):
        """``optimize`` on ``state`` as keywords (API 1's translation)."""
        return dynamics_step(self, state)


class FirstOrderSolver(_SeedFirstOrderInit, _FO):
    """Upstream's base class of first-order solvers (``jboat.fo_ol``): the constructor
    ``(ll_objective, ul_objective, ll_model, ul_model, lower_loop, ll_var, ul_var,
    solver_config)`` and an abstract ``optimize(ll_feed_dict, ul_feed_dict,
    current_iter)``; ``step`` runs it."""

    @abc.abstractmethod
    def optimize(self, ll_feed_dict, ul_feed_dict, current_iter=0, **kwargs):
        """Upstream's form of one outer iteration: the result as a dict."""

    def step(self, state: SolveState) -> Result:
        """``optimize`` on ``state`` (API 1's translation)."""
        return first_order_step(self, state)


# -- the seed's chain ---------------------------------------------------------------------
class SequentialHG:
    """Run hyper-gradient operators in order, passing each one's state to the next (the
    seed's class; the runner is ``jboat_core.solver.engine.run_chain``).

    Parameters
    ----------
    ordered_instances : list of HyperGradient
        Operator instances in execution order (see ``validate_and_adjust_order``).
    custom_order : list of str
        The user's operator names, as given (the execution order is that of
        ``ordered_instances``).
    """

    def __init__(self, ordered_instances, custom_order):
        self.gradient_instances = list(ordered_instances)
        self.custom_order = list(custom_order)
        self.order = [type(op).name for op in self.gradient_instances]
        self._memories: dict = {}

    def dynamics_plan(self, record_loss: bool = False) -> DynamicsPlan:
        """What the chain needs from the lower-level dynamics (tracking, PTT, FOA, RGT)."""
        return dynamics_plan(self.gradient_instances, record_loss)

    def run(self, state: ChainState) -> Result:
        """The chain on ``state``; the terminal operator's ``Result``."""
        return self.run_traced(state)[0]

    def run_traced(self, state: ChainState) -> tuple[Result, ChainState]:
        """``run``, and the state the terminal operator received (its lower point)."""
        first = self.gradient_instances[0] if self.gradient_instances else None
        if first is not None and state.ll_objective is None:
            state = state.replace(ll_objective=first.ll_objective)
        if first is not None and state.ll_lr is None and first.runtime.ll_lr is not None:
            state = state.replace(ll_lr=first.runtime.ll_lr)
        pending: dict = {}
        out = run_chain(self.gradient_instances, state, self._memories, pending)
        self._memories.update(pending)  # the seed API has no checks to wait for
        return out

    def compute_gradients(self, **kwargs) -> list[dict]:
        """Compute hyper-gradients sequentially using the ordered instances.

        Parameters
        ----------
        **kwargs
            Arguments of the first operator's ``compute_gradients``: ``ll_feed_dict``,
            ``ul_feed_dict``, ``auxiliary_model``, ``max_loss_iter`` and optional extras.

        Returns
        -------
        list of dict
            ``[{"gradient_operator_results": result}]`` where ``result`` is the terminal
            operator's dict, including ``hyper_gradients`` (one Var per ``ul_var``).
        """
        state, _ = chain_state(kwargs)
        return [{"gradient_operator_results": result_dict(self.run(state))}]


_NA_KEYS = ("ll_objective", "ul_objective", "ll_model", "ul_model", "ll_var", "ul_var",
            "solver_config")
_DS_KEYS = ("ll_objective", "ul_objective", "ll_model", "ul_model", "lower_loop",
            "solver_config")


def _instantiate(custom_order, kind: str, keys: tuple, caller: str, kwargs: dict):
    """Validate and order ``custom_order`` (operators of ``kind``), then build each seed
    operator with the ``keys`` of ``kwargs``; returns ``(instances, the user's names)``."""
    reg = kwargs.pop("registry", None) or get_registry()
    missing = [k for k in keys if k not in kwargs]
    if missing:
        raise TypeError(f"{caller}() missing keyword arguments: {', '.join(missing)}")
    adjusted = _validate_and_adjust_order(custom_order, kind=kind, registry=reg)
    instances = [seed_operator(n, kind, reg)(*(kwargs[k] for k in keys)) for n in adjusted]
    names = [custom_order] if isinstance(custom_order, str) else list(custom_order)
    return instances, names


def makes_functional_na_operation(custom_order, **kwargs) -> SequentialHG:
    """Dynamically create a ``SequentialHG`` object with ordered gradient operators.

    Parameters
    ----------
    custom_order : list of str
        Hyper-gradient operator names, any order.
    **kwargs
        Constructor arguments of every operator: ``ll_objective``, ``ul_objective``,
        ``ll_model``, ``ul_model``, ``ll_var``, ``ul_var``, ``solver_config``; and
        optionally ``registry`` (default: the installed operators).

    Returns
    -------
    SequentialHG
    """
    instances, names = _instantiate(custom_order, "hypergradient", _NA_KEYS,
                                    "makes_functional_na_operation", dict(kwargs))
    return SequentialHG(instances, names)


def validate_and_adjust_order(custom_order, gradient_order):
    """Validate and adjust the custom order to match the predefined gradient order (the
    seed's signature; ``jboat_core.plugins`` has the one with ``kind`` and ``registry``).

    Parameters
    ----------
    custom_order : list of str
        The user-provided order of gradient operators.
    gradient_order : list of list of str
        The predefined order of gradient operator groups (e.g.
        ``jboat_core.default_gradient_order()``).

    Returns
    -------
    list of str
        The operators in execution order.
    """
    return _validate_and_adjust_order(custom_order, gradient_order)


class SequentialDS:
    """Run dynamics operators in order (upstream ``SequentialDS``).

    Parameters
    ----------
    ordered_instances : list of DynamicalSystem
        In execution order (``validate_and_adjust_order(..., kind="dynamics")``).
    custom_order : list of str
        The user's names, as given.
    """

    def __init__(self, ordered_instances, custom_order):
        self.gradient_instances = list(ordered_instances)
        self.custom_order = list(custom_order)
        self.order = [type(op).name for op in self.gradient_instances]
        self._memories: dict = {}

    def optimize(self, ll_feed_dict, ul_feed_dict, auxiliary_model, auxiliary_opt,
                 current_iter=0, plan: DynamicsPlan | None = None, **kwargs):
        """Run the dynamics on ``auxiliary_model`` (a ``FunctionalModel``); returns
        ``max_loss_iter`` (k*, or -1), or DM's terminal dict."""
        pending: dict = {}
        out = run_dynamics(self.gradient_instances, DynamicsState(
            ll_feed_dict, ul_feed_dict, auxiliary_model, auxiliary_opt,
            plan or DynamicsPlan(), int(current_iter)), self._memories, pending)
        self._memories.update(pending)
        return result_dict(out) if isinstance(out, Result) else out.k_star


def makes_functional_dynamical_system(custom_order, **kwargs) -> SequentialDS:
    """Validate ``custom_order`` (dynamics operator names), instantiate and compose them.

    Parameters
    ----------
    custom_order : list of str
    **kwargs
        ``ll_objective``, ``ul_objective``, ``ll_model``, ``ul_model``, ``lower_loop``,
        ``solver_config``; optionally ``registry``.
    """
    instances, names = _instantiate(custom_order, "dynamics", _DS_KEYS,
                                    "makes_functional_dynamical_system", dict(kwargs))
    return SequentialDS(instances, names)

