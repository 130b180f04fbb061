"""``jboat run``: solve a bilevel task described by a TOML/JSON file.

A task file has a ``[task]`` table (the Python module that builds the task, iterations,
seed, its parameters), ``[optim.lower]`` / ``[optim.upper]`` optimizers and a ``[solver]``
table (the solver config). The task module defines ``build(params, seed) -> Task``.
Results: ``OUT/metrics.json`` (``status``, ``final``, ``baseline``, ``history``) and
``OUT/loss_curve.png``; ``--checkpoint-every N`` writes ``OUT/checkpoint.npz`` (data only:
``jboat_core.checkpoint``) and ``--resume`` continues from it.

Order of the checks, so that bad input fails fast and nothing is lost: the ``--out`` path,
the task file (every table) and the task module's existence, then the folder's lock and
earlier run (``jboat_core.outdir``) and the checkpoint's format, all before Jittor is
imported; then the task is built and the checkpoint's fingerprint compared.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from .checkpoint import NAME, CheckpointError, load_checkpoint, read_meta, save_checkpoint
from .errors import ConfigError
from .metrics import plot_losses, write_metrics
from .outdir import OutputError, OutputFolder, check_out_path
from .parallel import ParallelError, launched_by_mpirun, launcher_rank, watchdog
from .task import (OptimizerSpec, OptimSection, RunConfig, Task, TaskSection, load_run_config,
                   load_task)

__all__ = ["CheckpointError", "OptimizerSpec", "OptimSection", "OutputError", "ParallelError",
           "RunConfig", "Task", "TaskSection", "fingerprint", "load_run_config", "plot_losses",
           "run_task"]


def _json(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def fingerprint(run: RunConfig, problem, world_size: int = 1) -> dict:
    """What a checkpoint must match to be resumed: the task module and its parameters,
    the seed, the optimizers, the solver config, the variable shapes, the number of
    processes (the iteration count is not part of it: ``--iterations`` may extend a run)."""
    return _json({"task": run.task.module, "params": run.task.params, "seed": run.task.seed,
                  "optim": run.optim.model_dump(mode="json"), "solver": run.solver,
                  "variables": {"ll_var": [list(v.shape) for v in problem.ll_var],
                                "ul_var": [list(v.shape) for v in problem.ul_var]},
                  "world_size": world_size})


def _check_args(iterations, checkpoint_every) -> None:
    lines = []
    if iterations is not None and (not isinstance(iterations, int) or iterations < 1):
        lines.append(f"--iterations: {iterations!r} must be a positive integer")
    if not isinstance(checkpoint_every, int) or checkpoint_every < 0:
        lines.append(f"--checkpoint-every: {checkpoint_every!r} must be 0 (never) or a "
                     "positive integer")
    if lines:
        raise ConfigError(lines)


def run_task(config_path: str | Path, out: str | Path, *, checkpoint_every: int = 0,
             resume: bool = False, overwrite: bool = False, progress: bool | None = None,
             callback: Callable | None = None, iterations: int | None = None,
             mpi: bool = False, mpi_timeout: float | None = 600.0) -> dict:
    """Run a task file end to end; returns the metrics dict also written to disk.

    Parameters
    ----------
    config_path, out : path
        Task file and output directory.
    checkpoint_every : int
        Save ``out/checkpoint.npz`` every N iterations (0: never).
    resume : bool
        Continue from ``out/checkpoint.npz`` if it exists.
    overwrite : bool
        Replace an earlier run found in ``out``.
    progress : bool, optional
        Show a tqdm bar (default: when stderr is a terminal).
    callback : callable, optional
        ``callback(record, problem)`` after every iteration; ``record`` is the history
        entry, with the task's metrics on evaluation iterations.
    iterations : int, optional
        Override ``[task] iterations``.
    mpi : bool
        Require a data-parallel run (``ParallelError`` unless started by ``mpirun`` with
        Jittor's MPI available). Under ``mpirun`` it is data-parallel anyway: each process
        takes its shard of every feed; only rank 0 locks the folder and writes files
        (metrics, plot, checkpoints) and shows progress; every rank reads the checkpoint
        on ``--resume``, which must have been written by the same number of processes.
    mpi_timeout : float, optional
        Under MPI, a process whose outer iteration takes longer (a peer died or hangs)
        prints its traceback and exits, instead of waiting forever (None: no limit).

    Raises
    ------
    ConfigError, OutputError, CheckpointError
        Bad input, before anything is computed where possible.
    """
    _check_args(iterations, checkpoint_every)
    config_path, out = Path(config_path), Path(out)
    check_out_path(out)
    run, solver = load_run_config(config_path)
    if mpi and not launched_by_mpirun():
        raise ParallelError("--mpi: this process was not started by mpirun with more than one "
                            "process; run `mpirun -np N jboat run ...`")
    writer = launcher_rank() == 0
    options = dict(checkpoint_every=checkpoint_every, progress=progress, callback=callback,
                   iterations=iterations, writer=writer,
                   timeout=mpi_timeout if launched_by_mpirun() else None)
    if not writer:  # ranks > 0 never write: no lock, no earlier-run check
        ckpt = out / NAME
        return _run(run, solver, config_path, out, ckpt, resume and ckpt.exists(), **options)
    with OutputFolder(out, resume=resume, overwrite=overwrite) as folder:
        ckpt = folder.path / NAME
        resuming = resume and ckpt.exists()
        if resuming:
            read_meta(ckpt)  # a damaged or foreign file fails here, before Jittor
        return _run(run, solver, config_path, folder.path, ckpt, resuming, **options)


def _run(run, solver, config_path, out, ckpt, resuming, *, checkpoint_every, progress,
         callback, iterations, writer, timeout) -> dict:
    from tqdm import tqdm

    task: Task = load_task(run, config_path.parent)
    problem = task.problem(solver, run.optim)
    fp = fingerprint(run, problem, problem.parallel.world)
    start = 0
    if resuming:
        state, start = load_checkpoint(ckpt, fp)
        problem.load_state_dict(state)
    total = iterations or run.task.iterations
    if start > total:
        raise CheckpointError(f"checkpoint {ckpt} is at iteration {start}, past the "
                              f"{total} iterations asked for; raise --iterations")
    metrics = {"task": run.task.module, "config": str(config_path), "gm_op": solver.gm_op,
               "na_op": solver.na_op, "fo_op": solver.fo_op, "iterations": total,
               "status": "running", "resumed_from": start if resuming else None}
    if problem.parallel.active:
        metrics["processes"] = problem.parallel.world
    show = (not progress) if progress is not None else None
    bar = tqdm(range(start, total), desc=f"jboat {'+'.join(solver.composition())}", unit="it",
               disable=show if writer else True, file=sys.stderr)
    try:
        for it in bar:
            watchdog(timeout)
            ll_feed, ul_feed = task.feeds(it)
            rec = problem.run_iter(ll_feed, ul_feed, it)
            if writer and run.task.eval_every and (it + 1) % run.task.eval_every == 0:
                problem.history[-1].update(task.evaluate())
            bar.set_postfix(F=f"{rec['upper_loss']:.4f}")
            if callback is not None:
                callback(problem.history[-1], problem)  # the record with this step's metrics
            if writer and checkpoint_every and (it + 1) % checkpoint_every == 0:
                save_checkpoint(ckpt, problem.state_dict(), fp, it + 1)
        watchdog(None)
        if not writer:
            return {**metrics, "status": "completed", "history": problem.history}
        final = {**task.evaluate(), **(task.final() if task.final else {})}
        if problem.history:
            final.update(upper_loss=problem.history[-1]["upper_loss"],
                         lower_loss=problem.history[-1]["lower_loss"])
        metrics.update(final=final, baseline=task.baseline() if task.baseline else None)
    except BaseException as exc:
        watchdog(None)
        if writer:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            write_metrics(out / "metrics.json", {**metrics, "status": status,
                                                 "error": f"{type(exc).__name__}: {exc}",
                                                 "history": problem.history})
        raise
    finally:
        bar.close()
    written = write_metrics(out / "metrics.json", {**metrics, "status": "completed",
                                                   "history": problem.history})
    if problem.history:
        plot_losses(problem.history, out / "loss_curve.png",
                    f"{Path(run.task.module).stem}: {'+'.join(solver.composition())}")
    return written
