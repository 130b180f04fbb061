"""``jboat run``: solve a bilevel task described by a TOML/JSON file.

A task file has a ``[task]`` table (the Python module that builds the task, iterations,
seed, its parameters), ``[optim.lower]`` / ``[optim.upper]`` optimizers and a ``[solver]``
table (the solver config). The task module defines ``build(params, seed) -> Task``.
Results: ``OUT/metrics.json`` (``status``, ``final``, ``baseline``, ``history``) and
``OUT/loss_curve.png``; ``--checkpoint-every N`` writes ``OUT/checkpoint.npz`` (data only:
``jboat_core.run.checkpoint``) and ``--resume`` continues from it.

Order of the checks, so that bad input fails fast and nothing is lost: the ``--out`` path,
the task file (every table) and the task module's existence, then the folder's lock and
earlier run (``jboat_core.run.outdir``) and the checkpoint's format, all before Jittor is
imported; then the task is built and the checkpoint's fingerprint compared.

How a run stops, and what it leaves: ``metrics.json`` with ``"status"`` ``"completed"``
(written after ``loss_curve.png``), ``"failed"`` (a one-line error; the task module's
failures, ``sys.exit`` included, become ``TaskError`` naming the function and the outer
iteration), ``"interrupted"`` (Ctrl-C) or ``"terminated"`` (SIGTERM/SIGHUP, see
``jboat_core.platform.signals``), with the history so far; a write that fails (a full disk) is one
``OutputError`` naming the file. Paths are made absolute once, at the start.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .checkpoint import NAME, CheckpointError, read_meta
from ..errors import ConfigError, JboatError
from .metrics import plot_losses, write_metrics
from .outdir import OutputError, OutputFolder, check_out_path
from ..platform.parallel import ParallelError, launched_by_mpirun, launcher_rank, watchdog
from .resume import MODULE_KEY, Checkpoints, module_sha256
from .resume import start as start_run
from ..platform.signals import (Terminated, after_jittor_import, raise_pending,
                                terminate_as_exception)
from .task import (MAX_ITERATIONS, OptimizerSpec, OptimSection, RunConfig, Task, TaskError,
                   TaskSection, load_run_config, load_task, task_error)

__all__ = ["CheckpointError", "OptimizerSpec", "OptimSection", "OutputError", "ParallelError",
           "RunConfig", "Task", "TaskSection", "fingerprint", "load_run_config", "plot_losses",
           "run_task"]


def _json(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def fingerprint(run: RunConfig, problem, world_size: int = 1,
                module_digest: str | None = None) -> dict:
    """What a checkpoint must match to be resumed: the task module (its name, and the
    SHA-256 of its source when ``module_digest`` is given) and its parameters, the seed,
    the optimizers, the solver config, the variable shapes, the number of processes (the
    iteration count is not part of it: ``--iterations`` may extend a run)."""
    extra = {MODULE_KEY: module_digest} if module_digest is not None else {}
    return _json({**extra, "task": run.task.module, "params": run.task.params,
                  "seed": run.task.seed,
                  "optim": run.optim.model_dump(mode="json"), "solver": run.solver,
                  "variables": {"ll_var": [list(v.shape) for v in problem.ll_var],
                                "ul_var": [list(v.shape) for v in problem.ul_var]},
                  "world_size": world_size})


def _check_rank_state(problem, checkpoint_every: int, resuming: bool) -> None:
    """Under mpirun a checkpoint holds rank 0's operator state: refuse checkpoints of an
    operator whose state differs per rank (``state_per_rank``, SABA's tables of its shard)
    instead of losing the other ranks' state."""
    if not (problem.parallel.active and (checkpoint_every or resuming)):
        return
    per_rank = [type(op).name for op in problem.composition.operators
                if getattr(type(op), "state_per_rank", False)]
    if per_rank:
        raise ConfigError([f"--checkpoint-every/--resume: {', '.join(per_rank)} keeps state "
                           "per process (of its shard) and a checkpoint under mpirun holds "
                           "rank 0's only; run it on one process to checkpoint, or under "
                           "mpirun without --checkpoint-every"])


def _check_args(iterations, checkpoint_every) -> None:
    lines = []
    if iterations is not None and (not isinstance(iterations, int) or isinstance(
            iterations, bool) or not 1 <= iterations <= MAX_ITERATIONS):
        lines.append(f"--iterations: {iterations!r} must be an integer from 1 to "
                     f"{MAX_ITERATIONS}")
    if not isinstance(checkpoint_every, int) or checkpoint_every < 0:
        lines.append(f"--checkpoint-every: {checkpoint_every!r} must be 0 (never) or a "
                     "positive integer")
    if lines:
        raise ConfigError(lines)


def run_task(config_path: str | Path, out: str | Path, *, checkpoint_every: int = 0,
             resume: bool = False, overwrite: bool = False, progress: bool | None = None,
             callback: Callable | None = None, iterations: int | None = None,
             mpi: bool = False, mpi_timeout: float | None = 600.0,
             allow_changed_module: bool = False) -> dict:
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
    allow_changed_module : bool
        With ``resume``: continue a checkpoint although the task module's source changed
        since it was written (a notice names both digests); refused otherwise.

    Raises
    ------
    ConfigError, OutputError, CheckpointError
        Bad input, before anything is computed where possible.
    TaskError
        The task module's code raised or exited (naming the function and the iteration).
    jboat_core.platform.signals.Terminated
        SIGTERM or SIGHUP arrived (handled like Ctrl-C: ``metrics.json`` says
        ``"terminated"``; only where the signal was at its default action).

    Notes
    -----
    Paths are made absolute once, at the start: a task module that changes the working
    directory does not move the outputs.
    """
    _check_args(iterations, checkpoint_every)
    config_path, out = Path(config_path).absolute(), Path(out).absolute()
    with terminate_as_exception():
        return _run_task(config_path, out, checkpoint_every, resume, overwrite, progress,
                         callback, iterations, mpi, mpi_timeout, allow_changed_module)


def _run_task(config_path, out, checkpoint_every, resume, overwrite, progress, callback,
              iterations, mpi, mpi_timeout, allow_changed_module=False) -> dict:
    check_out_path(out)
    run, solver = load_run_config(config_path)
    if mpi and not launched_by_mpirun():
        raise ParallelError("--mpi: this process was not started by mpirun with more than one "
                            "process; run `mpirun -np N jboat run ...`")
    writer = launcher_rank() == 0
    options = dict(checkpoint_every=checkpoint_every, progress=progress, callback=callback,
                   iterations=iterations, writer=writer,
                   allow_changed_module=allow_changed_module,
                   timeout=mpi_timeout if launched_by_mpirun() else None)
    if not writer:  # ranks > 0 never write: no lock, no earlier-run check
        ckpt = out / NAME
        return _run(run, solver, config_path, out, ckpt, resume and os.path.lexists(ckpt),
                    **options)
    with OutputFolder(out, resume=resume, overwrite=overwrite) as folder:
        ckpt = folder.path / NAME
        resuming = resume and os.path.lexists(ckpt)  # a FIFO, folder or link is refused
        if resuming:  # a damaged or foreign file fails here, before Jittor
            read_meta(ckpt, iterations or run.task.iterations)
        return _run(run, solver, config_path, folder.path, ckpt, resuming, **options)


def _run(run, solver, config_path, out, ckpt, resuming, *, checkpoint_every, progress,
         callback, iterations, writer, timeout, allow_changed_module=False) -> dict:
    from tqdm import tqdm

    from ..platform._jittor import jittor

    jittor()
    after_jittor_import()  # Ctrl-C back to Python (or ignored, as the process started)
    raise_pending()  # a SIGTERM whose exception Jittor's import swallowed
    task: Task = load_task(run, config_path.parent)
    problem = task.problem(solver, run.optim)
    raise_pending()
    _check_rank_state(problem, checkpoint_every, resuming)
    fp = fingerprint(run, problem, problem.parallel.world,
                     module_sha256(run.task.module, config_path.parent))
    total = iterations or run.task.iterations
    checkpoints = Checkpoints(ckpt, fp, writer)
    watchdog(timeout)  # under MPI: the ranks' comparison waits for every rank
    try:
        start, first = start_run(problem, task, run, config_path, checkpoints, resuming,
                                 total, allow_changed_module)
    finally:
        watchdog(None)
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
               disable=show if writer else True, file=sys.stderr, **_bar_size())
    at = {"call": "feeds", "it": start}  # what the run is calling, for error messages
    try:
        try:
            for it in bar:
                raise_pending()
                at.update(call="feeds", it=it)
                watchdog(timeout)
                ll_feed, ul_feed = first if it == start and first else task.feeds(it)
                check_feeds(ll_feed, ul_feed, it)
                at["call"] = "the objectives"
                rec = problem.run_iter(ll_feed, ul_feed, it)
                if writer and run.task.eval_every and (it + 1) % run.task.eval_every == 0:
                    at["call"] = "evaluate"
                    problem.history[-1].update(task.evaluate())
                bar.set_postfix(upper_loss=f"{rec['upper_loss']:.4g}", refresh=False)
                if callback is not None:
                    at["call"] = "the callback"
                    callback(problem.history[-1], problem)  # the record with its metrics
                if writer and checkpoint_every and (it + 1) % checkpoint_every == 0:
                    _write(ckpt, checkpoints.save, problem, it + 1)
            watchdog(None)
            if not writer:
                return {**metrics, "status": "completed", "history": problem.history}
            at.update(call="evaluate", it=None)
            final = task.evaluate()
            at["call"] = "final"
            final = {**final, **(task.final() if task.final else {})}
            if problem.history:
                final.update(upper_loss=problem.history[-1]["upper_loss"],
                             lower_loss=problem.history[-1]["lower_loss"])
            at["call"] = "baseline"
            metrics.update(final=final, baseline=task.baseline() if task.baseline else None)
            raise_pending()
            if problem.history:  # the picture first: "completed" means both files exist
                _write(out / "loss_curve.png", plot_losses, problem.history,
                       out / "loss_curve.png",
                       f"{Path(run.task.module).stem}: {'+'.join(solver.composition())}")
            return _write(out / "metrics.json", write_metrics, out / "metrics.json",
                          {**metrics, "status": "completed", "history": problem.history})
        except (KeyboardInterrupt, Terminated, JboatError):
            raise
        except BaseException as exc:  # the task's code (or Jittor under it): one line
            if at["call"] == "the callback":  # the API caller's own code: theirs as is
                raise
            raise task_error(exc, run.task.module, task, at) from exc
    except BaseException as exc:
        watchdog(None)
        if writer:
            _record_stop(out / "metrics.json", metrics, exc, problem.history)
        raise
    finally:
        bar.close()


def _bar_size() -> dict:
    """Nothing (tqdm follows the terminal), or 80 x 24 for a terminal that reports a size
    of 0 x 0 (``script``, some CI consoles), where tqdm would draw nothing."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return {}
    return {"ncols": 80, "nrows": 24} if size.columns <= 0 or size.lines <= 0 else {}


def _write(path: Path, write: Callable, *args):
    """``write(*args)``, which writes ``path``; a failed write (full disk...) becomes one
    line naming ``path``."""
    try:
        return write(*args)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; free space or fix "
                          "the folder, then continue with --resume (from the last "
                          "checkpoint) or run again") from None


def _record_stop(path: Path, metrics: dict, exc: BaseException, history: list) -> None:
    """Write ``metrics.json`` for a run that stopped (interrupted, terminated, failed)."""
    status = ("interrupted" if isinstance(exc, KeyboardInterrupt) else
              "terminated" if isinstance(exc, Terminated) else "failed")
    record = {**metrics, "status": status, "error": f"{type(exc).__name__}: {exc}",
              "history": history}
    if isinstance(exc, Terminated):
        record["signal"] = exc.name
    try:
        write_metrics(path, record)
    except OSError as werr:
        if isinstance(exc, JboatError):  # said in the same line, not a second traceback
            exc.args = (f"{exc}; {path} could not be written either "
                        f"({werr.strerror or werr})",)
        return
    if isinstance(exc, Terminated):
        exc.note = f"{path} records the history so far (\"status\": \"terminated\")"


def check_feeds(ll_feed, ul_feed, it: int) -> None:
    """Refuse feeds holding an empty array (an objective over no examples would be 0 or
    NaN, and the run would "complete" on nothing); ``TaskError`` naming the entry."""
    for name, feed in (("ll_feed", ll_feed), ("ul_feed", ul_feed)):
        listed = isinstance(feed, (list, tuple))
        if listed and not feed:
            raise TaskError(f"feeds({it}) returned an empty list as {name}: give at least one "
                            "task batch")
        for i, batch in enumerate(feed if listed else [feed]):
            for key, value in (batch.items() if isinstance(batch, dict) else ()):
                shape = getattr(value, "shape", None)
                if shape is not None and 0 in tuple(shape):
                    where = f"{name}[{i}][{key!r}]" if listed else f"{name}[{key!r}]"
                    raise TaskError(f"feeds({it}) returned an empty array {where} (shape "
                                    f"{tuple(shape)}): an objective over no examples is not "
                                    "a loss; check the task's data")


