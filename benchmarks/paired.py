"""jboat's own overhead at the small size: jboat and hand-written Jittor (``bare``) in one
process, call by call (issue 17).

    python -m benchmarks.paired                       # every chain, ridge and logistic
    python -m benchmarks.paired --problems ridge --methods FD,CG --pairs 100

Why a second protocol: at the small size (50 parameters, a hyper-iteration of 1-4 ms) the
main benchmark's per-process medians moved by up to 2x between rounds on a shared
machine (the same ``bare`` worker took 0.77 ms in one round and 1.53 ms in the next), more
than the overhead it is meant to show. Here both run the same configuration
(``benchmarks.methods``: shared settings, K = 10) in one process on the same Jittor runtime
and warm kernel cache, one call each in turn: a pair is (jboat call, bare call), the
order inside a pair alternating from one pair to the next, so slow phases of the machine
hit both. Reported per configuration: the median time of each over all pairs and the
median ratio of the pairs (10 %-90 % quantiles of the ratios), for ``--rounds`` rounds of
``--pairs`` pairs each (the round's median ratio; the table gives the median over rounds
and their min-max). Before timing, 5 calls of each (compilation). Outputs:
``results/paired.{json,md}``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from .rounds import progress, publish

FRAMEWORKS = ("jboat", "bare")


def pair_times(calls: dict, pairs: int) -> dict:
    """Time ``pairs`` pairs of ``calls`` (framework -> callable), the order inside each pair
    alternating; returns framework -> list of seconds, in pair order."""
    names = list(calls)
    out = {n: [] for n in names}
    for i in range(pairs):
        for n in (names if i % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            calls[n]()
            out[n].append(time.perf_counter() - t0)
    return out


def summarize(times: dict) -> dict:
    """Medians (ms) and the per-pair ratio jboat / bare: median and 10 %-90 % quantiles."""
    ratios = [a / b for a, b in zip(times["jboat"], times["bare"])]
    return {"jboat_ms": 1e3 * statistics.median(times["jboat"]),
            "bare_ms": 1e3 * statistics.median(times["bare"]),
            "ratio": statistics.median(ratios),
            "ratio_q10": float(np.quantile(ratios, 0.1, method="nearest")),
            "ratio_q90": float(np.quantile(ratios, 0.9, method="nearest"))}


def setup(problem: str, method: str, K: int = 10) -> dict:
    """jboat and bare on ``method``'s chain for the small ``problem``, set up in this
    process as the other benchmarks set them up and called 5 times (compilation):
    framework -> the adapter's bench."""
    from .envsetup import prepare
    prepare("jboat")
    import importlib

    from .adapters import ADAPTERS
    from .methods import BY_NAME, OP_CONFIG, lower_lr, start_point
    from .problems import make_problem

    prob = make_problem(problem, "small")
    spec = BY_NAME[method]
    lr, y0 = lower_lr(prob), start_point(spec, prob)
    benches = {fw: importlib.import_module(ADAPTERS[fw]).setup(prob, spec, y0, lr, OP_CONFIG)
               for fw in FRAMEWORKS}
    for b in benches.values():
        for _ in range(5):
            b.step(K)
    return benches


def worker(problem: str, method: str, pairs: int, rounds: int, K: int = 10) -> dict:
    """One configuration: jboat and bare set up in this process, ``rounds`` x ``pairs``."""
    from .envsetup import describe

    benches = setup(problem, method, K)
    calls = {fw: (lambda b=b: b.step(K)) for fw, b in benches.items()}
    per_round = []
    for _ in range(rounds):
        per_round.append(summarize(pair_times(calls, pairs)))
    return {"problem": problem, "method": method, "pairs": pairs, "K": K,
            "rounds": per_round, "info": {**benches["jboat"].info, **describe()}}


def report(records: list) -> str:
    """Markdown: per configuration, each framework's median over rounds, the median of the
    rounds' median pair ratios (min-max over rounds) and the widest 10 %-90 % band."""
    lines = ["| chain | problem | jboat ms | hand-written Jittor ms | jboat / hand-written, "
             "median pair ratio (min-max over rounds) | pair ratios, 10 %-90 % |",
             "|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["problem"], r["method"])):
        rs = r["rounds"]
        ratios = [x["ratio"] for x in rs]
        lines.append(
            f"| {r['method']} | {r['problem']} | "
            f"{statistics.median(x['jboat_ms'] for x in rs):.2f} | "
            f"{statistics.median(x['bare_ms'] for x in rs):.2f} | "
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
            f"{min(x['ratio_q10'] for x in rs):.2f}-{max(x['ratio_q90'] for x in rs):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from .methods import BY_NAME, METHODS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default="ridge,logistic")
    ap.add_argument("--methods", default=",".join(m.name for m in METHODS))
    ap.add_argument("--pairs", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    records = []
    for problem in args.problems.split(","):
        for method in args.methods.split(","):
            if problem not in BY_NAME[method].problems:
                continue
            rec = worker(problem, method, args.pairs, args.rounds)
            records.append(rec)
            progress(f"{problem:9s} {method:8s} " + ", ".join(
                f"{x['ratio']:.2f}" for x in rec["rounds"]))
    publish("paired", records, report(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
