"""Composition of hyper-gradient operators into one chain (the seed's ``SequentialHG``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import OperatorRuntimeError
from .operators import DynamicsPlan
from .ordering import validate_and_adjust_order
from .registry import Registry, get_registry

_CTOR_KEYS = ("ll_objective", "ul_objective", "ll_model", "ul_model", "ll_var", "ul_var",
              "solver_config")


class SequentialHG:
    """Run hyper-gradient operators in order, passing each result to the next.

    Parameters
    ----------
    ordered_instances : list of HyperGradient
        Operator instances in execution order (see ``validate_and_adjust_order``).
    custom_order : list of str
        The user's operator names (kept for reference; ``next_operation`` is taken from
        the execution order, not from this list).
    """

    def __init__(self, ordered_instances, custom_order):
        self.gradient_instances = list(ordered_instances)
        self.custom_order = list(custom_order)
        self.order = [type(op).name for op in self.gradient_instances]

    def dynamics_plan(self) -> DynamicsPlan:
        """What the chain needs from the lower-level dynamics (tracking, PTT, FOA, RGT)."""
        plan = DynamicsPlan()
        for op in self.gradient_instances:
            type(op).configure_dynamics(plan, op.config)
        return plan

    def compute_gradients(self, **kwargs) -> list[dict]:
        """Compute hyper-gradients sequentially.

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
        state: dict[str, Any] = dict(kwargs)
        state.pop("next_operation", None)
        result: Any = None
        for idx, op in enumerate(self.gradient_instances):
            nxt = self.order[idx + 1] if idx + 1 < len(self.order) else None
            result = op.compute_gradients(**state, next_operation=nxt)
            finished = isinstance(result, Mapping) and result.get("hyper_gradient_finished")
            if nxt is not None:
                if not isinstance(result, Mapping) or finished:
                    raise OperatorRuntimeError(
                        type(op).name, "chain", f"returned {type(result).__name__} with "
                        f"hyper_gradient_finished={finished!r} but {nxt} follows; a "
                        "pass-through operator must return the next operator's arguments")
                state = dict(result)
                state.pop("next_operation", None)
            elif not finished:
                raise OperatorRuntimeError(
                    type(op).name, "chain", "is last in the chain but did not finish the "
                    "hyper-gradient (hyper_gradient_finished is not True)")
        return [{"gradient_operator_results": result}]


def makes_functional_na_operation(custom_order, registry: Registry | None = None,
                                  **kwargs) -> SequentialHG:
    """Validate ``custom_order``, instantiate the operators and compose them.

    Parameters
    ----------
    custom_order : list of str
        Hyper-gradient operator names, any order.
    **kwargs
        Constructor arguments of every operator: ``ll_objective``, ``ul_objective``,
        ``ll_model``, ``ul_model``, ``ll_var``, ``ul_var``, ``solver_config``.

    Returns
    -------
    SequentialHG
    """
    instances, names = _instantiate(custom_order, "hypergradient", _CTOR_KEYS,
                                    "makes_functional_na_operation", registry, kwargs)
    return SequentialHG(instances, names)


def _instantiate(custom_order, kind: str, keys: tuple, caller: str, registry, kwargs):
    """Validate and order ``custom_order`` (operators of ``kind``), then build each with
    the ``keys`` of ``kwargs``; returns ``(instances, the user's names)``."""
    reg = registry or get_registry()
    missing = [k for k in keys if k not in kwargs]
    if missing:
        raise TypeError(f"{caller}() missing keyword arguments: {', '.join(missing)}")
    adjusted = validate_and_adjust_order(custom_order, kind=kind, registry=reg)
    instances = [reg.get(n, kind=kind).cls(**{k: kwargs[k] for k in keys}) for n in adjusted]
    names = [custom_order] if isinstance(custom_order, str) else list(custom_order)
    return instances, names


_DS_KEYS = ("ll_objective", "ul_objective", "ll_model", "ul_model", "lower_loop",
            "solver_config")


class SequentialDS:
    """Run dynamics operators in order (upstream ``SequentialDS``).

    Parameters
    ----------
    ordered_instances : list of DynamicalSystem
        In execution order (``validate_and_adjust_order(..., kind="dynamics")``).
    custom_order : list of str
        The user's names (kept for reference).
    """

    def __init__(self, ordered_instances, custom_order):
        self.gradient_instances = list(ordered_instances)
        self.custom_order = list(custom_order)
        self.order = [type(op).name for op in self.gradient_instances]

    def optimize(self, ll_feed_dict, ul_feed_dict, auxiliary_model, auxiliary_opt,
                 current_iter=0, plan: DynamicsPlan | None = None, **kwargs):
        """Run the dynamics on ``auxiliary_model`` (a ``FunctionalModel``); returns the last
        operator's output (``max_loss_iter``, or DM's terminal result)."""
        from .engine import run_dynamics
        return run_dynamics(self.gradient_instances, plan or DynamicsPlan(), ll_feed_dict,
                            ul_feed_dict, auxiliary_model, auxiliary_opt, current_iter)


def makes_functional_dynamical_system(custom_order, registry: Registry | None = None,
                                      **kwargs) -> SequentialDS:
    """Validate ``custom_order`` (dynamics operator names), instantiate and compose them.

    Parameters
    ----------
    custom_order : list of str
    **kwargs
        ``ll_objective``, ``ul_objective``, ``ll_model``, ``ul_model``, ``lower_loop``,
        ``solver_config``.
    """
    instances, names = _instantiate(custom_order, "dynamics", _DS_KEYS,
                                    "makes_functional_dynamical_system", registry, kwargs)
    return SequentialDS(instances, names)
