"""``Preset``: a named solver config a plugin declares (``jboat_register_presets``).
Importing this module does not import Jittor."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PRESET_KEYS", "Preset"]

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
