"""Checkpoints that are data, never code, checked against the live problem before use.

Format (schema 2): one NumPy ``.npz`` archive (a zip of ``.npy`` members). Every array of
the state is a member (``a0``, ``a1``...); the member ``__meta__`` is UTF-8 JSON:

    {"format": "jboat-checkpoint", "schema": 2, "next_iter": 60,
     "fingerprint": {"task": ..., "module_sha256": ..., "solver": ..., "optim": ...,
                     "params": ..., "seed": ..., "variables": {"ll_var": [[5]], ...},
                     "world_size": 1},
     "state": <the state, arrays replaced by {"__array__": "a0"}>,
     "history": {"file": "checkpoint.history.jsonl", "lines": 60, "bytes": 6120,
                 "sha256": ...}}

The run's history is not in the archive: it is appended, one JSON line per iteration, to
``checkpoint.history.jsonl`` beside it (``HistoryLog``), so a checkpoint costs O(state),
not O(history). The archive records how many lines (and bytes, and their SHA-256) it
covers: lines appended after it (a crash between the two writes) are cut on resume.

Writes are atomic: a uniquely named temporary file in the same folder, flushed and
fsynced, renamed over the checkpoint, and the folder fsynced; a crash or SIGKILL at any
moment leaves the previous checkpoint intact.

Reading trusts nothing in the file. The path must be a regular file (``lstat``; a FIFO, a
device, a folder or a link is refused without being opened for reading); the metadata is
checked (format, schema, ``next_iter`` a whole number in [0, iterations], the
fingerprint); with a ``schema`` of the live state (``Problem.state_schema``) every key,
list length, plain value and array is checked before any array is decompressed: sizes
come from the zip's central directory (``ZipInfo.file_size``) and each member's ``.npy``
header (shape, dtype), and a member larger than the live array it is written into is
refused, so a zip bomb allocates nothing. Size limits come from the task's own state,
never a constant: the metadata may be as large as the checkpoint file holding it (jboat
stores members uncompressed) or twice the live problem's own metadata plus
``MARGIN``; a table of rows whose count is only known with the data (SABA's SAGA tables,
``Rows``) at most as large as the file. Counts are whole numbers up to 2**53, plain
numbers finite; a nesting deeper than Python can parse is one line too. Errors are one line,
``checkpoint PATH: KEY: what is wrong; what to do``. Old pickled checkpoints
(``checkpoint.pkl``) are refused, never unpickled: unpickling can run code.

This module composes the parts and keeps their names importable from here: ``archive``
(the format and writing), ``reader`` (opening and reading members), ``checks`` (the
metadata and the state against the live schema), ``fingerprint`` (what differs from the
live run), ``history`` (the history log) and ``ckcommon`` (the error and what they share).
"""

from __future__ import annotations

from pathlib import Path

from .archive import (FORMAT, HEADER_LIMIT, LEGACY, MARGIN, MAX_DEPTH, NAME, SCHEMA,
                      meta_size, restore, save_checkpoint)
from .checks import StateChecker, check_meta
from .ckcommon import AFRESH, CheckpointError, open_regular
from .fingerprint import fingerprint_differences, first_difference
from .history import HISTORY, HistoryLog
from .reader import Archive, array_members, read_meta
from .task import MAX_ITERATIONS
from ..contract.stateschema import (COUNT_LIMIT, PLAIN_KINDS, ArraySpec, Equal, ListsLike,
                                    OrEmpty, Plain, Rows, schema_of)
from ..platform.safeio import write_atomic

__all__ = ["AFRESH", "COUNT_LIMIT", "FORMAT", "HEADER_LIMIT", "HISTORY", "LEGACY", "MARGIN",
           "MAX_DEPTH", "MAX_ITERATIONS", "NAME", "PLAIN_KINDS", "SCHEMA", "ArraySpec",
           "CheckpointError", "Equal", "HistoryLog", "ListsLike", "OrEmpty", "Plain", "Rows",
           "check_meta", "fingerprint_differences", "first_difference", "load_checkpoint",
           "load_checkpoint_meta", "meta_size", "open_regular", "read_meta",
           "save_checkpoint", "schema_of", "write_atomic"]

def load_checkpoint(path: str | Path, fingerprint: dict, *, schema: dict | None = None,
                    iterations: int | None = None, ignore: tuple[str, ...] = (),
                    live_meta: int = 0) -> tuple[dict, int]:
    """``(state, next_iter)`` of a checkpoint written for the same problem.

    Parameters
    ----------
    path : path
    fingerprint : dict
        The live problem's; every key must match (except those in ``ignore``).
    schema : dict, optional
        The live state's schema (``Problem.state_schema``): keys, list lengths, plain
        values and every array's shape and dtype are checked, and archive entries larger
        than the live arrays refused, before anything is decompressed.
    iterations : int, optional
        The run's iteration count: ``next_iter`` must not exceed it.
    ignore : tuple of str
        Fingerprint keys whose difference is accepted (``module_sha256`` with
        ``--allow-changed-module``).
    live_meta : int
        The size of the live problem's own metadata (``meta_size``): metadata up to
        twice as large plus ``MARGIN`` is read (and any that fits in the file).

    Raises
    ------
    CheckpointError
        Damaged file, another format or schema, a fingerprint that differs, or a state
        that does not fit the live problem; the message names the key.
    """
    state, meta = load_checkpoint_meta(path, fingerprint, schema=schema,
                                       iterations=iterations, ignore=ignore,
                                       live_meta=live_meta)
    return state, meta["next_iter"]


def load_checkpoint_meta(path: str | Path, fingerprint: dict, *, schema: dict | None = None,
                         iterations: int | None = None, ignore: tuple[str, ...] = (),
                         live_meta: int = 0) -> tuple[dict, dict]:
    """``load_checkpoint``, returning ``(state, metadata)``."""
    path = Path(path)
    with Archive(path, iterations, live_meta) as archive:
        meta = archive.meta
        saved = {k: v for k, v in meta["fingerprint"].items() if k not in ignore}
        diffs = fingerprint_differences(saved, {k: v for k, v in fingerprint.items()
                                                if k not in ignore})
        if diffs:
            raise CheckpointError(f"checkpoint {path} was written for another problem: "
                                  + "; ".join(diffs) + ". Resume with the same task file and "
                                  "settings, or start afresh with --overwrite")
        checker = StateChecker(path)
        if schema is not None:
            checker.table(meta["state"], schema, "")
            wanted = checker.arrays
        else:
            wanted = {m: (m, None) for m in array_members(meta["state"], path)}
        state = restore(meta["state"], archive.arrays(wanted))
    return state, meta

