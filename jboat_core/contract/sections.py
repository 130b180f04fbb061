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
        return cls.config_model.model_validate(dict(section or {}))
    except ValidationError as exc:
        raise ConfigError(error_lines(exc, prefix=(cls.name,))) from None
    except (TypeError, ValueError):
        raise ConfigError([f"{cls.name}: expected a table of settings, got "
                           f"{type(section).__name__} {section!r}"]) from None
