"""``jboat new-plugin NAME --kind KIND``: a new plugin distribution, written on plugin
API 2, whose tests pass as generated and which ``jboat list-ops`` shows once installed.

What it writes (``NAME`` = ``MyOp``, distribution ``jboat-myop``, package ``jboat_myop``)::

    jboat-myop/
        pyproject.toml          entry point  [project.entry-points.jboat] myop = "jboat_myop.myop"
        README.md
        jboat_myop/__init__.py
        jboat_myop/myop.py      config model, operator (a working method of the kind), hook
        tests/test_myop.py      the conformance kit on the operator, installed or not

``KIND`` is the family of the operator, one template each
(``jboat_core.run.templates``), every one a working method on the current contract
(keyword-only constructor, ``step(state)``, memory in ``state.memory`` /
``Result(memory=...)``) written with public names only, whose math the conformance kit
checks as generated: ``hypergradient`` (alias ``unrolled``: reverse mode through the inner
loop), ``implicit`` (the IFT with its own ``solve(matvec, b)`` conjugate gradient),
``dynamics`` (its own inner update: Nesterov's accelerated gradient), ``first_order`` (a
penalised solver with a persistent auxiliary point), ``stochastic`` (a single-loop
minibatch solver), ``preset`` (a named solver config; its test runs it through
``Problem``). ``--add-to DIR`` adds an operator module, its entry point and its test to a
distribution written before. Nothing existing is overwritten; the files written are
returned (and printed by the CLI). No Jittor import.

The name must make code that compiles and a plugin jboat loads: a one-line Python
identifier, no keyword (``class``, ``None``), not the name of a registered operator or
preset (``CG``: the loader would refuse the duplicate), of an importable ``jboat_*``
package (``core`` would write ``jboat_core``), an installed distribution or an entry
point of the ``jboat`` group.
"""

from __future__ import annotations

import keyword
import os
import re
from pathlib import Path
from typing import Any

from ..contract.kinds import KINDS
from ..contract.spec import API_VERSION
from . import templates as T
from ..errors import ConfigError
from ..plugins.registry import get_registry
from .outdir import OutputError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")

_PYPROJECT = '''[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{name}: a jboat {label} (plugin API {api})"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["jboat>=0.2", "pydantic>=2.5"]

[project.optional-dependencies]
test = ["pytest>=7"]

# The line that makes jboat find the plugin: a module of the "jboat" entry-point group.
[project.entry-points.jboat]
{module} = "{package}.{module}"

[tool.setuptools]
packages = ["{package}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-ra"
markers = ["jittor: needs Jittor (compiles kernels on first use)"]
'''

_README = '''# {dist}

`{name}`, a jboat {label}, written on jboat's plugin API {api} by `jboat new-plugin`.

```sh
pip install -e .          # then `jboat list-ops` shows {name}
python -m pytest          # the conformance kit: metadata, config, runs, NaN guard,
                          # checkpoint/resume and correctness (float64, by default)
```

Edit `{package}/{module}.py`: the method's math goes in `step`, its settings in
`{name}Config`. jboat's docs/plugins.md describes the step protocol; if the kit cannot
check your method's math, say why in the class (`unchecked = "why"`).
'''

_INIT_PRESET = '''"""{name}: a jboat preset. The plugin module is ``{package}.{module}`` (its entry
point); importing this package does not import Jittor."""

from .{module} import {name}

__all__ = ["{name}"]
'''

_INIT = '''"""{name}: a jboat {label}. The plugin module is ``{package}.{module}`` (its entry
point); importing this package does not import Jittor."""

from .{module} import {name}, {name}Config

__all__ = ["{name}", "{name}Config"]
'''

def name_problems(name: Any, registry=None) -> list[str]:
    """Why ``name`` cannot name a new operator (empty: it can): it must be a Python
    identifier of letters, digits and '_' (one line, at most 40), not a keyword in either
    spelling (the class ``Name``, the module ``name``), and unused: no registered operator
    or preset of that name (any case), no importable ``jboat_name`` package, installed
    ``jboat-name`` distribution or ``name`` entry point of the ``jboat`` group."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return [f"NAME: {name!r} must start with a letter and hold letters, digits and '_' "
                "only (one line, at most 40), e.g. MyOp"]
    lower = name.lower()
    other = f"My{name[0].upper()}{name[1:]}"
    if keyword.iskeyword(name) or keyword.iskeyword(lower):
        what = f"class {name}" if keyword.iskeyword(name) else f"module {lower}"
        return [f"NAME: {name!r} is a Python keyword (the {what} would not compile); "
                f"choose another, e.g. {other}"]
    reg = registry if registry is not None else get_registry()
    if name.upper() in reg.operators or reg.get_preset(name) is not None:
        what = "operator" if name.upper() in reg.operators else "preset"
        return [f"NAME: {name!r} is the name of a registered {what} (jboat would refuse a "
                f"second one); choose another, e.g. {other}"]
    taken = _taken(lower)
    if taken:
        return [f"NAME: {name!r} would write {taken}, which exists already; choose another "
                f"name, e.g. {other}"]
    return []


def _taken(lower: str) -> str | None:
    """What of the distribution ``jboat-LOWER`` already exists here (None: nothing)."""
    from importlib import metadata, util

    package, dist = f"jboat_{lower}", f"jboat-{lower.replace('_', '-')}"
    try:
        if util.find_spec(package) is not None:
            return f"the package {package} (importable)"
    except (ImportError, ValueError):
        return f"the package {package} (importable)"
    try:
        metadata.distribution(dist)
        return f"the distribution {dist} (installed)"
    except metadata.PackageNotFoundError:
        pass
    if any(ep.name == lower for ep in metadata.entry_points(group="jboat")):
        return f"the entry point {lower} of the jboat group (installed)"
    return None


def _check_out(out: Path) -> None:
    """Refuse an ``--out`` jboat cannot write a distribution into, in one line."""
    if out.is_symlink() and not out.exists():
        raise OutputError(f"--out {out} is a symbolic link to a missing folder "
                          f"({os.readlink(out)}); create that folder or choose another")
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == out else f"lies under the file {parent}"
            raise OutputError(f"--out {out} {where}; choose a folder")
    probe = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: {probe} is not writable; choose a folder you can "
                          "write to")


def families() -> list[str]:
    """The ``--kind`` values: one per template family, and their aliases."""
    return [*T.FAMILIES, *T.ALIASES]


def _family(kind: str, problems: list) -> str:
    family = T.ALIASES.get(kind, kind)
    if family not in T.FAMILIES:
        problems.append(f"--kind: {kind!r} is not one of {', '.join(families())}")
    return family


def _files(name: str, family: str, package: str, module: str) -> dict:
    """``{relative path: text}`` of the operator (or preset) module and its test."""
    kind, imports, fields, body, summary = T.FAMILIES[family]
    label = "preset" if kind == "preset" else KINDS[kind].label
    hook = "jboat_register_presets" if kind == "preset" else KINDS[kind].hook
    values = dict(name=name, package=package, module=module, api=API_VERSION, label=label,
                  hook=hook, summary=summary, imports=imports, fields=fields)
    source = T.PRESET_MODULE if kind == "preset" else T.HEAD + body
    test = T.PRESET_TEST if kind == "preset" else T.OPERATOR_TEST
    return {f"{package}/{module}.py": source.format(**values),
            f"tests/test_{module}.py": test.format(**values)}, values


def write_plugin(name: str, kind: str, out: str | Path = ".", registry=None):
    """Write the distribution of a new operator ``name`` of family ``kind`` under
    ``out``; returns ``(folder, [files written])``. ``ConfigError`` (one line each) for a
    bad or used name (see ``name_problems``) or kind, or a folder that exists (nothing is
    overwritten); ``OutputError`` (one line) for an ``--out`` that cannot take it."""
    problems = name_problems(name, registry)
    family = _family(kind, problems)
    if problems:
        raise ConfigError(problems)
    lower = name.lower()
    dist, package, module = f"jboat-{lower.replace('_', '-')}", f"jboat_{lower}", lower
    out = Path(out)
    _check_out(out)
    root = out / dist
    if root.exists() or root.is_symlink():
        raise ConfigError([f"{root}: exists; choose another --out or NAME (nothing was "
                           "written)"])
    own, values = _files(name, family, package, module)
    values["dist"] = dist
    shared = {"pyproject.toml": _PYPROJECT, "README.md": _README,
              f"{package}/__init__.py": _INIT if family != "preset" else _INIT_PRESET}
    files = {rel: text.format(**values) for rel, text in shared.items()} | own
    try:
        _write(root, files)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot write {root} ({exc.strerror or exc}); "
                          "choose a folder you can write to") from None
    return root, [root / rel for rel in files]


def new_plugin(name: str, kind: str, out: str | Path = ".", registry=None) -> Path:
    """``write_plugin``'s folder (the 0.1 function)."""
    return write_plugin(name, kind, out, registry)[0]


_ENTRY_HEADER = "[project.entry-points.jboat]"


def add_to(name: str, kind: str, dist: str | Path, registry=None) -> list[Path]:
    """Add operator ``name`` of family ``kind`` to the distribution in ``dist`` (one
    written by ``jboat new-plugin``): its module in the distribution's package, its entry
    point in ``pyproject.toml``, its test; returns the files written or changed.
    ``ConfigError`` (one line each) for a bad name or kind, a folder that is not such a
    distribution, or a module or test that exists (nothing is written then)."""
    import tomllib

    problems = name_problems(name, registry)
    family = _family(kind, problems)
    root = Path(dist)
    pyproject = root / "pyproject.toml"
    text, package = "", None
    try:
        text = pyproject.read_text(encoding="utf-8")
        meta = tomllib.loads(text)
        package = (meta.get("tool", {}).get("setuptools", {}).get("packages") or [None])[0]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        problems.append(f"--add-to {root}: no readable pyproject.toml ({exc}); give the "
                        "folder of a distribution written by jboat new-plugin")
    else:
        if not package or _ENTRY_HEADER not in text or not (root / package).is_dir():
            problems.append(f"--add-to {root}: pyproject.toml declares no package folder "
                            "([tool.setuptools] packages) or no [project.entry-points.jboat] "
                            "table; give the folder of a distribution written by jboat "
                            "new-plugin")
    if problems:
        raise ConfigError(problems)
    module = name.lower()
    own, _ = _files(name, family, package, module)
    for rel in own:
        if (root / rel).exists():
            raise ConfigError([f"--add-to {root}: {rel} exists; choose another NAME "
                               "(nothing was written)"])
    for rel, body in own.items():
        with open(root / rel, "x", encoding="utf-8") as fh:
            fh.write(body)
    line = f'{module} = "{package}.{module}"'
    pyproject.write_text(text.replace(_ENTRY_HEADER, f"{_ENTRY_HEADER}\n{line}", 1),
                         encoding="utf-8")
    return [root / rel for rel in own] + [pyproject]


def _write(root: Path, files: dict) -> None:
    """Create ``root`` and its files, never over an existing file."""
    root.mkdir(parents=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(text)
