"""The names and signatures of jboat's three public surfaces, as data.

``python tests/public_api.py`` prints the live surfaces as JSON; ``--write`` stores them
as the snapshot of the current version (``tests/public_api/<version>.json``), which
``tests/test_public_api.py`` compares with the live ones. Reading ``jboat_core.numerics``'s
names imports Jittor.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path

SURFACES = ("jboat_core", "jboat_core.contract", "jboat_core.numerics")
FOLDER = Path(__file__).resolve().parent / "public_api"


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def describe(obj) -> dict | str:
    """A class: its constructor and public methods and properties; a function: its
    signature; anything else: its type."""
    if inspect.isclass(obj):
        members = {}
        for name in sorted(dir(obj)):
            if name.startswith("_"):
                continue
            try:
                raw = inspect.getattr_static(obj, name)
            except AttributeError:
                continue
            if isinstance(raw, (staticmethod, classmethod)):
                members[name] = _signature(getattr(obj, name))
            elif isinstance(raw, property):
                members[name] = "property"
            elif inspect.isfunction(raw):
                members[name] = _signature(raw)
        fields = getattr(obj, "__dataclass_fields__", None)
        return {"kind": "class", "init": _signature(obj),
                "fields": sorted(fields) if fields else [], "members": members}
    if callable(obj):
        return _signature(obj)
    return type(obj).__name__


def snapshot() -> dict:
    """``{surface: {name: description}}`` of every name in each surface's ``__all__``."""
    out = {}
    for module_name in SURFACES:
        module = importlib.import_module(module_name)
        out[module_name] = {name: describe(getattr(module, name))
                            for name in sorted(module.__all__)}
    return out


def version() -> str:
    import jboat_core

    return jboat_core.__version__


def path(ver: str | None = None) -> Path:
    """The snapshot file of ``ver`` (default: the current version)."""
    return FOLDER / f"{ver or version()}.json"


def main(argv: list[str]) -> int:
    data = snapshot()
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    if "--write" in argv:
        FOLDER.mkdir(exist_ok=True)
        path().write_text(text)
        print(f"wrote {path()}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main(sys.argv[1:]))
