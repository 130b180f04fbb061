"""Every valid composition of operators.md section 3.11 runs a few outer iterations on a
small task; every invalid one is refused before any computation.

The hyper-cleaning task carries all compositions without IAD (whose meta-parameters must
mirror the lower model, so IAD compositions run on the small sinusoid meta-learning task).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from jboat_core import ChainError, ConfigError

pytestmark = pytest.mark.jittor

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NA_PLAIN = [["RAD"], ["PTT", "RAD"], ["RGT", "RAD"], ["PTT", "RGT", "RAD"], ["CG"], ["NS"],
            ["PTT", "CG"], ["PTT", "NS"], ["RGT", "CG"], ["RGT", "NS"], ["FD"], ["PTT", "FD"],
            ["IGA"], ["PTT", "IGA"]]
GM_PLAIN = [["NGD"], ["DI", "NGD"], ["GDA", "NGD"], ["DI", "GDA", "NGD"]]
NA_META = [["IAD"], ["PTT", "IAD"], ["IAD", "CG"], ["IAD", "NS"], ["PTT", "IAD", "CG"],
           ["PTT", "IAD", "NS"], ["FOA", "IAD"], ["PTT", "FOA", "IAD"]]
GM_META = [["NGD"], ["GDA", "NGD"]]
DM = [(gm, na) for gm in (["DM"], ["NGD", "DM"], ["GDA", "DM"], ["GDA", "NGD", "DM"])
      for na in (["RAD"], ["CG"])]
VALID = ([("hyper_cleaning", gm, na) for gm in GM_PLAIN for na in NA_PLAIN]
         + [("hyper_cleaning", gm, na) for gm, na in DM]
         + [("meta_sinusoid", gm, na) for gm in GM_META for na in NA_META])
INVALID = [(["NGD"], ["RGT", "FD"]), (["NGD"], ["PTT"]), (["NGD"], ["RGT"]), (["NGD"], ["FOA"]),
           (["NGD"], ["RAD", "FD"]), (["NGD"], ["CG", "RAD"]), (["NGD"], ["RAD", "IGA"]),
           (["NGD"], ["CG", "NS"]), (["DI", "NGD"], ["IAD"]), (["DI"], ["RAD"]),
           (["GDA"], ["RAD"]), (["DM"], ["NS"]), (["DM"], ["RAD", "PTT"]), ([], ["RAD"])]
SMALL = {"hyper_cleaning": {"n_train": 40, "n_val": 30, "baseline_steps": 1},
         "meta_sinusoid": {"hidden": 8, "meta_batch": 2, "shots": 5, "queries": 5,
                                   "proximal": 1.0}}


def _module(name):
    spec = importlib.util.spec_from_file_location(f"jboat_test_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _problem(task_name, gm, na, registry):
    from jboat_core import Problem
    from jboat_core.platform._jittor import jittor
    jt = jittor()
    task = _module(task_name).build(SMALL[task_name], seed=0)
    solver = {"gm_op": gm, "na_op": na, "lower_iters": 2, "RGT": {"truncate_iter": 1},
              "accumulate_grad": task_name == "meta_sinusoid", "CG": {"k": 3},
              "NS": {"k": 3}}
    prob = Problem(solver, ll_objective=task.ll_objective, ul_objective=task.ul_objective,
                   ll_model=task.ll_model, ul_model=task.ul_model,
                   ll_opt=jt.optim.SGD(task.ll_model.parameters(), 0.05),
                   ul_opt=jt.optim.Adam(task.ul_model.parameters(), 0.01),
                   gda_loss=task.gda_loss, registry=registry)
    return prob, task


@pytest.mark.parametrize("task_name,gm,na", VALID,
                         ids=lambda v: v if isinstance(v, str) else "+".join(v))
def test_valid_composition_runs(builtin_registry, task_name, gm, na):
    prob, task = _problem(task_name, gm, na, builtin_registry)
    before = [p.numpy().copy() for p in prob.ul_var]
    for it in range(2):
        rec = prob.run_iter(*task.feeds(it), it)
        assert np.isfinite(rec["upper_loss"])
    moved = any(not np.allclose(b, p.numpy()) for b, p in zip(before, prob.ul_var))
    assert moved, "the upper-level variables did not move"


@pytest.mark.parametrize("gm,na", INVALID, ids=lambda v: "+".join(v) or "empty")
def test_invalid_composition_refused_before_computing(builtin_registry, gm, na, monkeypatch):
    from jboat_core import Problem
    calls = []
    from jboat_core.solver.engine import Composition
    monkeypatch.setattr(Composition, "evaluate", lambda *a, **k: calls.append(a))
    with pytest.raises((ConfigError, ChainError)) as info:
        _problem("hyper_cleaning", gm, na, builtin_registry)
    assert "rule" in str(info.value) or "DM needs" in str(info.value)
    assert calls == []
