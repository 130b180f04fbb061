"""A tiny task for fault tests (ridge problem of ``jboat_core.testing.problems``), with
its size as parameters ``d`` (features, 5) and ``n`` (examples, 20), and
switches that misbehave on purpose: ``sleep`` seconds per iteration, ``nan_at`` (F is NaN
from then on), ``lower_nan_at`` (f is NaN from then on), and the environment variable
``FAULT_DIE_AT`` (SIGKILL itself at that iteration, like a machine losing power; not a
task parameter, so the resumed run has the same fingerprint)."""

import os
import signal
import time

from jboat_core.run.runner import Task
from jboat_core.testing.problems import ridge_problem


def build(params, seed):
    p = ridge_problem(seed=seed, d=int(params.get("d", 5)), n=int(params.get("n", 20)))
    sleep, die_at = float(params.get("sleep", 0)), int(os.environ.get("FAULT_DIE_AT", "-1"))
    nan_at, lower_nan_at = int(params.get("nan_at", -1)), int(params.get("lower_nan_at", -1))
    state = {"it": 0}

    def ll_objective(feed, ul, ll, **kw):
        value = p.ll_objective(feed, ul, ll, **kw)
        return value * float("nan") if 0 <= lower_nan_at <= state["it"] else value

    def ul_objective(feed, ul, ll, **kw):
        value = p.ul_objective(feed, ul, ll, **kw)
        return value * float("nan") if 0 <= nan_at <= state["it"] else value

    def feeds(it):
        state["it"] = it
        if it == die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if os.environ.get("FAULT_PROGRESS"):  # tests wait for real iterations (cold caches)
            with open(os.environ["FAULT_PROGRESS"], "w") as fh:
                fh.write(str(it))
        if sleep:
            time.sleep(sleep)
        return p.ll_feed, p.ul_feed

    def evaluate():
        return {"x0": float(p.x()[0]), "y0": float(p.y0()[0])}

    return Task(p.ll_model, p.ul_model, ll_objective, ul_objective, feeds=feeds,
                evaluate=evaluate, gda_loss=lambda ll, ul, upper, lower, **kw: (
                    ll_objective(ll, upper, lower, **kw)))
