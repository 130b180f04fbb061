"""The checkpoint archive's format and its atomic writing.

One NumPy ``.npz`` (a zip of ``.npy`` members): every array of the state is a member
(``a0``, ``a1``...), and ``__meta__`` is UTF-8 JSON holding the format, the schema,
``next_iter``, the fingerprint, the state's skeleton (arrays replaced by
``{"__array__": "a0"}``, non-finite floats by ``{"__float__": "nan"}``) and the record of
the history lines the checkpoint covers. ``jboat_core.run.checkpoint`` describes the whole.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .history import HISTORY
from ..platform.safeio import write_atomic

FORMAT = "jboat-checkpoint"
SCHEMA = 2
NAME = "checkpoint.npz"
LEGACY = "checkpoint.pkl"
#: Metadata always accepted (besides what the file and the live state allow).
MARGIN = 1 << 20
#: Deepest nesting of lists and tables in the metadata (the state needs about 8; a task
#: file's parameters a few more).
MAX_DEPTH = 64
#: Largest ``.npy`` header accepted (NumPy writes 128 bytes or so).
HEADER_LIMIT = 1 << 16


def flatten(value: Any, arrays: dict) -> Any:
    """The JSON skeleton of ``value`` with its arrays moved into ``arrays``."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("object arrays cannot be checkpointed")
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, np.generic):
        return flatten(value.item(), arrays)
    if isinstance(value, dict):
        return {str(k): flatten(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [flatten(v, arrays) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__}")


def restore(value: Any, arrays: dict) -> Any:
    """The state of a skeleton whose arrays were read into ``arrays``."""
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return arrays[value["__array__"]]
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: restore(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [restore(v, arrays) for v in value]
    return value


def save_checkpoint(path: str | Path, state: dict, fingerprint: dict, next_iter: int,
                    history: dict | None = None) -> None:
    """Write ``state`` (nested dicts / lists of NumPy arrays and plain values) atomically.

    Parameters
    ----------
    path : path
    state : dict
        Without the history (``HistoryLog`` writes it apart).
    fingerprint : dict
        What a resume must match (``load_checkpoint``).
    next_iter : int
        The iteration a resumed run starts at.
    history : dict, optional
        ``HistoryLog.append``'s record of the history lines this checkpoint covers.
    """
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "schema": SCHEMA, "next_iter": int(next_iter),
            "fingerprint": fingerprint, "state": flatten(state, arrays), "history": history}
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
             **arrays)
    write_atomic(Path(path), buf.getvalue())


def normal(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists, NumPy scalars as Python's)."""
    return json.loads(json.dumps(flatten(value, {}), sort_keys=True))


def meta_size(state: dict, fingerprint: dict, next_iter: int = 0) -> int:
    """The size in bytes of the metadata ``save_checkpoint`` writes for ``state`` (the
    live problem's, for the limits ``load_checkpoint`` derives from it)."""
    meta = {"format": FORMAT, "schema": SCHEMA, "next_iter": int(next_iter),
            "fingerprint": fingerprint, "state": flatten(state, {}),
            "history": {"file": HISTORY, "lines": 0, "bytes": 0, "sha256": "0" * 64}}
    return len(json.dumps(meta).encode("utf-8"))
