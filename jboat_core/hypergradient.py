"""Abstract bases of the two operator kinds: ``HyperGradient`` (the seed's NA operators)
and ``DynamicalSystem`` (lower-level dynamics such as NGD). Importing this module does
not import Jittor."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from .errors import ConfigError
from .metadata import OperatorMeta


@dataclass
class DynamicsPlan:
    """What the hyper-gradient chain asks of the lower-level dynamics.

    Built by ``dynamics_plan(chain)``: every operator of the chain contributes through
    its ``configure_dynamics`` class method, so the dynamics never look for operator names.

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


def operator_section(solver_config: Any, name: str) -> Any:
    """The raw config section ``name`` of a solver config (dict or ``SolverConfig``)."""
    if solver_config is None:
        return None
    if isinstance(solver_config, Mapping):
        return solver_config.get(name)
    return getattr(solver_config, "operators", {}).get(name)


def validate_section(cls: type[OperatorMeta], section: Any) -> BaseModel:
    """Validate one operator's config section with its own model."""
    if isinstance(section, cls.config_model):
        return section
    try:
        return cls.config_model.model_validate(dict(section or {}))
    except ValidationError as exc:
        from .config import error_lines
        raise ConfigError(error_lines(exc, prefix=(cls.name,))) from None
    except TypeError:
        raise ConfigError([f"{cls.name}: expected a table of settings, got {section!r}"]) from None


class _Operator(OperatorMeta):
    """Shared plumbing of both operator kinds (abstract)."""

    def _store(self, solver_config: Any) -> None:
        self.solver_config = solver_config if solver_config is not None else {}
        self.solver_configs = self.solver_config  # upstream Jittor spelling
        self.config = validate_section(type(self), operator_section(self.solver_config, self.name))

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
    solver_config : dict or SolverConfig
        Solver settings; the operator reads its own section (``solver_config[name]``),
        validated by ``config_model``, as ``self.config``.

    Returns of ``compute_gradients``
    --------------------------------
    A pass-through operator returns the keyword arguments of the next operator
    (``ll_feed_dict``, ``ul_feed_dict``, ``auxiliary_model``, ``max_loss_iter``,
    ``hyper_gradient_finished``, ``lower_model_params``, ``hparams``). A terminal one returns
    ``{"upper_loss": Var, "hyper_gradient_finished": True, "hyper_gradients": [Var per
    ul_var], "ll_init_gradients": [Var per ll_var] or None}``.
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
    solver_config : dict or SolverConfig
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

    def finite_checks(self, outputs=()) -> list:
        """Vars that ``check_finite`` will read, given the iteration's ``outputs`` (upper
        loss, hyper-gradients); the solver computes them in the same Jittor execution as
        the hyper-gradient (default: none)."""
        return []

    def check_finite(self) -> None:
        """Raise ``OperatorRuntimeError`` if the last run diverged (default: no check).
        The solver calls it once the iteration's results (and ``finite_checks()``) are
        computed."""

    def get_state(self) -> dict:
        """State kept across outer iterations, as NumPy arrays (checkpoints); default none."""
        return {}

    def set_state(self, state: dict) -> None:
        """Restore what ``get_state`` returned."""

    @abc.abstractmethod
    def optimize(self, **kwargs):
        """Run (or configure) the lower-level dynamics of one outer iteration."""
