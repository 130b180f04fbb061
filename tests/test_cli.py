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
    assert "jboat 0.1.0" in out and "DISTRIBUTION" in out


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
