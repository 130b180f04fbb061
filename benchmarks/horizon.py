"""Long inner horizons in bounded memory (issue 19 item 3): peak memory and time per
hyper-iteration of the full unroll, checkpointed reverse mode, forward mode and CG as K grows.

    python -m benchmarks.horizon                 # the committed table (3 rounds, rotated)
    python -m benchmarks.horizon --quick         # tiny sizes, 1 round (results/quick/)
    python -m benchmarks.horizon --problems ridge --K 10,100 --methods full,ckpt-sqrt

(``benchmarks/memory.py`` already holds the /proc helpers every benchmark shares, hence
this module's name.)

Problems:

* ``ridge``: the "large" ridge of ``benchmarks.problems`` (x, y in R^5000, n = 1,000
  examples per level, f = |A1 y - b1|^2/(2n) + 1/2 sum exp(x_i) y_i^2, F = |A2 y - b2|^2/(2n)),
  lower SGD with lr = 1/L (as ``benchmarks.worker``), y_0 the generic start point, the
  objectives of ``benchmarks.adapters.jt_objectives`` (what JBOAT and BOAT run too).
* ``convbn``: hyper-cleaning on the Conv-BN network of ``jboat_core.testing.networks``
  (conv 3x3 with 4 channels, BatchNorm, ReLU, mean pool, linear; scikit-learn's 8x8
  digits, 512 training and 512 validation examples, one upper logit per training example,
  f = mean sigmoid(x_i) CE_i, F = validation CE, as ``tests/test_real_networks.py``),
  lower SGD lr 0.1.

Methods (jboat, ``Problem.evaluate``: one hyper-gradient, nothing updated, so every
repetition starts from the same point):

* ``full``: NGD + RAD, the whole trajectory kept (``checkpoint_every = 0``);
* ``ckpt-sqrt`` / ``ckpt-10``: the same with ``checkpoint_every = "sqrt"`` / ``10``;
* ``fmd-lr``: NGD + FMD with the inner **learning rate** as the only upper variable (one
  scalar; the per-feature weights (5,000) and per-example weights (512) are above FMD's
  ``max_scalars`` = 256 and refused: forward mode is for few hyper-parameters);
* ``cg``: NGD + CG (k = 10), the inner loop untracked: the flat reference;
* ``boatjit`` / ``boattorch`` (ridge only): upstream RAD through
  ``benchmarks.adapters.{boatjit,boattorch}`` in ``/opt/bench-boatjit`` and
  ``/opt/bench-boattorch`` (JBOAT as a user installs it here, ``use_mkl=0``; BOAT torch
  2.13 CPU, 1 thread).

Memory: one fresh process per configuration; **baseline** = the resident set (VmRSS of
``/proc/self/status``) after imports, data and the problem's construction, where the
high-water mark is also reset to it (``/proc/self/clear_refs`` = 5: the set-up's NumPy
float64 temporaries peak above what stays); **peak** = the process's high-water resident
set (VmHWM) after a warm-up hyper-iteration and the timed ones; reported: peak - baseline
(MB). Jittor allocates
outside Python's heap through its own caching allocator, which keeps freed blocks, so the
resident set is what the process really holds; tracemalloc would see nothing. The Jittor
allocator's own count of live bytes (``jt.flags.stat_allocator_total_alloc_byte`` -
``..._free_byte``) is not a peak, so it is not used. What is above the baseline also
holds the kernels compiled and loaded by the first iteration (a few MB, the same for
every K): the growth between two K is what the trajectory costs.

Time: median of ``reps`` timed hyper-iterations after one warm-up (compilation) at the
same K; for K >= ``--big`` (default 1,000) the warm-up runs at K = 10 (checkpointed: two
segments of the timed length s and one as long as the timed run's last, K mod s or s:
their fused kernels differ from a short loop's and from each other) and one iteration is
timed; a configuration whose worker took more than ``--once-above``
seconds (default 40) is measured in the first round only. The Jittor lock (``--lock``) is taken around each worker.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = {"jboat": sys.executable, "boatjit": "/opt/bench-boatjit/bin/python",
          "boattorch": "/opt/bench-boattorch/bin/python"}
METHODS = ("full", "ckpt-sqrt", "ckpt-10", "fmd-lr", "cg", "boatjit", "boattorch")
LABEL = {"full": "RAD, full unroll", "ckpt-sqrt": "RAD, checkpoint_every=\"sqrt\"",
         "ckpt-10": "RAD, checkpoint_every=10", "fmd-lr": "FMD (inner lr as upper var.)",
         "cg": "CG (k = 10)", "boatjit": "JBOAT RAD (boat-jit 1.1.1)",
         "boattorch": "BOAT RAD (boat-torch 1.1.1)"}
#: K per problem in the committed run; sizes of --quick.
K_LIST = {"ridge": (10, 100, 1000, 10000), "convbn": (10, 100, 1000)}
SIZES = {"ridge": {"full": "large", "tiny": "small"}, "convbn": {"full": 512, "tiny": 16}}


def _framework(method: str) -> str:
    return method if method in ("boatjit", "boattorch") else "jboat"


# -- one configuration in one process ---------------------------------------------------
def _ridge(method: str, size: str):
    """(evaluate() -> host array, info) for the ridge problem."""
    import numpy as np

    from .methods import lower_lr
    from .problems import make_problem

    prob = make_problem("ridge", size)
    lr = lower_lr(prob)
    y0 = prob.y_generic
    if method in ("boatjit", "boattorch"):
        import importlib

        from .methods import BY_NAME, OP_CONFIG
        bench = importlib.import_module(f"benchmarks.adapters.{method}").setup(
            prob, BY_NAME["RAD"], y0, lr, OP_CONFIG)
        return bench.step, {"lr": lr, "dim_y": prob.dim_y, "dim_x": prob.dim_x}

    from jboat_core import Problem
    from jboat_core.platform._jittor import jittor
    jt = jittor()
    from .adapters import jt_objectives as obj

    ll, ul, ll_feed, ul_feed = obj.build(prob, y0)
    ll_var = list(ll.parameters())
    cfg, ul_var, opt_lr = _chain(method), list(ul.parameters()), lr
    if method == "fmd-lr":
        opt_lr = jt.array(np.float32([lr]))
        ul_var = [opt_lr]
    def build(K):
        return Problem({"lower_iters": K, "return_grad": True, "copy_last_param": False,
                        **cfg},
                       ll_objective=obj.ll_loss, ul_objective=obj.ul_loss, ll_model=ll,
                       ul_model=ul, ll_var=ll_var, ul_var=ul_var,
                       ll_opt=jt.optim.SGD(ll_var, opt_lr), ul_opt=jt.optim.SGD(ul_var, 0.01))

    return _evaluator(build, ll_feed, ul_feed), {"lr": lr, "dim_y": prob.dim_y,
                                                 "dim_x": int(ul_var[0].numel())}


def _convbn(method: str, n: int):
    import numpy as np

    from jboat_core import Problem
    from jboat_core.platform._jittor import jittor
    from jboat_core.testing.networks import ConvBNNet, digits
    jt = jittor()

    jt.set_global_seed(0)
    train, val, _ = digits(n, n, seed=0)
    net = ConvBNNet()
    lower = [p for p in net.parameters() if not p.is_stop_grad()]

    class Weights(jt.nn.Module):
        def __init__(self):
            self.x = jt.array(np.random.RandomState(1).randn(n).astype("float32") * 0.5)

        def execute(self):
            return self.x

    w = Weights()
    eye = jt.array(np.eye(10, dtype=np.float32))

    def ce_per_example(logits, target):
        m = logits.max(1, keepdims=True).detach()
        lse = (logits - m).exp().sum(1).log() + m.reshape((-1,))
        return lse - (logits * eye[target]).sum(1)

    def f(feed, ul, ll, **kw):
        return (ul().sigmoid() * ce_per_example(ll(feed["data"], **kw), feed["target"])).mean()

    def F(feed, ul, ll, **kw):
        return ce_per_example(ll(feed["data"], **kw), feed["target"]).mean()

    ul_var, lr = [w.x], 0.1
    if method == "fmd-lr":
        lr = jt.array(np.float32([0.1]))
        ul_var = [lr]
    def build(K):
        return Problem({"lower_iters": K, "return_grad": True, "copy_last_param": False,
                        **_chain(method)},
                       ll_objective=f, ul_objective=F, ll_model=net, ul_model=w, ll_var=lower,
                       ul_var=ul_var, ll_opt=jt.optim.SGD(lower, lr),
                       ul_opt=jt.optim.SGD(ul_var, 0.1))

    return _evaluator(build, train, val), {"n_train": n, "dim_y": sum(
        int(p.numel()) for p in lower), "dim_x": sum(int(v.numel()) for v in ul_var)}


#: The K whose segment length ``ckpt-sqrt`` uses (set by the worker to the timed K), so
#: that the warm-up at a smaller K compiles the timed run's kernels (the fused kernels
#: depend on the segment length: a warm-up at K = 10 with s = 4 left s = 32's to compile
#: inside the timed iteration).
SQRT_OF = {"K": None}


def _chain(method: str) -> dict:
    from jboat_core.numerics.tape import segment_length
    sqrt = segment_length("sqrt", SQRT_OF["K"]) if SQRT_OF["K"] else "sqrt"
    return {"full": {"na_op": ["RAD"]},
            "ckpt-sqrt": {"na_op": ["RAD"], "checkpoint_every": sqrt},
            "ckpt-10": {"na_op": ["RAD"], "checkpoint_every": 10},
            "fmd-lr": {"na_op": ["FMD"]},
            "cg": {"na_op": ["CG"], "CG": {"k": 10, "tolerance": 1e-10}}}[method]


def _evaluator(build, ll_feed, ul_feed):
    """``step(K)``: one hyper-gradient with K inner steps (a Problem per K, built once;
    ``evaluate`` updates nothing, so every call starts from the same point)."""
    import numpy as np
    problems = {}

    def step(K):
        if K not in problems:
            problems[K] = build(K)
        out = problems[K].evaluate(ll_feed, ul_feed, 0)
        return np.concatenate([g.numpy().ravel() for g in out["hyper_gradients"]])

    return step


#: A worker whose resident set passes this is stopped and recorded (the machine is shared).
MEM_CAP_MB = 8000


def _watch(limit_mb: float, spec: dict) -> None:
    """Print a failed record and exit if this process's RSS passes ``limit_mb``."""
    import threading

    from .memory import status_mb

    def loop():
        while True:
            time.sleep(0.2)
            rss = status_mb("VmRSS")
            if rss > limit_mb:
                print("@@" + json.dumps(dict(spec, ok=False, error=f"stopped: RSS {rss:.0f} MB "
                                             f"passed the {limit_mb:.0f} MB cap")), flush=True)
                os._exit(3)

    threading.Thread(target=loop, daemon=True).start()


def worker(spec: dict) -> dict:
    """Measure one (problem, method, K) in this process; returns its JSON record."""
    from .envsetup import prepare
    from .memory import reset_peak, status_mb

    fw = _framework(spec["method"])
    if spec.get("mem_cap_mb", MEM_CAP_MB):
        _watch(float(spec.get("mem_cap_mb", MEM_CAP_MB)), spec)
    if spec.get("prepare", True):  # False: called in a process whose environment is set
        prepare(fw)
    out = dict(spec, framework=fw, ok=False)
    try:
        K, big = int(spec["K"]), int(spec.get("big", 10000))
        t0 = time.perf_counter()
        if spec["problem"] == "ridge":
            step, info = _ridge(spec["method"], spec["size"])
        else:
            step, info = _convbn(spec["method"], int(spec["size"]))
        out.update(info=info, setup_s=time.perf_counter() - t0)
        import gc
        gc.collect()
        # the high-water mark of the set-up (NumPy float64 data, temporaries) is not the
        # method's: reset it to the resident set now (Linux clear_refs 5)
        out["peak_reset"] = reset_peak()
        base = status_mb("VmRSS")
        warm = K if K < big else min(10, K)
        SQRT_OF["K"] = None
        if spec["method"].startswith("ckpt") and K >= big:  # warm up with the timed s
            SQRT_OF["K"] = K
            seg = _chain(spec["method"])["checkpoint_every"]
            warm = min(K, 2 * seg + (K % seg or seg))  # the last segment's length too
        t1 = time.perf_counter()
        value = step(warm)
        out.update(warmup_K=warm, first_s=time.perf_counter() - t1)
        reps = 1 if K >= big else max(1, min(int(spec.get("reps", 5)), math.ceil(1000 / K)))
        times = []
        for _ in range(reps):
            t1 = time.perf_counter()
            value = step(K)
            times.append(time.perf_counter() - t1)
        peak = status_mb("VmHWM")
        import numpy as np
        out.update(ok=True, baseline_mb=base, peak_mb=peak, above_mb=peak - base,
                   rss_end_mb=status_mb("VmRSS"), times_s=times,
                   median_s=statistics.median(times), reps=reps,
                   grad_norm=float(np.linalg.norm(value)),
                   grad_head=[float(v) for v in np.asarray(value).ravel()[:3]])
    except Exception as exc:  # noqa: BLE001 - recorded (a refusal, an upstream bug)
        out["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:400]
    return out


# -- the run ------------------------------------------------------------------------------
def configs(problems, methods, Ks, skip) -> list[dict]:
    out = []
    for prob in problems:
        for K in Ks.get(prob, ()):
            for m in methods:
                if m in ("boatjit", "boattorch") and prob != "ridge":
                    continue
                why = skip.get((prob, m, K))
                out.append({"problem": prob, "method": m, "K": K, "skip": why})
    return out


#: (problem, method, K) -> why not measured in the committed run (extrapolated instead).
SKIP = {("ridge", "boatjit", 10000): "not run: 47 s per iteration at K = 1,000 measured, "
        "~8 min at K = 10,000 (JBOAT without oneDNN); extrapolated",
        ("ridge", "boattorch", 10000): "not run: time budget of the run; extrapolated",
        ("ridge", "ckpt-10", 10000): "not run: 1,000 segments; at K = 1,000 (100 segments) "
        "one iteration took 40-74 s (two runs), 14-35x the full unroll"}


def summarise(records: list) -> dict:
    """(problem, method, K) -> median / min / max of time and memory over rounds."""
    groups: dict = {}
    for r in records:
        groups.setdefault((r["problem"], r["method"], r["K"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        ok = [r for r in rs if r.get("ok")]
        if not ok:
            out[key] = {"error": next((r.get("error") or r.get("skip") for r in rs), "?")}
            continue
        ms = [1e3 * r["median_s"] for r in ok]
        mb = [r["above_mb"] for r in ok]
        out[key] = {"ms": statistics.median(ms), "ms_min": min(ms), "ms_max": max(ms),
                    "mb": statistics.median(mb), "mb_min": min(mb), "mb_max": max(mb),
                    "rounds": len(ok)}
    return out


def _cell(s: dict | None) -> tuple[str, str]:
    if s is None:
        return "-", "-"
    if "error" in s:
        return "-", s["error"][:120].replace("|", "/")
    t = lambda v: f"{v:.1f}" if v < 100 else f"{v:,.0f}"  # noqa: E731
    if s["rounds"] == 1:
        return f"{s['mb']:.0f} (1 round)", f"{t(s['ms'])} (1 round)"
    return (f"{s['mb']:.0f} ({s['mb_min']:.0f}-{s['mb_max']:.0f})",
            f"{t(s['ms'])} ({t(s['ms_min'])}-{t(s['ms_max'])})")


def table(summary: dict, problems, methods, Ks) -> str:
    lines = []
    for prob in problems:
        lines += [f"\n**{prob}** (MB above the process baseline / ms per hyper-iteration, "
                  "median (min-max) over rounds)\n",
                  "| method | " + " | ".join(f"K={K:,} MB | K={K:,} ms" for K in Ks[prob]) + " |",
                  "|---|" + "---|---|" * len(Ks[prob])]
        for m in methods:
            if m in ("boatjit", "boattorch") and prob != "ridge":
                continue
            cells = []
            for K in Ks[prob]:
                mb, ms = _cell(summary.get((prob, m, K)))
                cells += [mb, ms]
            lines.append(f"| {LABEL[m]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_LOCK: list = []


def _acquire(path: str) -> None:
    """Take ``path`` with flock(2) (the lock ``flock(1)`` takes too)."""
    import fcntl
    fh = open(path, "a")
    fcntl.flock(fh, fcntl.LOCK_EX)
    _LOCK.append(fh)


def _release(_round) -> None:
    while _LOCK:
        _LOCK.pop().close()


def targets(summary: dict) -> str:
    """Issue 19's targets, met or not, from the medians (growth = MB at K minus MB at 10)."""
    def get(p, m, K, key="mb"):
        v = summary.get((p, m, K)) or {}
        return v.get(key)

    lines = ["| target | measured | met? |", "|---|---|---|"]
    full_mb, full_ms = get("convbn", "full", 1000), get("convbn", "full", 1000, "ms")
    for m in ("ckpt-sqrt", "ckpt-10"):
        mb, ms = get("convbn", m, 1000), get("convbn", m, 1000, "ms")
        if None in (full_mb, full_ms, mb, ms):
            lines.append(f"| Conv-BN K=1,000, {LABEL[m]}: <= 1/5 memory, <= 1.5x time | "
                         "not measured | - |")
            continue
        ok = mb <= full_mb / 5 and ms <= 1.5 * full_ms
        lines.append(f"| Conv-BN K=1,000, {LABEL[m]}: <= 1/5 of the full unroll's memory "
                     f"at <= 1.5x its time | {mb:.0f} / {full_mb:.0f} MB = "
                     f"{mb / full_mb:.2f}, {ms:.0f} / {full_ms:.0f} ms = {ms / full_ms:.2f}x "
                     f"| {'met' if ok else 'not met'} |")
    g_full = None
    if get("ridge", "full", 10000) is not None and get("ridge", "full", 10) is not None:
        g_full = get("ridge", "full", 10000) - get("ridge", "full", 10)
    for m in ("ckpt-sqrt", "ckpt-10"):
        a, b = get("ridge", m, 10000), get("ridge", m, 10)
        if None in (a, b, g_full):
            lines.append(f"| ridge-large K=10,000, {LABEL[m]}: growth <= 1/10 | not measured | - |")
            continue
        lines.append(f"| ridge-large K=10,000, {LABEL[m]}: memory growth from K=10 <= 1/10 "
                     f"of the full unroll's | {a - b:.0f} / {g_full:.0f} MB = "
                     f"{(a - b) / g_full:.2f} | {'met' if a - b <= g_full / 10 else 'not met'} |")
    for p, K in (("ridge", 10000), ("convbn", 1000)):
        a, b = get(p, "fmd-lr", K), get(p, "fmd-lr", 10)
        f_a, f_b = get(p, "full", K), get(p, "full", 10)
        if None in (a, b):
            lines.append(f"| {p}: FMD flat in K | not measured | - |")
            continue
        ref = f"; full unroll {f_a - f_b:+.0f} MB" if None not in (f_a, f_b) else ""
        c_a, c_b = get(p, "cg", K), get(p, "cg", 10)
        cg = None if None in (c_a, c_b) else c_a - c_b
        ref += f"; CG, the untracked reference, {cg:+.0f} MB" if cg is not None else ""
        flat = cg is not None and a - b <= cg + 10
        verdict = ("met in the sense \"no more growth than CG's untracked loop\"; not "
                   "strictly flat" if flat and a - b > 10 else "met" if flat else "not met")
        lines.append(f"| {p}: FMD's memory flat in K (K=10 -> {K:,}) | {b:.0f} -> {a:.0f} MB, "
                     f"{a - b:+.0f} MB{ref} | {verdict} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from .rounds import RESULTS, progress, rotated, run_worker

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default="ridge,convbn")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--K", default=None, help="comma list (default: per problem)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--big", type=int, default=1000,
                    help="K from which the warm-up runs at K = 10 and one iteration is timed")
    ap.add_argument("--once-above", type=float, default=40.0, metavar="S",
                    help="a configuration whose first worker took more than S seconds is "
                    "not repeated in later rounds (the table gives its rounds)")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--lock", default="/tmp/jboat-jittor.lock", help="'' for none")
    ap.add_argument("--lock-per", choices=("round", "worker"), default="round",
                    help="hold the lock for a whole round (nothing else runs Jittor while "
                    "a round is timed; the default) or around each worker")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, K = 2 and 8, 1 round")
    ap.add_argument("--out", default=None, help="results name (default horizon)")
    args = ap.parse_args(argv)
    problems = [p for p in args.problems.split(",") if p]
    methods = [m for m in args.methods.split(",") if m]
    size = "tiny" if args.quick else "full"
    Ks = {p: tuple(int(k) for k in args.K.split(",")) if args.K else
          ((2, 8) if args.quick else K_LIST[p]) for p in problems}
    skip = {} if args.quick or args.K else SKIP
    rounds = 1 if args.quick else args.rounds
    todo = configs(problems, methods, Ks, skip)
    records, held, slow = [], None, set()
    for rnd, c in rotated(todo, rounds):
        if args.lock and args.lock_per == "round" and held != rnd:
            _release(held)
            held = rnd
            _acquire(args.lock)
        ident = {**c, "round": rnd}
        key = (c["problem"], c["method"], c["K"])
        if key in slow:
            continue
        if c["skip"]:
            records.append({**ident, "ok": False, "error": c["skip"]})
            continue
        python = PYTHON[_framework(c["method"])]
        if not os.path.exists(python):
            records.append({**ident, "ok": False, "error": f"{python} missing (see "
                            "benchmarks/README.md: How to run)"})
            continue
        spec = {"problem": c["problem"], "method": c["method"], "K": c["K"],
                "size": SIZES[c["problem"]][size], "reps": args.reps, "big": args.big}
        t0 = time.perf_counter()
        rec = run_worker(python, "horizon", (spec,), ident, args.timeout,
                         lock=args.lock if args.lock_per == "worker" and args.lock else None)
        rec.update(round=rnd, wall_s=time.perf_counter() - t0, load=os.getloadavg()[0])
        records.append(rec)
        if rec["wall_s"] > args.once_above:
            slow.add(key)
        progress(f"round {rnd} {c['problem']} {c['method']} K={c['K']}: " + (
            f"{rec['above_mb']:.0f} MB, {1e3 * rec['median_s']:.1f} ms" if rec.get("ok")
            else f"failed: {rec.get('error', '')[:200]}"))
    _release(held)
    summary = summarise(records)
    text = table(summary, problems, methods, Ks) + "\n" + targets(summary)
    name = args.out or ("quick/horizon" if args.quick else "horizon")
    (RESULTS / name).parent.mkdir(parents=True, exist_ok=True)
    doc = {"records": records, "summary": [{"problem": k[0], "method": k[1], "K": k[2], **v}
                                           for k, v in summary.items()],
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "cpu": os.cpu_count()}
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
