"""The Lasso and weighted-Lasso hyper-gradient, jboat against JAXopt (issue 33 item 6).

    ~/.venvs/jboat/bin/python -m benchmarks.lasso --rounds 3
    ~/.venvs/jboat/bin/python -m benchmarks.lasso --rounds 1 --data diabetes   # trial

Problem and per-side protocol: :mod:`benchmarks.lasso_data`. Sides, each a subprocess of
its own venv printing one JSON line: ``jboat`` (``~/.venvs/jboat/bin/python -m
benchmarks.lasso_jboat``) and ``jaxopt`` (``/opt/bench-jaxopt/bin/python -m
benchmarks.lasso_jaxopt``: ``jaxopt==0.8.5`` on JAX CPU). A side whose module does not
exist is reported as missing, not run.

Rounds: every (data, weighted) case runs each side once per round, the sides' order
rotated by one place each round; every process runs under ``flock`` of the Jittor lock
(no Jittor job of another agent runs meanwhile) and ``timeout -s KILL``. Threads are
set, not inherited: ``OMP_NUM_THREADS = MKL_NUM_THREADS = OPENBLAS_NUM_THREADS = T``
(``--threads``, default 1) and, at T = 1, ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1`` (XLA's CPU client has no thread-count flag above 1: at
T > 1 it uses every core).

Accuracy: the relative error ||g - g_ref||_2 / ||g_ref||_2 against the exact float64
hyper-gradient of :mod:`benchmarks.lasso_reference` (computed here, in jboat's venv).
Times: a round's value is the median of the side's timed calls in that process; a cell is
the median over rounds (min-max); the ratio jboat / JAXopt is the median (min-max) of the
per-round ratios. Writes ``results/lasso[_TAG].{json,md}`` and ``docs/lasso.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from benchmarks.rounds import ROOT, progress, publish

LOCK = "/tmp/jboat-jittor.lock"
SIDES = {
    "jboat": {"python": str(Path.home() / ".venvs/jboat/bin/python"),
              "module": "benchmarks.lasso_jboat", "label": "jboat"},
    "jaxopt": {"python": "/opt/bench-jaxopt/bin/python",
               "module": "benchmarks.lasso_jaxopt", "label": "JAXopt 0.8.5"},
}
JITTOR_ENV = {"nvcc_path": "", "FIX_TORCH_ERROR": "0", "log_silent": "1"}


def thread_env(threads: int) -> dict:
    """The environment variables that fix every side's thread count at ``threads``."""
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS")}
    env["XLA_FLAGS"] = ("--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
                        if threads == 1 else None)
    return env


def machine() -> dict:
    """nproc, the CPU model (``lscpu``), the load average and the date."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                      if ln.startswith("Model name")), "")
    except OSError:
        model = ""
    return {"nproc": os.cpu_count(), "cpu": model, "loadavg": list(os.getloadavg()),
            "date": date.today().isoformat()}


def run_side(side: str, data: str, weighted: int, env: dict, timeout: float,
             lock: str | None) -> dict:
    """One process of ``side`` on one case: its JSON record, or ``ok = False`` and why.
    The jboat side (it imports Jittor) always runs under ``flock`` (``lock`` or LOCK)."""
    lock = lock or (LOCK if side == "jboat" else None)
    ident = {"framework": side, "data": data, "weighted": weighted}
    spec = SIDES[side]
    module_file = ROOT / (spec["module"].replace(".", "/") + ".py")
    if not module_file.exists():
        return {**ident, "ok": False, "missing": True,
                "error": f"missing: {module_file.relative_to(ROOT)} does not exist yet"}
    if not Path(spec["python"]).exists():
        return {**ident, "ok": False, "missing": True,
                "error": f"missing: {spec['python']} (see benchmarks/README.md, How to run)"}
    full = {**os.environ, "PYTHONPATH": str(ROOT), **JITTOR_ENV}
    for key, value in env.items():
        full.pop(key, None) if value is None else full.__setitem__(key, value)
    cmd = [spec["python"], "-m", spec["module"], "--data", data, "--weighted", str(weighted)]
    if lock:
        cmd = ["flock", lock, "timeout", "-s", "KILL", f"{timeout:.0f}", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full, cwd=ROOT)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return {**json.loads(line), "ok": True}
    why = "killed (time limit)" if proc.returncode in (137, -9) else \
        (proc.stderr or proc.stdout)[-400:]
    return {**ident, "ok": False, "error": why}


def rotate(items: list, k: int) -> list:
    """``items`` starting ``k`` places later (round k's order)."""
    k %= len(items)
    return items[k:] + items[:k]


def rel_err(g, ref) -> float:
    """||g - ref||_2 / ||ref||_2."""
    g, ref = np.asarray(g, float), np.asarray(ref, float)
    return float(np.linalg.norm(g - ref) / np.linalg.norm(ref))


def _ms(v: float) -> str:
    """Three significant digits, no exponent (0.446, 12.3, 1234)."""
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def _spread(values: list, scale: float = 1.0, fmt=None) -> str:
    """``median (min-max)`` of ``values`` times ``scale`` (ratios: 2 decimals)."""
    if not values:
        return "-"
    fmt = fmt or "{:.2f}".format
    v = [x * scale for x in values]
    return f"{fmt(statistics.median(v))} ({fmt(min(v))}-{fmt(max(v))})"


def summarize(records: list, references: dict) -> list:
    """One row per (data, weighted, side): accuracy, per-round times and the per-round
    jboat / JAXopt ratios. ``references[(data, weighted)]`` is the exact hyper-gradient."""
    rows = []
    cases = sorted({(r["data"], r["weighted"]) for r in records})
    for data, weighted in cases:
        per_side = {}
        for side in SIDES:
            mine = [r for r in records if (r["data"], r["weighted"], r["framework"])
                    == (data, weighted, side)]
            ok = [r for r in mine if r.get("ok")]
            per_side[side] = {
                "hyper": {r["round"]: statistics.median(r["time_hypergrad_s"]) for r in ok},
                "outer": {r["round"]: statistics.median(r["time_outer_iter_s"]) for r in ok},
                "err": [rel_err(r["hypergrad"], references[(data, weighted)]) for r in ok],
                "error": next((r["error"] for r in mine if not r.get("ok")), None),
                "rounds": len(ok), "threads": sorted({r.get("threads") for r in ok})}
        for side, s in per_side.items():
            other = per_side["jaxopt"]
            rows.append({"data": data, "weighted": weighted, "framework": side, **s,
                         "ratio_hyper": _ratios(s["hyper"], other["hyper"]),
                         "ratio_outer": _ratios(s["outer"], other["outer"])})
    return rows


def _ratios(mine: dict, anchor: dict) -> list:
    """Per-round ratios over the rounds both sides completed."""
    return [mine[k] / anchor[k] for k in sorted(mine) if k in anchor and anchor[k] > 0]


def table(rows: list, info: dict) -> str:
    """The Markdown table of :func:`summarize`'s rows and the provenance line."""
    head = ("| data | x | framework | rel. err vs exact (max over rounds) | "
            "ms / hyper-gradient (min-max) | "
            "ms / outer it. (min-max) | / JAXopt, hyper-gradient | / JAXopt, outer it. |\n"
            "|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        case = (r["data"], "one per feature" if r["weighted"] else "single",
                SIDES[r["framework"]]["label"])
        if not r["rounds"]:
            lines.append("| {} | {} | {} | {} | - | - | - | - |".format(*case, r["error"]))
            continue
        lines.append("| {} | {} | {} | {:.1e} | {} | {} | {} | {} |".format(
            *case, max(r["err"]), _spread(list(r["hyper"].values()), 1e3, _ms),
            _spread(list(r["outer"].values()), 1e3, _ms), _spread(r["ratio_hyper"]),
            _spread(r["ratio_outer"])))
    foot = (f"\nSource: `benchmarks/results/{info['name']}.json` · {info['machine']['date']} · "
            f"{info['machine']['nproc']} cores ({info['machine']['cpu']}) · threads "
            f"{info['threads']} ({info['thread_env']}) · {info['rounds']} round(s), order "
            f"rotated · {info['elapsed_s']:.0f} s in all.\n")
    return head + "\n".join(lines) + "\n" + foot


def plot(rows: list, path: Path) -> str:
    """ms per hyper-gradient per case and side (log scale, min-max bars); what was done."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no picture: matplotlib is not installed in this venv"
    cases = sorted({(r["data"], r["weighted"]) for r in rows})
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(SIDES)
    for i, side in enumerate(SIDES):
        if not any(r["hyper"] for r in rows if r["framework"] == side):
            continue
        med, lo, hi = [], [], []
        for case in cases:
            r = next(r for r in rows if (r["data"], r["weighted"], r["framework"])
                     == (*case, side))
            v = [t * 1e3 for t in r["hyper"].values()] or [np.nan]
            med.append(statistics.median(v))
            lo.append(med[-1] - min(v))
            hi.append(max(v) - med[-1])
        xs = np.arange(len(cases)) + i * width
        ax.bar(xs, med, width, yerr=[lo, hi], label=SIDES[side]["label"])
    ax.set_xticks(np.arange(len(cases)) + width * (len(SIDES) - 1) / 2)
    ax.set_xticklabels([f"{d}\n{'weighted' if w else 'single'}" for d, w in cases])
    ax.set_yscale("log")
    ax.set_ylabel("ms per hyper-gradient")
    ax.set_title("Lasso hyper-gradient, float64 (bars: min-max over rounds)", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path.relative_to(ROOT))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default="diabetes,synthetic")
    parser.add_argument("--weighted", default="0,1")
    parser.add_argument("--sides", default="jboat,jaxopt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--lock", default=LOCK,
                        help="'' for none around JAXopt (jboat always takes the Jittor lock)")
    parser.add_argument("--tag", default="")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    from benchmarks import lasso_reference
    cases = [(d, int(w)) for d in args.data.split(",") for w in args.weighted.split(",")]
    sides = args.sides.split(",")
    env = thread_env(args.threads)
    start = time.perf_counter()
    info = {"name": "lasso" + (f"_{args.tag}" if args.tag else ""), "machine": machine(),
            "threads": args.threads, "rounds": args.rounds,
            "thread_env": ", ".join(f"{k}={v}" for k, v in env.items() if v is not None)}
    refs = {}
    for data, weighted in cases:
        refs[(data, weighted)] = lasso_reference.reference(data, bool(weighted))
    records = []
    for k in range(args.rounds):
        for data, weighted in cases:
            for side in rotate(sides, k):
                progress(f"round {k}: {side} {data} weighted={weighted}")
                rec = run_side(side, data, weighted, env, args.timeout, args.lock or None)
                records.append({**rec, "round": k, "loadavg": list(os.getloadavg())})
    info["elapsed_s"] = time.perf_counter() - start
    rows = summarize(records, {c: r["hypergrad"] for c, r in refs.items()})
    picture = "skipped" if args.no_plot else plot(rows, ROOT / "docs" / "lasso.png")
    info["picture"] = picture
    publish(info["name"], [{"kind": "run", **info}, *({"kind": "reference", **r}
                                                        for r in refs.values()), *records],
            table(rows, info) + f"\nPicture: {picture}.\n")


if __name__ == "__main__":
    main()
