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
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .ckcommon import AFRESH, CheckpointError, open_regular  # noqa: F401 - public names
from .ckcommon import fail as _fail
from .history import HISTORY, HistoryLog  # noqa: F401 - public names
from .task import MAX_ITERATIONS
from ..contract.stateschema import (COUNT_LIMIT, PLAIN_KINDS, ArraySpec,  # noqa: F401
                                    Equal, ListsLike, OrEmpty, Plain, Rows, schema_of)
from ..platform.safeio import write_atomic  # noqa: F401 - also this module's public name

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
# -- the state as JSON plus arrays ----------------------------------------------------
def _flatten(value: Any, arrays: dict) -> Any:
    """The JSON skeleton of ``value`` with its arrays moved into ``arrays``."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("object arrays cannot be checkpointed")
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, np.generic):
        return _flatten(value.item(), arrays)
    if isinstance(value, dict):
        return {str(k): _flatten(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_flatten(v, arrays) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__}")


def _restore(value: Any, arrays: dict) -> Any:
    """The state of a skeleton whose arrays were read into ``arrays``."""
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return arrays[value["__array__"]]
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: _restore(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, arrays) for v in value]
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
            "fingerprint": fingerprint, "state": _flatten(state, arrays), "history": history}
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
             **arrays)
    write_atomic(Path(path), buf.getvalue())


def _normal(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists, NumPy scalars as Python's)."""
    return json.loads(json.dumps(_flatten(value, {}), sort_keys=True))


class _Checker:
    """Walks a checkpoint's state skeleton along a schema; collects the arrays to read."""

    def __init__(self, path: Path):
        self.path = path
        self.arrays: dict[str, tuple[str, tuple]] = {}  # member -> (key, accepted specs)

    def walk(self, value: Any, schema: Any, key: str) -> None:
        if isinstance(schema, (ArraySpec, Rows)):
            self.array(value, (schema,), key)
        elif isinstance(schema, OrEmpty):
            if value != {}:
                self.walk(value, schema.schema, key)
        elif isinstance(schema, ListsLike):
            self.lists(value, schema, key)
        elif isinstance(schema, dict):
            self.table(value, schema, key)
        elif isinstance(schema, list):
            if not isinstance(value, list):
                raise _fail(self.path, key, f"expected a list of {len(schema)}, found "
                                            f"{_kind(value)}")
            if len(value) != len(schema):
                raise _fail(self.path, key, f"{len(value)} entries, this problem has "
                                            f"{len(schema)}")
            for i, (v, s) in enumerate(zip(value, schema)):
                self.walk(v, s, f"{key}[{i}]")
        elif isinstance(schema, Equal):
            self.equal(value, schema, key)
        else:
            ok, what = PLAIN_KINDS[schema.kind]
            if not ok(_plain_value(value)):
                raise _fail(self.path, key, f"{_short(value)} is not {what}")

    def table(self, value: Any, schema: dict, key: str) -> None:
        if not isinstance(value, dict) or _marker(value):
            raise _fail(self.path, key or "state", f"expected a table, found {_kind(value)}")
        missing, extra = sorted(set(schema) - set(value)), sorted(set(value) - set(schema))
        if missing:
            raise _fail(self.path, _join(key, missing[0]), "missing (this problem has it)")
        if extra:
            raise _fail(self.path, _join(key, extra[0]), "not part of this problem's state")
        for name, sub in schema.items():
            self.walk(value[name], sub, _join(key, name))

    def equal(self, value: Any, schema: Equal, key: str) -> None:
        saved = _plain_value(value)
        if _normal(saved) != _normal(schema.value):
            raise _fail(self.path, key, f"the checkpoint has {_short(saved)}, "
                                        f"{schema.source} gives {_short(schema.value)}",
                        f"{schema.source} decides it, never a checkpoint (this one was "
                        "changed after it was written?): restore it, or start afresh with "
                        "--overwrite")

    def lists(self, value: Any, schema: ListsLike, key: str) -> None:
        if not isinstance(value, dict) or _marker(value):
            raise _fail(self.path, key, f"expected a table of lists, found {_kind(value)}")
        for name, arrays in value.items():
            where = _join(key, name)
            if not isinstance(arrays, list):
                raise _fail(self.path, where, f"expected a list of arrays, found "
                                              f"{_kind(arrays)}")
            options = [specs for specs in schema.options.values() if len(specs) == len(arrays)]
            if not options:
                like = " or ".join(f"{len(s)} ({n})" for n, s in schema.options.items())
                raise _fail(self.path, where, f"{len(arrays)} arrays; an operator's state "
                                              f"lists are shaped like the {like}")
            for i, item in enumerate(arrays):
                self.array(item, tuple({specs[i] for specs in options}), f"{where}[{i}]")

    def array(self, value: Any, specs: tuple, key: str) -> None:
        member = value.get("__array__") if isinstance(value, dict) and set(value) == {
            "__array__"} else None
        if not isinstance(member, str):
            raise _fail(self.path, key, f"expected an array ({specs[0]}), found "
                                        f"{_kind(value)}")
        if member in self.arrays:
            raise _fail(self.path, key, f"refers to the array {member} of "
                                        f"{self.arrays[member][0]} too")
        self.arrays[member] = (key, specs)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _marker(value: dict) -> bool:
    return set(value) in ({"__array__"}, {"__float__"})


def _plain_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"__float__"}:
        try:
            return float(value["__float__"])
        except (TypeError, ValueError):
            return value
    return value


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an array" if set(value) == {"__array__"} else "a table"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return _short(value)


# -- reading --------------------------------------------------------------------------
def _read_npy(fh, path: Path, key: str, accept) -> np.ndarray:
    """Read one ``.npy`` member: its header first, ``accept(shape, dtype)`` (an error
    text or None) before any data is allocated, then exactly the bytes it declares."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh, max_header_size=HEADER_LIMIT)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh, max_header_size=HEADER_LIMIT)
        else:
            raise ValueError(f".npy format {version} (jboat writes 1.0)")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise _fail(path, key, f"its array header is damaged ({exc})") from None
    if dtype.hasobject:
        raise _fail(path, key, "holds Python objects (a pickle); jboat never loads pickles")
    problem = accept(tuple(shape), dtype)
    if problem:
        raise _fail(path, key, problem)
    nbytes = math.prod(shape) * dtype.itemsize
    try:
        data = fh.read(nbytes)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise _fail(path, key, f"its data is damaged ({type(exc).__name__}: {exc})") from None
    if len(data) != nbytes:
        raise _fail(path, key, f"its data is truncated ({len(data)} of {nbytes} bytes)")
    flat = np.frombuffer(data, dtype=dtype)
    array = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
    return np.ascontiguousarray(array).copy()


def _fits(spec, shape: tuple, dtype, rows: dict) -> bool:
    """Whether an array of ``shape`` and ``dtype`` fits ``spec`` (an ``ArraySpec``, or a
    ``Rows`` whose group's row count, the first one seen, is kept in ``rows``)."""
    if isinstance(spec, Rows):
        if not (len(shape) == len(spec.spec.shape) + 1 and shape[1:] == spec.spec.shape
                and shape[0] >= 1 and dtype == np.dtype(spec.spec.dtype)):
            return False
        return rows.setdefault(spec.group, shape[0]) == shape[0]
    return shape == spec.shape and dtype == np.dtype(spec.dtype)


def _accept_specs(specs: tuple, rows: dict):
    def accept(shape, dtype):
        if any(_fits(s, shape, dtype, rows) for s in specs):
            return None
        want = " or ".join(str(s) for s in specs)
        groups = {s.group for s in specs if isinstance(s, Rows) and s.group in rows}
        same = "".join(f" with the {rows[g]} rows of the other {g} tables" for g in groups)
        return (f"shape {list(shape)} {dtype.name}, the live variable it is written into is "
                f"{want}{same}")
    return accept


def _accept_any(limit: int):
    def accept(shape, dtype):
        size = math.prod(shape) * dtype.itemsize
        if size > limit:
            return f"declares {size} bytes of data, its archive entry holds at most {limit}"
        return None
    return accept


class _Archive:
    """An open checkpoint: the zip of a regular file, its members, its checked metadata."""

    def __init__(self, path: Path, iterations: int | None = None, live_meta: int = 0):
        self.path = path
        self.file = open_regular(path)
        try:
            self.size = os.fstat(self.file.fileno()).st_size
            self.zip = zipfile.ZipFile(self.file)
            self.members = {info.filename: info for info in self.zip.infolist()}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            self.file.close()
            raise CheckpointError(f"checkpoint {path} is damaged or not a jboat checkpoint "
                                  f"({type(exc).__name__}: {exc}); {AFRESH}") from None
        try:
            self.meta = self._meta(iterations, live_meta)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.zip.close()
        self.file.close()

    def __enter__(self) -> "_Archive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _meta(self, iterations: int | None, live_meta: int) -> dict:
        info = self.members.get("__meta__.npy")
        if info is None:
            raise CheckpointError(f"checkpoint {self.path} is not a jboat checkpoint (no "
                                  f"metadata); {AFRESH}")
        limit = max(self.size, 2 * live_meta + MARGIN)
        if info.file_size > limit + HEADER_LIMIT:
            raise _fail(self.path, "__meta__", f"declares {info.file_size} bytes, more than "
                                               f"the whole file holds ({self.size} bytes)"
                                               + (f" and than this problem's state needs "
                                                  f"({live_meta} bytes)" if live_meta else ""))
        raw = self.read("__meta__.npy", "__meta__", _accept_any(info.file_size))
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except RecursionError:
            raise CheckpointError(f"checkpoint {self.path} has damaged metadata (nested too "
                                  f"deeply to read; jboat writes a few levels); "
                                  f"{AFRESH}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"checkpoint {self.path} has damaged metadata ({exc}); "
                                  f"{AFRESH}") from None
        check_meta(meta, self.path, iterations)
        return meta

    def read(self, name: str, key: str, accept) -> np.ndarray:
        try:
            with self.zip.open(self.members[name]) as fh:
                return _read_npy(fh, self.path, key, accept)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
            raise _fail(self.path, key, f"damaged ({type(exc).__name__}: {exc})") from None

    def arrays(self, wanted: dict) -> dict:
        """Read the members ``wanted`` (member -> (key, specs or None)), sizes checked from
        the central directory before anything is decompressed; extra members refused."""
        names = {f"{m}.npy" for m in wanted} | {"__meta__.npy"}
        extra = sorted(set(self.members) - names)
        if extra:
            raise _fail(self.path, extra[0], "an archive entry no state key refers to")
        for member, (key, specs) in wanted.items():
            info = self.members.get(f"{member}.npy")
            if info is None:
                raise _fail(self.path, key, f"its array {member} is missing from the archive")
            if specs is not None:
                self._check_size(info, key, specs)
        out, rows = {}, {}
        for member, (key, specs) in wanted.items():
            info = self.members[f"{member}.npy"]
            accept = (_accept_specs(specs, rows) if specs is not None
                      else _accept_any(info.file_size))
            out[member] = self.read(f"{member}.npy", key, accept)
        return out

    def _check_size(self, info, key: str, specs: tuple) -> None:
        """Refuse an entry larger than the live array it is written into (or, for a table
        of rows, than the whole file), from the central directory."""
        if any(isinstance(s, Rows) for s in specs):
            if info.file_size > self.size + HEADER_LIMIT:
                raise _fail(self.path, key, f"its archive entry declares {info.file_size} "
                                            f"bytes, more than the whole file holds "
                                            f"({self.size}; jboat stores arrays uncompressed)")
            return
        need = max(s.nbytes for s in specs)
        if info.file_size > need + HEADER_LIMIT:
            raise _fail(self.path, key, f"its archive entry declares {info.file_size} bytes, "
                                        f"the live variable it is written into needs {need}")


def check_meta(meta: Any, path: Path, iterations: int | None = None) -> None:
    """Check a checkpoint's metadata: format, schema, ``next_iter`` (a whole number in
    [0, iterations]), the fingerprint and state tables, the history record."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a jboat checkpoint; {AFRESH}")
    depth = _depth(meta)
    if depth > MAX_DEPTH:
        raise CheckpointError(f"checkpoint {path} has damaged metadata (nested {depth} levels "
                              f"deep; jboat writes at most {MAX_DEPTH}); {AFRESH}")
    schema = meta.get("schema")
    if schema != SCHEMA:
        older = (" (an older jboat kept the history inside and did not hash the task "
                 "module)" if schema == 1 else "")
        raise CheckpointError(f"checkpoint {path} has schema {_short(schema)}{older}; this "
                              f"jboat reads schema {SCHEMA}: resume with the jboat version "
                              f"that wrote it, or {AFRESH}")
    it = meta.get("next_iter")
    if type(it) is not int:
        raise _fail(path, "next_iter", f"{_short(it)} is not a whole number of iterations")
    if it < 0:
        raise _fail(path, "next_iter", f"{_short(it)} is negative")
    if it > MAX_ITERATIONS:
        raise _fail(path, "next_iter", f"{_short(it)} is more iterations than a run can ask "
                                       f"for ({MAX_ITERATIONS})")
    if iterations is not None and it > iterations:
        raise _fail(path, "next_iter", f"the checkpoint is at iteration {it}, past the "
                                       f"{iterations} iterations asked for",
                    "raise --iterations (or [task] iterations) to continue it")
    for key in ("fingerprint", "state"):
        if not isinstance(meta.get(key), dict):
            raise _fail(path, key, f"expected a table, found {_kind(meta.get(key))}")
    record = meta.get("history")
    if record is not None:
        _check_history_record(record, path, it)


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and tables (counted without recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                todo += [(v, level + 1) for v in (item.values() if isinstance(item, dict)
                                                  else item)]
    return deepest


def _check_history_record(record: Any, path: Path, next_iter: int) -> None:
    if not isinstance(record, dict) or set(record) != {"file", "lines", "bytes", "sha256"}:
        raise _fail(path, "history", f"expected a table of file, lines, bytes, sha256, "
                                     f"found {_short(record)}")
    if record["file"] != HISTORY:
        raise _fail(path, "history.file", f"{_short(record['file'])}; jboat writes {HISTORY}")
    for key in ("lines", "bytes"):
        if type(record[key]) is not int or not 0 <= record[key] <= COUNT_LIMIT:
            raise _fail(path, f"history.{key}", f"{_short(record[key])} is not a whole "
                                                "number from 0 to 2**53")
    if record["lines"] != next_iter:
        raise _fail(path, "history.lines", f"{record['lines']} lines for {next_iter} "
                                           "iterations: the checkpoint is inconsistent")
    sha = record["sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= set("0123456789abcdef")):
        raise _fail(path, "history.sha256", f"{_short(sha)} is not a SHA-256 digest")


def read_meta(path: str | Path, iterations: int | None = None) -> dict:
    """The checkpoint's metadata (format, schema, next_iter, fingerprint), checked;
    ``next_iter`` at most ``iterations`` when given. Reads no array; the metadata may be
    as large as the file (or ``MARGIN``)."""
    with _Archive(Path(path), iterations) as archive:
        return archive.meta


def meta_size(state: dict, fingerprint: dict, next_iter: int = 0) -> int:
    """The size in bytes of the metadata ``save_checkpoint`` writes for ``state`` (the
    live problem's, for the limits ``load_checkpoint`` derives from it)."""
    meta = {"format": FORMAT, "schema": SCHEMA, "next_iter": int(next_iter),
            "fingerprint": fingerprint, "state": _flatten(state, {}),
            "history": {"file": HISTORY, "lines": 0, "bytes": 0, "sha256": "0" * 64}}
    return len(json.dumps(meta).encode("utf-8"))


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
    with _Archive(path, iterations, live_meta) as archive:
        meta = archive.meta
        saved = {k: v for k, v in meta["fingerprint"].items() if k not in ignore}
        diffs = fingerprint_differences(saved, {k: v for k, v in fingerprint.items()
                                                if k not in ignore})
        if diffs:
            raise CheckpointError(f"checkpoint {path} was written for another problem: "
                                  + "; ".join(diffs) + ". Resume with the same task file and "
                                  "settings, or start afresh with --overwrite")
        checker = _Checker(path)
        if schema is not None:
            checker.table(meta["state"], schema, "")
            wanted = checker.arrays
        else:
            wanted = {m: (m, None) for m in _members(meta["state"], path)}
        state = _restore(meta["state"], archive.arrays(wanted))
    return state, meta


def _members(value: Any, path: Path, out: set | None = None) -> set:
    """The array members a skeleton refers to (a schema-less load)."""
    out = set() if out is None else out
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            if not isinstance(value["__array__"], str):
                raise _fail(path, "state", f"an array reference {_short(value)} is damaged")
            out.add(value["__array__"])
        else:
            for v in value.values():
                _members(v, path, out)
    elif isinstance(value, list):
        for v in value:
            _members(v, path, out)
    return out


# -- fingerprints ---------------------------------------------------------------------
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
            out.append(f"{key}{where}: saved {_short(x)}, now {_short(y)}")
    return out


def first_difference(a: Any, b: Any, where: str = "") -> tuple[str, Any, Any]:
    """``(path, a's value, b's value)`` at the first place ``a`` and ``b`` differ (keys
    in sorted order, list items in order); the whole values when their kinds differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b or a[key] != b[key]:
                return first_difference(a.get(key, _ABSENT), b.get(key, _ABSENT),
                                        f"{where}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{where}[{i}]")
    return where, a, b


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


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
    if isinstance(value, _Absent):
        return "(absent)"
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:117] + "..."
