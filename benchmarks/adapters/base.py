"""The interface every adapter returns, and the upstream ``boat_config`` both BOAT
packages take (framework-free)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Callable


@dataclass
class Bench:
    """Callables of one configuration; each returns host (NumPy) data, i.e. ends synced.

    Attributes
    ----------
    step : callable
        ``step(K) -> ndarray``: one hyper-iteration with K inner steps (the chain's
        hyper-gradient, flattened).
    grad_unit : callable
        One gradient of f with respect to y at y_0.
    hvp_unit : callable
        One Hessian-vector product of f at y_0.
    info : dict
        Framework versions and settings.
    """

    step: Callable
    grad_unit: Callable
    hvp_unit: Callable
    info: dict


def boat_config(method, K, op_config, ll, ul, ll_var, ul_var, ll_opt, ul_opt, log_name,
                **extra) -> dict:
    """Upstream's ``boat_config`` for NGD (K steps) + ``method``'s chain with the shared
    settings, given one framework's models, variables and optimizers (``extra``: more
    keys, e.g. boat-torch's ``device``)."""
    return {"fo_op": None, "gm_op": ["NGD"], "na_op": list(method.chain),
            "lower_level_model": ll, "upper_level_model": ul,
            "lower_level_var": ll_var, "upper_level_var": ul_var,
            "lower_level_opt": ll_opt, "upper_level_opt": ul_opt,
            "lower_iters": K, "return_grad": True, "accumulate_grad": False,
            "copy_last_param": False,
            "loss_log_path": os.path.join(tempfile.gettempdir(), log_name),
            "GDA": {"alpha_init": 0.5, "alpha_decay": 0.9}, "DI": {"lr": 0.1},
            "DM": {"auxiliary_v_lr": 0.1, "tau": 0.01, "p": 100, "mu0": 0.9, "eta0": 0.5,
                   "strategy": "s1"},
            "RGT": {"truncate_iter": op_config["RGT"]["truncate_iter"]
                    if "RGT" in method.chain else 0},
            "CG": dict(op_config["CG"]), "FD": dict(op_config["FD"]), **extra}
