"""One configuration in one process: ``python -m benchmarks.worker --spec JSON --out FILE``.

Run by ``python -m benchmarks`` with the interpreter of the framework's venv. Writes a JSON
record (timings, accuracy, memory, units) to ``--out``; errors are recorded, not raised.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
import traceback


def run(spec: dict) -> dict:
    """Measure ``spec`` (framework, problem, size, method, K, K_mem, warmup, reps)."""
    from .envsetup import describe, prepare
    prepare(spec["framework"])
    import numpy as np

    from .adapters import ADAPTERS
    from .memory import reset_peak, status_mb
    from .methods import (BY_NAME, OP_CONFIG, accuracy, floor_cost, lower_lr, reference,
                          start_point)
    from .problems import make_problem
    from .timing import measure

    out = dict(spec)
    t0 = time.perf_counter()
    prob = make_problem(spec["problem"], spec["size"])
    method = BY_NAME[spec["method"]]
    lr = lower_lr(prob)
    y0 = start_point(method, prob)
    K, warmup, reps = spec["K"], spec["warmup"], spec["reps"]
    what, ref = reference(method, prob, y0, K, lr)
    out.update(lr=lr, dim_y=prob.dim_y, dim_x=prob.dim_x, reference=what,
               reference_s=time.perf_counter() - t0)
    t1 = time.perf_counter()
    bench = importlib.import_module(ADAPTERS[spec["framework"]]).setup(prob, method, y0, lr,
                                                                      OP_CONFIG)
    out.update(info={**bench.info, **describe()}, import_s=time.perf_counter() - t1, rss_start_mb=status_mb("VmRSS"))
    m = measure(lambda: bench.step(K), warmup, reps)
    out.update(first_s=m["first_s"], median_s=m["median_s"], min_s=m["min_s"],
               times_s=m["times_s"], peak_mb_K=status_mb("VmHWM"))
    out.update(accuracy(m["value"], ref))
    # Units in the same process state as the timed calls (before the K_mem call, whose
    # long graph slowed later small calls by up to 3x in an earlier protocol).
    g = measure(bench.grad_unit, warmup, reps)
    h = measure(bench.hvp_unit, warmup, reps)
    if spec.get("K_mem"):
        out["peak_reset"] = reset_peak()
        t2 = time.perf_counter()
        bench.step(spec["K_mem"])
        out.update(time_K_mem_s=time.perf_counter() - t2, peak_mb_K_mem=status_mb("VmHWM"))
    out.update(grad_s=g["median_s"], hvp_s=h["median_s"], grad_first_s=g["first_s"],
               hvp_first_s=h["first_s"])
    n_grad, n_hvp, text = floor_cost(method, K)
    floor_s = n_grad * g["median_s"] + n_hvp * h["median_s"]
    out.update(floor_text=text, floor_s=floor_s, over_floor=m["median_s"] / floor_s,
               in_grads=m["median_s"] / g["median_s"], in_hvps=m["median_s"] / h["median_s"])
    out["grad_head"] = [float(v) for v in np.asarray(m["value"]).ravel()[:4]]
    out["ok"] = True
    return out


def _watch_memory(limit_mb: float, out: str, spec: dict) -> None:
    """Record an error and exit if this process's RSS passes ``limit_mb`` (upstream CG/NS
    graphs can grow without bound)."""
    import threading

    from .memory import status_mb

    def loop():
        while True:
            time.sleep(0.25)
            rss = status_mb("VmRSS")
            if rss > limit_mb:
                with open(out, "w") as fh:
                    json.dump(dict(spec, ok=False, error=f"RSS {rss:.0f} MB passed the "
                                   f"{limit_mb:.0f} MB cap; stopped"), fh)
                os._exit(3)

    threading.Thread(target=loop, daemon=True).start()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spec", required=True, help="JSON dict of the configuration")
    ap.add_argument("--out", required=True, help="file for the JSON record")
    args = ap.parse_args(argv)
    spec = json.loads(args.spec)
    _watch_memory(float(spec.get("mem_cap_mb", 6000)), args.out, spec)
    try:
        rec = run(spec)
    except BaseException as exc:  # recorded for the report (upstream bugs included)
        rec = dict(spec, ok=False, error=f"{type(exc).__name__}: {exc}"[:500],
                   traceback=traceback.format_exc()[-2000:])
    with open(args.out, "w") as fh:
        json.dump(rec, fh)


if __name__ == "__main__":
    main()
