"""Checks of a checkpoint's contents before anything is used: the metadata (format,
schema, ``next_iter``, the history record; ``check_meta``) and the state's skeleton
walked along the live problem's schema (``StateChecker``), which collects the array
members to read and the shapes they must have. Errors are one line naming the file and
the key (``ckcommon.fail``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .archive import FORMAT, MAX_DEPTH, SCHEMA, normal
from .ckcommon import AFRESH, CheckpointError, fail, short
from .history import HISTORY
from .task import MAX_ITERATIONS
from ..contract.stateschema import (COUNT_LIMIT, PLAIN_KINDS, ArraySpec, Equal, ListsLike,
                                    OrEmpty, Rows)


class StateChecker:
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
                raise fail(self.path, key, f"expected a list of {len(schema)}, found "
                                            f"{_kind(value)}")
            if len(value) != len(schema):
                raise fail(self.path, key, f"{len(value)} entries, this problem has "
                                            f"{len(schema)}")
            for i, (v, s) in enumerate(zip(value, schema)):
                self.walk(v, s, f"{key}[{i}]")
        elif isinstance(schema, Equal):
            self.equal(value, schema, key)
        else:
            ok, what = PLAIN_KINDS[schema.kind]
            if not ok(_plain_value(value)):
                raise fail(self.path, key, f"{short(value)} is not {what}")

    def table(self, value: Any, schema: dict, key: str) -> None:
        if not isinstance(value, dict) or _marker(value):
            raise fail(self.path, key or "state", f"expected a table, found {_kind(value)}")
        missing, extra = sorted(set(schema) - set(value)), sorted(set(value) - set(schema))
        if missing:
            raise fail(self.path, _join(key, missing[0]), "missing (this problem has it)")
        if extra:
            raise fail(self.path, _join(key, extra[0]), "not part of this problem's state")
        for name, sub in schema.items():
            self.walk(value[name], sub, _join(key, name))

    def equal(self, value: Any, schema: Equal, key: str) -> None:
        saved = _plain_value(value)
        if normal(saved) != normal(schema.value):
            raise fail(self.path, key, f"the checkpoint has {short(saved)}, "
                                        f"{schema.source} gives {short(schema.value)}",
                        f"{schema.source} decides it, never a checkpoint (this one was "
                        "changed after it was written?): restore it, or start afresh with "
                        "--overwrite")

    def lists(self, value: Any, schema: ListsLike, key: str) -> None:
        if not isinstance(value, dict) or _marker(value):
            raise fail(self.path, key, f"expected a table of lists, found {_kind(value)}")
        for name, arrays in value.items():
            where = _join(key, name)
            if not isinstance(arrays, list):
                raise fail(self.path, where, f"expected a list of arrays, found "
                                              f"{_kind(arrays)}")
            options = [specs for specs in schema.options.values() if len(specs) == len(arrays)]
            if not options:
                like = " or ".join(f"{len(s)} ({n})" for n, s in schema.options.items())
                raise fail(self.path, where, f"{len(arrays)} arrays; an operator's state "
                                              f"lists are shaped like the {like}")
            for i, item in enumerate(arrays):
                self.array(item, tuple({specs[i] for specs in options}), f"{where}[{i}]")

    def array(self, value: Any, specs: tuple, key: str) -> None:
        member = value.get("__array__") if isinstance(value, dict) and set(value) == {
            "__array__"} else None
        if not isinstance(member, str):
            raise fail(self.path, key, f"expected an array ({specs[0]}), found "
                                        f"{_kind(value)}")
        if member in self.arrays:
            raise fail(self.path, key, f"refers to the array {member} of "
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
    return short(value)


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
        raise CheckpointError(f"checkpoint {path} has schema {short(schema)}{older}; this "
                              f"jboat reads schema {SCHEMA}: resume with the jboat version "
                              f"that wrote it, or {AFRESH}")
    it = meta.get("next_iter")
    if type(it) is not int:
        raise fail(path, "next_iter", f"{short(it)} is not a whole number of iterations")
    if it < 0:
        raise fail(path, "next_iter", f"{short(it)} is negative")
    if it > MAX_ITERATIONS:
        raise fail(path, "next_iter", f"{short(it)} is more iterations than a run can ask "
                                       f"for ({MAX_ITERATIONS})")
    if iterations is not None and it > iterations:
        raise fail(path, "next_iter", f"the checkpoint is at iteration {it}, past the "
                                       f"{iterations} iterations asked for",
                    "raise --iterations (or [task] iterations) to continue it")
    for key in ("fingerprint", "state"):
        if not isinstance(meta.get(key), dict):
            raise fail(path, key, f"expected a table, found {_kind(meta.get(key))}")
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
        raise fail(path, "history", f"expected a table of file, lines, bytes, sha256, "
                                     f"found {short(record)}")
    if record["file"] != HISTORY:
        raise fail(path, "history.file", f"{short(record['file'])}; jboat writes {HISTORY}")
    for key in ("lines", "bytes"):
        if type(record[key]) is not int or not 0 <= record[key] <= COUNT_LIMIT:
            raise fail(path, f"history.{key}", f"{short(record[key])} is not a whole "
                                                "number from 0 to 2**53")
    if record["lines"] != next_iter:
        raise fail(path, "history.lines", f"{record['lines']} lines for {next_iter} "
                                           "iterations: the checkpoint is inconsistent")
    sha = record["sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= set("0123456789abcdef")):
        raise fail(path, "history.sha256", f"{short(sha)} is not a SHA-256 digest")
