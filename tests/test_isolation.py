"""Isolation (issue 30): one Problem, or a failed one, never changes another's results in
the same process. Every composition the registry allows (hyper-gradient chains after
every dynamics, and every first-order and stochastic solver) runs two outer iterations,
in float32 and float64, in one order and then in the reverse order with a diverging
Problem in between; each composition's results (hyper-gradients, losses, variables,
optimizer and operator states) must be bit-identical in both orders, and to a run of
the same composition alone in a new process (a sample of them).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jboat_core.testing.cases import compositions

pytestmark = pytest.mark.jittor

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ("float32", "float64")


def _solvers():
    from jboat_core.plugins.registry import get_registry
    return [r.name for r in get_registry().records("first_order")]


def _keys():
    return ([("hg", gm, na, dt) for gm, na in compositions() for dt in DTYPES]
            + [("fo", (), (name,), dt) for name in _solvers() for dt in DTYPES])


def run_one(kind, gm, na, dtype, nan: bool = False) -> str:
    """Two outer iterations of the composition on a small problem; a digest of every
    number it produced (``nan``: f is NaN, the Problem must fail without side effects)."""
    from jboat_core import Problem, constant, import_jittor
    from jboat_core.numerics.optimstate import optimizer_state
    from jboat_core.testing.problems import ridge_problem

    jt = import_jittor()
    if kind == "fo":
        p = ridge_problem(seed=2, dtype=dtype)
        F = lambda feed, ul, ll, **kw: (p.ul_objective(feed, ul, ll, **kw)  # noqa: E731
                                        + (ul() * ul()).sum() * constant(0.05, ul()))
        f = p.ll_objective
        built = dict(ll_model=p.ll_model, ul_model=p.ul_model, ll_var=p.ll_var,
                     ul_var=p.ul_var, gda_loss=None)
        feeds = (p.ll_feed, p.ul_feed)
        cfg = {"fo_op": list(na), "lower_iters": 2}
        if na[0] in ("SOBA", "SABA", "MASOBA", "StocBiO", "AmIGO", "TTSA"):
            cfg[na[0]] = {"batch_size": 8, "seed": 5}
    else:
        from jboat_core.testing.models import matrix_problem
        meta = "IAD" in na
        b = matrix_problem("linear", "meta" if meta else "weighting", seed=2,
                           proximal=10.0 if meta and set(na) & {"CG", "NS"} else 0.0
                           ).build(dtype)
        f, F = b.ll_objective, b.ul_objective
        built = dict(ll_model=b.ll_model, ul_model=b.ul_model, ll_var=b.ll_var,
                     ul_var=b.ul_var, gda_loss=b.gda_loss)
        feeds = (b.ll_feed, b.ul_feed)
        cfg = {"gm_op": list(gm), "na_op": list(na), "lower_iters": 3}
    if nan:
        good = f
        f = lambda *a, **k: good(*a, **k) * float("nan")  # noqa: E731
    ll_opt = jt.optim.SGD(built["ll_var"], 0.05, momentum=0.5)
    ul_opt = jt.optim.Adam(built["ul_var"], 0.01)
    problem = Problem(cfg, ll_objective=f, ul_objective=F, ll_opt=ll_opt, ul_opt=ul_opt,
                      **built)
    h = hashlib.sha256()
    for it in range(2):
        record = problem.run_iter(*feeds, it)
        h.update(np.float64(record["upper_loss"]).tobytes())
    state = problem.state_dict(history=False)
    for v in problem.ll_var + problem.ul_var:
        h.update(np.ascontiguousarray(v.numpy()).tobytes())
    h.update(json.dumps(_plain(state["ll_opt"]) + _plain(state["ul_opt"])
                        + _plain(state["operators"]), sort_keys=True).encode())
    assert optimizer_state(problem.ul_opt)
    return h.hexdigest()


def _plain(value):
    """A JSON-able copy: arrays as their bytes' hex."""
    if isinstance(value, np.ndarray):
        return [str(value.dtype), list(value.shape), value.tobytes().hex()]
    if isinstance(value, dict):
        return [[str(k), _plain(v)] for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def test_every_composition_is_the_same_in_any_order_and_after_a_failure():
    from jboat_core import DivergedError

    keys = _keys()
    first = {k: run_one(*k) for k in keys}
    with pytest.raises(DivergedError):  # a failed Problem in the middle of the process
        run_one("hg", ("NGD",), ("PTT", "RAD"), "float64", nan=True)
    with pytest.raises(DivergedError):
        run_one("fo", (), ("SABA",), "float32", nan=True)
    second = {k: run_one(*k) for k in reversed(keys)}
    changed = [k for k in keys if first[k] != second[k]]
    assert not changed, f"{len(changed)} of {len(keys)} differ by order: {changed[:5]}"


@pytest.mark.parametrize("key", [("hg", ("NGD",), ("PTT", "RAD"), "float64"),
                                 ("hg", ("DI", "NGD"), ("CG",), "float32"),
                                 ("hg", ("GDA", "DM"), ("CG",), "float64"),
                                 ("fo", (), ("SABA",), "float64"),
                                 ("fo", (), ("MESO",), "float32")],
                         ids=lambda k: f"{'+'.join(k[1])}>{'+'.join(k[2])}-{k[3]}")
def test_alone_in_a_new_process_is_the_same(key):
    """The same digest alone in a new process as after everything else here."""
    here = run_one(*key)
    code = ("import json, sys; sys.path.insert(0, 'tests'); from test_isolation import run_one; "
            "k = json.loads(sys.argv[1]); print(run_one(k[0], tuple(k[1]), tuple(k[2]), k[3]))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(key)], capture_output=True,
                         text=True, cwd=ROOT, env=dict(os.environ), timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == here
