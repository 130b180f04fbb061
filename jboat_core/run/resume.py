"""What ``jboat run`` checks before it computes: the task module's source (for the
fingerprint), the inputs every MPI rank must share, and a checkpoint to continue from.

* The fingerprint holds the SHA-256 of the task module's source file (a ``.py`` path, or
  the file of an importable module; not the modules it imports): a checkpoint written by
  another module of the same name is refused, naming both digests, unless
  ``--allow-changed-module`` says the change is meant (a notice names both digests).
* Under MPI, before any checkpoint is read or any iteration computed, one collective
  (``Parallel.compare``) compares the task file's bytes, the task module's source, the
  iteration count, the seed, the ``[optim]`` table, the task's parameters, what is
  resumed, and the shapes and dtypes of the first iteration's feeds (before sharding); a
  difference stops every rank at once, naming the rank and the item.
* A checkpoint is restored only after ``load_checkpoint`` checked it against the live
  problem's ``state_schema`` (each operator's state as the operator describes it), with
  size limits derived from the live state (``meta_size``); the history comes from the lines the checkpoint covers
  (``HistoryLog``), lines written after it are cut.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

from .checkpoint import (HistoryLog, load_checkpoint_meta, meta_size, read_meta,
                         save_checkpoint)
from ..errors import JboatError

MODULE_KEY = "module_sha256"


def module_sha256(spec: str, base: Path) -> str:
    """The SHA-256 of the task module's source file: a ``.py`` path relative to ``base``,
    or the file of the (already imported) module of that dotted name."""
    if spec.endswith(".py"):
        path = (Path(base) / spec).resolve()
    else:
        module = sys.modules.get(spec)
        path = getattr(module, "__file__", None)
        if not path:  # a namespace or built-in module: its name stands for it
            return hashlib.sha256(f"module:{spec}".encode()).hexdigest()
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shapes(value: Any) -> Any:
    """The shapes and dtypes of a feed (dicts and lists of arrays), for comparing ranks."""
    if isinstance(value, dict):
        return {str(k): shapes(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shapes(v) for v in value]
    if hasattr(value, "shape"):
        return [list(int(n) for n in value.shape), str(getattr(value, "dtype", ""))]
    return type(value).__name__


class Checkpoints:
    """The checkpoints of one run: ``OUT/checkpoint.npz`` and the history beside it.

    Parameters
    ----------
    path : Path
        The checkpoint's path.
    fingerprint : dict
        The live problem's (``runner.fingerprint``).
    writer : bool
        This process writes (rank 0): it cuts history lines a crash left behind.
    """

    def __init__(self, path: Path, fingerprint: dict, writer: bool = True):
        self.path, self.fingerprint, self.writer = Path(path), fingerprint, writer
        self.log = HistoryLog(self.path.parent)

    def save(self, problem, next_iter: int) -> None:
        """Append the new history lines (fsynced), then write the state atomically with
        the number of lines it covers: O(state + new lines), whatever the history."""
        record = self.log.append(problem.history)
        save_checkpoint(self.path, problem.state_dict(history=False), self.fingerprint,
                        next_iter, record)

    def restore(self, problem, iterations: int, allow_changed_module: bool = False) -> int:
        """Check the checkpoint against ``problem`` and load it; the next iteration.

        Raises
        ------
        CheckpointError
            One line naming the file, the key and what to do.
        """
        ignore = (MODULE_KEY,) if allow_changed_module else ()
        live = meta_size(problem.state_dict(history=False), self.fingerprint, iterations)
        state, meta = load_checkpoint_meta(self.path, self.fingerprint,
                                           schema=problem.state_schema(),
                                           iterations=iterations, ignore=ignore,
                                           live_meta=live)
        saved = meta["fingerprint"].get(MODULE_KEY)
        if allow_changed_module and saved != self.fingerprint.get(MODULE_KEY) and self.writer:
            print(f"jboat: notice: task module {self.fingerprint.get('task')} changed since "
                  f"the checkpoint (sha256 {str(saved)[:16]} saved, "
                  f"{str(self.fingerprint.get(MODULE_KEY))[:16]} now); continuing with it "
                  "(--allow-changed-module)", file=sys.stderr)
        state["history"] = self.log.resume(meta["history"], self.path, truncate=self.writer)
        problem.load_state_dict(state)
        return meta["next_iter"]


def start(problem, task, run, config_path: Path, checkpoints: Checkpoints, resuming: bool,
          iterations: int, allow_changed_module: bool = False):
    """Compare the ranks' inputs (under MPI) and restore the checkpoint (when resuming).

    Returns
    -------
    (start, first) : (int, tuple or None)
        The first iteration, and under MPI its feeds (already fetched for the comparison;
        the run uses them instead of calling ``feeds`` again).
    """
    first = None
    if problem.parallel.active:
        meta = read_meta(checkpoints.path) if resuming else None
        begin = meta["next_iter"] if meta else 0
        if begin < iterations:
            first = _first_feeds(task, run, begin)
        problem.parallel.compare({
            "task file": file_sha256(config_path),
            "task module": checkpoints.fingerprint.get(MODULE_KEY, ""),
            "--iterations": iterations, "[task] seed": run.task.seed,
            "[optim] table": run.optim.model_dump(mode="json"),
            "[task] params": run.task.params,
            "--resume": [resuming, begin],
            "data (feed shapes)": shapes(first) if first is not None else None})
    begin = 0
    if resuming:
        begin = checkpoints.restore(problem, iterations, allow_changed_module)
    return begin, first


def _first_feeds(task, run, it: int):
    """``task.feeds(it)``; the task's failure as the run reports it (``TaskError``)."""
    try:
        return task.feeds(it)
    except (KeyboardInterrupt, JboatError):
        raise
    except BaseException as exc:  # noqa: BLE001 - the task's code
        try:
            from .task import task_error
        except ImportError:  # pragma: no cover
            raise exc from None
        raise task_error(exc, run.task.module, task, {"call": "feeds", "it": it}) from exc
