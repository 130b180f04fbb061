"""Helpers of API 1's keyword protocol between operators (no Jittor import), kept for
plugins written against it; API 2 operators use ``jboat_core.contract.protocol``.

In API 1 pass-through operators hand the next one its keyword arguments; terminal
operators return ``{"upper_loss", "hyper_gradient_finished": True, "hyper_gradients",
"ll_init_gradients"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import OperatorRuntimeError
from .protocol import lower_lr as _lower_lr
from .protocol import result, to_upper  # noqa: F401 - to_upper: API 1's import path


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
    (``lower_objective``, e.g. GDA's phi_alpha), else the operator's ``ll_objective``."""
    return kwargs.get("lower_objective") or op.ll_objective


def _next_kwargs(kwargs: Mapping[str, Any], current: dict, updates: dict) -> dict:
    """``kwargs`` without ``next_operation``, then the current arguments, then ``updates``."""
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
    """eta, the lower-level learning rate: ``ll_lr`` passed by the solver, else the
    runtime's lower optimizer (``solver_config["lower_level_opt"]`` in the upstream shape)."""
    return _lower_lr(op, kwargs.get("ll_lr"))


def finished(op, upper_loss, hyper_gradients, ll_init_gradients=None) -> dict:
    """A terminal result as API 1's dict (``protocol.result``, checked, as a dict)."""
    return result(op, upper_loss, hyper_gradients, ll_init_gradients).as_dict()
