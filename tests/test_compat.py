"""JBOAT's import paths and config files, served by jboat (no Jittor needed)."""

import json
import subprocess
import sys

import pytest

from jboat_core import ConfigError, parse_solver_config

# The keys and values of JBOAT's two shipped configs (examples/L2_Reg_jit/configs_jit/
# boat_config_l2.json and examples/neural_architecture_search/configs/boat_config_nas.json),
# written out here as data.
JBOAT_L2 = {
    "fo_op": None, "gm_op": ["NGD"], "na_op": ["RAD"], "return_grad": True, "lower_iters": 5,
    "device": "cpu", "accumulate_grad": False, "DI": {"lr": 0.1},
    "loss_log_path": "./loss_log.json", "copy_last_param": True, "fogm_batch_input": False,
    "GDA": {"alpha_init": 0.5, "alpha_decay": 0.9},
    "DM": {"auxiliary_v_lr": 0.1, "tau": 0.01, "p": 100, "mu0": 0.9, "eta0": 0.5,
           "strategy": "s3"},
    "RGT": {"truncate_iter": 0}, "CG": {"k": 2, "tolerance": 1e-10}, "FD": {"r": 1e-2},
    "VSO": {"z_loop": 5, "z_lr": 0.01, "ll_l2_reg": 0.1, "ul_l2_reg": 0.01, "ul_ln_reg": 10.0,
            "reg_decay": True},
    "PGDO": {"y_hat_lr": 0.1, "gamma_init": 0.0, "gamma_max": 0.2, "gamma_argmax_step": 50000,
             "updata_y_ahead": False, "penalty": "difference"},
    "VFO": {"eta": 0.5, "u1": 0.1, "y_hat_lr": 0.1},
    "MESO": {"eta": 0.001, "gamma_1": 0.01, "c0": 0.2, "y_hat_lr": 0.1},
}
JBOAT_NAS = {
    **{k: v for k, v in JBOAT_L2.items() if k != "fogm_batch_input"},
    "return_grad": False, "lower_iters": 1, "cuda": True, "loss_log_path": "loss_log.json",
    "device": "cuda", "CG": {"k": 1, "tolerance": 1e-5},
    "PGDO": {"y_hat_lr": 0.1, "gamma_init": 0.0, "gamma_max": 0.2, "gamma_argmax_step": 5000},
}
# BOAT's torch configs add these keys.
BOAT_TORCH = {"fo_ol_batch_input": True,
              "PGDO": {"y_hat_lr": 0.1, "gamma_init": 0, "gamma_max": 0.2,
                       "gamma_argmax_step": 5000, "update_y_ahead": True, "penalty": "gradient"},
              "VSO": {**JBOAT_L2["VSO"], "reg_decay": 0.001},
              "GAFFO": {"lambda": 0.01, "sigma": 0.01, "lower_step_size": 0.01,
                        "use_sign_lower_step": False, "maximize": False,
                        "sync_lower_from_upper": True}}


@pytest.mark.parametrize("cfg", [JBOAT_L2, JBOAT_NAS, {**JBOAT_L2, **BOAT_TORCH}],
                         ids=["JBOAT-L2", "JBOAT-NAS", "BOAT-torch-keys"])
def test_upstream_configs_validate(builtin_registry, cfg, tmp_path):
    path = tmp_path / "boat_config.json"
    path.write_text(json.dumps(cfg))
    from jboat_core.run.cli import main
    assert main(["validate", str(path)]) == 0
    parsed = parse_solver_config(cfg)
    assert parsed.operators["PGDO"].update_y_ahead is (cfg["PGDO"].get("update_y_ahead")
                                                        or cfg["PGDO"].get("updata_y_ahead", False))
    assert parsed.operators["VSO"].reg_decay == float(cfg["VSO"]["reg_decay"])


def test_upstream_off_values_are_errors_when_the_operator_is_chosen(builtin_registry):
    with pytest.raises(ConfigError, match="RGT.truncate_iter: 0 truncates nothing"):
        parse_solver_config({**JBOAT_L2, "na_op": ["RGT", "RAD"]})


def test_a_key_nobody_defined_is_still_an_error(builtin_registry):
    with pytest.raises(ConfigError, match="fogm_batch_inputs: unknown key"):
        parse_solver_config({**JBOAT_L2, "fogm_batch_inputs": False})
    with pytest.raises(ConfigError, match=r"VFO.u2: unknown key"):
        parse_solver_config({**JBOAT_L2, "VFO": {"u2": 1}})


def test_fo_op_alone_and_refused_with_chains(builtin_registry):
    cfg = parse_solver_config({"fo_op": "VFO"})
    assert cfg.fo_op == ["VFO"] and cfg.gm_op == [] and cfg.na_op == []
    assert parse_solver_config({"fo_op": ["MESO"]}).fo_op == ["MESO"]
    with pytest.raises(ConfigError, match=r"rule first-order-alone.*Remove gm_op and na_op"):
        parse_solver_config({"fo_op": "VFO", "gm_op": ["NGD"], "na_op": ["RAD"]})
    with pytest.raises(ConfigError, match=r"fo_op: .*takes exactly one \(rule one-solver\)"):
        parse_solver_config({"fo_op": ["VFO", "VSO"]})
    with pytest.raises(ConfigError, match="fo_op: unknown first-order solver 'RAD'"):
        parse_solver_config({"fo_op": "RAD"})


def test_seed_module_paths_are_the_registered_classes_in_seed_form(builtin_registry):
    """``jboat.na_ol.cg.CG`` is the registered class with JBOAT's constructor and keyword
    method: one wrapper subclass per class (``jboat_core.compat.seed.seed_class``)."""
    import jboat
    import jboat.fo_ol.vfo
    import jboat.gm_ol.dm
    import jboat.na_ol.cg
    import jboat_ops.cg
    import jboat_ops.dm
    import jboat_ops.vfo
    from jboat.na_ol.hyper_gradient import HyperGradient
    from jboat.na_ol.sequential_hg import (SequentialHG, makes_functional_na_operation,
                                           validate_and_adjust_order)
    from jboat_core.compat import seed

    assert jboat.na_ol.cg.CG is seed.seed_class(jboat_ops.cg.CG)
    assert issubclass(jboat.na_ol.cg.CG, jboat_ops.cg.CG)
    assert jboat.na_ol.cg.CG.seed_original is jboat_ops.cg.CG
    assert jboat.gm_ol.dm.DM.seed_original is jboat_ops.dm.DM
    assert jboat.fo_ol.vfo.VFO.seed_original is jboat_ops.vfo.VFO
    assert seed.seed_class(jboat.na_ol.cg.CG) is jboat.na_ol.cg.CG  # made once
    assert HyperGradient is seed.HyperGradient and SequentialHG is seed.SequentialHG
    assert makes_functional_na_operation is seed.makes_functional_na_operation
    assert validate_and_adjust_order is seed.validate_and_adjust_order
    assert jboat.Problem.__module__ == "jboat.boat_opt"
    for mod, names in (("na_ol", ["CG", "NS", "FD", "IAD", "RAD", "PTT", "FOA", "RGT", "IGA"]),
                       ("gm_ol", ["NGD", "GDA", "DI", "DM"]),
                       ("fo_ol", ["VSO", "VFO", "MESO", "PGDO", "ALTO", "GAFFO"])):
        for name in names:
            sub = __import__(f"jboat.{mod}.{name.lower()}", fromlist=[name])
            assert getattr(sub, name).seed_original is builtin_registry.get(name).cls
    assert jboat.get_registered_operation("CG") is jboat.na_ol.cg.CG
    with pytest.raises(ValueError, match="Class 'NOPE' is not registered"):
        jboat.get_registered_operation("NOPE")


def test_importing_jboat_imports_no_jittor():
    code = ("import sys, jboat, jboat.na_ol.cg, jboat.gm_ol.ngd, jboat.fo_ol.vso; "
            "jboat.na_ol.cg.CG; sys.exit(3 if 'jittor' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr or "jittor was imported"


def test_a_third_party_operator_through_the_upstream_api():
    """A plugin's operator is reachable by name through jboat.* exactly as a built-in."""
    from fakeplugins import ep, make_module, op_class

    from jboat_core.plugins import registry as _registry
    make_module("fake_compat_plugin", op_class("MYOP"))
    reg = _registry.Registry.from_entry_points([ep("myop", "fake_compat_plugin", "jboat-myop")])
    old = _registry.set_registry(reg)
    try:
        import jboat
        assert jboat.get_registered_operation("MYOP").name == "MYOP"
        assert jboat.get_registered_operation("MYOP").seed_original is reg.get("MYOP").cls
    finally:
        _registry.set_registry(old)
