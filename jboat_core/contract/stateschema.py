"""The schema of a problem's live state: what a checkpoint must look like to be loaded
into it (array shapes and dtypes, plain values of a kind, values the task file decides).
``Problem.state_schema`` builds one; ``jboat_core.run.checkpoint`` checks a file against
it before anything is restored.

An operator's memory is described by the operator itself: by its live memory when it has
one (``schema_of`` of its arrays), else by ``cls.memory_schema(lower, upper)`` (SABA's
SAGA tables: one row per block, ``Rows``), else as lists shaped like the lower or the
upper variables (``ListsLike``). Numbers are bounded: a count is a whole number from 0
to ``COUNT_LIMIT`` (2**53, exact in float64), a number a finite float. NumPy is imported
only when an array is described (importing this module does not import it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Largest whole number a checkpoint's count may hold (exact in float64 and int64).
COUNT_LIMIT = 2**53


def _dtype(name: str):
    import numpy as np
    return np.dtype(name)


@dataclass(frozen=True)
class ArraySpec:
    """An array of exactly this shape and dtype (a live variable's)."""

    shape: tuple
    dtype: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * _dtype(self.dtype).itemsize

    def __str__(self) -> str:
        return f"{list(self.shape)} {_dtype(self.dtype).name}"


@dataclass(frozen=True)
class Rows:
    """An array of ``m`` rows shaped like ``spec`` (shape ``(m, *spec.shape)``, its dtype),
    ``m >= 1`` the same for every ``Rows`` of one ``group`` in a checkpoint (SABA's
    tables: one row per block of a level's examples). The size of such an array is not
    known before the data is seen: its archive entry is bounded by the checkpoint file."""

    spec: ArraySpec
    group: str

    def __str__(self) -> str:
        return f"[m, {', '.join(map(str, self.spec.shape))}] {_dtype(self.spec.dtype).name}"


@dataclass(frozen=True)
class Equal:
    """A plain value that must equal the live one: the task file decides it, never the
    checkpoint (an optimizer's learning rate, momentum...)."""

    value: Any
    source: str = "the task file"


@dataclass(frozen=True)
class Plain:
    """A plain value of a kind: ``"count"`` (a whole number from 0 to ``COUNT_LIMIT``),
    ``"number"`` (finite), ``"positive"`` (finite > 0), ``"text"``, ``"bool"``, ``"any"``
    (JSON scalars)."""

    kind: str


@dataclass(frozen=True)
class ListsLike:
    """A table of named lists of arrays (an operator's state), each list shaped like one
    of ``options`` (e.g. the lower or the upper variables)."""

    options: dict


@dataclass(frozen=True)
class OrEmpty:
    """``schema``, or an empty table (an operator that has not run yet: no state)."""

    schema: Any


def _number(v: Any) -> bool:
    if type(v) is int:
        return abs(v) <= COUNT_LIMIT
    return type(v) is float and math.isfinite(v)


PLAIN_KINDS = {
    "count": (lambda v: type(v) is int and 0 <= v <= COUNT_LIMIT,
              "a whole number from 0 to 2**53"),
    "number": (_number, "a finite number (a whole one at most 2**53 in size)"),
    "positive": (lambda v: _number(v) and v > 0, "a finite number > 0"),
    "text": (lambda v: isinstance(v, str), "text"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "any": (lambda v: v is None or isinstance(v, (bool, str)) or _number(v),
            "a plain value"),
}


def schema_of(value: Any) -> Any:
    """The schema a live state implies: arrays of its shapes and dtypes, the same keys
    and list lengths, plain values of the same kind."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return ArraySpec(tuple(int(n) for n in value.shape), value.dtype.str)
    if isinstance(value, dict):
        return {str(k): schema_of(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [schema_of(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return Plain("bool")
    if isinstance(value, int):
        return Plain("count") if value >= 0 else Plain("number")
    if isinstance(value, float):
        return Plain("number")
    if isinstance(value, str):
        return Plain("text")
    return Equal(value)


def mismatch(value: Any, schema: Any, key: str = "state", rows: dict | None = None) -> str | None:
    """Where a live-format state (NumPy arrays, lists, tables, plain values) does not fit
    ``schema``: ``"KEY: what"``, or None when it fits (what ``jboat run --resume`` would
    accept; the conformance kit checks an operator's checkpoint with it)."""
    import numpy as np

    rows = {} if rows is None else rows
    if isinstance(schema, OrEmpty):
        return None if value == {} else mismatch(value, schema.schema, key, rows)
    if isinstance(schema, (ArraySpec, Rows)):
        return _array_mismatch(value, (schema,), key, rows)
    if isinstance(schema, ListsLike):
        if not isinstance(value, dict):
            return f"{key}: expected a table of lists, found {type(value).__name__}"
        for name, arrays in value.items():
            options = [s for s in schema.options.values() if len(s) == len(arrays)]
            if not options:
                return (f"{key}.{name}: {len(arrays)} arrays, not shaped like any of "
                        f"{', '.join(schema.options)} (declare state_schema)")
            for i, item in enumerate(arrays):
                why = _array_mismatch(item, tuple({s[i] for s in options}), f"{key}.{name}[{i}]",
                                      rows)
                if why:
                    return why
        return None
    if isinstance(schema, dict):
        if not isinstance(value, dict) or set(value) != set(schema):
            have = sorted(value) if isinstance(value, dict) else type(value).__name__
            return f"{key}: keys {have}, the schema has {sorted(schema)}"
        return next((w for k in schema if (w := mismatch(value[k], schema[k], f"{key}.{k}",
                                                          rows))), None)
    if isinstance(schema, list):
        if not isinstance(value, (list, tuple)) or len(value) != len(schema):
            return f"{key}: expected a list of {len(schema)}"
        return next((w for i, (v, s) in enumerate(zip(value, schema))
                     if (w := mismatch(v, s, f"{key}[{i}]", rows))), None)
    if isinstance(schema, Equal):
        return None if value == schema.value else f"{key}: {value!r} != {schema.value!r}"
    ok, what = PLAIN_KINDS[schema.kind]
    plain = value.item() if isinstance(value, np.generic) else value
    return None if ok(plain) else f"{key}: {value!r} is not {what}"


def _array_mismatch(value: Any, specs: tuple, key: str, rows: dict) -> str | None:
    import numpy as np

    if not isinstance(value, np.ndarray):
        return f"{key}: expected an array, found {type(value).__name__}"
    shape, dtype = tuple(value.shape), value.dtype
    for spec in specs:
        if isinstance(spec, Rows):
            inner = spec.spec
            if (shape[1:] == inner.shape and len(shape) == len(inner.shape) + 1
                    and shape[0] >= 1 and dtype == _dtype(inner.dtype)
                    and rows.setdefault(spec.group, shape[0]) == shape[0]):
                return None
        elif shape == spec.shape and dtype == _dtype(spec.dtype):
            return None
    return (f"{key}: shape {list(shape)} {dtype.name}, the schema says "
            + " or ".join(str(s) for s in specs))
