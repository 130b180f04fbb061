"""Data-parallel scaling: time per outer iteration with 1 and 2 processes (issue 13).

    python -m benchmarks.parallel                  # 3 rounds, the order of 1 and 2 rotated
    python -m benchmarks.parallel --n 16384 --d 512 --chain CG

Task: ridge regression with per-feature penalties exp(x) (x in R^d) and objectives that
are means over the examples: n training and n validation examples, NGD with K inner
steps + the chain (RAD by default), one process or ``mpirun -np 2`` with each process on
half of every feed (``jboat_core.platform.parallel``). Timed: one ``Problem.run_iter`` (median of
``--iters`` after 3 warm-up ones). Communication: the same collectives on their own (the
K inner-gradient all-reduces of d floats and the solver's final one of d + 2 floats),
timed in the same ``mpirun`` (median), so that compute = total - communication. Results:
``results/parallel.json`` and ``results/parallel.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.rounds import ROOT, progress, publish
ENV = {"nvcc_path": "", "log_silent": "1", "FIX_TORCH_ERROR": "0",
       "JBOAT_DEVICE": "cpu", "JBOAT_LOAD_PLUGINS": "jboat", "OMP_NUM_THREADS": "1",
       "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def worker(n: int, d: int, K: int, chain: str, iters: int) -> dict:
    import numpy as np

    from jboat_core import Problem
    from jboat_core.testing.problems import Vector, jt, mean_mse, mean_ridge, mean_ridge_feeds

    ll_feed, ul_feed = mean_ridge_feeds(n, d, np.random.RandomState(0), 1 / np.sqrt(d))
    ll, ul = Vector(np.zeros(d)), Vector(np.zeros(d))

    prob = Problem({"na_op": chain.split("+"), "lower_iters": K, "copy_last_param": True},
                   ll_objective=mean_ridge, ul_objective=mean_mse, ll_model=ll, ul_model=ul,
                   ll_opt=jt.optim.SGD(ll.parameters(), 0.5),
                   ul_opt=jt.optim.Adam(ul.parameters(), 0.01))
    times = []
    for it in range(iters + 3):
        t0 = time.perf_counter()
        prob.run_iter(ll_feed, ul_feed, it)
        times.append(time.perf_counter() - t0)
    par = prob.parallel
    comm = []
    if par.active:  # the iteration's collectives, alone
        vecs = [jt.array(np.ones(d, np.float32)) for _ in range(K)]
        last = [jt.array(np.ones(d + 2, np.float32))]
        for _ in range(iters):
            t0 = time.perf_counter()
            jt.sync([par.mean([v])[0] for v in vecs] + par.mean(last))
            comm.append(time.perf_counter() - t0)
    return {"processes": par.world, "n": n, "d": d, "K": K, "chain": chain,
            "median_s": statistics.median(times[3:]), "first_s": times[0],
            "comm_s": statistics.median(comm) if comm else 0.0, "rank": par.rank}


def _launch(procs: int, args) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            "from benchmarks.parallel import worker; "
            f"r = worker({args.n}, {args.d}, {args.K}, {args.chain!r}, {args.iters}); "
            "print('@@' + json.dumps(r)) if r['rank'] == 0 else None")
    cmd = [sys.executable, "-c", code]
    if procs > 1:
        cmd = ["mpirun", "-np", str(procs), "--oversubscribe"] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                          env={**os.environ, **ENV, "PYTHONPATH": str(ROOT)})
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    return {"processes": procs, "error": (proc.stderr or proc.stdout)[-400:]}


def report(records: list[dict]) -> str:
    ok = [r for r in records if "median_s" in r]
    by = {p: [r for r in ok if r["processes"] == p] for p in (1, 2)}
    if not by[1] or not by[2]:
        return "no result: " + "; ".join(r.get("error", "") for r in records if "error" in r)
    r0 = by[1][0]
    med = {p: statistics.median(r["median_s"] for r in rs) for p, rs in by.items()}
    comm = statistics.median(r["comm_s"] for r in by[2])
    rounds = sorted({r["round"] for r in by[1]} & {r["round"] for r in by[2]})
    speed = [next(r["median_s"] for r in by[1] if r["round"] == k)
             / next(r["median_s"] for r in by[2] if r["round"] == k) for k in rounds]
    return ("| processes | ms per outer iteration | of which communication | speed-up |\n"
            "|---|---|---|---|\n"
            f"| 1 | {1e3 * med[1]:.1f} | - | 1 |\n"
            f"| 2 | {1e3 * med[2]:.1f} | {1e3 * comm:.2f} | {statistics.median(speed):.2f} "
            f"({min(speed):.2f}-{max(speed):.2f}) |\n\n"
            f"NGD (K = {r0['K']}) + {r0['chain']}, n = {r0['n']} examples per level, "
            f"d = {r0['d']}, {len(rounds)} rounds.\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--chain", default="RAD")
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800)
    args = ap.parse_args(argv)
    records = []
    for k in range(args.rounds):
        for procs in ((1, 2) if k % 2 == 0 else (2, 1)):
            rec = _launch(procs, args)
            rec["round"] = k
            records.append(rec)
            progress(f"round {k}: {procs} process(es): "
                     f"{rec.get('median_s', 0) * 1e3:.1f} ms {rec.get('error', '')}")
    publish("parallel", records, report(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
