"""``examples/sparse_regression.toml`` against scikit-learn's ``LassoCV`` on the same data
(issue 33 item 7): time and validation / test error of each.

    ~/.venvs/jboat/bin/python -m benchmarks.example_sparse        # writes results/example_sparse.*

jboat: ``jboat run examples/sparse_regression.toml`` in a subprocess under ``flock
/tmp/jboat-jittor.lock`` (weighted Lasso, PGD + CG(gmres), 60 outer iterations, float32);
its ``metrics.json`` gives the final errors and each iteration's time; reported: the sum of
the iteration times (the run without Jittor's import; the first iterations compile) and the
whole process's wall time. LassoCV: ``LassoCV(cv=5, fit_intercept=False, n_jobs=1)`` on
the training split of the same data (the task module's ``make_data``), fit time; its
errors are the task's ``baseline``. Threads: as the environment sets them (recorded).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.rounds import ROOT, publish

TASK = "examples/sparse_regression.toml"


def run_jboat(out: Path) -> dict:
    """The task's metrics.json and the process's wall time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JBOAT_DEVICE": "cpu"}
    start = time.perf_counter()
    subprocess.run(["flock", "/tmp/jboat-jittor.lock", sys.executable, "-m",
                    "jboat_core.run.cli", "run", TASK, "--out", str(out), "--overwrite"],
                   cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    metrics = json.loads((out / "metrics.json").read_text())
    return {"wall_s": wall, "metrics": metrics}


LASSOCV = """
import importlib.util, sys, time, tomllib
root, task = sys.argv[1], sys.argv[2]
params = tomllib.loads(open(f"{root}/{task}").read())["task"]["params"]
spec = importlib.util.spec_from_file_location("sparse_task", f"{root}/examples/sparse_regression.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
data = module.make_data(0, int(params["n_samples"]), int(params["n_features"]),
                        int(params["n_informative"]), float(params["noise"]))
start = time.perf_counter()
module.lasso_cv(data)
print(time.perf_counter() - start)
"""


def time_lassocv() -> float:
    """LassoCV's fit time on the task's training split, in a process under the Jittor lock
    (the task module imports Jittor at its top)."""
    out = subprocess.run(["flock", "/tmp/jboat-jittor.lock", sys.executable, "-c", LASSOCV,
                          str(ROOT), TASK], cwd=ROOT, check=True, capture_output=True,
                         text=True, env={**os.environ, "JBOAT_DEVICE": "cpu"})
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from benchmarks.lasso import machine
    with tempfile.TemporaryDirectory() as tmp:
        jb = run_jboat(Path(tmp) / "run")
    cv_s = time_lassocv()
    m = jb["metrics"]
    iters = [h["time"] for h in m["history"]]
    import statistics
    median_ms = statistics.median(iters[5:]) * 1e3
    final, base = m["final"], m["baseline"]
    info = machine()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    rec = {"task": TASK, "machine": info, "OMP_NUM_THREADS": threads, "jboat": jb,
           "lassocv_fit_s": cv_s, "iterations": len(iters), "iteration_s_sum": sum(iters),
           "iteration_ms_median": median_ms}
    table = (
        "| method | time | validation MSE | test MSE | support |\n|---|---|---|---|---|\n"
        f"| jboat: weighted Lasso, PGD + CG(gmres), {len(iters)} outer iterations | "
        f"{sum(iters):.2f} s (median {median_ms:.1f} ms / iteration after the fifth; process "
        f"{jb['wall_s']:.0f} s with Jittor's import and compilation) | {final['val_mse']:.4f} | "
        f"{final['test_mse']:.4f} | {final['support']} |\n"
        f"| scikit-learn LassoCV (5-fold, 100 alphas, one penalty) | {cv_s:.2f} s | "
        f"{base['val_mse']:.4f} | {base['test_mse']:.4f} | {base['support']} |\n"
        f"\nSource: `benchmarks/results/example_sparse.json` · {info['date']} · "
        f"{info['nproc']} cores ({info['cpu']}) · OMP_NUM_THREADS={threads} · one run.\n")
    publish("example_sparse", [rec], table)


if __name__ == "__main__":
    main()
