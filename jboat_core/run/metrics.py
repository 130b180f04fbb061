"""``metrics.json`` and ``loss_curve.png`` of a run.

``metrics.json`` is strict JSON (RFC 8259: no bare ``NaN``/``Infinity``): a non-finite
number is written as ``null`` and its location listed under ``"non_finite"``. It is written
atomically, and also when a run stops on an error (``"status": "failed"`` with
``"error"``) or is interrupted, so the history since the last checkpoint is never lost.
Both files are written through ``jboat_core.platform.safeio``: a new temporary file renamed over
the name, so a symbolic link planted there is replaced, its target never written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..platform.safeio import atomic_file, write_atomic


def strict(value, path: str = "", found: list | None = None):
    """``value`` with every non-finite float replaced by None (locations in ``found``)."""
    found = [] if found is None else found
    if isinstance(value, float) and not math.isfinite(value):
        found.append(path or "(value)")
        return None
    if isinstance(value, dict):
        return {k: strict(v, f"{path}.{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "size", 2) == 1:
        return strict(value.item(), path, found)  # NumPy scalars
    return value


def write_metrics(path: Path, metrics: dict) -> dict:
    """Write ``metrics`` as strict JSON, atomically; returns what was written."""
    found: list[str] = []
    clean = strict(dict(metrics), found=found)
    if found:
        clean["non_finite"] = found
    write_atomic(Path(path), (json.dumps(clean, indent=2, allow_nan=False) + "\n").encode())
    return clean


def plot_losses(history: list[dict], path: Path, title: str) -> None:
    """Upper and lower loss per iteration, written as a PNG (atomically, replacing a file
    or link at ``path``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [h["iter"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(its, [h["upper_loss"] for h in history], label="upper loss F")
    if any(h.get("lower_loss") is not None for h in history):
        ax.plot(its, [h.get("lower_loss") for h in history], label="lower loss f")
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_png(fig, path, 100)


def save_png(fig, path: Path, dpi: int) -> None:
    """Write a matplotlib figure as a PNG through a temporary file renamed over ``path``
    (never written through a link), then close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path) as fh:
            fig.savefig(fh, dpi=dpi, format="png")
    finally:
        plt.close(fig)
