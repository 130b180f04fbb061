"""Python calls per hyper-gradient call: jboat against hand-written Jittor (``bare``), the
configurations of :mod:`benchmarks.paired` (issue 31, item 8).

    python -m benchmarks.calls                          # ridge IGA, RAD, CG
    python -m benchmarks.calls --methods CG --top 25    # and where jboat's calls go
    python -m benchmarks.calls --run-iter               # and one Problem.run_iter each

Both set up in one process as ``benchmarks.paired`` does; after 5 warm calls each,
``cProfile`` counts every Python-level call (``total calls``, builtins and C methods
included) of ``--calls`` calls, divided by their number. Kernels do not count: this is
the interpreter's share, the part of a small hyper-iteration jboat adds. Prints one JSON
record per configuration (``--top``: jboat's functions with the most calls per call).
``--run-iter`` also counts one whole outer iteration, ``Problem.run_iter`` (NGD, the chain,
the checks, the upper optimizer's step and the warm start), on
``jboat_core.testing.problems.ridge_problem`` (d = 5, K = 10, SGD at both levels).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys


def count(fn, calls: int) -> tuple[float, pstats.Stats]:
    """Python calls per call of ``fn`` over ``calls`` calls, and the profile."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    stats = pstats.Stats(prof)
    return stats.total_calls / calls, stats


def top(stats: pstats.Stats, calls: int, n: int) -> list:
    """The ``n`` functions with the most calls per call: ``[calls, "file:line(name)"]``."""
    rows = sorted(((nc / calls, f"{f.rsplit('/', 2)[-1]}:{line}({name})")
                   for (f, line, name), (_, nc, _, _, _) in stats.stats.items()),
                  reverse=True)
    return [[round(c, 1), where] for c, where in rows[:n]]


def worker(problem: str, method: str, calls: int, top_n: int, K: int = 10) -> dict:
    """One configuration: jboat and bare set up as in ``benchmarks.paired``."""
    from .paired import setup

    out = {"problem": problem, "method": method, "K": K, "calls": calls}
    for fw, bench in setup(problem, method, K).items():
        per_call, stats = count(lambda b=bench: b.step(K), calls)
        out[f"{fw}_calls"] = round(per_call, 1)
        if fw == "jboat" and top_n:
            out["jboat_top"] = top(stats, calls, top_n)
    return out


def run_iter_calls(method: str, calls: int, K: int = 10) -> float:
    """Python calls per ``Problem.run_iter`` of ``method``'s chain (NGD + the chain)."""
    from .envsetup import prepare
    prepare("jboat")
    from jboat_core import Problem
    from jboat_core.platform._jittor import jittor
    from jboat_core.testing.problems import ridge_problem

    from .methods import BY_NAME, OP_CONFIG

    jt = jittor()
    p = ridge_problem()
    chain = list(BY_NAME[method].chain)
    prob = Problem({"lower_iters": K, "na_op": chain,
                    **{k: v for k, v in OP_CONFIG.items() if k in chain}},
                   ll_objective=p.ll_objective, ul_objective=p.ul_objective,
                   ll_model=p.ll_model, ul_model=p.ul_model,
                   ll_opt=jt.optim.SGD(p.ll_var, 0.1), ul_opt=jt.optim.SGD(p.ul_var, 0.01))
    it = iter(range(10**9))
    for _ in range(5):
        prob.run_iter(p.ll_feed, p.ul_feed, next(it))
    return round(count(lambda: prob.run_iter(p.ll_feed, p.ul_feed, next(it)), calls)[0], 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problem", default="ridge")
    ap.add_argument("--methods", default="IGA,RAD,CG")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--run-iter", action="store_true")
    args = ap.parse_args(argv)
    for method in args.methods.split(","):
        rec = worker(args.problem, method, args.calls, args.top)
        if args.run_iter:
            rec["run_iter_calls"] = run_iter_calls(method, args.calls)
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
