"""Timing protocol: first call (includes kernel compilation) reported apart, then
warm-up calls, then the median of timed repetitions. Every timed call ends with a sync
(the callable must return host data, e.g. ``.numpy()``)."""

from __future__ import annotations

import statistics
import time


def measure(fn, warmup: int = 2, reps: int = 5) -> dict:
    """Time ``fn()``.

    Returns
    -------
    dict
        ``first_s`` (first call, compile included), ``median_s``, ``min_s``, ``times_s``
        and ``value`` (the first call's return value).
    """
    t0 = time.perf_counter()
    value = fn()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"first_s": first, "median_s": statistics.median(times), "min_s": min(times),
            "times_s": times, "value": value}
