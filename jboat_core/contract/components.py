"""Components: named pieces an operator uses, found through entry points like operators.

Two kinds, each registered by a hook of its own (``jboat_core.contract.spec``) and listed
by ``jboat list-ops`` / described by ``jboat show-op``:

* ``LinearSolver`` (hook ``jboat_register_linear_solvers``): ``solve(matvec, b, *,
  rmatvec=None, maxiter, tol, **options) -> x`` for the implicit operators
  (``linear_solver = "gmres"`` in CG's or NS's section);
* ``ProxMap`` (hook ``jboat_register_prox_maps``): ``prox(z, t, **options) -> Var``, the
  proximal operator of t * g (or a projection, which ignores t), for PGD
  (``prox = "l1"``).

A component is declared data: its function is named ``"module:attr"`` (imported on first
use, so that listing never imports Jittor) or given as a callable. A third party adds one
with one hook and one entry point, as it adds an operator::

    from jboat_core.contract import LinearSolver, hookimpl

    JBOAT_API_VERSION = 2

    @hookimpl
    def jboat_register_linear_solvers(register):
        register(LinearSolver(name="my_solver", function="my_plugin.solve:solve_it",
                              summary="...", reference="..."))

Importing this module does not import Jittor.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import MetadataError, UnknownOperatorError

__all__ = ["COMPONENTS", "LinearSolver", "ProxMap", "find_component", "load_function"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def load_function(function, owner: str) -> Callable:
    """The callable ``function`` names (``"module:attr"``) or is."""
    if callable(function):
        return function
    module, _, attr = str(function).partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownOperatorError(f"{owner}: function {function!r} cannot be loaded "
                                   f"({type(exc).__name__}: {exc}); fix the declaration or "
                                   "reinstall its distribution") from exc


@dataclass(frozen=True)
class _Component:
    name: str
    function: Any
    summary: str
    reference: str
    formula: str = ""

    def problems(self) -> list[str]:
        """Declaration problems (empty when valid); checked at registration."""
        out = []
        if not (isinstance(self.name, str) and _NAME_RE.match(self.name)):
            out.append(f"name={self.name!r}: lower-case letters, digits and '_', starting "
                       "with a letter")
        if not (callable(self.function) or (isinstance(self.function, str)
                                            and ":" in self.function)):
            out.append(f"function={self.function!r}: a callable or 'module:attr'")
        for attr in ("summary", "reference"):
            if not (isinstance(getattr(self, attr), str) and getattr(self, attr).strip()):
                out.append(f"{attr} is empty")
        return out

    def load(self) -> Callable:
        """The function (imported on first use)."""
        return load_function(self.function, f"{self.kind} {self.name!r}")

    def as_dict(self) -> dict:
        fn = self.function if isinstance(self.function, str) else (
            f"{self.function.__module__}:{self.function.__qualname__}")
        extra = {k: (dict(v) if isinstance(v, Mapping) else v)
                 for k, v in self.__dict__.items()
                 if k not in ("name", "function", "summary", "reference", "formula")}
        return {"name": self.name, "kind": self.kind, "summary": self.summary,
                "formula": self.formula, "reference": self.reference, "function": fn, **extra}


@dataclass(frozen=True)
class LinearSolver(_Component):
    """A linear solver ``solve(matvec, b, *, rmatvec=None, maxiter=..., tol=..., **options)
    -> x`` for ``A x = b`` (``b``, ``x`` lists of Vars; ``matvec(v)`` = A v,
    ``rmatvec(u)`` = A^T u when the system provides it).

    Attributes
    ----------
    name, function, summary, reference, formula
        As every component (module docstring).
    requires_symmetric : bool
        The method is only correct for a symmetric A (CG, MINRES): an implicit operator
        refuses it, in one line, on a system declared non-symmetric.
    uses_transpose : bool
        The method calls ``rmatvec`` (normal-equation CG).
    """

    requires_symmetric: bool = False
    uses_transpose: bool = False
    kind = "linear_solver"


@dataclass(frozen=True)
class ProxMap(_Component):
    """A proximal operator or a projection ``prox(z, t, **options) -> Var``: the point
    argmin_u 1/2 ||u - z||^2 + t g(u) (a projection onto C ignores t), elementwise in
    ``t`` (a number, or a Var broadcast against ``z``: one weight per coordinate).

    Attributes
    ----------
    name, function, summary, reference, formula
        As every component (module docstring).
    projection : bool
        A projection onto a set (no penalty strength).
    symmetric_jacobian : bool
        d prox / d z is symmetric where it exists (every prox of a convex function is);
        the fixed point's system I - d_y T is still not symmetric in general.
    options : mapping
        Option name -> (default, description), e.g. ``{"radius": (1.0, "...")}``.
    """

    projection: bool = False
    symmetric_jacobian: bool = True
    options: Mapping = field(default_factory=dict)
    kind = "prox_map"


@dataclass(frozen=True)
class ComponentKind:
    """One component kind: its hook, its declaration class and how messages name it."""

    name: str
    hook: str
    cls: type
    label: str


#: The component kinds, as one table (registry, CLI and conformance iterate over it).
COMPONENTS: dict[str, ComponentKind] = {k.name: k for k in (
    ComponentKind("linear_solver", "jboat_register_linear_solvers", LinearSolver,
                  "linear solver"),
    ComponentKind("prox_map", "jboat_register_prox_maps", ProxMap, "prox map"),
)}


def validate_component(obj, kind: ComponentKind, origin: str) -> None:
    """Raise ``MetadataError`` naming ``origin`` if ``obj`` is not a valid declaration."""
    if not isinstance(obj, kind.cls):
        raise MetadataError(f"{origin}: {kind.hook} registered {obj!r}, not a "
                            f"jboat_core.contract.{kind.cls.__name__}")
    problems = obj.problems()
    if problems:
        raise MetadataError(f"{origin}: {kind.label} {obj.name!r} declares invalid data:\n"
                            + "\n".join(f"  - {p}" for p in problems))


#: Set by ``jboat_core.plugins.registry`` at import: ``() -> Registry``, the process-wide
#: registry (the contract does not import the registry).
DEFAULT_REGISTRY: Callable | None = None


def find_component(runtime, kind: str, name: str):
    """The declaration of component ``name`` of ``kind`` (``"linear_solver"``,
    ``"prox_map"``) in the runtime's registry (else the process-wide one)."""
    registry = getattr(runtime, "registry", None)
    if registry is None and DEFAULT_REGISTRY is not None:
        registry = DEFAULT_REGISTRY()
    if registry is None:
        raise UnknownOperatorError(f"no registry to find {COMPONENTS[kind].label} {name!r} in")
    return registry.component(kind, name)
