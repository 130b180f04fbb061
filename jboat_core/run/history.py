"""The run's history beside its checkpoint: ``checkpoint.history.jsonl``, one strict JSON
line per outer iteration, appended at each checkpoint with the entries since the last one
(O(new entries), fsynced before the checkpoint that covers them is written). A resume
reads the lines a checkpoint covers, checked against their size and SHA-256, and cuts
lines written after it.

Never written into a file another folder shares (a hard-linked copy, ``cp -al``): a new
run's first write replaces the file by rename, appends go through
``jboat_core.platform.safeio.append_private`` and a cut of a shared file writes a private
copy of the covered lines instead of truncating in place.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .ckcommon import CheckpointError, fail, open_regular
from ..platform.safeio import append_private, write_atomic

HISTORY = "checkpoint.history.jsonl"


def _plain(value: Any) -> Any:
    """A history entry as strict JSON: NumPy scalars as numbers, arrays as
    ``{"__ndarray__": [...], "dtype": ...}``, non-finite floats as ``{"__float__": ...}``."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _unplain(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        if set(value) == {"__ndarray__", "dtype"}:
            return np.array(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        return {k: _unplain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unplain(v) for v in value]
    return value


class HistoryLog:
    """The run's history as JSON lines in ``checkpoint.history.jsonl``, appended at each
    checkpoint with the entries since the last one (O(new entries), fsynced before the
    checkpoint that covers them is written).

    Parameters
    ----------
    folder : path
        The output folder (the file is ``folder / HISTORY``).
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / HISTORY
        self.lines, self.bytes = 0, 0
        self._sha = hashlib.sha256()
        self._fresh = True  # the first append of a new run truncates an old file

    def append(self, history: list) -> dict:
        """Append ``history[self.lines:]``; the record a checkpoint stores. A new run's
        first append replaces an old file (by rename); later ones append, to a private
        copy when the file is shared with another folder (a hard link)."""
        data = b"".join(json.dumps(_plain(entry), allow_nan=False).encode("utf-8") + b"\n"
                        for entry in history[self.lines:])
        if self._fresh:
            write_atomic(self.path, data)
            self._fresh = False
        else:
            append_private(self.path, data)
        self._sha.update(data)
        self.lines, self.bytes = len(history), self.bytes + len(data)
        return {"file": HISTORY, "lines": self.lines, "bytes": self.bytes,
                "sha256": self._sha.hexdigest()}

    def resume(self, record: dict | None, checkpoint: Path, truncate: bool = True) -> list:
        """The history a checkpoint covers (its ``history`` record), checked against the
        record's size and SHA-256; lines written after it (a crash between the two
        writes) are cut when ``truncate``. Appends continue after them."""
        if record is None:
            raise fail(checkpoint, "history", "no history record (written by the Python "
                                              "API without one)")
        with _history_file(self.path, checkpoint) as fh:
            st = os.fstat(fh.fileno())
            size = st.st_size
            if size < record["bytes"]:
                raise fail(checkpoint, "history", f"{self.path} holds {size} bytes, the "
                                                  f"checkpoint covers {record['bytes']}: it "
                                                  "was cut or replaced")
            data = fh.read(record["bytes"])
        sha = hashlib.sha256(data)
        if sha.hexdigest() != record["sha256"]:
            raise fail(checkpoint, "history.sha256", f"{self.path} does not hold the lines "
                                                     "this checkpoint covers (changed since)")
        entries = _parse_lines(data, self.path, checkpoint, record["lines"])
        if truncate and size > record["bytes"]:
            _cut(self.path, data, shared=st.st_nlink > 1)
        self.lines, self.bytes, self._sha, self._fresh = len(entries), len(data), sha, False
        return entries


def _cut(path: Path, data: bytes, shared: bool) -> None:
    """Keep only ``data`` (the covered lines, the file's first bytes): truncated in place,
    or, when another name shares the file, a private copy renamed over it."""
    if shared:
        write_atomic(path, data)
        return
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)


def _history_file(path: Path, checkpoint: Path):
    try:
        return open_regular(path, "history file")
    except CheckpointError as exc:
        raise fail(checkpoint, "history", f"{exc}") from None


def _parse_lines(data: bytes, path: Path, checkpoint: Path, lines: int) -> list:
    entries = []
    for i, line in enumerate(data.splitlines()):
        try:
            entry = _unplain(json.loads(line))
        except RecursionError:
            raise fail(checkpoint, "history", f"line {i + 1} of {path} is nested too "
                                              "deeply (jboat writes flat records)") from None
        except (ValueError, TypeError) as exc:
            raise fail(checkpoint, "history", f"line {i + 1} of {path} is damaged "
                                              f"({exc})") from None
        if not isinstance(entry, dict) or entry.get("iter") != i:
            raise fail(checkpoint, "history", f"line {i + 1} of {path} is not the record "
                                              f"of iteration {i}")
        entries.append(entry)
    if len(entries) != lines:
        raise fail(checkpoint, "history", f"{path} holds {len(entries)} records where the "
                                           f"checkpoint covers {lines}")
    return entries
