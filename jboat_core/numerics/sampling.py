"""Minibatch sampling of the single-loop bilevel solvers (SOBA, SABA, MA-SOBA, StocBiO,
AmIGO, TTSA): finite-sum feeds, draws, SAGA tables. The oracles on the draws are
``jboat_core.numerics.Point``'s (``grad_f``, ``f_products``, ``hvp``, ``cross``,
``grad_F`` with a ``feed``).

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
deterministic method). Every draw of a step is kept in ``Point.draws`` (level, indices)
and returned in the ``Result``'s ``info`` (``info["draws"]``), which the float64 reference
tests replay.

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
``new_j - T_j + sum_k (|B_k|/n) T_k`` (unbiased). Tables are the operator's memory
(``Result(memory=...)``): adopted after the finiteness checks, saved in checkpoints. Under MPI
each rank holds the tables of its shard; a checkpoint holds rank 0's (a resumed MPI run of
SABA re-initialises the other ranks' tables: see ``SABA``).

Why these solvers are ``first_order`` operators, not a fourth kind
------------------------------------------------------------------
A kind is a row of ``KINDS``: a base, a hook, a place in the solver config and a state
type its step receives. The stochastic solvers need nothing a first-order solver does
not already have. They replace the whole dynamics + hyper-gradient pipeline of an outer
iteration, they work on the real variables, keep memory across iterations (v, SAGA
tables, averages: ``Result(memory=...)``) and return exactly what a ``Result`` carries:
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

from .autodiff import jt

__all__ = ["examples", "minibatch", "saga"]


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
