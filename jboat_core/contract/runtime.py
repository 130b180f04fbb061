"""The typed runtime context every operator receives: optimizers, variables, the
aggregated objective and the composition it runs in (never imports Jittor).

``Problem`` builds one ``Runtime`` and hands it to every operator as ``solver_config``.
Operators built the seed's way, with an upstream ``boat_config``-shaped dict
(``{"CG": {...}, "lower_level_opt": opt, "gda_loss": fn, ...}``), get the same object
through ``Runtime.coerce``, so no operator fishes in a dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .metadata import split_names

#: Upstream ``boat_config`` keys of runtime objects, and the ``Runtime`` field of each.
UPSTREAM_KEYS = {"lower_level_opt": "ll_opt", "upper_level_opt": "ul_opt",
                 "lower_level_var": "ll_var", "upper_level_var": "ul_var",
                 "lower_level_model": "ll_model", "upper_level_model": "ul_model"}


def _one_process():
    from ..platform.parallel import Parallel
    return Parallel()


def _names(value) -> tuple[str, ...]:
    return tuple(split_names(value))


@dataclass
class Runtime:
    """What an operator may use besides its own validated config section.

    Attributes
    ----------
    operators : mapping
        Config sections by operator name (validated models or raw dicts).
    ll_opt, ul_opt : jittor.optim.Optimizer or None
        The user's lower- and upper-level optimizers.
    ll_var, ul_var : list of jittor.Var
        Lower variables (identity-bound, in the lower model's order) and upper variables.
    gda_loss : callable or None
        GDA's aggregated objective ``phi(ll_feed, ul_feed, ul_model, ll_model, **kw)``.
    gm_op, na_op, fo_op : tuple of str
        The composition, in execution order.
    lower_iters : int
        K, the number of lower-level steps per outer iteration.
    ll_model, ul_model : jittor.Module or None
    ll_objective, ul_objective : callable or None
        f and F (``build`` hands them to every operator's constructor).
    solver : SolverConfig or None
        The validated solver config, when built by ``Problem``.
    parallel : Parallel
        Where to reduce across processes (``jboat_core.platform.parallel``; one process: nothing).
    """

    operators: Mapping[str, Any] = field(default_factory=dict)
    ll_opt: Any = None
    ul_opt: Any = None
    ll_var: list = field(default_factory=list)
    ul_var: list = field(default_factory=list)
    gda_loss: Callable | None = None
    gm_op: tuple[str, ...] = ()
    na_op: tuple[str, ...] = ()
    fo_op: tuple[str, ...] = ()
    lower_iters: int = 10
    ll_model: Any = None
    ul_model: Any = None
    ll_objective: Callable | None = None
    ul_objective: Callable | None = None
    solver: Any = None
    parallel: Any = field(default_factory=lambda: _one_process())

    @property
    def ll_lr(self) -> float | None:
        """eta, the lower optimizer's learning rate (None without a lower optimizer)."""
        return float(self.ll_opt.lr) if self.ll_opt is not None else None

    @property
    def ul_lr(self) -> float | None:
        """The upper optimizer's base learning rate (None without one)."""
        return float(self.ul_opt.lr) if self.ul_opt is not None else None

    def get(self, key: str, default=None):
        """Upstream-style lookup (``runtime.get("gda_loss")``) of a field or section."""
        field_name = UPSTREAM_KEYS.get(key, key)
        if field_name in self.__dataclass_fields__ and field_name != "operators":
            value = getattr(self, field_name)
            return default if value is None else value
        return self.operators.get(key, default)

    @classmethod
    def coerce(cls, solver_config: Any) -> "Runtime":
        """A ``Runtime`` from what an operator was constructed with: a ``Runtime`` (as
        is), a ``SolverConfig`` (its sections and composition), an upstream-shaped dict
        (sections plus runtime objects under upstream or jboat keys) or None."""
        if isinstance(solver_config, Runtime):
            return solver_config
        if solver_config is None:
            return cls()
        if isinstance(solver_config, Mapping):
            return cls._from_mapping(solver_config)
        return cls(operators=dict(getattr(solver_config, "operators", {}) or {}),
                   gm_op=_names(getattr(solver_config, "gm_op", None)),
                   na_op=_names(getattr(solver_config, "na_op", None)),
                   fo_op=_names(getattr(solver_config, "fo_op", None)),
                   lower_iters=int(getattr(solver_config, "lower_iters", 10)),
                   solver=solver_config)

    @classmethod
    def _from_mapping(cls, data: Mapping) -> "Runtime":
        kw: dict[str, Any] = {}
        for key, value in data.items():
            name = UPSTREAM_KEYS.get(key, key)
            if name in ("ll_opt", "ul_opt", "ll_model", "ul_model", "gda_loss",
                        "ll_objective", "ul_objective"):
                kw[name] = value
            elif name in ("ll_var", "ul_var"):
                kw[name] = list(value or [])
            elif name in ("gm_op", "na_op", "fo_op"):
                kw[name] = _names(value)
            elif name == "lower_iters":
                kw[name] = int(value)
        return cls(operators=data, **kw)
