"""Shared machinery of the side-by-side benchmarks: one process per configuration,
rounds with the order rotated, results published under ``results/``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def run_worker(python: str, module: str, args: tuple, ident: dict, timeout: float,
               tail: int = 400, env: dict | None = None, lock: str | None = None) -> dict:
    """``benchmarks.MODULE.worker(*args)`` in a new ``python`` process (the framework's own
    venv); its JSON record, or ``ident`` with ``ok = False`` and why.

    ``env``: variables to set (a value of None removes one) in the worker's environment.
    ``lock``: a file taken with ``flock`` around the worker, whose time limit then starts
    once the lock is held (``timeout -s KILL``; waiting for the lock is not limited)."""
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            f"from benchmarks.{module} import worker; "
            f"print('@@' + json.dumps(worker(*{args!r})))")
    full = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    cmd = [python, "-c", code]
    if lock:
        cmd = ["flock", lock, "timeout", "-s", "KILL", f"{timeout:.0f}", *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=None if lock else timeout, env=full,
                              cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        return {**ident, "ok": False, "error": f"timed out after {timeout:.0f} s"}
    if lock and proc.returncode in (137, -9):
        return {**ident, "ok": False, "error": f"killed after {timeout:.0f} s (time limit)"}
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    return {**ident, "ok": False, "error": (proc.stderr or proc.stdout)[-tail:]}


def rotated(configs: list, rounds: int):
    """``(round, config)`` for each round, each round starting one configuration later
    (the first framework of a run was measured up to 1.5x slower than later ones)."""
    for k in range(rounds):
        shift = k % len(configs)
        for config in configs[shift:] + configs[:shift]:
            yield k, config


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def publish(name: str, records: list, table: str) -> None:
    """Write ``results/NAME.json`` (every record) and ``results/NAME.md``; print the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(records, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(table)
    print(table)
