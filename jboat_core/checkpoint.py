"""Checkpoints that are data, never code.

Format (schema 1): one NumPy ``.npz`` archive, read with ``allow_pickle=False``. Every
array of the state is an entry (``a0``, ``a1``...); the entry ``__meta__`` is UTF-8 JSON:

    {"format": "jboat-checkpoint", "schema": 1, "next_iter": 60,
     "fingerprint": {"task": ..., "solver": ..., "optim": ..., "params": ..., "seed": ...,
                     "variables": {"ll_var": [[5]], "ul_var": [[5]]}, "world_size": 1},
     "state": <the state, arrays replaced by {"__array__": "a0"}>}

Writes are atomic: a uniquely named temporary file in the same folder, flushed and
fsynced, renamed over the checkpoint, and the folder fsynced; a crash or SIGKILL at any
moment leaves the previous checkpoint intact. Loading checks the format, the schema and
the fingerprint, and names the file and what differs. Old pickled checkpoints
(``checkpoint.pkl``) are refused, never unpickled: unpickling can run code.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import JboatError

FORMAT = "jboat-checkpoint"
SCHEMA = 1
NAME = "checkpoint.npz"
LEGACY = "checkpoint.pkl"


class CheckpointError(JboatError):
    """A checkpoint that cannot be used: damaged, of another format or schema, or of
    another problem. The message names the file and what to do."""


def _flatten(value: Any, arrays: dict) -> Any:
    """The JSON skeleton of ``value`` with its arrays moved into ``arrays``."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("object arrays cannot be checkpointed")
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _flatten(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_flatten(v, arrays) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__}")


def _restore(value: Any, archive) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return np.array(archive[value["__array__"]])
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: _restore(v, archive) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, archive) for v in value]
    return value


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (unique temporary file in the same folder,
    fsync, rename, fsync of the folder)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def save_checkpoint(path: str | Path, state: dict, fingerprint: dict, next_iter: int) -> None:
    """Write ``state`` (nested dicts / lists of NumPy arrays and plain values) atomically."""
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "schema": SCHEMA, "next_iter": int(next_iter),
            "fingerprint": fingerprint, "state": _flatten(state, arrays)}
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
             **arrays)
    write_atomic(Path(path), buf.getvalue())


def read_meta(path: str | Path) -> dict:
    """The checkpoint's metadata (format, schema, next_iter, fingerprint), checked."""
    return _open(Path(path))[0]


def _open(path: Path):
    advice = f"delete {path} or run with --overwrite to start afresh"
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"checkpoint {path} is damaged or not a jboat checkpoint "
                              f"({type(exc).__name__}: {exc}); {advice}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile) or "__meta__" not in archive.files:
        raise CheckpointError(f"checkpoint {path} is not a jboat checkpoint (no metadata); "
                              f"{advice}")
    try:
        meta = json.loads(bytes(archive["__meta__"]).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"checkpoint {path} has damaged metadata ({exc}); {advice}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a jboat checkpoint; {advice}")
    if meta.get("schema") != SCHEMA:
        raise CheckpointError(f"checkpoint {path} has schema {meta.get('schema')!r}; this jboat "
                              f"reads schema {SCHEMA}: resume with the jboat version that "
                              f"wrote it, or {advice}")
    return meta, archive


def load_checkpoint(path: str | Path, fingerprint: dict) -> tuple[dict, int]:
    """``(state, next_iter)`` of a checkpoint written for the same problem.

    Raises
    ------
    CheckpointError
        Damaged file, another format or schema, or a fingerprint that differs (the message
        lists the differences).
    """
    path = Path(path)
    meta, archive = _open(path)
    diffs = fingerprint_differences(meta.get("fingerprint") or {}, fingerprint)
    if diffs:
        raise CheckpointError(f"checkpoint {path} was written for another problem: "
                              + "; ".join(diffs) + ". Resume with the same task file and "
                              "settings, or start afresh with --overwrite")
    try:
        state = _restore(meta["state"], archive)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"checkpoint {path} is damaged ({type(exc).__name__}: {exc}); "
                              "delete it or run with --overwrite") from None
    return state, int(meta["next_iter"])


def fingerprint_differences(saved: dict, current: dict) -> list[str]:
    """Human-readable differences between two fingerprints (empty when they match)."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if a == b:
            continue
        if key == "variables" and isinstance(a, dict) and isinstance(b, dict):
            out += _shape_differences(a, b)
        elif key == "world_size":
            out.append(f"it was written by {a} process(es), this run has {b}: resume with "
                       f"`mpirun -np {a}`" if a and a > 1 else f"it was written by one process,"
                       f" this run has {b}: resume without mpirun")
        else:
            out.append(f"{key}: saved {_short(a)}, now {_short(b)}")
    return out


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


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:117] + "..."
