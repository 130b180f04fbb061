"""Ordering and chain rules come from declared metadata (operators.md section 3.11)."""

import pytest

from jboat_core import ChainError
from jboat_core.plugins.ordering import default_gradient_order, validate_and_adjust_order
from jboat_core.plugins.registry import Registry
from jboat_core.plugins.ordering import validate_composition

from fakeplugins import ep, make_module, op_class

UPSTREAM = [["PTT", "FOA", "RGT"], ["IAD", "RAD", "FD", "IGA"], ["CG", "NS"]]

VALID = [
    ["RAD"], ["PTT", "RAD"], ["RGT", "RAD"], ["PTT", "RGT", "RAD"], ["CG"], ["NS"],
    ["PTT", "CG"], ["PTT", "NS"], ["RGT", "CG"], ["RGT", "NS"], ["FD"], ["PTT", "FD"],
    ["IGA"], ["PTT", "IGA"], ["IAD"], ["PTT", "IAD"], ["IAD", "CG"], ["IAD", "NS"],
    ["PTT", "IAD", "CG"], ["FOA", "IAD"], ["PTT", "FOA", "IAD"],
]
INVALID = [  # (chain, rule, operator at fault)
    (["RGT", "FD"], "conflicts", "RGT"),
    (["FOA"], "modifier-last", "FOA"),
    (["PTT"], "modifier-last", "PTT"),
    (["RGT"], "modifier-last", "RGT"),
    (["RAD", "FD"], "terminal-not-last", "RAD"),
    (["CG", "RAD"], "terminal-not-last", "RAD"),
    (["RAD", "IGA"], "terminal-not-last", "RAD"),
    (["CG", "NS"], "terminal-not-last", "CG"),
    (["IAD", "RAD"], "followed-by", "IAD"),
    (["FOA", "RAD"], "requires", "FOA"),
    (["FOA", "CG"], "requires", "FOA"),
    ([], "empty-chain", None),
    (["XYZ"], "unknown-operator", "XYZ"),
]


def test_default_order_reproduces_upstream(builtin_registry):
    """Upstream's operators keep upstream's order; jboat's own (FMD) slot in by stage."""
    upstream = {n for group in UPSTREAM for n in group}
    ours = default_gradient_order()
    assert [[n for n in g if n in upstream] for g in ours] == UPSTREAM
    assert ours[1] == ["IAD", "RAD", "FMD", "FD", "IGA"]


def test_order_from_groups_and_case_insensitive(builtin_registry):
    assert validate_and_adjust_order(["rad", "ptt"], UPSTREAM) == ["PTT", "RAD"]
    assert validate_and_adjust_order("cg, iad, ptt") == ["PTT", "IAD", "CG"]
    assert validate_and_adjust_order(["RAD", "RAD"]) == ["RAD"]


@pytest.mark.parametrize("chain", VALID, ids=lambda c: "+".join(c))
def test_valid_combinations(builtin_registry, chain):
    out = validate_and_adjust_order(list(reversed(chain)))
    assert sorted(out) == sorted(chain)


@pytest.mark.parametrize("chain,rule,op", INVALID, ids=lambda v: str(v))
def test_invalid_combinations_name_rule_and_operator(builtin_registry, chain, rule, op):
    with pytest.raises(ChainError) as info:
        validate_and_adjust_order(chain)
    err = info.value
    assert err.rule == rule and err.operator == op
    assert rule in str(err) or rule in ("unknown-operator", "empty-chain")
    if op:
        assert op in str(err)


def test_error_lists_valid_choices(builtin_registry):
    with pytest.raises(ChainError) as info:
        validate_and_adjust_order(["PTT"])
    assert {"RAD", "CG"} <= set(info.value.choices)
    assert "jboat" in str(info.value)  # the distribution


def test_cross_chain_rules(builtin_registry):
    with pytest.raises(ChainError, match="rule conflicts") as info:
        validate_composition(["DI", "NGD"], ["IAD"])
    assert info.value.operator in ("DI", "IAD")
    assert validate_composition(["ngd", "di"], ["IAD", "CG"][1:]) == (["DI", "NGD"], ["CG"])
    with pytest.raises(ChainError, match="rule requires"):
        validate_composition(["DM"], ["NS"])
    assert validate_composition(["DM", "GDA", "NGD"], ["CG"]) == (["GDA", "NGD", "DM"], ["CG"])
    with pytest.raises(ChainError, match="modifier-last"):
        validate_composition(["GDA"], ["RAD"])
    with pytest.raises(ChainError, match="unknown dynamics operator 'RAD'"):
        validate_composition(["RAD"], ["RAD"])


def test_default_dynamics_order(builtin_registry):
    assert default_gradient_order("dynamics") == [["GDA", "DI"], ["NGD", "DM", "PGD", "SOLVED"]]


def test_third_party_operator_slots_in_by_stage(builtin_registry):
    make_module("fake_stage", op_class("BROYDEN", stage="implicit", order=15),
                op_class("WARM", stage="trajectory", role="modifier", order=5))
    reg = Registry.from_entry_points([ep("x", "fake_stage", "jboat-x")])
    reg.operators.update(builtin_registry.operators)
    assert default_gradient_order(registry=reg) == [
        ["WARM", "PTT", "FOA", "RGT"], ["IAD", "RAD", "FMD", "FD", "IGA"],
        ["CG", "BROYDEN", "NS"]]
    assert validate_and_adjust_order(["broyden", "ptt"], registry=reg) == ["PTT", "BROYDEN"]
    assert validate_and_adjust_order(["iad", "broyden"], registry=reg) == ["IAD", "BROYDEN"]


def test_custom_gradient_order_without_metadata_only_orders(builtin_registry):
    assert validate_and_adjust_order(["B", "A"], [["A"], ["B"]]) == ["A", "B"]
