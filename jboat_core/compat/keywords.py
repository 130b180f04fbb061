"""JBOAT's keyword form of API 2's types, for the seed API and API-1 plugins.

JBOAT's operators pass each other keyword arguments (``compute_gradients(ll_feed_dict,
ul_feed_dict, auxiliary_model, max_loss_iter, ...)``, ``optimize(...)``) and end with a
dict (``{"upper_loss", "hyper_gradient_finished": True, "hyper_gradients", ...}``). The
same data are API 2's ``ChainState``, ``DynamicsState`` and ``Result``; the functions here
translate, both ways, so that the contract itself knows nothing of the keyword form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..contract.protocol import (OUTPUT_FIELDS, RESULT_FIELDS, ChainState, DynamicsPlan,
                                 DynamicsState, Result, SolveState)
from ..errors import OperatorRuntimeError

#: ``ChainState`` fields and their names in JBOAT's keyword protocol.
CHAIN_KWARGS = {"ll_feed": "ll_feed_dict", "ul_feed": "ul_feed_dict",
                "fmodel": "auxiliary_model", "k_star": "max_loss_iter",
                "point": "lower_model_params", "wrt": "hparams",
                "ll_objective": "lower_objective", "ll_lr": "ll_lr",
                "init_gradients": "init_gradients", "current_iter": "current_iter",
                "tangents": "tangents", "next_operation": "next_operation"}
_OPTIONAL = ("point", "wrt", "ll_objective", "ll_lr", "tangents")


def chain_kwargs(state: ChainState, extras: Mapping | None = None) -> dict:
    """``state`` as ``compute_gradients(**kwargs)`` arguments (``extras``: keys API 2 does
    not name, carried between API-1 plugins unchanged)."""
    kw = {**(extras or {}), "hyper_gradient_finished": False}
    for name, key in CHAIN_KWARGS.items():
        value = getattr(state, name)
        if name in ("point", "wrt") and value is not None:
            value = list(value)
        if value is not None or name not in _OPTIONAL:
            kw[key] = value
    return kw


def chain_state(kwargs: Mapping) -> tuple[ChainState, dict]:
    """``(ChainState, extras)`` from JBOAT's keyword form (a seed call or an API-1
    pass-through); ``TypeError`` naming the missing arguments."""
    missing = [k for k in ("ll_feed_dict", "ul_feed_dict", "auxiliary_model") if k not in kwargs]
    if missing:
        raise TypeError(f"compute_gradients() missing keyword arguments: {', '.join(missing)}")
    known = set(CHAIN_KWARGS.values()) | {"hyper_gradient_finished"}
    values = {name: kwargs.get(key) for name, key in CHAIN_KWARGS.items()}
    k_star = values["k_star"]
    values["k_star"] = k_star if isinstance(k_star, int) and not isinstance(k_star, bool) else -1
    values["init_gradients"] = bool(values["init_gradients"])
    values["current_iter"] = int(values["current_iter"] or 0)
    for key in ("point", "wrt"):
        values[key] = tuple(values[key]) if values[key] is not None else None
    return ChainState(**values), {k: v for k, v in kwargs.items() if k not in known}


def dynamics_kwargs(state: DynamicsState) -> dict:
    """``state`` as ``optimize(**kwargs)`` arguments of an API-1 dynamics operator."""
    kw = dict(ll_feed_dict=state.ll_feed, ul_feed_dict=state.ul_feed,
              auxiliary_model=state.fmodel, auxiliary_opt=state.dopt,
              current_iter=state.current_iter, plan=state.plan,
              next_operation=state.next_operation)
    if state.aggregate is not None:
        kw.update(gda_loss=state.aggregate, alpha=state.alpha_at(0),
                  alpha_decay=(state.alpha_at(1) / state.alpha_at(0)))
    return kw


def dynamics_updated(state: DynamicsState, kwargs: Mapping) -> DynamicsState:
    """``state`` updated from an API-1 dynamics operator's pass-through dict."""
    changes: dict[str, Any] = {}
    if kwargs.get("gda_loss") is not None:
        alpha, decay = float(kwargs.get("alpha", 0.5)), float(kwargs.get("alpha_decay", 1.0))
        changes.update(aggregate=kwargs["gda_loss"], alpha_at=lambda k: alpha * decay ** k)
    if isinstance(kwargs.get("max_loss_iter"), int):
        changes["k_star"] = kwargs["max_loss_iter"]
    return state.replace(**changes)


def result_dict(res: Result) -> dict:
    """JBOAT's terminal dict (``hyper_gradient_finished`` = True, every value field)."""
    return {"hyper_gradient_finished": True, **{n: getattr(res, n) for n in RESULT_FIELDS}}


def result_from_dict(data: Mapping, producer: str = "operator") -> Result:
    """A ``Result`` from JBOAT's terminal dict; unknown keys are left."""
    if "upper_loss" not in data or data.get("hyper_gradients") is None:
        raise OperatorRuntimeError(producer, "result", "a terminal result needs upper_loss "
                                   "and hyper_gradients (one per upper variable); got keys "
                                   f"{sorted(data)}")
    values = {name: data.get(name) for name in RESULT_FIELDS}
    for name in OUTPUT_FIELDS:
        if values[name] is not None:
            values[name] = list(values[name])
    return Result(**values)


#: The keyword method of API 1, per kind.
API1_METHOD = {"hypergradient": "compute_gradients", "dynamics": "optimize",
               "first_order": "optimize"}


def implements_api1(cls) -> bool:
    """Whether ``cls`` implements its kind's API-1 keyword method."""
    return callable(getattr(cls, API1_METHOD.get(cls.kind, ""), None))


def chain_step(op, state: ChainState):
    """``op.compute_gradients`` (API 1) on ``state`` as keywords; its answer as the next
    ``ChainState`` (keys API 2 does not name carried along) or the ``Result``."""
    out = op.compute_gradients(**chain_kwargs(state, state.__dict__.get("_extras")))
    if isinstance(out, Mapping) and out.get("hyper_gradient_finished"):
        return result_from_dict(out, op.name)
    if isinstance(out, Mapping):
        nxt, extras = chain_state(out)
        object.__setattr__(nxt, "_extras", extras)  # keys API 2 does not name, carried
        return nxt
    return out


def dynamics_step(op, state: DynamicsState):
    """``op.optimize`` (API 1) on ``state`` as keywords; its answer (a pass-through dict,
    ``max_loss_iter`` or a terminal dict, and the attributes ``lower_loss`` /
    ``lower_objective``) as the next ``DynamicsState`` or the ``Result``."""
    out = op.optimize(**dynamics_kwargs(state))
    if isinstance(out, Mapping) and out.get("hyper_gradient_finished"):
        return result_from_dict(out, op.name)
    if isinstance(out, Mapping):
        return dynamics_updated(state, out)
    return state.replace(k_star=out if isinstance(out, int) else -1,
                         lower_loss=op.__dict__.get("lower_loss"),
                         ll_objective=op.__dict__.get("lower_objective"))


def first_order_step(op, state: SolveState) -> Result:
    """``op.optimize(ll_feed_dict, ul_feed_dict, current_iter)`` (API 1) as a ``Result``."""
    out = op.optimize(state.ll_feed, state.ul_feed, state.current_iter)
    return out if isinstance(out, Result) else result_from_dict(out, op.name)


class MutablePlan:
    """A writable copy of a ``DynamicsPlan`` for API-1 ``configure_dynamics``, which set
    attributes on the plan instead of returning a new one."""

    def __init__(self, plan: DynamicsPlan):
        self.__dict__.update(plan.__dict__)  # flat fields: no deep copy

    def replace(self, **changes) -> DynamicsPlan:
        """API 2's way, on this copy: a frozen plan with ``changes``."""
        return DynamicsPlan(**self.__dict__).replace(**changes)

    def frozen(self) -> DynamicsPlan:
        """The plan with what was set on this copy (``first_order`` is
        ``stop_inner_grads`` since 0.2)."""
        values = dict(self.__dict__)
        if "first_order" in values:
            values["stop_inner_grads"] = values.pop("first_order")
        return DynamicsPlan(**values)
