"""Issue 21, as an operator and an attacker would try it: links planted in ``--out``,
SIGTERM/SIGHUP, a task module that changes directory, exits, raises, leaves threads or
feeds nothing, ``validate`` on names that would run code, hostile config files and
numbers, a full disk, plugins that print or raise in ``list-ops``, ``compare`` stopped.

Every case ends in a one-line ``jboat: error:`` (or the documented behaviour), nothing
outside ``--out`` touched, nothing run that the user did not name, results kept.
"""

import contextlib
import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "JBOAT_LOAD_PLUGINS": "jboat"}


def task_file(tmp_path, iterations=3, solver='na_op = ["RAD"]', **params):
    lines = [f"{k} = {json.dumps(v)}" for k, v in params.items()]
    text = (f'[task]\nmodule = "{HERE / "adversarial_task.py"}"\niterations = {iterations}\n'
            "[task.params]\n" + "\n".join(lines) + "\n"
            '[optim.lower]\nlr = 0.1\n[optim.upper]\ntype = "Adam"\nlr = 0.05\n'
            f"[solver]\n{solver}\nlower_iters = 2\n")
    path = tmp_path / f"task_{abs(hash(text)) % 10**8}.toml"
    path.write_text(text)
    return path


def jboat(*args, env=None, timeout=600, cwd=None, **kw):
    return subprocess.run([sys.executable, "-m", "jboat_core.run.cli", *map(str, args)],
                          capture_output=True, text=True, env=env or ENV, timeout=timeout,
                          cwd=cwd, **kw)


def error_line(res) -> str:
    """The first stderr line, checked to be jboat's one-line error."""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("jboat: error: "), res.stderr
    return lines[0]


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(autouse=True)
def children_may_die():
    """Jittor, once imported in this process (by an in-process run), ends it when a child
    dies of a signal (its SIGCHLD handler, meant for data-loader workers); these tests
    start and signal children."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


# -- 1. no write through a link planted in --out -------------------------------------------
@pytest.mark.parametrize("dangling", [False, True], ids=["link", "dangling"])
def test_a_linked_lock_file_is_refused_and_its_target_untouched(tmp_path, dangling):
    from jboat_core.run.outdir import OutputError, OutputFolder
    out, victim = tmp_path / "o", tmp_path / "victim.txt"
    out.mkdir()
    if not dangling:
        victim.write_text("precious\n")
    (out / ".jboat.lock").symlink_to(victim)
    with pytest.raises(OutputError, match=r"\.jboat\.lock is a symbolic link; .*remove it"):
        with OutputFolder(out):
            pass
    assert (victim.read_text() == "precious\n") if not dangling else not victim.exists()


@pytest.mark.parametrize("name", ["metrics.json", "loss_curve.png"])
@pytest.mark.parametrize("dangling", [False, True], ids=["link", "dangling"])
def test_outputs_replace_a_planted_link_never_its_target(tmp_path, name, dangling):
    from jboat_core.run.metrics import plot_losses, write_metrics
    out, victim = tmp_path / "o", tmp_path / "victim"
    out.mkdir()
    if not dangling:
        victim.write_text("precious\n")
    (out / name).symlink_to(victim)
    if name == "metrics.json":
        write_metrics(out / name, {"status": "completed"})
    else:
        plot_losses([{"iter": 0, "upper_loss": 1.0, "lower_loss": 2.0}], out / name, "t")
    assert not (out / name).is_symlink() and (out / name).stat().st_size > 0
    assert (victim.read_text() == "precious\n") if not dangling else not victim.exists()
    assert not list(out.glob(".*.tmp"))


def test_overwrite_removes_a_linked_output_not_its_target(tmp_path):
    from jboat_core.run.outdir import OutputError, OutputFolder
    out, victim = tmp_path / "o", tmp_path / "victim.json"
    out.mkdir()
    victim.write_text("{}\n")
    (out / "metrics.json").symlink_to(victim)
    (out / "loss_curve.png").symlink_to(tmp_path / "nowhere.png")  # dangling: still there
    with pytest.raises(OutputError, match="holds an earlier run"):
        with OutputFolder(out):
            pass
    with OutputFolder(out, overwrite=True):
        pass
    assert not os.path.lexists(out / "metrics.json") and victim.read_text() == "{}\n"
    assert not os.path.lexists(out / "loss_curve.png")


def test_the_lock_is_released_even_when_a_forked_child_lives_on(tmp_path):
    """A child forked while the folder is held (Jittor's compiler pools) neither keeps the
    lock nor blocks a second use of the folder in the same process."""
    from jboat_core.run.outdir import OutputFolder
    out = tmp_path / "o"
    ready, tell = os.pipe()
    with OutputFolder(out):
        pid = os.fork()
        if pid == 0:  # the child: its copy of the lock descriptor was closed at fork
            os.write(tell, b"x")
            time.sleep(5)
            os._exit(0)
    os.read(ready, 1)  # the child is past its fork hooks
    try:
        with OutputFolder(out):  # the same process, again, with the child alive
            pass
        holders = [fd for fd in os.listdir(f"/proc/{pid}/fd")
                   if os.path.realpath(f"/proc/{pid}/fd/{fd}") == str(out / ".jboat.lock")]
        assert holders == []
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


# -- 4. validate runs no code -------------------------------------------------------------
PROBE = ("import runpy, sys\nsys.argv = ['jboat'] + sys.argv[1:]\ntry:\n"
         "    runpy.run_module('jboat_core.run.cli', run_name='__main__')\nfinally:\n"
         "    sys.stderr.write('\\n@@%s' % sorted(m for m in ('this', 'jittor') "
         "if m in sys.modules))\n")


@pytest.mark.parametrize("module,ok", [("this.x", False), ("jittor.nn", True),
                                       ("this", True), ("no_such_pkg.mod", False),
                                       ("os..path", False)])
def test_validate_never_imports_the_task_module(tmp_path, module, ok):
    task = tmp_path / "t.toml"
    task.write_text(f'[task]\nmodule = "{module}"\n[solver]\nna_op = ["RAD"]\n')
    res = subprocess.run([sys.executable, "-c", PROBE, "validate", str(task)],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert res.stderr.endswith("@@[]"), res.stderr  # neither `this` nor Jittor imported
    assert "Beautiful is better" not in res.stdout  # what importing `this` prints
    assert (res.returncode == 0) == ok, res.stderr
    if not ok:
        assert "task.module" in error_line(res)


# -- 6. hostile files and numbers ---------------------------------------------------------
@pytest.mark.parametrize("table,needle", [
    ('seed = -1', "task.seed"), ('seed = 4294967296', "task.seed"),
    ('iterations = 1e23', "task.iterations"),
    ('iterations = 100000000000000000000', "task.iterations")],
    ids=["seed-negative", "seed-2**32", "iterations-1e23", "iterations-huge"])
def test_validate_refuses_what_run_could_not_use(tmp_path, table, needle):
    (tmp_path / "m.py").write_text("def build(p, s):\n    pass\n")
    task = tmp_path / "t.toml"
    task.write_text(f'[task]\nmodule = "m.py"\n{table}\n[solver]\nna_op = ["RAD"]\n')
    res = jboat("validate", task)
    assert res.returncode == 2 and needle in error_line(res)
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("out", ["/proc/jboat-out", "/proc/self/jboat-out",
                                 "/sys/jboat-out"])
def test_an_out_folder_that_cannot_be_made_is_one_line(tmp_path, out):
    res = jboat("run", task_file(tmp_path), "--out", out)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert error_line(res).startswith(f"jboat: error: --out {out}"), error_line(res)
    assert "jittor" not in res.stderr.lower()


def test_huge_iterations_on_the_command_line(tmp_path):
    for value in ("1e23", "100000000000000000000000"):
        res = jboat("run", tmp_path / "t.toml", "--iterations", value)
        assert res.returncode == 2 and "argument --iterations" in res.stderr
        assert "Traceback" not in res.stderr


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_deeply_nested_config_is_one_line(tmp_path, suffix):
    path = tmp_path / f"deep{suffix}"
    nest = "[" * 50_000 + "]" * 50_000
    path.write_text(f"a = {nest}\n" if suffix == ".toml" else f'{{"a": {nest}}}')
    res = jboat("validate", path)
    assert res.returncode == 2 and "nested more than" in error_line(res)
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("suffix,text", [(".toml", 'na_op = ["RAD"]\n'),
                                         (".json", '{"na_op": ["RAD"]}')])
def test_utf8_bom_is_accepted(tmp_path, suffix, text):
    path = tmp_path / f"bom{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    res = jboat("validate", path)
    assert res.returncode == 0 and "valid" in res.stdout, res.stderr


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_non_regular_config_is_refused_before_reading(tmp_path, kind):
    path = {"fifo": tmp_path / "c.toml", "dev-zero": Path("/dev/zero"),
            "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    for cmd in (["validate", path], ["run", path, "--out", tmp_path / "o"]):
        res = jboat(*cmd, timeout=60)  # a FIFO opened for reading would hang
        assert res.returncode == 2 and "is not a regular file" in error_line(res)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_compare_timeout_must_be_finite_and_positive(tmp_path, value):
    res = jboat("compare", tmp_path / "t.toml", "--timeout", value)
    assert res.returncode == 2 and "argument --timeout" in res.stderr
    assert "Traceback" not in res.stderr


def test_compare_timeout_checked_in_the_python_api(tmp_path):
    from jboat_core.run.compare import run_compare
    from jboat_core.errors import ConfigError
    for value in (math.nan, math.inf, -5.0):
        with pytest.raises(ConfigError, match="--timeout"):
            run_compare(tmp_path / "t.toml", tmp_path / "o", timeout=value)


@pytest.mark.parametrize("args,needle", [
    (("--methods", ",,,"), "--methods: ',,,' names no method"),
    (("--methods", " , "), "--methods: ' , ' names no method"),
    (("--methods", "RAD", "--reference-chain", "garbage"),
     "--reference-chain: 'garbage' is not a hyper-gradient chain"),
    (("--methods", "RAD", "--reference-chain", "NGD"),
     "--reference-chain: 'NGD' is not a hyper-gradient chain"),
    (("--methods", "RAD", "--metric", "no_such_metric"),
     "--metric: 'no_such_metric' is not a metric of this task (its evaluate() gives x0, y0)"),
], ids=["commas", "blank", "garbage-chain", "dynamics-chain", "unknown-metric"])
def test_compare_input_that_names_nothing_is_one_line(tmp_path, args, needle):
    """Nothing is silently ignored: no empty report with exit 0, no reference dropped,
    no metric replaced by another."""
    out = tmp_path / "c"
    res = jboat("compare", task_file(tmp_path), "--out", out, "--iterations", "2", *args)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert error_line(res).startswith(f"jboat: error: {needle}"), error_line(res)
    assert not (out / "compare.json").exists()


@pytest.mark.jittor
def test_compare_waits_for_its_worker_not_for_a_process_the_task_left(tmp_path):
    """A task that starts a detached child holding the worker's output open: the method
    is reported with its real outcome as soon as its worker ends, long before --timeout."""
    pid_file = tmp_path / "child.pid"
    out = tmp_path / "c"
    t0 = time.time()
    res = jboat("compare", task_file(tmp_path, detach=str(pid_file)), "--methods", "RAD",
                "--out", out, "--iterations", "2", "--timeout", "240",
                "--reference-chain", "", timeout=600)
    took = time.time() - t0
    try:
        assert res.returncode == 0, res.stderr[-2000:]
        row = json.loads((out / "compare.json").read_text())["rows"][0]
        assert row["status"] == "ok", row
        assert took < 200, took
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


# -- plugins in list-ops --------------------------------------------------------------------
def test_list_ops_survives_a_summary_that_raises_and_a_plugin_that_prints(capsys):
    from fakeplugins import ep, make_module, op_class

    from jboat_core.plugins.registry import Registry
    from jboat_core.plugins import registry as registry_module
    from jboat_core.run.cli import main

    class Meta(type(op_class("PROBE"))):
        broken = False

        @property
        def summary(cls):
            if Meta.broken:
                raise RuntimeError("summary exploded")
            return "fine at registration"

    bad = Meta("BADSUM", (op_class("BADSUM"),), {})
    make_module("fake_badsum", bad)
    make_module("fake_loud", op_class("LOUD"))

    class Loud(type(ep("x", "y"))):
        def load(self):
            print("hello from a plugin at import")
            return super().load()

    reg = Registry.from_entry_points([ep("badsum", "fake_badsum", "jboat-badsum"),
                                      Loud("loud", "fake_loud", ep("x", "y").dist)])
    assert sorted(reg.names()) == ["BADSUM", "LOUD"]
    Meta.broken = True
    old = registry_module.set_registry(reg)
    try:
        capsys.readouterr()
        assert main(["list-ops", "--json", "-v"]) == 0
        out = json.loads(capsys.readouterr().out)  # nothing else on stdout
        assert [o["name"] for o in out["operators"]] == ["LOUD"]
        assert "summary exploded" in out["failures"][0]["error"]
        assert main(["list-ops"]) == 0
        text = capsys.readouterr().out
        assert "1 plugin(s) failed" in text and "summary exploded" in text
    finally:
        registry_module.set_registry(old)
        Meta.broken = False


def test_a_plugin_printing_at_import_writes_to_stderr(capsys):
    from fakeplugins import ep, make_module, op_class

    from jboat_core.plugins.registry import Registry
    make_module("fake_loud2", op_class("LOUD2"))

    class Loud(type(ep("x", "y"))):
        def load(self):
            print("noise")
            return super().load()

    capsys.readouterr()
    Registry.from_entry_points([Loud("loud2", "fake_loud2", ep("x", "y").dist)])
    captured = capsys.readouterr()
    assert captured.out == "" and "noise" in captured.err


# -- 2. paths resolved once ---------------------------------------------------------------
@pytest.mark.jittor
def test_a_task_changing_directory_still_writes_to_the_locked_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "o").mkdir(parents=True)
    (elsewhere / "o" / "metrics.json").write_text("another run's\n")
    task = task_file(tmp_path, iterations=2, chdir=str(elsewhere))
    res = jboat("run", task.name, "--out", "o", cwd=tmp_path)  # relative paths
    assert res.returncode == 0, res.stderr
    assert metrics(tmp_path / "o")["status"] == "completed"
    assert (tmp_path / "o" / "loss_curve.png").exists()
    assert (elsewhere / "o" / "metrics.json").read_text() == "another run's\n"


# -- 3. SIGTERM / SIGHUP ------------------------------------------------------------------
@pytest.mark.jittor
def test_sigterm_records_the_run_and_resumes_bit_identically(tmp_path, children_may_die):
    """SIGTERM at iteration 3, then (resumed) at 5, then resumed to the end: the same
    history and final values as an uninterrupted run, to the last bit."""
    task = task_file(tmp_path, iterations=8)
    straight = jboat("run", task, "--out", tmp_path / "a", "--checkpoint-every", 2)
    assert straight.returncode == 0, straight.stderr
    out = tmp_path / "b"
    for term_at, flags, done in ((3, [], 3), (5, ["--resume"], 5)):
        res = jboat("run", task, "--out", out, "--checkpoint-every", 2, *flags,
                    env={**ENV, "FAULT_TERM_AT": str(term_at)})
        assert res.returncode == 128 + signal.SIGTERM, res.stderr
        assert res.stderr.strip().splitlines()[-1].startswith("jboat: terminated by SIGTERM")
        m = metrics(out)
        assert m["status"] == "terminated" and m["signal"] == "SIGTERM"
        assert [h["iter"] for h in m["history"]] == list(range(done))
    resumed = jboat("run", task, "--out", out, "--resume", "--checkpoint-every", 2)
    assert resumed.returncode == 0, resumed.stderr
    a, b = metrics(tmp_path / "a"), metrics(out)
    assert b["status"] == "completed" and b["resumed_from"] == 4
    assert [(h["upper_loss"], h["lower_loss"]) for h in a["history"]] == \
        [(h["upper_loss"], h["lower_loss"]) for h in b["history"]]
    assert a["final"] == b["final"]


@pytest.mark.jittor
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_background_job_with_sigint_ignored_records_a_sigterm(tmp_path, sig,
                                                                children_may_die):
    """Started like `jboat run ... &` from a script (SIGINT ignored): Ctrl-C stays
    ignored after Jittor's import, SIGTERM/SIGHUP still end it with metrics.json."""
    out = tmp_path / "o"

    def as_a_background_job():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, "-m", "jboat_core.run.cli", "run",
                             str(task_file(tmp_path, iterations=200, sleep=0.1)), "--out",
                             str(out), "--checkpoint-every", "1"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_a_background_job)
    deadline = time.time() + 300
    while not (out / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.1)  # Jittor imported, an iteration done
    proc.send_signal(signal.SIGINT)
    time.sleep(1)
    assert proc.poll() is None  # ignored, as the shell asked
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    m = metrics(out)
    assert m["status"] == "terminated" and m["history"] and "quick exit" not in err


@pytest.mark.jittor
def test_sigterm_during_the_final_picture_is_not_completed(tmp_path, monkeypatch):
    from jboat_core.run import runner
    from jboat_core.platform.signals import Terminated

    def killed(*args):
        raise Terminated(signal.SIGTERM)

    monkeypatch.setattr(runner, "plot_losses", killed)
    with pytest.raises(Terminated):
        runner.run_task(task_file(tmp_path, iterations=2), tmp_path / "o")
    m = metrics(tmp_path / "o")
    assert m["status"] == "terminated" and len(m["history"]) == 2
    assert not (tmp_path / "o" / "loss_curve.png").exists()


# -- 5. task modules that exit, raise, leave threads; the Python API twice ------------------
@pytest.mark.jittor
@pytest.mark.parametrize("where", ["feeds", "ul_objective"])
def test_sys_exit_in_the_task_is_an_error(tmp_path, where):
    out = tmp_path / "o"
    res = jboat("run", task_file(tmp_path, exit_in=where), "--out", out)
    assert res.returncode == 1
    line = error_line(res)
    assert "adversarial_task.py" in line and f"{where}()" in line
    assert "sys.exit(0)" in line and "outer iteration 0" in line
    assert metrics(out)["status"] == "failed"


@pytest.mark.jittor
@pytest.mark.parametrize("atexit_code,raise_at,code,status", [
    (0, 1, 1, "failed"), (7, -1, 0, "completed")], ids=["failed-then-0", "completed-then-7"])
def test_the_task_cannot_change_the_exit_code_at_exit(tmp_path, atexit_code, raise_at, code,
                                                       status):
    """A task's ``atexit`` handler calling ``os._exit``: ``jboat run`` still exits with its
    own code (the command runs in a child that reports it before exit handlers run)."""
    out = tmp_path / "o"
    res = jboat("run", task_file(tmp_path, atexit_exit=atexit_code, raise_at=raise_at),
                "--out", out)
    assert res.returncode == code, res.stderr[-2000:]
    assert metrics(out)["status"] == status


def test_an_objective_raising_midway_names_it_and_the_iteration(tmp_path):
    out = tmp_path / "o"
    res = jboat("run", task_file(tmp_path, raise_at=2), "--out", out)
    assert res.returncode == 1
    line = error_line(res)
    assert "my_ul_objective()" in line and "outer iteration 2" in line
    assert "ValueError: the upper objective broke on purpose" in line
    assert "Traceback (most recent call last)" in res.stderr  # the user's, after the line
    m = metrics(out)
    assert m["status"] == "failed" and len(m["history"]) == 2


@pytest.mark.jittor
def test_mismatched_data_shapes_are_one_line_first(tmp_path):
    res = jboat("run", task_file(tmp_path, mismatch=True), "--out", tmp_path / "o")
    assert res.returncode == 1
    assert "outer iteration 0" in error_line(res)


@pytest.mark.jittor
def test_empty_feeds_do_not_complete(tmp_path):
    out = tmp_path / "o"
    res = jboat("run", task_file(tmp_path, empty=True), "--out", out)
    assert res.returncode == 1
    assert "returned an empty array ll_feed['A'] (shape (0, 5))" in error_line(res)
    assert metrics(out)["status"] == "failed"


@pytest.mark.jittor
def test_a_thread_left_by_the_task_does_not_keep_the_process(tmp_path):
    out = tmp_path / "o"
    res = jboat("run", task_file(tmp_path, iterations=2, thread=True), "--out", out,
                timeout=300)
    assert res.returncode == 0, res.stderr
    assert "1 non-daemon thread(s) left running (left-by-task)" in res.stderr
    assert metrics(out)["status"] == "completed"


@pytest.mark.jittor
def test_run_task_twice_on_one_folder_in_one_process(tmp_path):
    from jboat_core.run.runner import run_task
    task = task_file(tmp_path, iterations=2)
    first = run_task(task, tmp_path / "o")
    second = run_task(task, tmp_path / "o", overwrite=True)
    assert first["status"] == second["status"] == "completed"
    losses = lambda m: [(h["upper_loss"], h["lower_loss"]) for h in m["history"]]  # noqa: E731
    assert losses(first) == losses(second)


# -- 6. a full disk -----------------------------------------------------------------------
@pytest.mark.jittor
def test_enospc_is_one_line_and_metrics_are_attempted(tmp_path, monkeypatch):
    from jboat_core.run.outdir import OutputError
    from jboat_core.run.runner import run_task
    real, calls = os.fsync, []

    def full(fd):
        calls.append(fd)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    task = task_file(tmp_path, iterations=3)
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError) as info:
        run_task(task, tmp_path / "o", checkpoint_every=1)
    monkeypatch.setattr(os, "fsync", real)
    text = str(info.value)
    assert "\n" not in text and "No space left on device" in text
    assert "checkpoint.npz" in text and "metrics.json could not be written either" in text
    assert len(calls) >= 2  # the checkpoint, then metrics.json
    assert not list((tmp_path / "o").glob(".*.tmp"))


def _tiny_tmpfs(path: Path) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.jittor
def test_a_really_full_disk(tmp_path):
    disk = tmp_path / "disk"
    if not _tiny_tmpfs(disk):
        pytest.skip("cannot mount a 64 KB tmpfs here (needs root)")
    try:
        out = disk / "o"
        out.mkdir()
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as fh:  # fill the disk up
            try:
                while True:
                    fh.write(b"\0" * 4096)
            except OSError:
                pass
        res = jboat("run", task_file(tmp_path, iterations=3), "--out", out,
                    "--checkpoint-every", 1)
        assert res.returncode == 1
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "No space left on device" in error_line(res), lines
        assert "Traceback" not in res.stderr
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# -- 3. compare stopped -------------------------------------------------------------------
def _compare_workers(tag: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"jboat_core.run.compare_worker" in cmd and tag.encode() in cmd:
                pids.append(int(entry.name))
    return pids


@pytest.mark.jittor
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_compare_stopped_ends_its_worker_and_removes_its_folder(tmp_path, sig,
                                                                children_may_die):
    tmp, progress = tmp_path / "tmp", tmp_path / "progress"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "jboat_core.run.cli", "compare",
                             str(task_file(tmp_path, sleep=1.0)), "--methods", "RAD",
                             "--out", str(tmp_path / "c"), "--iterations", "50"],
                            env={**ENV, "TMPDIR": str(tmp), "FAULT_PROGRESS": str(progress)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # SIGINT as from a terminal, even if pytest runs as a `&` job
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300  # the worker a few iterations in (after any compilation)
    while not (_compare_workers(str(tmp)) and progress.exists()
               and progress.read_text().strip() not in ("", "0", "1")) \
            and time.time() < deadline:
        time.sleep(0.2)
    workers = _compare_workers(str(tmp))
    assert workers and list(tmp.iterdir())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (128 + sig if sig != signal.SIGINT else 130), err
    time.sleep(0.5)
    left = [p for p in tmp.iterdir() if not p.name.startswith("jboat-jittorfix-")]
    assert _compare_workers(str(tmp)) == [] and left == []  # jittorfix's lock stays


def test_terminate_as_exception_takes_over_default_signals_only():
    from jboat_core.platform.signals import Terminated, terminate_as_exception
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as info:
        with terminate_as_exception():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs before this ends
    assert info.value.exit_code == 128 + signal.SIGTERM and info.value.name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # like nohup: left ignored
    try:
        with terminate_as_exception():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    with pytest.raises(Terminated):  # a second signal while the first is handled: ignored
        with terminate_as_exception():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.1)


def test_a_forked_child_dies_of_sigterm_as_by_default():
    """multiprocessing ends its workers (Jittor's compiler pool) with SIGTERM: a child
    forked inside ``terminate_as_exception`` must die of it even when blocked in C."""
    from jboat_core.platform.signals import terminate_as_exception
    with terminate_as_exception():
        pid = os.fork()
        if pid == 0:
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or os._exit(3)
            signal.pthread_sigmask(signal.SIG_BLOCK, [])  # then wait in C, not in Python
            os.read(os.open("/dev/zero", os.O_RDONLY), 0)
            time.sleep(30)
            os._exit(0)
        time.sleep(0.5)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


# -- round 4: SIGTERM during Jittor's import ends as terminated ----------------------------
KILLED_CHILD = """
import os, signal, subprocess, sys, threading
from jboat_core.platform._jittor import jittor
from jboat_core.platform.signals import Terminated, terminate_as_exception
jittor()  # Jittor's C handler for SIGCHLD is installed
try:
    with terminate_as_exception():
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        subprocess.run(["sleep", "30"])  # killed with SIGKILL as Terminated unwinds
except Terminated as exc:
    sys.exit(exc.exit_code)
"""


@pytest.mark.jittor
def test_sigterm_while_a_subprocess_runs_after_jittors_import_ends_as_terminated():
    """Python kills a running subprocess (SIGKILL) as Terminated unwinds; Jittor's
    SIGCHLD handler took that for "Maybe out of memory" and quit with 1 (what SIGTERM
    0.5 s into ``jboat run`` gave, during Jittor's import): now exit code 143."""
    res = subprocess.run([sys.executable, "-c", KILLED_CHILD], capture_output=True,
                         text=True, env=ENV, timeout=600)
    assert res.returncode == 128 + signal.SIGTERM, res.stderr[-2000:]
    assert "Maybe out of memory" not in res.stderr


def test_a_swallowed_terminated_is_raised_again():
    """A bare ``except:`` on the way (Jittor's import has them) does not let a run go on
    as if SIGTERM had not come: ``raise_pending`` raises it again."""
    from jboat_core.platform.signals import Terminated, raise_pending, terminate_as_exception
    with pytest.raises(Terminated) as info:
        with terminate_as_exception():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except:  # noqa: E722 - what Jittor's code does
                pass
            raise_pending()
    assert info.value.signum == signal.SIGTERM
    raise_pending()  # outside the block: nothing pending


@pytest.mark.jittor
@pytest.mark.parametrize("where", ["build", "feeds"])
def test_a_sigterm_the_task_turns_into_another_error_ends_as_terminated(tmp_path, where):
    """A SIGTERM taken while the task's code runs, whose exception that code turns into
    another one (an extension module's import: "ImportError: initialization failed";
    seen with SIGTERM 1.0 s into a cold run): the run ends as terminated (143), not as the
    task's failure (1)."""
    res = jboat("run", task_file(tmp_path, iterations=3, swallow_term=where),
                "--out", tmp_path / "o")
    assert res.returncode == 128 + signal.SIGTERM, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("jboat: terminated by SIGTERM")
    assert "ImportError" not in res.stderr and "Traceback" not in res.stderr, res.stderr


@pytest.mark.jittor
def test_sigterm_at_any_moment_of_the_start_ends_as_terminated(tmp_path):
    """SIGTERM from 0.3 s to 1.5 s into ``jboat run`` (jboat's import, Jittor's import,
    the task's build, the first iterations): the process ends by the signal before jboat
    took it over (-15), or as terminated (143, one line); never 0 or 1."""
    task = task_file(tmp_path, iterations=2)
    for i, delay in enumerate([0.3 + 0.1 * k for k in range(13)]):
        proc = subprocess.Popen([sys.executable, "-m", "jboat_core.run.cli", "run",
                                 str(task), "--out", str(tmp_path / f"o{i}")], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
        if proc.returncode == 0:  # finished before the signal came: fine, and the end
            break
        assert proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM), (delay, err)
        if proc.returncode > 0:
            assert err.strip().splitlines()[-1].startswith("jboat: terminated by SIGTERM")
            assert "Maybe out of memory" not in err and "Traceback" not in err, err
