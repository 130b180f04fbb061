"""Validated solver configuration (pydantic v2), from Python, JSON or TOML.

The shared solver settings are fields of ``SolverConfig``; every other top-level key must be
the config section of a registered operator of any kind (``"CG": {"k": 10, "tolerance":
1e-10}``), which is validated by that operator's own ``config_model``. This is the upstream
``boat_config`` JSON shape; the upstream-only keys are accepted as documented in
``COMPAT_KEYS``. Errors come out as ``ConfigError`` with one ``loc: message`` line each.
Never imports Jittor.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import ChainError, ConfigError, UnknownOperatorError
from ..contract.kinds import KINDS
from ..contract.metadata import split_names
from .ordering import kind_of_name, validate_composition
from .presets import expand as expand_preset
from .registry import Registry, get_registry
from ..contract.sections import error_lines, validate_section, validate_strict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["COMPAT_KEYS", "SolverConfig", "error_lines", "load_solver_config",
           "parse_solver_config", "read_config_file"]


def _name_list(value: Any) -> Any:
    return split_names(value) if isinstance(value, str) else value


#: Keys that upstream configs (JBOAT / BOAT) carry and jboat accepts for compatibility,
#: with what jboat does with each (``jboat show-config-keys`` prints this table).
COMPAT_KEYS: dict[str, str] = {
    "loss_log_path": "jboat.Problem (the upstream API) writes its loss history there on "
                     "save_losses()/plot_losses(); jboat_core.Problem ignores it",
    "device": "ignored: Jittor chooses the device (jt.flags.use_cuda)",
    "cuda": "ignored (a dead key upstream too)",
    "fogm_batch_input": "Jittor upstream: with fo_op, feeds are lists of batches; jboat "
                        "treats it as accumulate_grad (the batches' directions are averaged)",
    "fo_ol_batch_input": "torch upstream spelling of fogm_batch_input; same meaning",
}


class SolverConfig(BaseModel):
    """Shared solver settings plus one validated section per operator.

    Attributes
    ----------
    gm_op : list of str
        Lower-level dynamics operators (default ``["NGD"]``, none with ``fo_op``).
    na_op : list of str
        Hyper-gradient operators, any order (executed in stage order).
    fo_op : list of str
        A first-order solver (one name, or a one-element list as upstream spells it);
        it replaces ``gm_op`` and ``na_op``.
    lower_iters : int
        Number K of lower-level steps per outer iteration.
    return_grad : bool
        ``Problem.run_iter`` returns the hyper-gradients instead of updating x.
    accumulate_grad : bool
        Feeds are lists of task batches; hyper-gradients are accumulated over them.
    copy_last_param : bool
        Warm start: y_0 of the next outer iteration is y_K of this one.
    checkpoint_every : int or "sqrt"
        Checkpointed reverse mode for the unrolled chains (``jboat_core.numerics.tape``).
    operators : dict
        Validated operator sections, keyed by canonical operator name.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    gm_op: list[str] | None = None
    na_op: list[str] | None = None
    fo_op: list[str] | None = Field(None, description="a first-order solver, instead of "
                                    "gm_op + na_op")
    lower_iters: int = Field(10, ge=1)
    return_grad: bool = False
    accumulate_grad: bool = False
    copy_last_param: bool = True
    checkpoint_every: int | Literal["sqrt"] = Field(
        0, description="unrolled chains (RAD, PTT, RGT, IAD, DI): keep only every s-th inner "
        "state and recompute each segment in the reverse pass, memory O(K/s + s) instead of "
        "O(K) at about one more forward pass; \"sqrt\": s = ceil(sqrt(lower_iters)); 0: "
        "the whole trajectory", union_mode="left_to_right")
    check_finite: bool = Field(True, description="check every iteration's results, losses "
                               "and operator states for NaN/Inf before anything is updated "
                               "(one reduction per tensor, read with the results)")
    accumulate_mode: Literal["mean", "sum"] = Field(
        "mean", description="how accumulate_grad combines the tasks' hyper-gradients "
        "(upstream summed them)")
    loss_log_path: str | None = Field(None, description=COMPAT_KEYS["loss_log_path"])
    device: str | None = Field(None, description=COMPAT_KEYS["device"])
    cuda: bool | None = Field(None, description=COMPAT_KEYS["cuda"])
    fogm_batch_input: bool | None = Field(None, description=COMPAT_KEYS["fogm_batch_input"])
    fo_ol_batch_input: bool | None = Field(None, description=COMPAT_KEYS["fo_ol_batch_input"])
    preset: str | None = Field(None, description="the named preset this config started from "
                               "(`jboat list-presets`); its keys are laid under this config's")
    operators: dict[str, Any] = Field(default_factory=dict)

    @field_validator("checkpoint_every", mode="before")
    @classmethod
    def _segment(cls, value):
        ok = value == "sqrt" or (isinstance(value, int) and not isinstance(value, bool)
                                 and value >= 0)
        if not ok:
            raise ValueError(f"{value!r}: give a segment length >= 1, \"sqrt\", or 0 (off)")
        return value

    @field_validator("gm_op", "na_op", "fo_op", mode="before")
    @classmethod
    def _names(cls, value):
        return _name_list(value)

    @property
    def uses_solver(self) -> bool:
        """True when a first-order (or stochastic) solver, ``fo_op``, replaces the dynamics
        and hyper-gradient chains."""
        return bool(self.fo_op)

    @property
    def first_order(self) -> bool:
        """Deprecated name of ``uses_solver`` (``first_order`` names a kind and FOA's
        flag); goes in jboat 0.3."""
        warnings.warn("SolverConfig.first_order is now SolverConfig.uses_solver; the old name "
                      "goes in jboat 0.3", DeprecationWarning, stacklevel=2)
        return self.uses_solver

    def composition(self) -> list[str]:
        """Every chosen operator, dynamics first."""
        return [*self.gm_op, *self.na_op, *self.fo_op]


_SHARED = set(SolverConfig.model_fields) - {"operators"}


def parse_solver_config(data: Mapping[str, Any], registry: Registry | None = None,
                        source: str | None = None) -> SolverConfig:
    """Validate a solver config mapping; raise ``ConfigError`` with ``loc: message`` lines.

    Every top-level key is a shared setting (including the upstream compatibility keys of
    ``COMPAT_KEYS``) or the section of a registered operator, validated by that
    operator's own model whether or not the operator is chosen; anything else is an
    error. Runtime objects of the upstream shape (models, optimizers, variables,
    objectives) are not part of the file config; pass them to ``Problem``.
    """
    reg = registry or get_registry()
    if not isinstance(data, Mapping):
        raise ConfigError([f"(top level): expected a table of settings, got "
                           f"{type(data).__name__}"], source)
    data = expand_preset(data, reg, source)
    shared, sections, lines = {}, {}, []
    for key, value in data.items():
        if key in _SHARED:
            shared[key] = value
            continue
        try:
            rec = reg.get(key)
        except UnknownOperatorError:
            lines.append(f"{key}: unknown key: neither a solver setting "
                         f"({', '.join(sorted(_SHARED))}) nor a registered operator "
                         f"({', '.join(reg.names())})")
            continue
        try:
            sections[rec.name] = validate_section(rec.cls, value)
        except ConfigError as exc:
            lines += exc.lines
    try:
        cfg = validate_strict(SolverConfig, shared)
    except ConfigError as exc:
        lines = exc.lines + lines
        cfg = None
    if lines:
        raise ConfigError(lines, source)
    for rec in reg.records():
        sections.setdefault(rec.name, validate_section(rec.cls, None))
    cfg.operators = sections
    _compose(cfg, reg, source)
    problems = []
    for name in cfg.composition():
        rec = reg.get(name)
        problems += [f"{rec.name}.{p}" for p in rec.cls.check_solver(cfg.operators[rec.name], cfg)]
    problems += _dynamics_problems(cfg, reg)
    if problems:
        raise ConfigError(problems, source)
    return cfg


def _dynamics_problems(cfg: SolverConfig, reg: Registry) -> list[str]:
    """What the chain asks of the inner loop (checkpointed reverse mode, forward-mode
    tangents) must be something the composition's dynamics declare they do."""
    if cfg.fo_op:
        return []
    from ..contract.protocol import DynamicsPlan

    plan = DynamicsPlan()
    for name in cfg.na_op:
        rec = reg.get(name)
        plan = rec.cls.configure_dynamics(plan, cfg.operators[rec.name])
    loops = [reg.get(n) for n in cfg.gm_op]
    names = ", ".join(f"{r.name} ({r.origin.distribution})" for r in loops)
    problems = []
    if cfg.checkpoint_every and plan.track and not any(
            r.cls.supports_checkpointing for r in loops):
        problems.append(f"checkpoint_every: the dynamics {names} do not declare "
                        "supports_checkpointing (their inner loop keeps its own trajectory); "
                        "use NGD or drop checkpoint_every")
    if plan.forward_mode and not any(r.cls.supports_forward_mode for r in loops):
        problems.append(f"gm_op: forward mode (FMD) needs dynamics that carry tangents; "
                        f"{names} do not declare supports_forward_mode: use NGD")
    return problems


def _compose(cfg: SolverConfig, reg: Registry, source) -> None:
    """Order and validate the composition in place (``ConfigError`` naming the key)."""
    if cfg.fo_op and cfg.gm_op is None and cfg.na_op is None:
        cfg.gm_op, cfg.na_op = [], []
    if cfg.fogm_batch_input or cfg.fo_ol_batch_input:
        cfg.accumulate_grad = True
    if not cfg.fo_op:
        cfg.gm_op = ["NGD"] if cfg.gm_op is None else cfg.gm_op
        if cfg.na_op is None:
            raise ConfigError(["na_op: required: choose hyper-gradient operators (e.g. "
                               "[\"RAD\"]) or a first-order solver with fo_op"], source)
    try:
        cfg.gm_op, cfg.na_op, cfg.fo_op = validate_composition(
            cfg.gm_op, cfg.na_op or [], registry=reg, fo_op=cfg.fo_op or [])
    except ChainError as exc:
        kind = exc.kind or kind_of_name(exc.operator, reg)
        key = KINDS[kind].config_key if kind in KINDS else "gm_op/na_op"
        if exc.rule in ("requires", "conflicts", "first-order-alone"):
            key = "gm_op/na_op/fo_op" if exc.rule == "first-order-alone" else "gm_op/na_op"
        raise ConfigError([f"{key}: {exc}"], source) from None


#: Largest config file read (bytes) and deepest nesting of tables and arrays accepted.
MAX_CONFIG_BYTES = 16 * 2**20
MAX_CONFIG_DEPTH = 64


def _read_regular(p: Path) -> bytes:
    """The bytes of a regular file, refusing FIFOs, devices and folders before reading
    (opened non-blocking, so a FIFO cannot hang the open)."""
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError([f"cannot read {p}: {exc.strerror or exc}"], str(p)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ConfigError([f"{p} is not a regular file (a folder, FIFO or device); give "
                           "a TOML or JSON file"], str(p))
    with os.fdopen(fd, "rb") as fh:
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError([f"{p.name} is {info.st_size} bytes, more than a config file "
                               f"may be ({MAX_CONFIG_BYTES})"], str(p))
        try:
            return fh.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError([f"cannot read {p}: {exc.strerror or exc}"], str(p)) from None


def _too_deep(value: Any, limit: int) -> str | None:
    """The key path of the first table or array nested deeper than ``limit`` (iterative:
    no recursion on hostile input), or None."""
    stack = [(value, "(top level)", 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > limit:
            return where if len(where) <= 60 else where[:57] + "..."
        children = item.items() if isinstance(item, dict) else (
            enumerate(item) if isinstance(item, list) else ())
        for key, child in children:
            if isinstance(child, (dict, list)):
                label = f"{where}[{key}]" if isinstance(key, int) else (
                    key if where == "(top level)" else f"{where}.{key}")
                stack.append((child, label, depth + 1))
    return None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``.toml`` or ``.json`` file into a dict (``ConfigError`` if unreadable).

    Only a regular file of at most ``MAX_CONFIG_BYTES`` is read (a FIFO or ``/dev/zero``
    is refused before reading); a UTF-8 byte-order mark is accepted; tables and arrays
    nested deeper than ``MAX_CONFIG_DEPTH`` are refused."""
    p = Path(path)
    raw = _read_regular(p)
    try:
        text = raw.decode("utf-8-sig")  # a leading BOM (Windows editors) is dropped
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{p.name}: not UTF-8 text (byte {exc.start}): save it as UTF-8 "
                           "TOML or JSON"], str(p)) from None
    kind = "JSON" if p.suffix.lower() == ".json" else "TOML"
    try:
        data = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"{p.name}: not valid {kind}: {exc}"], str(p)) from None
    except RecursionError:
        data = None
    where = _too_deep(data, MAX_CONFIG_DEPTH) if data is not None else "(top level)"
    if where is not None:
        raise ConfigError([f"{where}: tables or arrays nested more than {MAX_CONFIG_DEPTH} "
                           f"deep; a {kind} config does not need that"], str(p))
    return data


def load_solver_config(path: str | Path, registry: Registry | None = None) -> SolverConfig:
    """Read and validate a solver config file. A ``[solver]`` table (as in ``jboat run``
    task files) or a ``boat_config`` object is used when present, else the whole file."""
    data = read_config_file(path)
    if not isinstance(data, Mapping):
        raise ConfigError([f"(top level): expected a table of settings, got "
                           f"{type(data).__name__}"], str(path))
    for key in ("solver", "boat_config"):
        if isinstance(data.get(key), Mapping):
            data = data[key]
            break
    return parse_solver_config(data, registry, source=str(path))
