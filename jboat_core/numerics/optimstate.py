"""Applying hyper-gradients through real Jittor optimizers, and their state for checkpoints.

Upstream Jittor applied every upper-level update as plain SGD, whatever the optimizer.
Here the hyper-gradient g is handed to the user's optimizer through the surrogate loss
sum_i <p_i, stop_grad(g_i)>, whose gradient is exactly g: Adam stays Adam, momentum stays
momentum, and the optimizer's own step counter and state advance as usual.
"""

from __future__ import annotations

import numpy as np

from ..platform._jittor import jittor


def apply_gradients(optimizer, params, gradients) -> None:
    """One step of ``optimizer`` with the given gradients for ``params``."""
    jt = jittor()
    surrogate = None
    for p, g in zip(params, gradients):
        term = (p * g.detach()).sum()
        surrogate = term if surrogate is None else surrogate + term
    if surrogate is not None:
        optimizer.step(surrogate)
        jt.flags.node_order = 0


def set_lr(optimizer, lr: float) -> None:
    """Set the learning rate of the optimizer and of all its parameter groups."""
    optimizer.lr = lr
    for pg in optimizer.param_groups:
        if "lr" in pg:
            pg["lr"] = lr


def state_vars(optimizer) -> list:
    """The Vars of a ``jittor.optim`` optimizer's state (moments, momentum buffers)."""
    if optimizer is None:
        return []
    jt = jittor()
    return [v for pg in optimizer.param_groups for k, vals in pg.items()
            if k not in ("params", "grads") and isinstance(vals, list)
            for v in vals if isinstance(v, jt.Var)]


def optimizer_state(optimizer) -> dict:
    """NumPy copy of a ``jittor.optim`` optimizer's state (step count, lr, moments)."""
    jt = jittor()
    groups = []
    for pg in optimizer.param_groups:
        groups.append({k: [v.numpy().copy() for v in vals] for k, vals in pg.items()
                       if k not in ("params", "grads") and isinstance(vals, list)
                       and all(isinstance(v, jt.Var) for v in vals)})
        groups[-1]["_scalars"] = {k: v for k, v in pg.items()
                                  if isinstance(v, (int, float, tuple)) and k != "params"}
    return {"n_step": int(getattr(optimizer, "n_step", 0)), "lr": float(optimizer.lr),
            "groups": groups}


def load_optimizer_state(optimizer, state: dict, lr: bool = False) -> None:
    """Restore what ``optimizer_state`` saved (same parameter layout): the step count and
    the moments. The hyper-parameters (learning rate, the groups' scalars) stay the
    optimizer's own, from the task file; the saved learning rate is restored only with
    ``lr`` (an operator schedules it, and the checkpoint holds the schedule's value)."""
    jt = jittor()
    optimizer.n_step = state["n_step"]
    if lr:
        set_lr(optimizer, state["lr"])
    for pg, saved in zip(optimizer.param_groups, state["groups"]):
        for key, arrays in saved.items():
            if key == "_scalars":
                continue
            for var, arr in zip(pg[key], arrays):
                var.update(jt.array(np.asarray(arr)).stop_grad())
