"""``jboat compare``: methods in their own processes, one row each (failures included),
JSON and Markdown reports, the picture, agreement with the implicit reference."""

import json
from pathlib import Path

import pytest

from jboat_core import ConfigError
from jboat_core.plugins.registry import get_registry
from jboat_core.run.compare import ROW_KEYS, compositions, method_config, resolve_methods

HERE = Path(__file__).resolve().parent
TASK = """[task]
module = "{module}"
iterations = 5
[optim.lower]
lr = 0.1
[optim.upper]
type = "Adam"
lr = 0.05
[solver]
na_op = ["RAD"]
lower_iters = 100
"""


def test_method_specs(builtin_registry):
    assert method_config("BDA", builtin_registry) == {"preset": "BDA"}
    assert method_config("ptt+rad", builtin_registry) == {"gm_op": ["NGD"], "na_op": ["PTT", "RAD"]}
    assert method_config("GDA+NGD+CG", builtin_registry) == {"gm_op": ["GDA", "NGD"], "na_op": ["CG"]}
    assert method_config("VFO", builtin_registry)["fo_op"] == ["VFO"]
    with pytest.raises(ConfigError, match="'XYZ' is neither a preset"):
        method_config("RAD+XYZ", builtin_registry)
    assert resolve_methods("presets,CG", builtin_registry)[-1] == "CG"
    assert len(resolve_methods("presets", builtin_registry)) == len(builtin_registry.preset_names())


def test_every_valid_composition_comes_from_metadata(builtin_registry):
    every = compositions(builtin_registry)
    assert "NGD+RAD" in every and "GDA+DI+NGD+PTT+RAD" in every and "VFO" in every
    assert "NGD+PTT" not in every and "NGD+RAD+FD" not in every and "DI+NGD+IAD" not in every
    assert len(every) == len(set(every)) > 100


@pytest.mark.jittor
def test_compare_on_a_small_task(builtin_registry, tmp_path, capsys):
    from jboat_core.run.cli import main
    task = tmp_path / "task.toml"
    task.write_text(TASK.format(module=HERE / "mpi_task.py"))
    out = tmp_path / "cmp"
    assert main(["compare", str(task), "--methods", "AID-CG,PTT+RAD,BDA,NOPE,BOME",
                 "--iterations", "3", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["method"]: r for r in report["rows"]}
    assert [r["method"] for r in report["rows"]] == ["AID-CG", "PTT+RAD", "BDA", "NOPE", "BOME"]
    assert all(set(r) == set(ROW_KEYS) for r in report["rows"])
    assert rows["NOPE"]["status"] == "failed" and "neither a preset" in rows["NOPE"]["reason"]
    assert rows["BDA"]["status"] == "not applicable" and "gda_loss" in rows["BDA"]["reason"]
    for name in ("AID-CG", "PTT+RAD", "BOME"):
        r = rows[name]
        assert r["status"] == "ok", r
        assert r["ms_per_iter"] > 0 and r["first_iter_s"] > 0 and r["peak_mb"] > 10
        assert "x0" in r["metrics"] and r["upper_loss"] > 0
    assert rows["AID-CG"]["composition"] == "NGD → CG"
    assert rows["BOME"]["composition"] == "VFO (first order)"
    # CG after 100 lower steps is the implicit hyper-gradient: agreement near 1
    assert rows["AID-CG"]["cosine"] > 0.9999 and rows["AID-CG"]["rel_err"] < 1e-3
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "compare.json").read_text())["rows"] == report["rows"]
    assert "| AID-CG | NGD → CG |" in (out / "compare.md").read_text()
    assert report["machine"]["cpus"] >= 1
    # an earlier comparison is not overwritten without --overwrite
    assert main(["compare", str(task), "--methods", "AID-CG", "--out", str(out)]) == 1


@pytest.mark.jittor
def test_diverged_and_timed_out_methods_are_rows(builtin_registry, tmp_path, capsys):
    """A NaN stops a method as "diverged" (DivergedError), not "failed"; --timeout bounds
    a method's process, also from a process that imported Jittor (its SIGCHLD handler
    would end this one when the killed worker dies)."""
    from jboat_core.platform._jittor import jittor
    from jboat_core.run.cli import main
    jittor()
    from jboat_core.run.compare import _run_method
    task = tmp_path / "task.toml"
    task.write_text(TASK.format(module=HERE / "mpi_task.py").replace("lr = 0.1", "lr = 1e30"))
    assert main(["compare", str(task), "--methods", "RHG", "--iterations", "2",
                 "--out", str(tmp_path / "cmp"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["status"] == "diverged", row
    assert "NGD: outer iteration 0, inner step" in row["reason"]
    slow = _run_method({"task": str(task), "method": "RHG", "config": {"preset": "RHG"},
                        "iterations": 2, "reference_chain": "", "reference_steps": 0}, 0.5)
    assert slow == {"status": "failed", "reason": "timed out after 0.5 s"}


def test_metric_option_applies_to_every_output(builtin_registry, tmp_path, monkeypatch):
    """--metric picks the column of compare.md and the printed table alike."""
    import jboat_core.run.compare as compare
    rows = {"RHG": {"status": "ok", "ms_per_iter": 2.0, "metrics": {"a": 0.1, "b": 0.7},
                    "upper_loss": 1.0}}
    monkeypatch.setattr(compare, "_run_method", lambda spec, timeout: dict(rows[spec["method"]]))
    task = tmp_path / "task.toml"
    task.write_text(TASK.format(module=HERE / "mpi_task.py"))
    report = compare.run_compare(task, tmp_path / "cmp", methods="RHG", iterations=2,
                                 metric="b", progress=False)
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert md.splitlines()[0] == compare.table(report, "b").splitlines()[0]
    assert "| b |" in md.splitlines()[0] and "| 0.7 |" in md
