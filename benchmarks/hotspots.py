"""Where jboat's time goes: the same hyper-iteration with single settings switched off.

``python -m benchmarks.hotspots [--size small|large]`` (Jittor; run it under the lock).
Variants, each timed with the protocol of :mod:`benchmarks.timing`:

* CG with ``tolerance=1e-10`` and ``check_every=1`` (one host sync per iteration, what
  jboat did before), the default ``check_every=10`` (= k: the stop applied on the device,
  no sync since issue 17; one sync per solve before) and
  ``tolerance=0`` (no sync until the result is read);
* NGD ``check_finite=True`` (one probe reduction per tensor) against ``False``;
* the K inner steps alone (NGD only, untracked, no solver check), to split dynamics
  from chain.
"""

from __future__ import annotations

import argparse
import json


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="small")
    ap.add_argument("--problem", default="ridge")
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args(argv)
    from .envsetup import prepare
    prepare("jboat")
    from jboat_core.compat.seed import makes_functional_na_operation
    from jboat_core.plugins.registry import get_registry
    from jboat_core.platform._jittor import jittor
    from jboat_core.numerics.diffopt import DifferentiableOptimizer
    from jboat_core.numerics.functional import FunctionalModel
    from jboat_core.solver.solve import hypergradient_step

    from .adapters import jt_objectives as obj
    from .methods import lower_lr
    from .problems import make_problem
    from .timing import measure

    jt = jittor()
    prob = make_problem(args.problem, args.size)
    lr = lower_lr(prob)
    ll, ul, llf, ulf = obj.build(prob, prob.solution())
    reg = get_registry()
    opt = jt.optim.SGD(list(ll.parameters()), lr)

    def hyper(chain_names, cfg):
        chain = makes_functional_na_operation(
            chain_names, registry=reg, ll_objective=obj.ll_loss, ul_objective=obj.ul_loss,
            ll_model=ll, ul_model=ul, ll_var=list(ll.parameters()),
            ul_var=list(ul.parameters()), solver_config=cfg)
        ngd = reg.get("NGD").cls(obj.ll_loss, obj.ul_loss, ll, ul, args.K, cfg)

        def call():
            res, _ = hypergradient_step(chain, ngd, ll, opt, llf, ulf)
            return res["hyper_gradients"][0].numpy()
        return call

    def inner_only():
        ngd = reg.get("NGD").cls(obj.ll_loss, obj.ul_loss, ll, ul, args.K, {})

        def call():
            fm = FunctionalModel(ll, track=False)
            dopt = DifferentiableOptimizer.from_optimizer(opt, fm.parameters(time=0))
            ngd.optimize(ll_feed_dict=llf, ul_feed_dict=ulf, auxiliary_model=fm,
                         auxiliary_opt=dopt)
            return fm.parameters()[0].numpy()
        return call

    variants = {
        "CG k=10 tol=1e-10 check_every=1": hyper(
            ["CG"], {"CG": {"k": 10, "tolerance": 1e-10, "check_every": 1}}),
        "CG k=10 tol=1e-10 (default check_every=10)": hyper(
            ["CG"], {"CG": {"k": 10, "tolerance": 1e-10}}),
        "CG k=10 tol=0": hyper(["CG"], {"CG": {"k": 10, "tolerance": 0.0}}),
        "CG k=10 tol=0, NGD check_finite=False": hyper(
            ["CG"], {"CG": {"k": 10, "tolerance": 0.0}, "NGD": {"check_finite": False}}),
        "RAD": hyper(["RAD"], {}),
        "RAD, NGD check_finite=False": hyper(["RAD"], {"NGD": {"check_finite": False}}),
        "NGD K steps only (untracked)": inner_only(),
    }
    out = {}
    for name, fn in variants.items():
        try:
            m = measure(fn, warmup=2, reps=args.reps)
            out[name] = {"median_ms": m["median_s"] * 1e3, "first_s": m["first_s"]}
        except Exception as exc:  # a variant the installed jboat rejects
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
    print(json.dumps({"problem": args.problem, "size": args.size, "K": args.K, "lr": lr,
                      "variants": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
