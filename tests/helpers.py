"""Shared runner for Jittor tests: one hyper-gradient evaluation on a reference problem."""

from __future__ import annotations

import numpy as np


def run_chain(prob, names, K, lr, cfg=None, optimizer=None, registry=None, init=False):
    """Run NGD (K steps) then the chain ``names`` through the solver's runner
    (``jboat_core.solver.engine``), checked; return (result, numpy grad, fmodel)."""
    from jboat_core.contract import Runtime
    from jboat_core.platform._jittor import jittor
    from jboat_core.plugins.ordering import validate_and_adjust_order
    from jboat_core.plugins.registry import get_registry
    from jboat_core.solver.engine import dynamics_plan, evaluate_chain, sync_and_check

    jt = jittor()
    reg = registry or get_registry()
    cfg = dict(cfg or {})
    opt = optimizer(prob.ll_var) if optimizer else jt.optim.SGD(prob.ll_var, lr)
    names = validate_and_adjust_order(names, registry=reg)
    rt = Runtime(operators=cfg, ll_opt=opt, ll_var=prob.ll_var, ul_var=prob.ul_var,
                 gm_op=("NGD",), na_op=tuple(names), lower_iters=K, ll_model=prob.ll_model,
                 ul_model=prob.ul_model, ll_objective=prob.ll_objective,
                 ul_objective=prob.ul_objective)
    chain = [reg.get(n, kind="hypergradient").cls.build(rt) for n in names]
    ngd = reg.get("NGD").cls.build(rt)
    out = evaluate_chain([ngd], chain, dynamics_plan(chain), prob.ll_model, opt, prob.ll_feed,
                         prob.ul_feed, init_gradients=init)
    sync_and_check([out.result], out.checks, producer=out.producer,
                   check=cfg.get("check_finite", True))
    result = out.result
    return result, result["hyper_gradients"][0].numpy().astype(np.float64), out.lower.fmodel


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def rel_err(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check_flush_changes_nothing(monkeypatch, run, extra_syncs: int):
    """``run()`` (-> list of NumPy arrays) with the loops never flushed and flushed every
    step (``numerics.autodiff.FLUSH_EVERY`` = 1): the second syncs at least
    ``extra_syncs`` more times and returns the same arrays."""
    from jboat_core.numerics import autodiff
    jt, out = autodiff.jt, []
    real = jt.sync
    for every in (10 ** 9, 1):
        syncs = []
        monkeypatch.setattr(autodiff, "FLUSH_EVERY", every)
        monkeypatch.setattr(jt, "sync", lambda *a, **k: (syncs.append(1), real(*a, **k))[1])
        out.append((run(), len(syncs)))
    (plain, n_plain), (flushed, n_flushed) = out
    assert n_flushed >= n_plain + extra_syncs, (n_plain, n_flushed)
    for a, b in zip(flushed, plain):
        assert np.allclose(a, b, rtol=1e-6, atol=1e-8)
