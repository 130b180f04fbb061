"""What a checkpoint was written for, compared with the live run: the differences between
two fingerprints (task, task module hash, solver, optimizers, parameters, seed, variable
shapes, process count) as readable lines, each saying what to do."""

from __future__ import annotations

from typing import Any

from .ckcommon import ABSENT, short


def fingerprint_differences(saved: dict, current: dict) -> list[str]:
    """Human-readable differences between two fingerprints (empty when they match): the
    first differing key of each entry, with both values."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if a == b:
            continue
        if key == "variables" and isinstance(a, dict) and isinstance(b, dict):
            out += _shape_differences(a, b)
        elif key == "world_size":
            out.append(f"it was written by {a} process(es), this run has {b}: resume with "
                       f"`mpirun -np {a}`" if isinstance(a, int) and a > 1 else
                       f"it was written by one process, this run has {b}: resume without "
                       "mpirun")
        elif key == "module_sha256":
            out.append(f"task module {current.get('task', '?')}: its source changed since the "
                       f"checkpoint (sha256 {str(a)[:16]} saved, {str(b)[:16]} now): resume "
                       "with the module that wrote it, or pass --allow-changed-module to "
                       "continue with this one")
        else:
            where, x, y = first_difference(a, b)
            out.append(f"{key}{where}: saved {short(x)}, now {short(y)}")
    return out


def first_difference(a: Any, b: Any, where: str = "") -> tuple[str, Any, Any]:
    """``(path, a's value, b's value)`` at the first place ``a`` and ``b`` differ (keys
    in sorted order, list items in order); the whole values when their kinds differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b or a[key] != b[key]:
                return first_difference(a.get(key, ABSENT), b.get(key, ABSENT),
                                        f"{where}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{where}[{i}]")
    return where, a, b


def _shape_differences(a: dict, b: dict) -> list[str]:
    out = []
    for name in sorted(set(a) | set(b)):
        sa, sb = a.get(name) or [], b.get(name) or []
        if len(sa) != len(sb):
            out.append(f"{name}: saved {len(sa)} variables, now {len(sb)}")
            continue
        out += [f"{name}[{i}]: saved shape {x}, now {y}" for i, (x, y) in
                enumerate(zip(sa, sb)) if x != y]
    return out
