"""Scripts written the way JBOAT's users write them run against jboat unchanged.

``tests/upstream_style/`` holds two upstream-style scripts (jboat's own code): the usage
pattern of JBOAT's L2-regularisation example (every gm/na combination that example
accepts, DM with its strategy cycling, the first-order solvers) and of its NAS example
(one network at both levels, ``list(model.parameters())`` with BatchNorm statistics,
architecture weights hidden in a dict, a private ``_criterion``). JBOAT's own example
programs themselves run through ``tests/upstream_style/run_jboat_example.py``, which only
substitutes their data downloads and CUDA check (README, "Coming from JBOAT").
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.jittor

HERE = Path(__file__).parent / "upstream_style"

GM = ["NGD", "DI,NGD", "GDA,NGD", "GDA,NGD,DI", "DI,NGD,GDA"]
NA = ["CG", "CG,PTT", "RAD", "RAD,PTT", "RAD,RGT", "PTT,RAD,RGT", "FD", "FD,PTT", "NS",
      "NS,PTT", "IGA", "IGA,PTT"]
COMBOS = ([(gm, na, None) for gm in GM for na in NA]
          + [(gm, na, None) for gm in ("NGD,DM", "NGD,DM,GDA", "DM", "DM,GDA") for na in ("RAD", "CG")]
          + [("NGD", "CG", fo) for fo in ("VSO", "VFO", "MESO", "PGDO", "ALTO")])


def _script(name, folder):
    from jboat_core.platform._jittor import jittor
    jittor()  # jboat's set-up applies only if jboat imports Jittor first
    sys.path.insert(0, str(HERE / folder))
    for mod in ("configs_style", "configs_style.loss_funcs", name, "model_style"):
        sys.modules.pop(mod, None)
    return importlib.import_module(name)


def _script_fixture(name):
    """A fixture importing ``tests/upstream_style/NAME/NAME.py``, run from a temporary
    folder (the scripts write their logs to the working directory)."""
    @pytest.fixture(name=name)
    def fixture(builtin_registry, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        yield _script(name, name)
        sys.path.remove(str(HERE / name))

    return fixture


l2_style = _script_fixture("l2_style")


@pytest.mark.parametrize("gm,na,fo", COMBOS, ids=lambda v: v or "-")
def test_l2_style_combinations(l2_style, gm, na, fo, tmp_path):
    """Each combination JBOAT's L2 example accepts (its CLI --gm_op/--na_op/--fo_op): runs,
    moves x (the upper step through Adam) and keeps the metrics finite; with fo_op set,
    gm_op/na_op are ignored as upstream ignores them."""
    argv = ["--gm_op", gm, "--na_op", na] + (["--fo_op", fo] if fo else [])
    if fo:
        with pytest.warns(UserWarning, match="gm_op and na_op are ignored"):
            out = l2_style.main(argv)
    else:
        out = l2_style.main(argv)
    assert np.isfinite(out["test_loss"]) and np.all(np.isfinite(out["y"]))
    moved = np.abs(out["x"]).max()
    # ALTO: g_x = grad_x F = 0 here (F does not use x); VFO with the config's u1 = 0.1:
    # lambda = relu(u1 q - <grad F, grad q>) / |grad q|^2 = 0, so g_x = grad_x F = 0 too.
    if fo not in ("ALTO", "VFO"):
        assert moved > 0, "the upper variables did not move"
    hist = (tmp_path / "loss_log.json").read_text()
    assert '"ul_loss"' in hist


def test_l2_style_dm_strategy_is_honoured(l2_style):
    out = l2_style.main(["--gm_op", "NGD,DM,GDA", "--na_op", "RAD"])
    dm = out["problem"]._ll_solver.gradient_instances[-1]
    assert dm.strategy == "s3"  # set by the script's last iteration (x_itr % 3 + 1 = 3)
    with pytest.raises(Exception, match="s1"):
        dm.strategy = "s9"


def test_l2_style_return_grad_returns_this_iterations_gradients(l2_style, monkeypatch):
    import json
    path = HERE / "l2_style" / "configs_style" / "boat_config.json"
    cfg = json.loads(path.read_text())
    cfg["return_grad"] = True
    real_load = json.load
    monkeypatch.setattr(json, "load", lambda fh: cfg if "boat_config" in fh.name else real_load(fh))
    out = l2_style.main(["--gm_op", "NGD", "--na_op", "RAD", "--iterations", "1"])
    loss = out["loss"]
    assert isinstance(loss, list) and len(loss) == 1 and list(loss[0].shape) == [12]
    assert np.abs(out["x"]).max() == 0  # return_grad: no upper step, as upstream


nas_style = _script_fixture("nas_style")


@pytest.mark.parametrize("extra", [[], ["--na_op", "FD"], ["--na_op", "CG"],
                                   ["--na_op", "PTT,RAD"], ["--fo_op", "ALTO"],
                                   ["--fo_op", "VFO"]],
                         ids=["RAD", "FD", "CG", "PTT+RAD", "ALTO", "VFO"])
def test_nas_style_search(nas_style, extra, tmp_path):
    """The NAS pattern: the architecture logits move, BatchNorm statistics keep their shapes
    (upstream copied the classifier into a running mean), a warning names the cells held in
    a plain list, the loss curve is written."""
    from jboat_core import InvisibleModuleWarning
    with pytest.warns(InvisibleModuleWarning, match=r"Network\.cells holds 1 jittor Module"):
        out = nas_style.main(extra)
    assert np.abs(out["alphas"] - 0).max() > 1e-3 or not extra  # moved from 1e-3 randn
    bn = out["model"].stem[1]
    assert list(bn.running_mean.shape) == [2] and list(bn.running_var.shape) == [2]
    assert np.isfinite(out["obj"]) and (tmp_path / "loss_curve.png").exists()


def test_scripts_run_as_scripts(builtin_registry, tmp_path):
    """``python l2_style.py`` and ``python nas_style.py`` from their folders, in a fresh
    interpreter (the user sets Jittor's CPU switches by hand: the script imports jittor
    before jboat)."""
    env = {**os.environ, "nvcc_path": "", "use_mkl": "0", "log_silent": "1"}
    for folder, script in (("l2_style", "l2_style.py"), ("nas_style", "nas_style.py")):
        proc = subprocess.run([sys.executable, str(HERE / folder / script)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
