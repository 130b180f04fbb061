"""Differentiable lower-level optimizers (SGD with momentum/weight decay, Adam).

Each step is out of place, ``y_{k+1} = U(y_k, g_k, state_k)``, so the new snapshot is a new
Var whose graph reaches y_k (and x through g_k). Hyper-parameters are read per parameter
group from the user's real Jittor optimizer, with the same update formulas as
``jittor.optim.SGD`` / ``jittor.optim.Adam``, and so is its state (momentum buffers, Adam's
moments and step count, as constants): when the solver warm-starts y_0 with y_K it also
writes the twin's final state back (``write_back``), so T outer iterations of K inner
steps continue the lower optimizer exactly as T K steps of it would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..platform._jittor import jittor
from ..errors import OperatorRuntimeError


def _scalar(value):
    """A hyper-parameter as the update uses it: a float, or a ``jittor.Var`` kept as is
    (a learned learning rate or momentum: an upper variable the steps depend on)."""
    if isinstance(value, (int, float)):
        return float(value)
    return value if isinstance(value, jittor().Var) else float(value)


def _safe_sqrt(jt, v):
    """sqrt(v) with a finite derivative at v = 0: ``sqrt(max(v, tiny))``, tiny the
    smallest normal number of v's dtype (the same value wherever it matters: beside Adam's
    eps, sqrt(tiny) is nothing). Adam's second moment is exactly 0 for a coordinate whose
    gradient is 0 (an unused parameter, a stationary point): sqrt's derivative there is
    infinite, and the reverse pass computed 0 * inf = NaN for the hyper-gradient."""
    import numpy as np

    from .autodiff import constant

    return jt.sqrt(jt.maximum(v, constant(float(np.finfo(str(v.dtype)).tiny), v)))


def _is_zero(value) -> bool:
    return isinstance(value, float) and value == 0.0


@dataclass
class _Group:
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


class DifferentiableOptimizer:
    """Base: maps each functional parameter to its group and keeps per-parameter state.

    Parameters
    ----------
    groups : list of _Group or None
        One entry per lower-level parameter (``None``: the parameter is not optimized).
    """

    #: State keys of the twin and the ``param_groups`` lists of the real optimizer holding them.
    STATE_KEYS: dict[str, str] = {}

    def __init__(self, groups, places=None, n_step: int = 0, reduce=None):
        self.groups = list(groups)
        self.reduce = reduce  # e.g. Parallel.data_mean: the lower gradient across processes
        self.state: list[dict] = [{} for _ in self.groups]
        self.places = list(places) if places is not None else [None] * len(self.groups)
        self.n_step = self.start_step = int(n_step)
        self._consts: dict = {}  # float64 copies of the hyper-parameters (``_c``)
        self._plain_consts: list | None = None  # plain_update's learning rates (``_c``)

    @classmethod
    def from_optimizer(cls, optimizer, params, reduce=None) -> "DifferentiableOptimizer":
        """Build the differentiable twin of a ``jittor.optim`` optimizer over ``params``
        (``reduce``: applied to each step's gradients, e.g. the mean over processes)."""
        jt = jittor()
        kinds = {jt.optim.SGD: DifferentiableSGD, jt.optim.Adam: DifferentiableAdam}
        impl = kinds.get(type(optimizer))
        if impl is None:
            raise TypeError(f"lower-level optimizer {type(optimizer).__name__} has no "
                            "differentiable version; use jittor.optim.SGD or jittor.optim.Adam")
        where = {}
        for pg in optimizer.param_groups:
            for j, p in enumerate(pg["params"]):
                where[id(p)] = (pg, j)
        groups, places, made = [], [], {}
        for p in params:
            pg, j = where.get(id(p), (None, None))
            places.append((pg, j) if pg is not None else None)
            if pg is None:
                groups.append(None)
                continue
            grp = made.get(id(pg))  # one _Group per param group, shared by its parameters
            if grp is None:
                def get(k, default=None, pg=pg):
                    return pg.get(k, getattr(optimizer, k, default))
                grp = made[id(pg)] = _Group(
                    lr=_scalar(get("lr")), momentum=_scalar(get("momentum", 0.0)),
                    weight_decay=float(get("weight_decay", 0.0)),
                    dampening=float(get("dampening", 0.0)), nesterov=bool(get("nesterov", False)),
                    betas=tuple(get("betas", (0.9, 0.999))), eps=float(get("eps", 1e-8)))
            groups.append(grp)
        twin = impl(groups, places, int(getattr(optimizer, "n_step", 0)), reduce)
        twin._read_state()
        return twin

    def fresh(self) -> "DifferentiableOptimizer":
        """A new twin with the same groups, started again from the real optimizer's state
        (as at construction)."""
        twin = type(self)(self.groups, self.places, self.start_step, self.reduce)
        twin._read_state()
        return twin

    def _read_state(self) -> None:
        """Start from the real optimizer's state (constants)."""
        for state, place in zip(self.state, self.places):
            if place is None:
                continue
            pg, j = place
            for key, group_key in self.STATE_KEYS.items():
                values = pg.get(group_key)
                if values is not None and j < len(values):
                    state[key] = values[j].detach()

    def write_back(self, optimizer) -> None:
        """Give the real optimizer the twin's final state and step count (warm start)."""
        for state, place in zip(self.state, self.places):
            if place is None:
                continue
            pg, j = place
            for key, group_key in self.STATE_KEYS.items():
                if key in state and group_key in pg:
                    pg[group_key][j].update(state[key].detach())
        if hasattr(optimizer, "n_step"):
            optimizer.n_step = self.n_step

    # -- checkpoints of the inner state (checkpointed reverse mode) ---------------------
    def snapshot(self) -> "Snapshot":
        """The state now (detached values, step count), to restart a twin from."""
        keys = [(i, k) for i, st in enumerate(self.state) for k in sorted(st)]
        return Snapshot(self, keys, [self.state[i][k].detach() for i, k in keys], self.n_step)

    def state_vars(self, keys) -> list:
        """The state Vars named by ``keys`` ((parameter index, key) pairs)."""
        return [self.state[i][k] for i, k in keys]

    @property
    def lr(self) -> float:
        """Learning rate of the first optimized parameter (eta of the formulas)."""
        for g in self.groups:
            if g is not None:
                return g.lr if isinstance(g.lr, float) else float(g.lr.item())
        return 0.0

    def step(self, fmodel, loss, *, stop_grads: bool = False, detach: bool = False,
             op: str = "dynamics", where: str = "step", first_order: bool | None = None):
        """One differentiable step on ``fmodel``'s newest snapshot.

        Parameters
        ----------
        fmodel : FunctionalModel
        loss : jittor.Var
            Scalar lower-level objective at the newest snapshot.
        stop_grads : bool
            Stop gradients through the inner gradient (FOA): dy_{k+1}/dy_k = I.
        detach : bool
            Take the step outside the graph (RGT truncation, untracked loops).
        first_order : bool, optional
            Deprecated name of ``stop_grads`` (until 0.3).

        Returns
        -------
        list of jittor.Var
            The new snapshot (also recorded in ``fmodel``).
        """
        if first_order is not None:
            import warnings

            warnings.warn("DifferentiableOptimizer.step(first_order=...) is now "
                          "stop_grads=...; the old name goes in jboat 0.3", DeprecationWarning,
                          stacklevel=2)
            stop_grads = stop_grads or bool(first_order)
        if loss.numel() != 1:
            raise OperatorRuntimeError(op, where, f"the lower-level objective returned shape "
                                       f"{list(loss.shape)}; it must return a scalar")
        params = fmodel.parameters()
        grads = jittor().grad(loss, params)
        if self.reduce is not None:
            grads = self.reduce(list(grads))
        if stop_grads or detach:
            grads = [g.detach() for g in grads]
        self.n_step += 1
        cut = detach or not fmodel.track
        if self.plain_lrs() is not None:  # plain SGD everywhere: nothing else per parameter
            new = self.plain_update(params, grads, cut)
            fmodel.update_params(new)
            return new
        new = []
        for i, p in enumerate(params):
            grp = self.groups[i]
            if grp is None:
                new.append(p)
                continue
            state = self.state[i]
            q = self._update(p, grads[i], grp, state)
            if cut:
                q = q.detach()
                if state:
                    self.state[i] = {k: v.detach() for k, v in state.items()}
            new.append(q)
        fmodel.update_params(new)
        return new

    def _c(self, value, like):
        """``value`` exact in ``like``'s dtype (``autodiff.constant``), made once per twin."""
        if like.dtype != "float64" or isinstance(value, jittor().Var):
            return value
        key = float(value)
        c = self._consts.get(key)
        if c is None:
            from .autodiff import constant
            c = self._consts[key] = constant(key, like)
        return c

    def plain_lrs(self):
        """The learning rates when every parameter takes a plain step y - lr g (SGD
        without momentum, weight decay or dampening: no state), else None. Found once."""
        plain = getattr(self, "_plain_lrs", False)
        if plain is False:
            plain = None
            if type(self) is DifferentiableSGD and all(
                    g is not None and not g.weight_decay and _is_zero(g.momentum)
                    and g.dampening == 0 for g in self.groups):
                plain = [g.lr for g in self.groups]
            self._plain_lrs = plain
        return plain

    def plain_update(self, params, grads, cut: bool) -> list:
        """``y - lr g`` for every parameter, detached when ``cut``: the whole step when
        ``plain_lrs()`` is not None (the caller counts ``n_step``). The learning rates as
        constants in the parameters' dtypes are made at the first call of this twin (its
        iterates keep the dtypes of y_0)."""
        lrs = self._plain_consts
        if lrs is None:
            lrs = self._plain_consts = [self._c(lr, p) for lr, p in zip(self.plain_lrs(),
                                                                         params)]
        if cut:
            return [(p - g * lr).detach() for p, g, lr in zip(params, grads, lrs)]
        return [p - g * lr for p, g, lr in zip(params, grads, lrs)]

    def _update(self, p, g, grp: _Group, state: dict):  # pragma: no cover - abstract
        raise NotImplementedError


class Snapshot:
    """A twin's state at one inner step: ``restore()`` gives a twin that continues from it
    (its state Vars are ``leaves``: the reverse pass differentiates with respect to them).

    Attributes
    ----------
    keys : list of (int, str)
        (parameter index, state key) of each value, in order.
    leaves : list of jittor.Var
        The detached state values.
    n_step : int
    """

    def __init__(self, opt, keys, values, n_step):
        self._opt, self.keys, self.leaves, self.n_step = opt, keys, values, n_step

    def restore(self, leaves: bool = False) -> "DifferentiableOptimizer":
        """A new twin (same type, groups and reduction) at this state."""
        opt = self._opt
        twin = type(opt)(opt.groups, opt.places, opt.start_step, opt.reduce)
        twin.n_step = self.n_step
        for (i, key), value in zip(self.keys, self.leaves):
            twin.state[i][key] = value
        return twin


class DifferentiableSGD(DifferentiableOptimizer):
    """y <- y - lr * v, v = momentum * v + (1 - dampening) * (g + wd * y) (Nesterov: y -
    lr * (d + momentum * v)), exactly ``jittor.optim.SGD``."""

    STATE_KEYS = {"v": "values"}

    def _update(self, p, g, grp, state):
        c = self._c
        d = g + p * c(grp.weight_decay, p) if grp.weight_decay else g
        if _is_zero(grp.momentum) and grp.dampening == 0:
            return p - d * c(grp.lr, p)
        v = d * c(1 - grp.dampening, p)
        if "v" in state:
            v = state["v"] * c(grp.momentum, p) + v
        state["v"] = v
        step = d + v * c(grp.momentum, p) if grp.nesterov else v
        return p - step * c(grp.lr, p)


class DifferentiableAdam(DifferentiableOptimizer):
    """Adam as ``jittor.optim.Adam``: m, v moments, step lr*sqrt(1-b1^n)/(1-b0^n)."""

    STATE_KEYS = {"m": "m", "v": "values"}

    def _update(self, p, g, grp, state):
        jt, c = jittor(), self._c
        b0, b1 = grp.betas
        d = g + p * c(grp.weight_decay, p) if grp.weight_decay else g
        m = d * c(1 - b0, p)
        if "m" in state:
            m = m + state["m"] * c(b0, p)
        v = d * d * c(1 - b1, p)
        if "v" in state:
            v = v + state["v"] * c(b1, p)
        state["m"], state["v"] = m, v
        n = self.n_step
        step_size = grp.lr * math.sqrt(1 - b1 ** n) / (1 - b0 ** n)
        return p - m * c(step_size, p) / (_safe_sqrt(jt, v) + c(grp.eps, p))
