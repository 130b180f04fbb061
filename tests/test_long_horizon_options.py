"""Issue 19 item 4: `jboat compare` measures each method's memory above its worker's
baseline and takes ``METHOD@S`` for ``checkpoint_every = S``; `jboat show-op` documents
``checkpoint_every`` for every operator that keeps the trajectory (from its metadata)."""

import json

import pytest

from jboat_core import ConfigError
from jboat_core.run import compare
from jboat_core.run.cli import main
from jboat_core.run.compare import ROW_KEYS, method_config


def test_at_suffix_sets_checkpoint_every(builtin_registry):
    assert method_config("RAD@sqrt", builtin_registry) == {
        "gm_op": ["NGD"], "na_op": ["RAD"], "checkpoint_every": "sqrt"}
    assert method_config("PTT+RAD@10", builtin_registry) == {
        "gm_op": ["NGD"], "na_op": ["PTT", "RAD"], "checkpoint_every": 10}
    assert method_config("BDA@0", builtin_registry) == {"preset": "BDA", "checkpoint_every": 0}
    for bad in ("RAD@x", "RAD@-1", "RAD@1.5", "RAD@"):
        with pytest.raises(ConfigError, match="after '@' give checkpoint_every"):
            method_config(bad, builtin_registry)


def test_memory_column_in_rows_and_table():
    assert "mem_mb" in ROW_KEYS and "peak_mb" in ROW_KEYS
    report = {"task": "t.toml", "iterations": 3, "rows": [
        {"method": "RAD", "composition": "NGD → RAD", "status": "ok", "ms_per_iter": 5.0,
         "first_iter_s": 1.0, "peak_mb": 400.0, "mem_mb": 123.4, "metrics": {"acc": 0.9},
         "upper_loss": 0.5, "cosine": 0.9, "rel_err": 0.1},
        {"method": "RAD@sqrt", "status": "failed", "reason": "x"}]}
    lines = compare.table(report).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head[4:6] == ["peak MB", "MB above start"]
    row = [c.strip() for c in lines[2].strip("|").split("|")]
    assert row[4:6] == ["400", "123"]
    assert [c.strip() for c in lines[3].strip("|").split("|")][5] == "-"


def test_worker_baseline_is_the_resident_set():
    from jboat_core.run.compare_worker import _rss_mb
    import resource
    now = _rss_mb()
    assert 1 < now <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + 1


def test_show_op_documents_checkpoint_every_from_metadata(builtin_registry, capsys):
    tracked = [n for n in builtin_registry.names("hypergradient")
               if builtin_registry.get(n).cls.needs_trajectory]
    assert {"RAD", "PTT", "IAD"} <= set(tracked)
    for name in builtin_registry.names("hypergradient"):
        assert main(["show-op", name]) == 0
        text = capsys.readouterr().out
        has = "checkpoint_every = s" in text
        assert has == (name in tracked), name
        if has:
            assert "O(K/s + s)" in text and "one more forward pass" in text
            assert "supports_checkpointing (NGD" in text and "RAD@sqrt" in text
    assert main(["show-op", "RAD", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)["chain_rules"]
    assert any("checkpoint_every" in r for r in rules)


def test_show_op_names_a_plugin_loop_that_checkpoints(builtin_registry):
    from jboat_core.contract import DynamicalSystem

    class Loop(DynamicalSystem):
        name, stage, role = "LOOPCK", "solve", "terminal"
        summary, reference = "a loop that checkpoints", "none"
        supports_checkpointing = True

        def step(self, state):
            return state

    from jboat_core.run.cli import _chain_rules
    reg = builtin_registry.with_classes([Loop], distribution="my-loops")
    text = " ".join(_chain_rules(reg.get("RAD"), reg))
    import re

    m = re.search(r"supports_checkpointing \(([^)]*)\)", text)
    assert m and {"LOOPCK", "NGD"} <= set(m.group(1).split(", ")), text
