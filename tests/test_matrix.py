"""The composition matrix (``jboat_core.testing.matrix``): a fixed sample of it here (every
composition at least once, every value of every axis, a few cases alone in a new
process); ``JBOAT_MATRIX=full`` runs all of it (or ``python -m jboat_core.testing.matrix``,
which also writes the outcomes as JSON)."""

from __future__ import annotations

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
