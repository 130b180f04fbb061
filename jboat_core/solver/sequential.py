"""Composition of operators into chains: the seed's ``SequentialHG`` (hyper-gradient
operators) and upstream's ``SequentialDS`` (dynamics), both on the typed step protocol
(``jboat_core.contract.protocol``)."""

from __future__ import annotations

from ..contract.protocol import ChainState, DynamicsPlan, DynamicsState, Result
from ..errors import OperatorRuntimeError
from ..plugins.ordering import validate_and_adjust_order
from ..plugins.registry import Registry, get_registry

_CTOR_KEYS = ("ll_objective", "ul_objective", "ll_model", "ul_model", "ll_var", "ul_var",
              "solver_config")


class SequentialHG:
    """Run hyper-gradient operators in order, passing each one's state to the next.

    Parameters
    ----------
    ordered_instances : list of HyperGradient
        Operator instances in execution order (see ``validate_and_adjust_order``).
    custom_order : list of str
        The user's operator names, as given (the seed's signature; the execution order is
        that of ``ordered_instances``).
    """

    def __init__(self, ordered_instances, custom_order):
        self.gradient_instances = list(ordered_instances)
        self.custom_order = list(custom_order)
        self.order = [type(op).name for op in self.gradient_instances]

    def dynamics_plan(self, record_loss: bool = False) -> DynamicsPlan:
        """What the chain needs from the lower-level dynamics (tracking, PTT, FOA, RGT):
        every operator's ``configure_dynamics``, merged."""
        plan = DynamicsPlan(record_loss=record_loss)
        for op in self.gradient_instances:
            plan = type(op).plan_with(plan, op.config)
        return plan

    def run(self, state: ChainState) -> Result:
        """The chain on ``state``: each modifier's ``ChainState`` goes to the next
        operator; the last one's ``Result`` is returned."""
        return self.run_traced(state)[0]

    def run_traced(self, state: ChainState) -> tuple[Result, ChainState]:
        """``run``, and the state the terminal operator received (its lower point)."""
        out: ChainState | Result = state
        last = state
        for idx, op in enumerate(self.gradient_instances):
            nxt = self.order[idx + 1] if idx + 1 < len(self.order) else None
            last = out.replace(next_operation=nxt)
            out = op.step(last)
            if nxt is not None and not isinstance(out, ChainState):
                raise OperatorRuntimeError(
                    type(op).name, "chain", f"returned {type(out).__name__} but {nxt} "
                    "follows; a modifier returns the next operator's ChainState "
                    "(state.replace(...))")
            if nxt is None and not isinstance(out, Result):
                raise OperatorRuntimeError(
                    type(op).name, "chain", f"is last in the chain but returned "
                    f"{type(out).__name__}, not a Result (jboat_core.contract.result(...))")
        return out, last

    def compute_gradients(self, **kwargs) -> list[dict]:
        """The seed's keyword form of ``run``.

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
        result = self.run(ChainState.from_kwargs(kwargs))
        return [{"gradient_operator_results": result.as_dict()}]


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


def run_dynamics(dynamics, state: DynamicsState) -> DynamicsState | Result:
    """Run the dynamics operators in order on ``state``; returns the last one's output
    (the state for the chain, or DM's ``Result``)."""
    names = [type(d).name for d in dynamics]
    out: DynamicsState | Result = state
    for i, op in enumerate(dynamics):
        nxt = names[i + 1] if i + 1 < len(names) else None
        if isinstance(out, Result):
            raise OperatorRuntimeError(names[i - 1], "dynamics", f"returned a Result but "
                                       f"{op.name} follows; only the last dynamics operator "
                                       "may end the iteration")
        out = op.step(out.replace(next_operation=nxt))
        if not isinstance(out, (DynamicsState, Result)):
            raise OperatorRuntimeError(op.name, "dynamics", f"returned {type(out).__name__}; "
                                       "step returns the DynamicsState (state.replace(...)) "
                                       "or a Result")
    return out


_DS_KEYS = ("ll_objective", "ul_objective", "ll_model", "ul_model", "lower_loop",
            "solver_config")


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

    def optimize(self, ll_feed_dict, ul_feed_dict, auxiliary_model, auxiliary_opt,
                 current_iter=0, plan: DynamicsPlan | None = None, **kwargs):
        """Run the dynamics on ``auxiliary_model`` (a ``FunctionalModel``); returns
        ``max_loss_iter`` (k*, or -1), or DM's terminal dict."""
        out = run_dynamics(self.gradient_instances, DynamicsState(
            ll_feed_dict, ul_feed_dict, auxiliary_model, auxiliary_opt,
            plan or DynamicsPlan(), int(current_iter)))
        return out.as_dict() if isinstance(out, Result) else out.k_star


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
