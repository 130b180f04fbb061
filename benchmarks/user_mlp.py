"""A user-shaped problem: MLP hyper-cleaning, jboat against JBOAT (``boat-jit==1.1.1``,
Jittor) and BOAT (``boat-torch==1.1.1``, PyTorch CPU), issue 17 item 3.

    python -m benchmarks.user_mlp                  # 3 rounds, order rotated, every row
    python -m benchmarks.user_mlp --quick          # jboat only, tiny sizes, 1 round (results/quick/)
    python -m benchmarks.user_mlp --methods RAD --rows jboat,boattorch --rounds 1

The committed results were made with the defaults (``--per-lock 6``: the Jittor lock is
held around each group of 6 consecutive workers, fewer waits on a shared machine;
``--per-lock 1`` takes it per worker; ``--upstream-cg-timeout 90``) plus a round of RAD
for jboat and BOAT back to back (``--rounds 1 --methods RAD --rows
jboat,boattorch,jboat-1t,boattorch-1t``, appended as round 3).

Problem (written as users write it: ``benchmarks/user_mlp_jt.py`` for jboat and JBOAT,
``benchmarks/user_mlp_torch.py`` for BOAT): per-example weights sigmoid(x_i), one upper
logit per training example, for n = 2,000 MNIST-shaped synthetic examples (NumPy, fixed
seed: 784 features, 10 classes, half of the training labels replaced by another label);
lower level an MLP 784-256-10 (``jt.nn.Linear`` / ``torch.nn.Linear``, one ReLU) trained on
the weighted cross-entropy, upper level the cross-entropy on 1,000 clean validation
examples. The MLP starts from the same NumPy weights in every framework (torch's default
initialisation law, seed 1) and x = 0. Lower SGD (lr 0.1), K = 10 inner steps, the inner
loop's last weights kept (``copy_last_param``); upper SGD (lr ``UL_LR``; JBOAT applies
plain SGD whatever the optimizer, so all frameworks use it).

Methods: NGD + RAD, NGD + CG (k = 10, tolerance 1e-10), NGD + FD (r = 0.01: the DARTS
formula, gradients of f at y_0 -+ eps v with v = grad_y F(y_K)), and VFO (K = 10, the
settings of ``benchmarks.first_order``), the first-order solver every framework has.

Rows (each a process of the framework's own venv, under ``flock`` of the Jittor lock):
``jboat`` (its default: oneDNN from PyPI, OpenMP threads = ``OMP_NUM_THREADS`` or the
cores), ``jboat-1t`` (``OMP_NUM_THREADS=1``), ``boatjit`` (as a user installs it here:
``use_mkl=0 nvcc_path=``), ``boatjit-onednn`` (``use_mkl=1`` with jboat's ``libdnnl.so.2``
in ``LD_PRELOAD`` and the oneDNN folder jboat laid out), ``boattorch`` (torch with as many
threads as jboat's oneDNN) and ``boattorch-1t``.

Timed: one whole ``run_iter`` (an outer iteration: K inner steps, the hyper-gradient, the
upper update; ended by a sync for Jittor), median of the iterations after the first one
(reported apart: compilation) and ``--warmup`` more. For the upstream packages that
includes what their ``run_iter`` always does besides (two loss evaluations on the real
models, the JSON loss log; printing goes to a null stream). After every iteration, outside
the timed part, the upper loss F on the real models is evaluated (same code everywhere):
where methods are the same the frameworks must agree. Results:
``results/user_mlp.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.rounds import RESULTS, ROOT, progress, publish, rotated, run_worker

SIZES = {"full": {"n": 2000, "n_val": 1000, "d": 784, "h": 256, "c": 10, "K": 10},
         "quick": {"n": 64, "n_val": 32, "d": 32, "h": 16, "c": 4, "K": 2}}
METHODS = ("RAD", "CG", "FD", "VFO")
LL_LR, UL_LR = 0.1, 100.0
CG = {"k": 10, "tolerance": 1e-10}
FD = {"r": 0.01}
LOCK = "/tmp/jboat-jittor.lock"
JITTOR_ENV = {"nvcc_path": "", "FIX_TORCH_ERROR": "0", "log_silent": "1"}


def default_threads() -> int:
    """The threads jboat's oneDNN (GNU OpenMP) uses: ``OMP_NUM_THREADS`` or the cores."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return os.cpu_count() or 1


def rows(threads: int) -> dict:
    """Row name -> (framework, environment of the worker, torch threads)."""
    dnnl = str(Path(sys.prefix) / "lib" / "libdnnl.so.2")
    jt_env = {**JITTOR_ENV, "OMP_NUM_THREADS": None, "LD_PRELOAD": None}
    return {
        "jboat": ("jboat", {**jt_env, "use_mkl": None, "JBOAT_DEVICE": "cpu"}, None),
        "jboat-1t": ("jboat", {**jt_env, "use_mkl": None, "JBOAT_DEVICE": "cpu",
                               "OMP_NUM_THREADS": "1"}, None),
        "boatjit": ("boatjit", {**jt_env, "use_mkl": "0"}, None),
        "boatjit-onednn": ("boatjit", {**jt_env, "use_mkl": "1", "LD_PRELOAD": dnnl}, None),
        "boattorch": ("boattorch", {"OMP_NUM_THREADS": str(threads)}, threads),
        "boattorch-1t": ("boattorch", {"OMP_NUM_THREADS": "1"}, 1),
    }


LABELS = {"jboat": "jboat (oneDNN, default)", "jboat-1t": "jboat, OMP_NUM_THREADS=1",
          "boatjit": "JBOAT (use_mkl=0)", "boatjit-onednn": "JBOAT + same oneDNN",
          "boattorch": "BOAT (torch)", "boattorch-1t": "BOAT (torch), 1 thread"}


# -- the problem (framework-free) --------------------------------------------------------
def make_data(n: int, n_val: int, d: int, c: int, seed: int = 0) -> dict:
    """MNIST-shaped synthetic classification data: pixels in [0, 1] around a template per
    class; half of the training labels replaced by another label."""
    rng = np.random.RandomState(seed)
    templates = (rng.rand(c, d) < 0.2).astype(np.float64)

    def draw(m):
        y = rng.randint(0, c, m)
        X = np.clip(0.6 * templates[y] + 0.35 * rng.rand(m, d), 0.0, 1.0)
        return X.astype(np.float32), y

    Xtr, ytr = draw(n)
    Xval, yval = draw(n_val)
    corrupted = np.zeros(n, bool)
    corrupted[rng.choice(n, n // 2, replace=False)] = True
    ytr = ytr.copy()
    ytr[corrupted] = (ytr[corrupted] + rng.randint(1, c, corrupted.sum())) % c
    return {"Xtr": Xtr, "ytr": ytr, "Xval": Xval, "yval": yval, "corrupted": corrupted}


def init_weights(d: int, h: int, c: int, seed: int = 1) -> dict:
    """The MLP's start, torch's default law (uniform, bound 1/sqrt(fan_in)), float32."""
    rng = np.random.RandomState(seed)
    u = lambda shape, fan: rng.uniform(-1, 1, shape).astype(np.float32) / np.float32(
        np.sqrt(fan))
    return {"W1": u((h, d), d), "b1": u((h,), d), "W2": u((c, h), h), "b2": u((c,), h)}


def _vfo():
    from benchmarks.first_order import SETTINGS, _steps
    K, section = SETTINGS["VFO"]
    return K, _steps(section, LL_LR)


def _upstream_config(method, K, ll, ul, ll_opt, ul_opt, log, torch):
    if method == "VFO":
        from benchmarks.first_order import _upstream_config as fo_config
        K, section = _vfo()
        return fo_config("VFO", K, section, (ll, ul), (ll_opt, ul_opt), log, torch, LL_LR)
    cfg = {"fo_op": None, "gm_op": ["NGD"], "na_op": [method], "lower_iters": K,
           "return_grad": False, "accumulate_grad": False, "copy_last_param": True,
           "loss_log_path": log, "lower_level_model": ll, "upper_level_model": ul,
           "lower_level_var": list(ll.parameters()), "upper_level_var": list(ul.parameters()),
           "lower_level_opt": ll_opt, "upper_level_opt": ul_opt,
           "GDA": {"alpha_init": 0.5, "alpha_decay": 0.9}, "DI": {"lr": 0.1},
           "DM": {"auxiliary_v_lr": 0.1, "tau": 0.01, "p": 100, "mu0": 0.9, "eta0": 0.5,
                  "strategy": "s1"}, "RGT": {"truncate_iter": 0},
           "CG": dict(CG), "FD": dict(FD)}
    if torch:
        cfg["device"] = "cpu"
    return cfg


# -- one configuration in one process ----------------------------------------------------
def _omp_threads():
    """What GNU OpenMP (oneDNN's gomp build, Jittor's OpenMP ops) will use here."""
    try:
        return int(ctypes.CDLL("libgomp.so.1").omp_get_max_threads())
    except (OSError, AttributeError):
        return None


def _stepper(framework: str, method: str, size: str, torch_threads):
    """(step(t), upper_value(), info) for one framework."""
    sz = SIZES[size]
    data = make_data(sz["n"], sz["n_val"], sz["d"], sz["c"])
    init = init_weights(sz["d"], sz["h"], sz["c"])
    K = sz["K"]
    if framework == "boattorch":
        import torch

        if torch_threads:
            torch.set_num_threads(int(torch_threads))
        import boat_torch  # noqa: F401
        from boat_torch.boat_opt import Problem as Up

        from benchmarks import user_mlp_torch as obj
        ll, ul, llf, ulf = obj.build(data, init)
        ll_opt = torch.optim.SGD(ll.parameters(), lr=LL_LR)
        ul_opt = torch.optim.SGD(ul.parameters(), lr=UL_LR)
        info = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads()}
        sync = lambda: None
    else:
        if framework == "jboat":
            # jboat's import of Jittor: oneDNN laid out, libdnnl loaded, use_mkl=1. (A
            # plain ``import jittor`` after ``import jboat_core`` skips all that and, once
            # the oneDNN folder exists, fails: "libdnnl.so.2: cannot open shared object".)
            from jboat_core import import_jittor
            import_jittor()
        import jittor as jt

        from benchmarks import user_mlp_jt as obj
        ll, ul, llf, ulf = obj.build(data, init)
        ll_opt = jt.optim.SGD(ll.parameters(), LL_LR)
        ul_opt = jt.optim.SGD(ul.parameters(), UL_LR)
        mkl = getattr(jt.compile_extern, "mkl_ops", None) is not None
        info = {"jittor": jt.__version__, "use_mkl": os.environ.get("use_mkl"), "onednn_ops": mkl,
                "omp_threads": _omp_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                "LD_PRELOAD": os.environ.get("LD_PRELOAD")}
        sync = lambda: jt.sync_all(True)
    value = lambda: obj.upper_value(ulf, ul, ll)
    if framework == "jboat":
        from jboat_core import Problem
        from jboat_core.platform.onednn import status

        st = status()
        info["jboat_onednn"] = st.reason if st else None
        if method == "VFO":
            K, section = _vfo()
            cfg = {"fo_op": "VFO", "lower_iters": K, "VFO": section}
        else:
            cfg = {"gm_op": ["NGD"], "na_op": [method], "lower_iters": K,
                   "copy_last_param": True, "CG": dict(CG), "FD": dict(FD)}
        p = Problem(cfg, ll_objective=obj.ll_loss, ul_objective=obj.ul_loss, ll_model=ll,
                    ul_model=ul, ll_opt=ll_opt, ul_opt=ul_opt)

        def step(t):
            p.run_iter(llf, ulf, t)
            sync()
        return step, value, info
    if framework == "boatjit":
        import boat_jit  # noqa: F401
        from boat_jit.boat_opt import Problem as Up
        info["boat_jit"] = "1.1.1"
    fd, log = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    torch_ = framework == "boattorch"
    cfg = _upstream_config(method, K, ll, ul, ll_opt, ul_opt, log, torch_)
    mod = "user_mlp_torch" if torch_ else "user_mlp_jt"
    loss_cfg = {"lower_level_loss": {"function": f"benchmarks.{mod}.ll_loss"},
                "upper_level_loss": {"function": f"benchmarks.{mod}.ul_loss"}}
    with contextlib.redirect_stdout(io.StringIO()):
        p = Up(cfg, loss_cfg)
        p.build_ll_solver()
        p.build_ul_solver()

    def step(t):
        with contextlib.redirect_stdout(io.StringIO()):
            p.run_iter(llf, ulf, t)
        sync()
    return step, value, info


def worker(framework: str, method: str, size: str, warmup: int, reps: int,
           torch_threads=None) -> dict:
    """Time ``1 + warmup + reps`` outer iterations of one configuration."""
    sys.path.insert(0, str(ROOT))
    out = {"framework": framework, "method": method, "size": size}
    try:
        t0 = time.perf_counter()
        step, value, info = _stepper(framework, method, size, torch_threads)
        out["setup_s"] = time.perf_counter() - t0
        out["info"] = info
        out["upper_loss_start"] = value()
        times, losses = [], []
        for t in range(1 + warmup + reps):
            t1 = time.perf_counter()
            step(t)
            times.append(time.perf_counter() - t1)
            losses.append(value())
            if not np.isfinite(losses[-1]):
                raise FloatingPointError(f"upper loss {losses[-1]} after iteration {t}")
        out.update(ok=True, first_s=times[0], times_s=times, loadavg=os.getloadavg(),
                   median_s=statistics.median(times[1 + warmup:]), upper_losses=losses)
    except Exception as exc:  # noqa: BLE001  (an upstream failure is a result too)
        out.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:400])
    return out


# -- the report ----------------------------------------------------------------------------
def _clean(error: str) -> str:
    import re
    error = re.sub(r"\x1b\[[0-9;]*m", "", str(error).split("Failed reason:")[-1])
    error = re.sub(r"\[[a-z] \d{4} [\d:.]+ \d+ [\w.]+:\d+\]\s*", "", error)
    return " ".join(error.split())[:140]


def _threads(rec) -> str:
    info = rec.get("info") or {}
    if "torch" in info:
        return f"torch {info['threads']}"
    if info.get("onednn_ops"):
        return f"oneDNN {info.get('omp_threads')}, Jittor 1"
    return "Jittor 1"


def report(records: list[dict]) -> str:
    """Markdown: per method and row, ms per iteration (median of the per-round medians,
    min-max over rounds), first iteration, ratio to BOAT (same threads and 1 thread) with
    the spread of the per-round ratios, upper loss after the last iteration all rows ran."""
    names = [r for r in LABELS if any(x["row"] == r for x in records)]
    lines = [("| method | row | threads | ms / outer it. (min-max) | first it. s | "
              "/ BOAT (min-max) | / BOAT 1 thread (min-max) | upper loss after it. N |"),
             "|---|---|---|---|---|---|---|---|"]
    for method in METHODS:
        rs = {n: [r for r in records if r["method"] == method and r["row"] == n] for n in names}
        ok = {n: [r for r in v if r.get("ok")] for n, v in rs.items()}
        if not any(rs.values()):
            continue
        common = min((len(r["upper_losses"]) for v in ok.values() for r in v), default=0)
        for n in names:
            if not rs[n]:
                continue
            if not ok[n]:
                err = _clean(rs[n][0].get("error", ""))
                lines.append(f"| {method} | {LABELS[n]} | - | failed: {err} | - | - | - | - |")
                continue
            meds = [1e3 * r["median_s"] for r in ok[n]]
            cell = (f"{statistics.median(meds):.1f} ({min(meds):.1f}-{max(meds):.1f})"
                    if len(meds) > 1 else f"{meds[0]:.1f}")
            first = statistics.median(r["first_s"] for r in ok[n])
            ratio = {}
            for anchor in ("boattorch", "boattorch-1t"):
                per = []
                for r in ok[n]:
                    a = [x["median_s"] for x in ok.get(anchor, []) if x["round"] == r["round"]]
                    if a:
                        per.append(r["median_s"] / a[0])
                ratio[anchor] = (f"{statistics.median(per):.2f} ({min(per):.2f}-{max(per):.2f})"
                                 if per else "-")
            loss = statistics.median(r["upper_losses"][common - 1] for r in ok[n]) \
                if common else float("nan")
            lines.append(f"| {method} | {LABELS[n]} | {_threads(ok[n][0])} | {cell} | "
                         f"{first:.1f} | {ratio['boattorch']} | {ratio['boattorch-1t']} | "
                         f"{loss:.5f} (N={common}) |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="jboat only, n=64, 32-16-4 MLP, K=2, 1 round (results/quick/)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--rows", default=None, help="default: all (" + ",".join(LABELS) + ")")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--slow-reps", type=int, default=3,
                    help="timed iterations of JBOAT without oneDNN (5-9 s each)")
    ap.add_argument("--slow-warmup", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=200)
    ap.add_argument("--upstream-cg-timeout", type=float, default=90,
                    help="JBOAT's CG (it compiles new kernels every iteration, never ends)")
    ap.add_argument("--lock", default=LOCK, help="flock file per worker ('' for none)")
    ap.add_argument("--per-lock", type=int, default=6,
                    help="workers run one after the other under one hold of the lock "
                         "(fewer waits on a shared machine; 1: the lock per worker)")
    ap.add_argument("--threads", type=int, default=None,
                    help="BOAT's torch threads (default: jboat's oneDNN threads)")
    ap.add_argument("--report", action="store_true", help="only rewrite the table")
    ap.add_argument("--merge", action="store_true",
                    help="keep results/user_mlp.json's records of the other (row, method)s")
    ap.add_argument("--python", action="append", default=[], metavar="FW=PATH")
    ap.add_argument("--tag", default="",
                    help="a run kept apart: results/user_mlp_TAG.{json,md} (e.g. a re-run of "
                         "some rows on another day)")
    args = ap.parse_args(argv)
    name = f"user_mlp_{args.tag}" if args.tag else "user_mlp"
    if args.report:
        table = report(json.loads((RESULTS / f"{name}.json").read_text()))
        (RESULTS / f"{name}.md").write_text(table)
        print(table)
        return 0
    threads = args.threads or default_threads()
    table = rows(threads)
    size = "quick" if args.quick else "full"
    if args.quick:
        names, args.rounds, args.warmup, args.reps = ["jboat"], 1, 1, 2
    else:
        names = (args.rows or ",".join(LABELS)).split(",")
    pythons = {"jboat": sys.executable, "boatjit": "/opt/bench-boatjit/bin/python",
               "boattorch": "/opt/bench-boattorch/bin/python"}
    pythons.update(dict(p.split("=", 1) for p in args.python))
    configs = [(n, m) for m in args.methods.split(",") for n in names]
    records, failed = [], set()
    held = None  # (lock file object, workers run under it) when --per-lock > 1
    for i, (k, (n, m)) in enumerate(rotated(configs, args.rounds)):
        fw, env, tthreads = table[n]
        if (n, m) in failed:  # a time-out or crash is not retried in later rounds
            continue
        slow = n == "boatjit"
        warmup, reps = (args.slow_warmup, args.slow_reps) if slow else (args.warmup, args.reps)
        lock = args.lock or None
        if lock and args.per_lock > 1:  # one flock for a group of consecutive workers
            if held and held[1] >= args.per_lock:
                held[0].close()
                held = None
            if held is None:
                import fcntl
                fh = open(lock, "a")  # noqa: SIM115  (held across iterations)
                fcntl.flock(fh, fcntl.LOCK_EX)
                held = [fh, 0]
            held[1] += 1
            lock = None
        limit = args.upstream_cg_timeout if (fw == "boatjit" and m == "CG") else args.timeout
        rec = run_worker(pythons[fw], "user_mlp", (fw, m, size, warmup, reps, tthreads),
                         {"framework": fw, "method": m, "size": size}, limit,
                         600, env=env, lock=lock)
        rec.update(row=n, round=k)
        records.append(rec)
        if not rec.get("ok"):
            failed.add((n, m))
        state = (f"{1e3 * rec['median_s']:.1f} ms, first {rec['first_s']:.1f} s, "
                 f"F {rec['upper_losses'][-1]:.5f}" if rec.get("ok") else
                 _clean(rec.get("error", "")))
        progress(f"round {k}: {n:15s} {m:4s} {state}")
        if not args.quick:  # what has finished so far survives an interrupted run
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"{name}.partial.json").write_text(json.dumps(records, indent=1) + "\n")
    if held:
        held[0].close()
    text = report(records)
    if args.quick:
        out = RESULTS / "quick"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(records, indent=1) + "\n")
        (out / f"{name}.md").write_text(text)
        print(text)
    else:
        if args.merge and (RESULTS / f"{name}.json").exists():
            done = {(r["row"], r["method"]) for r in records}
            kept = [r for r in json.loads((RESULTS / f"{name}.json").read_text())
                    if (r["row"], r["method"]) not in done]
            records = kept + records
            text = report(records)
        publish(name, records, text)
        (RESULTS / f"{name}.partial.json").unlink(missing_ok=True)
    return 0 if all(r.get("ok") for r in records if r["row"].startswith("jboat")) else 1


if __name__ == "__main__":
    sys.exit(main())
