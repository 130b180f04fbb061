"""A task for ``jboat run`` under mpirun: ridge regression with per-feature penalties and
objectives that are means over the examples (so sharding is exact); ``n`` examples per
feed (rank 1 takes ``MPI_TASK_ROWS_RANK1`` instead when set: ranks with other data).
``MPI_FAULT=dies|hangs`` makes rank 1 SIGKILL itself or sleep at iteration 2."""

import os
import signal
import time

import numpy as np

from jboat_core.run.runner import Task
from jboat_core.testing.problems import Vector, mean_ridge, mean_ridge_feeds, mean_upper


def build(params, seed):
    n, d = int(params.get("n", 16)), 5
    if os.environ.get("OMPI_COMM_WORLD_RANK") == "1" and os.environ.get("MPI_TASK_ROWS_RANK1"):
        n = int(os.environ["MPI_TASK_ROWS_RANK1"])  # rank 1 reads other data (a test)
    rng = np.random.RandomState(seed)
    ll_feed, ul_feed = mean_ridge_feeds(n, d, rng)
    ll, ul = Vector(rng.randn(d)), Vector(0.1 * rng.randn(d))

    fault = os.environ.get("MPI_FAULT")
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))

    def feeds(it):
        if fault and rank == 1 and it == 2:
            if fault == "dies":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(3600)
        return ll_feed, ul_feed

    return Task(ll, ul, mean_ridge, mean_upper, feeds=feeds, evaluate=lambda: {"x0": float(ul.w.numpy()[0])})
