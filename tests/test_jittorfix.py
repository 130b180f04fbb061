"""jboat's corrections to Jittor's C++ source (``jboat_core.platform.jittorfix``): the
bug each one fixes, reproduced in plain Jittor in a fresh process, and how they are
applied (idempotent, atomic, refused where they cannot be)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jboat_core.platform import jittorfix

ROOT = Path(__file__).resolve().parents[1]


def _plain_jittor(code: str) -> str:
    """Run ``code`` in a new process that imports Jittor through jboat's set-up (so the
    corrections are in force) and then uses plain Jittor; returns its stdout."""
    prog = textwrap.dedent("""
        import numpy as np
        from jboat_core import import_jittor
        jt = import_jittor()
        jt.flags.auto_convert_64_to_32 = 0
    """) + textwrap.dedent(code)
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.jittor
@pytest.mark.parametrize("order", [("float32", "float64"), ("float64", "float32")])
def test_one_element_constant_kernel_is_keyed_by_dtype(order):
    """The seed of ``jt.grad`` of a loss ``a + b * c`` runs as a lone kernel; without the
    correction the first dtype compiled in a process is reused for the other
    (float32 first: float64 gives [inf, inf]; float64 first: eight bytes into four)."""
    out = _plain_jittor(f"""
        for dt in {list(order) * 2!r}:
            x = jt.array(np.array([1.5, 2.0]), dtype=dt)
            loss = (x * x).sum() + (x * x).sum() * 0.5
            print(dt, *jt.grad(loss, x).numpy().tolist())
    """)
    for line in out.splitlines():
        dt, a, b = line.split()
        assert (float(a), float(b)) == (4.5, 6.0), out


@pytest.mark.jittor
def test_one_element_operands_promote_as_usual():
    """``1e-2 * v.sum()`` of a float64 v is float64 (it was float32: the left weak
    scalar's size), and so is the gradient of a float64 [1]-shaped parameter through
    ``s * 0.5`` (the backward puts the number on the left)."""
    out = _plain_jittor("""
        v = jt.array(np.array([1.0, 2.0, 3.0]), "float64")
        b = jt.array(np.array([0.3]), "float64")
        s = v.sum()
        print(str((1e-2 * s).dtype), str((0 + s).dtype), str((s * 0.5).dtype))
        g = jt.grad((b * b).sum() * 0.5 + (v * v).sum(), b)
        print(str(g.dtype), repr(float(g.numpy()[0])))
        w = jt.array(np.array([1.0, 2.0]), "float32")
        print(str((0.1 * w.sum()).dtype), str((w * 0.1).dtype))
    """)
    first, second, third = out.splitlines()
    assert first.split() == ["float64"] * 3
    assert second.split()[0] == "float64" and float(second.split()[1]) == 0.3
    assert third.split() == ["float32", "float32"], "a float32 program stays float32"


@pytest.mark.jittor
def test_mean_backward_is_float64_exact():
    out = _plain_jittor("""
        x = jt.array(np.array([1.0, 2.0, 3.0]), dtype="float64")
        print(repr(float(jt.grad(x.mean(), x).numpy()[0])))
        y = jt.array(np.arange(7.0), dtype="float64")
        print(repr(float(jt.grad((y * y).mean(), y).numpy()[3])))
    """)
    first, second = out.split()
    assert float(first) == 1 / 3
    assert float(second) == 2 * 3.0 / 7


def _fake_jittor(tmp_path: Path, version: str = "1.3.11.0") -> Path:
    """A folder shaped like the Jittor package, holding the two texts the corrections
    expect."""
    root = tmp_path / "jittor"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text(f"__version__ = '{version}'\n")
    texts: dict = {}
    for fix in jittorfix.FIXES:
        texts.setdefault(fix.path, []).append(fix.anchor)
    for path, anchors in texts.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("// before\n" + "\n// between\n".join(anchors) + "\n// after\n")
    return root


N = len(jittorfix.FIXES)


def test_apply_is_idempotent_and_atomic(tmp_path):
    root = _fake_jittor(tmp_path)
    target = root / jittorfix.FIXES[0].path
    keep = tmp_path / "hardlink.cc"
    os.link(target, keep)  # another name of the same file keeps the original text
    first = jittorfix.apply(root)
    assert [s.state for s in first] == ["applied"] * N
    assert all(f.replacement in (root / f.path).read_text() for f in jittorfix.FIXES)
    assert jittorfix.MARKER not in keep.read_text()
    assert [s.state for s in jittorfix.apply(root)] == ["present"] * N
    assert not list(root.rglob("*.jboat")), "no temporary file left behind"
    assert not list(tmp_path.glob("*.lock")) and not list(root.rglob("*.lock"))


def test_apply_refuses_what_it_does_not_know(tmp_path):
    root = _fake_jittor(tmp_path, version="1.3.9.0")
    assert {s.state for s in jittorfix.apply(root)} == {"skipped"}
    root2 = _fake_jittor(tmp_path / "b")
    (root2 / jittorfix.FIXES[1].path).write_text("// another build\n")
    (root2 / jittorfix.FIXES[2].path).write_text("// another build\n")
    real = tmp_path / "real.cc"
    real.write_text(jittorfix.FIXES[0].anchor)
    (root2 / jittorfix.FIXES[0].path).unlink()
    (root2 / jittorfix.FIXES[0].path).symlink_to(real)
    states = jittorfix.apply(root2)
    assert [s.state for s in states] == ["skipped"] * N
    assert "not a regular file" in states[0].reason
    assert "expected text" in states[1].reason
    assert real.read_text() == jittorfix.FIXES[0].anchor


def test_apply_in_a_read_only_package_says_what_to_do(tmp_path, monkeypatch):
    """A package folder jboat may not write to (EACCES, as for a non-root user of a
    system-wide install; simulated, since CI runs as root): nothing changes, and the
    reason says what to do."""
    import errno

    root = _fake_jittor(tmp_path)

    def refuse(path, text):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(jittorfix, "_write_atomically", refuse)
    states = jittorfix.apply(root)
    assert [s.state for s in states] == ["skipped"] * N
    assert "cannot write" in states[0].reason and "write access" in states[0].reason
    assert jittorfix.MARKER not in (root / jittorfix.FIXES[0].path).read_text()


def test_doctor_reports_the_corrections():
    from jboat_core.run.doctor import report

    facts = report(import_jittor=False)
    for fix in jittorfix.FIXES:
        assert facts[f"jittor_fix_{fix.name}"].split(":")[0] in ("applied", "present")


def test_nothing_is_written_or_locked_when_every_fix_is_present(tmp_path, monkeypatch):
    root = _fake_jittor(tmp_path)
    jittorfix.apply(root)
    monkeypatch.setattr(jittorfix, "_locked", None)  # would raise if used
    assert [s.state for s in jittorfix.apply(root)] == ["present"] * N
