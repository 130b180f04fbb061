"""Data-parallel bilevel optimization over processes, with Jittor's MPI.

Under ``mpirun -np N``, every process holds the same variables (broadcast from rank 0 when
the ``Problem`` is built) and its shard of the data: of the examples of each feed, or, with
``accumulate_grad``, of the tasks. The objectives are means over the examples they are
given, and shards have equal sizes, so the full-batch objective is the mean of the ranks'
objectives and the N processes compute what one process computes on the union of the
shards. Reductions (``Var.mpi_all_reduce("mean")``; each list is flattened into one
collective) happen at these points only:

============================  ===================================================  ==========
where                         what (example sharding)                               per outer
                                                                                    iteration
============================  ===================================================  ==========
each differentiable inner     the lower gradient (NGD, GDA, RGT's steps, DM's        K
step (``DifferentiableOptim-  phi gradient); backward through it is again an
izer.step``)                  all-reduce, so unrolled operators stay exact
PTT                           the K values F(x, y_k), before the argmax              1
CG / NS (``implicit``)        grad_y F, and every Hessian-vector product             k + 1
FD                            v = grad_y F(y')                                       1
IGA                           grad_y F and grad_y f                                  1
DM                            grad_y F, grad_y phi, each Hessian-vector product      3 (4 CG)
first-order solvers           every objective value and gradient (``Point``)        per call
the solver (``Problem``)      hyper-gradients, DI's gradients, the upper and lower  1
                              losses: one collective
============================  ===================================================  ==========

With task sharding (``accumulate_grad``), tasks are independent: no reduction inside an
evaluation, only the solver's final one (the mean over all tasks). Jittor's optimizers
all-reduce gradients themselves under MPI; jboat gives them gradients that are already
global and skips that second all-reduce (``no_optimizer_reduce``). The upper and lower
losses recorded are global means, identical on every rank, so every rank takes the same
decisions (finiteness checks included) and only rank 0 writes files.

Importing this module does not import Jittor.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass

from ..errors import JboatError

class ParallelError(JboatError):
    """A data-parallel run that cannot proceed (MPI missing, shards unequal, configs
    that differ between ranks)."""


def launched_by_mpirun() -> bool:
    """True when this process was started by an MPI launcher (OpenMPI, or MPICH's PMI)
    with more than one process."""
    size = os.environ.get("OMPI_COMM_WORLD_SIZE") or os.environ.get("PMI_SIZE")
    return bool(size and int(size) > 1)


def launcher_rank() -> int:
    """This process's rank as the launcher says (before Jittor is imported; 0 alone)."""
    rank = os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("PMI_RANK") or "0"
    return int(rank)


@dataclass
class Parallel:
    """Where and how a ``Problem`` reduces across processes.

    Attributes
    ----------
    world : int
        Number of processes (1: nothing is reduced).
    rank : int
    mode : {"examples", "tasks"}
        What is sharded: the examples of each feed, or the tasks (``accumulate_grad``).
    """

    world: int = 1
    rank: int = 0
    mode: str = "examples"

    @classmethod
    def detect(cls, mode: str = "examples", required: bool = False) -> "Parallel":
        """The MPI world of this process (Jittor's ``jt.in_mpi``, ``jt.world_size``).

        Raises
        ------
        ParallelError
            Started by mpirun (or ``required``) but Jittor's MPI is not available.
        """
        from ._jittor import jittor

        jt = jittor()
        if getattr(jt, "in_mpi", False) and int(jt.world_size) > 1:
            return cls(int(jt.world_size), int(jt.rank), mode)
        if required or launched_by_mpirun():
            raise ParallelError(
                "running under mpirun (or with --mpi) but Jittor's MPI is not available: "
                "install OpenMPI (e.g. apt-get install openmpi-bin libopenmpi-dev) so that "
                "Jittor compiles its MPI ops at import (mpicc on PATH), then run again")
        return cls(1, 0, mode)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def writer(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0

    # -- reductions ---------------------------------------------------------------------
    def mean(self, values) -> list:
        """The mean over processes of a list of Vars, in one collective (differentiable)."""
        values = list(values)
        if not self.active or not values:
            return values
        from ._jittor import jittor

        jt = jittor()
        sizes = [int(v.numel()) for v in values]
        flat = jt.concat([v.reshape((-1,)) for v in values]) if len(values) > 1 \
            else values[0].reshape((-1,))
        flat = flat.mpi_all_reduce("mean")
        out, k = [], 0
        for v, n in zip(values, sizes):
            out.append(flat[k:k + n].reshape(v.shape))
            k += n
        return out

    def data_mean(self, values) -> list:
        """``mean`` for quantities that are means over the examples of one evaluation
        (inner gradients, HVPs, ...): reduced with example sharding, local with tasks."""
        return self.mean(values) if self.mode == "examples" else list(values)

    def data_mean1(self, value):
        """``data_mean`` of one Var."""
        return self.data_mean([value])[0] if self.active else value

    def broadcast(self, variables) -> None:
        """Give every process rank 0's values of ``variables`` (in place)."""
        if not self.active:
            return
        for v in variables:
            v.update(v.mpi_broadcast(0).detach())

    # -- sharding ---------------------------------------------------------------------------
    def shard_feed(self, feed, what: str = "feed"):
        """This rank's shard of one feed dict: every array entry whose leading dimension is
        the feed's batch size is split into ``world`` equal parts (others are kept)."""
        if not self.active or not isinstance(feed, dict):
            return feed
        rows = {k: int(v.shape[0]) for k, v in feed.items()
                if hasattr(v, "shape") and len(v.shape) >= 1}
        if not rows:
            raise ParallelError(f"{what}: no array to shard across {self.world} processes")
        batch = max(set(rows.values()), key=list(rows.values()).count)
        if batch < self.world or batch % self.world:
            raise ParallelError(
                f"{what}: {batch} examples cannot be split into {self.world} equal shards "
                f"(entries {', '.join(k for k, n in rows.items() if n == batch)}); use a "
                f"batch size that is a multiple of the number of processes")
        size = batch // self.world
        lo, hi = self.rank * size, (self.rank + 1) * size
        return {k: (v[lo:hi] if rows.get(k) == batch else v) for k, v in feed.items()}

    def shard(self, ll_feed_dict, ul_feed_dict):
        """This rank's shards of an iteration's feeds (examples, or tasks)."""
        if not self.active:
            return ll_feed_dict, ul_feed_dict
        if self.mode == "tasks":
            return self._shard_tasks(ll_feed_dict), self._shard_tasks(ul_feed_dict)
        return (self.shard_feed(ll_feed_dict, "ll_feed_dict"),
                self.shard_feed(ul_feed_dict, "ul_feed_dict"))

    def _shard_tasks(self, tasks):
        tasks = list(tasks)
        if not tasks or len(tasks) % self.world:
            raise ParallelError(
                f"accumulate_grad: {len(tasks)} tasks cannot be split into {self.world} equal "
                "shards; use a number of tasks per iteration that is a multiple of the "
                "number of processes")
        size = len(tasks) // self.world
        return tasks[self.rank * size:(self.rank + 1) * size]

    # -- consistency ---------------------------------------------------------------------
    def check_same(self, what: dict) -> None:
        """Refuse to start when ``what`` (e.g. the solver config) differs between ranks:
        ``compare`` with each key of ``what`` as an item."""
        self.compare(what, "configurations")

    def compare(self, items: dict, what: str = "inputs") -> None:
        """Refuse to go on, on every rank at once, when any of ``items`` (name -> a
        JSON-able value or a digest) differs from rank 0's.

        One collective: every rank puts 48 bits of each item's SHA-256 (two float32 of 24
        bits, exact) in its row of a world x items table, zeros elsewhere, and the table is
        summed across ranks; every rank then sees every rank's digests.

        Raises
        ------
        ParallelError
            Naming each rank and item that differs, with both digests (the same message
            on every rank).
        """
        if not self.active or not items:
            return
        import numpy as np

        from ._jittor import jittor

        jt = jittor()
        names = list(items)
        table = np.zeros((self.world, 2 * len(names)), dtype=np.float32)
        table[self.rank] = [half for name in names for half in _digest48(items[name])]
        table = jt.array(table).mpi_all_reduce("add").numpy()
        lines = []
        for rank in range(1, self.world):
            for i, name in enumerate(names):
                ours, theirs = table[0, 2 * i:2 * i + 2], table[rank, 2 * i:2 * i + 2]
                if not np.array_equal(ours, theirs):
                    lines.append(f"rank {rank}: {name} differs from rank 0's (digest "
                                 f"{_hex(theirs)}, rank 0: {_hex(ours)})")
        if lines:
            more = f" (and {len(lines) - 4} more)" if len(lines) > 4 else ""
            raise ParallelError(f"the processes were started with different {what}: "
                                + "; ".join(lines[:4]) + more + "; give every rank the same "
                                "task file, settings and data")


def _digest48(value) -> tuple[float, float]:
    """48 bits of the SHA-256 of ``value`` (its JSON, or the text of a digest) as two
    float32-exact halves."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    code = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:6], "big")
    return float(code >> 24), float(code & 0xFFFFFF)


def _hex(halves) -> str:
    return f"{int(halves[0]):06x}{int(halves[1]):06x}"


@contextlib.contextmanager
def no_optimizer_reduce(parallel: Parallel):
    """While applying gradients jboat already averaged, keep Jittor's optimizers from
    all-reducing them again (``Optimizer.backward`` does so whenever ``jt.in_mpi``)."""
    if not parallel.active:
        yield
        return
    from ._jittor import jittor

    jt = jittor()
    jt.in_mpi = False
    try:
        yield
    finally:
        jt.in_mpi = True


def watchdog(seconds: float | None):
    """Arm (or, with None, disarm) a C-level timer that dumps every thread's traceback and
    ends the process if the next outer iteration takes longer than ``seconds``: a rank
    whose peer died then stops instead of waiting in a collective forever."""
    import faulthandler
    import sys

    faulthandler.cancel_dump_traceback_later()
    if seconds:
        faulthandler.dump_traceback_later(seconds, exit=True, file=sys.stderr)
