"""oneDNN by default (jboat_core/onednn.py): the folder Jittor looks in is laid out and kept
right, the user's ``use_mkl`` wins, and the oneDNN path is the one Jittor takes."""

import os
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jboat_core.platform import onednn

ON_WHEEL_PLATFORM = (platform.system(), platform.machine()) == onednn.SUPPORTED
HAS_WHEELS = onednn.wheel_files() is not None


def fake_prefix(root: Path, minor: int = 6) -> Path:
    """A venv-like prefix with oneDNN's files (empty library, a version header)."""
    (root / "lib").mkdir(parents=True)
    (root / "lib" / onednn.SONAME).write_bytes(b"")
    inc = root / "include" / "oneapi" / "dnnl"
    inc.mkdir(parents=True)
    (root / "include" / "dnnl.hpp").write_text("")
    (root / "include" / "dnnl_version.h").write_text('#include "oneapi/dnnl/dnnl_version.h"')
    (inc / "dnnl_version.h").write_text(
        f"#define DNNL_VERSION_MAJOR 2\n#define DNNL_VERSION_MINOR {minor}\n"
        "#define DNNL_VERSION_PATCH 0\n")
    return root


def links(folder: Path):
    so = os.readlink(folder / "lib" / "libmkldnn.so")
    assert os.readlink(folder / "lib" / onednn.SONAME) == so  # the name the ops ask for
    return (os.readlink(folder / "include"), so)


def lay(folder, prefix):
    lib, inc = onednn.wheel_files(prefix)
    return onednn.lay_out(folder, lib, inc)


def test_fresh_folder_is_linked_to_this_environment(tmp_path):
    a = fake_prefix(tmp_path / "venvA")
    folder = tmp_path / "home" / onednn.FOLDER
    assert lay(folder, a) == "linked"
    assert links(folder) == (str(a / "include"), str(a / "lib" / onednn.SONAME))
    assert lay(folder, a) == "kept"
    assert onednn.header_version(folder / "include") == (2, 6, 0)


def test_several_venvs_share_one_folder_and_a_deleted_venv_is_replaced(tmp_path):
    a, b = fake_prefix(tmp_path / "venvA"), fake_prefix(tmp_path / "venvB")
    folder = tmp_path / "home" / onednn.FOLDER
    lay(folder, a)
    assert lay(folder, b) == "kept"  # venv A's copy is the same version: left as it is
    assert links(folder)[1] == str(a / "lib" / onednn.SONAME)
    for p in sorted(a.rglob("*"), reverse=True):  # venv A deleted
        p.unlink() if not p.is_dir() else p.rmdir()
    assert lay(folder, b) == "linked"
    assert links(folder) == (str(b / "include"), str(b / "lib" / onednn.SONAME))


def test_dangling_and_other_version_links_are_replaced(tmp_path):
    old, new = fake_prefix(tmp_path / "old", minor=2), fake_prefix(tmp_path / "new")
    folder = tmp_path / "home" / onednn.FOLDER
    lay(folder, old)
    assert lay(folder, new) == "linked"  # other version
    assert links(folder)[0] == str(new / "include")
    for name in ("libmkldnn.so", onednn.SONAME):
        (folder / "lib" / name).unlink()
        (folder / "lib" / name).symlink_to(tmp_path / "removed.so")  # dangling
    assert lay(folder, new) == "linked"
    assert links(folder)[1] == str(new / "lib" / onednn.SONAME)
    assert (folder / "lib" / "libmkldnn.so").exists()
    assert not list(folder.rglob("*.tmp"))


def a_shared_library() -> bytes:
    """The bytes of a real ELF shared object (one of Python's extension modules)."""
    import _ctypes
    return Path(_ctypes.__file__).read_bytes()


def jittors_download(folder: Path, lib: bytes) -> None:
    (folder / "lib").mkdir(parents=True)
    (folder / "include").mkdir()
    (folder / "include" / "dnnl.hpp").write_text("")
    (folder / "lib" / "libmkldnn.so").write_bytes(lib)


def test_jittors_own_download_is_left_alone(tmp_path):
    folder = tmp_path / "home" / onednn.FOLDER
    jittors_download(folder, a_shared_library())
    assert lay(folder, fake_prefix(tmp_path / "v")) == "jittor"
    assert (folder / "lib" / "libmkldnn.so").read_bytes() == a_shared_library()


def test_two_processes_at_once(tmp_path):
    folder = tmp_path / "home" / onednn.FOLDER
    prefixes = [fake_prefix(tmp_path / f"v{i}", minor=2 + i % 2 * 4) for i in range(6)]
    code = textwrap.dedent("""
        import sys
        from jboat_core.platform import onednn
        for _ in range(30):
            lib, inc = onednn.wheel_files(sys.argv[2])
            onednn.lay_out(onednn.Path(sys.argv[1]), lib, inc)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(folder), str(p)])
             for p in prefixes]
    assert [p.wait(60) for p in procs] == [0] * len(procs)
    assert (folder / "include" / "dnnl.hpp").exists()
    assert (folder / "lib" / "libmkldnn.so").exists()
    assert not list(folder.rglob("*.tmp"))


def test_users_use_mkl_is_respected(tmp_path, monkeypatch):
    monkeypatch.setattr(onednn, "_STATE", None)
    env = {"use_mkl": "0", "JITTOR_HOME": str(tmp_path)}
    state = onednn.prepare(env)
    assert not state.used and "use_mkl=0" in state.reason and env["use_mkl"] == "0"
    assert not (tmp_path / ".cache").exists()


def test_other_platform_and_missing_wheels_say_why(tmp_path, monkeypatch):
    monkeypatch.setattr(onednn, "_STATE", None)
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    state = onednn.prepare({"JITTOR_HOME": str(tmp_path)})
    assert not state.used and "x86-64 Linux" in state.reason
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    env = {"JITTOR_HOME": str(tmp_path)}
    state = onednn.prepare(env, prefix=tmp_path / "empty")
    assert not state.used and "pip install onednn-cpu-gomp==2022.2.1" in state.reason
    assert "use_mkl" not in env


def test_unwritable_cache_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(onednn, "_STATE", None)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    (tmp_path / "home").write_text("a file where the cache folder should be")
    state = onednn.prepare({"JITTOR_HOME": str(tmp_path / "home")},
                           prefix=fake_prefix(tmp_path / "v"))
    assert not state.used and "cannot lay out" in state.reason


def test_cpu_only_keeps_a_local_onednn(tmp_path):
    """JBOAT_CPU_ONLY=1 no longer sets use_mkl=0 where oneDNN is set up (a fresh process)."""
    code = textwrap.dedent("""
        import os
        from jboat_core.platform import _jittor, onednn
        _jittor.prepare_environment()
        print(os.environ.get("use_mkl"), onednn.status().used)
    """)
    env = {k: v for k, v in os.environ.items() if k != "use_mkl"}
    env.update(JBOAT_CPU_ONLY="1", JITTOR_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == (["1", "True"] if ON_WHEEL_PLATFORM and HAS_WHEELS else ["0", "False"])


@pytest.mark.jittor
@pytest.mark.skipif(not (ON_WHEEL_PLATFORM and HAS_WHEELS), reason="no oneDNN wheels here")
def test_the_onednn_path_is_the_one_taken():
    """Jittor's oneDNN ops are loaded and a 2-D product is relayed to them (its kernel key
    carries the chosen relay), with the same numbers as NumPy."""
    import numpy as np

    import jboat_core

    jt = jboat_core.import_jittor()  # the README's way for a script that wants Jittor
    assert jt is sys.modules["jittor"] and onednn.status().used and os.environ["use_mkl"] == "1"
    assert jt.compile_extern.mkl_ops is not None
    a = np.random.RandomState(0).randn(64, 32).astype("float32")
    b = np.random.RandomState(1).randn(32, 16).astype("float32")
    jt.profiler.start(0, 0)
    out = jt.matmul(jt.array(a), jt.array(b)).numpy()
    jt.profiler.stop()
    keys = [row[0] for row in jt.profiler.report()[1:]]
    assert any("relay0:1" in k for k in keys), keys
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.jittor
def test_no_subnormal_warning_after_jittor_kernels():
    """matplotlib and scikit-learn imported after a Jittor kernel ran warn nothing."""
    code = textwrap.dedent("""
        from jboat_core.platform._jittor import jittor
        jt = jittor()
        (jt.array([1.0, 2.0]) * 3).sync()
        import matplotlib.pyplot, sklearn.datasets
    """)
    proc = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "subnormal" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.jittor
def test_doctor_reports_what_jittor_runs_with(capsys):
    from jboat_core.run.cli import main

    assert main(["doctor", "--json"]) == 0
    import json
    facts = json.loads(capsys.readouterr().out)
    assert facts["jittor_import"] == "ok"
    expected = ON_WHEEL_PLATFORM and HAS_WHEELS and os.environ.get("use_mkl") != "0"
    assert facts["onednn"] is expected and facts["onednn_ops_loaded"] is expected
    assert {"mpi", "cuda", "cache", "compiler"} <= set(facts)


@pytest.mark.jittor
@pytest.mark.skipif(not (ON_WHEEL_PLATFORM and HAS_WHEELS), reason="no oneDNN wheels here")
def test_a_plain_import_jittor_works_once_the_folder_exists():
    """A script that imports Jittor itself (JBOAT's examples do), with Jittor's default
    use_mkl=1, after jboat laid the folder out: the compiled ops find libdnnl through their
    run path (the folder's lib/libdnnl.so.2), with no preload."""
    from jboat_core.platform._jittor import jittor
    jittor()  # the folder is laid out
    env = {k: v for k, v in os.environ.items() if k not in ("use_mkl", "no_fuse")}
    env.update(nvcc_path="", FIX_TORCH_ERROR="0", log_silent="1")
    code = "import jittor as jt; print(jt.compile_extern.mkl_ops is not None)"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.split()[-1] == "True", proc.stderr[-2000:]


@pytest.mark.jittor
def test_exactness_modules_run_fused():
    """conftest: this module checks numbers with oneDNN as users run it, fused."""
    from jboat_core.platform._jittor import jittor
    assert jittor().flags.no_fuse == 0


# -- round 4: never stuck, never through a link, never silently slow -----------------------
@pytest.fixture
def wheel_platform(monkeypatch):
    """x86-64 Linux as far as oneDNN's set-up is concerned, and no state remembered."""
    monkeypatch.setattr(onednn, "_STATE", None)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(platform, "system", lambda: "Linux")


def prepare_in(tmp_path, prefix, **env):
    env = {"JITTOR_HOME": str(tmp_path / "home"), **env}
    return onednn.prepare(env, prefix=prefix), env


@pytest.mark.parametrize("damage,why", [
    (lambda lib: lib[:len(lib) // 2], "lib/libmkldnn.so is truncated ("),
    (lambda lib: b"<html>404</html>", "lib/libmkldnn.so is not a 64-bit ELF library"),
], ids=["truncated", "not-elf"])
def test_a_damaged_download_is_named_and_oneDNN_switched_off(tmp_path, wheel_platform,
                                                             capsys, damage, why):
    """A truncated libmkldnn.so is not taken for Jittor's download: oneDNN off (Jittor
    would fail to load it), the reason in doctor and one warning line."""
    folder = onednn.mkl_folder({"JITTOR_HOME": str(tmp_path / "home")})
    jittors_download(folder, damage(a_shared_library()))
    state, env = prepare_in(tmp_path, fake_prefix(tmp_path / "v"))
    assert not state.used and state.problem and env["use_mkl"] == "0"
    assert f"Jittor's oneDNN download in {folder} is damaged: {why}" in state.reason
    assert f"delete {folder}" in state.reason
    err = capsys.readouterr().err
    assert err.startswith("jboat: warning: oneDNN is not used (") and err.count("\n") == 1


def test_a_damaged_download_with_use_mkl_1_is_one_error(tmp_path, wheel_platform):
    folder = onednn.mkl_folder({"JITTOR_HOME": str(tmp_path / "home")})
    jittors_download(folder, a_shared_library()[:1000])
    with pytest.raises(onednn.OneDNNError, match="use_mkl=1 is set but oneDNN cannot be "
                                                 "used .*damaged"):
        prepare_in(tmp_path, fake_prefix(tmp_path / "v"), use_mkl="1")


@pytest.mark.parametrize("where", ["mkl", "folder", "lib"])
def test_a_linked_folder_is_never_written_through(tmp_path, wheel_platform, capsys, where):
    """mkl/, the oneDNN folder or its lib/ planted as a link to a folder outside the
    cache: nothing is created in the target; oneDNN off, saying which link."""
    folder = onednn.mkl_folder({"JITTOR_HOME": str(tmp_path / "home")})
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = {"mkl": folder.parent, "folder": folder, "lib": folder / "lib"}[where]
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    state, env = prepare_in(tmp_path, fake_prefix(tmp_path / "v"))
    assert list(target.iterdir()) == []
    assert not state.used and env["use_mkl"] == "0"
    assert f"{link} is a symbolic link (to {target}); jboat writes no link through it: " \
           f"remove it (rm {link})" in state.reason
    assert capsys.readouterr().err.startswith("jboat: warning: oneDNN is not used")


def test_a_linked_folder_whose_links_are_right_is_used_unwritten(tmp_path, wheel_platform):
    """A folder linked to one laid out elsewhere for this oneDNN: used as it is."""
    prefix = fake_prefix(tmp_path / "v")
    elsewhere = tmp_path / "shared" / onednn.FOLDER
    lay(elsewhere, prefix)
    before = sorted(p.name for p in elsewhere.rglob("*"))
    folder = onednn.mkl_folder({"JITTOR_HOME": str(tmp_path / "home")})
    folder.parent.mkdir(parents=True)
    folder.symlink_to(elsewhere)
    state, env = prepare_in(tmp_path, prefix)
    assert sorted(p.name for p in elsewhere.rglob("*")) == before
    assert "symbolic link" not in state.reason and "cannot lay out" not in state.reason


HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_a_held_setup_lock_is_waited_for_a_bounded_time(tmp_path, wheel_platform, capsys,
                                                        monkeypatch):
    """Another process holds the set-up lock (stopped, or on purpose): jboat says what it
    waits for and for how long, then goes on without oneDNN, naming the process."""
    import signal
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # Jittor's handler ends us when it dies
    folder = onednn.mkl_folder({"JITTOR_HOME": str(tmp_path / "home")})
    folder.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder.parent /
                                                                ".jboat-onednn.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("JBOAT_ONEDNN_WAIT", "2")
        t0 = time.monotonic()
        state, env = prepare_in(tmp_path, fake_prefix(tmp_path / "v"))
        assert 2 <= time.monotonic() - t0 < 10
    finally:
        holder.kill()
        holder.wait()
    lock = folder.parent / ".jboat-onednn.lock"
    assert not state.used and env["use_mkl"] == "0"
    assert (f"the set-up lock {lock} was held by PID {holder.pid} for more than 2 s"
            in state.reason)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"jboat: waiting for the oneDNN set-up lock {lock} (held by PID "
                      f"{holder.pid}), at most 2 s")
    assert err[1].startswith("jboat: warning: oneDNN is not used") and len(err) == 2


def test_a_held_lock_or_unwritable_cache_with_right_links_keeps_oneDNN(tmp_path,
                                                                       wheel_platform,
                                                                       monkeypatch, capsys):
    """Nothing to write, nothing to wait for: a folder already laid out for this oneDNN is
    used even when its lock cannot be taken or created (a read-only cache)."""
    from jboat_core.platform import dnnlfolder
    prefix = fake_prefix(tmp_path / "v")
    folder = onednn.mkl_folder({"JITTOR_HOME": str(tmp_path / "home")})
    lay(folder, prefix)
    real_open = os.open

    def read_only(path, flags, *args, **kw):
        if str(path).endswith(".jboat-onednn.lock"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(dnnlfolder.os, "open", read_only)
    monkeypatch.setattr(onednn.ctypes, "CDLL", lambda *a, **k: None)  # the fake library
    state, env = prepare_in(tmp_path, prefix)
    assert state.used and env["use_mkl"] == "1" and capsys.readouterr().err == ""


def test_a_read_only_cache_says_so(tmp_path, wheel_platform, monkeypatch, capsys):
    """A cache jboat cannot write and whose folder is not laid out: oneDNN off with the
    reason and a warning line (it was silent, and 30x slower)."""
    from jboat_core.platform import dnnlfolder
    real_open = os.open

    def read_only(path, flags, *args, **kw):
        if str(path).endswith(".jboat-onednn.lock"):
            raise OSError(30, "Read-only file system")
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(dnnlfolder.os, "open", read_only)
    state, env = prepare_in(tmp_path, fake_prefix(tmp_path / "v"))
    assert not state.used and "Read-only file system" in state.reason
    assert env["use_mkl"] == "0"
    assert capsys.readouterr().err.startswith("jboat: warning: oneDNN is not used (cannot "
                                              "lay out")


@pytest.mark.parametrize("content,needle", [
    ('{"JITTOR_HOME": 5}', 'JITTOR_HOME is 5, not the path of a folder'),
    ('{"JITTOR_HOME": ""}', 'JITTOR_HOME is "", not the path of a folder'),
    ('{"JITTOR_HOME": ["/x"]}', 'JITTOR_HOME is ["/x"], not the path of a folder'),
    ("[1, 2]", "holds list, not a table of settings"),
    ("{not json", "cannot be read as JSON"),
], ids=["number", "empty", "list", "not-a-table", "not-json"])
def test_jittors_config_that_would_fail_its_import_is_one_line(tmp_path, content, needle):
    """``jboat run`` and ``doctor`` with a ``~/.cache/jittor/config.json`` Jittor's own
    import would end on in a traceback: one line naming the file and the entry."""
    home = tmp_path / "home"
    (home / ".cache" / "jittor").mkdir(parents=True)
    config = home / ".cache" / "jittor" / "config.json"
    config.write_text(content)
    env = {k: v for k, v in os.environ.items() if k != "JITTOR_HOME"}
    env.update(HOME=str(home), JBOAT_CPU_ONLY="1")
    task = tmp_path / "t.toml"
    task.write_text(f'[task]\nmodule = "{Path(__file__).parent / "fault_task.py"}"\n'
                    'iterations = 2\n[solver]\nna_op = ["RAD"]\n')
    res = subprocess.run([sys.executable, "-m", "jboat_core.run.cli", "run", str(task),
                          "--out", str(tmp_path / "o")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.stderr.strip() == f"jboat: error: {config}: {needle}" + \
        res.stderr.strip().split(needle, 1)[1]
    assert "fix it or delete it" in res.stderr and res.stderr.count("\n") == 1
    doc = subprocess.run([sys.executable, "-m", "jboat_core.run.cli", "doctor", "--json",
                          "--no-import"], env=env, capture_output=True, text=True, timeout=300)
    import json
    facts = json.loads(doc.stdout)
    assert needle in facts["setup_error"] and "Traceback" not in doc.stderr
    assert config.read_text() == content  # jboat never rewrites Jittor's file


@pytest.mark.skipif(not (ON_WHEEL_PLATFORM and HAS_WHEELS), reason="no oneDNN wheels here")
def test_doctor_with_a_held_setup_lock_ends_and_says_why(tmp_path):
    """``jboat doctor`` (and ``run``, through the same set-up) waited forever on a held
    lock without a word: now a bounded wait, a line saying what it waits for, the
    reason in the report."""
    import json
    import signal
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    home = tmp_path / "home"
    lock = home / ".cache" / "jittor" / "mkl" / ".jboat-onednn.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        env = {k: v for k, v in os.environ.items() if k not in ("JITTOR_HOME", "use_mkl")}
        env.update(HOME=str(home), JBOAT_ONEDNN_WAIT="2", JBOAT_CPU_ONLY="1")
        res = subprocess.run([sys.executable, "-m", "jboat_core.run.cli", "doctor", "--json",
                              "--no-import"], env=env, capture_output=True, text=True,
                             timeout=120)
    finally:
        holder.kill()
        holder.wait()
    facts = json.loads(res.stdout)
    assert facts["onednn"] is False and facts["use_mkl"] == "0"
    assert f"held by PID {holder.pid} for more than 2 s" in facts["onednn_reason"]
    assert f"jboat: waiting for the oneDNN set-up lock {lock}" in res.stderr


@pytest.mark.jittor
@pytest.mark.skipif(not (ON_WHEEL_PLATFORM and HAS_WHEELS), reason="no oneDNN wheels here")
def test_run_with_a_held_setup_lock_ends(tmp_path):
    """``jboat run`` while another process holds this machine's oneDNN set-up lock (the
    round-4 report: it waited forever without a word): the run ends, keeping oneDNN when
    its links are already right, and if it waits it says for what."""
    import signal
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    task = tmp_path / "task.toml"
    task.write_text(f'[task]\nmodule = "{Path(__file__).resolve().parent / "fault_task.py"}"\n'
                    'iterations = 2\n[solver]\nna_op = ["RAD"]\nlower_iters = 3\n')
    lock = onednn.mkl_folder().parent / ".jboat-onednn.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        env = {**os.environ, "JBOAT_ONEDNN_WAIT": "5"}
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "jboat_core.run.cli", "run",
                              str(task), "--out",
                              str(tmp_path / "o")], env=env, capture_output=True, text=True,
                             timeout=600)
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode == 0, res.stderr[-3000:]
    waited = f"jboat: waiting for the oneDNN set-up lock {lock}" in res.stderr
    assert waited or time.monotonic() - t0 < 300
    assert "Traceback" not in res.stderr
