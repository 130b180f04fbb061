"""The schema of a problem's live state: what a checkpoint must look like to be loaded
into it (array shapes and dtypes, plain values of a kind, values the task file decides).
``Problem.state_schema`` builds one; ``jboat_core.run.checkpoint`` checks a file against
it before anything is restored. NumPy only; no Jittor."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ArraySpec:
    """An array of exactly this shape and dtype (a live variable's)."""

    shape: tuple
    dtype: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def __str__(self) -> str:
        return f"{list(self.shape)} {np.dtype(self.dtype).name}"


@dataclass(frozen=True)
class Equal:
    """A plain value that must equal the live one: the task file decides it, never the
    checkpoint (an optimizer's learning rate, momentum...)."""

    value: Any
    source: str = "the task file"


@dataclass(frozen=True)
class Plain:
    """A plain value of a kind: ``"count"`` (int >= 0), ``"number"`` (finite),
    ``"positive"`` (finite > 0), ``"text"``, ``"bool"``, ``"any"`` (JSON scalars)."""

    kind: str


@dataclass(frozen=True)
class ListsLike:
    """A table of named lists of arrays (an operator's state), each list shaped like one
    of ``options`` (e.g. the lower or the upper variables)."""

    options: dict


PLAIN_KINDS = {
    "count": (lambda v: type(v) is int and v >= 0, "a whole number >= 0"),
    "number": (lambda v: type(v) in (int, float) and math.isfinite(v), "a finite number"),
    "positive": (lambda v: type(v) in (int, float) and math.isfinite(v) and v > 0,
                 "a finite number > 0"),
    "text": (lambda v: isinstance(v, str), "text"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "any": (lambda v: v is None or isinstance(v, (bool, int, float, str)), "a plain value"),
}


def schema_of(value: Any) -> Any:
    """The schema a live state implies: arrays of its shapes and dtypes, the same keys
    and list lengths, plain values of the same kind."""
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


