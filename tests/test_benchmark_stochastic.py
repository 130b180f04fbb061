"""Smoke test of ``benchmarks/stochastic.py`` at a tiny size: one problem, a stochastic
and a deterministic method, one seed; the JSON, table and picture are written."""

import json

import pytest

pytestmark = pytest.mark.jittor


def test_stochastic_benchmark_runs_tiny(tmp_path):
    from benchmarks import stochastic
    rc = stochastic.main(["--size", "tiny", "--seeds", "1", "--problems", "quadratic",
                          "--methods", "SOBA,AID-CG", "--out", str(tmp_path)])
    assert rc == 0
    data = json.loads((tmp_path / "stochastic.json").read_text())
    runs = {r["method"]: r for r in data["runs"]}
    assert set(runs) == {"SOBA", "AID-CG"}
    for r in runs.values():
        times = [p[0] for p in r["curve"]]
        calls = [p[1] for p in r["curve"]]
        assert times == sorted(times) and calls == sorted(calls) and calls[-1] > 0
        assert all(p[2] == p[2] and p[3] >= 0 for p in r["curve"])  # finite h, |grad h|^2
    assert "| quadratic | SOBA |" in (tmp_path / "stochastic.md").read_text()
    assert (tmp_path / "stochastic.png").stat().st_size > 1000
