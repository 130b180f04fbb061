"""jboat (this repository) on Jittor: ``hypergradient_step`` = NGD (K steps) + the chain."""

from __future__ import annotations

import numpy as np

from .base import Bench


def setup(prob, method, y0, lr, op_config) -> Bench:
    from jboat_core import get_registry, makes_functional_na_operation
    from jboat_core.platform._jittor import jittor
    from jboat_core.solver.solve import hypergradient_step

    jt = jittor()
    from . import jt_objectives as obj

    ll, ul, ll_feed, ul_feed = obj.build(prob, y0)
    reg = get_registry()
    cfg = {k: v for k, v in op_config.items() if k in method.chain}
    ll_var, ul_var = list(ll.parameters()), list(ul.parameters())
    chain = makes_functional_na_operation(
        list(method.chain), registry=reg, ll_objective=obj.ll_loss, ul_objective=obj.ul_loss,
        ll_model=ll, ul_model=ul, ll_var=ll_var, ul_var=ul_var, solver_config=cfg)
    opt = jt.optim.SGD(ll_var, lr)
    dynamics = {}

    def step(K):
        if K not in dynamics:
            dynamics[K] = reg.get("NGD").cls(obj.ll_loss, obj.ul_loss, ll, ul, K, cfg)
        result, _ = hypergradient_step(chain, dynamics[K], ll, opt, ll_feed, ul_feed)
        return np.concatenate([g.numpy().ravel() for g in result["hyper_gradients"]])

    grad_unit, hvp_unit = obj.units(ll, ul, ll_feed)
    import jboat_core
    return Bench(step, grad_unit, hvp_unit,
                 {"jittor": jt.__version__, "jboat": getattr(jboat_core, "__version__", "?"),
                  "use_mkl": bool(getattr(jt.compile_extern, "mkl_ops", None)),
                  "matmul": obj.MATMUL})
