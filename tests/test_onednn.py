"""oneDNN by default (jboat_core/onednn.py): the folder Jittor looks in is laid out and kept
right, the user's ``use_mkl`` wins, and the oneDNN path is the one Jittor takes."""

import os
import platform
import subprocess
import sys
import textwrap
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


def test_jittors_own_download_is_left_alone(tmp_path):
    folder = tmp_path / "home" / onednn.FOLDER
    (folder / "lib").mkdir(parents=True)
    (folder / "include").mkdir()
    (folder / "lib" / "libmkldnn.so").write_bytes(b"real")
    assert lay(folder, fake_prefix(tmp_path / "v")) == "jittor"
    assert (folder / "lib" / "libmkldnn.so").read_bytes() == b"real"


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
