"""What ``Problem`` returns: ``Evaluation`` (``Problem.evaluate``) and ``IterationRecord``
(``Problem.run_iter``, and what ``callback`` receives).

Both are typed and frozen, and read as the dicts ``Problem`` returned before 0.2
(``record["upper_loss"]``, ``"hyper_gradients" in record``, ``dict(record)``): the keys
are the ones listed in ``keys()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..contract.protocol import NO_MEMORY, OUTPUT_FIELDS, Result

__all__ = ["Evaluation", "IterationRecord"]


class _Keyed(Mapping):
    """Reads a frozen dataclass as a mapping of the names ``_keys()`` returns."""

    def _keys(self) -> tuple:
        raise NotImplementedError

    def __getitem__(self, key: str):
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


@dataclass(frozen=True, eq=False)
class Evaluation(_Keyed):
    """One outer iteration's results, computed and checked (``Problem.evaluate``; also
    ``IterationRecord.evaluation``).

    Attributes
    ----------
    result : Result
        The composition's typed result (the mean over tasks with ``accumulate_grad``, over
        processes under MPI): the Vars below, as the solver applies them.
    upper_loss : float
        F at the evaluated point.
    lower_loss : float or None
        f at the last inner step (or the first-order solver's own).
    iter : int
        The outer iteration.
    info : mapping
        The operator's plain data about the step (a stochastic solver's ``draws`` and
        oracle ``calls``).

    The Vars of ``result`` read as attributes and keys: ``hyper_gradients`` (one per
    ``ul_var``), ``ll_init_gradients`` (DI), ``ll_update`` and ``ll_gradients`` (DM,
    first-order solvers; one per lower variable); None when not computed.
    """

    result: Result
    upper_loss: float
    lower_loss: float | None
    iter: int = 0
    info: Mapping = field(default=NO_MEMORY)

    def _keys(self) -> tuple:
        return (*OUTPUT_FIELDS, "upper_loss", "lower_loss")

    def __getattr__(self, name: str) -> Any:
        if name in OUTPUT_FIELDS:
            return getattr(self.result, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


@dataclass(frozen=True, eq=False)
class IterationRecord(_Keyed):
    """One outer iteration that was applied (``Problem.run_iter``).

    Attributes
    ----------
    iter : int
    upper_loss, lower_loss : float (lower_loss may be None)
        As in ``evaluation``.
    time : float
        Seconds the iteration took.
    evaluation : Evaluation
        What was computed (its ``result`` is what the optimizers applied).
    return_grad : bool
        The solver config's ``return_grad``: the upper step was not taken and
        ``hyper_gradients`` are this iteration's, for the caller to apply.

    Keys: ``iter``, ``upper_loss``, ``lower_loss``, ``time``, and ``hyper_gradients``
    with ``return_grad``. The history (``Problem.history``) keeps these without the
    gradients, as plain dicts.
    """

    iter: int
    upper_loss: float
    lower_loss: float | None
    time: float
    evaluation: Evaluation
    return_grad: bool = False

    def _keys(self) -> tuple:
        base = ("iter", "upper_loss", "lower_loss", "time")
        return (*base, "hyper_gradients") if self.return_grad else base

    @property
    def hyper_gradients(self) -> list:
        """This iteration's hyper-gradients (one per ``ul_var``)."""
        return self.evaluation.result.hyper_gradients

    @property
    def info(self) -> Mapping:
        """The operator's plain data about the step (``Evaluation.info``)."""
        return self.evaluation.info

    def history_entry(self) -> dict:
        """The plain entry ``Problem.history`` keeps (JSON-ready)."""
        return {"iter": self.iter, "upper_loss": self.upper_loss,
                "lower_loss": self.lower_loss, "time": self.time}
