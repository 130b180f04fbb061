"""Solver configs: upstream JSON shape, TOML, and `loc: message` errors."""

import json

import pytest

from jboat_core import ConfigError, load_solver_config, parse_solver_config

UPSTREAM = {
    "fo_op": None, "gm_op": ["NGD"], "na_op": ["RAD", "PTT"], "return_grad": False,
    "lower_iters": 5, "device": "cpu", "accumulate_grad": False, "copy_last_param": True,
    "loss_log_path": "./loss_log.json", "RGT": {"truncate_iter": 1},
    "CG": {"k": 10, "tolerance": 1e-10}, "FD": {"r": 1e-2},
}


def test_upstream_json_shape(builtin_registry, tmp_path):
    path = tmp_path / "boat_config.json"
    path.write_text(json.dumps(UPSTREAM))
    cfg = load_solver_config(path)
    assert cfg.na_op == ["PTT", "RAD"] and cfg.gm_op == ["NGD"] and cfg.lower_iters == 5
    assert cfg.operators["CG"].k == 10 and cfg.operators["FD"].r == 1e-2
    assert cfg.operators["NS"].k == 10  # documented default for sections not given


def test_toml_with_solver_table(builtin_registry, tmp_path):
    path = tmp_path / "task.toml"
    path.write_text('[solver]\nna_op = ["CG"]\nlower_iters = 3\n[solver.CG]\nk = 4\n')
    cfg = load_solver_config(path)
    assert cfg.na_op == ["CG"] and cfg.operators["CG"].k == 4


def test_errors_are_loc_message_lines(builtin_registry):
    with pytest.raises(ConfigError) as info:
        parse_solver_config({"na_op": ["CG"], "lower_iters": 0, "CG": {"k": -1, "tol": 1},
                             "BOGUS": {}})
    lines = info.value.lines
    assert any(ln.startswith("lower_iters: ") for ln in lines)
    assert any(ln.startswith("CG.k: ") for ln in lines)
    assert any(ln.startswith("CG.tol: unknown key") for ln in lines)
    assert any(ln.startswith("BOGUS: unknown key") for ln in lines)
    assert "Traceback" not in str(info.value)


def test_solver_check_interval_must_be_positive(builtin_registry):
    with pytest.raises(ConfigError) as info:
        parse_solver_config({"na_op": ["CG"], "CG": {"check_every": 0},
                             "NS": {"check_every": -2}})
    assert any(ln.startswith("CG.check_every: ") and "greater than or equal to 1" in ln
               for ln in info.value.lines)
    assert any(ln.startswith("NS.check_every: ") for ln in info.value.lines)


def test_invalid_chain_is_a_config_error(builtin_registry):
    with pytest.raises(ConfigError, match="na_op: .*RGT.*conflicts"):
        parse_solver_config({"na_op": ["RGT", "FD"]})


def test_operator_cross_checks(builtin_registry):
    with pytest.raises(ConfigError, match="RGT.truncate_iter: 5 must be below lower_iters=5"):
        parse_solver_config({"na_op": ["RGT", "RAD"], "lower_iters": 5,
                             "RGT": {"truncate_iter": 5}})


def test_unknown_fo_op_names_the_key(builtin_registry):
    with pytest.raises(ConfigError, match="fo_op: unknown first-order solver 'NOPE'"):
        parse_solver_config({"fo_op": "NOPE"})


def test_missing_na_op_and_bad_file(builtin_registry, tmp_path):
    with pytest.raises(ConfigError, match="na_op: required: choose hyper-gradient operators"):
        parse_solver_config({})
    bad = tmp_path / "x.toml"
    bad.write_text("na_op = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_solver_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_solver_config(tmp_path / "missing.json")


# -- a bool is not a number (pydantic's lax mode read true as 1) -------------------------
@pytest.mark.parametrize("config,loc", [
    ({"na_op": ["RAD"], "lower_iters": True}, "lower_iters"),
    ({"fo_op": ["SABA"], "SABA": {"batch_size": True}}, "SABA.batch_size"),
    ({"fo_op": ["SOBA"], "SOBA": {"seed": False}}, "SOBA.seed"),
    ({"na_op": ["FMD"], "FMD": {"max_scalars": True}}, "FMD.max_scalars"),
    ({"na_op": ["CG"], "CG": {"tolerance": True}}, "CG.tolerance"),
], ids=["lower_iters", "batch_size", "seed", "max_scalars", "float"])
def test_a_bool_for_a_number_is_an_error(builtin_registry, config, loc):
    with pytest.raises(ConfigError) as info:
        parse_solver_config(config)
    word = "false" if "seed" in loc else "true"
    assert f"{loc}: {word} is a bool, not a number; give a number" in str(info.value)
    assert len(info.value.lines) == 1


@pytest.mark.parametrize("table,line", [
    ("[task]\niterations = true", "task.iterations: true is a bool, not a number"),
    ("[task]\nseed = true", "task.seed: true is a bool, not a number"),
    ("[task]\neval_every = false", "task.eval_every: false is a bool, not a number"),
    ("[optim.lower]\nlr = true", "optim.lower.lr: true is a bool, not a number"),
    ("[optim.upper]\nbetas = [true, 0.9]", "optim.upper.betas.0: true is a bool, not a"),
], ids=["iterations", "seed", "eval_every", "lr", "betas"])
def test_a_bool_for_a_number_in_a_task_file_is_one_line(builtin_registry, tmp_path, table,
                                                        line):
    from jboat_core.run.task import load_run_config
    section, _, key = table.partition("\n")
    text = ('[task]\nmodule = "os.path"\n' + (key + "\n" if section == "[task]" else "")
            + (f"{section}\n{key}\n" if section != "[task]" else "")
            + '[solver]\nna_op = ["RAD"]\n')
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    assert str(info.value).startswith(f"{path}: {line}") and "\n" not in str(info.value)


def test_bools_where_bools_belong_still_work(builtin_registry):
    cfg = parse_solver_config({"na_op": ["RAD"], "return_grad": True, "copy_last_param": False})
    assert cfg.return_grad is True and cfg.copy_last_param is False
