"""Data-parallel runs under ``mpirun -np 2`` compute what one process computes on the full
batch (``jboat_core.platform.parallel``); ``jboat run`` under mpirun writes once, resumes with the
same number of processes only; bad input stops every rank with a message.

Skipped, with the reason, where ``mpirun`` or Jittor's MPI is missing (``.ci/run``
installs OpenMPI). Tolerance of the equivalence: float32, relative 1e-5 of the largest
entry (the shards' sums are added in another order than the full batch's; measured
1e-7 to 1e-6).
"""

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "JBOAT_LOAD_PLUGINS": "jboat", "log_silent": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1",
       "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1"}
MPIRUN = ["mpirun", "-np", "2", "--oversubscribe"]
TOL = 1e-5


@functools.lru_cache(maxsize=None)
def mpi_missing() -> str:
    """Why the MPI tests cannot run here ('' when they can)."""
    if shutil.which("mpirun") is None:
        return "mpirun not found (install OpenMPI: apt-get install openmpi-bin libopenmpi-dev)"
    for _ in range(2):  # once more: a first MPI start may compile Jittor's MPI ops
        probe = subprocess.run(MPIRUN + [sys.executable, "-c",
                                         "import jboat_core.platform._jittor as j; jt = j.jittor(); "
                                         "print('MPI', jt.in_mpi, jt.world_size)"],
                               capture_output=True, text=True, env=ENV, timeout=900)
        if probe.stdout.count("MPI True 2") == 2:
            return ""
    return (f"Jittor's MPI is not available under mpirun (exit {probe.returncode}): "
            f"{(probe.stderr or probe.stdout)[-300:]}")


pytestmark = [pytest.mark.jittor, pytest.mark.mpi]


@pytest.fixture(scope="module", autouse=True)
def needs_mpi():
    why = mpi_missing()
    if why:
        pytest.skip(why)


def _run(args, mpi: bool, timeout=900, env=None):
    cmd = (MPIRUN if mpi else []) + [sys.executable] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, timeout=timeout)


CASES = ["RAD", "PTT+RAD", "CG", "FD", "GDA+IGA", "DI+RAD", "DM", "VFO", "PGDO", "IAD-tasks",
         "RAD-checkpointed", "RAD-flushed"]


@pytest.fixture(scope="module")
def case_results(tmp_path_factory):
    """Every case run once alone and once under mpirun -np 2 (two launches in all)."""
    root = tmp_path_factory.mktemp("mpi_cases")
    for name, mpi in (("one", False), ("two", True)):
        (root / name).mkdir()
        proc = _run([HERE / "mpi_run.py", root / name, *CASES], mpi)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.mark.parametrize("case", CASES)
def test_two_processes_compute_what_one_computes(case_results, case):
    one, two = case_results / "one" / f"{case}.npz", case_results / "two" / f"{case}.npz"
    a, b = np.load(one), np.load(two)
    assert int(a["world"][0]) == 1 and int(b["world"][0]) == 2
    assert int(b["rows"][0]) * 2 == int(a["rows"][0])  # each rank saw half the batch
    for key in a.files:
        if key in ("world", "rows"):
            continue
        scale = max(np.abs(a[key]).max(), 1e-12)
        err = np.abs(a[key] - b[key]).max() / scale
        assert err < TOL, (case, key, err, a[key], b[key])


TASK = """[task]
module = "{module}"
iterations = {iterations}
seed = 1
[task.params]
{params}
[optim.lower]
lr = 0.1
[optim.upper]
type = "Adam"
lr = 0.05
[solver]
na_op = ["RAD"]
lower_iters = 3
"""


def _task(tmp_path, name="t.toml", iterations=4, **params):
    path = tmp_path / name
    path.write_text(TASK.format(module=HERE / "mpi_task.py", iterations=iterations,
                                params="\n".join(f"{k} = {v}" for k, v in params.items())))
    return path


def _jboat(*args, mpi=True, **kw):
    return _run(["-m", "jboat_core.run.cli", *args], mpi, **kw)


def test_jboat_run_under_mpirun_writes_once_and_matches_one_process(tmp_path):
    task = _task(tmp_path)
    alone = _jboat("run", task, "--out", tmp_path / "one", mpi=False)
    assert alone.returncode == 0, alone.stderr[-2000:]
    par = _jboat("run", task, "--out", tmp_path / "two", "--checkpoint-every", 2)
    assert par.returncode == 0, par.stderr[-2000:]
    assert par.stdout.count("final:") == 1  # rank 0 reports, rank 1 is silent
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        ".jboat.lock", "checkpoint.history.jsonl", "checkpoint.npz", "loss_curve.png",
        "metrics.json"]
    a = json.loads((tmp_path / "one" / "metrics.json").read_text())
    b = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert b["processes"] == 2 and "processes" not in a
    for ha, hb in zip(a["history"], b["history"]):
        assert abs(ha["upper_loss"] - hb["upper_loss"]) < 1e-5 * abs(ha["upper_loss"])
    # resume with the same number of processes; another number is refused
    more = _jboat("run", task, "--out", tmp_path / "two", "--resume", "--iterations", 6)
    assert more.returncode == 0, more.stderr[-2000:]
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["resumed_from"] == 4
    alone = _jboat("run", task, "--out", tmp_path / "two", "--resume", "--iterations", 8,
                   mpi=False)
    assert alone.returncode == 1
    assert "written by 2 process(es), this run has 1: resume with `mpirun -np 2`" in alone.stderr


def test_unequal_shards_are_refused(tmp_path):
    proc = _jboat("run", _task(tmp_path, n=15), "--out", tmp_path / "o", timeout=600)
    assert proc.returncode != 0
    assert "15 examples cannot be split into 2 equal shards" in proc.stderr


def test_different_configs_are_refused(tmp_path):
    a, b = _task(tmp_path, "a.toml"), _task(tmp_path, "b.toml", iterations=4, lower_iters=2)
    b.write_text(b.read_text().replace("lower_iters = 3", "lower_iters = 2"))
    cmd = ["mpirun", "--oversubscribe", "-np", "1", sys.executable, "-m", "jboat_core.run.cli",
           "run", str(a), "--out", str(tmp_path / "o"), ":", "-np", "1", sys.executable, "-m",
           "jboat_core.run.cli", "run", str(b), "--out", str(tmp_path / "o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode != 0
    assert "started with different configurations" in proc.stderr


def _two_ranks(first: list, second: list, timeout=600):
    """``mpirun`` with rank 0 running ``jboat run *first`` and rank 1 ``*second``."""
    run = [sys.executable, "-m", "jboat_core.run.cli", "run"]
    cmd = ["mpirun", "--oversubscribe", "-np", "1", *run, *map(str, first), ":", "-np", "1",
           *run, *map(str, second)]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)


def test_ranks_with_different_optim_tables_are_refused_at_once(tmp_path):
    """Rank 1's task file differs in [optim] only (the solver, shapes and data agree):
    both ranks refuse at start, naming rank 1 and the item, long before any watchdog."""
    a = _task(tmp_path, "a.toml")
    b = _task(tmp_path, "b.toml")
    b.write_text(b.read_text().replace("lr = 0.05", "lr = 0.5"))
    t0 = time.time()
    proc = _two_ranks([a, "--out", tmp_path / "o"], [b, "--out", tmp_path / "o"])
    assert proc.returncode != 0
    assert time.time() - t0 < 300
    line = ("the processes were started with different inputs: rank 1: task file differs "
            "from rank 0's")
    assert proc.stderr.count(line) == 2, proc.stderr[-3000:]  # every rank says it
    assert "rank 1: [optim] table differs from rank 0's" in proc.stderr
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_ranks_with_different_iterations_are_refused_at_once(tmp_path):
    task = _task(tmp_path, iterations=4)
    t0 = time.time()
    proc = _two_ranks([task, "--out", tmp_path / "o"],
                      [task, "--out", tmp_path / "o", "--iterations", 6])
    assert proc.returncode != 0
    assert time.time() - t0 < 300  # not the 600 s watchdog
    assert proc.stderr.count("rank 1: --iterations differs from rank 0's") == 2, \
        proc.stderr[-3000:]


def test_ranks_with_different_data_are_refused_at_once(tmp_path):
    """The same task file, but rank 1's feeds have other shapes (an environment variable
    the task reads): refused from the feed shapes."""
    task = _task(tmp_path, iterations=2)
    env = {**ENV, "MPI_TASK_ROWS_RANK1": "8"}
    run = [sys.executable, "-m", "jboat_core.run.cli", "run", str(task), "--out",
           str(tmp_path / "o")]
    proc = subprocess.run(["mpirun", "--oversubscribe", "-np", "2", *run], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode != 0
    assert proc.stderr.count("rank 1: data (feed shapes) differs from rank 0's") == 2, \
        proc.stderr[-3000:]


@pytest.mark.parametrize("how", ["dies", "hangs"])
def test_a_rank_that_dies_or_hangs_does_not_hang_the_others(tmp_path, how):
    """Rank 1 is SIGKILLed (or sleeps) at iteration 2: the run ends with an error within
    the watchdog's limit instead of waiting in a collective forever."""
    env = {**ENV, "MPI_FAULT": how}
    proc = _jboat("run", _task(tmp_path, iterations=6), "--out", tmp_path / "o",
                  "--mpi-timeout", 20, timeout=300, env=env)
    assert proc.returncode != 0
    if how == "hangs":
        assert "Timeout" in proc.stderr


def test_mpi_requested_without_mpirun(tmp_path):
    proc = _jboat("run", _task(tmp_path), "--out", tmp_path / "o", "--mpi", mpi=False)
    assert proc.returncode == 1
    assert "--mpi: this process was not started by mpirun" in proc.stderr


def test_stochastic_solvers_under_mpirun(tmp_path):
    """SOBA under mpirun -np 2: each rank draws from its shard, the ranks stay identical
    (one result, finite); SABA, whose tables are per rank, refuses checkpoints under
    mpirun in one line instead of keeping rank 0's tables only."""
    task = _task(tmp_path)
    soba = tmp_path / "soba.toml"
    soba.write_text(task.read_text().replace('na_op = ["RAD"]', 'fo_op = "SOBA"')
                    + "[solver.SOBA]\nbatch_size = 4\n")
    par = _jboat("run", soba, "--out", tmp_path / "soba")
    assert par.returncode == 0, par.stderr[-2000:]
    metrics = json.loads((tmp_path / "soba" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and len(metrics["history"]) == 4
    assert all(np.isfinite(h["upper_loss"]) for h in metrics["history"])
    saba = tmp_path / "saba.toml"
    saba.write_text(task.read_text().replace('na_op = ["RAD"]', 'fo_op = "SABA"')
                    + "[solver.SABA]\nbatch_size = 4\n")
    refused = _jboat("run", saba, "--out", tmp_path / "saba", "--checkpoint-every", 2)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "SABA keeps state per process" in refused.stderr
    assert "Traceback" not in refused.stderr
