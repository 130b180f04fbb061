"""jboat on CUDA against BOAT on PyTorch CUDA: the user MLP and the DARTS step (issue 32).

    python -m benchmarks.gpu                       # 3 rounds, every row
    python -m benchmarks.gpu --quick               # tiny sizes, 1 round (results/quick/)
    python -m benchmarks.gpu --boat-python /opt/boat-cuda/bin/python   # BOAT's own venv

Refuses, with one line naming what is missing and exit code 2, where Jittor's CUDA path
cannot work (no device, no CUDA 12 nvcc, no runtime: ``jboat doctor`` says what to do);
the BOAT rows are reported as skipped, with the reason, where that Python has no
``boat_torch`` or no CUDA build of torch.

Workloads (the CPU benchmarks' problems, moved to the device):

* ``mlp``: the user-shaped MLP hyper-cleaning problem of :mod:`benchmarks.user_mlp`
  (n = 2,000 examples of 784 features, MLP 784-256-10, K = 10 inner SGD steps), methods
  NGD + RAD, NGD + CG, NGD + FD; jboat (``JBOAT_DEVICE=cuda``: ``use_cuda=1``) and BOAT
  (``boat-torch``, ``device = "cuda"``, models and data on the GPU).
* ``darts``: the DARTS search step of :mod:`benchmarks.darts` (the supernet of
  ``jboat_core.testing.networks``), chains RAD and FD, jboat only: there is no PyTorch
  twin of that supernet in this repository, so BOAT has no row (said in the table).

Timed: one whole ``run_iter`` ended by a device synchronisation, median of ``--reps`` after
the first call (compilation, reported apart) and ``--warmup`` more; each configuration in
its own process. Memory: the device memory in use seen by the driver (``cuMemGetInfo``:
total - free) after each timed iteration, its peak minus the value after set-up (the
context and the data), the same measure for both frameworks; plus, for PyTorch, its own
``max_memory_allocated``. Results: ``results/gpu.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ROWS = (("mlp", "jboat"), ("mlp", "boat"), ("darts", "jboat"))
METHODS = {"mlp": ("RAD", "CG", "FD"), "darts": ("RAD", "FD")}
NO_GPU_EXIT = 2


def cuda_problem(environ=os.environ) -> str | None:
    """Why Jittor's CUDA path cannot work here (None: it can); never imports Jittor."""
    from jboat_core.platform import device

    try:
        device.decide({**environ, "JBOAT_DEVICE": "cuda"})
    except device.DeviceError as exc:
        return str(exc).split(", but ", 1)[-1]
    return None


def _device_used_mb() -> float:
    """Device memory in use (all of this device), in MB, as the driver sees it."""
    cuda = ctypes.CDLL("libcuda.so.1")
    free, total = ctypes.c_size_t(), ctypes.c_size_t()
    if cuda.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(total)) != 0:
        return float("nan")
    return (total.value - free.value) / 2**20


def _jboat_mlp(method: str, size: str):
    from jboat_core import Problem, import_jittor

    jt = import_jittor()
    assert jt.flags.use_cuda == 1, "jboat did not choose CUDA"
    from benchmarks import user_mlp, user_mlp_jt as obj

    sz = user_mlp.SIZES[size]
    data = user_mlp.make_data(sz["n"], sz["n_val"], sz["d"], sz["c"])
    ll, ul, llf, ulf = obj.build(data, user_mlp.init_weights(sz["d"], sz["h"], sz["c"]))
    cfg = {"gm_op": ["NGD"], "na_op": [method], "lower_iters": sz["K"],
           "copy_last_param": True, "CG": dict(user_mlp.CG), "FD": dict(user_mlp.FD)}
    p = Problem(cfg, ll_objective=obj.ll_loss, ul_objective=obj.ul_loss, ll_model=ll,
                ul_model=ul, ll_opt=jt.optim.SGD(ll.parameters(), user_mlp.LL_LR),
                ul_opt=jt.optim.SGD(ul.parameters(), user_mlp.UL_LR))

    def step(t):
        p.run_iter(llf, ulf, t)
        jt.sync_all(True)
    return step, lambda: obj.upper_value(ulf, ul, ll), {"jittor": jt.__version__}


def _boat_mlp(method: str, size: str):
    import torch
    from boat_torch.boat_opt import Problem as Up

    from benchmarks import user_mlp, user_mlp_torch as obj

    sz = user_mlp.SIZES[size]
    data = user_mlp.make_data(sz["n"], sz["n_val"], sz["d"], sz["c"])
    ll, ul, llf, ulf = obj.build(data, user_mlp.init_weights(sz["d"], sz["h"], sz["c"]))
    ll, ul = ll.cuda(), ul.cuda()
    llf, ulf = ({k: v.cuda() for k, v in f.items()} for f in (llf, ulf))
    fd, log = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cfg = user_mlp._upstream_config(method, sz["K"], ll, ul,
                                    torch.optim.SGD(ll.parameters(), lr=user_mlp.LL_LR),
                                    torch.optim.SGD(ul.parameters(), lr=user_mlp.UL_LR),
                                    log, True)
    cfg["device"] = "cuda"
    loss_cfg = {"lower_level_loss": {"function": "benchmarks.user_mlp_torch.ll_loss"},
                "upper_level_loss": {"function": "benchmarks.user_mlp_torch.ul_loss"}}
    with contextlib.redirect_stdout(io.StringIO()):
        p = Up(cfg, loss_cfg)
        p.build_ll_solver()
        p.build_ul_solver()

    def step(t):
        with contextlib.redirect_stdout(io.StringIO()):
            p.run_iter(llf, ulf, t)
        torch.cuda.synchronize()
    info = {"torch": torch.__version__, "device": torch.cuda.get_device_name()}
    return step, lambda: obj.upper_value(ulf, ul, ll), info


def _jboat_darts(chain: str, size: str):
    from jboat_core import import_jittor

    jt = import_jittor()
    assert jt.flags.use_cuda == 1, "jboat did not choose CUDA"
    from benchmarks.darts import _jboat_step

    step_once, info = _jboat_step(chain)

    def step(t):
        step_once()
        jt.sync_all(True)
    return step, lambda: float("nan"), info


BUILD = {("mlp", "jboat"): _jboat_mlp, ("mlp", "boat"): _boat_mlp,
         ("darts", "jboat"): _jboat_darts}


def worker(workload: str, framework: str, method: str, size: str, warmup: int,
           reps: int) -> dict:
    """Time one configuration in this process (a row of the table)."""
    sys.path.insert(0, str(ROOT))
    out = {"workload": workload, "framework": framework, "method": method, "size": size}
    try:
        step, value, info = BUILD[workload, framework](method, size)
        step(0)
        base = _device_used_mb()
        times, used = [], []
        for t in range(1, 1 + warmup + reps):
            t0 = time.perf_counter()
            step(t)
            times.append(time.perf_counter() - t0)
            used.append(_device_used_mb())
        if framework == "boat":
            import torch
            info["torch_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out.update(ok=True, info=info, median_s=statistics.median(times[warmup:]),
                   extra_mb=max(used) - base, upper_loss=value())
    except Exception as exc:  # noqa: BLE001 - a failure is a result too
        out.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
    return out


def _boat_problem(python: str) -> str | None:
    code = ("import torch, boat_torch; import sys; "
            "sys.exit(0 if torch.cuda.is_available() else 3)")
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if proc.returncode == 3:
        return f"{python}: torch has no CUDA here"
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"{python}: no boat_torch or torch ({last})"
    return None


def _run(python: str, args: list[str]) -> dict:
    env = {**os.environ, "JBOAT_DEVICE": "cuda", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([python, "-m", "benchmarks.gpu", "--worker", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"ok": False, "error": proc.stderr[-300:]}


def report(records: list[dict], skipped: dict) -> str:
    """Markdown: per workload, method and framework, ms per iteration (median over rounds,
    min-max), extra device memory, and jboat's time over BOAT's."""
    lines = ["| workload | method | framework | ms / it. (min-max) | extra device MB | "
             "/ BOAT |", "|---|---|---|---|---|---|"]
    for workload, framework in ROWS:
        for method in METHODS[workload]:
            rs = [r for r in records if (r["workload"], r["framework"], r["method"])
                  == (workload, framework, method)]
            if (workload, framework) in skipped:
                lines.append(f"| {workload} | {method} | {framework} | skipped: "
                             f"{skipped[workload, framework]} | - | - |")
                continue
            ok = [r for r in rs if r.get("ok")]
            if not ok:
                err = rs[0].get("error", "not run") if rs else "not run"
                lines.append(f"| {workload} | {method} | {framework} | failed: {err} | - | - |")
                continue
            ms = [1e3 * r["median_s"] for r in ok]
            mb = statistics.median(r["extra_mb"] for r in ok)
            boat = [1e3 * r["median_s"] for r in records if r.get("ok") and
                    (r["workload"], r["framework"], r["method"]) == (workload, "boat", method)]
            ratio = (f"{statistics.median(ms) / statistics.median(boat):.2f}"
                     if boat and framework == "jboat" else "-")
            lines.append(f"| {workload} | {method} | {framework} | {statistics.median(ms):.2f}"
                         f" ({min(ms):.2f}-{max(ms):.2f}) | {mb:.0f} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 round, 3 reps")
    parser.add_argument("--boat-python", default=sys.executable,
                        help="the Python with boat-torch and a CUDA torch (default: this one)")
    parser.add_argument("--worker", nargs=6, metavar=("WORKLOAD", "FRAMEWORK", "METHOD",
                                                      "SIZE", "WARMUP", "REPS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        w, f, m, s, warm, reps = args.worker
        print(json.dumps(worker(w, f, m, s, int(warm), int(reps))))
        return 0
    why = cuda_problem()
    if why:
        print(f"benchmarks.gpu: needs a CUDA device Jittor can use: {why}", file=sys.stderr)
        return NO_GPU_EXIT
    size, rounds, reps = ("quick", 1, 3) if args.quick else ("full", args.rounds, args.reps)
    skipped = {}
    boat_why = _boat_problem(args.boat_python)
    if boat_why:
        skipped["mlp", "boat"] = boat_why
    records = []
    for r in range(rounds):
        for workload, framework in ROWS:
            if (workload, framework) in skipped:
                continue
            python = args.boat_python if framework == "boat" else sys.executable
            for method in METHODS[workload]:
                rec = _run(python, [workload, framework, method, size, str(args.warmup),
                                    str(reps)])
                records.append({**rec, "round": r, "workload": workload,
                                "framework": framework, "method": method})
                print(f"round {r}: {workload} {framework} {method}: "
                      f"{rec.get('median_s', rec.get('error'))}", file=sys.stderr)
    out = RESULTS / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps({"records": records, "skipped": {
        f"{w}/{f}": v for (w, f), v in skipped.items()}}, indent=1))
    (out / "gpu.md").write_text(report(records, skipped))
    print(report(records, skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
