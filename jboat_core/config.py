"""Validated solver configuration (pydantic v2), from Python, JSON or TOML.

The shared solver settings are fields of ``SolverConfig``; every other top-level key must be
the config section of a registered operator (``"CG": {"k": 10, "tolerance": 1e-10}``), which
is validated by that operator's own ``config_model``. This is the upstream ``boat_config``
JSON shape. Errors come out as ``ConfigError`` with one ``loc: message`` line each. Never
imports Jittor.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ChainError, ConfigError, UnknownOperatorError
from .hypergradient import validate_section
from .ordering import check_composition, validate_and_adjust_order
from .registry import Registry, get_registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def error_lines(exc: ValidationError, prefix: tuple = ()) -> list[str]:
    """``loc: message`` lines of a pydantic ``ValidationError``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (*prefix, *err["loc"])) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see `jboat show-op` for valid keys)"
        lines.append(f"{loc}: {msg}")
    return lines


def _name_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return value


class SolverConfig(BaseModel):
    """Shared solver settings plus one validated section per operator.

    Attributes
    ----------
    gm_op : list of str
        Lower-level dynamics operators (default ``["NGD"]``).
    na_op : list of str
        Hyper-gradient operators, any order (executed in stage order).
    lower_iters : int
        Number K of lower-level steps per outer iteration.
    return_grad : bool
        ``Problem.run_iter`` returns the hyper-gradients instead of updating x.
    accumulate_grad : bool
        Feeds are lists of task batches; hyper-gradients are accumulated over them.
    copy_last_param : bool
        Warm start: y_0 of the next outer iteration is y_K of this one.
    operators : dict
        Validated operator sections, keyed by canonical operator name.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    gm_op: list[str] = Field(default_factory=lambda: ["NGD"])
    na_op: list[str]
    fo_op: None = Field(None, description="first-order solvers are not part of jboat")
    lower_iters: int = Field(10, ge=1)
    return_grad: bool = False
    accumulate_grad: bool = False
    copy_last_param: bool = True
    accumulate_mode: Literal["mean", "sum"] = Field(
        "mean", description="how accumulate_grad combines the tasks' hyper-gradients "
        "(upstream summed them)")
    loss_log_path: str | None = Field(None, description="upstream key; accepted, unused")
    device: str | None = Field(None, description="upstream key; Jittor picks the device")
    cuda: bool | None = Field(None, description="upstream key; ignored")
    operators: dict[str, Any] = Field(default_factory=dict)

    @field_validator("gm_op", "na_op", mode="before")
    @classmethod
    def _names(cls, value):
        return _name_list(value)

    @field_validator("fo_op", mode="before")
    @classmethod
    def _no_fo(cls, value):
        if value not in (None, "", []):
            raise ValueError("first-order solvers (fo_op) are not provided by jboat; set "
                             "fo_op to null and compose gm_op/na_op operators instead")
        return None


def parse_solver_config(data: Mapping[str, Any], registry: Registry | None = None,
                        source: str | None = None) -> SolverConfig:
    """Validate a solver config mapping; raise ``ConfigError`` with ``loc: message`` lines.

    Runtime objects of the upstream shape (models, optimizers, variables, objectives) are
    not part of the file config; pass them to ``Problem``.
    """
    reg = registry or get_registry()
    if not isinstance(data, Mapping):
        raise ConfigError([f"(top level): expected a table of settings, got {type(data).__name__}"],
                          source)
    shared, sections, lines = {}, {}, []
    fields = set(SolverConfig.model_fields) - {"operators"}
    for key, value in data.items():
        if key in fields:
            shared[key] = value
            continue
        try:
            rec = reg.get(key)
        except UnknownOperatorError:
            lines.append(f"{key}: unknown key: neither a solver setting "
                         f"({', '.join(sorted(fields))}) nor a registered operator "
                         f"({', '.join(reg.names())})")
            continue
        try:
            sections[rec.name] = validate_section(rec.cls, value)
        except ConfigError as exc:
            lines += exc.lines
    try:
        cfg = SolverConfig.model_validate(shared)
    except ValidationError as exc:
        lines = error_lines(exc) + lines
        cfg = None
    if lines:
        raise ConfigError(lines, source)
    for rec in (reg.get(n) for n in reg.names()):
        sections.setdefault(rec.name, validate_section(rec.cls, None))
    cfg.operators = sections
    for key, kind in (("gm_op", "dynamics"), ("na_op", "hypergradient")):
        try:
            setattr(cfg, key, validate_and_adjust_order(getattr(cfg, key), kind=kind,
                                                        registry=reg))
        except ChainError as exc:
            raise ConfigError([f"{key}: {exc}"], source) from None
    try:
        check_composition([reg.get(n) for n in cfg.gm_op + cfg.na_op], reg)
    except ChainError as exc:
        raise ConfigError([f"gm_op/na_op: {exc}"], source) from None
    problems = []
    for name in cfg.gm_op + cfg.na_op:
        rec = reg.get(name)
        problems += [f"{rec.name}.{p}" for p in rec.cls.check_solver(cfg.operators[rec.name], cfg)]
    if problems:
        raise ConfigError(problems, source)
    return cfg


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``.toml`` or ``.json`` file into a dict (``ConfigError`` if unreadable)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read {p}: {exc.strerror}"], str(p)) from None
    try:
        if p.suffix.lower() == ".json":
            return json.loads(text)
        return tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"{p.name}: not valid {p.suffix.lstrip('.').upper() or 'TOML'}: "
                           f"{exc}"], str(p)) from None


def load_solver_config(path: str | Path, registry: Registry | None = None) -> SolverConfig:
    """Read and validate a solver config file. A ``[solver]`` table (as in ``jboat run``
    task files) or a ``boat_config`` object is used when present, else the whole file."""
    data = read_config_file(path)
    for key in ("solver", "boat_config"):
        if isinstance(data.get(key), Mapping):
            data = data[key]
            break
    return parse_solver_config(data, registry, source=str(path))
