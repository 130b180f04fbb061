"""``python -m benchmarks``: run the benchmark matrix, one subprocess per configuration.

Each configuration (framework x problem x size x chain) runs in a fresh process of its
framework's venv, wrapped in ``flock LOCK`` so that no two Jittor processes compile or run
at once; for every configuration the frameworks take turns (jboat, bare Jittor, JBOAT,
boat-torch). With ``--rounds N`` the whole matrix runs N times, round k starting the turns
k frameworks later (the first framework of a configuration was measured up to 1.5x slower
than the same code run later); the report then gives the median over rounds and the
min-max of the per-round ratios.
Results are merged into ``benchmarks/results/latest.json`` and summarised in ``latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from . import report
from .methods import METHODS

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHONS = {"jboat": os.path.expanduser("~/.venvs/jboat/bin/python"),
           "bare": os.path.expanduser("~/.venvs/jboat/bin/python"),
           "boatjit": "/opt/bench-boatjit/bin/python",
           "boattorch": "/opt/bench-boattorch/bin/python"}


def parse(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default="ridge,logistic")
    ap.add_argument("--sizes", default="small,large")
    ap.add_argument("--methods", default=",".join(m.name for m in METHODS),
                    help="chains, e.g. RAD,PTT+RAD,CG")
    ap.add_argument("--frameworks", default="jboat,bare,boatjit,boattorch",
                    help="bare: hand-written Jittor (adapters/bare_jt.py), in jboat's venv")
    ap.add_argument("--K", type=int, default=10, help="inner steps per hyper-iteration")
    ap.add_argument("--K-mem", type=int, default=100,
                    help="second K for the memory-growth check (0: skip)")
    ap.add_argument("--K-mem-frameworks", default="jboat",
                    help="frameworks that also run the K-mem call")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--large-reps", type=int, default=3, help="repetitions at size 'large'")
    ap.add_argument("--quick", action="store_true",
                    help="small size, jboat and bare only, K-mem off, 1 warm-up, 3 repetitions")
    ap.add_argument("--tag", default="", help="label of a variant (e.g. onednn)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the workers (e.g. use_mkl=1)")
    ap.add_argument("--python", action="append", default=[], metavar="FW=PATH",
                    help="interpreter of a framework's venv")
    ap.add_argument("--lock", default="/tmp/jboat-jittor.lock",
                    help="flock file around each worker ('' : none)")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per worker")
    ap.add_argument("--timeout-upstream", type=float, default=None,
                    help="seconds per boat-jit/boat-torch worker (default: --timeout)")
    ap.add_argument("--results", default=None,
                    help="results folder (default: benchmarks/results; --quick: "
                    "benchmarks/results/quick, not committed)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the matrix, the frameworks' order rotated each round")
    ap.add_argument("--first-round", type=int, default=0,
                    help="number of the first round (continue a run, e.g. with fewer frameworks)")
    ap.add_argument("--skip", default="", metavar="FW:CHAIN,...",
                    help="configurations not to run, e.g. boatjit:CG,boatjit:NS (upstream "
                    "chains that never finish)")
    ap.add_argument("--fresh", action="store_true", help="do not merge into latest.json")
    ap.add_argument("--merge-from", default=None, metavar="JSON",
                    help="only merge the runs of another results file and rewrite the report")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.frameworks, args.K_mem = "small", "jboat,bare", 0
        args.warmup, args.reps = 1, 3
    if args.results is None:
        args.results = os.path.join(HERE, "results", "quick" if args.quick else "")
    return args


def jobs(args):
    """(problem, size, method) triples, then a list of specs per triple (one per framework)."""
    names = args.methods.split(",")
    methods = [m for m in METHODS if m.name in names]
    skip = {tuple(item.split(":", 1)) for item in args.skip.split(",") if ":" in item}
    for problem in args.problems.split(","):
        for size in args.sizes.split(","):
            for m in methods:
                if problem not in m.problems:
                    continue
                specs = []
                for fw in args.frameworks.split(","):
                    if (fw, m.name) in skip:
                        continue
                    kmem_fws = args.K_mem_frameworks.split(",")
                    specs.append({"framework": fw, "problem": problem, "size": size,
                                  "method": m.name, "K": args.K, "tag": args.tag,
                                  "K_mem": args.K_mem if fw in kmem_fws else 0,
                                  "warmup": args.warmup if size == "small" else 1,
                                  "reps": args.reps if size == "small" else args.large_reps})
                yield specs


def ordered(groups, rounds: int, first: int = 0):
    """The specs of every group (one configuration, its frameworks in turn), ``rounds``
    times; round k (``first``, ``first + 1``...) starts each group's turns k frameworks
    later and marks its specs with ``round = k`` (unless there is a single round 0)."""
    groups = list(groups)
    for k in range(first, first + rounds):
        for specs in groups:
            shift = k % max(1, len(specs))
            for spec in specs[shift:] + specs[:shift]:
                yield dict(spec, round=k) if (rounds > 1 or first) else spec


def run_worker(spec, args, pythons, env):
    """Run one worker; the time limit starts once the lock is held (``timeout`` runs
    inside ``flock``) and kills the worker with everything it started."""
    fd, out = tempfile.mkstemp(suffix=".json", prefix="bench-")
    os.close(fd)
    limit = args.timeout
    if spec["framework"] in ("boatjit", "boattorch") and args.timeout_upstream:
        limit = args.timeout_upstream
    cmd = ["timeout", "-s", "KILL", str(int(limit)), pythons[spec["framework"]],
           "-m", "benchmarks.worker", "--spec", json.dumps(spec), "--out", out]
    if args.lock:
        cmd = ["flock", args.lock] + cmd
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        with open(out) as fh:
            rec = json.load(fh) if os.path.getsize(out) else None
        if rec is None:
            why = (f"killed after {limit:.0f} s (time limit)" if proc.returncode in
                   (124, 137, -9) else f"worker exited {proc.returncode}: {proc.stderr[-300:]}")
            rec = dict(spec, ok=False, error=why)
    finally:
        os.unlink(out)
    rec["wall_s"] = time.perf_counter() - t0
    return rec


def main(argv=None):
    args = parse(argv)
    pythons = dict(PYTHONS)
    pythons.update(dict(p.split("=", 1) for p in args.python))
    env = dict(os.environ)
    env.update(dict(e.split("=", 1) for e in args.env))
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    os.makedirs(args.results, exist_ok=True)
    path = os.path.join(args.results, "latest.json")
    doc = {"runs": []} if args.fresh else report.load(path)
    if args.merge_from:
        doc = report.merge(doc, report.load(args.merge_from)["runs"])
        with open(path, "w") as fh:
            json.dump(doc, fh, indent=1)
        with open(os.path.join(args.results, "latest.md"), "w") as fh:
            fh.write(report.markdown(doc))
        return 0
    doc.update(machine=report.machine(), K=args.K, K_mem=args.K_mem)
    for spec in ordered(jobs(args), args.rounds, args.first_round):
        if not os.path.exists(pythons[spec["framework"]]):
            rec = dict(spec, ok=False, error=f"no interpreter {pythons[spec['framework']]}")
        else:
            rec = run_worker(spec, args, pythons, env)
        if args.env:
            rec["env"] = args.env
        doc = report.merge(doc, [rec])
        with open(path, "w") as fh:
            json.dump(doc, fh, indent=1)
        status = (f"{rec['median_s'] * 1e3:9.2f} ms  cos {rec.get('cosine')}"
                  if rec.get("ok") else "ERROR " + str(rec.get("error"))[:100])
        print(f"{spec.get('round', '')!s:2s} {spec['framework']:9s} {spec['problem']:8s} "
              f"{spec['size']:5s} {spec['method']:8s} {status}", flush=True)
    with open(os.path.join(args.results, "latest.md"), "w") as fh:
        fh.write(report.markdown(doc))
    print(report.rounds_table(doc, args.tag) if (args.rounds > 1 or args.first_round)
          else report.table(doc, args.tag))
    return 0


if __name__ == "__main__":
    sys.exit(main())
