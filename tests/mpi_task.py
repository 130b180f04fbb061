"""A task for ``jboat run`` under mpirun: ridge regression with per-feature penalties and
objectives that are means over the examples (so sharding is exact); ``n`` examples per
feed. ``MPI_FAULT=dies|hangs`` makes rank 1 SIGKILL itself or sleep at iteration 2."""

import os
import signal
import time

import numpy as np

from jboat_core.runner import Task
from jboat_core.testing.problems import Vector, jt


def build(params, seed):
    n, d = int(params.get("n", 16)), 5
    rng = np.random.RandomState(seed)
    f32 = lambda a: jt.array(a.astype(np.float32))  # noqa: E731
    ll_feed = {"A": f32(rng.randn(n, d)), "b": f32(rng.randn(n))}
    ul_feed = {"A": f32(rng.randn(n, d)), "b": f32(rng.randn(n))}
    ll, ul = Vector(rng.randn(d)), Vector(0.1 * rng.randn(d))

    def f(feed, up, low, **kw):
        pred, _ = low(feed["A"], **kw)
        y = kw.get("params") or [low.w]
        return ((pred - feed["b"]) ** 2).mean() * 0.5 + (up().exp() * y[0] * y[0]).sum() * 0.5

    def F(feed, up, low, **kw):
        pred, _ = low(feed["A"], **kw)
        return ((pred - feed["b"]) ** 2).mean() * 0.5 + (up() * up()).sum() * 0.05

    fault = os.environ.get("MPI_FAULT")
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))

    def feeds(it):
        if fault and rank == 1 and it == 2:
            if fault == "dies":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(3600)
        return ll_feed, ul_feed

    return Task(ll, ul, f, F, feeds=feeds, evaluate=lambda: {"x0": float(ul.w.numpy()[0])})
