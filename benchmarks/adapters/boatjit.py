"""Upstream JBOAT as published on PyPI (``boat-jit==1.1.1``), on Jittor.

Driven through its own ``Problem`` (``boat_config`` + ``loss_config``, ``return_grad``),
but timing only the hyper-gradient part of ``run_iter``: ``innerloop_ctx`` + the lower
solver (NGD) + the upper chain, exactly what jboat's ``hypergradient_step`` does. Left out:
run_iter's prints, its evaluation of both losses on the real models and its JSON log
write. ``_custom_grad`` is cleared before every call (upstream accumulates it).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from .base import Bench, boat_config


LOSS_CONFIG = {"lower_level_loss": {"function": "benchmarks.adapters.jt_objectives.ll_loss"},
               "upper_level_loss": {"function": "benchmarks.adapters.jt_objectives.ul_loss"}}


def setup(prob, method, y0, lr, op_config) -> Bench:
    import jittor as jt
    import boat_jit
    import boat_jit.higher_jit as higher
    from boat_jit.boat_opt import Problem

    from . import jt_objectives as obj

    ll, ul, ll_feed, ul_feed = obj.build(prob, y0)
    problems = {}

    def get(K):
        if K not in problems:
            ll_var, ul_var = list(ll.parameters()), list(ul.parameters())
            cfg = boat_config(method, K, op_config, ll, ul, ll_var, ul_var,
                              jt.optim.SGD(ll_var, lr), jt.optim.SGD(ul_var, 0.01),
                              "bench_boat_loss.json")
            p = Problem(cfg, LOSS_CONFIG)
            with contextlib.redirect_stdout(io.StringIO()):
                p.build_ll_solver()
                p.build_ul_solver()
            problems[K] = p
        return problems[K]

    def step(K):
        p = get(K)
        for v in p._ul_var:
            if hasattr(v, "_custom_grad"):
                del v._custom_grad
        with contextlib.redirect_stdout(io.StringIO()):
            with higher.innerloop_ctx(p._ll_model, p._lower_opt, copy_initial_weights=False,
                                      track_higher_grads=p._track_opt_traj) as (am, ao):
                res = p._ll_solver.optimize(ll_feed_dict=ll_feed, ul_feed_dict=ul_feed,
                                            auxiliary_model=am, auxiliary_opt=ao,
                                            current_iter=0)
                mli = list(res[-1].values())[-1]
                p._ul_solver.compute_gradients(ll_feed_dict=ll_feed, ul_feed_dict=ul_feed,
                                               auxiliary_model=am, max_loss_iter=mli)
        grads = [getattr(v, "_custom_grad", None) for v in p._ul_var]
        if any(g is None for g in grads):
            raise RuntimeError("upstream stored no hyper-gradient (_custom_grad missing)")
        return np.concatenate([g.numpy().ravel() for g in grads])

    grad_unit, hvp_unit = obj.units(ll, ul, ll_feed)
    return Bench(step, grad_unit, hvp_unit,
                 {"jittor": jt.__version__, "boat_jit": getattr(boat_jit, "__version__", "1.1.1"),
                  "matmul": obj.MATMUL})
