"""Bilevel problems for the data-parallel equivalence tests: objectives that are means over
the examples (or tasks) they are given, so that one process on the full batch and N
processes on its shards compute the same thing. ``run(case)`` returns the per-iteration
hyper-gradients and the final variables as NumPy arrays."""

from __future__ import annotations

import numpy as np

from jboat_core import Problem
from jboat_core.testing.problems import Vector, jt, mean_ridge_feeds
from jboat_core.testing.problems import mean_mse as _mse
from jboat_core.testing.problems import mean_ridge as _ridge
from jboat_core.testing.problems import mean_upper as _upper

N, D, ITERS = 16, 5, 3


def _data(seed=0):
    rng = np.random.RandomState(seed)
    return (*mean_ridge_feeds(N, D, rng), rng)


def _gda(ll_feed, ul_feed, ul, ll, **kw):
    a = ll_feed["alpha"]
    return _upper(ul_feed, ul, ll, **kw) * a + _ridge(ll_feed, ul, ll, **kw) * (1 - a)


CASES = {
    "RAD": {"na_op": ["RAD"], "lower_iters": 3},
    "PTT+RAD": {"na_op": ["PTT", "RAD"], "lower_iters": 3},
    "RAD-checkpointed": {"na_op": ["RAD"], "lower_iters": 5, "checkpoint_every": 2},
    "RAD-flushed": {"na_op": ["RAD"], "lower_iters": 18},  # a flush after step 16
    "CG": {"na_op": ["CG"], "lower_iters": 3, "CG": {"k": 8, "tolerance": 1e-8}},
    "FD": {"na_op": ["FD"], "lower_iters": 1},
    "GDA+IGA": {"gm_op": ["GDA", "NGD"], "na_op": ["IGA"], "lower_iters": 2},
    "DI+RAD": {"gm_op": ["DI", "NGD"], "na_op": ["RAD"], "lower_iters": 2},
    "DM": {"gm_op": ["DM"], "na_op": ["CG"]},
    "VFO": {"fo_op": "VFO", "lower_iters": 3, "VFO": {"u1": 10.0}},
    "PGDO": {"fo_op": "PGDO", "lower_iters": 3, "PGDO": {"gamma_init": 1.0}},
    "IAD-tasks": {"na_op": ["IAD"], "lower_iters": 2, "accumulate_grad": True},
}


def build(case: str):
    """(problem, feeds, variables) of a case; feeds are the full batch."""
    cfg = {**CASES[case], "copy_last_param": True}
    ll_feed, ul_feed, rng = _data()
    if case == "IAD-tasks":  # MAML over 4 tasks: task sharding
        model = Vector(rng.randn(D))
        tasks = [_data(seed=10 + t)[:2] for t in range(4)]
        prob = Problem(cfg, ll_objective=_mse, ul_objective=_mse, ll_model=model,
                       ul_model=model, ll_opt=jt.optim.SGD(model.parameters(), 0.1),
                       ul_opt=jt.optim.Adam(model.parameters(), 0.05))
        return prob, ([t[0] for t in tasks], [t[1] for t in tasks]), [model.w]
    ll, ul = Vector(rng.randn(D)), Vector(0.1 * rng.randn(D))
    prob = Problem(cfg, ll_objective=_ridge, ul_objective=_upper, ll_model=ll, ul_model=ul,
                   ll_opt=jt.optim.SGD(ll.parameters(), 0.1),
                   ul_opt=jt.optim.Adam(ul.parameters(), 0.05), gda_loss=_gda)
    return prob, (ll_feed, ul_feed), [ll.w, ul.w]


def run(case: str) -> dict:
    prob, (ll_feed, ul_feed), variables = build(case)
    out = {}
    for it in range(ITERS):
        res = prob.evaluate(ll_feed, ul_feed, it)
        out[f"g{it}"] = np.concatenate([g.numpy().ravel() for g in res["hyper_gradients"]])
        out[f"F{it}"] = np.array([res["upper_loss"]])
        prob.run_iter(ll_feed, ul_feed, it)
    for i, v in enumerate(variables):
        out[f"v{i}"] = v.numpy()
    shard = prob.parallel.shard(ll_feed, ul_feed)[0]  # what this process computed on
    out["rows"] = np.array([len(shard) if isinstance(shard, list) else shard["A"].shape[0]])
    return out
