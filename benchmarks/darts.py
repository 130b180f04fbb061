"""DARTS search step: jboat against JBOAT (``boat-jit==1.1.1``) on the same supernet and
batch (issue 10).

    python -m benchmarks.darts                      # 3 rounds, order rotated each round
    python -m benchmarks.darts --rounds 5 --chains FD --python boatjit=/opt/bench-boatjit/bin/python

One configuration (framework x chain) per process, with the framework's own venv (the
boat-jit venv of benchmarks/README.md). The supernet is ``jboat_core.testing.networks.
SuperNet`` (8 channels, 3 nodes: 6 mixed edges of 4 operations, Conv-BN stem; 8x8 digits,
batch 64 for each level), the settings those of ``examples/darts_digits.toml``: one SGD
step (momentum 0.9, weight decay 3e-4, lr 0.05) on the weights, Adam (3e-3, betas 0.5 /
0.999, weight decay 1e-3) on the architecture logits, ``copy_last_param``. Chains: RAD
(JBOAT's NAS config: NGD + RAD, K = 1) and FD (second-order DARTS). ``bare`` is the RAD
step written by hand in Jittor (no framework, no checks): the floor of this math.
Jittor settings: jboat and ``bare`` as jboat sets Jittor up (oneDNN on, the default);
JBOAT as a user installs it on this offline machine (``use_mkl=0``) and, beside it,
``boatjit-onednn``: JBOAT with the same oneDNN (``use_mkl=1``, the folder jboat lays out).
Every worker holds ``/tmp/jboat-jittor.lock`` while it runs (``--lock ''``: none).

Timed: one whole ``run_iter`` (a search step: inner step, hyper-gradient, both updates),
after a first call (compilation, reported apart) and 3 warm-up calls; median of 20. For
JBOAT this includes what its ``run_iter`` always does besides: printing (to a null
stream), evaluating both losses on the real models, rewriting its JSON loss log.
Nothing asserts: the record goes to ``benchmarks/results/darts.json`` and a table to
``benchmarks/results/darts.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time

from benchmarks.rounds import RESULTS, ROOT, progress, publish, rotated, run_worker
FRAMEWORKS = ("jboat", "bare", "boatjit", "boatjit-onednn")
ENV = {"boatjit-onednn": {"use_mkl": "1"}, "boatjit": {"use_mkl": "0"}}


def _env(framework: str = "jboat"):
    from benchmarks.envsetup import prepare
    prepare(framework)


def _setup(seed: int = 0):
    from jboat_core.testing.networks import SuperNet, digits, jt

    jt.set_global_seed(seed)
    net = SuperNet(channels=8, nodes=3, seed=seed)
    train, val, _ = digits(64, 64, seed=seed)
    ll_opt = jt.optim.SGD(net.weights(), 0.05, momentum=0.9, weight_decay=3e-4)
    ul_opt = jt.optim.Adam([net.alphas], 3e-3, betas=(0.5, 0.999), weight_decay=1e-3)
    return jt, net, train, val, ll_opt, ul_opt


def _jboat_step(chain: str):
    from benchmarks.darts_objectives import ll_loss, ul_loss
    from jboat_core import Problem

    jt, net, train, val, ll_opt, ul_opt = _setup()
    prob = Problem({"na_op": [chain], "lower_iters": 1, "copy_last_param": True},
                   ll_objective=ll_loss, ul_objective=ul_loss, ll_model=net, ul_model=net,
                   ll_var=net.weights(), ul_var=[net.alphas], ll_opt=ll_opt, ul_opt=ul_opt)
    state = {"it": 0}

    def step():
        prob.run_iter(train, val, state["it"])
        state["it"] += 1
    return step, {"jittor": jt.__version__}


def _bare_step(chain: str):
    """The same search step written by hand in Jittor (no checks, no framework): the floor
    any Jittor code of this math starts from. RAD only (FD's extra gradients are the
    same kernels)."""
    from benchmarks.darts_objectives import ll_loss, ul_loss
    from jboat_core.numerics.functional import FunctionalModel

    jt, net, train, val, ll_opt, ul_opt = _setup()
    W = net.weights()
    state = {"v": [p * 0 for p in W]}

    def step():
        fm = FunctionalModel(net, variables=W)
        g = jt.grad(ll_loss(train, net, fm, params=W), W)
        v = [vi * 0.9 + gi + p * 3e-4 for vi, gi, p in zip(state["v"], g, W)]
        y1 = [p - vi * 0.05 for p, vi in zip(W, v)]
        ga = jt.grad(ul_loss(val, net, fm, params=y1), [net.alphas])[0]
        ul_opt.step((net.alphas * ga.detach()).sum())
        for p, q in zip(W, y1):
            p.update(q.detach())
        state["v"] = [vi.detach() for vi in v]
        jt.sync(W + state["v"] + [net.alphas])
    return step, {"jittor": jt.__version__}


def _boatjit_step(chain: str):
    import boat_jit
    from boat_jit.boat_opt import Problem

    jt, net, train, val, ll_opt, ul_opt = _setup()
    fd, log = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cfg = {"fo_op": None, "gm_op": ["NGD"], "na_op": [chain], "lower_iters": 1,
           "return_grad": False, "accumulate_grad": False, "copy_last_param": True,
           "loss_log_path": log, "lower_level_model": net, "upper_level_model": net,
           "lower_level_var": net.weights(), "upper_level_var": [net.alphas],
           "lower_level_opt": ll_opt, "upper_level_opt": ul_opt,
           "GDA": {"alpha_init": 0.5, "alpha_decay": 0.9}, "DI": {"lr": 0.1},
           "DM": {"auxiliary_v_lr": 0.1, "tau": 0.01, "p": 100, "mu0": 0.9, "eta0": 0.5,
                  "strategy": "s1"}, "RGT": {"truncate_iter": 0},
           "CG": {"k": 10, "tolerance": 1e-10}, "FD": {"r": 1e-2}}
    loss_cfg = {"lower_level_loss": {"function": "benchmarks.darts_objectives.ll_loss"},
                "upper_level_loss": {"function": "benchmarks.darts_objectives.ul_loss"}}
    p = Problem(cfg, loss_cfg)
    with contextlib.redirect_stdout(io.StringIO()):
        p.build_ll_solver()
        p.build_ul_solver()
    state = {"it": 0}

    def step():
        with contextlib.redirect_stdout(io.StringIO()):
            p.run_iter(train, val, state["it"])
        state["it"] += 1
    return step, {"jittor": jt.__version__, "boat_jit": getattr(boat_jit, "__version__",
                                                                 "1.1.1")}


def worker(framework: str, chain: str, warmup: int, reps: int) -> dict:
    sys.path.insert(0, str(ROOT))
    _env(framework)
    make = {"jboat": _jboat_step, "bare": _bare_step, "boatjit": _boatjit_step,
            "boatjit-onednn": _boatjit_step}[framework]
    out = {"framework": framework, "chain": chain}
    try:
        t0 = time.perf_counter()
        step, info = make(chain)
        out["setup_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        step()
        out["first_s"] = time.perf_counter() - t1
        for _ in range(warmup):
            step()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        from benchmarks.envsetup import describe
        out.update(info={**info, **describe()}, times_s=times, median_s=statistics.median(times), ok=True)
    except Exception as exc:  # recorded: an upstream failure is a result too
        out.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:400])
    return out


def _run_one(python: str, framework: str, chain: str, warmup: int, reps: int,
             timeout: float, lock: str | None = None) -> dict:
    return run_worker(python, "darts", (framework, chain, warmup, reps),
                      {"framework": framework, "chain": chain}, timeout,
                      env=ENV.get(framework), lock=lock)


def _clean(error: str) -> str:
    """Jittor's error text without colour codes and log prefixes, one line."""
    import re
    error = re.sub(r"\x1b\[[0-9;]*m", "", error.split("Failed reason:")[-1])
    error = re.sub(r"\[[a-z] \d{4} [\d:.]+ \d+ [\w.]+:\d+\]\s*", "", error)
    return " ".join(error.split())[:160]


def _ratios(mine: list[dict], theirs: list[dict]) -> str:
    """Median and min-max over rounds of my per-round median over theirs."""
    rounds = sorted({r["round"] for r in mine} & {r["round"] for r in theirs})
    if not rounds:
        return "-"
    ratios = [next(r["median_s"] for r in mine if r["round"] == k)
              / next(r["median_s"] for r in theirs if r["round"] == k) for k in rounds]
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def report(records: list[dict]) -> str:
    """Markdown table: median of the per-round medians, ratio jboat / JBOAT with the
    spread of the per-round ratios."""
    lines = ["| chain | jboat ms/step | hand-written Jittor ms/step | JBOAT ms/step | "
             "JBOAT + oneDNN ms/step | jboat / JBOAT (min-max over rounds) | "
             "jboat / JBOAT + oneDNN | first call jboat / JBOAT (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for chain in sorted({r["chain"] for r in records}):
        by = {fw: [r for r in records if r["chain"] == chain and r["framework"] == fw]
              for fw in FRAMEWORKS}
        ok = {fw: [r for r in rs if r.get("ok")] for fw, rs in by.items()}
        med = {fw: statistics.median(r["median_s"] for r in ok[fw]) if ok[fw] else None
               for fw in FRAMEWORKS}
        cell = {fw: f"{1e3 * med[fw]:.1f}" if med[fw] else "-" for fw in FRAMEWORKS}
        if not ok["jboat"] or not ok["boatjit"]:
            err = next((r.get("error") for rs in by.values() for r in rs if not r.get("ok")), "")
            err = _clean(err)
            lines.append(f"| {chain} | {cell['jboat']} | {cell['bare']} | failed: {err} | "
                         f"{cell['boatjit-onednn']} | - | - | - |")
            continue
        spread = {fw: _ratios(ok["jboat"], ok[fw]) for fw in ("boatjit", "boatjit-onednn")}
        first = {fw: statistics.median(r["first_s"] for r in ok[fw]) for fw in ("jboat", "boatjit")}
        lines.append(f"| {chain} | {cell['jboat']} | {cell['bare']} | {cell['boatjit']} | "
                     f"{cell['boatjit-onednn']} | {spread['boatjit']} | "
                     f"{spread['boatjit-onednn']} | "
                     f"{first['jboat']:.1f} / {first['boatjit']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chains", default="RAD,FD")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--report", action="store_true",
                    help="only rewrite results/darts.md from results/darts.json")
    ap.add_argument("--lock", default="/tmp/jboat-jittor.lock",
                    help="flock file held around each worker ('' : none)")
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                    help="comma-separated subset of " + ",".join(FRAMEWORKS))
    ap.add_argument("--tag", default="", help="write results/darts_TAG.{json,md} instead")
    ap.add_argument("--python", action="append", default=[], metavar="FW=PATH",
                    help="interpreter of a framework (default boatjit=/opt/bench-boatjit/bin/python)")
    args = ap.parse_args(argv)
    if args.report:
        table = report(json.loads((RESULTS / "darts.json").read_text()))
        (RESULTS / "darts.md").write_text(table)
        print(table)
        return 0
    pythons = {"jboat": sys.executable, "bare": sys.executable,
               "boatjit": "/opt/bench-boatjit/bin/python",
               "boatjit-onednn": "/opt/bench-boatjit/bin/python"}
    pythons.update(dict(p.split("=", 1) for p in args.python))
    records = []
    chosen = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = sorted(set(chosen) - set(FRAMEWORKS))
    if unknown or not chosen:
        ap.error(f"--frameworks: unknown {unknown or 'none given'}; choose from "
                 + ",".join(FRAMEWORKS))
    configs = [(fw, ch) for ch in args.chains.split(",") for fw in FRAMEWORKS
               if fw in chosen and not (fw == "bare" and ch != "RAD")]
    for k, (fw, ch) in rotated(configs, args.rounds):
        rec = _run_one(pythons[fw], fw, ch, args.warmup, args.reps, args.timeout,
                       args.lock or None)
        rec["round"] = k
        records.append(rec)
        state = f"{1e3 * rec['median_s']:.1f} ms" if rec.get("ok") else rec.get("error")
        progress(f"round {k}: {fw:8s} {ch:4s} {state}")
    publish(f"darts_{args.tag}" if args.tag else "darts", records, report(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
