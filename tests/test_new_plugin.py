"""``jboat new-plugin NAME --kind KIND``: the distribution it writes registers through its
entry point, passes the conformance kit as generated (run here on the files, uninstalled),
refuses bad input in one line and never overwrites. ``.ci/run`` also pip-installs one and
sees it in ``jboat list-ops``."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib

import pytest

from jboat_core.errors import ConfigError
from jboat_core.run.cli import main
from jboat_core.run.scaffold import new_plugin
from jboat_core.testing import conformance

KINDS = ("hypergradient", "dynamics", "first_order")
#: Every template family (``--kind``), and the kind of operator it writes.
FAMILIES = {"hypergradient": "hypergradient", "unrolled": "hypergradient",
            "implicit": "hypergradient", "dynamics": "dynamics",
            "first_order": "first_order", "stochastic": "first_order"}


def _env(root):
    """The environment of a distribution's own test run: it and this jboat importable."""
    import os
    from pathlib import Path
    repo = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), repo])}


def _generate(tmp_path, name, kind):
    root = new_plugin(name, kind, tmp_path)
    sys.path.insert(0, str(root))
    return root


@pytest.fixture
def on_path():
    before = list(sys.path)
    yield
    sys.path[:] = before
    for mod in [m for m in sys.modules if m.startswith("jboat_kit")]:
        del sys.modules[mod]


@pytest.mark.parametrize("kind", KINDS)
def test_writes_a_distribution_with_its_entry_point(tmp_path, kind, on_path, monkeypatch):
    name = f"Kit{kind.title().replace('_', '')}"
    root = _generate(tmp_path, name, kind)
    lower = name.lower()
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == sorted(
        ["pyproject.toml", "README.md", f"jboat_{lower}/__init__.py",
         f"jboat_{lower}/{lower}.py", f"tests/test_{lower}.py"])
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["jboat"] == {lower: f"jboat_{lower}.{lower}"}
    module = importlib.import_module(f"jboat_{lower}.{lower}")
    assert module.JBOAT_API_VERSION == 2
    cls = getattr(module, name)
    assert cls.kind == kind and cls.api_version() == 2
    conformance.check_metadata(cls)
    conformance.check_config_roundtrip(cls)
    monkeypatch.setenv("PYTHONPATH", str(root))  # the kit imports it in a fresh process
    conformance.check_import_without_jittor(f"jboat_{lower}.{lower}")


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in KINDS])
def test_every_family_writes_its_kind(tmp_path, family, on_path):
    name = f"Kit{family.title().replace('_', '')}"
    root = _generate(tmp_path, name, family)
    lower = name.lower()
    cls = getattr(importlib.import_module(f"jboat_{lower}.{lower}"), name)
    assert cls.kind == FAMILIES[family] and cls.api_version() == 2
    conformance.check_metadata(cls)
    conformance.check_config_roundtrip(cls)


def test_templates_use_the_current_contract(tmp_path):
    """No deprecated road in any template: no self.propose, self.state, lower_loop."""
    for family in [*FAMILIES, "preset"]:
        root = new_plugin(f"Con{family.title().replace('_', '')}", family, tmp_path)
        for path in root.rglob("*.py"):
            text = path.read_text()
            for old in ("self.propose", "self.state", "lower_loop", "lower_objective"):
                assert old not in text, f"{family}: {path.name} uses {old}"


@pytest.mark.jittor
@pytest.mark.parametrize("kind", [*[f for f in FAMILIES if f != "unrolled"], "preset"])
def test_generated_tests_pass_as_generated(tmp_path, kind):
    """The distribution's own tests (the conformance kit, correctness included, the
    operator not installed)."""
    name = f"Gen{kind.title().replace('_', '')}"
    root = new_plugin(name, kind, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-x", str(root / "tests")], capture_output=True, text=True,
                          cwd=root, timeout=900,
                          env=_env(root))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
    assert "skipped" not in proc.stdout, proc.stdout[-2000:]


@pytest.mark.jittor
def test_add_to_adds_an_operator_to_a_distribution(tmp_path, capsys):
    """``--add-to DIR``: a second operator (module, entry point, test) in the same
    distribution, the files written listed; both distributions' tests pass."""
    assert main(["new-plugin", "KitOne", "--kind", "implicit", "--out", str(tmp_path)]) == 0
    root = tmp_path / "jboat-kitone"
    capsys.readouterr()
    assert main(["new-plugin", "KitTwo", "--kind", "dynamics", "--add-to", str(root)]) == 0
    out = capsys.readouterr().out
    for rel in ("jboat_kitone/kittwo.py", "tests/test_kittwo.py", "pyproject.toml"):
        assert f"wrote {root / rel}" in out
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["jboat"] == {
        "kitone": "jboat_kitone.kitone", "kittwo": "jboat_kitone.kittwo"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(root / "tests")], capture_output=True, text=True, cwd=root,
                          timeout=900, env=_env(root))
    assert proc.returncode == 0 and "16 passed" in proc.stdout, proc.stdout[-3000:]


def test_add_to_refuses_in_one_line(tmp_path, capsys):
    assert main(["new-plugin", "KitOne", "--kind", "dynamics", "--out", str(tmp_path)]) == 0
    root = tmp_path / "jboat-kitone"
    capsys.readouterr()
    assert main(["new-plugin", "KitTwo", "--kind", "dynamics", "--add-to",
                 str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "--add-to" in err and "no readable pyproject.toml" in err and err.count("\n") == 1
    (root / "jboat_kitone" / "kitthree.py").write_text("mine")
    before = (root / "pyproject.toml").read_text()
    assert main(["new-plugin", "KitThree", "--kind", "dynamics", "--add-to", str(root)]) == 2
    err = capsys.readouterr().err
    assert "jboat_kitone/kitthree.py exists" in err and err.count("\n") == 1
    assert (root / "pyproject.toml").read_text() == before
    assert (root / "jboat_kitone" / "kitthree.py").read_text() == "mine"


def test_bad_input_is_one_line_and_nothing_is_overwritten(tmp_path, capsys):
    assert main(["new-plugin", "9bad", "--kind", "dynamics", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NAME: '9bad' must start with a letter" in err
    with pytest.raises(SystemExit):
        main(["new-plugin", "Ok", "--kind", "nope", "--out", str(tmp_path)])
    (tmp_path / "jboat-ok").mkdir()
    (tmp_path / "jboat-ok" / "mine.txt").write_text("keep")
    with pytest.raises(ConfigError, match="exists; choose another"):
        new_plugin("Ok", "dynamics", tmp_path)
    assert (tmp_path / "jboat-ok" / "mine.txt").read_text() == "keep"
    assert main(["new-plugin", "Fine", "--kind", "first_order", "--out", str(tmp_path)]) == 0
    assert "pip install -e" in capsys.readouterr().out


@pytest.mark.parametrize("name,needle", [
    ("CG", "NAME: 'CG' is the name of a registered operator"),
    ("cg", "NAME: 'cg' is the name of a registered operator"),
    ("BDA", "NAME: 'BDA' is the name of a registered preset"),
    ("class", "NAME: 'class' is a Python keyword (the class class would not compile)"),
    ("None", "NAME: 'None' is a Python keyword (the class None would not compile)"),
    ("Class", "NAME: 'Class' is a Python keyword (the module class would not compile)"),
    ("MyOp\n", "NAME: 'MyOp\\n' must start with a letter"),
    ("core", "NAME: 'core' would write the package jboat_core (importable)"),
    ("Presets", "NAME: 'Presets' would write the entry point presets of the jboat group"),
], ids=["builtin", "builtin-lower", "preset", "keyword", "None", "keyword-module",
        "newline", "jboat_core", "entry-point"])
def test_a_name_that_would_not_load_or_compile_is_refused(tmp_path, capsys, name, needle):
    """Only names that give code that compiles and a plugin the loader takes: a one-line
    identifier, no keyword, unused by operators, presets, packages and entry points."""
    assert main(["new-plugin", name, "--kind", "dynamics", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"jboat: error: {needle}") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["file", "under-a-file", "dangling-link", "proc", "sys"])
def test_an_out_that_cannot_take_the_plugin_is_one_line(tmp_path, capsys, case):
    out = {"file": tmp_path / "f", "under-a-file": tmp_path / "f" / "sub",
           "dangling-link": tmp_path / "link", "proc": "/proc/jboat-plugins",
           "sys": "/sys/jboat-plugins"}[case]
    (tmp_path / "f").write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "missing")
    assert main(["new-plugin", "Fine", "--kind", "dynamics", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"jboat: error: --out {out}") and err.count("\n") == 1, err
    assert (tmp_path / "f").read_text() == "keep" and not (tmp_path / "missing").exists()


def test_an_unwritable_out_is_one_line(tmp_path, capsys):
    """A folder the user cannot write: one line, nothing written. As root, whom
    permissions do not stop, the folder is a read-only mount (a new mount namespace)."""
    import os
    import shutil
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() != 0:
        out.chmod(0o555)
        try:
            code = main(["new-plugin", "Fine", "--kind", "dynamics", "--out", str(out)])
        finally:
            out.chmod(0o755)
        err = capsys.readouterr().err
    else:
        probe = (subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                                capture_output=True, text=True)
                 if shutil.which("unshare") else None)
        if probe is None or probe.returncode != 0:
            pytest.skip("root without a new mount namespace: no folder root cannot write")
        script = (f"mount -t tmpfs -o ro,size=64k tmpfs {out} || exit 99; "
                  f"{sys.executable} -m jboat_core.run.cli new-plugin Fine --kind dynamics "
                  f"--out {out}")
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               script], capture_output=True, text=True, timeout=120)
        if proc.returncode == 99:
            pytest.skip(f"root cannot mount a read-only folder here: {proc.stderr.strip()}")
        code, err = proc.returncode, proc.stderr
    assert code == 1 and err.startswith(f"jboat: error: --out {out}"), err
    assert "not writable" in err and err.count("\n") == 1, err
    assert list(out.iterdir()) == []
