"""``jboat new-plugin NAME --kind KIND``: a new plugin distribution, written on plugin
API 2, whose tests pass as generated and which ``jboat list-ops`` shows once installed.

What it writes (``NAME`` = ``MyOp``, distribution ``jboat-myop``, package ``jboat_myop``)::

    jboat-myop/
        pyproject.toml          entry point  [project.entry-points.jboat] myop = "jboat_myop.myop"
        README.md
        jboat_myop/__init__.py
        jboat_myop/myop.py      config model, operator (a working method of the kind), hook
        tests/test_myop.py      the conformance kit on the operator, installed or not

The operator is a real method to start from: for ``hypergradient``, reverse-mode
differentiation through the inner loop (it declares ``approximates = "unrolled"`` and the
kit checks it against the exact reference); for ``dynamics``, plain gradient descent on
the lower level; for ``first_order``, a penalised-Lagrangian first-order solver with a
persistent auxiliary point. Nothing existing is overwritten. No Jittor import.

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
                          # checkpoint/resume and (if declared) correctness
```

Edit `{package}/{module}.py`: the method's math goes in `step`, its settings in
`{name}Config`. jboat's plugin author's guide (docs/plugins.md) describes `step`.
'''

_INIT = '''"""{name}: a jboat {label}. The plugin module is ``{package}.{module}`` (its entry
point); importing this package does not import Jittor."""

from .{module} import {name}, {name}Config

__all__ = ["{name}", "{name}Config"]
'''

_TEST = '''"""{name} through jboat's conformance kit (installed or not: the kit adds it to the
registry it composes in)."""

from jboat_core.testing.conformance import conformance_tests

from {package}.{module} import {name}

Test{name} = conformance_tests({name}, module="{package}.{module}")
'''

_HEAD = '''"""{name}: {summary}.

This module is the plugin: the entry point ``{module} = "{package}.{module}"`` names it,
it declares the contract version it is written for (``JBOAT_API_VERSION``) and registers
``{name}`` through ``{hook}``. Importing it does not import Jittor.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import {imports}

JBOAT_API_VERSION = {api}


class {name}Config(BaseModel):
    """Settings of {name} (the ``"{name}"`` section of a solver config)."""

    model_config = ConfigDict(extra="forbid")
{fields}
'''

_HYPERGRADIENT = '''

class {name}(HyperGradient):
    r"""Reverse-mode hyper-gradient through the unrolled inner loop (a starting point).

    .. math:: g_x = \\frac{{d}}{{dx}} F\\big(x, y_K(x)\\big)

    References
    ----------
    [1] Franceschi L. et al., "Forward and reverse gradient-based hyperparameter
    optimization", ICML 2017.
    """

    name = "{name}"
    stage = "gradient"
    order = 50
    role = "terminal"
    needs_trajectory = True     # the dynamics keep y_0..y_K in the graph
    approximates = "unrolled"   # the conformance kit checks it against the exact value
    config_model = {name}Config
    summary = "{summary}"
    formula = "g_x = dF(x, y_K(x))/dx through the K inner steps"
    reference = "Franceschi et al., Forward and reverse gradient-based hyperparameter optimization, ICML 2017"

    def step(self, state: ChainState) -> Result:
        from jboat_core.numerics import detach, grads, upper_at  # imports Jittor: only here

        y = state.ll_point()                  # y_K (or y_k* after PTT)
        F = upper_at(self, state.ul_feed, state.fmodel, y)
        n = len(self.ul_var)
        wrt = self.ul_var + (state.fmodel.parameters(time=0) if state.init_gradients else [])
        g = detach(grads(F, wrt, self.name, "dF/dx through the trajectory"))
        return result(self, F.detach(), g[:n], g[n:] or None)


@hookimpl
def jboat_register_hypergradients(register):
    register({name})
'''

_DYNAMICS = '''

class {name}(DynamicalSystem):
    r"""Plain gradient descent on the lower level (a starting point).

    .. math:: y_{{k+1}} = y_k - \\eta \\nabla_y f(x, y_k),\\quad k = 0..K-1

    References
    ----------
    [1] Franceschi L. et al., "Bilevel programming for hyperparameter optimization and
    meta-learning", ICML 2018.
    """

    name = "{name}"
    stage = "solve"
    order = 50
    role = "terminal"
    config_model = {name}Config
    summary = "{summary}"
    formula = "y_{{k+1}} = y_k - eta grad_y f(x, y_k)"
    reference = "Franceschi et al., Bilevel programming for hyperparameter optimization and meta-learning, ICML 2018"

    def step(self, state: DynamicsState) -> DynamicsState:
        from jboat_core.numerics import check_scalar  # imports Jittor: only here

        plan, fmodel, loss = state.plan, state.fmodel, None
        for k in range(self.lower_iters):
            objective = state.objective_at(k, self.ll_objective)   # f, or GDA's phi
            loss = check_scalar(objective(state.ll_feed, self.ul_model, fmodel,
                                          params=fmodel.parameters()),
                                self.name, f"inner step {{k + 1}}")
            state.dopt.step(fmodel, loss, stop_grads=plan.stop_inner_grads,
                            detach=k < plan.truncate, op=self.name, where=f"inner step {{k + 1}}")
        return state.replace(
            lower_loss=loss.detach() if plan.record_loss and loss is not None else None,
            lower_objective=state.objective_at(self.lower_iters - 1, self.ll_objective))


@hookimpl
def jboat_register_dynamics(register):
    register({name})
'''

_FIRST_ORDER = '''

class {name}(FirstOrderSolver):
    r"""A penalised-Lagrangian first-order solver (a starting point), with a persistent
    auxiliary point z:

    .. math::
        z \\leftarrow z - \\alpha_z \\nabla_z f(x, z)\\ (K \\text{{ times}}),\\qquad
        d = \\nabla \\big[F(x, y) + \\lambda (f(x, y) - f(x, z))\\big]

    References
    ----------
    [1] Kwon J. et al., "A fully first-order method for stochastic bilevel optimization",
    ICML 2023.
    """

    name = "{name}"
    stage = "solve"
    role = "terminal"
    config_model = {name}Config
    summary = "{summary}"
    formula = "z: K steps on f; d = grad [F(x, y) + lam (f(x, y) - f(x, z))]"
    reference = "Kwon et al., A fully first-order method for stochastic bilevel optimization, ICML 2023"

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, descend  # imports Jittor: only here

        pt = Point(self, state)
        z = descend(pt, state.memory.get("z") or pt.y, self.config.z_lr, self.lower_iters)
        F_y, f_y = pt.F(pt.y), pt.f(pt.y)
        d_y, d_x = pt.grad_yx(F_y + (f_y - pt.f(z)) * self.config.lam, pt.y)
        self.propose(z=z)  # kept across iterations, adopted only if the iteration is finite
        return Result(upper_loss=F_y.detach(), lower_loss=f_y.detach(),
                      hyper_gradients=d_x, ll_gradients=d_y)


@hookimpl
def jboat_register_first_order(register):
    register({name})
'''

#: Per kind: (imports from jboat_core.contract, config fields, body, default summary).
_KIND_PARTS = {
    "hypergradient": ("ChainState, HyperGradient, Result, hookimpl, result",
                      '    scale: float = Field(1.0, gt=0, description="unused example '
                      'setting: add yours here")', _HYPERGRADIENT,
                      "Reverse-mode hyper-gradient through the inner loop"),
    "dynamics": ("DynamicalSystem, DynamicsState, hookimpl",
                 '    scale: float = Field(1.0, gt=0, description="unused example setting: '
                 'add yours here")', _DYNAMICS, "Gradient descent on the lower level"),
    "first_order": ("FirstOrderSolver, Result, SolveState, hookimpl",
                    '    lam: float = Field(1.0, gt=0, description="penalty multiplier '
                    'lambda")\n    z_lr: float = Field(0.1, gt=0, description="step size of '
                    'the K gradient steps on z")', _FIRST_ORDER,
                    "Penalised-Lagrangian first-order bilevel solver"),
}


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


def new_plugin(name: str, kind: str, out: str | Path = ".", registry=None) -> Path:
    """Write the distribution of a new operator ``name`` of ``kind`` under ``out``;
    returns its folder. ``ConfigError`` (one line each) for a bad or used name (see
    ``name_problems``) or kind, or a folder that exists (nothing is overwritten);
    ``OutputError`` (one line) for an ``--out`` that cannot take it."""
    problems = name_problems(name, registry)
    if kind not in KINDS:
        problems.append(f"--kind: {kind!r} is not one of {', '.join(KINDS)}")
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
    imports, fields, body, summary = _KIND_PARTS[kind]
    values = dict(name=name, dist=dist, package=package, module=module, api=API_VERSION,
                  label=KINDS[kind].label, hook=KINDS[kind].hook, summary=summary,
                  imports=imports, fields=fields)
    files = {
        "pyproject.toml": _PYPROJECT, "README.md": _README,
        f"{package}/__init__.py": _INIT, f"tests/test_{module}.py": _TEST,
        f"{package}/{module}.py": _HEAD + body,
    }
    try:
        _write(root, {rel: template.format(**values) for rel, template in files.items()})
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot write {root} ({exc.strerror or exc}); "
                          "choose a folder you can write to") from None
    return root


def _write(root: Path, files: dict) -> None:
    """Create ``root`` and its files, never over an existing file."""
    root.mkdir(parents=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(text)
