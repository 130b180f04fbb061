"""Task files (``[task]``, ``[optim]``, ``[solver]``) and task modules: validation and
loading, with one-line errors that name the file and key. Validation never imports Jittor;
importing a task module may.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import keyword
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..plugins.config import parse_solver_config, read_config_file
from ..errors import ConfigError, JboatError
from ..contract.sections import validate_strict
from ..platform.signals import raise_pending

#: Most outer iterations a run may ask for (a bound on ``--iterations`` and ``[task]``).
MAX_ITERATIONS = 10**9
#: Seeds are 32-bit unsigned integers (NumPy's and Jittor's generators).
SEED_LIMIT = 2**32


class TaskError(JboatError):
    """A task module's code failed while the run called it (raised, exited, returned
    unusable data). The message names the function and the outer iteration; ``details``
    holds the task's own traceback, shown after the message."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


@dataclass
class Task:
    """What a task module's ``build`` returns.

    Attributes
    ----------
    feeds : callable
        ``feeds(iteration) -> (ll_feed_dict, ul_feed_dict)`` (lists of dicts for
        ``accumulate_grad``); must be deterministic in ``iteration`` for exact resumes.
    evaluate : callable
        ``evaluate() -> dict`` of metrics of the current models (accuracy, F1...).
    baseline : callable, optional
        ``baseline() -> dict`` of the reference method's metrics (computed once).
    final : callable, optional
        ``final() -> dict`` of metrics computed once at the end, after ``evaluate`` (e.g.
        retraining a derived architecture).
    ll_solver : LowerSolver, optional
        The task's own lower solver (``jboat_core.custom_root`` /
        ``custom_fixed_point``), for ``gm_op = ["SOLVED"]``.
    """

    ll_model: Any
    ul_model: Any
    ll_objective: Callable
    ul_objective: Callable
    feeds: Callable[[int], tuple]
    evaluate: Callable[[], dict]
    baseline: Callable[[], dict] | None = None
    gda_loss: Callable | None = None
    final: Callable[[], dict] | None = None
    ll_var: list | None = None
    ul_var: list | None = None
    extra: dict = field(default_factory=dict)
    ll_solver: Any = None

    def problem(self, solver, optim: "OptimSection"):
        """The ``Problem`` of this task under ``solver`` (a ``SolverConfig``), with the
        task file's optimizers built on the task's variables (default: the models'
        parameters)."""
        from ..solver.problem import Problem

        return Problem(solver, ll_objective=self.ll_objective, ul_objective=self.ul_objective,
                       ll_model=self.ll_model, ul_model=self.ul_model,
                       ll_opt=optim.lower.build(self.ll_var or self.ll_model.parameters()),
                       ul_opt=optim.upper.build(self.ul_var or self.ul_model.parameters()),
                       ll_var=self.ll_var or None, ul_var=self.ul_var, gda_loss=self.gda_loss,
                       ll_solver=self.ll_solver)


class OptimizerSpec(BaseModel):
    """A Jittor optimizer: ``type`` and its settings."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["SGD", "Adam"] = "SGD"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)

    def build(self, params):
        from ..platform._jittor import jittor
        jt = jittor()
        if self.type == "SGD":
            return jt.optim.SGD(params, self.lr, momentum=self.momentum,
                                weight_decay=self.weight_decay, nesterov=self.nesterov)
        return jt.optim.Adam(params, self.lr, eps=self.eps, betas=self.betas,
                             weight_decay=self.weight_decay)


class OptimSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lower: OptimizerSpec = OptimizerSpec(type="SGD", lr=0.1)
    upper: OptimizerSpec = OptimizerSpec(type="Adam", lr=0.01)


class TaskSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    module: str = Field(description="task module: a .py path relative to the task file, "
                        "or an importable dotted name")
    iterations: int = Field(100, ge=1, le=MAX_ITERATIONS)
    seed: int = Field(0, ge=0, lt=SEED_LIMIT, description="0 <= seed < 2**32")
    eval_every: int = Field(0, ge=0, description="evaluate every N iterations (0: at the end)")
    params: dict[str, Any] = Field(default_factory=dict)


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: TaskSection
    optim: OptimSection = OptimSection()
    solver: dict[str, Any]


def is_task_file(data) -> bool:
    """True for the contents of a task file (a ``[task]`` table), not a bare solver config."""
    return isinstance(data, dict) and "task" in data


def load_run_config(path: str | Path) -> tuple[RunConfig, Any]:
    """Validate a task file: the task table, the optimizers, the solver config and that the
    task module exists (without importing it). Returns (run config, SolverConfig)."""
    data = read_config_file(path)
    if not isinstance(data, dict):
        raise ConfigError([f"(top level): expected a table of settings, got "
                           f"{type(data).__name__}"], str(path))
    if "task" not in data:
        raise ConfigError(["task: required: a task file has a [task] table naming the module "
                           "that builds the problem (a bare solver config has none: "
                           "`jboat validate` checks those)"], str(path))
    try:
        run = validate_strict(RunConfig, data)
    except ConfigError as exc:
        lines = exc.lines
        module = data["task"].get("module") if isinstance(data["task"], dict) else None
        if isinstance(module, str):
            try:
                locate_task_module(module, Path(path).parent)
            except ConfigError as missing:
                lines += missing.lines
        raise ConfigError(lines, str(path)) from None
    solver = parse_solver_config(run.solver, source=f"{path} [solver]")
    locate_task_module(run.task.module, Path(path).parent, str(path))
    return run, solver


def locate_task_module(spec: str, base: Path, source: str | None = None):
    """The file of a ``.py`` task module (checked to exist), or the dotted name (checked to
    be importable) of an installed one. Nothing is imported or executed: a dotted name's
    top-level package is looked up by the import system's finders (which read no module
    code) and each further part is found as a file or folder of the package."""
    if spec.endswith(".py"):
        path = (Path(base) / spec).resolve()
        if not path.is_file():
            raise ConfigError([f"task.module: {path} does not exist (a path is relative to "
                               "the task file)"], source)
        return path
    if spec in sys.modules:  # already imported (os.path): nothing to find
        return spec
    parts = spec.split(".")
    if not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        raise ConfigError([f"task.module: {spec!r} is neither a .py path nor a dotted module "
                           "name (identifiers joined by '.')"], source)
    why = _find_module(parts)
    if why:
        raise ConfigError([f"task.module: no module named {spec!r} ({why}); give a .py path "
                           "relative to the task file or an importable module"], source)
    return spec


def _find_module(parts: list[str]) -> str:
    """Why the module ``parts`` cannot be found without importing it ('' if found)."""
    try:
        top = importlib.util.find_spec(parts[0])  # a top-level name: no parent imported
    except (ImportError, ValueError) as exc:
        return str(exc)
    if top is None:
        return f"{parts[0]!r} is not installed"
    folders = list(top.submodule_search_locations or [])
    for depth, part in enumerate(parts[1:], start=1):
        parent = ".".join(parts[:depth])
        if not folders:
            return f"{parent!r} is a module, not a package"
        found = [hit for folder in folders for hit in _submodule(Path(folder), part)]
        if not found:
            return f"{parent!r} has no module {part!r}"
        folders = [str(f) for f in found if f.is_dir()]
    return ""


def _submodule(folder: Path, name: str) -> list[Path]:
    """The files or package folders of module ``name`` in ``folder`` (found, not read)."""
    hits = [folder / name] if (folder / name).is_dir() else []
    suffixes = importlib.machinery.all_suffixes()
    files = [folder / f"{name}{sfx}" for sfx in suffixes]
    return hits + [f for f in files if f.is_file()]


def _one_line(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def load_task_module(spec: str, base: Path):
    """Import the task module named in ``[task] module`` (``ConfigError`` if it fails)."""
    target = locate_task_module(spec, base)
    try:
        if isinstance(target, Path):
            name = f"jboat_task_{target.stem}"
            mod_spec = importlib.util.spec_from_file_location(name, target)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            mod_spec.loader.exec_module(module)
            return module
        return importlib.import_module(target)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a user module's failure, reported
        raise_pending()  # a SIGTERM turned into this failure (an import unwound): terminated
        raise ConfigError([f"task.module: importing {target} raised {_one_line(exc)}"]) from exc


def build_task(module, params: dict, seed: int) -> Task:
    """Call the task module's ``build(params, seed)`` and check it returns a ``Task``."""
    build = getattr(module, "build", None)
    where = getattr(module, "__file__", None) or module.__name__
    if not callable(build):
        raise ConfigError([f"task.module: {where} has no build(params, seed) function "
                           "returning a jboat_core.run.runner.Task"])
    try:
        task = build(params, seed)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001
        raise_pending()  # a SIGTERM turned into this failure: the run ends as terminated
        raise ConfigError([f"task.module: build() in {where} raised {_one_line(exc)}"]) from exc
    if not isinstance(task, Task):
        raise ConfigError([f"task.module: build() in {where} returned {type(task).__name__}; "
                           "return a jboat_core.run.runner.Task"])
    return task


def load_task(run: RunConfig, base: Path) -> Task:
    """Seed Jittor with ``[task] seed``, import the task module (relative to ``base``, the
    task file's folder) and build its ``Task``."""
    from ..platform._jittor import jittor

    jittor().set_global_seed(run.task.seed)
    module = load_task_module(run.task.module, base)
    return build_task(module, dict(run.task.params), run.task.seed)


def task_error(exc: BaseException, module: str, task: Task, at: dict) -> TaskError:
    """A one-line ``TaskError`` for an exception (or ``sys.exit``) from the task's code:
    the function of the task module it came from, the outer iteration, the exception's
    first line; the task's traceback goes to ``details``. A SIGTERM/SIGHUP/SIGINT taken
    while the task's code ran (whose ``Terminated`` the task's code turned into another
    exception, e.g. an extension module's ``ImportError: initialization failed``) raises
    ``Terminated`` instead: the run ends as terminated, not as the task's failure."""
    raise_pending()
    files = {getattr(getattr(f, "__code__", None), "co_filename", None) for f in (
        task.feeds, task.evaluate, task.baseline, task.final, task.ll_objective,
        task.ul_objective, task.gda_loss)} - {None}
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if f.filename in files]
    if mine:
        what = f"{mine[0].name}() ({Path(mine[-1].filename).name}:{mine[-1].lineno})"
    else:
        what = at["call"] if at["call"] != "the objectives" else "an objective or the solver"
    when = f"at outer iteration {at['it']}" if at["it"] is not None else "after the last iteration"
    if isinstance(exc, SystemExit):
        return TaskError(f"task module {module}: {what} called sys.exit({exc.code!r}) {when}; "
                         "a task module must raise an exception instead of exiting")
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    first = first if len(first) <= 300 else first[:297] + "..."
    details = "".join(traceback.format_exception(exc)).rstrip()
    return TaskError(f"task module {module}: {what} raised {type(exc).__name__}"
                     f"{': ' + first if first else ''} {when} (its traceback follows)",
                     details)
