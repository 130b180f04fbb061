"""The user-shaped MLP benchmark (``benchmarks.user_mlp``): its quick mode's jboat worker
runs every method in this process (no upstream venv needed) and the report reads its
records. Nothing here times anything."""

import json
import math

import numpy as np
import pytest

from benchmarks import user_mlp


def test_data_are_fixed_and_half_corrupted():
    a = user_mlp.make_data(64, 32, 32, 4)
    b = user_mlp.make_data(64, 32, 32, 4)
    assert np.array_equal(a["Xtr"], b["Xtr"]) and np.array_equal(a["ytr"], b["ytr"])
    assert a["Xtr"].dtype == np.float32 and a["Xtr"].shape == (64, 32)
    assert a["corrupted"].sum() == 32
    assert 0.0 <= a["Xtr"].min() and a["Xtr"].max() <= 1.0
    w = user_mlp.init_weights(32, 16, 4)
    assert w["W1"].shape == (16, 32) and w["W2"].shape == (4, 16)


def test_rows_give_torch_jboats_threads_and_jboat_its_default():
    rows = user_mlp.rows(2)
    assert rows["boattorch"][2] == 2 and rows["boattorch-1t"][2] == 1
    fw, env, _ = rows["jboat"]
    assert fw == "jboat" and env["use_mkl"] is None and env["OMP_NUM_THREADS"] is None
    assert rows["jboat-1t"][1]["OMP_NUM_THREADS"] == "1"
    assert rows["boatjit"][1]["use_mkl"] == "0"
    assert rows["boatjit-onednn"][1]["LD_PRELOAD"].endswith("libdnnl.so.2")


@pytest.mark.jittor
def test_quick_worker_runs_every_method_and_reports():
    records = []
    for k, method in enumerate(user_mlp.METHODS):
        rec = user_mlp.worker("jboat", method, "quick", 1, 2)
        assert rec["ok"], rec.get("error")
        assert len(rec["times_s"]) == 4 and rec["median_s"] > 0
        losses = rec["upper_losses"]
        assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
        assert losses[-1] < rec["upper_loss_start"], (method, rec["upper_loss_start"], losses)
        assert rec["info"]["jittor"]
        records.append({**rec, "row": "jboat", "round": 0})
    table = user_mlp.report(records)
    for method in user_mlp.METHODS:
        assert f"| {method} | jboat (oneDNN, default) |" in table


def test_a_tagged_run_is_kept_apart(tmp_path, monkeypatch, capsys):
    """``--tag NAME``: the run's files are ``results/user_mlp_NAME.{json,md}`` (the
    untagged ``user_mlp.*`` are left alone); ``--report`` rewrites the tagged table."""
    monkeypatch.setattr(user_mlp, "RESULTS", tmp_path)
    rec = {"framework": "jboat", "method": "FD", "size": "full", "row": "jboat", "round": 0,
           "ok": True, "median_s": 0.1, "first_s": 0.5, "upper_losses": [1.0, 0.9],
           "info": {"onednn_ops": True, "omp_threads": 2}}
    (tmp_path / "user_mlp_xeon.json").write_text(json.dumps([rec]))
    assert user_mlp.main(["--report", "--tag", "xeon"]) == 0
    assert "| FD | jboat (oneDNN, default) | oneDNN 2, Jittor 1 | 100.0 |" in \
        (tmp_path / "user_mlp_xeon.md").read_text()
    assert not (tmp_path / "user_mlp.md").exists()
