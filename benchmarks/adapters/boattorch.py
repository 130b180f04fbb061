"""Upstream BOAT on PyTorch (``boat-torch==1.1.1``), CPU, ``OMP_NUM_THREADS`` threads (1 by default).

Same driving as :mod:`benchmarks.adapters.boatjit`: its ``Problem`` is built from a
``boat_config``, and the timed part is ``innerloop_ctx`` + lower solver + upper chain;
``.grad`` of the upper variables is cleared before each call (upstream accumulates it).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from .base import Bench, boat_config

LOSS_CONFIG = {"lower_level_loss": {"function": "benchmarks.adapters.torch_objectives.ll_loss"},
               "upper_level_loss": {"function": "benchmarks.adapters.torch_objectives.ul_loss"}}


def setup(prob, method, y0, lr, op_config) -> Bench:
    import torch

    from ..envsetup import threads
    torch.set_num_threads(threads())
    import higher
    from boat_torch.boat_opt import Problem

    from . import torch_objectives as obj

    ll, ul, ll_feed, ul_feed = obj.build(prob, y0)
    ll_var, ul_var = list(ll.parameters()), list(ul.parameters())
    problems = {}

    def get(K):
        if K not in problems:
            cfg = boat_config(method, K, op_config, ll, ul, ll_var, ul_var,
                              torch.optim.SGD(ll_var, lr=lr), torch.optim.SGD(ul_var, lr=0.01),
                              "bench_boat_t.json", device="cpu")
            p = Problem(cfg, LOSS_CONFIG)
            with contextlib.redirect_stdout(io.StringIO()):
                p.build_ll_solver()
                p.build_ul_solver()
            problems[K] = p
        return problems[K]

    def step(K):
        p = get(K)
        for v in ul_var:
            v.grad = None
        with contextlib.redirect_stdout(io.StringIO()):
            with higher.innerloop_ctx(p._ll_model, p._lower_opt, copy_initial_weights=False,
                                      device=p._device,
                                      track_higher_grads=p._track_opt_traj) as (am, ao):
                res = p._ll_solver.optimize(ll_feed_dict=ll_feed, ul_feed_dict=ul_feed,
                                            auxiliary_model=am, auxiliary_opt=ao,
                                            current_iter=0)
                mli = list(res[-1].values())[-1]
                if p._ul_solver is not None:
                    p._ul_solver.compute_gradients(ll_feed_dict=ll_feed, ul_feed_dict=ul_feed,
                                                   auxiliary_model=am, max_loss_iter=mli)
        if any(v.grad is None for v in ul_var):
            raise RuntimeError("upstream stored no hyper-gradient (.grad is None)")
        return np.concatenate([v.grad.detach().numpy().ravel() for v in ul_var])

    grad_unit, hvp_unit = obj.units(ll, ul, ll_feed)
    return Bench(step, grad_unit, hvp_unit,
                 {"torch": torch.__version__, "threads": torch.get_num_threads()})
