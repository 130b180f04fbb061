"""Minibatch sampling and stochastic oracles of the single-loop bilevel solvers (SOBA,
SABA, MA-SOBA, StocBiO, AmIGO, TTSA).

Finite-sum feeds
----------------
A feed may be a finite sum of n examples: a dict whose array entries share a leading
dimension n (the most common leading dimension, the rule ``Parallel.shard_feed`` uses;
other entries, e.g. a scalar, are passed whole). The objectives must be *means* over the
examples of the feed they are given (as data-parallel runs already require): f evaluated
on a minibatch B is then the unbiased estimate f_B of f. A quantity indexed by the
examples (data cleaning's one weight per training example) is reached through an index
entry of the feed (``"idx": arange(n)``), sampled with the rest.

Draws
-----
Each draw is ``batch_size`` distinct examples, uniform without replacement, from
``numpy.random.default_rng([seed, current_iter, stream, rank])``: ``seed`` is the
solver's config field, ``current_iter`` the outer iteration, ``stream`` the number of
the draw within the step (0, 1, ... in the order the solver's docstring gives) and
``rank`` the process. Draws of one step are therefore independent, and a run resumed from
a checkpoint draws the same minibatches as the original (nothing random is kept outside
the checkpoint). ``batch_size=None`` or ``>= n`` uses the whole feed (no draw: the
deterministic method). Every draw of the last step is kept in ``Oracle.draws`` (level,
indices), which the float64 reference tests replay.

Many processes
--------------
Under ``mpirun`` the ``Problem`` shards every feed before the solver sees it; each rank
draws from its own shard (its rank is in the generator's seed, so ranks draw independent
minibatches) and every value and gradient is averaged over the ranks with
``runtime.parallel.data_mean`` (one collective per oracle call): with equal shards and
batches, the mean of the ranks' minibatch estimates is the estimate on the union of their
minibatches, a stratified minibatch of ``world * batch_size`` examples of the global sum.

SAGA tables (SABA)
------------------
The examples are cut once into m = ceil(n / batch_size) fixed blocks (a permutation from
``default_rng([seed, rank])``); the table of a quantity holds its last value on every
block, one row per block: m x d floats (4 m d bytes in float32) per table, where d is the
size of the quantity; with ``batch_size=1`` this is the paper's one gradient per sample,
n x d floats. Block j is drawn with probability |B_j| / n and the estimate is
``new_j - T_j + sum_k (|B_k|/n) T_k`` (unbiased). Tables are operator state
(``self.propose``): adopted after the finiteness checks, saved in checkpoints. Under MPI
each rank holds the tables of its shard; a checkpoint holds rank 0's (a resumed MPI run of
SABA re-initialises the other ranks' tables: see ``SABA``).

Why these solvers are ``first_order`` operators, not a fourth kind
------------------------------------------------------------------
A kind is a row of ``KINDS``: a base, a hook, a place in the solver config and a state
type its step receives. The stochastic solvers need nothing a first-order solver does
not already have. They replace the whole dynamics + hyper-gradient pipeline of an outer
iteration, they work on the real variables, keep state across iterations (v, SAGA
tables, averages: ``self.propose``) and return exactly what a ``Result`` carries:
``ll_gradients`` or ``ll_update`` for y, ``hyper_gradients`` for x. What is new to them,
drawing minibatches from the feed, needs only the feeds and the outer iteration, which
``SolveState`` carries, and the runtime's ``parallel``; it is a numerics helper (this
module), not a protocol. As first-order operators they compose (alone in ``fo_op``) and
are refused by the same metadata, run through the conformance kit, presets,
checkpoints, MPI sharding and ``jboat compare`` unchanged; a fourth kind would have
duplicated all of that for an identical step signature. If a solver one day needs a
sampler the task provides (a data loader instead of a finite-sum feed), that is a new
``SolveState`` field, still not a new kind.

Import inside ``step`` only: it imports Jittor.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .autodiff import check_scalar, detach, grads, jt, vdot
from .firstorder import Point

__all__ = ["Oracle", "examples", "minibatch", "saga"]


def examples(feed, op: str, what: str) -> tuple[int, list]:
    """(n, the sampled keys) of a finite-sum feed: the most common leading dimension of
    its array entries, and the entries that have it.

    Raises
    ------
    OperatorRuntimeError
        ``feed`` is not a dict holding at least one array.
    """
    from ..errors import OperatorRuntimeError

    rows = {k: int(v.shape[0]) for k, v in feed.items()
            if hasattr(v, "shape") and len(v.shape) >= 1} if isinstance(feed, dict) else {}
    if not rows:
        raise OperatorRuntimeError(op, "sampling", f"{what} must be a dict of arrays with a "
                                   "leading dimension n (the examples) to draw minibatches "
                                   "from; got " + type(feed).__name__ + " (set batch_size="
                                   "None to use each feed whole)")
    n = Counter(rows.values()).most_common(1)[0][0]
    return n, [k for k, m in rows.items() if m == n]


def minibatch(feed, keys, idx):
    """``feed`` restricted to the examples ``idx`` (entries in ``keys``)."""
    var = jt.array(np.asarray(idx, dtype=np.int32))
    out = dict(feed)
    for k in keys:
        v = feed[k]
        out[k] = v[var] if isinstance(v, jt.Var) else np.asarray(v)[np.asarray(idx)]
    return out


def saga(table, weights, j: int, new):
    """One SAGA step on a table (list of Vars shaped (m, *shape)).

    Returns ``(estimate, table')``: ``new - T_j + sum_k w_k T_k`` and the table with row
    j replaced by ``new`` (``weights``: (m,) NumPy, the blocks' probabilities)."""
    m = int(weights.shape[0])
    onehot = np.zeros(m, dtype=np.float32)
    onehot[j] = 1.0
    est, out = [], []
    for t, g in zip(table, new):
        shape = (m,) + (1,) * (len(t.shape) - 1)
        mask = jt.array(onehot.reshape(shape), str(t.dtype))  # the table's dtype
        w = jt.array(np.asarray(weights, np.float64).reshape(shape), str(t.dtype))
        row = (t * mask).sum(0)
        est.append(g - row + (t * w).sum(0))
        out.append(t + mask * (g - row).unsqueeze(0))
    return est, out


class _Level:
    """One level's feed: its size, sampled keys, and the SAGA blocks when asked."""

    def __init__(self, feed, size, op, what, seed, rank, stream):
        self.feed, self.what = feed, what
        self.full = size is None or not isinstance(feed, dict)
        if not self.full:
            self.n, self.keys = examples(feed, op, what)
            self.full = size >= self.n
        elif isinstance(feed, dict) and any(hasattr(v, "shape") and len(v.shape) >= 1
                                            for v in feed.values()):
            self.n, self.keys = examples(feed, op, what)
        else:
            self.n, self.keys = 1, []
        self.size = self.n if self.full else size
        self.blocks = None
        self.block_seed = [seed, rank, stream]

    def partition(self) -> tuple[list, np.ndarray]:
        """The fixed blocks of this level (SAGA) and their probabilities."""
        if self.full:
            return [None], np.ones(1)
        if self.blocks is None:
            perm = np.random.default_rng(self.block_seed).permutation(self.n)
            self.blocks = np.array_split(perm, -(-self.n // self.size))
        return self.blocks, np.array([len(b) for b in self.blocks], float) / self.n


class Oracle:
    """Minibatch estimates for one outer iteration of a stochastic bilevel solver: draws
    (module docstring) and the gradients, Hessian-vector and cross-derivative products of
    f and F on them, each averaged over processes.

    Parameters
    ----------
    op : FirstOrderSolver
        Its config has ``seed`` and ``batch_size``.
    state : SolveState

    Attributes
    ----------
    y, x : list of jittor.Var
        The real lower and upper variables.
    draws : list of (str, numpy.ndarray)
        Every draw of this step, in order: ``("lower" | "upper", indices)``, SABA's
        ``("lower block" | "upper block", [j])`` and TTSA's ``("p", [p])``.
    calls : dict
        Per-example oracle evaluations of this step: ``grad`` (gradients of f or F),
        ``hvp`` (Hessian-vector and cross-derivative products); a minibatch of b counts b.
    """

    def __init__(self, op, state):
        cfg = op.config
        self.op, self.name = op, type(op).name
        self.pt = Point(op, state.ll_feed, state.ul_feed)
        self.y, self.x = self.pt.y, self.pt.x
        par = op.runtime.parallel
        self.rank = par.rank if par.active else 0
        self.seed, self.iter = int(cfg.seed), int(state.current_iter)
        self.lower = _Level(state.ll_feed, cfg.batch_size, self.name, "ll_feed_dict",
                            self.seed, self.rank, 0)
        self.upper = _Level(state.ul_feed, cfg.batch_size, self.name, "ul_feed_dict",
                            self.seed, self.rank, 1)
        self.draws: list = []
        self.calls = {"grad": 0, "hvp": 0}

    # -- draws ------------------------------------------------------------------------
    def rng(self) -> np.random.Generator:
        """The generator of the next draw of this step (a new stream each call)."""
        return np.random.default_rng([self.seed, self.iter, len(self.draws), self.rank])

    def batch(self, level: str):
        """A fresh minibatch feed of ``level`` (``"lower"`` or ``"upper"``)."""
        lv = self.lower if level == "lower" else self.upper
        if lv.full:
            self.draws.append((level, None))
            return lv.feed
        idx = np.sort(self.rng().choice(lv.n, size=lv.size, replace=False))
        self.draws.append((level, idx))
        return minibatch(lv.feed, lv.keys, idx)

    def blocks(self, level: str) -> tuple[int, list]:
        """(number of SAGA blocks, their feeds) of ``level``."""
        lv = self.lower if level == "lower" else self.upper
        blocks, _ = lv.partition()
        return len(blocks), [lv.feed if b is None else minibatch(lv.feed, lv.keys, b)
                             for b in blocks]

    def block(self, level: str) -> tuple[int, object, np.ndarray]:
        """(j, feed of block j, the blocks' probabilities): block j drawn with probability
        |B_j| / n."""
        lv = self.lower if level == "lower" else self.upper
        blocks, weights = lv.partition()
        j = int(self.rng().choice(len(blocks), p=weights))
        self.draws.append((f"{level} block", np.array([j])))
        feed = lv.feed if blocks[j] is None else minibatch(lv.feed, lv.keys, blocks[j])
        return j, feed, weights

    def integer(self, high: int) -> int:
        """A uniform integer in [0, high) (TTSA's random truncation)."""
        p = int(self.rng().integers(high))
        self.draws.append(("p", np.array([p])))
        return p

    def _count(self, feed, level: str, kind: str, times: int = 1) -> None:
        lv = self.lower if level == "lower" else self.upper
        size = int(feed[lv.keys[0]].shape[0]) if lv.keys else 1
        self.calls[kind] += times * size

    # -- oracles ------------------------------------------------------------------------
    def _f(self, feed, y, step):
        op = self.op
        return check_scalar(op.ll_objective(feed, op.ul_model, self.pt.model,
                                            params=list(y)), self.name, step)

    def _F(self, feed, y, step):
        op = self.op
        return check_scalar(op.ul_objective(feed, op.ul_model, self.pt.model,
                                            params=list(y)), self.name, step)

    def _mean(self, value, lists):
        """One collective: the value and the lists, averaged over processes."""
        flat = [value.reshape((1,))] + [g for gs in lists for g in gs]
        out = self.pt.mean(flat)
        value, k, res = out[0], 1, []
        for gs in lists:
            res.append(out[k:k + len(gs)])
            k += len(gs)
        return (value, *res)

    def grad_f(self, y, feed, step: str = "grad_y f"):
        """(f_B(y), grad_y f_B(y)), detached."""
        y = detach(y)
        f = self._f(feed, y, step)
        self._count(feed, "lower", "grad")
        return self._mean(f.detach(), [detach(grads(f, y, self.name, step))])

    def f_products(self, y, v, feed, cross: bool = True, gradient: bool = True,
                   step: str = "f products"):
        """(f_B, grad_y f_B, H_B v, J_B v) at y, one backward pass for both products:
        H = d2f/dy2, J = d2f/dxdy (``cross`` False: J v is None; ``gradient`` False:
        grad_y f_B is still computed, as the products need it)."""
        y = detach(y)
        f = self._f(feed, y, step)
        g = grads(f, y, self.name, step)
        s = vdot(g, detach(v))
        wrt = y + (self.x if cross else [])
        d = grads(s, wrt, self.name, step + " (second order)")
        self._count(feed, "lower", "grad", int(gradient))
        self._count(feed, "lower", "hvp", 1 + int(cross))
        f, g, hv, jv = self._mean(f.detach(), [detach(g), detach(d[:len(y)]),
                                               detach(d[len(y):])])
        return f, g, hv, (jv if cross else None)

    def hvp(self, y, v, feed, step: str = "Hessian-vector product"):
        """H_B v at y."""
        return self.f_products(y, v, feed, cross=False, gradient=False, step=step)[2]

    def cross(self, y, v, feed, step: str = "cross-derivative product"):
        """J_B v = d2 f_B / dx dy . v at y."""
        y = detach(y)
        f = self._f(feed, y, step)
        s = vdot(grads(f, y, self.name, step), detach(v))
        self._count(feed, "lower", "hvp")
        return self._mean(f.detach(), [detach(grads(s, self.x, self.name, step))])[1]

    def grad_F(self, y, feed, step: str = "grad F"):
        """(F_B(y), grad_y F_B, grad_x F_B), detached, one backward pass."""
        y = detach(y)
        F = self._F(feed, y, step)
        g = detach(grads(F, y + self.x, self.name, step))
        self._count(feed, "upper", "grad")
        return self._mean(F.detach(), [g[:len(y)], g[len(y):]])

    @property
    def lr(self) -> float:
        """The lower optimizer's learning rate (the papers' inner step size)."""
        return self.pt.lr
