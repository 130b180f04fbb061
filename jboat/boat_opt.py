"""JBOAT's ``Problem`` lifecycle on jboat: ``Problem(boat_config, loss_config)``, then
``build_ll_solver()``, ``build_ul_solver()`` and ``run_iter(ll_feed_dict, ul_feed_dict,
current_iter) -> (loss, run_time)``, ``plot_losses()``.

A thin layer over ``jboat_core.Problem`` (the modern API), which does the work:
validation, identity-bound variables, the composition, the checks. What this layer keeps
from upstream, and where it differs:

* ``boat_config`` carries the runtime objects under upstream's keys; the dict is read,
  never modified (upstream added ``gda_loss`` and DM's dual variables to it).
* ``loss_config`` entries ``{"function": "module.name", "params": {...}}`` are imported
  from ``sys.path``, as upstream does (the script's folder, then the current directory).
* With ``fo_op`` set, ``gm_op``/``na_op`` are ignored, as upstream ignored them
  (``jboat_core`` refuses the combination instead).
* ``run_iter`` returns ``(hyper_gradients, run_time)`` with ``return_grad`` (this
  iteration's gradients; upstream's accumulated across calls), else ``([record],
  run_time)``; it prints nothing. ``loss_history`` gets ``{"iter", "ll_loss", "ul_loss"}``
  per iteration, the losses at the evaluated point (upstream re-evaluated both on the real
  models after the update, two more forward passes); ``loss_log_path`` receives it as JSON
  on every iteration, as upstream.
* ``_ll_solver.gradient_instances`` are the dynamics operators (JBOAT's L2 example sets
  ``gradient_instances[-1].strategy`` on DM), ``_ul_solver`` the hyper-gradient chain,
  ``_fo_op_solver`` the first-order solver.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from typing import Any

from jboat_core.compat.seed import SequentialDS, SequentialHG

__all__ = ["Problem"]


class Problem:
    """JBOAT's bilevel problem (see the module docstring).

    Parameters
    ----------
    config : dict
        Upstream ``boat_config``: solver settings and operator sections (validated as by
        ``jboat validate``) plus ``lower_level_model``, ``upper_level_model``,
        ``lower_level_var``, ``upper_level_var``, ``lower_level_opt``, ``upper_level_opt``.
    loss_config : dict
        ``lower_level_loss``, ``upper_level_loss`` and (for GDA) ``gda_loss`` entries.
    """

    def __init__(self, config: Mapping[str, Any], loss_config: Mapping[str, Any]):
        self.boat_configs = config
        self._loss_config = loss_config
        self._fo_op = config.get("fo_op")
        self._gm_op = config.get("gm_op")
        self._na_op = config.get("na_op")
        self._ll_model = config.get("lower_level_model")
        self._ul_model = config.get("upper_level_model")
        self._ll_var = config.get("lower_level_var")
        self._ul_var = config.get("upper_level_var")
        self._lower_opt = config.get("lower_level_opt")
        self._upper_opt = config.get("upper_level_opt")
        self._lower_loop = config.get("lower_iters", 10)
        self.loss_log_path = config.get("loss_log_path")
        self.loss_history: list[dict] = []
        self._core = None
        self._ll_solver = self._ul_solver = self._fo_op_solver = None

    def _solver(self):
        if self._core is None:
            from jboat_core.solver.problem import Problem as CoreProblem

            cfg = dict(self.boat_configs)
            if cfg.get("fo_op") not in (None, "", []) and (cfg.get("gm_op") or cfg.get("na_op")):
                warnings.warn("fo_op is set: gm_op and na_op are ignored, as upstream ignored "
                              "them (jboat_core.Problem refuses the combination)", stacklevel=3)
                cfg.pop("gm_op", None)
                cfg.pop("na_op", None)
            self._core = CoreProblem(cfg, self._loss_config)
            self._ll_solver = SequentialDS(self._core.dynamics, list(self._core.config.gm_op))
            chain = self._core.chain
            self._ul_solver = (SequentialHG(chain, list(self._core.config.na_op))
                               if chain else None)
            self._fo_op_solver = self._core.solver
        return self._core

    def build_ll_solver(self):
        """Validate the config and build the composition (upstream built the dynamics
        here). Returns ``self``."""
        self._solver()
        return self

    def build_ul_solver(self):
        """Kept for the upstream lifecycle; the composition is built by
        ``build_ll_solver``. Returns ``self``."""
        self._solver()
        return self

    def run_iter(self, ll_feed_dict, ul_feed_dict, current_iter: int):
        """One outer iteration; returns ``(loss, run_time)`` as upstream (see the module
        docstring for ``loss``)."""
        core = self._solver()
        record = core.run_iter(ll_feed_dict, ul_feed_dict, current_iter)
        self.loss_history.append({"iter": current_iter, "ll_loss": record.lower_loss,
                                  "ul_loss": record.upper_loss})
        if self.loss_log_path:
            self.save_losses()
        if core.config.return_grad:
            return record.hyper_gradients, record.time
        return [dict(record)], record.time

    def save_losses(self) -> None:
        """Write ``loss_history`` to ``loss_log_path`` (atomically)."""
        tmp = f"{self.loss_log_path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.loss_history, fh, allow_nan=False, default=_finite)
        os.replace(tmp, self.loss_log_path)

    def plot_losses(self) -> None:
        """Lower and upper loss per iteration, ``loss_curve.png`` next to
        ``loss_log_path`` (upstream's behaviour)."""
        from jboat_core.run.runner import plot_losses
        from pathlib import Path

        folder = Path(os.path.dirname(self.loss_log_path or "") or ".")
        history = [{"iter": h["iter"], "upper_loss": h["ul_loss"], "lower_loss": h["ll_loss"]}
                   for h in self.loss_history]
        plot_losses(history, folder / "loss_curve.png", "jboat (JBOAT API)")

    def set_track_trajectory(self, track_traj: bool = True) -> None:
        """Accepted for upstream scripts: jboat derives tracking from the operators."""

    def check_status(self) -> None:
        """Validate the configuration (upstream's ``check_status``)."""
        self._solver()

    @property
    def core(self):
        """The ``jboat_core.Problem`` doing the work."""
        return self._solver()


def _finite(value):
    return None
