"""Plugins written for API 1 (JBOAT's keyword protocol), on the API-2 solver.

An API-1 operator implements JBOAT's keyword method instead of ``step``:
``compute_gradients(ll_feed_dict, ul_feed_dict, auxiliary_model, max_loss_iter, ...)``
(hyper-gradient operators), ``optimize(...)`` (dynamics and first-order solvers). When the
registry loads a plugin that declares ``JBOAT_API_VERSION = 1`` (or whose class implements
only that method) it registers ``adapt(cls)`` instead: one subclass whose ``step``
translates the state to keywords, calls the method and translates the answer back
(``jboat_core.compat.keywords``). The helpers such plugins import from ``jboat_core``
(``finished``, ``passthrough``, ``lower_point``, ``require_last``, ``require_next``) and
``implicit_result`` live here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..contract.protocol import (ChainState, DynamicsPlan, DynamicsState, Result, SolveState,
                                 require_ll_lr, result, to_upper)
from ..errors import OperatorRuntimeError
from ..contract.operators import HyperGradient
from .keywords import (API1_METHOD, MutablePlan, chain_state, chain_step, dynamics_step,
                       first_order_step, implements_api1, result_dict)
from .seed import SEED_INIT

__all__ = ["API1_METHOD", "HyperGradientOperator", "adapt", "implements_api1", "dynamics_passthrough", "finished", "implicit_hypergradient",
           "implicit_result", "implicit_step", "lower_lr", "lower_objective", "lower_point",
           "passthrough", "require_last", "require_next", "to_upper"]

def implicit_hypergradient(*args, **kwargs):
    """``jboat_core.numerics.implicit_hypergradient`` (imports Jittor when called)."""
    from ..numerics.implicit import implicit_hypergradient as run

    return run(*args, **kwargs)


def implicit_step(*args, **kwargs):
    """``jboat_core.numerics.implicit_step`` (imports Jittor when called)."""
    from ..numerics.implicit import implicit_step as run

    return run(*args, **kwargs)


# -- the keyword protocol's helpers -------------------------------------------------------
def require_last(op, next_operation) -> None:
    """Raise unless ``op`` ends the chain (terminal operators)."""
    if next_operation is not None:
        raise OperatorRuntimeError(type(op).name, "chain", f"must be the last operator (role "
                                   f"'terminal') but {next_operation!r} follows it")


def require_next(op, next_operation, hyper_gradient_finished=False) -> None:
    """Raise unless ``op`` is followed by another operator (modifiers)."""
    if next_operation is None:
        raise OperatorRuntimeError(type(op).name, "chain", "must be followed by another "
                                   "operator (role 'modifier'), e.g. RAD or CG")
    if hyper_gradient_finished:
        raise OperatorRuntimeError(type(op).name, "chain", "received hyper_gradient_finished="
                                   "True: a terminal operator ran before it")


def lower_point(auxiliary_model, kwargs: Mapping[str, Any]) -> list:
    """The lower-level weights at which to evaluate (``lower_model_params`` or newest)."""
    params = kwargs.get("lower_model_params")
    return list(params) if params is not None else auxiliary_model.parameters()


def lower_objective(op, kwargs: Mapping[str, Any]):
    """The lower objective to differentiate: the one the dynamics descended
    (``lower_objective``), else the operator's ``ll_objective``."""
    return kwargs.get("lower_objective") or op.ll_objective


def _next_kwargs(kwargs: Mapping[str, Any], current: dict, updates: dict) -> dict:
    out = {k: v for k, v in kwargs.items() if k != "next_operation"}
    out.update(current)
    out.update(updates)
    return out


def passthrough(ll_feed_dict, ul_feed_dict, auxiliary_model, max_loss_iter, kwargs,
                **updates) -> dict:
    """The next operator's keyword arguments: the current ones updated by ``updates``."""
    return _next_kwargs(kwargs, dict(ll_feed_dict=ll_feed_dict, ul_feed_dict=ul_feed_dict,
                                     auxiliary_model=auxiliary_model,
                                     max_loss_iter=max_loss_iter,
                                     hyper_gradient_finished=False), updates)


def dynamics_passthrough(ll_feed_dict, ul_feed_dict, auxiliary_model, auxiliary_opt,
                         current_iter, kwargs, **updates) -> dict:
    """The next dynamics operator's keyword arguments (GDA, DI, NGD before DM)."""
    return _next_kwargs(kwargs, dict(ll_feed_dict=ll_feed_dict, ul_feed_dict=ul_feed_dict,
                                     auxiliary_model=auxiliary_model,
                                     auxiliary_opt=auxiliary_opt,
                                     current_iter=current_iter), updates)


def lower_lr(op, kwargs: Mapping[str, Any]) -> float:
    """eta: ``ll_lr`` passed by the solver, else the runtime's lower optimizer's."""
    return require_ll_lr(op, kwargs.get("ll_lr"))


def finished(op, upper_loss, hyper_gradients, ll_init_gradients=None) -> dict:
    """A terminal result as API 1's dict (``result``, checked, as a dict)."""
    return result_dict(result(op, upper_loss, hyper_gradients, ll_init_gradients))


def implicit_result(op, ll_feed_dict, ul_feed_dict, auxiliary_model, next_operation, kwargs,
                    solve, damping: float = 0.0) -> dict:
    """API 1's form of ``implicit_step`` (JBOAT's keyword arguments in, the terminal dict
    out)."""
    require_last(op, next_operation)
    state, _ = chain_state({**kwargs, "ll_feed_dict": ll_feed_dict,
                            "ul_feed_dict": ul_feed_dict, "auxiliary_model": auxiliary_model})
    if state.ll_objective is None:
        state = state.replace(ll_objective=op.ll_objective)
    if state.ll_lr is None and op.runtime.ll_lr is not None:
        state = state.replace(ll_lr=op.runtime.ll_lr)
    return result_dict(implicit_step(op, state, solve, damping))


# -- the adapters --------------------------------------------------------------------------
class _HyperGradientAdapter:
    """``step`` of an API-1 hyper-gradient operator: its ``compute_gradients``."""

    def step(self, state: ChainState):
        return chain_step(self, state)


class _DynamicsAdapter:
    """``step`` of an API-1 dynamics operator: its ``optimize``."""

    def step(self, state: DynamicsState):
        return dynamics_step(self, state)


class _FirstOrderAdapter:
    """``step`` of an API-1 first-order solver: its ``optimize``."""

    def step(self, state: SolveState) -> Result:
        return first_order_step(self, state)


_ADAPTERS = {"hypergradient": _HyperGradientAdapter, "dynamics": _DynamicsAdapter,
             "first_order": _FirstOrderAdapter}


def adapt(cls: type) -> type | None:
    """The API-2 operator of an API-1 class: a subclass whose ``step`` calls its keyword
    method (and whose ``configure_dynamics`` may set attributes on the plan, as API 1's
    did); None when ``cls`` does not implement its kind's keyword method."""
    from ..contract.operators import Operator

    if not implements_api1(cls):
        return None
    adapter = _ADAPTERS[cls.kind]
    own_plan = cls.configure_dynamics.__func__
    if own_plan is Operator.configure_dynamics.__func__:
        own_plan = None

    def configure_dynamics(klass, plan: DynamicsPlan, config):
        mutable = MutablePlan(plan)
        out = own_plan(klass, mutable, config) if own_plan is not None else None
        if isinstance(out, DynamicsPlan):
            return out
        if isinstance(out, MutablePlan):
            mutable = out
        plan = mutable.frozen()
        return plan.replace(track=True) if klass.needs_trajectory else plan

    body = {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__, "api1_original": cls,
            "configure_dynamics": classmethod(configure_dynamics),
            "api_version": classmethod(lambda klass: 1)}
    return type(cls.__name__, (adapter, cls), body)


class HyperGradientOperator(SEED_INIT["hypergradient"], HyperGradient):
    """API 1's base of hyper-gradient operators (``jboat_core.HyperGradientOperator``
    before 0.2): the seed constructor ``(ll_objective, ul_objective, ll_model, ul_model,
    ll_var, ul_var, solver_config)``; a subclass implements ``compute_gradients`` (API 1,
    run through ``adapt``) or ``step`` (API 2)."""
