"""Every bad input is one line, ``jboat: error: ...``, naming the file, key or plugin and
what to do; raised before Jittor is imported where possible (checked in a subprocess)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fakeplugins import FakeDist, FakeEntryPoint, ep, make_module, op_class

ENV = {**os.environ, "JBOAT_LOAD_PLUGINS": "jboat"}
PROBE = ("import runpy, sys\n"
         "sys.argv = ['jboat'] + sys.argv[1:]\n"
         "try:\n    runpy.run_module('jboat_core.run.cli', run_name='__main__')\n"
         "finally:\n    sys.stderr.write('\\n@@jittor=%d' % ('jittor' in sys.modules))\n")

TASK = """[task]
module = "{module}"
iterations = 2
[solver]
na_op = ["RAD"]
"""


def jboat(*args, env=None):
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True,
                          text=True, env=env or ENV, timeout=300)
    err, _, flag = proc.stderr.rpartition("\n@@jittor=")
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    return proc.returncode, lines, flag == "1"


def one_error(code, lines, *needles):
    assert code in (1, 2), (code, lines)
    assert lines and lines[0].startswith("jboat: error: "), lines
    text = "\n".join(lines)
    for n in needles:
        assert n in text, (n, text)


@pytest.mark.parametrize("content,needles", [
    ("[1, 2]", ["expected a table of settings, got list"]),
    (b"\xff\xfe\x00na_op", ["not UTF-8 text"]),
    ('{"na_op": ["RAD"], "bogus": 1}', ["bogus: unknown key"]),
    ("{not json", ["not valid JSON"]),
], ids=["list", "not-utf8", "unknown-key", "broken"])
def test_bad_config_files(tmp_path, content, needles):
    path = tmp_path / "c.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, lines, jittor = jboat("validate", path)
    one_error(code, lines, str(path) if "unknown" in needles[0] else "c.json", *needles)
    assert not jittor


@pytest.mark.parametrize("body,needles", [
    (None, ["does not exist"]),
    ("raise RuntimeError('bad import')", ["importing", "raised RuntimeError: bad import"]),
    ("x = 1", ["has no build(params, seed) function"]),
    ("def build(params, seed):\n    return None", ["build() in", "returned NoneType",
                                                    "return a jboat_core.run.runner.Task"]),
    ("def build(params, seed):\n    raise ValueError('oops')", ["build() in",
                                                               "raised ValueError: oops"]),
], ids=["missing", "raises-at-import", "no-build", "returns-none", "build-raises"])
def test_bad_task_modules(tmp_path, body, needles):
    module = tmp_path / "mod.py"
    if body is not None:
        module.write_text(body + "\n")
    task = tmp_path / "t.toml"
    task.write_text(TASK.format(module="mod.py"))
    code, lines, jittor = jboat("run", task, "--out", tmp_path / "out")
    one_error(code, lines, "task.module: ", *needles)
    if body is None:  # found out before Jittor and before any output
        assert not jittor and not (tmp_path / "out").exists()


def test_validate_checks_the_whole_task_file(tmp_path):
    task = tmp_path / "t.toml"
    task.write_text('[task]\nmodule = "missing.py"\n[optim.lower]\ntype = "RMSprop"\n'
                    '[solver]\nna_op = ["RAD"]\n')
    code, lines, jittor = jboat("validate", task)
    one_error(code, lines, "optim.lower.type", "task.module")  # both reported? first wins
    assert not jittor
    (tmp_path / "ok.py").write_text("def build(p, s):\n    pass\n")
    task.write_text('[task]\nmodule = "ok.py"\n[solver]\nna_op = ["RAD"]\n')
    proc = subprocess.run([sys.executable, "-m", "jboat_core.run.cli", "validate", str(task)],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0 and "valid task file: module ok.py" in proc.stdout


@pytest.mark.parametrize("out_kind", ["file", "under-file"])
def test_out_that_is_a_file(tmp_path, out_kind):
    (tmp_path / "mod.py").write_text("def build(p, s):\n    pass\n")
    task = tmp_path / "t.toml"
    task.write_text(TASK.format(module="mod.py"))
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = blocker if out_kind == "file" else blocker / "sub"
    code, lines, jittor = jboat("run", task, "--out", out)
    one_error(code, lines, f"--out {out}", "is a file" if out_kind == "file" else "lies under")
    assert not jittor and blocker.read_text() == "not a folder"


@pytest.mark.parametrize("flag,value", [("--iterations", "-1"), ("--iterations", "0"),
                                        ("--checkpoint-every", "-2"), ("--iterations", "x")])
def test_bad_numbers_on_the_command_line(tmp_path, flag, value):
    proc = subprocess.run([sys.executable, "-m", "jboat_core.run.cli", "run", "t.toml", flag,
                           value], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 2 and f"argument {flag}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_and_overwrite_exclude_each_other(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jboat_core.run.cli", "run", "t.toml",
                           "--resume", "--overwrite"], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


# -- plugins ------------------------------------------------------------------------------
def test_plugin_calling_sys_exit_is_isolated():
    from jboat_core.plugins.registry import Registry

    make_module("fake_exits_ok", op_class("EXITOK"))

    class Exiting(FakeEntryPoint):
        def load(self):
            raise SystemExit(3)

    reg = Registry.from_entry_points([Exiting("exits", "fake_exits", FakeDist("jboat-exits")),
                                      ep("ok", "fake_exits_ok", "jboat-ok")])
    assert reg.names() == ["EXITOK"]
    (failure,) = reg.failures
    assert failure.origin.distribution == "jboat-exits" and "SystemExit" in failure.error


def test_plugin_reusing_a_builtin_name_is_refused_and_the_builtin_stays(builtin_registry):
    from jboat_core.plugins.registry import Registry
    from importlib import metadata
    make_module("fake_cg_clash", op_class("CG"))
    builtin = [e for e in metadata.entry_points(group="jboat") if e.name == "cg"]
    reg = Registry.from_entry_points(builtin + [ep("cgclash", "fake_cg_clash", "aaa-clash")])
    rec = reg.get("CG")
    assert rec.origin.distribution == "jboat" and rec.cls.__module__ == "jboat_ops.cg"
    (failure,) = reg.failures
    assert failure.origin.distribution == "aaa-clash"
    assert "reuses the name 'CG' of jboat's built-in jboat_ops.cg.CG" in failure.error
    assert "Rename" in failure.error


def test_requires_any_naming_an_unknown_operator_is_a_registration_error():
    from jboat_core.plugins.registry import Registry
    make_module("fake_needs", op_class("NEEDY", requires_any=("NOSUCHOP",)))
    reg = Registry.from_entry_points([ep("needy", "fake_needs", "jboat-needy")])
    assert "NEEDY" not in reg.names()
    (failure,) = reg.failures
    assert "requires_any names 'NOSUCHOP'" in failure.error and failure.origin.distribution == "jboat-needy"


def test_followed_by_naming_an_unknown_stage_is_a_registration_error():
    from jboat_core.plugins.registry import Registry
    make_module("fake_follow", op_class("FOLLOW", role="either", followed_by=("nowhere",)))
    reg = Registry.from_entry_points([ep("follow", "fake_follow", "jboat-follow")])
    assert "unknown stage(s) ['nowhere']" in reg.failures[0].error


def test_strict_mode_prints_the_traceback(tmp_path):
    plugin_dir = tmp_path / "plug"
    plugin_dir.mkdir()
    (plugin_dir / "broken_plugin.py").write_text("raise ImportError('missing dependency xyz')\n")
    dist = plugin_dir / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[jboat]\nbroken = broken_plugin\n")
    env = {**ENV, "PYTHONPATH": str(plugin_dir), "JBOAT_STRICT_PLUGINS": "1"}
    env.pop("JBOAT_LOAD_PLUGINS")
    proc = subprocess.run([sys.executable, "-m", "jboat_core.run.cli", "list-ops"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "missing dependency xyz" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("jboat: error: plugin 'broken'")


@pytest.mark.jittor
def test_mpirun_without_jittor_mpi_is_a_clear_error(monkeypatch):
    """Jittor already imported outside mpirun, then the launcher's variables appear: jt.in_mpi
    is False, and detection refuses with what to install (in any test order: Jittor is
    imported first, without the variables)."""
    from jboat_core.platform._jittor import jittor
    from jboat_core.platform.parallel import Parallel, ParallelError
    jittor()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    with pytest.raises(ParallelError, match="Jittor's MPI is not available: install OpenMPI"):
        Parallel.detect()
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    assert Parallel.detect().world == 1


@pytest.mark.parametrize("env", [{"mpicc_path": ""}, {"use_mpi": "0"}])
def test_started_by_mpirun_where_jittor_has_no_mpi(tmp_path, env):
    """Jittor's own import would crash (AttributeError in compile_extern): jboat refuses
    before importing it, in one line naming what to install."""
    task = Path(__file__).resolve().parent.parent / "examples" / "l2_reg.toml"
    code, lines, imported = jboat("run", task, "--out", tmp_path / "out", env={
        **ENV, "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0", **env})
    one_error(code, lines, "started by mpirun but Jittor has no MPI",
              "apt-get install openmpi-bin")
    assert len(lines) == 1 and not imported


@pytest.mark.mpi
@pytest.mark.skipif(shutil.which("mpirun") is None, reason="mpirun not found (OpenMPI)")
def test_real_mpirun_of_a_jittor_without_mpi(tmp_path):
    """Under a real ``mpirun -np 2`` with Jittor's MPI unavailable (``mpicc_path=``), every
    rank stops with jboat's one line, before Jittor is imported."""
    task = Path(__file__).resolve().parent.parent / "examples" / "l2_reg.toml"
    env = {**ENV, "mpicc_path": "", "OMPI_ALLOW_RUN_AS_ROOT": "1",
           "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    proc = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", "-x", "mpicc_path",
                           sys.executable, "-m", "jboat_core.run.cli", "run", str(task),
                           "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("jboat: error: ")]
    assert len(errors) == 2 and all("Jittor has no MPI" in e for e in errors), proc.stderr
    assert "Traceback" not in proc.stderr
