"""Presets: the classical algorithms as named solver configs, declared by plugins through
a hook (jboat's own take the same road), expanded and overridden in configs."""

import json

import pytest

from jboat_core import ConfigError, Preset, parse_solver_config
from jboat_core.contract import hookimpl
from jboat_core.plugins.registry import Registry
from jboat_core.run.cli import main

from fakeplugins import ep, make_module, op_class

CLASSICAL = {"RHG": (["NGD"], ["RAD"], []), "TRHG": (["NGD"], ["RGT", "RAD"], []),
             "BDA": (["GDA", "NGD"], ["RAD"], []), "IAPTT-GM": (["DI", "NGD"], ["PTT", "RAD"], []),
             "DARTS": (["NGD"], ["FD"], []), "MAML": (["NGD"], ["IAD"], []),
             "FOMAML": (["NGD"], ["FOA", "IAD"], []), "iMAML": (["NGD"], ["IAD", "CG"], []),
             "AID-CG": (["NGD"], ["CG"], []), "AID-NS": (["NGD"], ["NS"], []),
             "BVFIM": ([], [], ["VSO"]), "BOME": ([], [], ["VFO"]), "MEHA": ([], [], ["MESO"]),
             "PBGD": ([], [], ["PGDO"]), "SOBA": ([], [], ["SOBA"]),
             "SABA": ([], [], ["SABA"]), "MA-SOBA": ([], [], ["MASOBA"]),
             "StocBiO": ([], [], ["StocBiO"]), "AmIGO": ([], [], ["AmIGO"]),
             "TTSA": ([], [], ["TTSA"])}


@pytest.mark.parametrize("name", list(CLASSICAL))
def test_classical_presets_expand_to_valid_configs(builtin_registry, name):
    cfg = parse_solver_config({"preset": name.lower()})
    assert (cfg.gm_op, cfg.na_op, cfg.fo_op) == CLASSICAL[name] and cfg.preset == name
    rec = builtin_registry.get_preset(name)
    assert rec.origin.distribution == "jboat" and rec.preset.reference
    assert parse_solver_config({"preset": name}).lower_iters == (1 if name in ("DARTS", "TTSA")
                                                                 else 10)


def test_overrides_and_merged_sections(builtin_registry):
    cfg = parse_solver_config({"preset": "iMAML", "lower_iters": 3, "CG": {"k": 5}})
    assert cfg.lower_iters == 3 and cfg.operators["CG"].k == 5
    assert cfg.operators["CG"].tolerance == 0.0  # the preset's other CG setting stays
    cfg = parse_solver_config({"preset": "DARTS", "lower_iters": 2})
    assert cfg.lower_iters == 2 and cfg.na_op == ["FD"]
    with pytest.raises(ConfigError, match="preset: unknown preset 'NOPE'; valid choices: .*BDA"):
        parse_solver_config({"preset": "NOPE"})
    with pytest.raises(ConfigError, match=r"CG.kk: unknown key"):
        parse_solver_config({"preset": "AID-CG", "CG": {"kk": 1}})


def _preset_module(name, *presets, operators=()):
    def body(mod):
        @hookimpl
        def jboat_register_presets(register):
            for p in presets:
                register(p)
        mod.jboat_register_presets = jboat_register_presets
    return make_module(name, *operators, hook=bool(operators), body=body)


def test_plugin_presets_through_fake_entry_points(builtin_registry):
    from importlib import metadata
    _preset_module("fake_presets", Preset("MYALGO", "my algorithm", "Me et al., 2026",
                                          {"na_op": ["XOP"], "XOP": {"steps": 7}}),
                   operators=[op_class("XOP")])
    builtin = list(metadata.entry_points(group="jboat"))
    reg = Registry.from_entry_points(builtin + [ep("mine", "fake_presets", "jboat-mine")])
    rec = reg.get_preset("myalgo")
    assert rec.origin.distribution == "jboat-mine"
    cfg = parse_solver_config({"preset": "MYALGO"}, reg)
    assert cfg.na_op == ["XOP"] and cfg.operators["XOP"].steps == 7
    assert "MYALGO" in reg.preset_names() and "BDA" in reg.preset_names()


def test_bad_and_clashing_presets_are_reported(builtin_registry):
    from importlib import metadata
    _preset_module("fake_badpreset", Preset("bad name!", "", "", {}))
    _preset_module("fake_clash", Preset("BDA", "mine", "Me, 2026", {"na_op": ["RAD"]}))
    builtin = list(metadata.entry_points(group="jboat"))
    reg = Registry.from_entry_points(builtin + [ep("bad", "fake_badpreset", "jboat-bad"),
                                                ep("clash", "fake_clash", "jboat-clash")])
    errors = {f.origin.distribution: f.error for f in reg.failures}
    assert "name='bad name!'" in errors["jboat-bad"] and "summary is empty" in errors["jboat-bad"]
    assert "reuses the name of jboat's built-in preset" in errors["jboat-clash"]
    assert reg.get_preset("BDA").origin.distribution == "jboat"


def test_cli_lists_and_shows_presets(builtin_registry, capsys):
    assert main(["list-presets"]) == 0
    out = capsys.readouterr().out
    assert "BDA" in out and "gm_op GDA+NGD  na_op RAD" in out
    assert main(["list-presets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(CLASSICAL) <= set(rows) and rows["MEHA"]["config"] == {"fo_op": ["MESO"]}
    assert main(["show-preset", "imaml"]) == 0
    out = capsys.readouterr().out
    assert "Rajeswaran" in out and "proximal term" in out and 'preset = "iMAML"' in out
    assert main(["show-preset", "NOPE"]) == 2


def test_a_task_file_may_name_a_preset(builtin_registry, tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[task]\nmodule = "m.py"\n[solver]\npreset = "BDA"\nlower_iters = 4\n')
    (tmp_path / "m.py").write_text("def build(p, s): pass\n")
    from jboat_core.run.task import load_run_config
    _, cfg = load_run_config(path)
    assert cfg.gm_op == ["GDA", "NGD"] and cfg.lower_iters == 4 and cfg.preset == "BDA"
