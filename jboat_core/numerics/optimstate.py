"""Applying hyper-gradients through real Jittor optimizers, and their state for checkpoints.

Upstream Jittor applied every upper-level update as plain SGD, whatever the optimizer.
Here the hyper-gradient g is handed to the user's optimizer through the surrogate loss
sum_i <p_i, stop_grad(g_i)>, whose gradient is exactly g: Adam stays Adam, momentum stays
momentum, and the optimizer's own step counter and state advance as usual.

float64 variables: ``jittor.optim.SGD`` and ``Adam`` compute with Python numbers, which
Jittor rounds to float32 (``p - v * lr`` multiplies by a float32 lr; Adam's bias
correction is a float32 ``jt.sqrt``), so their step of a float64 variable is 1e-8
accurate. jboat then takes the same step itself, with the optimizer's own formulas and
state, every number exact in float64 (``_exact_step``); float32 variables, and any other
optimizer, go through the optimizer's ``step`` as before.
"""

from __future__ import annotations

import numpy as np

from ..platform._jittor import jittor


def apply_gradients(optimizer, params, gradients) -> None:
    """One step of ``optimizer`` with the given gradients for ``params`` (every other
    parameter of the optimizer sees a zero gradient)."""
    jt = jittor()
    params, gradients = list(params), list(gradients)
    if type(optimizer) in (jt.optim.SGD, jt.optim.Adam) and any(
            p.dtype == "float64" for p in params):
        _exact_step(optimizer, params, gradients)
        return
    surrogate = None
    for p, g in zip(params, gradients):
        term = (p * g.detach()).sum()
        surrogate = term if surrogate is None else surrogate + term
    if surrogate is not None:
        optimizer.step(surrogate)
        jt.flags.node_order = 0


def _exact_step(optimizer, params, gradients) -> None:
    """``optimizer.step`` of ``jittor.optim.SGD`` / ``Adam`` for these gradients, with every
    number exact in each variable's dtype (see the module docstring)."""
    from .autodiff import constant

    jt = jittor()
    given = {id(p): g.detach() for p, g in zip(params, gradients)}
    optimizer.n_step += 1
    n = float(optimizer.n_step)
    adam = type(optimizer) is jt.optim.Adam
    for pg in optimizer.param_groups:
        get = lambda k: pg.get(k, getattr(optimizer, k, None))  # noqa: E731
        for i, p in enumerate(pg["params"]):
            if p.is_stop_grad():
                continue
            c = lambda value: constant(value, p)  # noqa: E731
            g = given.get(id(p))
            g = g if g is not None else jt.zeros(p.shape, p.dtype)
            wd = get("weight_decay") or 0.0
            d = p * c(wd) + g if wd else g
            if adam:
                b0, b1 = get("betas")
                m, v = pg["m"][i], pg["values"][i]
                m.update((m * c(b0) + d * c(1 - b0)).detach())
                v.update((v * c(b1) + d * d * c(1 - b1)).detach())
                size = get("lr") * (1 - b1 ** n) ** 0.5 / (1 - b0 ** n)
                p.update((p - m * c(size) / (jt.sqrt(v) + c(get("eps")))).detach())
                continue
            mom, damp, lr = get("momentum") or 0.0, get("dampening") or 0.0, get("lr")
            v = pg["values"][i]
            v.update((v * c(mom) + d * c(1 - damp)).detach())
            step = d + v * c(mom) if get("nesterov") else v
            p.update((p - step * c(lr)).detach())


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
            for var, arr in zip(pg[key], arrays):  # in the Var's own dtype (float64 stays)
                var.update(jt.array(np.asarray(arr), str(var.dtype)).stop_grad())
