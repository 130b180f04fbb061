"""Smoke test of ``benchmarks/horizon.py`` (issue 19 item 3) at tiny sizes: every jboat
method runs and reports memory and time, the checkpointed and the full unroll give the
same hyper-gradient, and the run writes its JSON and table."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.jittor
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.mark.parametrize("problem,size", [("ridge", "small"), ("convbn", 16)])
def test_worker_measures_every_jboat_method(problem, size):
    from benchmarks.horizon import worker

    recs = {m: worker({"problem": problem, "method": m, "K": 4, "size": size, "reps": 1,
                       "prepare": False})
            for m in ("full", "ckpt-sqrt", "fmd-lr", "cg")}
    for m, r in recs.items():
        assert r["ok"], (m, r.get("error"))
        assert r["above_mb"] >= 0 and r["baseline_mb"] > 10 and r["median_s"] > 0, r
        assert r["warmup_K"] == 4 and r["framework"] == "jboat"
    full, ckpt = recs["full"]["grad_head"], recs["ckpt-sqrt"]["grad_head"]
    assert np.allclose(ckpt, full, rtol=1e-4, atol=1e-7) and np.abs(full).max() > 0
    assert recs["fmd-lr"]["info"]["dim_x"] == 1  # the inner learning rate only


def test_long_loops_warm_up_short(tmp_path):
    """From ``big`` on, the warm-up is short: K = 10, or for checkpointed reverse mode two
    segments of the timed length and one of the timed run's last length (their fused
    kernels differ from a short loop's)."""
    from benchmarks.horizon import worker
    r = worker({"problem": "ridge", "method": "full", "K": 12, "size": "small",
                "big": 12, "prepare": False})
    assert r["ok"] and r["warmup_K"] == 10 and r["reps"] == 1
    r = worker({"problem": "ridge", "method": "ckpt-sqrt", "K": 16, "size": "small",
                "big": 12, "prepare": False})
    assert r["ok"] and r["warmup_K"] == 12 and r["reps"] == 1  # 3 x ceil(sqrt(16))
    r = worker({"problem": "ridge", "method": "ckpt-sqrt", "K": 18, "size": "small",
                "big": 12, "prepare": False})
    assert r["ok"] and r["warmup_K"] == 13  # s = 5: 5 + 5 + 18 mod 5


def test_run_writes_results_and_table(tmp_path, monkeypatch):
    from benchmarks import horizon
    from benchmarks.horizon import main
    monkeypatch.setitem(horizon.PYTHON, "boatjit", str(tmp_path / "no-venv" / "python"))
    out = tmp_path / "h"
    assert main(["--quick", "--problems", "ridge", "--methods", "full,boatjit", "--K", "2",
                 "--lock", "", "--out", str(out)]) == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    recs = {r["method"]: r for r in doc["records"]}
    assert recs["full"]["ok"], recs["full"]
    assert recs["full"]["problem"] == "ridge" and recs["full"]["K"] == 2
    assert not recs["boatjit"]["ok"] and "missing" in recs["boatjit"]["error"]
    text = out.with_suffix(".md").read_text()
    assert "| RAD, full unroll |" in text and "| JBOAT RAD (boat-jit 1.1.1) |" in text
