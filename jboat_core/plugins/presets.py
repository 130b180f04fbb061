"""Named presets: the classical bilevel algorithms as solver configs.

A preset is data a plugin declares through the ``jboat_register_presets(register)`` hook
(jboat's own come from ``jboat_ops.presets`` through the same entry-point group). A solver
config that says ``preset = "BDA"`` is the preset's config with the config's other keys
laid over it: a shared setting replaces the preset's, an operator section is merged key by
key (``preset = "AID-CG"`` with ``CG = {k = 50}`` keeps the preset's other CG settings).
The expanded config is validated like any other. Never imports Jittor.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, MetadataError

from ..contract.preset import PRESET_KEYS, Preset

__all__ = ["PRESET_KEYS", "Preset", "expand", "validate_preset"]


def validate_preset(preset, origin: str) -> None:
    """Raise ``MetadataError`` naming ``origin`` if ``preset`` is not a valid ``Preset``."""
    if not isinstance(preset, Preset):
        raise MetadataError(f"preset {preset!r} from {origin} is not a jboat_core.contract.Preset")
    problems = preset.problems()
    if problems:
        raise MetadataError(f"preset {preset.name!r} from {origin} declares invalid data:\n"
                            + "\n".join(f"  - {p}" for p in problems))


def expand(data: Mapping[str, Any], registry, source: str | None = None) -> dict:
    """``data`` with its ``preset`` key replaced by the preset's config, ``data``'s other
    keys laid over it (sections merged key by key). Without ``preset``: ``data`` as is."""
    if "preset" not in data:
        return dict(data)
    name = data["preset"]
    rec = registry.get_preset(name) if isinstance(name, str) else None
    if rec is None:
        known = ", ".join(registry.preset_names()) or "(none loaded)"
        raise ConfigError([f"preset: unknown preset {name!r}; valid choices: {known}. "
                           "`jboat list-presets` shows them"], source)
    out = copy.deepcopy(dict(rec.preset.config))
    for key, value in data.items():
        if key == "preset":
            continue
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    out["preset"] = rec.preset.name
    return out
