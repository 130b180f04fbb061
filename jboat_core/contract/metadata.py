"""Operator metadata: what every operator class declares, and its validation.

Metadata is declared as class attributes on the abstract bases (``HyperGradient``,
``DynamicalSystem``, ``FirstOrderSolver``) and overridden by each concrete operator; the
registry validates it when a plugin registers the class, so nothing is ever probed with
``hasattr``. The kinds and their stages are data (``jboat_core.contract.kinds.KINDS``).
"""

from __future__ import annotations

import inspect
import re
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from ..errors import MetadataError

#: What a terminal operator may declare it computes (``approximates``), each checked by
#: the conformance kit against an exact float64 reference on the ridge problem of
#: ``jboat_core.testing.problems``: ``"unrolled"``: dF(x, y_K(x))/dx through the K inner
#: steps; ``"implicit"``: the implicit-function-theorem hyper-gradient at the lower point
#: y_K; ``"initialisation"``: dF(y_K)/dy_0 (MAML).
APPROXIMATIONS: tuple[str, ...] = ("unrolled", "implicit", "initialisation")

#: Chain roles. ``modifier``: must be followed by another operator of its chain;
#: ``terminal``: must be the last of its chain; ``either``: may end the chain or be followed
#: by an operator of one of the stages listed in ``followed_by``.
ROLES: tuple[str, ...] = ("modifier", "terminal", "either")

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class EmptyConfig(BaseModel):
    """Configuration of an operator that has no settings."""

    model_config = ConfigDict(extra="forbid")


class OperatorMeta:
    """Class attributes every operator declares (mixed into the abstract bases).

    Attributes
    ----------
    name : str
        Unique operator name, also the key of its config section (``"CG"``).
    kind : str
        A key of ``jboat_core.contract.kinds.KINDS``; set by the abstract base.
    stage : str
        One of the kind's stages; decides where the operator runs in a chain (the
        default execution order is stage rank, then ``order``, then name).
    order : int
        Rank inside its stage (lower runs first); ties broken by name.
    role : str
        One of ``ROLES``.
    followed_by : tuple of str
        For ``role="either"``: the stages that may follow it.
    needs_trajectory : bool
        True when the operator differentiates through the unrolled lower-level trajectory
        (the dynamics then keep every snapshot, memory O(K)).
    requires_any : tuple of str
        The composition must also contain at least one of these operators (either chain).
    conflicts : tuple of str
        Operators that may not appear in the same composition (either chain).
    keeps_initialisation : bool
        True when the operator differentiates with respect to the initialisation y_0
        (meta-learning, e.g. IAD): the solver then never warm-starts y_0 with y_K
        (``copy_last_param`` is ignored).
    approximates : str
        What the operator's result equals under ``exact_settings`` (one of
        ``APPROXIMATIONS``, or "" for no claim): the conformance kit then checks it against
        the exact reference (a sign-flipped or scaled hyper-gradient fails).
    exact_settings : dict
        Solver settings (``lower_iters``...) and settings of the operator's own section
        under which the conformance kit's correctness check holds (NS: enough terms);
        the kit also reads ``rtol`` (its tolerance, for a method approximate by design)
        and, for solvers, ``iterations`` (outer iterations before the check).
    unchecked : str
        Why the conformance kit cannot check the operator's math ("" by default: it is
        checked, every kind; see ``jboat_core.testing.correctness``). Non-empty, the
        correctness check is a pytest skip showing this reason.
    state_per_rank : bool
        True when the state kept across iterations differs per MPI process (SABA's tables
        of its shard): checkpoints under ``mpirun`` are then refused (they hold rank 0's).
    requires_runtime : tuple of str
        Runtime objects of the solver config the operator cannot run without (e.g. GDA:
        ``("gda_loss",)``); the solver refuses to build without them.
    differentiable : bool
        Dynamics only: whether unrolled chains (RAD, FMD, PTT) can differentiate through
        its iterates (default True). False for a lower level solved outside the graph
        (SOLVED: the user's solver): only implicit operators follow it, and the
        conformance kit checks it with an implicit chain against central differences.
    config_model : type of pydantic.BaseModel
        Model of the operator's config section; must forbid extra keys.
    summary, formula, reference : str
        One-line summary, the formula (plain text) and the paper.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    stage: ClassVar[str] = ""
    order: ClassVar[int] = 100
    role: ClassVar[str] = ""
    followed_by: ClassVar[tuple[str, ...]] = ()
    needs_trajectory: ClassVar[bool] = False
    requires_any: ClassVar[tuple[str, ...]] = ()
    conflicts: ClassVar[tuple[str, ...]] = ()
    keeps_initialisation: ClassVar[bool] = False
    requires_runtime: ClassVar[tuple[str, ...]] = ()
    differentiable: ClassVar[bool] = True
    config_model: ClassVar[type[BaseModel]] = EmptyConfig
    approximates: ClassVar[str] = ""
    exact_settings: ClassVar[dict] = {}
    unchecked: ClassVar[str] = ""
    state_per_rank: ClassVar[bool] = False
    summary: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    reference: ClassVar[str] = ""


def metadata_problems(cls: type, kind) -> list[str]:
    """Return the list of problems with ``cls``'s declared metadata (empty when valid).

    Parameters
    ----------
    cls : type
    kind : jboat_core.contract.kinds.Kind
        The kind it is registered as.
    """
    base, stages = kind.base, kind.stages
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        return [f"{cls!r} is not a subclass of {base.__module__}.{base.__qualname__}"]
    problems = []
    missing = sorted(set(getattr(cls, "__abstractmethods__", ())) - {"step"})
    if missing:  # a missing step is the registry's check (check_api), with API 1 in mind
        problems.append(f"class is abstract: implement {', '.join(missing)}")
    if not (isinstance(cls.name, str) and _NAME_RE.match(cls.name)):
        problems.append(f"name={cls.name!r}: declare a name of letters, digits and '_' "
                        "starting with a letter")
    if cls.stage not in stages:
        problems.append(f"stage={cls.stage!r}: declare one of {', '.join(stages)}")
    if cls.role not in ROLES:
        problems.append(f"role={cls.role!r}: declare one of {', '.join(ROLES)}")
    if not isinstance(cls.order, int) or isinstance(cls.order, bool):
        problems.append(f"order={cls.order!r}: declare an int")
    bad_follow = [s for s in cls.followed_by if s not in stages]
    if bad_follow:
        problems.append(f"followed_by={cls.followed_by!r}: unknown stage(s) {bad_follow}")
    if cls.role == "either" and not cls.followed_by:
        problems.append("role='either' needs followed_by (the stages that may follow)")
    for attr in ("needs_trajectory", "keeps_initialisation"):
        if not isinstance(getattr(cls, attr), bool):
            problems.append(f"{attr}={getattr(cls, attr)!r}: declare True or False")
    for attr, what in (("requires_any", "operator names"), ("conflicts", "operator names"),
                       ("requires_runtime", "runtime config keys")):
        value = getattr(cls, attr)
        if not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
            problems.append(f"{attr}={value!r}: declare a tuple of {what}")
    if cls.approximates and cls.approximates not in APPROXIMATIONS:
        problems.append(f"approximates={cls.approximates!r}: declare one of "
                        f"{', '.join(APPROXIMATIONS)} (or leave it empty: no claim)")
    if not isinstance(cls.exact_settings, dict):
        problems.append(f"exact_settings={cls.exact_settings!r}: declare a dict of settings")
    if not isinstance(cls.unchecked, str):
        problems.append(f"unchecked={cls.unchecked!r}: declare a string (why the kit "
                        "cannot check the operator's math), or leave it empty")
    problems += _config_model_problems(cls.config_model)
    for attr in ("summary", "reference"):
        if not (isinstance(getattr(cls, attr), str) and getattr(cls, attr).strip()):
            problems.append(f"{attr} is empty: declare a non-empty string")
    return problems


def _config_model_problems(model) -> list[str]:
    if not (inspect.isclass(model) and issubclass(model, BaseModel)):
        return [f"config_model={model!r}: declare a pydantic BaseModel subclass"]
    if model.model_config.get("extra") != "forbid":
        return [f"config_model={model.__name__}: set model_config = "
                "ConfigDict(extra='forbid') so misspelt keys are errors"]
    try:
        model()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return [f"config_model={model.__name__}: every field needs a default ({exc})"]
    return []


def validate_metadata(cls: type, kind, origin: str) -> None:
    """Raise ``MetadataError`` naming ``origin`` (the plugin) if ``cls`` is invalid."""
    problems = metadata_problems(cls, kind)
    if problems:
        label = getattr(cls, "__qualname__", repr(cls))
        raise MetadataError(
            f"{kind.label} {label} from {origin} declares invalid metadata:\n"
            + "\n".join(f"  - {p}" for p in problems))


def describe_config(model: type[BaseModel]) -> list[tuple[str, str, object, str]]:
    """``(field, type, default, description)`` for every field of a config model; a
    ``Literal`` field's type lists its allowed values (``one of "s1", "s2", "s3"``)."""
    rows = []
    for fname, field in model.model_fields.items():
        rows.append((fname, _type_text(field.annotation), field.default,
                     field.description or ""))
    return rows


def _type_text(annotation) -> str:
    """A field's type as a reader wants it: allowed values spelled out for a Literal
    (also inside ``Optional``)."""
    import json
    import typing

    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(json.dumps(v) for v in typing.get_args(annotation))
    args = typing.get_args(annotation)
    if args and any(typing.get_origin(a) is typing.Literal for a in args):
        return " or ".join(_type_text(a) for a in args)
    name = getattr(annotation, "__name__", None) or str(annotation)
    return "None" if name == "NoneType" else name.replace("typing.", "")


def split_names(value) -> list[str]:
    """Operator names from a list or a string (``"PTT, RAD"`` or ``"PTT RAD"``)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return [str(v) for v in value]
