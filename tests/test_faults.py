"""Nothing lost, nothing executed: checkpoints under SIGKILL, two runs on one folder,
resumes across processes, crafted and damaged checkpoints, NaN in every operator kind.

Each test asserts that nothing was lost or changed. Runs use ``tests/fault_task.py`` (the
ridge problem, tiny and fast) in their own processes where a process must die.
"""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "JBOAT_LOAD_PLUGINS": "jboat"}


def task_file(tmp_path, solver='na_op = ["RAD"]', iterations=8, lower_lr=0.1, **params):
    lines = [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"'
             for k, v in params.items()]
    text = (f'[task]\nmodule = "{HERE / "fault_task.py"}"\niterations = {iterations}\n'
            f'[task.params]\n' + "\n".join(lines) + "\n"
            f'[optim.lower]\nlr = {lower_lr}\n[optim.upper]\ntype = "Adam"\nlr = 0.05\n'
            f'[solver]\n{solver}\nlower_iters = 3\n')
    path = tmp_path / f"task_{abs(hash(text)) % 10**8}.toml"
    path.write_text(text)
    return path


def jboat(*args, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "jboat_core.run.cli", *map(str, args)],
                          capture_output=True, text=True, env=env or ENV, timeout=timeout)


# -- checkpoints are data, written atomically --------------------------------------------
WRITER = """
import sys, numpy as np
from jboat_core.run.checkpoint import save_checkpoint
path = sys.argv[1]
big = np.random.RandomState(0).rand(2_000_000)
i = 0
while True:
    save_checkpoint(path, {"i": i, "big": big + i}, {"task": "t"}, i)
    print(i, flush=True)
    i += 1
"""


@pytest.fixture
def children_may_die():
    """Jittor (imported by earlier tests) ends its process when a child dies of a signal
    (its SIGCHLD handler, meant for data-loader workers); these tests kill children."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def test_sigkill_during_checkpoint_writes_leaves_the_previous_intact(tmp_path,
                                                                    children_may_die):
    from jboat_core.run.checkpoint import load_checkpoint
    path = tmp_path / "checkpoint.npz"
    for trial in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                                stdout=subprocess.PIPE, text=True, env=ENV)
        for _ in range(2 + trial):  # wait for a few complete writes, then kill mid-write
            proc.stdout.readline()
        time.sleep(0.01 * trial)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state, next_iter = load_checkpoint(path, {"task": "t"})
        assert state["i"] == next_iter and np.array_equal(state["big"][:3],
                                                         state["big"][:3] * 0 + state["big"][:3])
        assert np.allclose(state["big"] - state["i"],
                           np.random.RandomState(0).rand(2_000_000)[:len(state["big"])])


@pytest.mark.jittor
def test_resume_after_sigkill_is_bit_identical(tmp_path, children_may_die):
    """Straight run vs a run SIGKILLed at iteration 5 (checkpoints every 2) then resumed in
    a new process: identical history and final values, to the last bit. (Jittor fuses the
    ops of a lazily computed Var into the next iteration's kernels, which rounded
    differently from a resumed run that starts from stored arrays: 7e-7 apart. Every
    variable and optimizer state is now materialised at the end of each iteration, so both
    runs start each iteration from the same arrays.)"""
    from jboat_core.run.checkpoint import read_meta
    task = task_file(tmp_path)
    straight = jboat("run", task, "--out", tmp_path / "a", "--checkpoint-every", 2)
    assert straight.returncode == 0, straight.stderr
    killed = jboat("run", task, "--out", tmp_path / "b", "--checkpoint-every", 2,
                   env={**ENV, "FAULT_DIE_AT": "5"})
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "b" / "metrics.json").exists()  # SIGKILL: nothing could be written
    assert read_meta(tmp_path / "b" / "checkpoint.npz")["next_iter"] == 4
    resumed = jboat("run", task, "--out", tmp_path / "b", "--resume", "--checkpoint-every", 2)
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert b["resumed_from"] == 4 and len(b["history"]) == len(a["history"]) == 8
    for ha, hb in zip(a["history"], b["history"]):
        assert (ha["upper_loss"], ha["lower_loss"]) == (hb["upper_loss"], hb["lower_loss"])
    assert a["final"] == b["final"]


#: Solvers resumed through ``jboat run --resume``: every built-in first-order solver (the
#: stochastic ones keep v, h or SAGA tables), and chains with and without dynamics state.
FIRST_ORDER = ("ALTO", "AmIGO", "GAFFO", "MASOBA", "MESO", "PGDO", "SABA", "SOBA",
               "StocBiO", "TTSA", "VFO", "VSO")
RESUMED = {**{name: f'fo_op = ["{name}"]' for name in FIRST_ORDER},
           "NGD+RAD": 'na_op = ["RAD"]', "NGD+CG": 'na_op = ["CG"]',
           "DM+RAD": 'gm_op = ["DM"]\nna_op = ["RAD"]',
           "GDA+NGD+PTT+RAD": 'gm_op = ["GDA", "NGD"]\nna_op = ["PTT", "RAD"]'}


def _checkpoint_state(out: Path) -> dict:
    from jboat_core.run.checkpoint import load_checkpoint, read_meta
    path = out / "checkpoint.npz"
    return load_checkpoint(path, read_meta(path)["fingerprint"])[0]


def _same_bits(a, b, where="state") -> None:
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _same_bits(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same_bits(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def test_the_resumed_solvers_are_every_first_order_one(builtin_registry):
    assert set(FIRST_ORDER) == set(builtin_registry.names("first_order"))


@pytest.mark.jittor
@pytest.mark.parametrize("name", list(RESUMED))
def test_every_solver_resumes_bit_identically_through_jboat_run(tmp_path, name):
    """An untouched checkpoint of every solver (SABA's SAGA tables, SOBA's v, DM's duals...)
    is accepted by ``jboat run --resume`` (its state checked against what the operator
    itself describes) and the resumed run equals a straight one to the last bit:
    history, final values and the state at the end."""
    task = task_file(tmp_path, solver=RESUMED[name], iterations=4)
    straight = jboat("run", task, "--out", tmp_path / "a", "--checkpoint-every", 2)
    assert straight.returncode == 0, straight.stderr[-3000:]
    first = jboat("run", task, "--out", tmp_path / "b", "--iterations", 2,
                  "--checkpoint-every", 2)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = jboat("run", task, "--out", tmp_path / "b", "--resume", "--checkpoint-every", 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert b["resumed_from"] == 2 and len(a["history"]) == len(b["history"]) == 4
    for ha, hb in zip(a["history"], b["history"]):
        assert (ha["upper_loss"], ha["lower_loss"]) == (hb["upper_loss"], hb["lower_loss"])
    assert a["final"] == b["final"]
    _same_bits(_checkpoint_state(tmp_path / "a"), _checkpoint_state(tmp_path / "b"))


@pytest.mark.jittor
def test_a_large_operator_state_resumes(tmp_path):
    """SABA's tables (200 blocks x 100 features, 80 KB each, 400 KB of state) are larger
    than the variables they are shaped like: the limits come from the state itself (its
    rows, bounded by the file), not a constant margin over the variables."""
    task = task_file(tmp_path, solver='fo_op = ["SABA"]\nSABA = {batch_size = 2}',
                     iterations=3, d=100, n=400)
    first = jboat("run", task, "--out", tmp_path / "o", "--iterations", 2,
                  "--checkpoint-every", 1)
    assert first.returncode == 0, first.stderr[-3000:]
    state = _checkpoint_state(tmp_path / "o")
    assert state["operators"]["SABA"]["g_y"][0].shape == (200, 100)
    resumed = jboat("run", task, "--out", tmp_path / "o", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["resumed_from"] == 2


@pytest.mark.jittor
def test_a_22_mb_state_resumes_through_the_command(tmp_path):
    """The round-4 report's size: a valid task whose state is about 22 MB (1.4 million
    ridge features: y, x and Adam's two moments of x) writes checkpoints that its own
    ``jboat run --resume`` takes, to the same results as an uninterrupted run."""
    # the lower Hessian's largest eigenvalue is about d / n: a step that stays stable
    task = task_file(tmp_path, iterations=2, lower_lr=1e-7, d=1_400_000, n=2)
    first = jboat("run", task, "--out", tmp_path / "o", "--iterations", 1,
                  "--checkpoint-every", 1)
    assert first.returncode == 0, first.stderr[-3000:]
    sizes = [p.stat().st_size for p in (tmp_path / "o").iterdir() if "checkpoint" in p.name]
    assert max(sizes) > 20e6, sizes
    resumed = jboat("run", task, "--out", tmp_path / "o", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = jboat("run", task, "--out", tmp_path / "w")
    assert whole.returncode == 0, whole.stderr[-3000:]
    ma, mw = (json.loads((tmp_path / f / "metrics.json").read_text()) for f in ("o", "w"))
    assert ma["resumed_from"] == 1 and ma["final"] == mw["final"]


@pytest.mark.jittor
def test_a_hard_linked_copy_of_a_run_folder_never_changes_the_original(tmp_path):
    """``cp -al a b`` shares every file of a with b; resuming b (and then a) writes into
    no shared file: each folder continues on its own, to the same results."""
    task = task_file(tmp_path, iterations=4)
    a, b = tmp_path / "a", tmp_path / "b"
    first = jboat("run", task, "--out", a, "--iterations", 2, "--checkpoint-every", 1)
    assert first.returncode == 0, first.stderr[-3000:]
    subprocess.run(["cp", "-al", str(a), str(b)], check=True)
    before = {p.name: p.read_bytes() for p in a.iterdir()}
    assert os.stat(a / "checkpoint.history.jsonl").st_nlink == 2
    res = jboat("run", task, "--out", b, "--resume", "--checkpoint-every", 1)
    assert res.returncode == 0, res.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in a.iterdir()} == before
    assert all(os.stat(p).st_nlink == 1 for p in b.iterdir())
    after_b = {p.name: p.read_bytes() for p in b.iterdir() if p.name != ".jboat.lock"}
    res = jboat("run", task, "--out", a, "--resume", "--checkpoint-every", 1)
    assert res.returncode == 0, res.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in b.iterdir() if p.name != ".jboat.lock"} == after_b
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (a, b))
    losses = lambda m: [(h["upper_loss"], h["lower_loss"]) for h in m["history"]]  # noqa
    assert losses(ma) == losses(mb) and len(losses(ma)) == 4 and ma["final"] == mb["final"]


def test_a_hard_linked_lock_file_is_replaced_never_written(tmp_path):
    """A ``.jboat.lock`` that is a hard link to another file: that file keeps its bytes;
    the folder gets a private lock file holding the PID."""
    from jboat_core.run.outdir import OutputFolder
    out, victim = tmp_path / "o", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("precious\n")
    os.link(victim, out / ".jboat.lock")
    with OutputFolder(out):
        assert (out / ".jboat.lock").read_text() == f"{os.getpid()}\n"
        assert os.stat(out / ".jboat.lock").st_nlink == 1
    assert victim.read_text() == "precious\n" and os.stat(victim).st_nlink == 1


def test_a_hard_linked_lock_file_held_elsewhere_is_refused_unwritten(tmp_path):
    """The linked file is locked (the run of the folder this one was copied from): the
    run is refused, naming it, and nothing is written."""
    import fcntl

    from jboat_core.run.outdir import OutputError, OutputFolder
    out, victim = tmp_path / "o", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("precious\n")
    os.link(victim, out / ".jboat.lock")
    with open(victim, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(OutputError, match=r"\.jboat\.lock is a hard link to another "
                                              r"file, locked by the jboat run PID \?"):
            with OutputFolder(out):
                pass
    assert victim.read_text() == "precious\n" and os.stat(victim).st_nlink == 2


def as_from_a_terminal():
    """SIGINT as a terminal gives it (default: KeyboardInterrupt), even when pytest itself
    runs as a ``&`` job, whose SIGINT is ignored and inherited by its children."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(task, out, env=None):
    """``jboat run TASK --out OUT`` in the background, returned once it holds OUT's lock."""
    proc = subprocess.Popen([sys.executable, "-m", "jboat_core.run.cli", "run", str(task),
                             "--out", str(out)], env=env or ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_from_a_terminal)
    lock = out / ".jboat.lock"
    deadline = time.time() + 300
    while not (lock.exists() and lock.read_text().strip()) and time.time() < deadline:
        time.sleep(0.05)
    return proc


def test_second_run_on_one_folder_is_refused_at_once(tmp_path, children_may_die):
    task = task_file(tmp_path, sleep=0.2, iterations=40)
    first = start_run(task, tmp_path / "o")
    t0 = time.time()
    second = jboat("run", task, "--out", tmp_path / "o", "--overwrite")
    assert time.time() - t0 < 30
    first.kill()
    first.wait()
    assert second.returncode == 1
    assert f"in use by another jboat run (PID {first.pid})" in second.stderr


def test_ctrl_c_records_why_the_run_stopped(tmp_path, children_may_die):
    """SIGINT (Ctrl-C) mid-run: metrics.json says "interrupted" with the history so far;
    the exit code is 130."""
    task = task_file(tmp_path, sleep=0.2, iterations=60)
    progress = tmp_path / "progress"
    proc = start_run(task, tmp_path / "o", env={**ENV, "FAULT_PROGRESS": str(progress)})
    deadline = time.time() + 300  # a few iterations in (after any kernel compilation)
    while not (progress.exists() and progress.read_text().strip() not in ("", "0", "1")) \
            and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["history"]


def test_earlier_run_is_not_overwritten_without_a_flag(tmp_path):
    from jboat_core.run.checkpoint import save_checkpoint
    from jboat_core.run.runner import OutputError, run_task
    out = tmp_path / "o"
    out.mkdir()
    save_checkpoint(out / "checkpoint.npz", {"x": np.zeros(3)}, {}, 60)
    (out / "metrics.json").write_text('{"history": [1, 2, 3]}')
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OutputError, match=r"holds an earlier run \(checkpoint.npz, "
                                          r"metrics.json\); pass --resume .* or --overwrite"):
        run_task(task_file(tmp_path), out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in before} == before


# -- a checkpoint is never code ---------------------------------------------------------
class _Evil:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['EVIL_MARK'], 'w').write('ran')",))


def test_crafted_pickle_checkpoint_is_never_executed(tmp_path):
    mark = tmp_path / "ran"
    out = tmp_path / "o"
    out.mkdir()
    (out / "checkpoint.pkl").write_bytes(pickle.dumps({"problem": _Evil()}))
    env = {**ENV, "EVIL_MARK": str(mark)}
    for flags in (["--resume"], []):
        res = subprocess.run([sys.executable, "-m", "jboat_core.run.cli", "run",
                              str(task_file(tmp_path)), "--out", str(out), *flags],
                             capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 1 and not mark.exists()
    assert "never loads pickles" in subprocess.run(
        [sys.executable, "-m", "jboat_core.run.cli", "run", str(task_file(tmp_path)), "--out",
         str(out), "--resume"], capture_output=True, text=True, env=env).stderr
    # a pickle hidden in an .npz (an object array) is refused too, without running it
    np.save(out / "evil.npy", np.array([_Evil()], dtype=object), allow_pickle=True)
    import zipfile
    with zipfile.ZipFile(out / "checkpoint.npz", "w") as z:
        z.write(out / "evil.npy", "__meta__.npy")
    (out / "checkpoint.pkl").unlink()
    res = subprocess.run([sys.executable, "-m", "jboat_core.run.cli", "run",
                          str(task_file(tmp_path)), "--out", str(out), "--resume"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 1 and not mark.exists()
    assert f"checkpoint {out / 'checkpoint.npz'}" in res.stderr


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04truncated", os.urandom(4096)],
                         ids=["empty", "truncated", "random"])
def test_damaged_checkpoint_is_named(tmp_path, content):
    out = tmp_path / "o"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(content)
    res = jboat("run", task_file(tmp_path), "--out", out, "--resume")
    assert res.returncode == 1 and "jittor" not in res.stderr.lower()
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith(f"jboat: error: checkpoint {out / 'checkpoint.npz'} is damaged")


@pytest.mark.jittor
def test_checkpoint_of_another_task_says_what_differs(tmp_path):
    out = tmp_path / "o"
    assert jboat("run", task_file(tmp_path, iterations=2), "--out", out,
                 "--checkpoint-every", 1).returncode == 0
    other = task_file(tmp_path, solver='na_op = ["CG"]', iterations=2)
    res = jboat("run", other, "--out", out, "--resume")
    assert res.returncode == 1
    assert ('was written for another problem: solver.na_op[0]: saved "RAD", now "CG"'
            in res.stderr)  # the first difference, both values
    assert "--overwrite" in res.stderr


@pytest.mark.jittor
@pytest.mark.parametrize("solver,where", [
    ('gm_op = ["DM"]\nna_op = ["RAD"]', "F"), ('na_op = ["RAD"]', "F"),
    ('fo_op = "VFO"', "F"), ('fo_op = "MESO"', "f"), ('na_op = ["CG"]', "f")],
    ids=["DM-upper", "NGD+RAD-upper", "VFO-upper", "MESO-lower", "NGD+CG-lower"])
def test_nan_stops_the_run_and_changes_nothing(builtin_registry, tmp_path, solver, where):
    """An objective turning NaN at outer iteration 3: the run stops with an error naming
    the operator and the iteration; variables, checkpoint and metrics are those of the
    last good iteration (the issue's DM case included)."""
    from jboat_core import OperatorRuntimeError
    from jboat_core.run.checkpoint import load_checkpoint, read_meta
    from jboat_core.run.runner import run_task
    key = "nan_at" if where == "F" else "lower_nan_at"
    task = task_file(tmp_path, solver=solver, **{key: 3})
    seen = []
    with pytest.raises(OperatorRuntimeError, match=r"^\w+: outer iteration 3"):
        run_task(task, tmp_path / "o", checkpoint_every=1,
                 callback=lambda rec, prob: seen.append(
                     [v.numpy().copy() for v in prob.ll_var + prob.ul_var]))
    ckpt = tmp_path / "o" / "checkpoint.npz"
    assert read_meta(ckpt)["next_iter"] == 3
    state, _ = load_checkpoint(ckpt, read_meta(ckpt)["fingerprint"])
    saved = state["ll_var"] + state["ul_var"]
    assert all(np.array_equal(a, b) for a, b in zip(saved, seen[-1]))
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and len(metrics["history"]) == 3
    assert metrics["error"].startswith("DivergedError: ")  # an OperatorRuntimeError


def test_metrics_are_strict_json(tmp_path):
    from jboat_core.run.metrics import write_metrics
    path = tmp_path / "metrics.json"
    written = write_metrics(path, {"final": {"acc": float("nan"), "ok": 1.0},
                                   "history": [{"upper_loss": float("inf")}]})
    data = json.loads(path.read_text())  # strict: json.loads would accept NaN, so check text
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    assert data["final"]["acc"] is None and data["history"][0]["upper_loss"] is None
    assert data["non_finite"] == ["final.acc", "history[0].upper_loss"] == written["non_finite"]


@pytest.mark.jittor
def test_nan_upper_loss_with_finite_gradients_is_an_error(builtin_registry):
    """F's value NaN but its gradient finite (a NaN constant added): still an error, and
    nothing moves."""
    from jboat_core import OperatorRuntimeError
    from jboat_core.testing.conformance import conformance_problem
    from jboat_core.testing.problems import jt
    rad = builtin_registry.get("RAD").cls
    problem, prob, sw = conformance_problem(rad)
    F = sw.F
    sw.F = lambda *a, **k: F(*a, **k) + jt.array([float("nan")]).detach().sum()  # noqa: E731
    problem.ul_objective = problem.composition.ul_objective = sw.F
    for op in problem.composition.operators:
        op.ul_objective = sw.F
    x0 = prob.x()
    with pytest.raises(OperatorRuntimeError, match=r"RAD: outer iteration 0: the upper "
                                                   r"objective F is nan while the gradients"):
        problem.run_iter(prob.ll_feed, prob.ul_feed, 0)
    assert np.array_equal(prob.x(), x0)


@pytest.mark.jittor
def test_ctrl_c_is_pythons_after_new_kernels_load():
    """Jittor re-installs its quick-exit SIGINT handler whenever one of its libraries loads
    (seen when kernels compile on a cold cache); jboat's set-up keeps SIGINT Python's
    (``JPY_PARENT_PID``), so Ctrl-C is a KeyboardInterrupt after new kernels too."""
    code = ("import os, signal, sys, time\n"
            "from jboat_core import import_jittor\n"
            "jt = import_jittor()\n"
            "n = 3 + int(time.time() * 1000) % 97  # a shape no cache has: a new kernel\n"
            "(jt.ones((n, 7)) * 3.5 + 1.25).sum().sync()\n"
            "try:\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    time.sleep(5)\n"
            "except KeyboardInterrupt:\n"
            "    print('KeyboardInterrupt'); sys.exit(7)\n")
    env = {k: v for k, v in os.environ.items() if k != "JPY_PARENT_PID"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=600, preexec_fn=as_from_a_terminal)
    assert proc.returncode == 7 and "KeyboardInterrupt" in proc.stdout, proc.stderr[-2000:]
