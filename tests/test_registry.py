"""Registry: entry points one at a time; failures reported, never fatal."""

import pytest

from jboat_core import PluginError, UnknownOperatorError
from jboat_core.contract import API_VERSION
from jboat_core.plugins.registry import Registry

from fakeplugins import ep, make_module, op_class


def test_builtins_come_through_entry_points(builtin_registry):
    names = set(builtin_registry.names())
    assert {"CG", "NS", "FD", "IAD", "RAD", "PTT", "FOA", "RGT", "IGA", "NGD"} <= names
    for rec in builtin_registry.records():
        assert rec.origin.distribution == "jboat"
        assert rec.origin.version not in ("", "?")
    assert builtin_registry.failures == []


def test_good_plugin_records_distribution_and_version():
    make_module("fake_good", op_class("GOOD"))
    reg = Registry.from_entry_points([ep("good", "fake_good", "jboat-good", "2.3")])
    rec = reg.get("good")  # case-insensitive
    assert rec.name == "GOOD" and rec.origin.distribution == "jboat-good"
    assert rec.origin.version == "2.3" and reg.failures == []


def test_broken_import_is_reported_not_raised():
    reg = Registry.from_entry_points([ep("broken", "fake_module_that_does_not_exist")])
    assert reg.names() == []
    (failure,) = reg.failures
    assert "import failed" in failure.error and "ModuleNotFoundError" in failure.error
    assert failure.origin.distribution == "fake-dist"


def test_strict_mode_reraises(monkeypatch):
    monkeypatch.setenv("JBOAT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="fake-dist"):
        Registry.from_entry_points([ep("broken", "fake_module_that_does_not_exist")])


def test_bad_metadata_names_operator_plugin_and_attribute():
    make_module("fake_badmeta", op_class("BAD", stage="nowhere", role="sometimes", summary=""))
    reg = Registry.from_entry_points([ep("badmeta", "fake_badmeta", "jboat-bad")])
    assert reg.names() == []
    (failure,) = reg.failures
    for needle in ("BAD", "jboat-bad", "stage='nowhere'", "role='sometimes'", "summary"):
        assert needle in failure.error


def test_flags_and_runtime_requirements_are_type_checked():
    make_module("fake_badflags", op_class("FLAGS", keeps_initialisation="yes",
                                          requires_runtime="gda_loss"))
    reg = Registry.from_entry_points([ep("badflags", "fake_badflags", "jboat-flags")])
    (failure,) = reg.failures
    assert "keeps_initialisation='yes': declare True or False" in failure.error
    assert "requires_runtime='gda_loss': declare a tuple of runtime config keys" in failure.error


def test_config_model_must_forbid_extra_keys():
    from pydantic import BaseModel

    class Loose(BaseModel):
        k: int = 1

    make_module("fake_loose", op_class("LOOSE", config_model=Loose))
    reg = Registry.from_entry_points([ep("loose", "fake_loose")])
    assert "extra='forbid'" in reg.failures[0].error


def test_class_without_a_step_is_refused():
    """The registry names the plugin, the class and the missing abstract method."""
    from jboat_core.contract import HyperGradient

    class Half(HyperGradient):
        name, stage, role = "HALF", "implicit", "terminal"
        summary, reference = "half", "ref"

    make_module("fake_half", Half)
    reg = Registry.from_entry_points([ep("half", "fake_half")])
    error = reg.failures[0].error
    assert "operator 'HALF' (test_registry.test_class_without_a_step_is_refused.<locals>.Half)" \
        in error
    assert "does not implement step(state), abstract in jboat_core.contract.HyperGradient" \
        in error
    assert "fake-dist" in error and "docs/plugins.md" in error


def test_duplicate_name_across_distributions_names_both():
    make_module("fake_dup_a", op_class("DUP"))
    make_module("fake_dup_b", op_class("DUP"))
    reg = Registry.from_entry_points([ep("a", "fake_dup_a", "dist-a"), ep("b", "fake_dup_b", "dist-b")])
    (failure,) = reg.failures
    assert "dist-a" in failure.error and "dist-b" in failure.error
    with pytest.raises(UnknownOperatorError, match="ambiguous"):
        reg.get("DUP")


def test_incompatible_api_version_is_reported():
    make_module("fake_oldapi", op_class("OLD"), api=API_VERSION + 1)
    make_module("fake_noapi", op_class("NOAPI"), api=None)
    reg = Registry.from_entry_points([ep("old", "fake_oldapi"), ep("noapi", "fake_noapi")])
    assert reg.names() == []
    assert all("JBOAT_API_VERSION" in f.error for f in reg.failures)


def test_misspelt_hook_argument_is_reported():
    from jboat_core.contract import hookimpl

    def body(mod):
        @hookimpl
        def jboat_register_hypergradients(regster):  # typo: pluggy rejects it
            pass
        mod.jboat_register_hypergradients = jboat_register_hypergradients

    make_module("fake_typo", hook=False, body=body)
    reg = Registry.from_entry_points([ep("typo", "fake_typo")])
    assert "invalid hook implementation" in reg.failures[0].error


def test_hook_raising_is_reported():
    def body(mod):
        from jboat_core.contract import hookimpl

        @hookimpl
        def jboat_register_hypergradients(register):
            raise RuntimeError("boom")
        mod.jboat_register_hypergradients = jboat_register_hypergradients

    make_module("fake_boom", hook=False, body=body)
    reg = Registry.from_entry_points([ep("boom", "fake_boom")])
    assert "boom" in reg.failures[0].error


def test_unknown_name_lists_choices(builtin_registry):
    with pytest.raises(UnknownOperatorError, match="valid choices: .*CG"):
        builtin_registry.get("NOPE")


def test_load_and_disable_switches(monkeypatch):
    monkeypatch.setenv("JBOAT_LOAD_PLUGINS", "no-such-distribution")
    assert Registry.load().names() == []
    monkeypatch.setenv("JBOAT_LOAD_PLUGINS", "jboat")
    monkeypatch.setenv("JBOAT_DISABLE_PLUGINS", "jboat")
    assert Registry.load().names() == []
