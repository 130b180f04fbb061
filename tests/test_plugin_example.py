"""The example plugin, really installed: found through its entry point by the ``jboat`` CLI.

Skipped unless the distribution ``jboat-example-plugin`` is installed
(``pip install -e plugins-example``). Runs the CLI in subprocesses without the
``JBOAT_LOAD_PLUGINS=jboat`` restriction that conftest sets for every other test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

DIST = "jboat-example-plugin"

try:
    VERSION = metadata.version(DIST)
except metadata.PackageNotFoundError:
    VERSION = None

pytestmark = pytest.mark.skipif(
    VERSION is None, reason=f"{DIST} is not installed (pip install -e plugins-example)")


def jboat(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run the ``jboat`` command (the console script next to this Python, else
    ``python -m jboat_core.run.cli``) with the plugin switches cleared, then ``env`` set."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("JBOAT_LOAD_PLUGINS", "JBOAT_DISABLE_PLUGINS",
                            "JBOAT_STRICT_PLUGINS")}
    environ.update(env)
    script = Path(sys.executable).with_name("jboat")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "jboat_core.run.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, env=environ,
                          timeout=120)


def listed(**env: str) -> dict[str, dict]:
    proc = jboat("list-ops", "--json", "--verbose", **env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    ours = [f for f in out["failures"] if f["distribution"] == DIST]
    assert not ours, f"{DIST} failed to load: {ours}"
    return {row["name"]: row for row in out["operators"]}


def test_list_ops_shows_cgn_from_its_distribution():
    rows = listed()
    assert "CGN" in rows, f"CGN not listed; found {sorted(rows)}"
    row = rows["CGN"]
    assert row["distribution"] == DIST and row["version"] == VERSION
    assert row["entry_point"] == "cgn" and row["object"] == "jboat_example_plugin.cgn:CGN"
    assert (row["stage"], row["role"]) == ("implicit", "terminal")
    assert rows["CG"]["distribution"] == "jboat"  # the built-ins are still there


def test_show_op_describes_cgn():
    proc = jboat("show-op", "CGN")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("CGN — ") and f"from:      {DIST} {VERSION}" in out
    for text in ("formula:   g_x = grad_x F", "k (int, default 10)",
                 "tolerance (float, default 0.0)", "damping (float, default 0.0)",
                 "Pedregosa", "must be the last operator of its chain",
                 "[CG, CGN, NS]"):
        assert text in out, f"{text!r} missing from:\n{out}"


def test_disable_plugins_hides_it():
    rows = listed(JBOAT_DISABLE_PLUGINS=DIST)
    assert "CGN" not in rows and "CG" in rows
    proc = jboat("show-op", "CGN", JBOAT_DISABLE_PLUGINS=DIST)
    assert proc.returncode == 2 and "unknown operator 'CGN'" in proc.stderr


def test_load_plugins_selects_distributions():
    assert "CGN" not in listed(JBOAT_LOAD_PLUGINS="jboat")
    assert "CGN" in listed(JBOAT_LOAD_PLUGINS=f"jboat,{DIST}")


@pytest.mark.jittor
def test_runs_in_a_chain_through_real_entry_points():
    """PTT (built-in) then CGN (plugin), both found through installed entry points."""
    code = (
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from jboat_core import get_registry\n"
        "from jboat_core.testing.problems import ridge_problem\n"
        "from helpers import run_chain\n"
        "reg = get_registry()\n"
        f"assert reg.get('CGN').origin.distribution == {DIST!r}\n"
        "p = ridge_problem()\n"
        "res, g, _ = run_chain(p, ['cgn', 'ptt'], 3, 0.1, registry=reg)\n"
        "assert g.shape == p.x().shape and np.isfinite(g).all()\n"
        "print('chain ok', reg.get('CGN').origin.distribution)\n")
    environ = {k: v for k, v in os.environ.items()
               if k not in ("JBOAT_LOAD_PLUGINS", "JBOAT_DISABLE_PLUGINS")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"chain ok {DIST}" in proc.stdout


def test_third_party_first_order_solver_installs_and_runs():
    """F2SA, the plugin's first-order solver: listed with its kind, selected by fo_op and
    refused with gm_op/na_op, through installed entry points (its runs: the plugin's own
    tests)."""
    rows = {r["name"]: r for r in json.loads(jboat("list-ops", "--json").stdout)}
    assert rows["F2SA"]["kind"] == "first_order" and rows["F2SA"]["distribution"] == DIST
    environ = {k: v for k, v in os.environ.items()
               if k not in ("JBOAT_LOAD_PLUGINS", "JBOAT_DISABLE_PLUGINS")}
    code = ("from jboat_core import parse_solver_config, ConfigError\n"
            "assert parse_solver_config({'fo_op': 'F2SA'}).fo_op == ['F2SA']\n"
            "try:\n    parse_solver_config({'fo_op': 'F2SA', 'na_op': ['RAD']})\n"
            "except ConfigError as e:\n    assert 'first-order-alone' in str(e)\n"
            "else:\n    raise SystemExit('not refused')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ)
    assert proc.returncode == 0, proc.stderr
