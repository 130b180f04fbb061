"""The jboat CLI: listing is fast and never imports Jittor."""

import json
import subprocess
import sys
import time

from jboat_core.run.cli import main


def test_list_ops_table(builtin_registry, capsys):
    assert main(["list-ops"]) == 0
    out = capsys.readouterr().out
    for name in ("CG", "NS", "FD", "IAD", "RAD", "PTT", "FOA", "RGT", "IGA", "NGD"):
        assert f"\n{name} " in out
    assert "jboat 0.2.0" in out and "DISTRIBUTION" in out


def test_list_ops_json(builtin_registry, capsys):
    assert main(["list-ops", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    seed = {"CG", "NS", "FD", "IAD", "RAD", "PTT", "FOA", "RGT", "IGA"}
    assert seed <= {r["name"] for r in rows}
    for r in rows:
        assert {"name", "stage", "distribution", "version"} <= set(r)


def test_show_op(builtin_registry, capsys):
    assert main(["show-op", "rgt"]) == 0
    out = capsys.readouterr().out
    assert "truncate_iter (int, default 1)" in out and "Shaban" in out
    assert "must be followed" in out and "cannot be combined with: FD" in out


def test_show_unknown_op_is_an_error(builtin_registry, capsys):
    assert main(["show-op", "NOPE"]) == 2
    assert "valid choices" in capsys.readouterr().err


def test_validate_reports_lines(builtin_registry, tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"na_op": ["PTT"]}')
    assert main(["validate", str(cfg)]) == 2
    assert "modifier-last" in capsys.readouterr().err
    cfg.write_text('{"na_op": ["rad", "ptt"]}')
    assert main(["validate", str(cfg)]) == 0
    assert "['PTT', 'RAD']" in capsys.readouterr().out


def test_listing_never_imports_jittor_and_is_fast():
    code = ("import sys, io, contextlib; from jboat_core.run.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['list-ops', '--json']); main(['show-op', 'CG'])\n"
            "sys.exit(3 if 'jittor' in sys.modules else 0)")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 5, f"listing took {elapsed:.2f}s"  # ~0.5 s measured; slack for load


def test_setup_onednn_links_another_onednn(tmp_path, capsys):
    """The old command still links a oneDNN named by hand (e.g. Debian's libdnnl-dev)."""
    lib = tmp_path / "libdnnl.so"
    lib.write_bytes(b"")
    inc = tmp_path / "include"
    inc.mkdir()
    (inc / "dnnl.h").write_text("")
    cache = tmp_path / "cache"
    assert main(["setup-onednn", "--cache-dir", str(cache), "--lib", str(lib),
                 "--include", str(inc)]) == 0
    folder = cache / "mkl" / "dnnl_lnx_2.2.0_cpu_gomp"
    assert (folder / "lib" / "libmkldnn.so").resolve() == lib.resolve()
    assert (folder / "include" / "dnnl.h").exists()
    assert main(["setup-onednn", "--cache-dir", str(cache), "--lib",
                 str(tmp_path / "missing.so")]) == 1
    assert "onednn-cpu-gomp" in capsys.readouterr().err


def test_doctor_without_import_names_onednn_and_mpi(capsys):
    assert main(["doctor", "--no-import", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert {"jittor", "compiler", "onednn", "onednn_reason", "mpicc"} <= set(facts)
    assert isinstance(facts["onednn"], bool) and facts["onednn_reason"]


# --- a command line that behaves (issue 32) -------------------------------------------

import os  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from jboat_core.platform import device  # noqa: E402
from jboat_core.run import cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The variables of the device decision this process inherited or set.
DECISION_VARS = ("JBOAT_DEVICE", "JBOAT_CPU_ONLY", device.DECIDED, device.SET_BY_JBOAT,
                 "nvcc_path", "use_cuda", "log_silent", "FIX_TORCH_ERROR")


def jboat(*args, env=None, **kw):
    """``jboat ARGS`` in a fresh process (this checkout first on the path)."""
    environ = {**(env if env is not None else os.environ),
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "jboat_core.run.cli", *args], env=environ,
                          capture_output=True, text=True, cwd=ROOT, **kw)


def fresh_machine_env(tmp_path, release="13.0") -> dict:
    """No variable of ours, and this machine kind's nvcc (CUDA ``release``) first on PATH."""
    (tmp_path / "cuda" / "bin").mkdir(parents=True)
    nvcc = tmp_path / "cuda" / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release "
                    f"{release}, V{release}.88'\n")
    nvcc.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if k not in DECISION_VARS}
    environ["PATH"] = f"{nvcc.parent}{os.pathsep}{environ.get('PATH', '')}"
    return environ


@pytest.mark.parametrize("args", [["list-ops"], ["list-ops", "--json"], ["show-op", "CG"],
                                  ["show-op", "CG", "--json"], ["show-preset", "AID-CG"],
                                  ["list-presets", "--json"], ["--help"], ["--version"]])
def test_a_closed_pipe_is_not_a_traceback(args):
    """stdout whose reader has gone (``jboat list-ops | head -1``): exit 141, nothing on
    stderr. The read end is closed before jboat writes, so the pipe is closed for sure."""
    read, write = os.pipe()
    os.close(read)
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run([sys.executable, "-m", "jboat_core.run.cli", *args],
                              stdout=write, stderr=subprocess.PIPE, text=True, env=environ,
                              cwd=ROOT)
    finally:
        os.close(write)
    assert proc.stderr == "", proc.stderr
    # argparse's --help/--version drop a failed write themselves and exit 0
    assert proc.returncode == (0 if args[0].startswith("--") else cli.EXIT_PIPE)


def test_head_of_a_pipe_through_a_shell():
    """The user's own line: the first row, no traceback."""
    proc = subprocess.run(f"{sys.executable} -m jboat_core.run.cli list-ops --json | head -1",
                          shell=True, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout == "[\n" and "Traceback" not in proc.stderr, proc.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert re.match(r"jboat 0\.2\.0 \(Jittor 1\.3\.11[.0-9]*, Python 3\.", capsys.readouterr().out)


def test_the_package_and_the_distribution_have_one_version():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    import jboat_core

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == jboat_core.__version__


def test_exit_codes_are_documented_in_help_and_docs(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    docs = (ROOT / "docs" / "cli.md").read_text()
    for code, _ in cli.EXIT_CODES:
        assert re.search(rf"^\s+{re.escape(str(code))}  ", out, re.M), code
        assert f"| {code} |" in docs, code
    assert "-v shows them" in out


def test_exit_code_2_for_bad_usage(capsys):
    with pytest.raises(SystemExit) as done:
        main(["list-ops", "--no-such-option"])
    assert done.value.code == 2


def test_doctor_reads_a_compiler_that_prints_bytes_that_are_not_utf8(tmp_path):
    """``jboat doctor`` with a compiler whose ``--version`` is not UTF-8 (a localised
    g++): the report names it with replacement characters, no traceback."""
    cc = tmp_path / "g++"
    cc.write_bytes(b"#!/bin/sh\nprintf 'g++ (\\377\\376 Compilateur) 12.2\\n'\n")
    cc.chmod(0o755)
    proc = jboat("doctor", "--no-import", "--json",
                 env={**fresh_machine_env(tmp_path), "cc_path": str(cc)})
    assert "Traceback" not in proc.stderr, proc.stderr
    compiler = json.loads(proc.stdout)["compiler"]
    assert compiler.startswith(f"{cc}: g++ (") and "\ufffd" in compiler, compiler


def test_doctor_on_this_machine_kind_without_any_variable(tmp_path):
    """A CUDA 13 nvcc, no runtime, no device, nothing set: CPU, no problem, the full why."""
    proc = jboat("doctor", "--no-import", "--json", env=fresh_machine_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["device"].startswith("cpu (automatic): no CUDA device")
    assert facts["cuda_nvcc"].startswith("no: nvcc 13.0 at ") and facts["problems"] == []
    assert proc.stderr == ""  # the report says it; no second line


def test_doctor_ends_each_problem_with_what_to_do(tmp_path):
    """CUDA asked for where it cannot work: exit 1, each problem and one line to do."""
    environ = {**fresh_machine_env(tmp_path), "JBOAT_DEVICE": "cuda"}
    proc = jboat("doctor", "--no-import", env=environ)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    report = proc.stdout.split("\n\n")[-1].splitlines()
    assert re.match(r"\d+ problem\(s\):", report[0])
    items = report[1:]
    assert len(items) >= 4 and len(items) % 2 == 0, report
    for what, todo in zip(items[::2], items[1::2]):
        assert what.startswith("- ") and todo.startswith("  to do: ") and len(todo) > 12
    assert any("nvcc 13.0" in line for line in items)


def test_cuda_forced_where_it_cannot_work_is_one_line(tmp_path):
    environ = {**fresh_machine_env(tmp_path), "JBOAT_DEVICE": "cuda"}
    proc = jboat("run", "examples/l2_reg.toml", "--out", str(tmp_path / "run"),
                 "--iterations", "2", env=environ)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jboat: error: JBOAT_DEVICE=cuda, but "
                                                   "Jittor's CUDA path cannot work here")
    assert "nvcc 13.0" in lines[0]


def test_bad_device_setting_is_one_line(tmp_path):
    environ = {**fresh_machine_env(tmp_path), "JBOAT_DEVICE": "gpu"}
    proc = jboat("run", "examples/l2_reg.toml", "--out", str(tmp_path / "run"), env=environ)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "JBOAT_DEVICE='gpu' is not a device" in proc.stderr


def _run_l2(tmp_path, environ, tty: bool):
    """``jboat run examples/l2_reg.toml --iterations 3`` with stderr on a terminal (a
    pseudo-terminal) or a pipe; returns (exit code, stdout, stderr)."""
    args = [sys.executable, "-m", "jboat_core.run.cli", "run", "examples/l2_reg.toml",
            "--out", str(tmp_path / "l2"), "--iterations", "3"]
    environ = {**environ, "PYTHONPATH": str(ROOT)}
    if not tty:
        proc = subprocess.run(args, capture_output=True, text=True, env=environ, cwd=ROOT,
                              timeout=900)
        return proc.returncode, proc.stdout, proc.stderr
    import pty
    main_fd, term = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=term, env=environ, cwd=ROOT)
    os.close(term)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    out = proc.stdout.read().decode()
    proc.wait(900)
    os.close(main_fd)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


@pytest.mark.jittor
def test_run_without_any_variable_on_this_machine(tmp_path):
    """The README's road on a machine with a stray nvcc and no GPU: no variable, no
    traceback; one line says the CPU is used; nothing of Jittor's log; no bar in a log."""
    environ = {k: v for k, v in os.environ.items() if k not in DECISION_VARS}
    code, out, err = _run_l2(tmp_path, environ, tty=False)
    assert code == 0, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.strip() and "Compiling Operators" not in ln]
    assert lines == [lines[0]] and lines[0].startswith("jboat: running on the CPU: "), err
    assert "final: " in out and "\r" not in err and "it/s" not in err


@pytest.mark.jittor
def test_run_shows_progress_on_a_terminal(tmp_path):
    code, out, err = _run_l2(tmp_path, os.environ, tty=True)
    assert code == 0, err[-3000:]
    assert "3/3" in err and "upper_loss=" in err and "<" in err, err  # iteration, loss, ETA
    assert "final: " in out


@pytest.mark.jittor
@pytest.mark.parametrize("verbose", [False, True])
def test_jittors_log_lines_only_with_v(verbose):
    """``jboat doctor`` imports Jittor: its ``[i ...]`` lines are hidden unless -v."""
    environ = {k: v for k, v in os.environ.items() if k not in DECISION_VARS}
    proc = jboat(*(["-v"] if verbose else []), "doctor", "--json", env=environ, timeout=900)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["jittor_import"] == "ok"
    assert ("[i " in proc.stderr) is verbose, proc.stderr[-2000:]
