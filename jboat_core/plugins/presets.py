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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, MetadataError

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
#: Keys a preset may set (the composition and the shared settings it depends on) besides
#: operator sections.
PRESET_KEYS = ("gm_op", "na_op", "fo_op", "lower_iters", "copy_last_param",
               "accumulate_grad", "accumulate_mode")


@dataclass(frozen=True)
class Preset:
    """A named solver config.

    Attributes
    ----------
    name : str
        ``preset = "NAME"`` in a config (case-insensitive).
    summary : str
        One line.
    reference : str
        The paper.
    config : mapping
        Solver-config keys: ``gm_op`` / ``na_op`` / ``fo_op``, some of ``PRESET_KEYS`` and
        operator sections.
    notes : str
        What the user's problem must provide (e.g. iMAML's proximal term).
    """

    name: str
    summary: str
    reference: str
    config: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""

    def problems(self) -> list[str]:
        """Declaration problems (empty when valid); checked at registration."""
        out = []
        if not (isinstance(self.name, str) and _NAME_RE.match(self.name)):
            out.append(f"name={self.name!r}: letters, digits, '_' and '-', starting with a letter")
        for attr in ("summary", "reference"):
            if not (isinstance(getattr(self, attr), str) and getattr(self, attr).strip()):
                out.append(f"{attr} is empty")
        if not isinstance(self.config, Mapping):
            out.append(f"config={self.config!r}: declare a mapping of solver-config keys")
        elif not any(k in self.config for k in ("gm_op", "na_op", "fo_op")):
            out.append("config names no operators (gm_op, na_op or fo_op)")
        return out


def validate_preset(preset, origin: str) -> None:
    """Raise ``MetadataError`` naming ``origin`` if ``preset`` is not a valid ``Preset``."""
    if not isinstance(preset, Preset):
        raise MetadataError(f"preset {preset!r} from {origin} is not a jboat_core.Preset")
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
