"""Checkpointed reverse mode through an inner loop: the unrolled hyper-gradient in memory
O(K/s + s) instead of O(K) (``checkpoint_every = s`` in the solver config).

The forward pass takes the K inner steps outside the graph and keeps, every s steps, the
inner state: the lower variables, the differentiable optimizer's state (momentum, Adam's
moments, step count) and the buffers (BatchNorm statistics). The reverse pass walks the
segments from the last to the first: it restores a segment's start, recomputes its steps
with the graph (on a functional copy whose buffers are the checkpoint's, so the real
statistics are never updated twice) and pulls the adjoint back through it with one
``jt.grad`` of <outputs, adjoint> (Jittor has no checkpoint API; this is the
vector-Jacobian product segment by segment):

    a_{t0} = (d y_{t1} / d y_{t0})^T a_{t1},   g_x += (d y_{t1} / d x)^T a_{t1}

(with the optimizer state carried alongside y). Jittor executes lazily: the checkpoints are
computed (one sync each) as the forward pass reaches them, and each segment's adjoints
before the next segment is built (one sync each), otherwise the pending graph of every
step would be run in one piece at the end and hold O(K) memory again: 2 K/s syncs per
hyper-gradient, the price of the bound (measured on ridge with d = 5,000, K = 1,000:
11 MB above the start for s = sqrt(K) against 184 MB for the full unroll, at 1.17x its
time; ``benchmarks/horizon.py``). The result equals the full unroll's up to
float32 rounding of a different summation order (bit-identical is not promised: the
recomputed graph is the same, the accumulation order differs). Under MPI the recomputed
steps all-reduce their gradients again, in the same order on every rank.

Griewank A., Walther A., "Algorithm 799: revolve", ACM TOMS 2000 (checkpointing);
Franceschi L. et al., "Forward and reverse gradient-based hyperparameter optimization",
ICML 2017 (reverse-mode hyper-gradients).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ..errors import OperatorRuntimeError
from ..platform._jittor import jittor


def segment_length(every, lower_iters: int) -> int:
    """s for ``checkpoint_every``: an int >= 1, or ``"sqrt"`` for ceil(sqrt(K)); 0/None
    means no checkpointing (the full unroll)."""
    if every in (None, 0):
        return 0
    if every == "sqrt":
        return max(1, math.ceil(math.sqrt(lower_iters)))
    return int(every)


class Tape:
    """The checkpoints of one inner loop and what recomputes its steps.

    Parameters
    ----------
    fmodel : FunctionalModel
        The untracked functional model the forward pass ran on.
    every : int
        s, the segment length.
    step : callable
        ``step(k, model, opt, detach) -> list of Var``: inner step k on ``model`` (the
        newest snapshot) with the twin optimizer ``opt``, exactly as the forward pass took
        it (the same objective, plan and optimizer); returns the new snapshot.
    truncate : int
        Leading steps taken outside the graph (RGT): nothing flows back before them.
    """

    def __init__(self, fmodel, every: int, step: Callable, truncate: int = 0):
        self.fmodel, self.every, self.step, self.truncate = fmodel, int(every), step, truncate
        self.checkpoints: dict[int, tuple] = {}
        self.handed: dict[int, list] = {}
        self.end = 0

    # -- forward ----------------------------------------------------------------------
    def save(self, t: int, opt) -> None:
        """Keep the state at time ``t`` (before inner step t), when t is a segment start."""
        if t % self.every == 0:
            fm = self.fmodel
            params = fm.variables if t == 0 else fm.parameters()
            snap = opt.snapshot()
            buffers = [b.clone().stop_grad() for b in fm.buffers()]
            # executed now: Jittor is lazy, and a pending forward chain keeps every step's
            # graph (and, once run in one piece, every step's tensors) alive
            jittor().sync(list(params) + snap.leaves + buffers)
            self.checkpoints[t] = (list(params), snap, buffers)

    def finish(self, t: int) -> None:
        """The forward pass ended at time ``t`` (= K): its iterate is handed out as y_K."""
        self.end = t
        self.handed[t] = list(self.fmodel.parameters())
        self.fmodel.tape = self

    # -- iterates ---------------------------------------------------------------------
    def iterate(self, t: int) -> list:
        """y_t, recomputed outside the graph from the last checkpoint before it (PTT's
        y_{k*}); gradients through it are taken by ``grads``."""
        if t in self.handed:
            return list(self.handed[t])
        if not 0 < t <= self.end:
            raise OperatorRuntimeError("FunctionalModel", "parameters",
                                       f"time={t} is out of range 0..{self.end}")
        t0 = max(s for s in self.checkpoints if s <= t)
        params, snap, buffers = self.checkpoints[t0]
        if t == t0:
            out = list(params)
        else:
            seg = self.fmodel.segment(params, buffers, track=False)
            opt = snap.restore()
            for k in range(t0, t):
                self.step(k, seg, opt, True)
            out = [p.detach() for p in seg.parameters()]
        self.handed[t] = out
        return list(out)

    # -- reverse ----------------------------------------------------------------------
    def grads(self, value, targets: Sequence, op: str = "", where: str = "") -> list:
        """d value / d targets through the whole inner loop, segment by segment.

        ``value`` may depend on any iterate this tape handed out (y_K, ``iterate(t)``)
        and directly on ``targets`` (upper variables, the real y_0); targets that are the
        real lower variables get the gradient with respect to the initialisation."""
        jt = jittor()
        from .autodiff import check_scalar, vdot

        check_scalar(value, op, where)
        targets = list(targets)
        times = sorted(self.handed)
        leaves = [v for t in times for v in self.handed[t]]
        n = len(self.fmodel.variables)
        first = _grad(jt, value, leaves + targets)
        adj = {t: first[i * n:(i + 1) * n] for i, t in enumerate(times)}
        total = list(first[len(leaves):])
        top = max(times)
        starts = sorted(s for s in self.checkpoints if s < top)
        carried_y = carried_s = carried_keys = None
        for t0 in reversed(starts):
            t1 = min(t0 + self.every, self.end)
            if t1 <= self.truncate:
                break
            params, snap, buffers = self.checkpoints[t0]
            seg = self.fmodel.segment(params, buffers, track=True)
            opt = snap.restore(leaves=True)
            ys = {}
            for k in range(t0, t1):
                ys[k + 1] = self.step(k, seg, opt, k < self.truncate)
            terms = []
            for t in range(t0 + 1, t1 + 1):
                a = adj.get(t)
                if t == t1 and carried_y is not None:
                    a = carried_y if a is None else [u + w for u, w in zip(a, carried_y)]
                if a is not None:
                    terms.append(vdot(ys[t], a))
            if carried_s:  # the state at t1, in the order of the segment above's leaves
                terms.append(vdot(opt.state_vars(carried_keys), carried_s))
            if not terms:
                carried_y = carried_s = carried_keys = None
                continue
            objective = terms[0]
            for term in terms[1:]:
                objective = objective + term
            state_in = snap.leaves
            # a target that is a segment input (the real y_0, at t0 = 0) is asked once
            where = {id(v): i for i, v in enumerate(params)}
            others = [v for v in targets if id(v) not in where]
            g = _grad(jt, objective, list(params) + state_in + others)
            carried_y = [v.detach() for v in g[:n]]
            carried_s = [v.detach() for v in g[n:n + len(state_in)]]
            carried_keys = snap.keys
            rest = iter(g[n + len(state_in):])
            parts = [g[where[id(v)]] if id(v) in where else next(rest) for v in targets]
            total = [(a + b).detach() for a, b in zip(total, parts)]
            jt.sync(carried_y + carried_s + total)  # this segment's graph is freed here
        return [t.detach() for t in total]


def _grad(jt, value, wrt: list) -> list:
    """``jt.grad`` as a list (zeros for what ``value`` does not reach)."""
    if not wrt:
        return []
    out = jt.grad(value, wrt)
    return list(out) if isinstance(out, (list, tuple)) else [out]
