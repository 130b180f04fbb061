"""The composition matrix (``jboat_core.testing.matrix``): a fixed sample of it here (every
composition at least once, every value of every axis, a few cases alone in a new
process); ``JBOAT_MATRIX=full`` runs all of it (or ``python -m jboat_core.testing.matrix``,
which also writes the outcomes as JSON)."""

from __future__ import annotations

import json
import os

import pytest

from jboat_core.testing.cases import all_cases, sample

pytestmark = pytest.mark.jittor

SAMPLE_SIZE = 120
CASES = all_cases() if os.environ.get("JBOAT_MATRIX") == "full" else sample(all_cases(),
                                                                          SAMPLE_SIZE)


@pytest.fixture(scope="module")
def runner():
    from jboat_core.testing.matrix import Runner
    return Runner()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, runner):
    from jboat_core.testing.matrix import run_first

    out = run_first(case) if case.position == "first" else runner.run(case)
    if out.status == "n/a":
        pytest.skip(out.message)
    assert out.ok, (f"{out.case}: error {out.error:.3g} > {out.tolerance:.0e} against "
                    f"{out.target} {out.message}")


def test_the_sample_covers_every_composition_and_axis_value():
    from jboat_core.testing.cases import (CHECKPOINTS, DTYPES, MODELS, OPTIMIZERS,
                                          POSITIONS, compositions, solvers)

    chosen = sample(all_cases(), SAMPLE_SIZE)
    assert {(c.gm, c.na) for c in chosen if not c.fo} == set(compositions())
    assert {c.fo for c in chosen if c.fo} == set(solvers())
    for axis, values in (("dtype", DTYPES), ("optimizer", OPTIMIZERS),
                         ("checkpoint", CHECKPOINTS), ("model", MODELS),
                         ("position", POSITIONS)):
        assert {getattr(c, axis) for c in chosen} == set(values), axis
    assert chosen == sample(all_cases(), SAMPLE_SIZE), "the sample is fixed"


def test_shards_split_the_cases_once_keeping_positions_together():
    from jboat_core.testing.matrix import shard

    cases = all_cases()
    parts = [shard(cases, f"{i}/3") for i in range(3)]
    ids = [c.id for part in parts for c in part]
    assert sorted(ids) == sorted(c.id for c in cases) and len(ids) == len(set(ids))
    for part in parts:
        stems = {c.id.rsplit("-", 1)[0] for c in part}
        assert all(s not in {c.id.rsplit("-", 1)[0] for c in other}
                   for other in parts if other is not part for s in stems)
    with pytest.raises(ValueError, match="I/N with 0 <= I < N"):
        shard(cases, "3/3")


def test_an_interrupted_run_loses_nothing_and_resumes(tmp_path, monkeypatch, capsys):
    from jboat_core.testing import matrix

    cases = sample(all_cases(), 6)
    ran: list[str] = []
    stop_after = [2]  # the first run is ended (Ctrl-C) after two outcomes

    class Fake:
        def run(self, case):
            if len(ran) == stop_after[0]:
                raise KeyboardInterrupt
            ran.append(case.id)
            stem = case.id.rsplit("-", 1)[0]
            return matrix.Outcome(case.id, "ok", 0.0, 1e-6, "t", stem, 0.0)

    monkeypatch.setattr(matrix, "Runner", Fake)
    monkeypatch.setattr(matrix, "run_first", lambda case, _=None: Fake().run(case))
    out = tmp_path / "full.json"
    with pytest.raises(KeyboardInterrupt):
        matrix.run_cases(cases, str(out))
    partial = tmp_path / "full.json.partial"
    assert len(partial.read_text().splitlines()) == 2 and not out.exists()
    with open(partial, "a") as fh:
        fh.write('{"case": "half a li')  # the line being written when it ended
    with pytest.raises(matrix.ProgressError, match="holds 2 outcomes .* add --resume"):
        matrix.run_cases(cases, str(out))
    with pytest.raises(SystemExit):
        matrix.main(["--resume", "--sample", "6"])
    assert "--resume continues the run" in capsys.readouterr().err
    stop_after[0], ran[:] = 2, []
    with pytest.raises(KeyboardInterrupt):  # resumed, and ended again after two more
        matrix.run_cases(cases, str(out), resume=True)
    lines = partial.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines), "cut line dropped"
    stop_after[0], ran[:] = None, []
    assert matrix.run_cases(cases, str(out), resume=True) == 0
    assert ran == [c.id for c in cases[4:]], "only the cases without an outcome ran"
    assert [o["case"] for o in json.loads(out.read_text())] == [c.id for c in cases]
    assert not partial.exists()
    assert "4 outcomes taken from" in capsys.readouterr().out
    partial.write_text("")  # a run ended before its first outcome: nothing to lose
    assert matrix.run_cases(cases[:1], str(out)) == 0


def test_a_crashed_first_case_keeps_its_whole_standard_error(tmp_path, monkeypatch):
    """A ``first`` case whose process dies (a Jittor segfault prints its backtrace on
    standard error): FAIL, the exit code and last line in the message, and the whole
    standard error in a file the message names."""
    import subprocess
    from jboat_core.testing import matrix

    crash = subprocess.CompletedProcess([], -11, "", "[bt] #1 frame\n[bt] #2 frame\n"
                                        "Caught segfault at address 0x1, thread_name: 'C3'\n")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: crash)
    case = sample(all_cases(), 1)[0]
    out = matrix.run_first(case, str(tmp_path / "err"))
    assert out.status == "FAIL" and "process failed (exit -11): Caught segfault" in out.message
    kept = out.message.rsplit("standard error: ", 1)[1]
    assert open(kept).read() == crash.stderr and kept.startswith(str(tmp_path / "err"))


def test_the_one_thread_compile_workaround_takes_effect():
    """docs/guide/matrix.md: ``use_parallel_op_compiler=0`` in the environment makes Jittor
    compile in one thread (the workaround for its compile-thread crash), through jboat's
    own import of Jittor, and a kernel still compiles and runs."""
    import subprocess
    import sys

    code = ("from jboat_core import import_jittor\njt = import_jittor()\n"
            "x = jt.array([1.0, 2.0, 3.0])\n"
            "print(jt.flags.use_parallel_op_compiler, float(((x * x).sum() * 0.25).item()))")
    env = dict(os.environ, use_parallel_op_compiler="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["0", "3.5"]


def test_a_later_case_does_not_take_settings_made_for_another_chain():
    """The position check of the 2026-12-06 full run: 226 NS cases differed in their last
    bits between ``first`` and ``later``, because NS's step, kept per lower loop, was keyed
    without PTT's point (k*, not K) and RGT's truncation: a later PTT+NS case took the step
    of the NS case before it. Run after another chain, a case equals itself in a new
    runner, bit for bit."""
    from jboat_core.testing.cases import Case
    from jboat_core.testing.matrix import Runner

    def case(na: tuple) -> Case:  # NGD, float64, momentum, no checkpoint, the tanh MLP
        return next(c for c in all_cases() if c.na == na and c.gm == ("NGD",)
                    and c.id.endswith("-float64-momentum-full-mlp-later"))

    before, runner = case(("NS",)), Runner()
    assert runner.run(before).ok
    after = runner.run(case(("PTT", "NS")))
    alone = Runner().run(case(("PTT", "NS")))
    assert after.ok and alone.ok and after.digest == alone.digest
