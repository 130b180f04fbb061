"""``jboat run``: solve a bilevel task described by a TOML/JSON file.

A task file has a ``[task]`` table (the Python module that builds the task, iterations,
seed, its parameters), ``[optim.lower]`` / ``[optim.upper]`` optimizers and a ``[solver]``
table (the solver config). The task module defines ``build(params, seed) -> Task``.
Results: ``OUT/metrics.json`` (``final``, ``baseline``, ``history``) and
``OUT/loss_curve.png``; ``--checkpoint-every N`` writes ``OUT/checkpoint.pkl`` and
``--resume`` continues from it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import error_lines, parse_solver_config, read_config_file
from .errors import ConfigError


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
        from ._jittor import jittor
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
    iterations: int = Field(100, ge=1)
    seed: int = 0
    eval_every: int = Field(0, ge=0, description="evaluate every N iterations (0: at the end)")
    params: dict[str, Any] = Field(default_factory=dict)


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: TaskSection
    optim: OptimSection = OptimSection()
    solver: dict[str, Any]


def load_run_config(path: str | Path) -> tuple[RunConfig, Any]:
    """Validate a task file; returns (run config, validated SolverConfig)."""
    data = read_config_file(path)
    try:
        run = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(error_lines(exc), str(path)) from None
    solver = parse_solver_config(run.solver, source=f"{path} [solver]")
    return run, solver


def load_task_module(spec: str, base: Path):
    """Import the task module named in ``[task] module``."""
    if spec.endswith(".py"):
        path = (base / spec).resolve()
        if not path.is_file():
            raise ConfigError([f"task.module: {path} does not exist"])
        name = f"jboat_task_{path.stem}"
        mod_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        mod_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def _save_atomic(path: Path, payload: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def plot_losses(history: list[dict], path: Path, title: str) -> None:
    """Upper and lower loss per iteration, written as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [h["iter"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(its, [h["upper_loss"] for h in history], label="upper loss F")
    if any(h.get("lower_loss") is not None for h in history):
        ax.plot(its, [h.get("lower_loss") for h in history], label="lower loss f")
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_task(config_path: str | Path, out: str | Path, *, checkpoint_every: int = 0,
             resume: bool = False, progress: bool | None = None,
             callback: Callable | None = None, iterations: int | None = None) -> dict:
    """Run a task file end to end; returns the metrics dict also written to disk.

    Parameters
    ----------
    config_path, out : path
        Task file and output directory.
    checkpoint_every : int
        Save ``out/checkpoint.pkl`` every N iterations (0: never).
    resume : bool
        Continue from ``out/checkpoint.pkl`` if it exists.
    progress : bool, optional
        Show a tqdm bar (default: when stderr is a terminal).
    callback : callable, optional
        ``callback(record, problem)`` after every iteration; ``record`` is the history
        entry, with the task's metrics on evaluation iterations.
    iterations : int, optional
        Override ``[task] iterations``.
    """
    from tqdm import tqdm

    from ._jittor import jittor
    from .problem import Problem

    config_path = Path(config_path)
    run, solver = load_run_config(config_path)
    jt = jittor()
    jt.set_global_seed(run.task.seed)
    module = load_task_module(run.task.module, config_path.parent)
    task: Task = module.build(dict(run.task.params), run.task.seed)
    ll_var = task.ll_var or None
    problem = Problem(solver, ll_objective=task.ll_objective, ul_objective=task.ul_objective,
                      ll_model=task.ll_model, ul_model=task.ul_model,
                      ll_opt=run.optim.lower.build(task.ll_var or task.ll_model.parameters()),
                      ul_opt=run.optim.upper.build(task.ul_var or task.ul_model.parameters()),
                      ll_var=ll_var, ul_var=task.ul_var, gda_loss=task.gda_loss)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pkl"
    start = 0
    if resume and ckpt.exists():
        state = pickle.loads(ckpt.read_bytes())
        problem.load_state_dict(state["problem"])
        start = state["next_iter"]
    total = iterations or run.task.iterations
    bar = tqdm(range(start, total), desc=f"jboat {'+'.join(solver.na_op)}", unit="it",
               disable=(not progress) if progress is not None else None, file=sys.stderr)
    for it in bar:
        ll_feed, ul_feed = task.feeds(it)
        rec = problem.run_iter(ll_feed, ul_feed, it)
        if run.task.eval_every and (it + 1) % run.task.eval_every == 0:
            problem.history[-1].update(task.evaluate())
        bar.set_postfix(F=f"{rec['upper_loss']:.4f}")
        if callback is not None:
            callback(problem.history[-1], problem)  # the record with this step's metrics
        if checkpoint_every and (it + 1) % checkpoint_every == 0:
            _save_atomic(ckpt, pickle.dumps({"problem": problem.state_dict(),
                                             "next_iter": it + 1}))
    final = {**task.evaluate(), **(task.final() if task.final else {}),
             "upper_loss": problem.history[-1]["upper_loss"],
             "lower_loss": problem.history[-1]["lower_loss"]}
    metrics = {"task": run.task.module, "config": str(config_path),
               "gm_op": solver.gm_op, "na_op": solver.na_op, "iterations": total,
               "final": final, "baseline": task.baseline() if task.baseline else None,
               "history": problem.history}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    plot_losses(problem.history, out / "loss_curve.png",
                f"{Path(run.task.module).stem}: {'+'.join(solver.gm_op + solver.na_op)}")
    return metrics
