"""The typed runtime context every operator is built from: optimizers, variables, the
objectives, the aggregated objective and the composition it runs in (never imports
Jittor). ``Problem`` builds one ``Runtime``; operators built the seed's way, from an
upstream ``boat_config``-shaped dict, get one from ``jboat_core.compat``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


#: Upstream ``boat_config`` keys of runtime objects, and the ``Runtime`` field of each.
UPSTREAM_KEYS = {"lower_level_opt": "ll_opt", "upper_level_opt": "ul_opt",
                 "lower_level_var": "ll_var", "upper_level_var": "ul_var",
                 "lower_level_model": "ll_model", "upper_level_model": "ul_model"}


def _one_process():
    from ..platform.parallel import Parallel
    return Parallel()


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
    ll_solver : LowerSolver or None
        The user's own lower solver (``custom_root`` / ``custom_fixed_point``), run by
        the dynamics operator SOLVED.
    registry : Registry or None
        Where operators find components by name (linear solvers, prox maps:
        ``jboat_core.contract.components``); None: the process-wide registry.
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
    registry: Any = None
    ll_solver: Any = None

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
