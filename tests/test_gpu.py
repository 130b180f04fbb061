"""The GPU path (docs/gpu.md). Tests marked ``gpu`` run where jboat decides CUDA (a device,
a CUDA 12 nvcc, a runtime) and are skipped with the decision's reason elsewhere; the others
check, without a device, what can be checked: the GPU benchmark refuses clearly and its
table is right."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import gpu

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_benchmark_refuses_without_a_device(tmp_path):
    """One line naming what is missing, exit 2, before any Jittor import."""
    if gpu.cuda_problem() is None:
        pytest.skip("this machine has a CUDA path: the benchmark would run")
    env = {k: v for k, v in os.environ.items() if k not in ("JBOAT_CPU_ONLY", "JBOAT_DEVICE")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu"], capture_output=True,
                          text=True, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                          timeout=120)
    assert proc.returncode == gpu.NO_GPU_EXIT and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("benchmarks.gpu: needs a CUDA device "
                                                   "Jittor can use: "), proc.stderr
    assert "jboat doctor" in lines[0]


def test_the_gpu_table_names_skipped_failed_and_timed_rows():
    rec = lambda f, m, s, mb: {"workload": "mlp", "framework": f, "method": m, "ok": True,
                               "median_s": s, "extra_mb": mb}
    records = [rec("jboat", "RAD", 0.010, 100), rec("boat", "RAD", 0.020, 80),
               {"workload": "mlp", "framework": "jboat", "method": "CG", "ok": False,
                "error": "RuntimeError: x"}]
    table = gpu.report(records, {("darts", "jboat"): "no device"})
    assert "| mlp | RAD | jboat | 10.00 (10.00-10.00) | 100 | 0.50 |" in table
    assert "| mlp | CG | jboat | failed: RuntimeError: x |" in table
    assert "| darts | FD | jboat | skipped: no device |" in table


@pytest.mark.gpu
@pytest.mark.jittor
def test_jittor_computes_on_the_device():
    from jboat_core import import_jittor

    jt = import_jittor()
    assert jt.flags.use_cuda == 1 and jt.compiler.has_cuda
    for lib in ("cublas", "cudnn", "curand"):
        assert getattr(jt.compile_extern, f"{lib}_ops", None) is not None, lib
    a = np.random.RandomState(0).randn(64, 32).astype("float32")
    b = np.random.RandomState(1).randn(32, 16).astype("float32")
    np.testing.assert_allclose(jt.matmul(jt.array(a), jt.array(b)).numpy(), a @ b,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.jittor
def test_a_run_on_the_device(tmp_path):
    """``jboat run`` with CUDA asked for: completes, one process, finite metrics."""
    env = {**os.environ, "JBOAT_DEVICE": "cuda", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "jboat_core.run.cli", "run",
                           "examples/l2_reg.toml", "--iterations", "5", "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and np.isfinite(metrics["final"]["upper_loss"])


@pytest.mark.gpu
@pytest.mark.jittor
def test_the_gpu_benchmark_runs_quickly_on_the_device():
    rec = gpu.worker("mlp", "jboat", "RAD", "quick", 1, 2)
    assert rec["ok"], rec
    assert rec["median_s"] > 0 and np.isfinite(rec["upper_loss"])
