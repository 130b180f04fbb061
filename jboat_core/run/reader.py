"""Reading a checkpoint archive while trusting nothing in it.

The path must be a regular file (``ckcommon.open_regular``); the metadata's size is
bounded by the file and the live problem's own metadata before it is read, then checked
(``checks.check_meta``); each array member's size comes from the zip's central directory
and its ``.npy`` header (shape, dtype) before any data is decompressed, so a member larger
than the live array it is written into is refused and a zip bomb allocates nothing.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .archive import HEADER_LIMIT, MARGIN
from .checks import check_meta
from .ckcommon import AFRESH, CheckpointError, fail, open_regular, short
from ..contract.stateschema import Rows


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
        raise fail(path, key, f"its array header is damaged ({exc})") from None
    if dtype.hasobject:
        raise fail(path, key, "holds Python objects (a pickle); jboat never loads pickles")
    problem = accept(tuple(shape), dtype)
    if problem:
        raise fail(path, key, problem)
    nbytes = math.prod(shape) * dtype.itemsize
    try:
        data = fh.read(nbytes)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise fail(path, key, f"its data is damaged ({type(exc).__name__}: {exc})") from None
    if len(data) != nbytes:
        raise fail(path, key, f"its data is truncated ({len(data)} of {nbytes} bytes)")
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


class Archive:
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

    def __enter__(self) -> "Archive":
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
            raise fail(self.path, "__meta__", f"declares {info.file_size} bytes, more than "
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
            raise fail(self.path, key, f"damaged ({type(exc).__name__}: {exc})") from None

    def arrays(self, wanted: dict) -> dict:
        """Read the members ``wanted`` (member -> (key, specs or None)), sizes checked from
        the central directory before anything is decompressed; extra members refused."""
        names = {f"{m}.npy" for m in wanted} | {"__meta__.npy"}
        extra = sorted(set(self.members) - names)
        if extra:
            raise fail(self.path, extra[0], "an archive entry no state key refers to")
        for member, (key, specs) in wanted.items():
            info = self.members.get(f"{member}.npy")
            if info is None:
                raise fail(self.path, key, f"its array {member} is missing from the archive")
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
                raise fail(self.path, key, f"its archive entry declares {info.file_size} "
                                            f"bytes, more than the whole file holds "
                                            f"({self.size}; jboat stores arrays uncompressed)")
            return
        need = max(s.nbytes for s in specs)
        if info.file_size > need + HEADER_LIMIT:
            raise fail(self.path, key, f"its archive entry declares {info.file_size} bytes, "
                                        f"the live variable it is written into needs {need}")


def read_meta(path: str | Path, iterations: int | None = None) -> dict:
    """The checkpoint's metadata (format, schema, next_iter, fingerprint), checked;
    ``next_iter`` at most ``iterations`` when given. Reads no array; the metadata may be
    as large as the file (or ``MARGIN``)."""
    with Archive(Path(path), iterations) as archive:
        return archive.meta


def array_members(value: Any, path: Path, out: set | None = None) -> set:
    """The array members a skeleton refers to (a schema-less load)."""
    out = set() if out is None else out
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            if not isinstance(value["__array__"], str):
                raise fail(path, "state", f"an array reference {short(value)} is damaged")
            out.add(value["__array__"])
        else:
            for v in value.values():
                array_members(v, path, out)
    elif isinstance(value, list):
        for v in value:
            array_members(v, path, out)
    return out
