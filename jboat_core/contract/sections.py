"""Operator config sections: lookup and validation with the operator's own pydantic model.

Shared by the operator bases and the solver config (no other jboat import but ``errors``,
so neither imports the other). Never imports Jittor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError


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


def bool_numbers(raw: Any, validated: Any, prefix: tuple = ()) -> list[str]:
    """``loc: message`` lines for every bool that validation turned into a number.

    pydantic's lax mode reads ``true`` as 1 (and 1.0) for an ``int`` or ``float`` field;
    a bool is not a number here (``batch_size = true`` is a mistake, not a batch of one).
    Compares the raw input with the validated model, nested models, lists and tables
    included, so every config model (an operator's own too) is covered. A field where
    upstream's bool does mean a number (VSO's ``reg_decay = true``) says so with
    ``Field(..., json_schema_extra={"bool_is_number": True})``.
    """
    if type(raw) is bool:
        if isinstance(validated, (int, float)) and type(validated) is not bool:
            loc = ".".join(map(str, prefix)) or "(top level)"
            word = "true" if raw else "false"
            return [f"{loc}: {word} is a bool, not a number; give a number (e.g. "
                    f"{int(raw)})"]
        return []
    if isinstance(raw, Mapping):
        if isinstance(validated, BaseModel):
            fields = type(validated).model_fields
            raw = {k: v for k, v in raw.items()
                   if not (k in fields and (fields[k].json_schema_extra or {}).get(
                       "bool_is_number"))}
            get = lambda k: getattr(validated, k, None) if k in fields else None  # noqa: E731
        elif isinstance(validated, Mapping):
            get = validated.get
        else:
            return []
        return [line for k, v in raw.items() for line in bool_numbers(v, get(k),
                                                                       (*prefix, k))]
    if isinstance(raw, (list, tuple)) and isinstance(validated, (list, tuple)) \
            and len(raw) == len(validated):
        return [line for i, (v, w) in enumerate(zip(raw, validated))
                for line in bool_numbers(v, w, (*prefix, i))]
    return []


def validate_strict(model: type[BaseModel], data: Any, prefix: tuple = ()) -> BaseModel:
    """``model.model_validate(data)``, with a bool given for a number an error too
    (``ConfigError`` of ``loc: message`` lines, pydantic's first)."""
    try:
        out = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(error_lines(exc, prefix)) from None
    lines = bool_numbers(data, out, prefix)
    if lines:
        raise ConfigError(lines)
    return out


def operator_section(solver_config: Any, name: str) -> Any:
    """The raw config section ``name`` of a solver config: a dict (upstream shape), a
    ``SolverConfig`` or a ``Runtime`` (anything with an ``operators`` mapping)."""
    if solver_config is None:
        return None
    if isinstance(solver_config, Mapping):
        return solver_config.get(name)
    sections = getattr(solver_config, "operators", None) or {}
    return sections.get(name)


def validate_section(cls, section: Any) -> BaseModel:
    """Validate one operator's config section with its own ``config_model``."""
    if isinstance(section, cls.config_model):
        return section
    if isinstance(section, BaseModel):
        section = section.model_dump()
    try:
        data = dict(section or {})
    except (TypeError, ValueError):
        raise ConfigError([f"{cls.name}: expected a table of settings, got "
                           f"{type(section).__name__} {section!r}"]) from None
    return validate_strict(cls.config_model, data, prefix=(cls.name,))
