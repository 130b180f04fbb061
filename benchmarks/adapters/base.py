"""The interface every adapter returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class Bench:
    """Callables of one configuration; each returns host (NumPy) data, i.e. ends synced.

    Attributes
    ----------
    step : callable
        ``step(K) -> ndarray``: one hyper-iteration with K inner steps (the chain's
        hyper-gradient, flattened).
    grad_unit : callable
        One gradient of f with respect to y at y_0.
    hvp_unit : callable
        One Hessian-vector product of f at y_0.
    info : dict
        Framework versions and settings.
    """

    step: Callable
    grad_unit: Callable
    hvp_unit: Callable
    info: dict
